//! Issue 4 end to end, through the built `libklyuch_pkcs11.so` as users run it: the real pcscd,
//! the vsmartcard vpcd reader and `klyuch-card-emulator` (PIV and GOST profiles), driven with
//! the `cryptoki` crate, `pkcs11-tool` and OpenSSL. Nothing here calls `pcsc-backend` directly;
//! APDUs are counted in the emulator's `--log` trace.
//!
//! Run: `cargo build --release -p klyuch-card-emulator && cargo test --release -p klyuch-tests
//! --test pcsc` (the APDU benchmark: `... --test pcsc -- --ignored apdu_benchmark --nocapture`).
//!
//! * The vpcd port is `KLYUCH_VPCD_PORT` (default 35963 = "Virtual PCD 00 00"). The emulator
//!   harness takes an exclusive lock per port, so suites using the same reader queue up; the
//!   tests of this file also run one at a time (one card, one reader). The module is configured
//!   to ignore the other vpcd reader (`[pcsc] exclude_readers`) and so is OpenSC
//!   (`ignored_readers`), so that a card another suite put there is never touched.
//! * pcscd is shared by the machine: started when absent (harness), never stopped.
//! * Every test skips with `SKIPPED: <reason>` when pcscd, the vpcd driver, opensc-tool, the
//!   emulator binary, OpenSC's module or OpenSSL's GOST engine (where needed) is missing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use klyuch_card_emulator::harness::{self, EmulatorBuilder, StartError, VirtualCard};
use klyuch_tests::{module_path, pin, reader_slot, rv, text, Fixture};

const PIV_PIN: &str = "123456";
const PIV_PUK: &str = "12345678";
const GOST_PIN: &str = "12345678";
const GOST_ADMIN: &str = "87654321";
const DATA: &[u8] = b"Klyuch signs this on the emulated card\n";

/// TC26 mechanisms (gost-pkcs11.md section 1.2); the digest from the same vendor range.
const CKM_GOSTR3410_WITH_GOSTR3411_12_256: u64 = 0xD432_1000 | 0x008;
const CKM_GOSTR3411_12_256: u64 = 0xD432_1000 | 0x012;

/// The tests of this file share one reader: one at a time (the port lock of the harness
/// serialises against other processes; this lock against the other threads of this one, and it
/// is always taken before the card and the module, so the three never deadlock).
static SERIAL: Mutex<()> = Mutex::new(());

macro_rules! skip {
    ($($t:tt)*) => {{
        eprintln!("SKIPPED: {}", format!($($t)*));
        println!("SKIPPED: {}", format!($($t)*));
        return;
    }};
}

// ------------------------------------------------------------------ environment

/// The emulator binary: `KLYUCH_CARD_EMULATOR`, else the newer of `target/release` and
/// `target/debug` of this test's target directory (a stale build of one profile must not win).
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

