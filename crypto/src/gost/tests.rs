//! Unit tests of the GOST mechanisms (through the registry, as the soft token uses them).

use super::*;
use crate::registry::find;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Big-endian hex (as the standards print numbers) to little-endian bytes.
fn le(be_hex: &str) -> Vec<u8> {
    let mut v = h(be_hex);
    v.reverse();
    v
}

fn mech(ty: CK_MECHANISM_TYPE) -> &'static dyn MechanismImpl {
    find(ty).unwrap()
}

/// A fresh key pair through the key generation mechanism: (public, private).
fn keypair(paramset: &[u8]) -> (Arc<Key>, Arc<Key>) {
    let ps = ParamSet::from_oid(paramset).unwrap();
    let m = if ps.bits() == 512 {
        CKM_GOSTR3410_512_KEY_PAIR_GEN
    } else {
        CKM_GOSTR3410_KEY_PAIR_GEN
    };
    let mut pubt = Template::new();
    pubt.set(CKA_GOSTR3410_PARAMS, paramset.to_vec());
    let (mut p, mut s) = mech(m)
        .generate_key_pair(&MechParam::None, &pubt, &Template::new())
        .unwrap();
    p.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    s.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    (
        Arc::new(Key::from_attributes(&p).unwrap()),
        Arc::new(Key::from_attributes(&s).unwrap()),
    )
}

fn sign(m: CK_MECHANISM_TYPE, k: &Arc<Key>, data: &[u8]) -> Result<Vec<u8>> {
    mech(m).sign_init(k.clone(), &MechParam::None)?.sign(data)
}

fn verify(m: CK_MECHANISM_TYPE, k: &Arc<Key>, data: &[u8], sig: &[u8]) -> Result<()> {
    mech(m)
        .verify_init(k.clone(), &MechParam::None)?
        .verify(data, sig)
}

const CP_A: &[u8] = &[0x06, 0x07, 0x2A, 0x85, 0x03, 0x02, 0x02, 0x23, 0x01];
const TC26_256_B: &[u8] = &[
    0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01, 0x02,
];
const TC26_512_A: &[u8] = &[
    0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x02, 0x01,
];

#[test]
fn mechanisms_are_registered_with_truthful_info() {
    let cases: &[(CK_MECHANISM_TYPE, CK_ULONG, CK_ULONG, CK_FLAGS)] = &[
        (CKM_GOSTR3410_KEY_PAIR_GEN, 256, 256, CKF_GENERATE_KEY_PAIR),
        (
            CKM_GOSTR3410_512_KEY_PAIR_GEN,
            512,
            512,
            CKF_GENERATE_KEY_PAIR,
        ),
        (CKM_GOSTR3410, 256, 256, CKF_SIGN | CKF_VERIFY),
        (CKM_GOSTR3410_512, 512, 512, CKF_SIGN | CKF_VERIFY),
        (
            CKM_GOSTR3410_WITH_GOSTR3411_12_256,
            256,
            256,
            CKF_SIGN | CKF_VERIFY,
        ),
        (
            CKM_GOSTR3410_WITH_GOSTR3411_12_512,
            512,
            512,
            CKF_SIGN | CKF_VERIFY,
        ),
        (CKM_GOSTR3411_12_256, 0, 0, CKF_DIGEST),
        (CKM_GOSTR3411_12_512, 0, 0, CKF_DIGEST),
        (CKM_GOSTR3411_12_256_HMAC, 1, 4096, CKF_SIGN | CKF_VERIFY),
        (CKM_GOSTR3411_12_512_HMAC, 1, 4096, CKF_SIGN | CKF_VERIFY),
        (CKM_GOSTR3410_12_DERIVE, 256, 512, CKF_DERIVE),
    ];
    for &(ty, min, max, flags) in cases {
        let i = mech(ty).info();
        assert_eq!(
            (i.min_key_size, i.max_key_size, i.flags),
            (min, max, flags),
            "{ty:#x}"
        );
    }
    assert_eq!(
        crate::hash_then_sign(CKM_GOSTR3410_WITH_GOSTR3411_12_512),
        Some((CKM_GOSTR3411_12_512, CKM_GOSTR3410_512))
    );
}

