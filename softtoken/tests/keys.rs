//! Keys, certificates and crypto operations of the soft token (through klyuch-crypto): key
//! generation and the attributes the token maintains, key usage checks, wrapping, unwrapping,
//! derivation, `CKA_ALWAYS_AUTHENTICATE`, certificates taken apart from their DER.

mod common;

use common::*;
use std::sync::Arc;
use token_api::ck::*;
use token_api::{AttrRead, MechParam, Mechanism, ObjectId, SlotSource, Template, Token, UserType};

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const CERT: &[u8] = include_bytes!("data/cert.der");
const KEY_P8: &[u8] = include_bytes!("data/key.p8.der");

fn ul(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn keypair(
    t: &Arc<dyn Token>,
    mech: CK_MECHANISM_TYPE,
    mut public: Template,
    mut private: Template,
    id: &[u8],
) -> (ObjectId, ObjectId) {
    for tpl in [&mut public, &mut private] {
        tpl.set_default(CKA_TOKEN, vec![1]);
        tpl.set_default(CKA_ID, id.to_vec());
    }
    t.generate_key_pair(&RW, &Mechanism::new(mech), &public, &private)
        .unwrap()
}

fn rsa_pub(bits: CK_ULONG) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_MODULUS_BITS, bits);
    t
}

fn ec_pub(params: &[u8]) -> Template {
    let mut t = Template::new();
    t.set(CKA_EC_PARAMS, params.to_vec());
    t
}

fn sign(t: &Arc<dyn Token>, m: &Mechanism, key: ObjectId, data: &[u8]) -> Vec<u8> {
    t.sign_init(&RW, m, key).unwrap().sign(data).unwrap()
}

fn verify(t: &Arc<dyn Token>, m: &Mechanism, key: ObjectId, data: &[u8], sig: &[u8]) -> bool {
    t.verify_init(&RW, m, key)
        .unwrap()
        .verify(data, sig)
        .is_ok()
}

fn read(t: &Arc<dyn Token>, id: ObjectId, ty: CK_ATTRIBUTE_TYPE) -> AttrRead {
    t.get_attributes(&RW, id, &[ty]).unwrap().remove(0)
}

fn aes_template(extra: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_VALUE_LEN, 32);
    t.set_bool(CKA_TOKEN, true);
    for (ty, v) in extra {
        t.set(*ty, v.clone());
    }
    t
}

