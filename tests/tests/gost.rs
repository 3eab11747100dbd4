//! GOST R 34.10-2012 / 34.11-2012 through the built module, byte-exact with OpenSSL 3 and its
//! GOST engine (Debian `libengine-gost-openssl`), OpenSC's pkcs11-tool and the R 50.1.113-2016
//! vectors: keys made in Klyuch sign and OpenSSL verifies; keys made by OpenSSL are imported
//! (C_CreateObject, `klyuch import` of PKCS#8 and GOST PKCS#12) and sign in Klyuch; OpenSSL's
//! signatures verify in Klyuch and fail after one flipped bit; Streebog digests equal OpenSSL's;
//! HMAC and VKO give the standard's values; OpenSSL's GOST certificates carry the key object's
//! public key; every bad input gets the spec's code. Tests skip (`SKIPPED:`) without openssl,
//! its GOST engine or pkcs11-tool.

use std::path::Path;

use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use klyuch_tests::{module_path, require, text, Fixture, USER_PIN};

// PKCS#11 / TC26 numbers (gost-pkcs11.md §1).
const CKA_GOSTR3410_PARAMS: u64 = 0x250;
const CKK_GOSTR3410: u64 = 0x30;
const CKK_GOSTR3410_512: u64 = 0xD432_1003;
const CKM_GOSTR3410_512_KEY_PAIR_GEN: u64 = 0xD432_1005;
const CKM_GOSTR3410_512: u64 = 0xD432_1006;
const CKM_GOSTR3410_12_DERIVE: u64 = 0xD432_1007;
const CKM_GOSTR3410_WITH_GOSTR3411_12_256: u64 = 0xD432_1008;
const CKM_GOSTR3410_WITH_GOSTR3411_12_512: u64 = 0xD432_1009;
const CKM_GOSTR3411_12_256: u64 = 0xD432_1012;
const CKM_GOSTR3411_12_512: u64 = 0xD432_1013;
const CKM_GOSTR3411_12_256_HMAC: u64 = 0xD432_1014;
const CKM_GOSTR3411_12_512_HMAC: u64 = 0xD432_1015;
const CKD_NULL: u64 = 1;

/// DER OIDs (gost-pkcs11.md §2.3).
const TC26_512_A: &[u8] = &[
    0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x02, 0x01,
];
const TC26_512_C: &[u8] = &[
    0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x02, 0x03,
];
const TC26_512_TEST: &[u8] = &[
    0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x02, 0x00,
];
const CP_A: &[u8] = &[0x06, 0x07, 0x2A, 0x85, 0x03, 0x02, 0x02, 0x23, 0x01];

fn vendor(ty: u64) -> Mechanism<'static> {
    Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        MechanismType::new_vendor_defined(ty).unwrap(),
        None,
    ))
}

/// An attribute cryptoki has no variant for (the GOST domain parameters).
fn raw_attr(ty: u64, v: &[u8]) -> Attribute {
    Attribute::VendorDefined((AttributeType::VendorDefined(ty), v.to_vec()))
}

fn gost_key_type(bits: usize) -> KeyType {
    if bits == 512 {
        KeyType::new_vendor_defined(CKK_GOSTR3410_512).unwrap()
    } else {
        KeyType::GOSTR3410
    }
}

fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// Is OpenSSL's GOST engine usable?
fn gost_engine() -> bool {
    std::process::Command::new("openssl")
        .args(["engine", "-t", "gost"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("available")
        })
}

macro_rules! require_gost {
    () => {
        require!("openssl");
        if !gost_engine() {
            eprintln!("SKIPPED: OpenSSL's GOST engine is not installed (libengine-gost-openssl)");
            return;
        }
    };
}

/// `openssl ARGS` in the fixture folder; panics with the output on failure.
fn openssl(f: &Fixture, args: &[&str]) -> String {
    text(&f.run("openssl", args))
}

/// `openssl ARGS` that must fail.
fn openssl_fails(f: &Fixture, args: &[&str]) -> String {
    let o = f.command("openssl", args).output().unwrap();
    assert!(
        !o.status.success(),
        "openssl {args:?} succeeded: {}",
        text(&o)
    );
    text(&o)
}

fn find(s: &Session, class: ObjectClass, id: &[u8]) -> ObjectHandle {
    s.find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
        .unwrap()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {class:?} with id {}", hex::encode(id)))
}

fn attr(s: &Session, h: ObjectHandle, ty: AttributeType) -> Vec<u8> {
    match s.get_attributes(h, &[ty]).unwrap().pop() {
        Some(Attribute::PublicKeyInfo(v)) | Some(Attribute::Value(v)) => v,
        other => panic!("{other:?}"),
    }
}

/// The key's SPKI as PEM in `name.pem` (through `CKA_PUBLIC_KEY_INFO` and `openssl pkey`).
fn write_public_pem(f: &Fixture, s: &Session, h: ObjectHandle, name: &str) -> String {
    let spki = attr(s, h, AttributeType::PublicKeyInfo);
    assert!(!spki.is_empty());
    let der = f.path(&format!("{name}.der"));
    std::fs::write(&der, &spki).unwrap();
    let pem = format!("{name}.pem");
    openssl(
        f,
        &[
            "pkey",
            "-engine",
            "gost",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            &format!("{name}.der"),
            "-out",
            &pem,
        ],
    );
    pem
}

