//! `klyuch keygen`, `csr` and `status` on the emulated GOST card (the card emulator in a vpcd
//! reader of the running pcscd, through Klyuch's PC/SC backend): the key pair is generated on the
//! card, the request it signs is verified by OpenSSL's GOST engine, and `status` reports the card
//! with its provisioned certificate's days left.

mod cli_common;
use cli_common::{ok, tool};
use klyuch_card_emulator::harness::{self, EmulatorBuilder, StartError, VirtualCard};
use klyuch_tests::{reader_slot, Fixture};
use std::path::PathBuf;

const GOST_PIN: &str = "12345678";

/// The emulator binary: `KLYUCH_CARD_EMULATOR`, else the newer of `target/release` and
/// `target/debug` (as tests/pcsc.rs finds it).
fn emulator_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(harness::BINARY_ENV) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("klyuch-card-emulator"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
}

fn start_gost_card() -> Option<VirtualCard> {
    let Some(bin) = emulator_binary() else {
        eprintln!("SKIPPED: klyuch-card-emulator is not built");
        return None;
    };
    match EmulatorBuilder::new("gost")
        .binary(bin)
        .provision(true)
        .start()
    {
        Ok(card) => Some(card),
        Err(StartError::Unavailable(why)) => {
            eprintln!("SKIPPED: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn keygen_csr_and_status_on_the_emulated_gost_card() {
    let bin = require_klyuch!();
    if !cli_common::have_gost_engine() {
        eprintln!("SKIPPED: no OpenSSL GOST engine");
        return;
    }
    let Some(card) = start_gost_card() else {
        return;
    };
    let base = harness::VPCD_BASE_PORT;
    let other = harness::reader_name(if card.port() == base { base + 1 } else { base });
    let f = Fixture::with_pcsc(&format!("[pcsc]\nexclude_readers = [{other:?}]\n"));
    let slot = reader_slot(f.p11(), card.reader_name())
        .unwrap_or_else(|| panic!("no slot for reader {:?}", card.reader_name()));
    let slot_id = slot.id().to_string();

    // on-card generation; the card picks the key slot (CKA_ID 01..08) when no --id is given
    let mut ids = Vec::new();
    for (ty, id) in [("gost2012-256", None), ("gost2012-512:B", Some("05"))] {
        let mut args = vec![
            "--slot", &slot_id, "keygen", "--type", ty, "--pin", GOST_PIN,
        ];
        if let Some(id) = id {
            args.extend(["--id", id]);
        }
        let out = ok(&f, &bin, &args);
        let got = out
            .lines()
            .find_map(|l| l.strip_prefix("CKA_ID: "))
            .unwrap_or_else(|| panic!("no CKA_ID in\n{out}"))
            .to_string();
        if let Some(id) = id {
            assert_eq!(got, id, "{out}");
        }
        assert_eq!(got.len(), 2, "a card key slot: {out}");
        ids.push(got);
    }
    assert_ne!(ids[0], "01", "key 01 is the provisioned one");

    // the card signs requests; OpenSSL's GOST engine verifies them
    for id in &ids {
        let uri = format!("pkcs11:slot-id={slot_id};id=%{id}");
        ok(
            &f,
            &bin,
            &[
                "csr",
                "--key",
                &uri,
                "--subject",
                "/C=RU/CN=Card key/SNILS=12345678901",
                "--pin",
                GOST_PIN,
                "-o",
                "card.csr",
            ],
        );
        let v = tool(
            &f,
            "openssl",
            &[
                "req", "-engine", "gost", "-in", "card.csr", "-verify", "-noout",
            ],
        );
        assert!(v.contains("verify OK"), "{v}");
    }

    // status of the card: its PIN state and the provisioned certificate's days left
    let o = cli_common::run(&f, &bin, &["--slot", &slot_id, "status", "--json"]);
    let t = klyuch_tests::text(&o);
    assert!(
        matches!(o.status.code(), Some(0) | Some(3)),
        "status failed:\n{t}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{t}"));
    let tok = &v.as_array().unwrap()[0];
    assert_eq!(tok["label"], "GOST token", "{v:#}");
    assert_eq!(tok["user_pin"], "ok", "{v:#}");
    let certs = tok["certificates"].as_array().unwrap();
    assert!(!certs.is_empty(), "{v:#}");
    assert!(certs[0]["days_left"].is_i64(), "{v:#}");
}
