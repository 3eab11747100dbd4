//! Round trips for every mechanism through the registry, and the error paths.

mod common;

use common::*;
use klyuch_crypto::{Key, find, hash_then_sign, mechanisms};
use token_api::ck::*;
use token_api::{MechParam, Template};

fn pss(hash: CK_MECHANISM_TYPE, mgf: CK_RSA_PKCS_MGF_TYPE, salt: CK_ULONG) -> MechParam {
    MechParam::RsaPss {
        hash,
        mgf,
        salt_len: salt,
    }
}

#[test]
fn registry_is_consistent() {
    let all = mechanisms();
    for (i, m) in all.iter().enumerate() {
        assert!(
            all[..i].iter().all(|o| o.ty() != m.ty()),
            "duplicate {:#x}",
            m.ty()
        );
        let info = m.info();
        assert!(info.flags != 0, "{:#x} has no flags", m.ty());
        assert!(info.min_key_size <= info.max_key_size);
        assert_eq!(find(m.ty()).unwrap().ty(), m.ty());
    }
    assert!(find(CKM_MD5).is_none());
    let ec = find(CKM_ECDSA).unwrap().info();
    assert_eq!(
        ec.flags & (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS),
        CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS
    );
    assert_eq!(
        hash_then_sign(CKM_SHA256_RSA_PKCS),
        Some((CKM_SHA256, CKM_RSA_PKCS))
    );
    assert_eq!(
        hash_then_sign(CKM_ECDSA_SHA384),
        Some((CKM_SHA384, CKM_ECDSA))
    );
    assert_eq!(hash_then_sign(CKM_RSA_PKCS), None);
    // an unsupported operation is CKR_MECHANISM_INVALID
    let (_, s, _, _) = ec_key_p256();
    assert_eq!(
        rv(find(CKM_SHA256).unwrap().sign_init(s, &MechParam::None)),
        CKR_MECHANISM_INVALID
    );
}

fn ec_key_p256() -> (std::sync::Arc<Key>, std::sync::Arc<Key>, Template, Template) {
    ec(P256)
}

