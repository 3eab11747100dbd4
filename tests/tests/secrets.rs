//! Secrets (issue 7, item 4), through the built module:
//!
//! * a full session (init token, init PIN, a wrong PIN, login, key import with known values and
//!   generation, signing, encryption, wrapping, C_SetPIN) at `KLYUCH_LOG=trace` with
//!   `KLYUCH_LOG_FILE`: the log holds none of the PINs and none of the key bytes (raw, hex in
//!   either case, hex with spaces as APDU traces print it), and neither do the store's files;
//! * private and secret key values never leave the module in the clear: sensitive or
//!   unextractable values are `CKR_ATTRIBUTE_SENSITIVE`, unextractable keys cannot be wrapped,
//!   extractable ones leave only wrapped.

use std::path::Path;

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use klyuch_tests::{pin, rv, Fixture};

// PINs nobody would log by accident: any trace of them is a leak.
const SO: &str = "So-Pin-Qx7#41";
const USER: &str = "Usr-Pin-Wz3!";
const WRONG: &str = "Wrong-Pin-Zt5";
const NEW_USER: &str = "New-Pin-Kp9$";

/// AES-256 key of NIST SP 800-38A, F.5.5 (CTR-AES256).
const AES_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
/// P-256 private key of RFC 6979, A.2.5.
const EC_D: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
/// Ed25519 secret key of RFC 8032, 7.1 TEST 1.
const ED_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// The private key d of GOST R 34.10-2012 Appendix A.1 (big-endian; CKA_VALUE is little-endian),
/// used with the CryptoPro-A parameters (d < q there too).
const GOST_D: &str = "7a929ade789bb9be10ed359dd39a72c11b60961f49397eee1d19ce9891ec3b28";

/// Keys that must be refused, whose bytes must not show up in the error messages either: the
/// P-256 group order n (FIPS 186-4 D.1.2.3; a private key must be below it) and an AES key of
/// 31 bytes.
const BAD_EC_D: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const BAD_AES: &str = "5e3a91c07d4b28f6e1a09c3b57d28e4f6a1b0c9d8e7f60514233241506f7e8";

/// DER OIDs: P-256 1.2.840.10045.3.1.7 (RFC 5480), Ed25519 1.3.101.112 (RFC 8410),
/// id-GostR3410-2001-CryptoPro-A-ParamSet 1.2.643.2.2.35.1 (RFC 4357 §10.2).
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const CP_A: &[u8] = &[0x06, 0x07, 0x2a, 0x85, 0x03, 0x02, 0x02, 0x23, 0x01];
/// PKCS#11 3.0 / TC26 vendor values (gost-pkcs11.md): CKA_GOSTR3410_PARAMS,
/// CKM_GOSTR3410_WITH_GOSTR3411_12_256.
const CKA_GOSTR3410_PARAMS: u64 = 0x250;
const CKM_GOSTR3410_WITH_GOSTR3411_12_256: u64 = 0xD432_1008;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn find_one(s: &Session, class: ObjectClass, label: &str) -> ObjectHandle {
    let found = s
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "{label}");
    found[0]
}

fn private_key(s: &Session, label: &str, kt: KeyType, extra: Vec<Attribute>) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(kt),
        Attribute::Token(true),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    t.extend(extra);
    s.create_object(&t)
        .unwrap_or_else(|e| panic!("import {label}: {e}"))
}