/// Streebog M1 (GOST R 34.11-2012 App. A example 1) and the empty message, in memory order
/// (gost-pkcs11.md §5), single- and multi-part.
#[test]
fn streebog_vectors() {
    let m1 = b"012345678901234567890123456789012345678901234567890123456789012";
    let cases = [
        (
            CKM_GOSTR3411_12_256,
            &m1[..],
            "9d151eefd8590b89daa6ba6cb74af9275dd051026bb149a452fd84e5e57b5500",
        ),
        (
            CKM_GOSTR3411_12_512,
            &m1[..],
            "1b54d01a4af5b9d5cc3d86d68d285462b19abc2475222f35c085122be4ba1ffa00ad30f8767b3a82384c6574f024c311e2a481332b08ef7f41797891c1646f48",
        ),
        (
            CKM_GOSTR3411_12_256,
            &b""[..],
            "3f539a213e97c802cc229d474c6aa32a825a360b2a933a949fd925208d9ce1bb",
        ),
    ];
    for (m, data, want) in cases {
        let mut op = mech(m).digest_init(&MechParam::None).unwrap();
        for c in data.chunks(10) {
            op.update(c).unwrap();
        }
        assert_eq!(op.digest_len(), want.len() / 2);
        assert_eq!(hex::encode(op.finish().unwrap()), want);
        assert_eq!(op.finish().unwrap_err().rv(), CKR_OPERATION_NOT_INITIALIZED);
    }
    // the OID parameter is accepted when it names this hash
    let p = MechParam::Bytes(klyuch_gost::oid::GOST3411_12_256.to_vec());
    assert!(mech(CKM_GOSTR3411_12_256).digest_init(&p).is_ok());
    assert_eq!(
        mech(CKM_GOSTR3411_12_512)
            .digest_init(&p)
            .err()
            .unwrap()
            .rv(),
        CKR_MECHANISM_PARAM_INVALID
    );
}

/// R 50.1.113-2016 §A.1.1-A.1.2 (= RFC 7836 App. A.1.1-A.1.2) HMAC vectors.
#[test]
fn hmac_streebog_vectors() {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    t.set_ulong(CKA_KEY_TYPE, CKK_GOST28147);
    t.set(
        CKA_VALUE,
        h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
    );
    let key = Arc::new(Key::from_attributes(&t).unwrap());
    let data = h("0126bdb87800af214341456563780100");
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
        let mut op = mech(m).sign_init(key.clone(), &MechParam::None).unwrap();
        op.update(&data[..5]).unwrap();
        op.update(&data[5..]).unwrap();
        assert_eq!(hex::encode(op.finish().unwrap()), want);
        verify(m, &key, &data, &h(want)).unwrap();
        let mut bad = h(want);
        bad[3] ^= 0x10;
        assert_eq!(
            verify(m, &key, &data, &bad).unwrap_err().rv(),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            verify(m, &key, &data, &bad[1..]).unwrap_err().rv(),
            CKR_SIGNATURE_LEN_RANGE
        );
    }
    // an AES key is not an HMAC-Streebog key
    t.set_ulong(CKA_KEY_TYPE, CKK_AES);
    let aes = Arc::new(Key::from_attributes(&t).unwrap());
    assert_eq!(
        mech(CKM_GOSTR3411_12_256_HMAC)
            .sign_init(aes, &MechParam::None)
            .err()
            .unwrap()
            .rv(),
        CKR_KEY_TYPE_INCONSISTENT
    );
}