fn md(bits: usize) -> &'static str {
    if bits == 512 {
        "-md_gost12_512"
    } else {
        "-md_gost12_256"
    }
}

fn with_hash(bits: usize) -> Mechanism<'static> {
    vendor(if bits == 512 {
        CKM_GOSTR3410_WITH_GOSTR3411_12_512
    } else {
        CKM_GOSTR3410_WITH_GOSTR3411_12_256
    })
}

/// `openssl dgst -verify` of `sig` over `msg` with the public key `pem`.
fn openssl_verifies(f: &Fixture, bits: usize, pem: &str, msg: &str, sig: &[u8], name: &str) {
    std::fs::write(f.path(name), sig).unwrap();
    let out = openssl(
        f,
        &[
            "dgst",
            "-engine",
            "gost",
            md(bits),
            "-verify",
            pem,
            "-signature",
            name,
            msg,
        ],
    );
    assert!(out.contains("Verified OK"), "{out}");
    let mut bad = sig.to_vec();
    bad[sig.len() / 3] ^= 0x01;
    std::fs::write(f.path(name), &bad).unwrap();
    let out = openssl_fails(
        f,
        &[
            "dgst",
            "-engine",
            "gost",
            md(bits),
            "-verify",
            pem,
            "-signature",
            name,
            msg,
        ],
    );
    assert!(out.contains("Verification failure"), "{out}");
}

/// A 512-bit key pair generated in Klyuch through `CKM_GOSTR3410_512_KEY_PAIR_GEN`.
fn generate_512(s: &Session, paramset: &[u8], id: u8) -> (ObjectHandle, ObjectHandle) {
    let public = [
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::Id(vec![id]),
        raw_attr(CKA_GOSTR3410_PARAMS, paramset),
    ];
    let private = [
        Attribute::Token(false),
        Attribute::Sign(true),
        Attribute::Derive(true),
        Attribute::Id(vec![id]),
    ];
    s.generate_key_pair(&vendor(CKM_GOSTR3410_512_KEY_PAIR_GEN), &public, &private)
        .unwrap()
}

const MSG: &[u8] = "Заявление: прошу выдать справку.\n".as_bytes();

#[test]
fn klyuch_keys_sign_and_openssl_verifies() {
    require_gost!();
    let f = Fixture::new();
    let slot = f.init_token("gost-sign");
    let s = f.user_session(slot);
    std::fs::write(f.path("msg.txt"), MSG).unwrap();
    for (i, ps) in [TC26_512_A, TC26_512_C].into_iter().enumerate() {
        let (pubk, privk) = generate_512(&s, ps, i as u8 + 1);
        // public CKA_VALUE: X || Y, 64 bytes each
        assert_eq!(attr(&s, pubk, AttributeType::Value).len(), 128);
        let pem = write_public_pem(&f, &s, pubk, &format!("pub{i}"));
        // hash-and-sign, multi-part
        s.sign_init(&with_hash(512), privk).unwrap();
        s.sign_update(&MSG[..7]).unwrap();
        s.sign_update(&MSG[7..]).unwrap();
        let sig = s.sign_final().unwrap();
        assert_eq!(sig.len(), 128);
        openssl_verifies(&f, 512, &pem, "msg.txt", &sig, "sig.bin");
        // raw CKM_GOSTR3410_512 over OpenSSL's Streebog-512 digest; pkeyutl verifies
        openssl(
            &f,
            &[
                "dgst",
                "-engine",
                "gost",
                "-md_gost12_512",
                "-binary",
                "-out",
                "h.bin",
                "msg.txt",
            ],
        );
        let h = std::fs::read(f.path("h.bin")).unwrap();
        let raw = s.sign(&vendor(CKM_GOSTR3410_512), privk, &h).unwrap();
        std::fs::write(f.path("raw.sig"), &raw).unwrap();
        let out = openssl(
            &f,
            &[
                "pkeyutl", "-engine", "gost", "-verify", "-pubin", "-inkey", &pem, "-in", "h.bin",
                "-sigfile", "raw.sig",
            ],
        );
        assert!(out.contains("Signature Verified Successfully"), "{out}");
        // and Klyuch verifies its own signature with the public key object
        s.verify(&with_hash(512), pubk, MSG, &sig).unwrap();
    }
}

/// PrivateKeyInfo of OpenSSL's GOST engine: { 0, { key OID, { paramset, digest? } }, d_le }.
#[derive(der::Sequence)]
struct EnginePkcs8 {
    version: u8,
    algorithm: EngineAlg,
    private_key: OctetString,
}
#[derive(der::Sequence)]
struct EngineAlg {
    oid: ObjectIdentifier,
    params: EngineParams,
}
#[derive(der::Sequence)]
struct EngineParams {
    paramset: ObjectIdentifier,
    digest: Option<ObjectIdentifier>,
}