#[test]
fn generated_key_pairs_sign_persist_and_hide_their_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let (rpub, rpriv) = keypair(
        &t,
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        rsa_pub(2048),
        Template::new(),
        b"rsa",
    );
    let (epub, epriv) = keypair(
        &t,
        CKM_EC_KEY_PAIR_GEN,
        ec_pub(P256),
        Template::new(),
        b"ec",
    );
    let (dpub, dpriv) = keypair(
        &t,
        CKM_EC_EDWARDS_KEY_PAIR_GEN,
        ec_pub(ED25519),
        Template::new(),
        b"ed",
    );

    // Token-maintained attributes.
    for (k, mech) in [
        (rpriv, CKM_RSA_PKCS_KEY_PAIR_GEN),
        (epriv, CKM_EC_KEY_PAIR_GEN),
        (dpriv, CKM_EC_EDWARDS_KEY_PAIR_GEN),
    ] {
        assert_eq!(get(&t, k, CKA_LOCAL), vec![1]);
        assert_eq!(get(&t, k, CKA_KEY_GEN_MECHANISM), ul(mech));
        assert_eq!(get(&t, k, CKA_ALWAYS_SENSITIVE), vec![1]);
        assert_eq!(get(&t, k, CKA_NEVER_EXTRACTABLE), vec![1]);
        assert_eq!(get(&t, k, CKA_PRIVATE), vec![1]);
        assert_eq!(get(&t, k, CKA_SENSITIVE), vec![1]);
        assert_eq!(get(&t, k, CKA_UNIQUE_ID).len(), 32);
    }
    assert_eq!(get(&t, rpub, CKA_LOCAL), vec![1]);
    assert_eq!(get(&t, rpub, CKA_PRIVATE), vec![0]);
    assert_eq!(get(&t, rpub, CKA_MODULUS_BITS), ul(2048));
    assert_eq!(get(&t, rpub, CKA_MODULUS).len(), 256);
    assert_eq!(read(&t, rpriv, CKA_PRIVATE_EXPONENT), AttrRead::Sensitive);
    assert_eq!(read(&t, rpriv, CKA_PRIME_1), AttrRead::Sensitive);
    assert_eq!(read(&t, epriv, CKA_VALUE), AttrRead::Sensitive);
    assert_eq!(read(&t, dpriv, CKA_VALUE), AttrRead::Sensitive);
    assert_eq!(get(&t, rpriv, CKA_MODULUS).len(), 256);
    assert_eq!(get(&t, epub, CKA_EC_PARAMS), P256);
    assert_eq!(get(&t, epub, CKA_EC_POINT)[0], 0x04);

    let msg = b"the message";
    let cases = [
        (Mechanism::new(CKM_SHA256_RSA_PKCS), rpub, rpriv),
        (Mechanism::new(CKM_ECDSA_SHA256), epub, epriv),
        (Mechanism::with(CKM_EDDSA, MechParam::None), dpub, dpriv),
    ];
    let mut sigs = Vec::new();
    for (m, pubk, privk) in &cases {
        let sig = sign(&t, m, *privk, msg);
        assert!(verify(&t, m, *pubk, msg, &sig));
        assert!(!verify(&t, m, *pubk, b"another message", &sig));
        sigs.push(sig);
    }
    drop((t, src));

    // Another process finds and uses the stored keys.
    let src = open(tmp.path());
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    let mut s = Template::new();
    s.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    assert!(
        t.find_objects(&RW, &s).unwrap().is_empty(),
        "private keys need a login"
    );
    login_user(&t);
    assert_eq!(t.find_objects(&RW, &s).unwrap().len(), 3);
    for ((m, _, _), sig) in cases.iter().zip(&sigs) {
        let mut s = Template::new();
        s.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        let id: &[u8] = match m.ty {
            CKM_SHA256_RSA_PKCS => b"rsa",
            CKM_ECDSA_SHA256 => b"ec",
            _ => b"ed",
        };
        s.set(CKA_ID, id.to_vec());
        let privk = t.find_objects(&RW, &s).unwrap()[0];
        s.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        let pubk = t.find_objects(&RW, &s).unwrap()[0];
        let sig2 = sign(&t, m, privk, msg);
        assert!(verify(&t, m, pubk, msg, &sig2));
        assert!(verify(&t, m, pubk, msg, sig));
    }
}

