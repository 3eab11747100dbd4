//! Every soft token mechanism through cryptoki: the list and `C_GetMechanismInfo`, digests and
//! HMAC against published vectors (single- and multi-part), AES modes and key wrap, RSA and EC
//! round trips, ECDH agreement, random bytes. (Interoperability with OpenSSL: tools.rs.)

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::Ulong;
use klyuch_tests::{rv, Fixture};

/// DER OIDs of the named curves (RFC 5480 §2.1.1.1; RFC 8410 §3 for Ed25519).
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn setup() -> (Fixture, Session) {
    let f = Fixture::new();
    let slot = f.init_token("mech");
    let s = f.user_session(slot);
    (f, s)
}

#[test]
fn the_mechanism_list_has_what_issue_2_asks_and_tells_the_truth() {
    let f = Fixture::new();
    let slot = f.init_token("list");
    let list = f.p11().get_mechanism_list(slot).unwrap();
    let want = [
        MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        MechanismType::RSA_PKCS,
        MechanismType::SHA1_RSA_PKCS,
        MechanismType::SHA224_RSA_PKCS,
        MechanismType::SHA256_RSA_PKCS,
        MechanismType::SHA384_RSA_PKCS,
        MechanismType::SHA512_RSA_PKCS,
        MechanismType::RSA_PKCS_PSS,
        MechanismType::SHA256_RSA_PKCS_PSS,
        MechanismType::RSA_PKCS_OAEP,
        MechanismType::ECC_KEY_PAIR_GEN,
        MechanismType::ECDSA,
        MechanismType::ECDSA_SHA256,
        MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
        MechanismType::EDDSA,
        MechanismType::ECDH1_DERIVE,
        MechanismType::SHA1,
        MechanismType::SHA224,
        MechanismType::SHA256,
        MechanismType::SHA384,
        MechanismType::SHA512,
        MechanismType::SHA256_HMAC,
        MechanismType::SHA512_HMAC,
        MechanismType::GENERIC_SECRET_KEY_GEN,
        MechanismType::AES_KEY_GEN,
        MechanismType::AES_GCM,
        MechanismType::AES_CBC,
        MechanismType::AES_CBC_PAD,
        MechanismType::AES_KEY_WRAP,
    ];
    for m in want {
        // cryptoki 0.12 drops types it has no name for (SHA224_RSA_PKCS among them) from the
        // list, so ask C_GetMechanismInfo, which must know every listed mechanism.
        let info = f.p11().get_mechanism_info(slot, m);
        assert!(info.is_ok(), "{m} unknown to C_GetMechanismInfo");
        let cryptoki_knows = MechanismType::try_from(*m).is_ok();
        assert!(
            list.contains(&m) || !cryptoki_knows,
            "{m} missing from C_GetMechanismList"
        );
    }
    let i = f
        .p11()
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
        .unwrap();
    assert!(i.min_key_size() <= 1024 && i.max_key_size() >= 4096 && i.generate_key_pair());
    let i = f
        .p11()
        .get_mechanism_info(slot, MechanismType::SHA256_RSA_PKCS)
        .unwrap();
    assert!(i.sign() && i.verify() && !i.encrypt());
    let i = f
        .p11()
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_OAEP)
        .unwrap();
    assert!(i.encrypt() && i.decrypt() && !i.sign());
    let i = f
        .p11()
        .get_mechanism_info(slot, MechanismType::ECDSA)
        .unwrap();
    assert!(i.sign() && i.verify() && i.min_key_size() <= 256 && i.max_key_size() >= 521);
    let i = f
        .p11()
        .get_mechanism_info(slot, MechanismType::SHA256)
        .unwrap();
    assert!(i.digest() && !i.sign());
    let i = f
        .p11()
        .get_mechanism_info(slot, MechanismType::AES_GCM)
        .unwrap();
    assert!(i.encrypt() && i.decrypt() && i.min_key_size() == 16 && i.max_key_size() == 32);
    assert_eq!(
        rv(f.p11().get_mechanism_info(slot, MechanismType::DES3_CBC)),
        cryptoki::error::RvError::MechanismInvalid
    );
}