/// An OpenSSL GOST key: (private key PEM, its PKCS#8 parsed, public SPKI DER).
fn openssl_key(f: &Fixture, alg: &str, paramset: &str, name: &str) -> (EnginePkcs8, Vec<u8>) {
    let pem = format!("{name}.pem");
    openssl(
        f,
        &[
            "genpkey",
            "-engine",
            "gost",
            "-algorithm",
            alg,
            "-pkeyopt",
            &format!("paramset:{paramset}"),
            "-out",
            &pem,
        ],
    );
    openssl(
        f,
        &[
            "pkey",
            "-engine",
            "gost",
            "-in",
            &pem,
            "-outform",
            "DER",
            "-out",
            &format!("{name}.p8"),
        ],
    );
    openssl(
        f,
        &[
            "pkey",
            "-engine",
            "gost",
            "-in",
            &pem,
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &format!("{name}.spki"),
        ],
    );
    openssl(
        f,
        &[
            "pkey",
            "-engine",
            "gost",
            "-in",
            &pem,
            "-pubout",
            "-out",
            &format!("{name}.pub.pem"),
        ],
    );
    let p8 = EnginePkcs8::from_der(&std::fs::read(f.path(&format!("{name}.p8"))).unwrap()).unwrap();
    let spki = std::fs::read(f.path(&format!("{name}.spki"))).unwrap();
    (p8, spki)
}

#[test]
fn openssl_keys_imported_sign_and_openssl_signatures_verify() {
    require_gost!();
    let f = Fixture::new();
    let slot = f.init_token("gost-import");
    let s = f.user_session(slot);
    std::fs::write(f.path("msg.txt"), MSG).unwrap();
    // (engine algorithm, engine paramset name): CryptoPro-A, tc26-256-A (cofactor 4), tc26-256-B,
    // XchB, tc26-512-B, tc26-512-C (cofactor 4)
    let cases = [
        ("gost2012_256", "A", 256),
        ("gost2012_256", "TCA", 256),
        ("gost2012_256", "TCB", 256),
        ("gost2012_256", "XB", 256),
        ("gost2012_512", "B", 512),
        ("gost2012_512", "C", 512),
    ];
    for (i, (alg, ps, bits)) in cases.into_iter().enumerate() {
        let name = format!("k{i}");
        let (p8, spki) = openssl_key(&f, alg, ps, &name);
        let params = p8.algorithm.params.paramset.to_der().unwrap();
        let d_le = p8.private_key.as_bytes().to_vec();
        assert_eq!(d_le.len(), bits / 8);
        let id = vec![0x40 + i as u8];
        let privk = s
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(gost_key_type(bits)),
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Id(id.clone()),
                raw_attr(CKA_GOSTR3410_PARAMS, &params),
                Attribute::Value(d_le),
            ])
            .unwrap();
        // the public half Klyuch computes is OpenSSL's SPKI, byte for byte
        assert_eq!(
            attr(&s, privk, AttributeType::PublicKeyInfo),
            spki,
            "{alg} {ps}"
        );
        let xy = spki[spki.len() - bits / 4..].to_vec();
        let pubk = s
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(gost_key_type(bits)),
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::Id(id),
                raw_attr(CKA_GOSTR3410_PARAMS, &params),
                Attribute::Value(xy),
            ])
            .unwrap();
        // Klyuch signs, OpenSSL verifies
        let sig = s.sign(&with_hash(bits), privk, MSG).unwrap();
        openssl_verifies(
            &f,
            bits,
            &format!("{name}.pub.pem"),
            "msg.txt",
            &sig,
            "sig.bin",
        );
        // OpenSSL signs, Klyuch verifies; one flipped bit fails
        openssl(
            &f,
            &[
                "dgst",
                "-engine",
                "gost",
                md(bits),
                "-sign",
                &format!("{name}.pem"),
                "-out",
                "osig.bin",
                "msg.txt",
            ],
        );
        let osig = std::fs::read(f.path("osig.bin")).unwrap();
        s.verify(&with_hash(bits), pubk, MSG, &osig).unwrap();
        for bit in [0, osig.len() * 4, osig.len() * 8 - 1] {
            let mut bad = osig.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                rv(s.verify(&with_hash(bits), pubk, MSG, &bad)),
                RvError::SignatureInvalid
            );
        }
    }
}