#[test]
fn rsa_all_mechanisms() {
    let (pubk, privk, pubt, privt) = rsa(2048);
    assert_eq!(privk.size(), 2048);
    assert_eq!(pubt.get(CKA_PUBLIC_EXPONENT), Some(&[1u8, 0, 1][..]));
    assert!(privt.contains(CKA_COEFFICIENT));
    let msg = b"the quick brown fox";
    for m in [
        CKM_SHA1_RSA_PKCS,
        CKM_SHA224_RSA_PKCS,
        CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS,
        CKM_SHA512_RSA_PKCS,
    ] {
        let s = sign(m, &MechParam::None, &privk, msg);
        assert_eq!(s.len(), 256);
        verify(m, &MechParam::None, &pubk, msg, &s).unwrap();
        assert_eq!(
            rv(verify(m, &MechParam::None, &pubk, b"other", &s)),
            CKR_SIGNATURE_INVALID
        );
        assert_eq!(
            rv(verify(m, &MechParam::None, &pubk, msg, &s[1..])),
            CKR_SIGNATURE_LEN_RANGE
        );
        // multi-part gives the same signature (PKCS#1 v1.5 is deterministic)
        let mut op = find(m)
            .unwrap()
            .sign_init(privk.clone(), &MechParam::None)
            .unwrap();
        assert!(op.multipart());
        op.update(&msg[..5]).unwrap();
        op.update(&msg[5..]).unwrap();
        assert_eq!(op.finish().unwrap(), s);
        // and CKM_RSA_PKCS over the DigestInfo too
        let (h, raw) = hash_then_sign(m).unwrap();
        let di =
            klyuch_crypto::padding::digest_info(h, &klyuch_crypto::digest::hash(h, msg).unwrap())
                .unwrap();
        assert_eq!(sign(raw, &MechParam::None, &privk, &di), s);
        verify(raw, &MechParam::None, &pubk, &di, &s).unwrap();
    }
    // raw CKM_RSA_PKCS input limit k - 11
    let mut op = find(CKM_RSA_PKCS)
        .unwrap()
        .sign_init(privk.clone(), &MechParam::None)
        .unwrap();
    assert!(!op.multipart());
    assert_eq!(rv(op.sign(&[0u8; 246])), CKR_DATA_LEN_RANGE);
    // PSS, every hash and MGF, several salts
    for (m, h, mgf) in [
        (CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, CKG_MGF1_SHA1),
        (CKM_SHA224_RSA_PKCS_PSS, CKM_SHA224, CKG_MGF1_SHA224),
        (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256),
        (CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA1),
        (CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKG_MGF1_SHA512),
    ] {
        for salt in [0, 20, 32] {
            let p = pss(h, mgf, salt);
            let s = sign(m, &p, &privk, msg);
            verify(m, &p, &pubk, msg, &s).unwrap();
            assert_eq!(rv(verify(m, &p, &pubk, b"x", &s)), CKR_SIGNATURE_INVALID);
            assert_eq!(
                rv(verify(m, &pss(h, mgf, salt + 1), &pubk, msg, &s)),
                CKR_SIGNATURE_INVALID
            );
            let d = klyuch_crypto::digest::hash(h, msg).unwrap();
            verify(CKM_RSA_PKCS_PSS, &p, &pubk, &d, &s).unwrap();
            let s2 = sign(CKM_RSA_PKCS_PSS, &p, &privk, &d);
            verify(m, &p, &pubk, msg, &s2).unwrap();
        }
    }
    // PSS parameter errors
    let imp = find(CKM_SHA256_RSA_PKCS_PSS).unwrap();
    for bad in [
        MechParam::None,
        pss(CKM_SHA_1, CKG_MGF1_SHA256, 32),
        pss(CKM_SHA256, 0x99, 32),
        pss(CKM_SHA256, CKG_MGF1_SHA256, 300),
    ] {
        assert_eq!(
            rv(imp.sign_init(privk.clone(), &bad)),
            CKR_MECHANISM_PARAM_INVALID,
            "{bad:?}"
        );
    }
    let mut op = find(CKM_RSA_PKCS_PSS)
        .unwrap()
        .sign_init(privk.clone(), &pss(CKM_SHA256, CKG_MGF1_SHA256, 32))
        .unwrap();
    assert_eq!(rv(op.sign(&[0; 31])), CKR_DATA_LEN_RANGE);
    // a public key cannot sign
    assert_eq!(
        rv(find(CKM_SHA256_RSA_PKCS)
            .unwrap()
            .sign_init(pubk.clone(), &MechParam::None)),
        CKR_KEY_TYPE_INCONSISTENT
    );
}