#[test]
fn key_usage_class_and_allowed_mechanisms_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let mut no_sign = Template::new();
    no_sign.set_bool(CKA_SIGN, false);
    let (epub, epriv) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), no_sign, b"k");
    let m = Mechanism::new(CKM_ECDSA_SHA256);
    let rv = |r: token_api::Result<Box<dyn token_api::ops::SignOp>>| r.err().unwrap().rv();
    assert_eq!(
        rv(t.sign_init(&RW, &m, epriv)),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    assert_eq!(rv(t.sign_init(&RW, &m, epub)), CKR_KEY_TYPE_INCONSISTENT);
    let d = t
        .create_object(&RW, &data("d", b"v", false, false))
        .unwrap();
    assert_eq!(rv(t.sign_init(&RW, &m, d)), CKR_KEY_HANDLE_INVALID);
    assert_eq!(rv(t.sign_init(&RW, &m, 999_999)), CKR_KEY_HANDLE_INVALID);
    assert_eq!(
        rv(t.sign_init(&RW, &Mechanism::new(CKM_VENDOR_DEFINED + 77), epriv)),
        CKR_MECHANISM_INVALID
    );
    // Turn signing on, then restrict the mechanisms.
    let mut ch = Template::new();
    ch.set_bool(CKA_SIGN, true);
    t.set_attributes(&RW, epriv, &ch).unwrap();
    assert!(t.sign_init(&RW, &m, epriv).is_ok());
    let mut ch = Template::new();
    ch.set(CKA_ALLOWED_MECHANISMS, ul(CKM_ECDSA));
    t.set_attributes(&RW, epriv, &ch).unwrap();
    assert_eq!(rv(t.sign_init(&RW, &m, epriv)), CKR_MECHANISM_INVALID);
    assert!(t.sign_init(&RW, &Mechanism::new(CKM_ECDSA), epriv).is_ok());
    // Components are read-only.
    let mut ch = Template::new();
    ch.set(CKA_EC_PARAMS, P256.to_vec());
    assert_eq!(
        t.set_attributes(&RW, epub, &ch).unwrap_err().rv(),
        CKR_ATTRIBUTE_READ_ONLY
    );
    // Encrypting with a private key, decrypting with a public one.
    let aes = t
        .generate_key(
            &RW,
            &Mechanism::new(CKM_AES_KEY_GEN),
            &aes_template(&[(CKA_ENCRYPT, vec![0])]),
        )
        .unwrap();
    let cbc = Mechanism::with(CKM_AES_CBC_PAD, MechParam::Bytes(vec![0; 16]));
    assert_eq!(
        t.encrypt_init(&RW, &cbc, aes).err().unwrap().rv(),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
    assert!(t.decrypt_init(&RW, &cbc, aes).is_ok());
    assert_eq!(
        t.decrypt_init(&RW, &m, epub).err().unwrap().rv(),
        CKR_KEY_TYPE_INCONSISTENT
    );
    assert_eq!(
        t.derive_key(
            &RW,
            &Mechanism::new(CKM_ECDH1_DERIVE),
            epriv,
            &Template::new()
        )
        .unwrap_err()
        .rv(),
        CKR_KEY_FUNCTION_NOT_PERMITTED
    );
}

#[test]
fn generation_templates_are_checked_before_generating() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    let aes_gen = |tpl: &Template| {
        t.generate_key(&RW, &Mechanism::new(CKM_AES_KEY_GEN), tpl)
            .unwrap_err()
            .rv()
    };
    // A private key needs the user logged in (secret keys default to private).
    assert_eq!(aes_gen(&aes_template(&[])), CKR_USER_NOT_LOGGED_IN);
    login_user(&t);
    assert_eq!(
        t.generate_key(&RO, &Mechanism::new(CKM_AES_KEY_GEN), &aes_template(&[]))
            .unwrap_err()
            .rv(),
        CKR_SESSION_READ_ONLY
    );
    assert_eq!(
        aes_gen(&aes_template(&[(CKA_VALUE, vec![0; 32])])),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        aes_gen(&aes_template(&[(CKA_LOCAL, vec![1])])),
        CKR_ATTRIBUTE_READ_ONLY
    );
    assert_eq!(
        aes_gen(&aes_template(&[(CKA_CLASS, ul(CKO_PUBLIC_KEY))])),
        CKR_TEMPLATE_INCONSISTENT
    );
    assert_eq!(
        aes_gen(&aes_template(&[(CKA_KEY_TYPE, ul(CKK_GENERIC_SECRET))])),
        CKR_TEMPLATE_INCONSISTENT
    );
    assert_eq!(
        aes_gen(&aes_template(&[(CKA_MODULUS, vec![1])])),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    let mut no_len = aes_template(&[]);
    no_len.remove(CKA_VALUE_LEN);
    assert_eq!(aes_gen(&no_len), CKR_TEMPLATE_INCOMPLETE);
    assert_eq!(
        t.generate_key_pair(
            &RW,
            &Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &Template::new(),
            &Template::new()
        )
        .unwrap_err()
        .rv(),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut priv_t = Template::new();
    priv_t.set(CKA_MODULUS, vec![1]);
    assert_eq!(
        t.generate_key_pair(
            &RW,
            &Mechanism::new(CKM_RSA_PKCS_KEY_PAIR_GEN),
            &rsa_pub(2048),
            &priv_t
        )
        .unwrap_err()
        .rv(),
        CKR_ATTRIBUTE_READ_ONLY
    );
    // EC parameters repeated in the private template are accepted when they agree.
    let mut priv_t = Template::new();
    priv_t.set(CKA_EC_PARAMS, P256.to_vec());
    keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), priv_t, b"x");
    // Session key pair, public token key and private session key mixed.
    let mut pubt = ec_pub(P256);
    pubt.set_bool(CKA_TOKEN, true);
    let mut privt = Template::new();
    privt.set_bool(CKA_TOKEN, false);
    let (p, q) = t
        .generate_key_pair(&RW, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &pubt, &privt)
        .unwrap();
    assert_eq!(get(&t, p, CKA_TOKEN), vec![1]);
    assert_eq!(get(&t, q, CKA_TOKEN), vec![0]);
}