#[test]
fn pkcs11_tool_generates_and_signs() {
    require!("pkcs11-tool");
    require_gost!();
    let f = Fixture::new();
    let slot = f.init_token("gost-tool");
    std::fs::write(f.path("msg.txt"), MSG).unwrap();
    let base = ["--token-label", "gost-tool", "--login", "--pin", USER_PIN];
    for (key_type, id, bits, mech) in [
        (
            "GOSTR3410-2012-256:B",
            "21",
            256,
            "GOSTR3410-WITH-GOSTR3411-12-256",
        ),
        (
            "GOSTR3410-2012-512:A",
            "22",
            512,
            "GOSTR3410-WITH-GOSTR3411-12-512",
        ),
    ] {
        let mut a = base.to_vec();
        a.extend([
            "--keypairgen",
            "--key-type",
            key_type,
            "--id",
            id,
            "--label",
            id,
        ]);
        f.pkcs11_tool(&a);
        let s = f.user_session(slot);
        let idb = hex::decode(id).unwrap();
        let pubk = find(&s, ObjectClass::PUBLIC_KEY, &idb);
        if bits == 256 {
            // pkcs11-tool's ":B" is the CryptoPro-A OID (the tc26-256-B curve), with the
            // Streebog-256 OID as CKA_GOSTR3411_PARAMS
            let list = text(&f.pkcs11_tool(&["--token-label", "gost-tool", "--list-objects"]));
            assert!(list.contains("PARAMS OID: 06072a850302022301"), "{list}");
        }
        let pem = write_public_pem(&f, &s, pubk, &format!("p{id}"));
        let mut a = base.to_vec();
        a.extend([
            "--sign", "-m", mech, "--id", id, "-i", "msg.txt", "-o", "t.sig",
        ]);
        f.pkcs11_tool(&a);
        let sig = std::fs::read(f.path("t.sig")).unwrap();
        assert_eq!(sig.len(), bits / 4);
        openssl_verifies(&f, bits, &pem, "msg.txt", &sig, "t2.sig");
        // raw: CKM_GOSTR3410 (0x1201) / CKM_GOSTR3410_512 over OpenSSL's digest
        openssl(
            &f,
            &[
                "dgst",
                "-engine",
                "gost",
                md(bits),
                "-binary",
                "-out",
                "h.bin",
                "msg.txt",
            ],
        );
        let raw_mech = if bits == 512 {
            "GOSTR3410_512"
        } else {
            "GOSTR3410"
        };
        let mut a = base.to_vec();
        a.extend([
            "--sign", "-m", raw_mech, "--id", id, "-i", "h.bin", "-o", "r.sig",
        ]);
        f.pkcs11_tool(&a);
        let out = openssl(
            &f,
            &[
                "pkeyutl", "-engine", "gost", "-verify", "-pubin", "-inkey", &pem, "-in", "h.bin",
                "-sigfile", "r.sig",
            ],
        );
        assert!(out.contains("Signature Verified Successfully"), "{out}");
    }
}

#[test]
fn streebog_digests_equal_openssl() {
    require_gost!();
    let f = Fixture::new();
    let slot = f.init_token("gost-digest");
    let s = f.user_session(slot);
    let mut x: u32 = 0x1234_5678;
    let big: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    for len in [0usize, 1, 63, 64, 65, 1 << 20] {
        let data = &big[..len];
        std::fs::write(f.path("d.bin"), data).unwrap();
        for (mech, opt) in [
            (CKM_GOSTR3411_12_256, "-md_gost12_256"),
            (CKM_GOSTR3411_12_512, "-md_gost12_512"),
        ] {
            openssl(
                &f,
                &[
                    "dgst", "-engine", "gost", opt, "-binary", "-out", "o.bin", "d.bin",
                ],
            );
            let want = std::fs::read(f.path("o.bin")).unwrap();
            assert_eq!(s.digest(&vendor(mech), data).unwrap(), want, "{len} {opt}");
            s.digest_init(&vendor(mech)).unwrap();
            for c in data.chunks(7777) {
                s.digest_update(c).unwrap();
            }
            assert_eq!(s.digest_final().unwrap(), want, "{len} {opt} multi-part");
        }
    }
}

fn le(be_hex: &str) -> Vec<u8> {
    let mut v = hex::decode(be_hex).unwrap();
    v.reverse();
    v
}

/// CK_GOSTR3410_DERIVE_PARAMS (TC26; gost-pkcs11.md §1.1).
#[repr(C)]
struct GostDeriveParams {
    kdf: std::os::raw::c_ulong,
    public_data: *const u8,
    public_data_len: std::os::raw::c_ulong,
    ukm: *const u8,
    ukm_len: std::os::raw::c_ulong,
}

