//! Unit tests of the card token on recorded APDU exchanges (`tests/data/<card>/*.apdu`, format in
//! `src/transport.rs`), no pcscd needed.

use pcsc_backend::apdu::{CardError, Sw};
use pcsc_backend::{CardToken, ReplayConnection, TokenOptions};
use std::path::Path;
use std::sync::Mutex;
use token_api::ck::*;
use token_api::{Mechanism, Pin, SessionCtx, Template, Token, UserType};

fn replay(name: &str) -> (ReplayConnection, CardToken) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let conn = ReplayConnection::from_file(&p).unwrap();
    let check = conn.handle();
    let tok = CardToken::open(Box::new(conn), "replay", TokenOptions::default()).unwrap();
    (check, tok)
}

fn s() -> SessionCtx {
    SessionCtx {
        handle: 7,
        rw: true,
    }
}

fn find(t: &CardToken, class: CK_OBJECT_CLASS) -> Vec<u64> {
    let mut tmpl = Template::new();
    tmpl.set_ulong(CKA_CLASS, class);
    t.find_objects(&s(), &tmpl).unwrap()
}

/// A logger that keeps every line, to check what traces contain.
struct Capture(Mutex<Vec<String>>);
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        self.0.lock().unwrap().push(format!("{}", r.args()));
    }
    fn flush(&self) {}
}
static LOG: Capture = Capture(Mutex::new(Vec::new()));

fn capture_logs() {
    let _ = log::set_logger(&LOG);
    log::set_max_level(log::LevelFilter::Trace);
}

#[test]
fn gost_open_login_sign_with_streebog_on_the_host() {
    capture_logs();
    let (check, tok) = replay("gost/open-login-sign.apdu");
    assert_eq!(tok.profile_name(), "gost");
    let info = tok.info();
    assert_eq!(info.serial, "0102030405060708");
    assert_eq!(info.label, "GOST token");
    assert_eq!(info.flags & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(tok.apdu_count(), 6);
    // public key visible without login, private key after
    let pubs = find(&tok, CKO_PUBLIC_KEY);
    assert_eq!(pubs.len(), 1);
    assert!(find(&tok, CKO_PRIVATE_KEY).is_empty());
    let a = tok
        .get_attributes(
            &s(),
            pubs[0],
            &[
                CKA_KEY_TYPE,
                CKA_GOSTR3410_PARAMS,
                CKA_GOSTR3411_PARAMS,
                CKA_VALUE,
            ],
        )
        .unwrap();
    let v = |i: usize| match &a[i] {
        token_api::AttrRead::Value(v) => v.to_vec(),
        o => panic!("{o:?}"),
    };
    assert_eq!(v(0), CKK_GOSTR3410.to_ne_bytes().to_vec());
    assert_eq!(
        v(1),
        vec![
            0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01, 0x02
        ]
    );
    assert_eq!(
        v(2),
        vec![0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02]
    );
    assert_eq!(v(3), (1..=64).collect::<Vec<u8>>());
    // repeated enumeration: no APDU
    for _ in 0..5 {
        tok.find_objects(&s(), &Template::new()).unwrap();
    }
    assert_eq!(tok.apdu_count(), 6);
    tok.login(UserType::User, Some(&Pin::new(b"12345678")))
        .unwrap();
    let keys = find(&tok, CKO_PRIVATE_KEY);
    assert_eq!(keys.len(), 1);
    let mut op = tok
        .sign_init(
            &s(),
            &Mechanism::new(token_api::ck::CKM_GOSTR3410_WITH_GOSTR3411_12_256),
            keys[0],
        )
        .unwrap();
    assert!(op.multipart());
    op.update(b"0123456789012345678901234567890").unwrap();
    op.update(b"12345678901234567890123456789012").unwrap();
    let sig = op.finish().unwrap();
    assert_eq!(sig, [vec![0x11; 32], vec![0x22; 32]].concat());
    assert_eq!(check.remaining(), 0);
    // the 512-bit mechanism does not fit a 256-bit key
    assert_eq!(
        tok.sign_init(
            &s(),
            &Mechanism::new(token_api::ck::CKM_GOSTR3410_512),
            keys[0]
        )
        .err()
        .map(|e| e.rv()),
        Some(CKR_KEY_TYPE_INCONSISTENT)
    );
    // the PIN never reached a log line, not even the trace of the VERIFY APDU
    let lines = LOG.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("00 20 00 01 10 <16 bytes masked>"))
    );
    for l in &lines {
        // (the fake public key 01..40 contains 31..38 in a response line: commands only)
        if l.starts_with("APDU >") {
            assert!(!l.contains("3132333435363738"), "PIN in a log line: {l}");
        }
        assert!(!l.contains("12345678"), "PIN in a log line: {l}");
    }
}

#[test]
fn gost_wrong_pins_count_down_to_locked() {
    let (check, tok) = replay("gost/wrong-pin-lockout.apdu");
    // 63C2 at start: fewer tries than the card's maximum of 10
    assert!(tok.info().flags & CKF_USER_PIN_COUNT_LOW != 0);
    let wrong = Pin::new(b"0000");
    let e = tok.login(UserType::User, Some(&wrong)).unwrap_err();
    assert_eq!(e.rv(), CKR_PIN_INCORRECT);
    assert!(tok.info().flags & CKF_USER_PIN_FINAL_TRY != 0);
    let e = tok.login(UserType::User, Some(&wrong)).unwrap_err();
    assert_eq!(e.rv(), CKR_PIN_INCORRECT);
    assert!(tok.info().flags & CKF_USER_PIN_LOCKED != 0);
    let e = tok.login(UserType::User, Some(&wrong)).unwrap_err();
    assert_eq!(e.rv(), CKR_PIN_LOCKED);
    assert_eq!(check.remaining(), 0);
    assert_eq!(tok.login_state(), None);
}