#[test]
fn digests_single_and_multi_part() {
    let (_f, s) = setup();
    // FIPS 180-4 examples ("abc").
    let cases = [
        (Mechanism::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (Mechanism::Sha224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
        (Mechanism::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (Mechanism::Sha384, "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
        (Mechanism::Sha512, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"),
    ];
    for (m, want) in cases {
        assert_eq!(s.digest(&m, b"abc").unwrap(), h(want), "{m:?}");
        s.digest_init(&m).unwrap();
        s.digest_update(b"a").unwrap();
        s.digest_update(b"").unwrap();
        s.digest_update(b"bc").unwrap();
        assert_eq!(s.digest_final().unwrap(), h(want), "{m:?} multi-part");
    }
    let big = vec![0x61u8; 1 << 20];
    let one = s.digest(&Mechanism::Sha256, &big).unwrap();
    s.digest_init(&Mechanism::Sha256).unwrap();
    for part in big.chunks(1000) {
        s.digest_update(part).unwrap();
    }
    assert_eq!(s.digest_final().unwrap(), one);
}

fn secret(s: &Session, value: &[u8], kt: KeyType, usage: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(kt),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
    ];
    t.extend_from_slice(usage);
    s.create_object(&t).unwrap()
}

#[test]
fn hmac_rfc_4231_case_2() {
    let (_f, s) = setup();
    // RFC 4231 §4.3 (test case 2): key "Jefe", data "what do ya want for nothing?".
    let k = secret(
        &s,
        b"Jefe",
        KeyType::GENERIC_SECRET,
        &[Attribute::Sign(true), Attribute::Verify(true)],
    );
    let data = b"what do ya want for nothing?";
    let want256 = h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_eq!(s.sign(&Mechanism::Sha256Hmac, k, data).unwrap(), want256);
    s.verify(&Mechanism::Sha256Hmac, k, data, &want256).unwrap();
    let want512 = h("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
    s.sign_init(&Mechanism::Sha512Hmac, k).unwrap();
    s.sign_update(b"what do ya ").unwrap();
    s.sign_update(b"want for nothing?").unwrap();
    assert_eq!(s.sign_final().unwrap(), want512);
    let mut bad = want256.clone();
    bad[0] ^= 1;
    assert_eq!(
        rv(s.verify(&Mechanism::Sha256Hmac, k, data, &bad)),
        cryptoki::error::RvError::SignatureInvalid
    );
}

#[test]
fn aes_gcm_cbc_and_key_wrap() {
    let (_f, s) = setup();
    // NIST SP 800-38D test case 3 (gcmEncryptExtIV128 / McGrew-Viega test case 3).
    let key = secret(
        &s,
        &h("feffe9928665731c6d6a8f9467308308"),
        KeyType::AES,
        &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
    );
    let pt = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
    let mut iv = h("cafebabefacedbaddecaf888");
    let ct = s
        .encrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).unwrap()),
            key,
            &pt,
        )
        .unwrap();
    let want = h("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f59854d5c2af327cd64a62cf35abd2ba6fab4");
    assert_eq!(ct, want);
    let back = s
        .decrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).unwrap()),
            key,
            &ct,
        )
        .unwrap();
    assert_eq!(back, pt);
    let mut tampered = ct.clone();
    tampered[3] ^= 1;
    assert!(s
        .decrypt(
            &Mechanism::AesGcm(GcmParams::new(&mut iv, &[], 128.into()).unwrap()),
            key,
            &tampered
        )
        .is_err());

    // CBC_PAD round trip, single- and multi-part.
    let iv16 = [7u8; 16];
    let msg: Vec<u8> = (0..100u8).collect();
    let c1 = s.encrypt(&Mechanism::AesCbcPad(iv16), key, &msg).unwrap();
    assert_eq!(c1.len(), 112);
    s.encrypt_init(&Mechanism::AesCbcPad(iv16), key).unwrap();
    let mut c2 = Vec::new();
    for part in msg.chunks(13) {
        c2.extend(s.encrypt_update(part).unwrap());
    }
    c2.extend(s.encrypt_final().unwrap());
    assert_eq!(c1, c2);
    s.decrypt_init(&Mechanism::AesCbcPad(iv16), key).unwrap();
    let mut p2 = Vec::new();
    for part in c1.chunks(7) {
        p2.extend(s.decrypt_update(part).unwrap());
    }
    p2.extend(s.decrypt_final().unwrap());
    assert_eq!(p2, msg);
    // Plain CBC needs whole blocks.
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesCbc(iv16), key, &msg)),
        cryptoki::error::RvError::DataLenRange
    );
    let c3 = s
        .encrypt(&Mechanism::AesCbc(iv16), key, &msg[..96])
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::AesCbc(iv16), key, &c3).unwrap(),
        &msg[..96]
    );

    // RFC 3394 §4.1: wrap 128 bits of key data with a 128-bit KEK.
    let kek = secret(
        &s,
        &h("000102030405060708090A0B0C0D0E0F"),
        KeyType::AES,
        &[Attribute::Wrap(true), Attribute::Unwrap(true)],
    );
    let data = secret(
        &s,
        &h("00112233445566778899AABBCCDDEEFF"),
        KeyType::AES,
        &[Attribute::Extractable(true), Attribute::Sensitive(false)],
    );
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, kek, data).unwrap();
    assert_eq!(
        wrapped,
        h("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    );
    let unwrapped = s
        .unwrap_key(
            &Mechanism::AesKeyWrap,
            kek,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    assert_eq!(
        s.get_attributes(unwrapped, &[AttributeType::Value])
            .unwrap(),
        vec![Attribute::Value(h("00112233445566778899AABBCCDDEEFF"))]
    );
    // A sensitive, unextractable key cannot be wrapped.
    let locked = secret(
        &s,
        &[9u8; 16],
        KeyType::AES,
        &[Attribute::Extractable(false)],
    );
    assert_eq!(
        rv(s.wrap_key(&Mechanism::AesKeyWrap, kek, locked)),
        cryptoki::error::RvError::KeyUnextractable
    );
}

fn rsa(s: &Session, bits: u64) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::ModulusBits(Ulong::from(bits)),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
        ],
        &[Attribute::Sign(true), Attribute::Decrypt(true)],
    )
    .unwrap()
}