#[test]
fn hmac_and_vko_vectors_through_the_module() {
    let f = Fixture::new();
    let slot = f.init_token("gost-vko");
    let s = f.user_session(slot);
    // R 50.1.113-2016 §A.1.1-A.1.2 (= RFC 7836 App. A.1) HMAC_GOSTR3411_2012_256/512
    let key = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Value(
                hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                    .unwrap(),
            ),
        ])
        .unwrap();
    let data = hex::decode("0126bdb87800af214341456563780100").unwrap();
    for (m, want) in [
        (
            CKM_GOSTR3411_12_256_HMAC,
            "a1aa5f7de402d7b3d323f2991c8d4534013137010a83754fd0af6d7cd4922ed9",
        ),
        (
            CKM_GOSTR3411_12_512_HMAC,
            "a59bab22ecae19c65fbde6e5f4e9f5d8549d31f037f9df9b905500e171923a773d5f1530f2ed7e964cb2eedc29e9ad2f3afe93b2814f79f5000ffc0366c251e6",
        ),
    ] {
        assert_eq!(hex::encode(s.sign(&vendor(m), key, &data).unwrap()), want);
        s.verify(&vendor(m), key, &data, &hex::decode(want).unwrap()).unwrap();
    }
    // R 50.1.113-2016 App. A.2 (= RFC 7836 App. B): tc26-512-A keys, UKM 1d80603c8544c727,
    // VKO_GOSTR3410_2012_256 = c9a9a773...c221, from both sides.
    let priv_a = "67b63ca4ac8d2bb32618d89296c7476dbeb9f9048496f202b1902cf2ce41dbc2f847712d960483458d4b380867f426c7ca0ff5782702dbc44ee8fc72d9ec90c9";
    let priv_b = "dbd09213a592da5bbfd8ed068cccccbbfbeda4feac96b9b4908591440b0714803b9eb763ef932266d4c0181a9b73eacf9013efc65ec07c888515f1b6f759c848";
    let pub_a = [
        le("a7c0adb12743c10c3c1beb97c8f631242f7937a1deb6bce5e664e49261baccd3f5dc56ec53b2abb90ca1eb703078ba546655a8b99f79188d2021ffaba4edb0aa"),
        le("5adb1c63a4e4465e0bbefd897fb9016475934cfa0f8c95f992ea402d47921f46382d00481b720314b19d8c878e75d81b9763358dd304b2ed3a364e07a3134691"),
    ]
    .concat();
    let pub_b = [
        le("51a6d54ee932d176e87591121cce5f395cb2f2f147114d95f463c8a7ed74a9fc5ecd2325a35fb6387831ea66bc3d2aa42ede35872cc75372073a71b983e12f19"),
        le("793bde5bf72840ad22b02a363ae4772d4a52fc08ba1a20f7458a222a13bf98b53be002d1973f1e398ce46c17da6d00d9b6d0076f8284dcc42e599b4c413b8804"),
    ]
    .concat();
    let ukm = hex::decode("1d80603c8544c727").unwrap();
    let secret = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    for (d, peer) in [(priv_a, &pub_b), (priv_b, &pub_a)] {
        let base = s
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(gost_key_type(512)),
                Attribute::Token(false),
                Attribute::Derive(true),
                raw_attr(CKA_GOSTR3410_PARAMS, TC26_512_A),
                Attribute::Value(le(d)),
            ])
            .unwrap();
        let params = GostDeriveParams {
            kdf: CKD_NULL as _,
            public_data: peer.as_ptr(),
            public_data_len: peer.len() as _,
            ukm: ukm.as_ptr(),
            ukm_len: ukm.len() as _,
        };
        let m = Mechanism::VendorDefined(VendorDefinedMechanism::new(
            MechanismType::new_vendor_defined(CKM_GOSTR3410_12_DERIVE).unwrap(),
            Some(&params),
        ));
        let k = s.derive_key(&m, base, &secret).unwrap();
        assert_eq!(
            hex::encode(attr(&s, k, AttributeType::Value)),
            "c9a9a77320e2cc559ed72dce6f47e2192ccea95fa648670582c054c0ef36c221"
        );
        // a peer key off the curve
        let mut off = peer.clone();
        off[5] ^= 1;
        let params = GostDeriveParams {
            public_data: off.as_ptr(),
            ..params
        };
        let m = Mechanism::VendorDefined(VendorDefinedMechanism::new(
            MechanismType::new_vendor_defined(CKM_GOSTR3410_12_DERIVE).unwrap(),
            Some(&params),
        ));
        assert_eq!(
            rv(s.derive_key(&m, base, &secret)),
            RvError::PublicKeyInvalid
        );
    }
}

#[test]
fn openssl_certificates_match_the_key_objects() {
    require_gost!();
    let f = Fixture::new();
    let slot = f.init_token("gost-cert");
    let s = f.user_session(slot);
    for (i, (alg, ps, bits)) in [("gost2012_256", "A", 256), ("gost2012_512", "A", 512)]
        .into_iter()
        .enumerate()
    {
        let name = format!("c{i}");
        let (p8, spki) = openssl_key(&f, alg, ps, &name);
        openssl(
            &f,
            &[
                "req",
                "-x509",
                "-new",
                "-engine",
                "gost",
                "-key",
                &format!("{name}.pem"),
                "-subj",
                "/CN=GOST test",
                "-days",
                "2",
                "-outform",
                "DER",
                "-out",
                &format!("{name}.cer"),
            ],
        );
        let cert = std::fs::read(f.path(&format!("{name}.cer"))).unwrap();
        let id = vec![0x60 + i as u8];
        let c = s
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
                Attribute::Token(false),
                Attribute::Id(id.clone()),
                Attribute::Subject(vec![0x30, 0x00]),
                Attribute::Value(cert),
            ])
            .unwrap();
        let k = s
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(gost_key_type(bits)),
                Attribute::Token(false),
                Attribute::Id(id),
                raw_attr(
                    CKA_GOSTR3410_PARAMS,
                    &p8.algorithm.params.paramset.to_der().unwrap(),
                ),
                Attribute::Value(p8.private_key.as_bytes().to_vec()),
            ])
            .unwrap();
        let cert_spki = attr(&s, c, AttributeType::PublicKeyInfo);
        assert_eq!(cert_spki, spki);
        assert_eq!(attr(&s, k, AttributeType::PublicKeyInfo), cert_spki);
    }
}