/// Put a provisioned emulated card into the test reader. `None` (with a printed reason) when
/// the environment cannot run PC/SC tests.
fn start_card(profile: &str, args: &[&str]) -> Option<(MutexGuard<'static, ()>, VirtualCard)> {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(bin) = emulator_binary() else {
        let why = "klyuch-card-emulator is not built (cargo build [--release] -p klyuch-card-emulator, or set KLYUCH_CARD_EMULATOR)";
        eprintln!("SKIPPED: {why}");
        println!("SKIPPED: {why}");
        return None;
    };
    let mut b = EmulatorBuilder::new(profile)
        .binary(bin)
        .provision(true)
        .arg("--log");
    for a in args {
        b = b.arg(a);
    }
    match b.start() {
        Ok(card) => Some((serial, card)),
        Err(StartError::Unavailable(why)) => {
            eprintln!("SKIPPED: {why}");
            println!("SKIPPED: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// The other vpcd reader, which the module and OpenSC are told to ignore.
fn other_reader(card: &VirtualCard) -> String {
    let base = harness::VPCD_BASE_PORT;
    harness::reader_name(if card.port() == base { base + 1 } else { base })
}

/// The module with PC/SC on, ignoring the other vpcd reader.
fn fixture(card: &VirtualCard) -> Fixture {
    Fixture::with_pcsc(&format!(
        "[pcsc]\nexclude_readers = [{:?}]\n",
        other_reader(card)
    ))
}

fn slot_of(f: &Fixture, card: &VirtualCard) -> Slot {
    reader_slot(f.p11(), card.reader_name())
        .unwrap_or_else(|| panic!("no slot for reader {:?}", card.reader_name()))
}

/// APDUs the card has received so far (lines `piv >> ...` / `gost >> ...` of the emulator's
/// `--log` trace).
fn apdus(card: &VirtualCard) -> usize {
    card.log()
        .lines()
        .filter(|l| l.starts_with("piv >>") || l.starts_with("gost >>"))
        .count()
}

fn have(prog: &str) -> bool {
    harness::which(prog).is_some()
}

fn opensc_module() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("opensc-pkcs11.so"))
    .find(|p| p.exists())
}

fn gost_engine() -> bool {
    Command::new("openssl")
        .args(["engine", "gost"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Poll `f` until it holds (PC/SC state reaches the module within about a second).
fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        text(&out)
    );
    out
}

/// `pkcs11-tool --module <Klyuch> --slot <reader slot> ARGS` with the fixture's environment.
fn klyuch_tool(f: &Fixture, slot: Slot, args: &[&str]) -> Output {
    let m = module_path();
    let id = format!("{:#x}", slot.id());
    let mut all = vec!["--module", m.to_str().unwrap(), "--slot", &id];
    all.extend_from_slice(args);
    f.run("pkcs11-tool", &all)
}

/// `pkcs11-tool --module opensc-pkcs11.so --slot-description <reader> ARGS`, OpenSC told to
/// ignore the other vpcd reader.
fn opensc_tool(f: &Fixture, card: &VirtualCard, module: &Path, args: &[&str]) -> Output {
    let conf = f.path("opensc.conf");
    std::fs::write(
        &conf,
        format!(
            "app default {{\n  ignored_readers = {:?};\n}}\n",
            other_reader(card)
        ),
    )
    .unwrap();
    let mut cmd = Command::new("pkcs11-tool");
    cmd.arg("--module")
        .arg(module)
        .args(["--slot-description", card.reader_name()])
        .args(args)
        .env("OPENSC_CONF", &conf)
        .current_dir(f.dir.path());
    run_ok(&mut cmd)
}

fn openssl(f: &Fixture, args: &[&str]) -> Output {
    run_ok(Command::new("openssl").args(args).current_dir(f.dir.path()))
}

fn file(f: &Fixture, name: &str, data: &[u8]) -> String {
    let p = f.path(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

fn path(f: &Fixture, name: &str) -> String {
    f.path(name).display().to_string()
}

// ------------------------------------------------------------------ objects

fn find(s: &Session, t: &[Attribute]) -> Vec<ObjectHandle> {
    s.find_objects(t).expect("C_FindObjects")
}

fn object(s: &Session, class: ObjectClass, id: u8) -> ObjectHandle {
    let v = find(s, &[Attribute::Class(class), Attribute::Id(vec![id])]);
    assert_eq!(v.len(), 1, "one {class:?} with CKA_ID {id:02x}");
    v[0]
}

fn bytes(s: &Session, h: ObjectHandle, ty: AttributeType) -> Vec<u8> {
    match s
        .get_attributes(h, &[ty])
        .expect("C_GetAttributeValue")
        .pop()
    {
        Some(
            Attribute::Value(v)
            | Attribute::PublicKeyInfo(v)
            | Attribute::EcPoint(v)
            | Attribute::Subject(v)
            | Attribute::Modulus(v),
        ) => v,
        other => panic!("{ty:?}: {other:?}"),
    }
}

fn flag(s: &Session, h: ObjectHandle, ty: AttributeType) -> bool {
    match s
        .get_attributes(h, &[ty])
        .expect("C_GetAttributeValue")
        .pop()
    {
        Some(
            Attribute::AlwaysAuthenticate(b)
            | Attribute::Local(b)
            | Attribute::Private(b)
            | Attribute::Sign(b)
            | Attribute::Decrypt(b)
            | Attribute::Derive(b),
        ) => b,
        other => panic!("{ty:?}: {other:?}"),
    }
}

/// The certificate with `id` as DER and its public key as a PEM file (by OpenSSL).
fn cert_and_pubkey(f: &Fixture, s: &Session, id: u8, engine: &[&str]) -> (Vec<u8>, String) {
    let der = bytes(
        s,
        object(s, ObjectClass::CERTIFICATE, id),
        AttributeType::Value,
    );
    let c = file(f, &format!("cert{id:02x}.der"), &der);
    let p = path(f, &format!("pub{id:02x}.pem"));
    let mut args = vec!["x509"];
    args.extend_from_slice(engine);
    args.extend_from_slice(&["-inform", "DER", "-in", &c, "-pubkey", "-noout", "-out", &p]);
    openssl(f, &args);
    (der, p)
}

/// `openssl dgst -<md> -verify pub -signature sig data` must say "Verified OK".
fn openssl_verify(f: &Fixture, pubkey: &str, md: &str, sig: &[u8], data: &[u8], extra: &[&str]) {
    let s = file(f, "sig.bin", sig);
    let d = file(f, "data.bin", data);
    let mut args = vec!["dgst", md];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-verify", pubkey, "-signature", &s, &d]);
    let out = openssl(f, &args);
    assert!(text(&out).contains("Verified OK"), "{}", text(&out));
}

/// PKCS#11's ECDSA `r || s` as the DER ECDSA-Sig-Value OpenSSL reads (SEC 1 section C.5).
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    use der::Encode;
    #[derive(der::Sequence)]
    struct Sig<'a> {
        r: der::asn1::UintRef<'a>,
        s: der::asn1::UintRef<'a>,
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Sig {
        r: der::asn1::UintRef::new(r).unwrap(),
        s: der::asn1::UintRef::new(s).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn sha256(f: &Fixture, data: &[u8]) -> Vec<u8> {
    let d = file(f, "tohash.bin", data);
    openssl(f, &["dgst", "-sha256", "-binary", &d]).stdout
}

fn login(s: &Session, p: &str) {
    s.login(UserType::User, Some(&pin(p))).expect("C_Login");
}

fn vendor(ty: u64) -> Mechanism<'static> {
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        MechanismType::new_vendor_defined(ty).unwrap(),
        None,
    ))
}

// ------------------------------------------------------------------ slots

#[test]
fn reader_slots_have_their_flags_and_ids_and_the_list_never_shrinks() {
    let Some((_serial, mut card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    // PC/SC is source 1: reader slots are 0x1000000 + n, soft token slots stay below.
    assert_eq!(slot.id() >> 24, 1, "reader slot {slot:#x}");
    let info = p.get_slot_info(slot).unwrap();
    assert_eq!(info.slot_description().trim_end(), card.reader_name());
    assert!(info.removable_device() && info.hardware_slot() && info.token_present());
    let all = p.get_all_slots().unwrap();
    let soft: Vec<Slot> = all.iter().copied().filter(|s| s.id() >> 24 == 0).collect();
    assert!(!soft.is_empty(), "the soft token store shows its slot too");
    for s in &soft {
        let i = p.get_slot_info(*s).unwrap();
        assert!(!i.removable_device() && !i.hardware_slot(), "{s:#x}");
    }
    let mut ids: Vec<u64> = all.iter().map(Slot::id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no slot ID twice: {all:?}");
    assert_eq!(
        p.get_token_info(slot).unwrap().label().trim_end(),
        "PIV card"
    );
    assert!(p.get_slots_with_token().unwrap().contains(&slot));

    // Card removed: the slot stays, C_GetSlotList(tokenPresent) drops it.
    card.remove().unwrap();
    eventually("removal seen by the module", Duration::from_secs(5), || {
        !p.get_slots_with_token().unwrap().contains(&slot)
    });
    assert!(p.get_all_slots().unwrap().contains(&slot), "slot stays");
    assert_eq!(p.get_all_slots().unwrap().len(), all.len(), "never shrinks");
    let info = p.get_slot_info(slot).unwrap();
    assert!(!info.token_present() && info.removable_device() && info.hardware_slot());
    assert_eq!(
        rv(p.get_token_info(slot)),
        RvError::TokenNotPresent,
        "no token"
    );
    assert_eq!(rv(p.open_ro_session(slot)), RvError::TokenNotPresent);

    // The same card again: same slot ID, a token again.
    card.insert().unwrap();
    eventually(
        "insertion seen by the module",
        Duration::from_secs(5),
        || p.get_slots_with_token().unwrap().contains(&slot),
    );
    assert_eq!(p.get_all_slots().unwrap(), all);
    assert!(p.get_token_info(slot).unwrap().token_initialized());
}

#[test]
fn module_lists_soft_tokens_without_pcscd_and_with_pcsc_off() {
    if !have("pkcs11-tool") {
        skip!("pkcs11-tool is not installed (package opensc)");
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fixture::with_pcsc("");
    let m = module_path();
    let list = |env: &[(&str, &str)]| {
        let mut c = f.command("pkcs11-tool", &["--module", m.to_str().unwrap(), "-L"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let t0 = Instant::now();
        let out = run_ok(&mut c);
        (text(&out), t0.elapsed())
    };
    // pcsc-lite's client library takes the daemon's socket from PCSCLITE_CSOCK_NAME (1.9.9:
    // winscard_msg.c getSocketName); a socket that does not exist is a machine without pcscd.
    let nowhere = f.path("no-pcscd/pcscd.comm");
    let (out, took) = list(&[("PCSCLITE_CSOCK_NAME", nowhere.to_str().unwrap())]);
    assert!(out.contains("Klyuch soft token"), "{out}");
    assert!(
        !out.contains("Virtual PCD") && !out.contains("(0x1000"),
        "{out}"
    );
    assert!(took < Duration::from_secs(5), "no pcscd: {took:?}");
    eprintln!("without pcscd: soft token slots only, pkcs11-tool -L took {took:?}");

    let (out, _) = list(&[("KLYUCH_PCSC", "0")]);
    assert!(out.contains("Klyuch soft token"), "{out}");
    assert!(!out.contains("(0x1000"), "{out}");

    // The same module with the daemon: the readers are there (so the checks above were not
    // vacuous).
    if harness::pcscd_running() {
        let (out, _) = list(&[]);
        assert!(out.contains("Virtual PCD"), "{out}");
    }
}

// ------------------------------------------------------------------ PIV: PINs

#[test]
fn piv_objects_pin_counters_lockout_puk_unblock_and_set_pin() {
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);

    // Before login: certificates and public keys, no private keys.
    let s = p.open_rw_session(slot).unwrap();
    let certs = find(&s, &[Attribute::Class(ObjectClass::CERTIFICATE)]);
    let pubs = find(&s, &[Attribute::Class(ObjectClass::PUBLIC_KEY)]);
    assert_eq!((certs.len(), pubs.len()), (2, 2), "9A and 9C");
    assert!(find(&s, &[Attribute::Class(ObjectClass::PRIVATE_KEY)]).is_empty());
    for id in [1u8, 2] {
        // CKA_PUBLIC_KEY_INFO of the public key = the certificate's SubjectPublicKeyInfo.
        let pk = object(&s, ObjectClass::PUBLIC_KEY, id);
        let cert = object(&s, ObjectClass::CERTIFICATE, id);
        let spki = bytes(&s, pk, AttributeType::PublicKeyInfo);
        assert!(!spki.is_empty());
        assert_eq!(spki, bytes(&s, cert, AttributeType::PublicKeyInfo));
    }

    // Wrong PINs count down on the card; the token flags follow the card's counter.
    let wrong = pin("000000");
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinIncorrect
    );
    let t = p.get_token_info(slot).unwrap();
    assert!(t.user_pin_count_low() && !t.user_pin_final_try() && !t.user_pin_locked());
    // A fresh process reads the counter from the card (no try spent) and says the same.
    if have("pkcs11-tool") {
        let out = text(&klyuch_tool(&f, slot, &["-L"]));
        assert!(out.contains("user PIN count low"), "{out}");
    }
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinIncorrect
    );
    let t = p.get_token_info(slot).unwrap();
    assert!(t.user_pin_count_low() && t.user_pin_final_try() && !t.user_pin_locked());
    assert_eq!(
        rv(s.login(UserType::User, Some(&wrong))),
        RvError::PinIncorrect
    );
    assert!(p.get_token_info(slot).unwrap().user_pin_locked());
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(PIV_PIN)))),
        RvError::PinLocked,
        "blocked: even the right PIN is refused"
    );

    // The SO (= PUK) unblocks with C_InitPIN.
    assert_eq!(
        rv(s.login(UserType::So, Some(&pin("00000000")))),
        RvError::PinIncorrect
    );
    s.login(UserType::So, Some(&pin(PIV_PUK))).unwrap();
    s.init_pin(&pin("654321")).unwrap();
    s.logout().unwrap();
    let t = p.get_token_info(slot).unwrap();
    assert!(!t.user_pin_locked() && !t.user_pin_count_low() && !t.user_pin_final_try());

    // C_SetPIN changes the card's PIN.
    login(&s, "654321");
    s.set_pin(&pin("654321"), &pin("112233")).unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("654321")))),
        RvError::PinIncorrect
    );
    login(&s, "112233");
    // Closing one of the application's sessions keeps the login (PKCS#11 3.0 section 5.6: only
    // the last one logs out).
    let other = p.open_ro_session(slot).unwrap();
    drop(other);
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    s.logout().unwrap();
    // ... and another middleware agrees (the PIN is really changed on the card).
    if let (Some(opensc), true) = (opensc_module(), have("pkcs11-tool")) {
        opensc_tool(&f, &card, &opensc, &["--login", "--pin", "112233", "-O"]);
    }
}