#[test]
fn rsa_encryption_and_wrapping() {
    let (pubk, privk, _, _) = rsa(1024);
    let oaep = |h, mgf, l: &[u8]| MechParam::RsaOaep {
        hash: h,
        mgf,
        source: l.to_vec(),
    };
    for (m, p) in [
        (CKM_RSA_PKCS, MechParam::None),
        (CKM_RSA_PKCS_OAEP, oaep(CKM_SHA_1, CKG_MGF1_SHA1, b"")),
        (CKM_RSA_PKCS_OAEP, oaep(CKM_SHA256, CKG_MGF1_SHA1, b"lbl")),
    ] {
        let imp = find(m).unwrap();
        let ct = imp
            .encrypt_init(pubk.clone(), &p)
            .unwrap()
            .one_shot(b"secret")
            .unwrap();
        assert_eq!(ct.len(), 128);
        let pt = imp
            .decrypt_init(privk.clone(), &p)
            .unwrap()
            .one_shot(&ct)
            .unwrap();
        assert_eq!(pt, b"secret");
        let w = imp.wrap(pubk.clone(), &p, &[9u8; 32]).unwrap();
        assert_eq!(&imp.unwrap(privk.clone(), &p, &w).unwrap()[..], &[9u8; 32]);
        // tampering
        let mut bad = ct.clone();
        bad[5] ^= 1;
        assert_eq!(
            rv(imp.decrypt_init(privk.clone(), &p).unwrap().one_shot(&bad)),
            CKR_ENCRYPTED_DATA_INVALID
        );
        assert_eq!(
            rv(imp
                .decrypt_init(privk.clone(), &p)
                .unwrap()
                .one_shot(&ct[1..])),
            CKR_ENCRYPTED_DATA_LEN_RANGE
        );
        assert_eq!(
            rv(imp.unwrap(privk.clone(), &p, &bad)),
            CKR_WRAPPED_KEY_INVALID
        );
    }
    // too long for the key
    let imp = find(CKM_RSA_PKCS_OAEP).unwrap();
    let p = oaep(CKM_SHA512, CKG_MGF1_SHA512, b"");
    assert_eq!(
        rv(imp
            .encrypt_init(pubk.clone(), &p)
            .unwrap()
            .one_shot(&[0; 1])),
        CKR_DATA_LEN_RANGE
    );
    assert_eq!(
        rv(imp.encrypt_init(pubk.clone(), &oaep(CKM_MD5, CKG_MGF1_SHA1, b""))),
        CKR_MECHANISM_PARAM_INVALID
    );
    // raw RSA: sign/verify and encrypt/decrypt are inverse
    let x509 = find(CKM_RSA_X_509).unwrap();
    let s = sign(CKM_RSA_X_509, &MechParam::None, &privk, b"\x01\x02");
    verify(CKM_RSA_X_509, &MechParam::None, &pubk, b"\x01\x02", &s).unwrap();
    let ct = x509
        .encrypt_init(pubk.clone(), &MechParam::None)
        .unwrap()
        .one_shot(b"\x05")
        .unwrap();
    let pt = x509
        .decrypt_init(privk.clone(), &MechParam::None)
        .unwrap()
        .one_shot(&ct)
        .unwrap();
    assert_eq!(pt.len(), 128);
    assert_eq!(pt[127], 5);
    // input >= n
    assert_eq!(
        rv(x509
            .sign_init(privk.clone(), &MechParam::None)
            .unwrap()
            .sign(&[0xff; 128])),
        CKR_DATA_INVALID
    );
    assert_eq!(
        rv(x509
            .sign_init(privk.clone(), &MechParam::None)
            .unwrap()
            .sign(&[0x01; 129])),
        CKR_DATA_LEN_RANGE
    );
}

