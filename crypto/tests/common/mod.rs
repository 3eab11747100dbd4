//! Helpers for the integration tests: key generation through the registry, and keys from the
//! generated attribute templates, as the soft token builds them.
#![allow(dead_code)]

use std::sync::Arc;

use klyuch_crypto::{Key, find};
use token_api::ck::*;
use token_api::{MechParam, Template};

pub fn merged(class: CK_OBJECT_CLASS, generated: &Template) -> Template {
    let mut t = generated.clone();
    t.set_ulong(CKA_CLASS, class);
    t
}

/// (public, private) prepared keys and their templates.
pub fn keypair(
    mech: CK_MECHANISM_TYPE,
    public: &Template,
) -> (Arc<Key>, Arc<Key>, Template, Template) {
    let (p, s) = find(mech)
        .unwrap()
        .generate_key_pair(&MechParam::None, public, &Template::new())
        .unwrap();
    let p = merged(CKO_PUBLIC_KEY, &p);
    let s = merged(CKO_PRIVATE_KEY, &s);
    (
        Arc::new(Key::from_attributes(&p).unwrap()),
        Arc::new(Key::from_attributes(&s).unwrap()),
        p,
        s,
    )
}

pub fn rsa(bits: CK_ULONG) -> (Arc<Key>, Arc<Key>, Template, Template) {
    let mut t = Template::new();
    t.set_ulong(CKA_MODULUS_BITS, bits);
    keypair(CKM_RSA_PKCS_KEY_PAIR_GEN, &t)
}

pub const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
pub const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
pub const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

pub fn ec(params: &[u8]) -> (Arc<Key>, Arc<Key>, Template, Template) {
    let mut t = Template::new();
    t.set(CKA_EC_PARAMS, params.to_vec());
    keypair(CKM_EC_KEY_PAIR_GEN, &t)
}

pub fn ed25519() -> (Arc<Key>, Arc<Key>, Template, Template) {
    let mut t = Template::new();
    t.set(CKA_EC_PARAMS, ED25519.to_vec());
    keypair(CKM_EC_EDWARDS_KEY_PAIR_GEN, &t)
}

pub fn secret(kt: CK_KEY_TYPE, value: &[u8]) -> Arc<Key> {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
    t.set_ulong(CKA_KEY_TYPE, kt);
    t.set(CKA_VALUE, value.to_vec());
    Arc::new(Key::from_attributes(&t).unwrap())
}

pub fn sign(mech: CK_MECHANISM_TYPE, p: &MechParam, key: &Arc<Key>, data: &[u8]) -> Vec<u8> {
    let mut op = find(mech).unwrap().sign_init(key.clone(), p).unwrap();
    let s = op.sign(data).unwrap();
    assert_eq!(s.len(), op.signature_len());
    s
}

pub fn verify(
    mech: CK_MECHANISM_TYPE,
    p: &MechParam,
    key: &Arc<Key>,
    data: &[u8],
    sig: &[u8],
) -> token_api::Result<()> {
    find(mech)
        .unwrap()
        .verify_init(key.clone(), p)?
        .verify(data, sig)
}

pub fn rv<T>(r: token_api::Result<T>) -> CK_RV {
    match r {
        Ok(_) => CKR_OK,
        Err(e) => e.rv(),
    }
}