// ------------------------------------------------------------------ PIV: signatures

#[test]
fn piv_rsa_9a_signatures_verify_with_openssl() {
    if !have("openssl") {
        skip!("openssl is not installed");
    }
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let slot = slot_of(&f, &card);
    let s = f.p11().open_ro_session(slot).unwrap();
    login(&s, PIV_PIN);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    let (_, pubkey) = cert_and_pubkey(&f, &s, 1, &[]);

    // SHA256-RSA-PKCS, one part and several.
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    assert_eq!(sig.len(), 256);
    openssl_verify(&f, &pubkey, "-sha256", &sig, DATA, &[]);
    s.sign_init(&Mechanism::Sha256RsaPkcs, key).unwrap();
    s.sign_update(&DATA[..10]).unwrap();
    s.sign_update(&DATA[10..]).unwrap();
    assert_eq!(s.sign_final().unwrap(), sig, "PKCS#1 v1.5 is deterministic");

    // Raw RSA-PKCS over a DigestInfo built by the caller: the same signature.
    let mut digest_info = hex::decode("3031300d060960864801650304020105000420").unwrap();
    digest_info.extend(sha256(&f, DATA));
    let raw = s.sign(&Mechanism::RsaPkcs, key, &digest_info).unwrap();
    assert_eq!(raw, sig);

    // PSS (randomised), verified by OpenSSL.
    let pss = PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    };
    let sig_pss = s
        .sign(&Mechanism::Sha256RsaPkcsPss(pss), key, DATA)
        .unwrap();
    openssl_verify(
        &f,
        &pubkey,
        "-sha256",
        &sig_pss,
        DATA,
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
        ],
    );

    // C_Verify on the host with the card's public key; a changed signature is refused.
    let pk = object(&s, ObjectClass::PUBLIC_KEY, 1);
    s.verify(&Mechanism::Sha256RsaPkcs, pk, DATA, &sig).unwrap();
    let mut bad = sig.clone();
    bad[100] ^= 1;
    assert_eq!(
        rv(s.verify(&Mechanism::Sha256RsaPkcs, pk, DATA, &bad)),
        RvError::SignatureInvalid
    );

    // pkcs11-tool signs the same way.
    if have("pkcs11-tool") {
        let d = file(&f, "doc.txt", DATA);
        let out = path(&f, "tool.sig");
        klyuch_tool(
            &f,
            slot,
            &[
                "--login",
                "--pin",
                PIV_PIN,
                "--sign",
                "--id",
                "01",
                "-m",
                "SHA256-RSA-PKCS",
                "-i",
                &d,
                "-o",
                &out,
            ],
        );
        let tool_sig = std::fs::read(&out).unwrap();
        assert_eq!(tool_sig, sig);
    }
}