#[test]
fn reset_and_removal_in_the_middle() {
    // A hand-made PIV-like session: SELECT fails for PIV → GOST probe answers 9000.
    let trace = "\
# card: synthetic (hand-written): reset by another program, then removal
atr 3B8C80014B4C595543482D474F5354311E
> 00 A4 04 0C 0B D64300004B4C59474F5354
< 9000
> 00 CA 01 81 00
< 0102030405060708 9000
> 00 A4 02 04 02 4B01 00
< 620A8002005582010183024B01 9000
> 00 B0 00 00 55
< A05384010180010106092A850307010201010286400102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F40 9000
> 00 A4 02 04 02 CE01 00
< 6A82
> 00 20 00 01
< 63CA
> 00 20 00 01 10 <16 bytes masked>
< 9000
! reset
# after the reset: select again (login dropped, the signature is refused)
> 00 A4 04 0C 0B D64300004B4C59474F5354
< 9000
! removed
";
    let conn = ReplayConnection::parse(trace).unwrap();
    let tok = CardToken::open(Box::new(conn), "replay", TokenOptions::default()).unwrap();
    tok.login(UserType::User, Some(&Pin::new(b"12345678")))
        .unwrap();
    let key = find(&tok, CKO_PRIVATE_KEY)[0];
    let mut op = tok
        .sign_init(&s(), &Mechanism::new(CKM_GOSTR3410), key)
        .unwrap();
    let e = op.sign(&[5u8; 32]).unwrap_err();
    assert_eq!(e.rv(), CKR_USER_NOT_LOGGED_IN, "{e}");
    assert_eq!(tok.login_state(), None);
    assert!(tok.alive());
    // now the card is pulled
    let e = tok
        .login(UserType::User, Some(&Pin::new(b"12345678")))
        .unwrap_err();
    assert_eq!(e.rv(), CKR_DEVICE_REMOVED);
    assert!(!tok.alive());
}

#[test]
fn unknown_cards_get_an_unsupported_token() {
    let trace = "\
# card: synthetic ISO 7816 card without PIV or the GOST application (hand-written)
atr 3B9513810180 73FF01000B
> 00 A4 04 00 09 A00000030800001000 00
< 6A82
> 00 A4 04 0C 0B D64300004B4C59474F5354
< 6A82
";
    let conn = ReplayConnection::parse(trace).unwrap();
    let check = conn.handle();
    let tok = CardToken::open(Box::new(conn), "replay", TokenOptions::default()).unwrap();
    assert_eq!(tok.info().label, "unsupported card");
    assert!(tok.find_objects(&s(), &Template::new()).unwrap().is_empty());
    assert!(tok.mechanism_list().is_empty());
    assert_eq!(check.remaining(), 0);
    assert_eq!(
        CardError::Sw(Sw::NotFound).rv(),
        CKR_DEVICE_ERROR,
        "a missing file is a device error, not a crash"
    );
}

#[test]
fn piv_recorded_open_login_sign() {
    let (check, tok) = replay("piv/open-login-sign.apdu");
    assert_eq!(tok.profile_name(), "piv");
    assert_eq!(tok.apdu_count(), 11);
    let certs = find(&tok, CKO_CERTIFICATE);
    assert_eq!(certs.len(), 2);
    let labels: Vec<Vec<u8>> = certs
        .iter()
        .map(
            |&c| match tok.get_attributes(&s(), c, &[CKA_LABEL]).unwrap().remove(0) {
                token_api::AttrRead::Value(v) => v.to_vec(),
                o => panic!("{o:?}"),
            },
        )
        .collect();
    assert!(labels.contains(&b"Certificate for PIV Authentication".to_vec()));
    assert!(labels.contains(&b"Certificate for Digital Signature".to_vec()));
    assert_eq!(
        tok.login(UserType::User, Some(&Pin::new(b"000000")))
            .unwrap_err()
            .rv(),
        CKR_PIN_INCORRECT
    );
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    t.set(CKA_ID, vec![1]);
    let key = tok.find_objects(&s(), &t).unwrap()[0];
    let mut op = tok
        .sign_init(&s(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
        .unwrap();
    let sig = op.sign(b"klyuch signs on the card").unwrap();
    assert_eq!(sig.len(), 256);
    assert_eq!(check.remaining(), 0);
    assert_eq!(tok.apdu_count(), 11 + 2 + 3);
}

/// Found by fuzz/fuzz_targets/card_answers.rs: a GOST token whose key directory FCP gives the
/// file size in six bytes made the host allocate 93 TB and abort. A size the card cannot mean
/// (more than two bytes, or beyond READ BINARY's 15-bit offsets) is now refused as malformed.
#[test]
fn a_card_claiming_a_huge_file_is_refused_not_believed() {
    let h = |s: &str| hex::decode(s.replace(' ', "")).unwrap();
    for fcp in [
        // 80 06 00 55 82 01 01 83: six size bytes, as the fuzzer's card sent (367 GB)
        "62 08 80 06 005582010183 9000",
        // 80 02 90 00: two bytes, but beyond offset 7FFF
        "62 0B 80 02 9000 82 01 01 83 02 4B01 9000",
    ] {
        let conn = ReplayConnection::answering(
            h("3B8C80014B4C595543482D474F5354311E"),
            vec![h("9000"), h("0102030405060708 9000"), h(fcp)],
        );
        match CardToken::open(Box::new(conn), "replay", TokenOptions::default()) {
            Err(e) => assert_eq!(e.rv(), CKR_DEVICE_ERROR, "{fcp}: {e}"),
            Ok(t) => assert!(find(&t, CKO_PRIVATE_KEY).is_empty(), "{fcp}"),
        }
    }
}