#[test]
fn secret_keys_wrap_unwrap_digest_and_encrypt() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let kek = t
        .generate_key(&RW, &Mechanism::new(CKM_AES_KEY_GEN), &aes_template(&[]))
        .unwrap();
    let exportable = t
        .generate_key(
            &RW,
            &Mechanism::new(CKM_AES_KEY_GEN),
            &aes_template(&[(CKA_EXTRACTABLE, vec![1]), (CKA_SENSITIVE, vec![0])]),
        )
        .unwrap();
    assert_eq!(get(&t, exportable, CKA_ALWAYS_SENSITIVE), vec![0]);
    assert_eq!(get(&t, exportable, CKA_NEVER_EXTRACTABLE), vec![0]);
    let value = get(&t, exportable, CKA_VALUE);
    assert_eq!(value.len(), 32);
    assert_eq!(read(&t, kek, CKA_VALUE), AttrRead::Sensitive);
    assert_eq!(t.digest_key_value(&RW, exportable).unwrap().to_vec(), value);
    let (_, epriv) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), Template::new(), b"e");
    assert_eq!(
        t.digest_key_value(&RW, epriv).unwrap_err().rv(),
        CKR_KEY_INDIGESTIBLE
    );

    let kw = Mechanism::new(CKM_AES_KEY_WRAP);
    let wrapped = t.wrap_key(&RW, &kw, kek, exportable).unwrap();
    assert_eq!(wrapped.len(), 40);
    assert_eq!(
        t.wrap_key(&RW, &kw, kek, kek).unwrap_err().rv(),
        CKR_KEY_UNEXTRACTABLE
    );
    let mut ut = Template::new();
    ut.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    ut.set_ulong(CKA_KEY_TYPE, CKK_AES);
    ut.set_bool(CKA_EXTRACTABLE, true);
    ut.set_bool(CKA_SENSITIVE, false);
    let u = t.unwrap_key(&RW, &kw, kek, &wrapped, &ut).unwrap();
    assert_eq!(get(&t, u, CKA_VALUE), value);
    assert_eq!(get(&t, u, CKA_LOCAL), vec![0]);
    assert_eq!(get(&t, u, CKA_ALWAYS_SENSITIVE), vec![0]);
    assert_eq!(
        get(&t, u, CKA_KEY_GEN_MECHANISM),
        ul(CK_UNAVAILABLE_INFORMATION)
    );
    assert_eq!(get(&t, u, CKA_VALUE_LEN), ul(32));
    let mut bad = ut.clone();
    bad.remove(CKA_KEY_TYPE);
    assert_eq!(
        t.unwrap_key(&RW, &kw, kek, &wrapped, &bad)
            .unwrap_err()
            .rv(),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut tampered = wrapped.clone();
    tampered[5] ^= 1;
    assert!(t.unwrap_key(&RW, &kw, kek, &tampered, &ut).is_err());

    // A private key wrapped (PKCS#8) and unwrapped.
    let mut ext = Template::new();
    ext.set_bool(CKA_EXTRACTABLE, true);
    let (epub2, epriv2) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), ext, b"e2");
    let kwp = Mechanism::new(CKM_AES_KEY_WRAP_PAD);
    let wrapped = t.wrap_key(&RW, &kwp, kek, epriv2).unwrap();
    let mut ut = Template::new();
    ut.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    ut.set_ulong(CKA_KEY_TYPE, CKK_EC);
    ut.set_bool(CKA_TOKEN, true);
    let back = t.unwrap_key(&RW, &kwp, kek, &wrapped, &ut).unwrap();
    let m = Mechanism::new(CKM_ECDSA_SHA256);
    let sig = sign(&t, &m, back, b"m");
    assert!(verify(&t, &m, epub2, b"m", &sig));
    assert_eq!(get(&t, back, CKA_LOCAL), vec![0]);

    // Encryption round trip with the generated key.
    let gcm = Mechanism::with(
        CKM_AES_GCM,
        MechParam::Gcm {
            iv: vec![3; 12],
            aad: b"aad".to_vec(),
            tag_bits: 128,
        },
    );
    let ct = t
        .encrypt_init(&RW, &gcm, kek)
        .unwrap()
        .one_shot(b"plain text")
        .unwrap();
    let pt = t
        .decrypt_init(&RW, &gcm, kek)
        .unwrap()
        .one_shot(&ct)
        .unwrap();
    assert_eq!(pt, b"plain text");
}