#[test]
fn piv_ecdsa_9c_needs_a_context_login_checked_at_once() {
    if !have("openssl") {
        skip!("openssl is not installed");
    }
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    let s = p.open_ro_session(slot).unwrap();
    login(&s, PIV_PIN);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 2);
    assert!(flag(&s, key, AttributeType::AlwaysAuthenticate));
    let (_, pubkey) = cert_and_pubkey(&f, &s, 2, &[]);

    // Without C_Login(CKU_CONTEXT_SPECIFIC) the signature is refused.
    assert_eq!(
        rv(s.sign(&Mechanism::EcdsaSha256, key, DATA)),
        RvError::UserNotLoggedIn
    );

    // A wrong PIN at the context login is reported there, with the card's counter.
    s.sign_init(&Mechanism::EcdsaSha256, key).unwrap();
    let n0 = apdus(&card);
    assert_eq!(
        rv(s.login(UserType::ContextSpecific, Some(&pin("000000")))),
        RvError::PinIncorrect
    );
    assert_eq!(apdus(&card) - n0, 1, "one VERIFY at C_Login");
    assert!(p.get_token_info(slot).unwrap().user_pin_count_low());
    // The operation is still there: the right PIN, then the signature.
    s.login(UserType::ContextSpecific, Some(&pin(PIV_PIN)))
        .unwrap();
    assert!(!p.get_token_info(slot).unwrap().user_pin_count_low());
    s.sign_update(DATA).unwrap();
    let n0 = apdus(&card);
    let sig = s.sign_final().unwrap();
    assert_eq!(
        apdus(&card) - n0,
        2,
        "VERIFY and GENERAL AUTHENTICATE in one transaction"
    );
    assert_eq!(sig.len(), 64);
    openssl_verify(&f, &pubkey, "-sha256", &ecdsa_der(&sig), DATA, &[]);

    // A second signature needs a second context login (PIN "always").
    assert_eq!(
        rv(s.sign(&Mechanism::EcdsaSha256, key, DATA)),
        RvError::UserNotLoggedIn
    );

    // pkcs11-tool does the context login itself (CKA_ALWAYS_AUTHENTICATE), raw ECDSA too.
    if have("pkcs11-tool") {
        let h = file(&f, "hash.bin", &sha256(&f, DATA));
        let out = path(&f, "tool.sig");
        klyuch_tool(
            &f,
            slot,
            &[
                "--login",
                "--pin",
                PIV_PIN,
                "--sign",
                "--id",
                "02",
                "-m",
                "ECDSA",
                "--signature-format",
                "openssl",
                "-i",
                &h,
                "-o",
                &out,
            ],
        );
        openssl_verify(
            &f,
            &pubkey,
            "-sha256",
            &std::fs::read(&out).unwrap(),
            DATA,
            &[],
        );
    }
}

#[test]
fn piv_ecdh_and_decryption_on_9d_and_on_card_key_generation() {
    if !have("openssl") {
        skip!("openssl is not installed");
    }
    let Some((_serial, card)) = start_card("piv", &["--extra-keys"]) else {
        return;
    };
    let f = fixture(&card);
    let slot = slot_of(&f, &card);
    let s = f.p11().open_rw_session(slot).unwrap();
    login(&s, PIV_PIN);
    // 9A, 9C, 9D (a gzip-compressed certificate) and 9E.
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::CERTIFICATE)]).len(),
        4
    );

    // ECDH on 9D (P-256) with a peer key of OpenSSL's: both sides get the same secret.
    let k9d = object(&s, ObjectClass::PRIVATE_KEY, 3);
    assert!(flag(&s, k9d, AttributeType::Derive));
    let (_, pub9d) = cert_and_pubkey(&f, &s, 3, &[]);
    let peer = path(&f, "peer.pem");
    openssl(
        &f,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &peer,
        ],
    );
    let peer_der = openssl(&f, &["pkey", "-in", &peer, "-pubout", "-outform", "DER"]).stdout;
    let point = peer_der[peer_der.len() - 65..].to_vec(); // 04 || X || Y ends the SPKI
    let secret_tmpl = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let k = s
        .derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point)),
            k9d,
            &secret_tmpl,
        )
        .unwrap();
    let ours = bytes(&s, k, AttributeType::Value);
    let theirs = openssl(
        &f,
        &["pkeyutl", "-derive", "-inkey", &peer, "-peerkey", &pub9d],
    )
    .stdout;
    assert_eq!(ours, theirs, "ECDH secret");

    // 9E (card authentication, P-384): no PIN needed, signature verified by OpenSSL.
    let k9e = object(&s, ObjectClass::PRIVATE_KEY, 4);
    assert!(!flag(&s, k9e, AttributeType::Private));
    let (_, pub9e) = cert_and_pubkey(&f, &s, 4, &[]);
    let sig = s.sign(&Mechanism::EcdsaSha384, k9e, DATA).unwrap();
    openssl_verify(&f, &pub9e, "-sha384", &ecdsa_der(&sig), DATA, &[]);

    // On-card generation of an RSA-2048 key in 9D (management key: the default).
    let (pubk, privk) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[Attribute::Id(vec![3])],
        )
        .unwrap();
    assert!(flag(&s, privk, AttributeType::Local));
    assert!(flag(&s, privk, AttributeType::Decrypt));
    let spki = bytes(&s, pubk, AttributeType::PublicKeyInfo);
    assert_eq!(spki, bytes(&s, privk, AttributeType::PublicKeyInfo));
    let new_pub = path(&f, "new9d.pem");
    let spki_file = file(&f, "new9d.der", &spki);
    openssl(
        &f,
        &[
            "pkey", "-pubin", "-inform", "DER", "-in", &spki_file, "-out", &new_pub,
        ],
    );
    // RSA decryption on the card: PKCS#1 v1.5 and OAEP (SHA-256), encrypted by OpenSSL.
    let msg = file(&f, "secret.txt", b"a session key");
    let ct = path(&f, "ct.bin");
    openssl(
        &f,
        &[
            "pkeyutl", "-encrypt", "-pubin", "-inkey", &new_pub, "-in", &msg, "-out", &ct,
        ],
    );
    let pt = s
        .decrypt(&Mechanism::RsaPkcs, privk, &std::fs::read(&ct).unwrap())
        .unwrap();
    assert_eq!(pt, b"a session key");
    openssl(
        &f,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &new_pub,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            &msg,
            "-out",
            &ct,
        ],
    );
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    let pt = s
        .decrypt(
            &Mechanism::RsaPkcsOaep(oaep),
            privk,
            &std::fs::read(&ct).unwrap(),
        )
        .unwrap();
    assert_eq!(pt, b"a session key");
    // C_Encrypt on the host with the card's public key, C_Decrypt on the card.
    let ct = s.encrypt(&Mechanism::RsaPkcs, pubk, b"round trip").unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, privk, &ct).unwrap(),
        b"round trip"
    );

    // On-card generation of a P-256 key in 9A; its signature verifies against
    // CKA_PUBLIC_KEY_INFO (a generated key has no certificate yet).
    let (pubk, privk) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(
                hex::decode("06082a8648ce3d030107").unwrap(),
            )],
            &[Attribute::Id(vec![1])],
        )
        .unwrap();
    let spki = file(
        &f,
        "new9a.der",
        &bytes(&s, pubk, AttributeType::PublicKeyInfo),
    );
    let new_pub = path(&f, "new9a.pem");
    openssl(
        &f,
        &[
            "pkey", "-pubin", "-inform", "DER", "-in", &spki, "-out", &new_pub,
        ],
    );
    let sig = s.sign(&Mechanism::EcdsaSha256, privk, DATA).unwrap();
    openssl_verify(&f, &new_pub, "-sha256", &ecdsa_der(&sig), DATA, &[]);
}