#[test]
fn rsa_mechanisms_round_trip() {
    let (_f, s) = setup();
    for bits in [1024u64, 2048, 3072, 4096] {
        let (pubk, _) = rsa(&s, bits);
        let a = s
            .get_attributes(pubk, &[AttributeType::Modulus, AttributeType::ModulusBits])
            .unwrap();
        assert!(
            matches!(&a[0], Attribute::Modulus(m) if m.len() * 8 == bits as usize),
            "{bits}"
        );
    }
    let (pubk, privk) = rsa(&s, 2048);
    let msg = b"rsa message";
    for m in [
        Mechanism::Sha1RsaPkcs,
        Mechanism::Sha224RsaPkcs,
        Mechanism::Sha256RsaPkcs,
        Mechanism::Sha384RsaPkcs,
        Mechanism::Sha512RsaPkcs,
    ] {
        let sig = s.sign(&m, privk, msg).unwrap();
        assert_eq!(sig.len(), 256);
        s.verify(&m, pubk, msg, &sig).unwrap();
        assert!(s.verify(&m, pubk, b"other", &sig).is_err());
    }
    // CKM_RSA_PKCS with a caller-made DigestInfo (SHA-256 prefix, RFC 8017 §9.2 note 1).
    let mut di = h("3031300d060960864801650304020105000420");
    di.extend(s.digest(&Mechanism::Sha256, msg).unwrap());
    let raw = s.sign(&Mechanism::RsaPkcs, privk, &di).unwrap();
    assert_eq!(
        raw,
        s.sign(&Mechanism::Sha256RsaPkcs, privk, msg).unwrap(),
        "PKCS#1 v1.5 is deterministic"
    );
    // PSS, raw and hashed.
    let pss = PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    };
    let sig = s
        .sign(&Mechanism::Sha256RsaPkcsPss(pss), privk, msg)
        .unwrap();
    s.verify(&Mechanism::Sha256RsaPkcsPss(pss), pubk, msg, &sig)
        .unwrap();
    let digest = s.digest(&Mechanism::Sha256, msg).unwrap();
    s.verify(&Mechanism::RsaPkcsPss(pss), pubk, &digest, &sig)
        .unwrap();
    // OAEP with a label; PKCS#1 v1.5 encryption.
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::data_specified(b"label"),
    );
    let ct = s
        .encrypt(&Mechanism::RsaPkcsOaep(oaep), pubk, b"secret")
        .unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcsOaep(oaep), privk, &ct)
            .unwrap(),
        b"secret"
    );
    let ct = s.encrypt(&Mechanism::RsaPkcs, pubk, b"secret").unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, privk, &ct).unwrap(),
        b"secret"
    );
    // Too long for the modulus.
    assert_eq!(
        rv(s.sign(&Mechanism::RsaPkcs, privk, &[1u8; 250])),
        cryptoki::error::RvError::DataLenRange
    );
    // Wrong key class for the operation.
    assert!(s.sign(&Mechanism::Sha256RsaPkcs, pubk, msg).is_err());
}