#[test]
fn rsa_keygen_errors() {
    let g = find(CKM_RSA_PKCS_KEY_PAIR_GEN).unwrap();
    let none = Template::new();
    assert_eq!(
        rv(g.generate_key_pair(&MechParam::None, &none, &none)),
        CKR_TEMPLATE_INCOMPLETE
    );
    for bits in [512, 1000, 8192] {
        let mut t = Template::new();
        t.set_ulong(CKA_MODULUS_BITS, bits);
        assert_eq!(
            rv(g.generate_key_pair(&MechParam::None, &t, &none)),
            CKR_KEY_SIZE_RANGE
        );
    }
    let mut t = Template::new();
    t.set_ulong(CKA_MODULUS_BITS, 1024);
    t.set(CKA_PUBLIC_EXPONENT, vec![0x01, 0x00, 0x00]);
    assert_eq!(
        rv(g.generate_key_pair(&MechParam::None, &t, &none)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    t.set(CKA_PUBLIC_EXPONENT, vec![0x03]);
    let (p, _) = g.generate_key_pair(&MechParam::None, &t, &none).unwrap();
    assert_eq!(p.get(CKA_PUBLIC_EXPONENT), Some(&[3u8][..]));
}

#[test]
fn ecdsa_all_curves_and_hashes() {
    for (params, width) in [(P256, 32), (P384, 48), (P521, 66)] {
        let (pubk, privk, pubt, privt) = ec(params);
        // CKA_EC_POINT is a DER OCTET STRING of the uncompressed point
        let pt = pubt.get(CKA_EC_POINT).unwrap();
        assert_eq!(pt[0], 0x04);
        assert_eq!(pt[pt.len() - 1 - 2 * width], 0x04);
        assert_eq!(privt.get(CKA_VALUE).unwrap().len(), width);
        // the raw point is accepted too
        let mut raw = pubt.clone();
        raw.set(CKA_EC_POINT, pt[pt.len() - 1 - 2 * width..].to_vec());
        let pubk_raw = std::sync::Arc::new(Key::from_attributes(&raw).unwrap());
        for m in [
            CKM_ECDSA_SHA1,
            CKM_ECDSA_SHA224,
            CKM_ECDSA_SHA256,
            CKM_ECDSA_SHA384,
            CKM_ECDSA_SHA512,
        ] {
            let s = sign(m, &MechParam::None, &privk, b"msg");
            assert_eq!(s.len(), 2 * width);
            verify(m, &MechParam::None, &pubk, b"msg", &s).unwrap();
            verify(m, &MechParam::None, &pubk_raw, b"msg", &s).unwrap();
            assert_eq!(
                rv(verify(m, &MechParam::None, &pubk, b"msh", &s)),
                CKR_SIGNATURE_INVALID
            );
            assert_eq!(
                rv(verify(
                    m,
                    &MechParam::None,
                    &pubk,
                    b"msg",
                    &s[..2 * width - 1]
                )),
                CKR_SIGNATURE_LEN_RANGE
            );
            let (h, raw) = hash_then_sign(m).unwrap();
            let d = klyuch_crypto::digest::hash(h, b"msg").unwrap();
            verify(raw, &MechParam::None, &pubk, &d, &s).unwrap();
        }
        // raw ECDSA over hashes of any length (truncation per FIPS 186-4 §6.4)
        for len in [1usize, 20, 32, 48, 64, 100] {
            let h = vec![0x5au8; len];
            let s = sign(CKM_ECDSA, &MechParam::None, &privk, &h);
            verify(CKM_ECDSA, &MechParam::None, &pubk, &h, &s).unwrap();
        }
        let mut op = find(CKM_ECDSA)
            .unwrap()
            .sign_init(privk.clone(), &MechParam::None)
            .unwrap();
        assert!(!op.multipart());
        assert_eq!(rv(op.sign(b"")), CKR_DATA_LEN_RANGE);
        // public key derived from the private one matches
        assert_eq!(
            klyuch_crypto::pkcs8::public_from_private(&privt)
                .unwrap()
                .get(CKA_EC_POINT),
            Some(pt)
        );
    }
}

#[test]
fn ec_errors() {
    let g = find(CKM_EC_KEY_PAIR_GEN).unwrap();
    let none = Template::new();
    assert_eq!(
        rv(g.generate_key_pair(&MechParam::None, &none, &none)),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut t = Template::new();
    t.set(
        CKA_EC_PARAMS,
        vec![0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
    );
    assert_eq!(
        rv(g.generate_key_pair(&MechParam::None, &t, &none)),
        CKR_CURVE_NOT_SUPPORTED
    );
    t.set(CKA_EC_PARAMS, vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert_eq!(
        rv(g.generate_key_pair(&MechParam::None, &t, &none)),
        CKR_DOMAIN_PARAMS_INVALID
    );
    // a point off the curve
    let (_, _, mut pubt, _) = ec(P256);
    let mut pt = pubt.get(CKA_EC_POINT).unwrap().to_vec();
    let last = pt.len() - 1;
    pt[last] ^= 1;
    pubt.set(CKA_EC_POINT, pt);
    assert_eq!(rv(Key::from_attributes(&pubt)), CKR_PUBLIC_KEY_INVALID);
    // scalar zero / too big
    let mut priv0 = Template::new();
    priv0.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    priv0.set_ulong(CKA_KEY_TYPE, CKK_EC);
    priv0.set(CKA_EC_PARAMS, P256.to_vec());
    priv0.set(CKA_VALUE, vec![0u8; 32]);
    assert_eq!(
        rv(Key::from_attributes(&priv0)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    priv0.set(CKA_VALUE, vec![0xffu8; 32]);
    assert_eq!(
        rv(Key::from_attributes(&priv0)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    // ECDSA with an RSA key, with a parameter
    let (_, rsak, _, _) = rsa(1024);
    assert_eq!(
        rv(find(CKM_ECDSA).unwrap().sign_init(rsak, &MechParam::None)),
        CKR_KEY_TYPE_INCONSISTENT
    );
    let (_, eck, _, _) = ec(P256);
    assert_eq!(
        rv(find(CKM_ECDSA)
            .unwrap()
            .sign_init(eck, &MechParam::Ulong(1))),
        CKR_MECHANISM_PARAM_INVALID
    );
}

#[test]
fn ecdh_derive() {
    let (apub, apriv, apubt, _) = ec(P256);
    let (_, bpriv, bpubt, _) = ec(P256);
    let _ = apub;
    let d = find(CKM_ECDH1_DERIVE).unwrap();
    let params = |pt: &[u8]| MechParam::Ecdh1 {
        kdf: CKD_NULL,
        shared_data: vec![],
        public_data: pt.to_vec(),
    };
    let a_pt = apubt.get(CKA_EC_POINT).unwrap();
    let b_pt = bpubt.get(CKA_EC_POINT).unwrap();
    let t = Template::new();
    let za = d.derive(apriv.clone(), &params(b_pt), &t).unwrap();
    // raw point as public data
    let zb = d.derive(bpriv.clone(), &params(&a_pt[2..]), &t).unwrap();
    assert_eq!(za.get(CKA_VALUE), zb.get(CKA_VALUE));
    assert_eq!(za.get(CKA_VALUE).unwrap().len(), 32);
    assert_eq!(
        za.get_ulong(CKA_KEY_TYPE).unwrap(),
        Some(CKK_GENERIC_SECRET)
    );
    // truncated to CKA_VALUE_LEN (keeps the trailing bytes), AES key type
    let mut t16 = Template::new();
    t16.set_ulong(CKA_VALUE_LEN, 16);
    t16.set_ulong(CKA_KEY_TYPE, CKK_AES);
    let z16 = d.derive(apriv.clone(), &params(b_pt), &t16).unwrap();
    assert_eq!(
        z16.get(CKA_VALUE).unwrap(),
        &za.get(CKA_VALUE).unwrap()[16..]
    );
    let mut t64 = Template::new();
    t64.set_ulong(CKA_VALUE_LEN, 64);
    assert_eq!(
        rv(d.derive(apriv.clone(), &params(b_pt), &t64)),
        CKR_TEMPLATE_INCONSISTENT
    );
    // X9.63 KDF with SHA-256 gives any length, equal on both sides
    let kdf = |pt: &[u8]| MechParam::Ecdh1 {
        kdf: CKD_SHA256_KDF,
        shared_data: b"info".to_vec(),
        public_data: pt.to_vec(),
    };
    let ka = d.derive(apriv.clone(), &kdf(b_pt), &t64).unwrap();
    let kb = d.derive(bpriv.clone(), &kdf(a_pt), &t64).unwrap();
    assert_eq!(ka.get(CKA_VALUE), kb.get(CKA_VALUE));
    assert_eq!(ka.get(CKA_VALUE).unwrap().len(), 64);
    // bad peer point, bad KDF, shared data with CKD_NULL
    assert_eq!(
        rv(d.derive(apriv.clone(), &params(&[4, 1, 2]), &t)),
        CKR_MECHANISM_PARAM_INVALID
    );
    let bad_kdf = MechParam::Ecdh1 {
        kdf: 0x77,
        shared_data: vec![],
        public_data: b_pt.to_vec(),
    };
    assert_eq!(
        rv(d.derive(apriv.clone(), &bad_kdf, &t)),
        CKR_MECHANISM_PARAM_INVALID
    );
    let bad_shared = MechParam::Ecdh1 {
        kdf: CKD_NULL,
        shared_data: vec![1],
        public_data: b_pt.to_vec(),
    };
    assert_eq!(
        rv(d.derive(apriv.clone(), &bad_shared, &t)),
        CKR_MECHANISM_PARAM_INVALID
    );
    // a P-384 point for a P-256 key
    let (_, _, cpubt, _) = ec(P384);
    assert_eq!(
        rv(d.derive(apriv, &params(cpubt.get(CKA_EC_POINT).unwrap()), &t)),
        CKR_MECHANISM_PARAM_INVALID
    );
}

#[test]
fn eddsa() {
    let (pubk, privk, pubt, privt) = ed25519();
    assert_eq!(pubt.get(CKA_EC_POINT).unwrap().len(), 34);
    assert_eq!(privt.get(CKA_VALUE).unwrap().len(), 32);
    assert_eq!(privk.size(), 255);
    let s = sign(CKM_EDDSA, &MechParam::None, &privk, b"hello");
    verify(CKM_EDDSA, &MechParam::None, &pubk, b"hello", &s).unwrap();
    let pure = MechParam::Eddsa {
        prehash: false,
        context: vec![],
    };
    verify(CKM_EDDSA, &pure, &pubk, b"hello", &s).unwrap();
    assert_eq!(
        rv(verify(CKM_EDDSA, &pure, &pubk, b"hellp", &s)),
        CKR_SIGNATURE_INVALID
    );
    assert_eq!(
        rv(verify(CKM_EDDSA, &pure, &pubk, b"hello", &s[1..])),
        CKR_SIGNATURE_LEN_RANGE
    );
    for bad in [
        MechParam::Eddsa {
            prehash: true,
            context: vec![],
        },
        MechParam::Eddsa {
            prehash: false,
            context: b"ctx".to_vec(),
        },
        MechParam::Ulong(0),
    ] {
        assert_eq!(
            rv(find(CKM_EDDSA).unwrap().sign_init(privk.clone(), &bad)),
            CKR_MECHANISM_PARAM_INVALID
        );
    }
    // curve name instead of the OID
    let mut t = Template::new();
    let mut name = vec![0x13, 12];
    name.extend_from_slice(b"edwards25519");
    t.set(CKA_EC_PARAMS, name.clone());
    let (p2, _, _, _) = keypair(CKM_EC_EDWARDS_KEY_PAIR_GEN, &t);
    assert_eq!(p2.key_type(), CKK_EC_EDWARDS);
    // Ed448 is not supported
    t.set(CKA_EC_PARAMS, vec![0x06, 0x03, 0x2b, 0x65, 0x71]);
    assert_eq!(
        rv(find(CKM_EC_EDWARDS_KEY_PAIR_GEN)
            .unwrap()
            .generate_key_pair(&MechParam::None, &t, &Template::new())),
        CKR_CURVE_NOT_SUPPORTED
    );
    // ECDSA keys are not EdDSA keys
    let (_, eck, _, _) = ec(P256);
    assert_eq!(
        rv(find(CKM_EDDSA).unwrap().sign_init(eck, &MechParam::None)),
        CKR_KEY_TYPE_INCONSISTENT
    );
}

/// RFC 8032 §7.1, TEST 1 (empty message) and TEST 2.
#[test]
fn ed25519_rfc8032() {
    let cases = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
    ];
    for (sk, pk, msg, sig) in cases {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
        t.set(CKA_EC_PARAMS, ED25519.to_vec());
        t.set(CKA_VALUE, hex::decode(sk).unwrap());
        let k = std::sync::Arc::new(Key::from_attributes(&t).unwrap());
        let msg = hex::decode(msg).unwrap();
        assert_eq!(
            hex::encode(sign(CKM_EDDSA, &MechParam::None, &k, &msg)),
            sig
        );
        let p = k.public_attributes().unwrap();
        assert_eq!(hex::encode(&p.get(CKA_EC_POINT).unwrap()[2..]), pk);
        let pk = std::sync::Arc::new(Key::from_attributes(&p).unwrap());
        verify(
            CKM_EDDSA,
            &MechParam::None,
            &pk,
            &msg,
            &hex::decode(sig).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn key_errors() {
    let mut t = Template::new();
    assert_eq!(rv(Key::from_attributes(&t)), CKR_TEMPLATE_INCOMPLETE);
    t.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    assert_eq!(rv(Key::from_attributes(&t)), CKR_TEMPLATE_INCOMPLETE);
    t.set_ulong(CKA_KEY_TYPE, CKK_RSA);
    assert_eq!(rv(Key::from_attributes(&t)), CKR_TEMPLATE_INCOMPLETE);
    t.set(CKA_MODULUS, vec![0xff; 256]);
    t.set(CKA_PUBLIC_EXPONENT, vec![2]);
    assert_eq!(rv(Key::from_attributes(&t)), CKR_ATTRIBUTE_VALUE_INVALID);
    t.set_ulong(CKA_KEY_TYPE, CKK_DSA);
    assert_eq!(rv(Key::from_attributes(&t)), CKR_KEY_TYPE_INCONSISTENT);
    t.set_ulong(CKA_CLASS, CKO_DATA);
    assert_eq!(rv(Key::from_attributes(&t)), CKR_KEY_TYPE_INCONSISTENT);
    // GOST keys go to the GOST seam: CKA_GOSTR3410_PARAMS is required
    let mut g = Template::new();
    g.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    g.set_ulong(CKA_KEY_TYPE, CKK_GOSTR3410_512);
    assert_eq!(rv(Key::from_attributes(&g)), CKR_TEMPLATE_INCOMPLETE);
    g.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    assert_eq!(rv(Key::from_attributes(&g)), CKR_KEY_TYPE_INCONSISTENT);
    // inconsistent RSA private key
    let (_, _, _, mut privt) = rsa(1024);
    let mut q = privt.get(CKA_PRIME_2).unwrap().to_vec();
    q[0] ^= 0x40;
    privt.set(CKA_PRIME_2, q);
    assert_eq!(
        rv(Key::from_attributes(&privt)),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    // AES key of a bad length
    let mut a = Template::new();
    a.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    a.set_ulong(CKA_KEY_TYPE, CKK_AES);
    a.set(CKA_VALUE, vec![0; 17]);
    assert_eq!(rv(Key::from_attributes(&a)), CKR_ATTRIBUTE_VALUE_INVALID);
    // Debug never shows key material
    let k = secret(CKK_GENERIC_SECRET, b"supersecretvalue");
    assert!(!format!("{k:?}").contains("supersecret"));
}

#[test]
fn rsa_private_key_without_crt() {
    let (pubk, _, _, privt) = rsa(1024);
    let mut t = Template::new();
    for ty in [
        CKA_CLASS,
        CKA_KEY_TYPE,
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
    ] {
        t.set(ty, privt.get(ty).unwrap().to_vec());
    }
    let k = std::sync::Arc::new(Key::from_attributes(&t).unwrap());
    let s = sign(CKM_SHA256_RSA_PKCS, &MechParam::None, &k, b"m");
    verify(CKM_SHA256_RSA_PKCS, &MechParam::None, &pubk, b"m", &s).unwrap();
    assert_eq!(
        klyuch_crypto::pkcs8::to_pkcs8(&k).unwrap_err().rv(),
        CKR_KEY_NOT_WRAPPABLE
    );
}