// ------------------------------------------------------------------ GOST token

#[test]
fn gost_token_signatures_verify_with_the_openssl_gost_engine() {
    if !have("openssl") || !gost_engine() {
        skip!("OpenSSL's GOST engine is not installed (package libengine-gost-openssl)");
    }
    let Some((_serial, card)) = start_card("gost", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    assert_eq!(
        p.get_token_info(slot).unwrap().label().trim_end(),
        "GOST token"
    );
    let s = p.open_rw_session(slot).unwrap();
    assert_eq!(
        find(&s, &[Attribute::Class(ObjectClass::CERTIFICATE)]).len(),
        1
    );
    let pk = object(&s, ObjectClass::PUBLIC_KEY, 1);
    let cert = object(&s, ObjectClass::CERTIFICATE, 1);
    assert_eq!(
        bytes(&s, pk, AttributeType::PublicKeyInfo),
        bytes(&s, cert, AttributeType::PublicKeyInfo),
        "CKA_PUBLIC_KEY_INFO from the certificate"
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("00000000")))),
        RvError::PinIncorrect
    );
    assert!(p.get_token_info(slot).unwrap().user_pin_count_low());
    login(&s, GOST_PIN);
    assert!(!p.get_token_info(slot).unwrap().user_pin_count_low());
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    let engine = ["-engine", "gost"];
    let (_, pubkey) = cert_and_pubkey(&f, &s, 1, &engine);

    // CKM_GOSTR3410_WITH_GOSTR3411_12_256: the message in, in several parts; Streebog on the
    // host, the signature s || r on the card.
    let m = vendor(CKM_GOSTR3410_WITH_GOSTR3411_12_256);
    s.sign_init(&m, key).unwrap();
    s.sign_update(&DATA[..7]).unwrap();
    s.sign_update(&DATA[7..]).unwrap();
    let sig = s.sign_final().unwrap();
    assert_eq!(sig.len(), 64);
    openssl_verify(&f, &pubkey, "-md_gost12_256", &sig, DATA, &engine);

    // The module's Streebog-256 (C_Digest) is OpenSSL's.
    let d = file(&f, "data.txt", DATA);
    let hash = openssl(
        &f,
        &["dgst", "-engine", "gost", "-md_gost12_256", "-binary", &d],
    )
    .stdout;
    assert_eq!(hash.len(), 32);
    assert_eq!(s.digest(&vendor(CKM_GOSTR3411_12_256), DATA).unwrap(), hash);

    // CKM_GOSTR3410 over the 32-byte digest as Streebog outputs it (gost-pkcs11.md 2.1: the
    // token reads it little-endian), through pkcs11-tool; OpenSSL verifies on the digest and
    // on the message.
    if have("pkcs11-tool") {
        let h = file(&f, "hash.bin", &hash);
        let out = path(&f, "raw.sig");
        klyuch_tool(
            &f,
            slot,
            &[
                "--login",
                "--pin",
                GOST_PIN,
                "--sign",
                "--id",
                "01",
                "-m",
                "GOSTR3410",
                "-i",
                &h,
                "-o",
                &out,
            ],
        );
        let raw = std::fs::read(&out).unwrap();
        assert_eq!(raw.len(), 64);
        let o = openssl(
            &f,
            &[
                "pkeyutl", "-engine", "gost", "-verify", "-pubin", "-inkey", &pubkey, "-in", &h,
                "-sigfile", &out,
            ],
        );
        assert!(
            text(&o).contains("Signature Verified Successfully"),
            "{}",
            text(&o)
        );
        openssl_verify(&f, &pubkey, "-md_gost12_256", &raw, DATA, &engine);
    }

    // Host-side GOST verification needs klyuch-crypto's GOST support: until it is there the
    // mechanism says so (no CKF_VERIFY) and C_VerifyInit answers CKR_MECHANISM_INVALID.
    let info = p
        .get_mechanism_info(
            slot,
            MechanismType::new_vendor_defined(CKM_GOSTR3410_WITH_GOSTR3411_12_256).unwrap(),
        )
        .unwrap();
    match s.verify(&m, pk, DATA, &sig) {
        Ok(()) => assert!(info.verify()),
        Err(e) => {
            assert!(!info.verify());
            assert!(
                matches!(e, Error::Pkcs11(RvError::MechanismInvalid, _)),
                "{e:?}"
            );
        }
    }
    s.logout().unwrap();

    // The admin PIN is the SO PIN: C_InitPIN sets a new user PIN.
    assert_eq!(
        rv(s.login(UserType::So, Some(&pin("00000000")))),
        RvError::PinIncorrect
    );
    s.login(UserType::So, Some(&pin(GOST_ADMIN))).unwrap();
    s.init_pin(&pin("11223344")).unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(GOST_PIN)))),
        RvError::PinIncorrect
    );
    login(&s, "11223344");
    let sig = s.sign(&m, key, DATA).unwrap();
    openssl_verify(&f, &pubkey, "-md_gost12_256", &sig, DATA, &engine);
}