#[test]
fn sign_verify_round_trips_and_tampering() {
    for ps in [CP_A, TC26_256_B, TC26_512_A] {
        let (pubk, privk) = keypair(ps);
        let bits = privk.size();
        let (raw, with) = if bits == 512 {
            (CKM_GOSTR3410_512, CKM_GOSTR3410_WITH_GOSTR3411_12_512)
        } else {
            (CKM_GOSTR3410, CKM_GOSTR3410_WITH_GOSTR3411_12_256)
        };
        let msg = b"a message to sign";
        // multi-part hash-and-sign
        let mut op = mech(with)
            .sign_init(privk.clone(), &MechParam::None)
            .unwrap();
        assert!(op.multipart());
        op.update(&msg[..4]).unwrap();
        op.update(&msg[4..]).unwrap();
        let sig = op.finish().unwrap();
        assert_eq!(sig.len(), bits / 4);
        verify(with, &pubk, msg, &sig).unwrap();
        verify(with, &privk, msg, &sig).unwrap();
        // the same signature over the digest with the raw mechanism
        let digest = if bits == 512 {
            klyuch_gost::streebog512(msg).to_vec()
        } else {
            klyuch_gost::streebog256(msg).to_vec()
        };
        verify(raw, &pubk, &digest, &sig).unwrap();
        let sig2 = sign(raw, &privk, &digest).unwrap();
        verify(with, &pubk, msg, &sig2).unwrap();
        // one flipped bit anywhere fails
        for i in [0, sig.len() / 2, sig.len() - 1] {
            let mut bad = sig.clone();
            bad[i] ^= 1;
            assert_eq!(
                verify(with, &pubk, msg, &bad).unwrap_err().rv(),
                CKR_SIGNATURE_INVALID
            );
        }
        assert_eq!(
            verify(with, &pubk, b"another message", &sig)
                .unwrap_err()
                .rv(),
            CKR_SIGNATURE_INVALID
        );
        // zero r and s, and r, s >= q (all ff) are refused
        for bad in [vec![0u8; sig.len()], vec![0xff; sig.len()]] {
            assert_eq!(
                verify(with, &pubk, msg, &bad).unwrap_err().rv(),
                CKR_SIGNATURE_INVALID
            );
        }
        assert_eq!(
            verify(with, &pubk, msg, &sig[1..]).unwrap_err().rv(),
            CKR_SIGNATURE_LEN_RANGE
        );
        // raw: exactly the digest length
        for bad in [&digest[1..], &[digest.clone(), vec![0]].concat()[..], &[]] {
            assert_eq!(sign(raw, &privk, bad).unwrap_err().rv(), CKR_DATA_LEN_RANGE);
        }
        // the other size's mechanisms refuse the key
        let (other_raw, other_with) = if bits == 512 {
            (CKM_GOSTR3410, CKM_GOSTR3410_WITH_GOSTR3411_12_256)
        } else {
            (CKM_GOSTR3410_512, CKM_GOSTR3410_WITH_GOSTR3411_12_512)
        };
        for m in [other_raw, other_with] {
            assert_eq!(
                mech(m)
                    .sign_init(privk.clone(), &MechParam::None)
                    .err()
                    .unwrap()
                    .rv(),
                CKR_KEY_TYPE_INCONSISTENT
            );
        }
        // a public key cannot sign
        assert_eq!(
            mech(with)
                .sign_init(pubk.clone(), &MechParam::None)
                .err()
                .unwrap()
                .rv(),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }
}

#[test]
fn with_hash_oid_parameter_must_match() {
    let (_, k) = keypair(TC26_256_B);
    let m = mech(CKM_GOSTR3410_WITH_GOSTR3411_12_256);
    let ok = MechParam::Bytes(klyuch_gost::oid::GOST3411_12_256.to_vec());
    assert!(m.sign_init(k.clone(), &ok).is_ok());
    let bad = MechParam::Bytes(klyuch_gost::oid::GOST3411_12_512.to_vec());
    assert_eq!(
        m.sign_init(k.clone(), &bad).err().unwrap().rv(),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        mech(CKM_GOSTR3410).sign_init(k, &ok).err().unwrap().rv(),
        CKR_MECHANISM_PARAM_INVALID
    );
}

#[test]
fn key_generation_refuses_bad_params() {
    let keygen = |m, t: &Template| {
        mech(m)
            .generate_key_pair(&MechParam::None, t, &Template::new())
            .err()
            .unwrap()
            .rv()
    };
    let with = |v: &[u8]| {
        let mut t = Template::new();
        t.set(CKA_GOSTR3410_PARAMS, v.to_vec());
        t
    };
    // 512-bit set with the 256-bit mechanism and back
    assert_eq!(
        keygen(CKM_GOSTR3410_KEY_PAIR_GEN, &with(TC26_512_A)),
        CKR_DOMAIN_PARAMS_INVALID
    );
    assert_eq!(
        keygen(CKM_GOSTR3410_512_KEY_PAIR_GEN, &with(CP_A)),
        CKR_DOMAIN_PARAMS_INVALID
    );
    // the test sets (1.2.643.2.2.35.0, 1.2.643.7.1.2.1.2.0) and unknown OIDs
    let test256 = [0x06, 0x07, 0x2A, 0x85, 0x03, 0x02, 0x02, 0x23, 0x00];
    let unknown = [0x06, 0x07, 0x2A, 0x85, 0x03, 0x02, 0x02, 0x23, 0x09];
    assert_eq!(
        keygen(CKM_GOSTR3410_KEY_PAIR_GEN, &with(&test256)),
        CKR_DOMAIN_PARAMS_INVALID
    );
    assert_eq!(
        keygen(CKM_GOSTR3410_KEY_PAIR_GEN, &with(&unknown)),
        CKR_DOMAIN_PARAMS_INVALID
    );
    assert_eq!(
        keygen(CKM_GOSTR3410_KEY_PAIR_GEN, &with(b"junk")),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    assert_eq!(
        keygen(CKM_GOSTR3410_KEY_PAIR_GEN, &Template::new()),
        CKR_TEMPLATE_INCOMPLETE
    );
    // digest params: defaulted, kept, or refused when not Streebog
    let (p, _) = keypair(TC26_512_A);
    assert_eq!(
        p.public_attributes().unwrap().get(CKA_GOSTR3411_PARAMS),
        Some(klyuch_gost::oid::GOST3411_12_512)
    );
    let mut t = with(CP_A);
    t.set(CKA_GOSTR3411_PARAMS, vec![0x06, 0x01, 0x00]);
    assert_eq!(
        keygen(CKM_GOSTR3410_KEY_PAIR_GEN, &t),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
}

fn gost_template(class: CK_OBJECT_CLASS, kt: CK_KEY_TYPE, ps: &[u8], v: &[u8]) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, class);
    t.set_ulong(CKA_KEY_TYPE, kt);
    t.set(CKA_GOSTR3410_PARAMS, ps.to_vec());
    t.set(CKA_VALUE, v.to_vec());
    t
}

#[test]
fn key_objects_refuse_bad_values() {
    let (p, s) = keypair(TC26_256_B);
    let xy = p
        .public_attributes()
        .unwrap()
        .get(CKA_VALUE)
        .unwrap()
        .to_vec();
    let rv = |t: &Template| Key::from_attributes(t).err().unwrap().rv();
    // off the curve
    let mut off = xy.clone();
    off[40] ^= 1;
    assert_eq!(
        rv(&gost_template(
            CKO_PUBLIC_KEY,
            CKK_GOSTR3410,
            TC26_256_B,
            &off
        )),
        CKR_PUBLIC_KEY_INVALID
    );
    // wrong length
    assert_eq!(
        rv(&gost_template(
            CKO_PUBLIC_KEY,
            CKK_GOSTR3410,
            TC26_256_B,
            &xy[1..]
        )),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    // key type and parameter set of different sizes
    assert_eq!(
        rv(&gost_template(
            CKO_PUBLIC_KEY,
            CKK_GOSTR3410_512,
            TC26_256_B,
            &xy
        )),
        CKR_TEMPLATE_INCONSISTENT
    );
    // private: 0 and >= q
    for d in [vec![0u8; 32], vec![0xff; 32], vec![1u8; 33]] {
        assert_eq!(
            rv(&gost_template(
                CKO_PRIVATE_KEY,
                CKK_GOSTR3410,
                TC26_256_B,
                &d
            )),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }
    // the public half of a private key is its public key
    assert_eq!(s.public_attributes().unwrap().get(CKA_VALUE), Some(&xy[..]));
    assert_eq!(s.public_key_info().unwrap(), p.public_key_info().unwrap());
    // a point of order 4 on the cofactor-4 curve tc26-256-A: (x, y) with y = 0 has order 2;
    // the crate's subgroup check is exercised in klyuch-gost; here: a non-point is refused.
    let tc26_256_a = [
        0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01, 0x01,
    ];
    assert_eq!(
        rv(&gost_template(
            CKO_PUBLIC_KEY,
            CKK_GOSTR3410,
            &tc26_256_a,
            &[1u8; 64]
        )),
        CKR_PUBLIC_KEY_INVALID
    );
}

/// The SPKI of OpenSSL's GOST engine for the RFC 7091 A.1-style layout: a key made by
/// `openssl genpkey -engine gost -algorithm gost2012_256 -pkeyopt paramset:A` (CryptoPro-A),
/// its `-pubout -outform DER` and its PKCS#8 (engine 3.0.1): parse, and write back identically.
#[test]
fn engine_spki_and_pkcs8_round_trip() {
    // d (little-endian, the engine's raw privateKey) of such a key
    let d_le = h("F889AE0F048A08BCA3AD7A81D20440218ECE327A1725B4D0E9C2E19B15F1AEEA");
    let pkcs8 = h(&format!(
        "3046020100301f06082a85030701010101301306072a85030202230106082a850307010102020420{}",
        hex::encode(&d_le)
    ));
    let t = crate::pkcs8::private_key_attributes(&pkcs8).unwrap();
    assert_eq!(t.get(CKA_GOSTR3410_PARAMS), Some(CP_A));
    assert_eq!(t.get(CKA_VALUE), Some(&d_le[..]));
    let k = Key::from_attributes(&t).unwrap();
    assert_eq!(&crate::pkcs8::to_pkcs8(&k).unwrap()[..], &pkcs8[..]);
    // the SPKI parses back to the same public key object
    let spki = k.public_key_info().unwrap();
    // `openssl pkey -engine gost -in k.pem -pubout -outform DER` of that key, byte for byte
    assert_eq!(
        hex::encode(&spki),
        "3066301f06082a85030701010101301306072a85030202230106082a85030701010202034300044\
         0d8a065028c6ed99205352eed68a34c96581eb4438f7838dea006f6823d84a6955c0c2b94fddda9\
         2d5b3edbe35f36a90c331c52d65f235a17ec90703e2704f63a"
    );
    let pubt = crate::x509::public_key_attributes(&spki).unwrap();
    assert_eq!(
        pubt.get(CKA_VALUE),
        k.public_attributes().unwrap().get(CKA_VALUE)
    );
    // INTEGER (big-endian) and OCTET STRING (little-endian) forms of the same d
    let mut be = d_le.clone();
    be.reverse();
    let mut be_int = vec![0u8]; // DER INTEGER: positive, so a leading zero (the top bit is set)
    be_int.extend_from_slice(&be);
    for (form, value) in [(0x02u8, be_int), (0x04u8, d_le.clone())] {
        let mut inner = vec![form, value.len() as u8];
        inner.extend_from_slice(&value);
        let alg = h("301f06082a85030701010101301306072a85030202230106082a85030701010202");
        let mut body = h("020100");
        body.extend_from_slice(&alg);
        body.push(0x04);
        body.push(inner.len() as u8);
        body.extend_from_slice(&inner);
        let mut der = vec![0x30, body.len() as u8];
        der.extend_from_slice(&body);
        let t2 = crate::pkcs8::private_key_attributes(&der).unwrap();
        assert_eq!(t2.get(CKA_VALUE), Some(&d_le[..]), "form {form:#x}");
    }
}

/// An SPKI without the digestParamSet (tc26-256-B, as the engine writes it) and one with NULL
/// around: parsed, digest defaulted.
#[test]
fn spki_digest_param_absent_or_present() {
    let (p, _) = keypair(TC26_256_B);
    let spki = p.public_key_info().unwrap();
    // tc26-256-B: the engine omits the digest OID (305e 3017 ... 300b 0609 ...)
    assert_eq!(hex::encode(&spki[..6]), "305e30170608");
    let t = crate::x509::public_key_attributes(&spki).unwrap();
    assert_eq!(
        t.get(CKA_GOSTR3411_PARAMS),
        Some(klyuch_gost::oid::GOST3411_12_256)
    );
    let (p, _) = keypair(TC26_512_A);
    let spki = p.public_key_info().unwrap();
    // 512-A: digest present, 0x81 0xaa outer length (engine: 3081aa 3021 ...)
    assert_eq!(hex::encode(&spki[..5]), "3081aa3021");
}

/// VKO through `CKM_GOSTR3410_12_DERIVE`: R 50.1.113-2016 App. A.2 (= RFC 7836 App. B) keys on
/// tc26-512-A, UKM 1d80603c8544c727 (little-endian bytes), VKO_GOSTR3410_2012_256 =
/// c9a9a773...c221.
#[test]
fn vko_derive_r50_1_113_vector() {
    let priv_a = "67b63ca4ac8d2bb32618d89296c7476dbeb9f9048496f202b1902cf2ce41dbc2f847712d960483458d4b380867f426c7ca0ff5782702dbc44ee8fc72d9ec90c9";
    let pub_b_x = "51a6d54ee932d176e87591121cce5f395cb2f2f147114d95f463c8a7ed74a9fc5ecd2325a35fb6387831ea66bc3d2aa42ede35872cc75372073a71b983e12f19";
    let pub_b_y = "793bde5bf72840ad22b02a363ae4772d4a52fc08ba1a20f7458a222a13bf98b53be002d1973f1e398ce46c17da6d00d9b6d0076f8284dcc42e599b4c413b8804";
    let a = Arc::new(
        Key::from_attributes(&gost_template(
            CKO_PRIVATE_KEY,
            CKK_GOSTR3410_512,
            TC26_512_A,
            &le(priv_a),
        ))
        .unwrap(),
    );
    let mut xy = le(pub_b_x);
    xy.extend(le(pub_b_y));
    let ukm = h("1d80603c8544c727");
    let m = mech(CKM_GOSTR3410_12_DERIVE);
    let kek = "c9a9a77320e2cc559ed72dce6f47e2192ccea95fa648670582c054c0ef36c221";
    for public_data in [
        xy.clone(),
        OctetStringRef::new(&xy).unwrap().to_der().unwrap(),
    ] {
        let p = MechParam::GostDerive {
            kdf: CKD_NULL,
            public_data,
            ukm: ukm.clone(),
        };
        let t = m.derive(a.clone(), &p, &Template::new()).unwrap();
        assert_eq!(hex::encode(t.get(CKA_VALUE).unwrap()), kek);
        assert_eq!(t.get_ulong(CKA_KEY_TYPE).unwrap(), Some(CKK_GENERIC_SECRET));
    }
    let rv = |kdf, public_data: Vec<u8>, ukm: Vec<u8>| {
        m.derive(
            a.clone(),
            &MechParam::GostDerive {
                kdf,
                public_data,
                ukm,
            },
            &Template::new(),
        )
        .unwrap_err()
        .rv()
    };
    assert_eq!(
        rv(CKD_CPDIVERSIFY_KDF, xy.clone(), ukm.clone()),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(CKD_SHA256_KDF, xy.clone(), ukm.clone()),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(CKD_NULL, xy[1..].to_vec(), ukm.clone()),
        CKR_MECHANISM_PARAM_INVALID
    );
    assert_eq!(
        rv(CKD_NULL, xy.clone(), vec![]),
        CKR_MECHANISM_PARAM_INVALID
    );
    let mut off = xy.clone();
    off[3] ^= 1;
    assert_eq!(rv(CKD_NULL, off, ukm.clone()), CKR_PUBLIC_KEY_INVALID);
    // a public key cannot derive
    let (p256, _) = keypair(TC26_256_B);
    assert_eq!(
        m.derive(
            p256,
            &MechParam::GostDerive {
                kdf: CKD_NULL,
                public_data: xy,
                ukm
            },
            &Template::new()
        )
        .unwrap_err()
        .rv(),
        CKR_KEY_TYPE_INCONSISTENT
    );
}