#[test]
fn ecdh_derivation_sets_the_inherited_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let mut derive = Template::new();
    derive.set_bool(CKA_DERIVE, true);
    let (apub, apriv) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), derive.clone(), b"a");
    let (bpub, bpriv) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), derive, b"b");
    let point = |k| get(&t, k, CKA_EC_POINT);
    let mut out = Template::new();
    out.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    out.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    out.set_ulong(CKA_VALUE_LEN, 32);
    out.set_bool(CKA_SENSITIVE, false);
    out.set_bool(CKA_EXTRACTABLE, true);
    let ecdh = |peer: Vec<u8>| {
        Mechanism::with(
            CKM_ECDH1_DERIVE,
            MechParam::Ecdh1 {
                kdf: CKD_NULL,
                shared_data: Vec::new(),
                public_data: peer,
            },
        )
    };
    let k1 = t.derive_key(&RW, &ecdh(point(bpub)), apriv, &out).unwrap();
    let k2 = t.derive_key(&RW, &ecdh(point(apub)), bpriv, &out).unwrap();
    assert_eq!(get(&t, k1, CKA_VALUE), get(&t, k2, CKA_VALUE));
    assert_eq!(get(&t, k1, CKA_LOCAL), vec![0]);
    assert_eq!(get(&t, k1, CKA_ALWAYS_SENSITIVE), vec![0]);
    assert_eq!(get(&t, k1, CKA_NEVER_EXTRACTABLE), vec![0]);
    // Sensitive and unextractable result of an always-sensitive, never-extractable base.
    let mut out2 = out.clone();
    out2.set_bool(CKA_SENSITIVE, true);
    out2.set_bool(CKA_EXTRACTABLE, false);
    let k3 = t.derive_key(&RW, &ecdh(point(bpub)), apriv, &out2).unwrap();
    assert_eq!(get(&t, k3, CKA_ALWAYS_SENSITIVE), vec![1]);
    assert_eq!(get(&t, k3, CKA_NEVER_EXTRACTABLE), vec![1]);
    assert_eq!(read(&t, k3, CKA_VALUE), AttrRead::Sensitive);
}

#[test]
fn always_authenticate_keys_need_a_context_login_per_operation() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let mut aa = Template::new();
    aa.set_bool(CKA_ALWAYS_AUTHENTICATE, true);
    let (epub, epriv) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), aa, b"aa");
    let m = Mechanism::new(CKM_ECDSA_SHA256);
    let mut op = t.sign_init(&RW, &m, epriv).unwrap();
    assert!(op.needs_context_login());
    assert_eq!(op.sign(b"m").unwrap_err().rv(), CKR_USER_NOT_LOGGED_IN);
    assert_eq!(
        op.context_login(Some(&pin(b"wrong-pin"))).unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
    assert_ne!(t.info().flags & CKF_USER_PIN_COUNT_LOW, 0);
    assert!(op.needs_context_login());
    op.context_login(Some(&pin(USER_PIN))).unwrap();
    assert!(!op.needs_context_login());
    assert_eq!(t.info().flags & CKF_USER_PIN_COUNT_LOW, 0);
    let sig = op.sign(b"m").unwrap();
    assert!(verify(&t, &m, epub, b"m", &sig));
    // The next operation needs its own login.
    assert!(t.sign_init(&RW, &m, epriv).unwrap().needs_context_login());
    // Ordinary keys do not.
    let (_, plain) = keypair(&t, CKM_EC_KEY_PAIR_GEN, ec_pub(P256), Template::new(), b"p");
    assert!(!t.sign_init(&RW, &m, plain).unwrap().needs_context_login());
    assert_eq!(
        t.login(UserType::ContextSpecific, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_OPERATION_NOT_INITIALIZED
    );
}

#[test]
fn certificates_and_imported_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    let mut c = Template::new();
    c.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    c.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    c.set_bool(CKA_TOKEN, true);
    c.set(CKA_ID, b"cert-id".to_vec());
    c.set(CKA_LABEL, b"my cert".to_vec());
    c.set(CKA_VALUE, CERT.to_vec());
    let cert = t.create_object(&RW, &c).unwrap();
    let subject = get(&t, cert, CKA_SUBJECT);
    assert!(subject.windows(6).any(|w| w == b"Klyuch"));
    assert_eq!(get(&t, cert, CKA_ISSUER), subject);
    assert!(!get(&t, cert, CKA_SERIAL_NUMBER).is_empty());
    assert_eq!(get(&t, cert, CKA_START_DATE).len(), 8);
    assert_eq!(get(&t, cert, CKA_END_DATE).len(), 8);
    assert!(get(&t, cert, CKA_END_DATE) > get(&t, cert, CKA_START_DATE));
    assert_eq!(get(&t, cert, CKA_PRIVATE), vec![0]);
    assert_eq!(get(&t, cert, CKA_TRUSTED), vec![0]);
    let mut s = Template::new();
    s.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    s.set(CKA_SUBJECT, subject.clone());
    assert_eq!(t.find_objects(&RW, &s).unwrap(), vec![cert]);
    // Only the SO may make a certificate trusted.
    let mut tr = c.clone();
    tr.set_bool(CKA_TRUSTED, true);
    assert_eq!(
        t.create_object(&RW, &tr).unwrap_err().rv(),
        CKR_ATTRIBUTE_READ_ONLY
    );
    // Errors: no value, a broken value, another certificate type.
    let mut bad = c.clone();
    bad.remove(CKA_VALUE);
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut bad = c.clone();
    bad.set(CKA_VALUE, CERT[..100].to_vec());
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_ATTRIBUTE_VALUE_INVALID
    );
    let mut bad = c.clone();
    bad.set_ulong(CKA_CERTIFICATE_TYPE, CKC_WTLS);
    assert!(t.create_object(&RW, &bad).is_err());

    // The matching private key imported from PKCS#8, and its public key.
    login_user(&t);
    let mut k = klyuch_crypto::pkcs8::private_key_attributes(KEY_P8).unwrap();
    k.set_bool(CKA_TOKEN, true);
    k.set(CKA_ID, b"cert-id".to_vec());
    let key = t.create_object(&RW, &k).unwrap();
    assert_eq!(get(&t, key, CKA_LOCAL), vec![0]);
    assert_eq!(get(&t, key, CKA_ALWAYS_SENSITIVE), vec![0]);
    assert_eq!(
        get(&t, key, CKA_KEY_GEN_MECHANISM),
        ul(CK_UNAVAILABLE_INFORMATION)
    );
    let mut p = klyuch_crypto::pkcs8::public_from_private(&k).unwrap();
    p.set_bool(CKA_TOKEN, true);
    p.set(CKA_ID, b"cert-id".to_vec());
    let pubk = t.create_object(&RW, &p).unwrap();
    let m = Mechanism::new(CKM_ECDSA_SHA256);
    let sig = sign(&t, &m, key, b"hello");
    assert!(verify(&t, &m, pubk, b"hello", &sig));
    let mut s = Template::new();
    s.set(CKA_ID, b"cert-id".to_vec());
    assert_eq!(t.find_objects(&RW, &s).unwrap().len(), 3);
    // A broken key is refused.
    let mut bad = k.clone();
    bad.set(CKA_VALUE, vec![0xff; 32]);
    assert!(t.create_object(&RW, &bad).is_err());
    let mut bad = k.clone();
    bad.remove(CKA_VALUE);
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_TEMPLATE_INCOMPLETE
    );
}