// ------------------------------------------------------------------ events

/// Forget events that are already pending (CKF_DONT_BLOCK until CKR_NO_EVENT).
fn drain_events(p: &Pkcs11) {
    for _ in 0..20 {
        if p.get_slot_event().unwrap().is_none() {
            return;
        }
    }
    panic!("C_WaitForSlotEvent(CKF_DONT_BLOCK) keeps reporting events");
}

/// A thread blocked in C_WaitForSlotEvent until an event on `slot` (events of other slots are
/// skipped); returns the slot and how long it waited.
fn waiter(p: &Pkcs11, slot: Slot) -> std::thread::JoinHandle<(Slot, Duration)> {
    let p = p.clone();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        loop {
            let s = p.wait_for_slot_event().expect("C_WaitForSlotEvent");
            if s == slot {
                return (s, t0.elapsed());
            }
        }
    })
}

fn join_within(
    h: std::thread::JoinHandle<(Slot, Duration)>,
    timeout: Duration,
) -> (Slot, Duration) {
    let t0 = Instant::now();
    while !h.is_finished() {
        assert!(t0.elapsed() < timeout, "no slot event within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    h.join().unwrap()
}

#[test]
fn wait_for_slot_event_blocks_until_insertion_and_removal() {
    let Some((_serial, mut card)) = start_card("piv", &[]) else {
        return;
    };
    card.remove().unwrap();
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    drain_events(p);

    // CKF_DONT_BLOCK with nothing pending: CKR_NO_EVENT at once.
    let t0 = Instant::now();
    assert_eq!(p.get_slot_event().unwrap(), None);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );

    // Blocked until the card is inserted.
    let w = waiter(p, slot);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !w.is_finished(),
        "C_WaitForSlotEvent returned without an event"
    );
    card.insert().unwrap();
    let (s, waited) = join_within(w, Duration::from_secs(10));
    assert_eq!(s, slot);
    assert!(waited >= Duration::from_millis(700));
    assert!(p.get_slot_info(slot).unwrap().token_present());
    assert!(p.get_token_info(slot).is_ok());

    // ... and until it is removed.
    let w = waiter(p, slot);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!w.is_finished());
    card.remove().unwrap();
    let (s, _) = join_within(w, Duration::from_secs(10));
    assert_eq!(s, slot);
    assert!(!p.get_slot_info(slot).unwrap().token_present());
    assert_eq!(p.get_slot_event().unwrap(), None, "reported once");
}

