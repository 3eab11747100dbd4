//! Signatures per second through `klyuch-crypto` (registry lookup, `sign_init`, `sign`: what the
//! soft token does per `C_SignInit` + `C_Sign`) against the bare aws-lc-rs call on the same key.
//!
//! `cargo run --release -p klyuch-crypto --example crypto_speed [seconds per case]`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use klyuch_crypto::{Key, find};
use token_api::ck::*;
use token_api::{MechParam, Template};

/// Operations per second of `f`, run for about `secs`.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    for _ in 0..10 {
        f();
    }
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn keypair(mech: CK_MECHANISM_TYPE, public: &Template) -> (Arc<Key>, Template) {
    let (_, s) = find(mech)
        .unwrap()
        .generate_key_pair(&MechParam::None, public, &Template::new())
        .unwrap();
    let mut s = s;
    s.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    (Arc::new(Key::from_attributes(&s).unwrap()), s)
}

fn ours(mech: CK_MECHANISM_TYPE, key: &Arc<Key>, msg: &[u8]) {
    let mut op = find(mech)
        .unwrap()
        .sign_init(key.clone(), &MechParam::None)
        .unwrap();
    black_box(op.sign(black_box(msg)).unwrap());
}

/// Best of five alternating rounds of each (the machine may be busy with other work).
fn compare(secs: f64, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut ra, mut rb) = (0f64, 0f64);
    for _ in 0..5 {
        ra = ra.max(rate(secs / 5.0, &mut a));
        rb = rb.max(rate(secs / 5.0, &mut b));
    }
    (ra, rb)
}

fn report(name: &str, ours: f64, raw: f64) {
    println!(
        "{name:<28} {ours:>12.0} /s {raw:>12.0} /s {:>8.2}x",
        ours / raw
    );
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let msg = [0x42u8; 64];
    let rng = SystemRandom::new();
    println!(
        "{:<28} {:>15} {:>15} {:>9}",
        "operation", "klyuch-crypto", "aws-lc-rs", "ratio"
    );

    // RSA-2048, CKM_SHA256_RSA_PKCS
    let mut t = Template::new();
    t.set_ulong(CKA_MODULUS_BITS, 2048);
    let (rsa, _) = keypair(CKM_RSA_PKCS_KEY_PAIR_GEN, &t);
    let der = klyuch_crypto::pkcs8::to_pkcs8(&rsa).unwrap();
    let raw = RsaKeyPair::from_pkcs8(&der).unwrap();
    let mut sig = vec![0u8; raw.public_modulus_len()];
    let (a, b) = compare(
        secs,
        || ours(CKM_SHA256_RSA_PKCS, &rsa, &msg),
        || {
            raw.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                black_box(&msg),
                &mut sig,
            )
            .unwrap();
            black_box(&sig);
        },
    );
    report("RSA-2048 SHA256_RSA_PKCS", a, b);

    // P-256, CKM_ECDSA_SHA256
    let mut t = Template::new();
    t.set(
        CKA_EC_PARAMS,
        vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    );
    let (ec, _) = keypair(CKM_EC_KEY_PAIR_GEN, &t);
    let der = klyuch_crypto::pkcs8::to_pkcs8(&ec).unwrap();
    let raw = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    let (a, b) = compare(
        secs,
        || ours(CKM_ECDSA_SHA256, &ec, &msg),
        || {
            black_box(raw.sign(&rng, black_box(&msg)).unwrap());
        },
    );
    report("P-256 ECDSA_SHA256", a, b);

    // Ed25519, CKM_EDDSA
    let mut t = Template::new();
    t.set(CKA_EC_PARAMS, vec![0x06, 0x03, 0x2b, 0x65, 0x70]);
    let (ed, edt) = keypair(CKM_EC_EDWARDS_KEY_PAIR_GEN, &t);
    let raw = Ed25519KeyPair::from_seed_unchecked(edt.get(CKA_VALUE).unwrap()).unwrap();
    let (a, b) = compare(
        secs,
        || ours(CKM_EDDSA, &ed, &msg),
        || {
            black_box(raw.sign(black_box(&msg)));
        },
    );
    report("Ed25519 EDDSA", a, b);

    // SHA-256 of 64 bytes, CKM_SHA256 (C_DigestInit + C_Digest)
    let (a, b) = compare(
        secs,
        || {
            let mut op = find(CKM_SHA256)
                .unwrap()
                .digest_init(&MechParam::None)
                .unwrap();
            op.update(black_box(&msg)).unwrap();
            black_box(op.finish().unwrap());
        },
        || {
            black_box(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                black_box(&msg),
            ));
        },
    );
    report("SHA-256 64 B", a, b);
}