#[test]
fn bad_input_gets_the_spec_codes() {
    let f = Fixture::new();
    let slot = f.init_token("gost-bad");
    let s = f.user_session(slot);
    let gen = |ps: &[u8]| {
        s.generate_key_pair(
            &vendor(CKM_GOSTR3410_512_KEY_PAIR_GEN),
            &[Attribute::Token(false), raw_attr(CKA_GOSTR3410_PARAMS, ps)],
            &[Attribute::Token(false)],
        )
    };
    // a 256-bit set, the test set and an unknown OID with the 512-bit generator
    assert_eq!(rv(gen(CP_A)), RvError::DomainParamsInvalid);
    assert_eq!(rv(gen(TC26_512_TEST)), RvError::DomainParamsInvalid);
    let mut unknown = TC26_512_A.to_vec();
    *unknown.last_mut().unwrap() = 9;
    assert_eq!(rv(gen(&unknown)), RvError::DomainParamsInvalid);
    let (pub512, priv512) = gen(TC26_512_A).unwrap();
    let xy = attr(&s, pub512, AttributeType::Value);
    let create_pub = |kt: u64, ps: &[u8], v: &[u8]| {
        s.create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(if kt == CKK_GOSTR3410 {
                KeyType::GOSTR3410
            } else {
                KeyType::new_vendor_defined(kt).unwrap()
            }),
            Attribute::Token(false),
            raw_attr(CKA_GOSTR3410_PARAMS, ps),
            Attribute::Value(v.to_vec()),
        ])
    };
    let mut off = xy.clone();
    off[100] ^= 1;
    assert_eq!(
        rv(create_pub(CKK_GOSTR3410_512, TC26_512_A, &off)),
        RvError::PublicKeyInvalid
    );
    assert_eq!(
        rv(create_pub(CKK_GOSTR3410_512, TC26_512_A, &xy[..127])),
        RvError::AttributeValueInvalid
    );
    assert_eq!(
        rv(create_pub(CKK_GOSTR3410, TC26_512_A, &xy)),
        RvError::TemplateInconsistent
    );
    // a private key d = 0
    assert_eq!(
        rv(s.create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(gost_key_type(512)),
            Attribute::Token(false),
            raw_attr(CKA_GOSTR3410_PARAMS, TC26_512_A),
            Attribute::Value(vec![0; 64]),
        ])),
        RvError::AttributeValueInvalid
    );
    // raw 512: exactly 64 bytes in
    assert_eq!(
        rv(s.sign(&vendor(CKM_GOSTR3410_512), priv512, &[1u8; 63])),
        RvError::DataLenRange
    );
    // a 256-bit mechanism with a 512-bit key
    assert_eq!(
        rv(s.sign(&with_hash(256), priv512, MSG)),
        RvError::KeyTypeInconsistent
    );
    // signatures: wrong length, zero r and s, r and s >= q
    let sig = s.sign(&with_hash(512), priv512, MSG).unwrap();
    assert_eq!(
        rv(s.verify(&with_hash(512), pub512, MSG, &sig[..127])),
        RvError::SignatureLenRange
    );
    for bad in [vec![0u8; 128], vec![0xff; 128]] {
        assert_eq!(
            rv(s.verify(&with_hash(512), pub512, MSG, &bad)),
            RvError::SignatureInvalid
        );
    }
    // a 512-bit mechanism with a 256-bit key
    let k256 = s
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::GOSTR3410),
            Attribute::Token(false),
            raw_attr(CKA_GOSTR3410_PARAMS, CP_A),
            Attribute::Value(vec![7; 32]),
        ])
        .unwrap();
    assert_eq!(
        rv(s.sign(&with_hash(512), k256, MSG)),
        RvError::KeyTypeInconsistent
    );
    assert_eq!(
        rv(s.sign(&vendor(CKM_GOSTR3410_512), k256, &[1u8; 64])),
        RvError::KeyTypeInconsistent
    );
}

/// The `klyuch` tool next to the module (built by `cargo build --workspace`), if there.
fn klyuch_bin() -> Option<std::path::PathBuf> {
    let m = klyuch_tests::module_path();
    let dir = m.parent()?;
    [dir.join("klyuch"), dir.parent()?.join("klyuch")]
        .into_iter()
        .find(|p| p.exists())
}

fn klyuch(f: &Fixture, bin: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "--module".to_string(),
        klyuch_tests::module_path().display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    text(&f.run(bin.to_str().unwrap(), &refs))
}