#[test]
fn ec_mechanisms_round_trip_and_ecdh_agrees() {
    let (_f, s) = setup();
    for (curve, len, m) in [
        (P256, 64, Mechanism::EcdsaSha256),
        (P384, 96, Mechanism::EcdsaSha384),
        (P521, 132, Mechanism::EcdsaSha512),
    ] {
        let (pubk, privk) = s
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[Attribute::EcParams(curve.to_vec()), Attribute::Verify(true)],
                &[Attribute::Sign(true), Attribute::Derive(true)],
            )
            .unwrap();
        // CKA_EC_POINT is a DER OCTET STRING of the uncompressed point.
        let point = match &s.get_attributes(pubk, &[AttributeType::EcPoint]).unwrap()[0] {
            Attribute::EcPoint(p) => p.clone(),
            o => panic!("{o:?}"),
        };
        assert_eq!(point[0], 0x04, "OCTET STRING tag");
        assert!(point.contains(&0x04));
        let sig = s.sign(&m, privk, b"ec message").unwrap();
        assert_eq!(sig.len(), len);
        s.verify(&m, pubk, b"ec message", &sig).unwrap();
        // Raw ECDSA on digests of any length (truncated as the standard says).
        for dlen in [20usize, 32, 48, 64, 70] {
            let d = vec![0x5au8; dlen];
            let sig = s.sign(&Mechanism::Ecdsa, privk, &d).unwrap();
            s.verify(&Mechanism::Ecdsa, pubk, &d, &sig).unwrap();
        }
    }
    // ECDH: both sides derive the same secret.
    let gen = |s: &Session| {
        s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec())],
            &[Attribute::Derive(true)],
        )
        .unwrap()
    };
    let (a_pub, a_priv) = gen(&s);
    let (b_pub, b_priv) = gen(&s);
    let point = |k| match &s.get_attributes(k, &[AttributeType::EcPoint]).unwrap()[0] {
        Attribute::EcPoint(p) => p[2..].to_vec(), // strip the OCTET STRING header (65 bytes)
        o => panic!("{o:?}"),
    };
    let (pa, pb) = (point(a_pub), point(b_pub));
    let tmpl = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen(32.into()),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Token(false),
    ];
    let ka = s
        .derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &pb)),
            a_priv,
            &tmpl,
        )
        .unwrap();
    let kb = s
        .derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &pa)),
            b_priv,
            &tmpl,
        )
        .unwrap();
    let va = s.get_attributes(ka, &[AttributeType::Value]).unwrap();
    assert_eq!(va, s.get_attributes(kb, &[AttributeType::Value]).unwrap());
}

#[test]
fn ed25519_round_trip() {
    let (_f, s) = setup();
    let (pubk, privk) = s
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::EcParams(ED25519.to_vec()),
                Attribute::Verify(true),
            ],
            &[Attribute::Sign(true)],
        )
        .unwrap();
    let m = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let sig = s.sign(&m, privk, b"ed message").unwrap();
    assert_eq!(sig.len(), 64);
    s.verify(&m, pubk, b"ed message", &sig).unwrap();
    assert!(s.verify(&m, pubk, b"ed messagE", &sig).is_err());
}

#[test]
fn random_bytes() {
    let (_f, s) = setup();
    let a = s.generate_random_vec(64).unwrap();
    let b = s.generate_random_vec(64).unwrap();
    assert_ne!(a, b);
    assert_eq!(s.generate_random_vec(100_000).unwrap().len(), 100_000);
}