/// Every byte string that would be a leak, with a name: the PINs, and each key in raw bytes,
/// lower and upper hex, and upper hex with spaces.
fn needles(keys: &[(&str, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for p in [SO, USER, WRONG, NEW_USER] {
        out.push((format!("PIN {p}"), p.as_bytes().to_vec()));
    }
    for (name, k) in keys {
        let lower = hex::encode(k);
        let upper = lower.to_uppercase();
        let spaced = k
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        out.push((format!("{name} (raw)"), k.clone()));
        // Half of the key is enough to count as a leak.
        out.push((format!("{name} (raw, half)"), k[..k.len() / 2].to_vec()));
        for (how, text) in [("hex", lower), ("HEX", upper), ("spaced hex", spaced)] {
            out.push((
                format!("{name} ({how})"),
                text.as_bytes()[..text.len() / 2].to_vec(),
            ));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn a_trace_log_of_a_full_session_holds_no_pin_and_no_key() {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("trace.log");
    // Before the module is loaded (the fixture loads it); nextest runs each test in its own
    // process, so nothing else sees these.
    std::env::set_var("KLYUCH_LOG", "trace");
    std::env::set_var("KLYUCH_LOG_FILE", &log);
    let mut f = Fixture::new();
    let p = f.p11().clone();
    let slot = f.empty_slot();
    p.init_token(slot, &pin(SO), "secrets").unwrap();
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO))).unwrap();
    s.init_pin(&pin(USER)).unwrap();
    s.logout().unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(WRONG)))),
        cryptoki::error::RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&pin(USER))).unwrap();

    // Imported keys with known values.
    let aes = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Label(b"aes".to_vec()),
            Attribute::Value(h(AES_KEY)),
        ])
        .unwrap();
    let ec = private_key(
        &s,
        "ec",
        KeyType::EC,
        vec![
            Attribute::EcParams(P256.to_vec()),
            Attribute::Value(h(EC_D)),
        ],
    );
    let ed = private_key(
        &s,
        "ed",
        KeyType::EC_EDWARDS,
        vec![
            Attribute::EcParams(ED25519.to_vec()),
            Attribute::Value(h(ED_SEED)),
        ],
    );
    let mut gost_le = h(GOST_D);
    gost_le.reverse();
    let gost = private_key(
        &s,
        "gost",
        KeyType::GOSTR3410,
        vec![
            Attribute::VendorDefined((
                AttributeType::VendorDefined(CKA_GOSTR3410_PARAMS),
                CP_A.to_vec(),
            )),
            Attribute::Value(gost_le.clone()),
        ],
    );
    // A generated RSA key that may be read (not sensitive, extractable), so its private parts
    // are known to this test too.
    let (_, rsa) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Sign(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Label(b"rsa".to_vec()),
            ],
        )
        .unwrap();
    let rsa_parts: Vec<(&str, Vec<u8>)> = [
        ("RSA d", AttributeType::PrivateExponent),
        ("RSA p", AttributeType::Prime1),
        ("RSA q", AttributeType::Prime2),
    ]
    .into_iter()
    .map(
        |(name, ty)| match &s.get_attributes(rsa, &[ty]).unwrap()[..] {
            [Attribute::PrivateExponent(v)] | [Attribute::Prime1(v)] | [Attribute::Prime2(v)] => {
                (name, v.clone())
            }
            other => panic!("{name}: {other:?}"),
        },
    )
    .collect();

    // Refused imports: their values must not be in the error messages.
    assert!(s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::EcParams(P256.to_vec()),
            Attribute::Value(h(BAD_EC_D)),
        ])
        .is_err());
    assert!(s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(h(BAD_AES)),
        ])
        .is_err());

    // Use them all.
    s.sign(&Mechanism::EcdsaSha256, ec, b"msg").unwrap();
    s.sign(
        &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
        ed,
        b"msg",
    )
    .unwrap();
    s.sign(
        &Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            MechanismType::new_vendor_defined(CKM_GOSTR3410_WITH_GOSTR3411_12_256).unwrap(),
            None,
        )),
        gost,
        b"msg",
    )
    .unwrap();
    s.sign(&Mechanism::Sha256RsaPkcs, rsa, b"msg").unwrap();
    s.encrypt(&Mechanism::AesEcb, aes, &[0u8; 16]).unwrap();
    // A session key, extractable, leaves wrapped under the AES key and comes back.
    let session_key = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Extractable(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    let wrapped = s
        .wrap_key(&Mechanism::AesKeyWrap, aes, session_key)
        .unwrap();
    s.unwrap_key(
        &Mechanism::AesKeyWrap,
        aes,
        &wrapped,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Encrypt(true),
        ],
    )
    .unwrap();
    s.set_pin(&pin(USER), &pin(NEW_USER)).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin(NEW_USER))).unwrap();
    find_one(&s, ObjectClass::PRIVATE_KEY, "gost");
    drop(s);
    if let Some(p) = f.pkcs11.take() {
        p.finalize().unwrap();
    }

    let text = std::fs::read(&log).expect("the trace log");
    if std::env::var_os("KLYUCH_SHOW_LOG").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&text));
    }
    let lines = text.split(|&b| b == b'\n').count();
    assert!(
        contains(&text, b"C_Login") && contains(&text, b"C_SetPIN"),
        "the log does not trace the calls ({lines} lines)"
    );
    let mut keys: Vec<(&str, Vec<u8>)> = vec![
        ("AES key", h(AES_KEY)),
        ("EC d", h(EC_D)),
        ("Ed25519 seed", h(ED_SEED)),
        ("GOST d", h(GOST_D)),
        ("GOST d (LE)", gost_le),
        ("refused EC d", h(BAD_EC_D)),
        ("refused AES key", h(BAD_AES)),
    ];
    keys.extend(rsa_parts);
    let needles = needles(&keys);
    for (name, needle) in &needles {
        assert!(!contains(&text, needle), "the trace log holds {name}");
    }
    // Nor do the store's files (everything there is sealed or wrapped).
    let mut files = Vec::new();
    files_under(&f.store(), &mut files);
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for (name, needle) in &needles {
            assert!(!contains(&bytes, needle), "{} holds {name}", file.display());
        }
    }
    eprintln!(
        "{lines} log lines and {} store files checked for {} secrets",
        files.len(),
        needles.len()
    );
}