#[test]
fn mechanisms_and_random() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    let list = t.mechanism_list();
    assert!(list.contains(&CKM_SHA256_RSA_PKCS));
    assert!(list.contains(&CKM_EDDSA));
    assert!(t.mechanism_info(CKM_SHA256).is_ok());
    assert_eq!(
        t.mechanism_info(CKM_VENDOR_DEFINED + 1).unwrap_err().rv(),
        CKR_MECHANISM_INVALID
    );
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    t.generate_random(&mut a).unwrap();
    t.generate_random(&mut b).unwrap();
    assert_ne!(a, b);
    let mut d = t.digest_init(&RW, &Mechanism::new(CKM_SHA256)).unwrap();
    d.update(b"abc").unwrap();
    assert_eq!(d.finish().unwrap().len(), 32);
}

#[test]
fn key_material_never_appears_in_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let value: [u8; 32] = softtoken::seal::random().unwrap();
    let public_value: [u8; 32] = softtoken::seal::random().unwrap();
    for (v, private) in [(value, true), (public_value, false)] {
        let mut k = Template::new();
        k.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        k.set_ulong(CKA_KEY_TYPE, CKK_AES);
        k.set_bool(CKA_TOKEN, true);
        k.set_bool(CKA_PRIVATE, private);
        k.set(CKA_VALUE, v.to_vec());
        t.create_object(&RW, &k).unwrap();
    }
    let mut ext = Template::new();
    ext.set_bool(CKA_EXTRACTABLE, true);
    ext.set_bool(CKA_SENSITIVE, false);
    let (_, rpriv) = keypair(&t, CKM_RSA_PKCS_KEY_PAIR_GEN, rsa_pub(1024), ext, b"r");
    let d = get(&t, rpriv, CKA_PRIVATE_EXPONENT);
    let p = get(&t, rpriv, CKA_PRIME_1);
    for f in files(tmp.path()) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [&value[..], &public_value[..], &d[..16], &p[..16]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds key material",
                f.display()
            );
        }
    }
}