#[test]
fn c_finalize_from_another_thread_unblocks_c_wait_for_slot_event_within_a_second() {
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let mut f = fixture(&card);
    let p = f.pkcs11.take().unwrap();
    drain_events(&p);
    let w = {
        let p = p.clone();
        std::thread::spawn(move || p.wait_for_slot_event())
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!w.is_finished(), "nothing happened, so it must still wait");
    let t0 = Instant::now();
    p.finalize().expect("C_Finalize");
    while !w.is_finished() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "C_WaitForSlotEvent hangs after C_Finalize"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t0.elapsed();
    let r = w.join().unwrap();
    eprintln!("C_Finalize unblocked C_WaitForSlotEvent after {took:?} ({r:?})");
    assert!(
        matches!(r, Err(Error::Pkcs11(RvError::CryptokiNotInitialized, _))),
        "{r:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// Reads a child's stdout in a thread so that the test can wait for its prompts.
struct Reader {
    buf: Arc<Mutex<String>>,
}

impl Reader {
    fn new(mut out: impl Read + Send + 'static) -> Reader {
        let buf = Arc::new(Mutex::new(String::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Reader { buf }
    }
    fn text(&self) -> String {
        self.buf.lock().unwrap().clone()
    }
    /// Wait until `needle` occurs `n` times.
    fn wait_for(&self, needle: &str, n: usize, timeout: Duration) {
        let t0 = Instant::now();
        while self.text().matches(needle).count() < n {
            assert!(
                t0.elapsed() < timeout,
                "waiting for {needle:?} x{n}; pkcs11-tool said:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn pkcs11_tool_test_hotplug_sees_insertion_and_removal() {
    if !have("pkcs11-tool") {
        skip!("pkcs11-tool is not installed (package opensc)");
    }
    let Some((_serial, mut card)) = start_card("piv", &[]) else {
        return;
    };
    card.remove().unwrap();
    let f = fixture(&card);
    let slot = slot_of(&f, &card);
    let m = module_path();
    let mut child = f
        .command(
            "pkcs11-tool",
            &["--module", m.to_str().unwrap(), "--test-hotplug"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = Reader::new(child.stdout.take().unwrap());
    let prompt = "Please press return to continue, x to exit";
    let t = Duration::from_secs(15);
    // Part 1 (C_GetSlotList): list once, then on to part 2.
    out.wait_for(prompt, 1, t);
    stdin.write_all(b"\n").unwrap();
    out.wait_for(prompt, 2, t);
    stdin.write_all(b"x\n").unwrap();
    // Part 2: pkcs11-tool blocks in C_WaitForSlotEvent; the test inserts and removes the card.
    out.wait_for("C_WaitForSlotEvent()", 1, t);
    out.wait_for(prompt, 3, t);
    stdin.write_all(b"\n").unwrap();
    out.wait_for("Calling C_WaitForSlotEvent", 1, t);
    std::thread::sleep(Duration::from_millis(300));
    card.insert().unwrap();
    let event = format!("event on slot {:#x}", slot.id());
    out.wait_for(&event, 1, t);
    out.wait_for(prompt, 4, t);
    assert!(
        out.text().contains("token label        : PIV card"),
        "{}",
        out.text()
    );
    stdin.write_all(b"\n").unwrap();
    out.wait_for("Calling C_WaitForSlotEvent", 2, t);
    std::thread::sleep(Duration::from_millis(300));
    card.remove().unwrap();
    out.wait_for(&event, 2, t);
    out.wait_for(prompt, 5, t);
    stdin.write_all(b"x\n").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", out.text());
    let tail = out.text();
    let after = &tail[tail.rfind(&event).unwrap()..];
    assert!(
        after.contains("(empty)"),
        "the slot shows no token: {after}"
    );
}

// ------------------------------------------------------------------ removal and reset

#[test]
fn removal_mid_session_gives_device_removed_and_reinsertion_works() {
    if !have("openssl") {
        skip!("openssl is not installed");
    }
    let Some((_serial, mut card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    let s = p.open_ro_session(slot).unwrap();
    let other = p.open_ro_session(slot).unwrap();
    login(&s, PIV_PIN);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();

    card.remove().unwrap();
    let t0 = Instant::now();
    let r = rv(s.sign(&Mechanism::Sha256RsaPkcs, key, DATA));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "no hang on a gone card"
    );
    assert!(
        matches!(r, RvError::DeviceRemoved | RvError::TokenNotPresent),
        "{r:?}"
    );
    // The token's sessions are gone.
    assert_eq!(rv(s.get_session_info()), RvError::SessionHandleInvalid);
    assert_eq!(rv(other.get_session_info()), RvError::SessionHandleInvalid);
    assert_eq!(rv(p.open_ro_session(slot)), RvError::TokenNotPresent);
    drop((s, other));

    // Re-insertion: a working token (new sessions, logged out, signatures verify).
    card.insert().unwrap();
    eventually("token back", Duration::from_secs(5), || {
        p.get_token_info(slot).is_ok()
    });
    let s = p.open_ro_session(slot).unwrap();
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RoPublic
    );
    login(&s, PIV_PIN);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    let (_, pubkey) = cert_and_pubkey(&f, &s, 1, &[]);
    openssl_verify(&f, &pubkey, "-sha256", &sig, DATA, &[]);
}

#[test]
fn a_reset_by_another_program_logs_out_and_never_gives_a_wrong_signature() {
    if !have("openssl") {
        skip!("openssl is not installed");
    }
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    let s = p.open_ro_session(slot).unwrap();
    login(&s, PIV_PIN);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    let (_, pubkey) = cert_and_pubkey(&f, &s, 1, &[]);
    s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();

    // Another program resets the card (a cold reset through pcscd: the card forgets its PIN).
    let reset = || {
        run_ok(Command::new("opensc-tool").args(["-r", card.reader_name(), "--reset"]));
    };
    reset();
    assert_eq!(
        rv(s.sign(&Mechanism::Sha256RsaPkcs, key, DATA)),
        RvError::UserNotLoggedIn
    );
    assert_eq!(
        s.get_session_info().unwrap().session_state(),
        SessionState::RoPublic,
        "the login is gone"
    );
    // Logging in again works; the signature is right.
    login(&s, PIV_PIN);
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    openssl_verify(&f, &pubkey, "-sha256", &sig, DATA, &[]);

    // A reset between C_SignInit and C_Sign: refused too, never signed unauthenticated.
    s.sign_init(&Mechanism::Sha256RsaPkcs, key).unwrap();
    s.sign_update(DATA).unwrap();
    reset();
    assert_eq!(rv(s.sign_final()), RvError::UserNotLoggedIn);
    login(&s, PIV_PIN);
    let sig = s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    openssl_verify(&f, &pubkey, "-sha256", &sig, DATA, &[]);
}

// ------------------------------------------------------------------ caching

#[test]
fn nss_style_polling_is_answered_from_cache_without_apdus() {
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let p = f.p11();
    let slot = slot_of(&f, &card);
    let s = p.open_ro_session(slot).unwrap();
    login(&s, PIV_PIN);
    let all = find(&s, &[]);
    assert!(all.len() >= 6, "{all:?}");

    let n0 = apdus(&card);
    let t0 = Instant::now();
    for _ in 0..1000 {
        assert!(p.get_slot_info(slot).unwrap().token_present());
        p.get_token_info(slot).unwrap();
        assert_eq!(
            s.get_session_info().unwrap().session_state(),
            SessionState::RoUser
        );
    }
    let took = t0.elapsed();
    assert_eq!(
        apdus(&card) - n0,
        0,
        "C_GetSlotInfo/C_GetTokenInfo/C_GetSessionInfo must not talk to the card"
    );
    // Enumeration of a card already read: no APDUs either.
    for _ in 0..100 {
        for h in find(&s, &[]) {
            s.get_attributes(h, &[AttributeType::Label, AttributeType::Id])
                .unwrap();
        }
        p.get_all_slots().unwrap();
    }
    assert_eq!(apdus(&card) - n0, 0, "repeated enumeration");
    eprintln!("1000 x (C_GetSlotInfo + C_GetTokenInfo + C_GetSessionInfo): 0 APDUs, {took:?}");
}

// ------------------------------------------------------------------ OpenSC side by side

/// The certificate objects of `pkcs11-tool -O` output: (label, subject, ID).
fn certificate_objects(out: &str) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for block in out.split("Certificate Object;").skip(1) {
        let field = |name: &str| {
            block
                .lines()
                .take_while(|l| !l.ends_with("Object") && !l.contains(" Object;"))
                .find_map(|l| l.trim().strip_prefix(name).map(|r| r.trim().to_string()))
                .unwrap_or_default()
        };
        v.push((field("label:"), field("subject:"), field("ID:")));
    }
    v.sort();
    v
}

#[test]
fn opensc_and_klyuch_list_the_same_certificates_on_one_card() {
    let Some(opensc) = opensc_module() else {
        skip!("OpenSC's opensc-pkcs11.so is not installed");
    };
    if !have("pkcs11-tool") {
        skip!("pkcs11-tool is not installed");
    }
    let Some((_serial, card)) = start_card("piv", &["--extra-keys"]) else {
        return;
    };
    let f = fixture(&card);
    let slot = slot_of(&f, &card);
    let theirs = text(&opensc_tool(&f, &card, &opensc, &["-L", "-O"]));
    let ours = text(&klyuch_tool(&f, slot, &["-L", "-O"]));
    let (a, b) = (certificate_objects(&theirs), certificate_objects(&ours));
    assert_eq!(a.len(), 4, "OpenSC:\n{theirs}");
    assert_eq!(a, b, "OpenSC:\n{theirs}\nKlyuch:\n{ours}");
    // and the same bytes
    for id in ["01", "02", "03", "04"] {
        let o1 = path(&f, &format!("opensc-{id}.der"));
        let o2 = path(&f, &format!("klyuch-{id}.der"));
        opensc_tool(
            &f,
            &card,
            &opensc,
            &["--read-object", "--type", "cert", "--id", id, "-o", &o1],
        );
        klyuch_tool(
            &f,
            slot,
            &["--read-object", "--type", "cert", "--id", id, "-o", &o2],
        );
        assert_eq!(std::fs::read(&o1).unwrap(), std::fs::read(&o2).unwrap());
    }
}

// ------------------------------------------------------------------ APDU benchmark

/// What one module costs in APDUs on the emulated PIV card, through cryptoki.
fn measure(card: &VirtualCard, module: &Path, env: &[(&str, String)]) -> Vec<(String, usize)> {
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    let mut rows = Vec::new();
    let mut mark = apdus(card);
    let mut row = |name: &str, rows: &mut Vec<(String, usize)>| {
        let n = apdus(card);
        rows.push((name.to_string(), n - mark));
        mark = n;
    };
    let p = Pkcs11::new(module).expect("load module");
    p.initialize(cryptoki::context::CInitializeArgs::new(
        cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
    ))
    .unwrap();
    let slot = reader_slot(&p, card.reader_name()).expect("reader slot");
    p.get_token_info(slot).unwrap();
    row(
        "module start with a card present (C_Initialize, C_GetSlotList, C_GetTokenInfo)",
        &mut rows,
    );
    let s = p.open_ro_session(slot).unwrap();
    let objs = find(&s, &[]);
    for h in &objs {
        let _ = s.get_attributes(h.to_owned(), &[AttributeType::Label, AttributeType::Id]);
    }
    row(
        "C_FindObjects of all objects (+ CKA_LABEL, CKA_ID)",
        &mut rows,
    );
    login(&s, PIV_PIN);
    row("C_Login", &mut rows);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    row("C_FindObjects of the private key after login", &mut rows);
    s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    row("one signature (RSA-2048, CKM_SHA256_RSA_PKCS)", &mut rows);
    for _ in 0..10 {
        s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    }
    row("ten signatures", &mut rows);
    // 9C (PIN always): C_SignInit, C_Login(CKU_CONTEXT_SPECIFIC), C_SignUpdate, C_SignFinal.
    let k9c = object(&s, ObjectClass::PRIVATE_KEY, 2);
    s.sign_init(&Mechanism::EcdsaSha256, k9c).unwrap();
    s.login(UserType::ContextSpecific, Some(&pin(PIV_PIN)))
        .unwrap();
    s.sign_update(DATA).unwrap();
    s.sign_final().unwrap();
    row(
        "one ECDSA P-256 signature on 9C with its C_Login(CKU_CONTEXT_SPECIFIC)",
        &mut rows,
    );
    for _ in 0..10 {
        for h in find(&s, &[]) {
            let _ = s.get_attributes(h, &[AttributeType::Label, AttributeType::Id]);
        }
        p.get_token_info(slot).unwrap();
        s.get_session_info().unwrap();
    }
    row(
        "repeated enumeration (10 x C_FindObjects + attributes + token/session info)",
        &mut rows,
    );
    drop(s);
    p.finalize().unwrap();
    rows
}

#[test]
#[ignore = "benchmark: run with --ignored apdu_benchmark --nocapture"]
fn apdu_benchmark() {
    let Some(opensc) = opensc_module() else {
        skip!("OpenSC's opensc-pkcs11.so is not installed");
    };
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let f = fixture(&card);
    let module = module_path();
    // Klyuch's module is already loaded by the fixture; measure on a fresh load of it.
    let mut f = f;
    f.pkcs11.take().unwrap().finalize().unwrap();
    let ours = measure(&card, &module, &[]);
    let conf = f.path("opensc.conf");
    std::fs::write(
        &conf,
        format!(
            "app default {{\n  ignored_readers = {:?};\n}}\n",
            other_reader(&card)
        ),
    )
    .unwrap();
    let theirs = measure(
        &card,
        &opensc,
        &[("OPENSC_CONF", conf.display().to_string())],
    );
    println!("\n| operation (emulated PIV card, 9A RSA-2048 + 9C P-256) | Klyuch | OpenSC 0.23 |");
    println!("|---|---|---|");
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        println!("| {name} | {a} | {b} |");
    }
    for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
        assert!(a <= b, "{name}: Klyuch {a} APDUs, OpenSC {b}");
    }
    let last = ours.last().unwrap();
    assert_eq!(last.1, 0, "repeated enumeration sends nothing");
}

/// Issue 7, item 4 on the PC/SC path: a trace-level log (every APDU) of logins, a wrong PIN,
/// signing and PIN changes on the PIV card holds no PIN: VERIFY and CHANGE REFERENCE DATA data
/// fields are masked.
#[test]
fn apdu_trace_masks_every_pin() {
    let Some((_serial, card)) = start_card("piv", &[]) else {
        return;
    };
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("trace.log");
    // Before the fixture loads the module; nextest runs each test in its own process.
    std::env::set_var("KLYUCH_LOG", "trace");
    std::env::set_var("KLYUCH_LOG_FILE", &log);
    const WRONG: &str = "654321";
    const NEW: &str = "246813";
    let mut f = fixture(&card);
    let slot = slot_of(&f, &card);
    let s = f.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(WRONG)))),
        RvError::PinIncorrect
    );
    login(&s, PIV_PIN);
    let key = object(&s, ObjectClass::PRIVATE_KEY, 1);
    s.sign(&Mechanism::Sha256RsaPkcs, key, DATA).unwrap();
    s.set_pin(&pin(PIV_PIN), &pin(NEW)).unwrap();
    s.set_pin(&pin(NEW), &pin(PIV_PIN)).unwrap();
    s.logout().unwrap();
    drop(s);
    if let Some(p) = f.pkcs11.take() {
        p.finalize().unwrap();
    }
    let text = String::from_utf8_lossy(&std::fs::read(&log).expect("trace log")).into_owned();
    assert!(text.contains("APDU >"), "no APDU trace at level trace");
    assert!(text.contains("masked"), "no masked data field in the trace");
    for p in [PIV_PIN, WRONG, NEW] {
        let hex: String = p.bytes().map(|b| format!("{b:02X}")).collect();
        assert!(!text.contains(&hex), "the APDU trace holds PIN {p} ({hex})");
        assert!(
            !text.contains(&hex.to_lowercase()),
            "the trace holds PIN {p}"
        );
    }
    for p in [WRONG, NEW] {
        assert!(!text.contains(p), "the trace holds PIN {p}");
    }
    eprintln!("{} trace lines checked", text.lines().count());
}