#[test]
fn private_values_never_leave_in_the_clear() {
    let f = Fixture::new();
    let slot = f.init_token("sensitive");
    let s = f.user_session(slot);
    let is_sensitive = |h, ty| {
        matches!(
            s.get_attribute_info(h, &[ty]).unwrap()[..],
            [AttributeInfo::Sensitive]
        )
    };

    // Generated with the defaults: sensitive and unextractable.
    let (_, rsa) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    for ty in [
        AttributeType::PrivateExponent,
        AttributeType::Prime1,
        AttributeType::Prime2,
        AttributeType::Exponent1,
        AttributeType::Exponent2,
        AttributeType::Coefficient,
    ] {
        assert!(is_sensitive(rsa, ty), "RSA {ty:?}");
    }
    // The public parts stay readable.
    assert!(matches!(
        s.get_attribute_info(rsa, &[AttributeType::Modulus])
            .unwrap()[..],
        [AttributeInfo::Available(256)]
    ));
    let (_, ec) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec())],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )
        .unwrap();
    assert!(is_sensitive(ec, AttributeType::Value), "EC CKA_VALUE");
    // Imported: sensitive because asked, or unextractable though not sensitive.
    let imported = private_key(
        &s,
        "imported",
        KeyType::EC,
        vec![
            Attribute::EcParams(P256.to_vec()),
            Attribute::Value(h(EC_D)),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
        ],
    );
    assert!(is_sensitive(imported, AttributeType::Value));
    let aes = |sens: bool, extr: bool| {
        s.create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Sensitive(sens),
            Attribute::Extractable(extr),
            Attribute::Encrypt(true),
            Attribute::Wrap(true),
            Attribute::Value(h(AES_KEY)),
        ])
        .unwrap()
    };
    let unextractable = aes(false, false);
    assert!(is_sensitive(unextractable, AttributeType::Value));
    let sensitive_extractable = aes(true, true);
    assert!(is_sensitive(sensitive_extractable, AttributeType::Value));
    // Neither sensitive nor unextractable: the spec lets it be read.
    let open = aes(false, true);
    assert_eq!(
        s.get_attributes(open, &[AttributeType::Value]).unwrap(),
        vec![Attribute::Value(h(AES_KEY))]
    );

    // Unextractable keys cannot be wrapped; extractable ones leave only wrapped.
    let kek = aes(true, false);
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, kek, unextractable)),
        cryptoki::error::RvError::KeyUnextractable
    );
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, kek, rsa)),
        cryptoki::error::RvError::KeyUnextractable
    );
    let wrapped = s
        .wrap_key(&Mechanism::AesKeyWrap, kek, sensitive_extractable)
        .unwrap();
    assert_eq!(wrapped.len(), 40, "RFC 3394: the key plus 8 bytes");
    assert!(
        !contains(&wrapped, &h(AES_KEY)[..8]),
        "wrapped, not in the clear"
    );
    // Sensitivity cannot be dropped afterwards.
    assert!(s
        .update_attributes(sensitive_extractable, &[Attribute::Sensitive(false)])
        .is_err());
    assert!(s
        .update_attributes(unextractable, &[Attribute::Extractable(true)])
        .is_err());
    let copy = s.copy_object(sensitive_extractable, &[Attribute::Sensitive(false)]);
    assert!(copy.is_err(), "a copy cannot drop CKA_SENSITIVE");
}
