//! `klyuch keygen`, `csr` and `status` on the emulated GOST card (the card emulator in a vpcd
//! reader of the running pcscd, through Klyuch's PC/SC backend): the key pair is generated on the
//! card, the request it signs is verified by OpenSSL's GOST engine, and `status` reports the card
//! with its provisioned certificate's days left. On the emulated PIV card (9A RSA-2048 and 9C
//! P-256 with self-signed certificates): `objects`, `status --json`, `sign` with the 9A key
//! checked by `openssl cms -verify` and `klyuch verify`, and `csr` with the 9C key (PIN at every
//! signature) checked by `openssl req -verify`.

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
    start_card("gost")
}

/// The emulated card of `profile` (`gost`, `piv`), provisioned, in a vpcd reader.
fn start_card(profile: &str) -> Option<VirtualCard> {
    let Some(bin) = emulator_binary() else {
        eprintln!("SKIPPED: klyuch-card-emulator is not built");
        return None;
    };
    match EmulatorBuilder::new(profile)
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

const PIV_PIN: &str = "123456";

/// The certificate with CKA_ID `id` on the card, read through the module (public object).
fn card_certificate(f: &Fixture, slot: cryptoki::slot::Slot, id: u8) -> Vec<u8> {
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    let s = f.p11().open_ro_session(slot).unwrap();
    let h = s
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(vec![id]),
        ])
        .unwrap();
    assert_eq!(h.len(), 1, "one certificate with CKA_ID {id:02x}");
    match s
        .get_attributes(h[0], &[AttributeType::Value])
        .unwrap()
        .pop()
    {
        Some(Attribute::Value(v)) => v,
        other => panic!("no CKA_VALUE: {other:?}"),
    }
}