#[test]
fn klyuch_import_pkcs8_then_csr() {
    require_gost!();
    let Some(bin) = klyuch_bin() else {
        eprintln!("SKIPPED: the klyuch tool is not built (cargo build -p klyuch)");
        return;
    };
    let f = Fixture::new();
    let slot = f.init_token("gost-cli");
    std::fs::write(f.path("msg.txt"), MSG).unwrap();
    // PKCS#8 PEM as the engine writes it
    let _ = openssl_key(&f, "gost2012_256", "A", "a");
    klyuch(
        &f,
        &bin,
        &[
            "--token", "gost-cli", "import", "a.pem", "--id", "a1", "--pin", USER_PIN,
        ],
    );
    let _ = openssl_key(&f, "gost2012_512", "B", "b");
    klyuch(
        &f,
        &bin,
        &[
            "--token", "gost-cli", "import", "b.pem", "--id", "b0", "--pin", USER_PIN,
        ],
    );
    let imported = [
        (vec![0xa1], 256, "a.pub.pem".to_string()),
        (vec![0xb0], 512, "b.pub.pem".to_string()),
    ];
    let s = f.user_session(slot);
    for (id, bits, pem) in &imported {
        let k = find(&s, ObjectClass::PRIVATE_KEY, id);
        let sig = s.sign(&with_hash(*bits), k, MSG).unwrap();
        openssl_verifies(&f, *bits, pem, "msg.txt", &sig, "sig.bin");
    }
    drop(s);
    // a request signed by the token key; OpenSSL's GOST engine checks it
    for id in ["a1", "b0"] {
        klyuch(
            &f,
            &bin,
            &[
                "--token",
                "gost-cli",
                "csr",
                "--id",
                id,
                "--subject",
                "/C=RU/CN=Иван Петров",
                "--pin",
                USER_PIN,
                "--out",
                "r.csr",
            ],
        );
        let out = openssl(
            &f,
            &[
                "req", "-engine", "gost", "-in", "r.csr", "-verify", "-noout",
            ],
        );
        assert!(out.contains("verify OK"), "{out}");
    }
}

#[test]
fn klyuch_import_gost_pkcs12() {
    require_gost!();
    let Some(bin) = klyuch_bin() else {
        eprintln!("SKIPPED: the klyuch tool is not built (cargo build -p klyuch)");
        return;
    };
    let f = Fixture::new();
    let slot = f.init_token("gost-p12");
    std::fs::write(f.path("msg.txt"), MSG).unwrap();
    let _ = openssl_key(&f, "gost2012_512", "B", "b");
    // PKCS#12 with GOST PBES2 (Kuznyechik / Magma CTR-ACPKM, GOST 28147-89) and the
    // Streebog-512 MAC, made by `openssl pkcs12 -engine gost -export`
    openssl(
        &f,
        &[
            "req",
            "-x509",
            "-new",
            "-engine",
            "gost",
            "-key",
            "b.pem",
            "-subj",
            "/CN=GOST p12",
            "-days",
            "2",
            "-out",
            "b.crt",
        ],
    );
    let mut ids = Vec::new();
    for (i, pbe) in ["kuznyechik-ctr-acpkm", "magma-ctr-acpkm", "gost89"]
        .into_iter()
        .enumerate()
    {
        let p12 = format!("b{i}.p12");
        openssl(
            &f,
            &[
                "pkcs12",
                "-engine",
                "gost",
                "-export",
                "-inkey",
                "b.pem",
                "-in",
                "b.crt",
                "-keypbe",
                pbe,
                "-certpbe",
                pbe,
                "-macalg",
                "md_gost12_512",
                "-passout",
                "pass:Пароль 1",
                "-out",
                &p12,
            ],
        );
        let id = format!("b{i}");
        klyuch(
            &f,
            &bin,
            &[
                "--token",
                "gost-p12",
                "import",
                &p12,
                "--id",
                &id,
                "--passphrase",
                "Пароль 1",
                "--pin",
                USER_PIN,
            ],
        );
        ids.push(hex::decode(&id).unwrap());
    }
    let s = f.user_session(slot);
    for id in &ids {
        let k = find(&s, ObjectClass::PRIVATE_KEY, id);
        let sig = s.sign(&with_hash(512), k, MSG).unwrap();
        openssl_verifies(&f, 512, "b.pub.pem", "msg.txt", &sig, "sig.bin");
    }
}