#[test]
fn objects_status_sign_verify_and_csr_on_the_emulated_piv_card() {
    let bin = require_klyuch!();
    let have_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_openssl {
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let Some(card) = start_card("piv") else {
        return;
    };
    let base = harness::VPCD_BASE_PORT;
    let other = harness::reader_name(if card.port() == base { base + 1 } else { base });
    let f = Fixture::with_pcsc(&format!("[pcsc]\nexclude_readers = [{other:?}]\n"));
    let slot = reader_slot(f.p11(), card.reader_name())
        .unwrap_or_else(|| panic!("no slot for reader {:?}", card.reader_name()));
    let slot_id = slot.id().to_string();

    // objects: the public view lists the card's certificates with their days left; logged in,
    // the JSON lists the 9A RSA and 9C EC private keys next to them
    let out = ok(&f, &bin, &["--slot", &slot_id, "objects"]);
    assert!(out.contains("Klyuch PIV Authentication (9A)"), "{out}");
    assert!(out.contains("days left"), "{out}");
    let o = cli_common::run(
        &f,
        &bin,
        &[
            "--slot", &slot_id, "objects", "--login", "--pin", PIV_PIN, "--json",
        ],
    );
    assert!(o.status.success(), "{}", klyuch_tests::text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let objs = v.as_array().unwrap();
    let find = |class: &str, id: &str| {
        objs.iter()
            .find(|o| o["class"] == class && o["id"] == id)
            .unwrap_or_else(|| panic!("no {class} with id {id} in {v:#}"))
    };
    assert_eq!(find("privkey", "01")["key_type"], "RSA", "{v:#}");
    assert_eq!(find("privkey", "01")["bits"], 2048, "{v:#}");
    assert_eq!(find("privkey", "02")["key_type"], "EC", "{v:#}");
    let c = &find("cert", "01")["certificate"];
    assert!(c["days_left"].as_i64().unwrap() > 0, "{v:#}");
    assert_eq!(c["expired"], false, "{v:#}");

    // status --json: the card with its PIN state and certificates
    let o = cli_common::run(&f, &bin, &["--slot", &slot_id, "status", "--json"]);
    let t = klyuch_tests::text(&o);
    assert_eq!(o.status.code(), Some(0), "status:\n{t}");
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}:\n{t}"));
    let tok = &v.as_array().unwrap()[0];
    assert_eq!(tok["label"], "PIV card", "{v:#}");
    assert_eq!(tok["user_pin"], "ok", "{v:#}");
    let certs = tok["certificates"].as_array().unwrap();
    assert!(certs.len() >= 2, "{v:#}");
    assert!(
        certs.iter().all(|c| c["days_left"].as_i64().unwrap() > 0),
        "{v:#}"
    );

    // sign with the 9A RSA key; its self-signed certificate is the trust anchor
    std::fs::write(f.path("doc.txt"), "PIV card document\n").unwrap();
    std::fs::write(f.path("card9a.der"), card_certificate(&f, slot, 1)).unwrap();
    tool(
        &f,
        "openssl",
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "card9a.der",
            "-out",
            "card9a.pem",
        ],
    );
    let uri = format!("pkcs11:slot-id={slot_id};id=%01");
    let out = ok(
        &f,
        &bin,
        &["sign", "--key", &uri, "--pin", PIV_PIN, "doc.txt"],
    );
    assert!(out.contains("RSA PKCS#1 v1.5 with SHA-256"), "{out}");
    let v = tool(
        &f,
        "openssl",
        &[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "doc.txt.sig",
            "-content",
            "doc.txt",
            "-CAfile",
            "card9a.pem",
            "-out",
            "verified.txt",
        ],
    );
    assert!(v.contains("Verification successful"), "{v}");
    assert_eq!(
        std::fs::read(f.path("verified.txt")).unwrap(),
        b"PIV card document\n"
    );
    let out = ok(&f, &bin, &["verify", "doc.txt.sig", "--ca", "card9a.pem"]);
    assert!(out.contains("Signature:    VALID"), "{out}");
    assert!(out.contains("Klyuch PIV Authentication (9A)"), "{out}");
    assert!(out.contains("(trusted, card9a.pem)"), "{out}");
    // the card's own certificate is in no system trust store: not valid without --ca, valid
    // with the chain check skipped explicitly
    cli_common::fails(&f, &bin, &["verify", "doc.txt.sig"], 1, "--no-chain");
    let out = ok(&f, &bin, &["verify", "doc.txt.sig", "--no-chain"]);
    assert!(out.contains("NOT CHECKED (--no-chain)"), "{out}");
    // a changed document
    std::fs::write(f.path("doc.txt"), "PIV card document!\n").unwrap();
    cli_common::fails(
        &f,
        &bin,
        &["verify", "doc.txt.sig", "--ca", "card9a.pem"],
        1,
        "CHANGED",
    );

    // a request signed by the 9C P-256 key (CKA_ALWAYS_AUTHENTICATE: the PIN again at the
    // signature); OpenSSL verifies it, and it carries the key of the card's 9C certificate
    let uri = format!("pkcs11:slot-id={slot_id};id=%02");
    ok(
        &f,
        &bin,
        &[
            "csr",
            "--key",
            &uri,
            "--subject",
            "/C=RU/O=Klyuch/CN=PIV card user",
            "--pin",
            PIV_PIN,
            "-o",
            "piv.csr",
        ],
    );
    let v = tool(
        &f,
        "openssl",
        &["req", "-in", "piv.csr", "-verify", "-noout", "-text"],
    );
    assert!(v.contains("verify OK"), "{v}");
    assert!(v.contains("prime256v1"), "{v}");
    assert!(v.contains("CN = PIV card user"), "{v}");
    std::fs::write(f.path("card9c.der"), card_certificate(&f, slot, 2)).unwrap();
    let req_key = tool(
        &f,
        "openssl",
        &["req", "-in", "piv.csr", "-pubkey", "-noout"],
    );
    let cert_key = tool(
        &f,
        "openssl",
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "card9c.der",
            "-pubkey",
            "-noout",
        ],
    );
    let pem = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(!pem(&req_key).is_empty(), "{req_key}");
    assert_eq!(pem(&req_key), pem(&cert_key));
}