/// Issue 5, item 7, as a user does it with standard software: a GOST 2012-256 key generated on
/// the token by pkcs11-tool, a certificate for it from a GOST test CA (request by `klyuch csr`,
/// certificate by OpenSSL's GOST engine) written next to it; pkcs11-tool signs, OpenSSL verifies
/// with the certificate's key; `pkcs11-tool -O` and `p11tool --list-all` show the GOST objects.
/// (GnuTLS 3.7 cannot read GOST *public key* objects, "requested reading public key of
/// unsupported type 48", so p11tool lists the private key and the certificate only.)
#[test]
fn pkcs11_tool_and_p11tool_show_gost_objects_and_openssl_verifies_with_the_certificate() {
    require!("pkcs11-tool", "p11tool");
    require_gost!();
    let Some(bin) = klyuch_bin() else {
        eprintln!("SKIPPED: the klyuch tool is not built (cargo build -p klyuch)");
        return;
    };
    let f = Fixture::new();
    f.init_token("gost-std");
    std::fs::write(f.path("msg.txt"), MSG).unwrap();
    let base = ["--token-label", "gost-std", "--login", "--pin", USER_PIN];
    let tool = |args: &[&str]| text(&f.pkcs11_tool(&[&base[..], args].concat()));
    tool(&[
        "--keypairgen",
        "--key-type",
        "GOSTR3410-2012-256:B",
        "--id",
        "31",
        "--label",
        "gostkey",
    ]);
    // The certificate: a request signed on the token, a GOST CA (files) signs it.
    klyuch(
        &f,
        &bin,
        &[
            "--token",
            "gost-std",
            "csr",
            "--id",
            "31",
            "--subject",
            "/C=RU/O=Klyuch Test/CN=GOST Token Signer",
            "--pin",
            USER_PIN,
            "--out",
            "gost.csr",
        ],
    );
    let e = ["-engine", "gost"];
    openssl(
        &f,
        &[
            &["genpkey"],
            &e[..],
            &[
                "-algorithm",
                "gost2012_256",
                "-pkeyopt",
                "paramset:A",
                "-out",
                "ca.key",
            ],
        ]
        .concat(),
    );
    openssl(
        &f,
        &[
            &["req"],
            &e[..],
            &[
                "-new",
                "-x509",
                "-days",
                "30",
                "-key",
                "ca.key",
                "-md_gost12_256",
                "-subj",
                "/O=Klyuch Test/CN=Klyuch GOST Test CA",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &f,
        &[
            &["x509"],
            &e[..],
            &[
                "-req",
                "-in",
                "gost.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-md_gost12_256",
                "-out",
                "gost.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &f,
        &[
            "x509", "-in", "gost.pem", "-outform", "DER", "-out", "gost.der",
        ],
    );
    tool(&[
        "--write-object",
        "gost.der",
        "--type",
        "cert",
        "--id",
        "31",
        "--label",
        "gostkey",
    ]);
    let v = openssl(
        &f,
        &[&["verify"], &e[..], &["-CAfile", "ca.pem", "gost.pem"]].concat(),
    );
    assert!(v.contains("gost.pem: OK"), "{v}");

    // pkcs11-tool -O: both keys with their GOST key type and CKA_GOSTR3410_PARAMS (pkcs11-tool's
    // ":B" is the CryptoPro-A OID 1.2.643.2.2.35.1, i.e. the tc26-256-B curve), the 64-byte
    // public value, and the certificate with its subject.
    let list = tool(&["-O"]);
    for class in [
        "Private Key Object; GOSTR3410-2012-256",
        "Public Key Object; GOSTR3410-2012-256",
    ] {
        let block = list
            .split("\n")
            .skip_while(|l| !l.starts_with(class))
            .take_while(|l| l.starts_with(class) || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            block.contains("PARAMS OID: 06072a850302022301")
                && block.contains("label:      gostkey")
                && block.contains("ID:         31"),
            "{class}:\n{list}"
        );
    }
    assert!(
        list.contains("Certificate Object; type = X.509 cert")
            && list.contains("subject:    DN: C=RU, O=Klyuch Test, CN=GOST Token Signer"),
        "{list}"
    );

    // p11tool --list-all: the GOST certificate by its algorithm, and the private key.
    let out = f
        .command(
            "p11tool",
            &[
                "--provider",
                module_path().to_str().unwrap(),
                "--login",
                "--list-all",
                "pkcs11:token=gost-std",
            ],
        )
        .env("GNUTLS_PIN", USER_PIN)
        .output()
        .unwrap();
    let p11 = text(&out);
    assert!(out.status.success(), "{p11}");
    assert!(
        p11.contains("Type: X.509 Certificate (GOST R 34.10-2012-256)")
            && p11.contains("id=%31;object=gostkey;type=cert")
            && p11.contains("id=%31;object=gostkey;type=private"),
        "{p11}"
    );

    // pkcs11-tool signs (CKM_GOSTR3410_WITH_GOSTR3411_12_256), OpenSSL verifies with the
    // certificate's public key; a flipped bit fails.
    tool(&[
        "--sign",
        "-m",
        "GOSTR3410-WITH-GOSTR3411-12-256",
        "--id",
        "31",
        "-i",
        "msg.txt",
        "-o",
        "msg.sig",
    ]);
    let pubkey = openssl(
        &f,
        &[&["x509"], &e[..], &["-in", "gost.pem", "-pubkey", "-noout"]].concat(),
    );
    let pem: String = pubkey
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(f.path("cert.pub.pem"), pem).unwrap();
    let sig = std::fs::read(f.path("msg.sig")).unwrap();
    assert_eq!(sig.len(), 64);
    openssl_verifies(&f, 256, "cert.pub.pem", "msg.txt", &sig, "msg2.sig");
    println!(
        "checked: pkcs11-tool generated a GOST 2012-256 key; klyuch csr + a GOST CA (OpenSSL gost engine) made its certificate, written to the token; \
         pkcs11-tool -O shows the private and public GOSTR3410-2012-256 objects with PARAMS OID 06072a850302022301 and the certificate; \
         p11tool --list-all shows the X.509 Certificate (GOST R 34.10-2012-256) and the private key; \
         pkcs11-tool --sign -m GOSTR3410-WITH-GOSTR3411-12-256 verified by openssl dgst -engine gost with the certificate's key (a flipped bit fails)"
    );
}
