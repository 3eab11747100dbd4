//! Klyuch's software mechanisms: a registry of [`registry::MechanismImpl`] trait objects, built on
//! `aws-lc-rs` (RSA, ECDSA, EdDSA, ECDH, AES, SHA, HMAC) and `klyuch-gost` (GOST R 34.10-2012,
//! Streebog). The soft token runs every operation here; the PC/SC backend uses it for host-side
//! hashing ([`digest::hash`]), public-key operations, RSA encodings for raw-RSA cards
//! ([`padding`]) and the split of hash-and-sign mechanisms ([`registry::hash_then_sign`]).
//!
//! Keys are prepared once ([`Key::from_attributes`]) and shared as `Arc<Key>`; an operation only
//! clones the `Arc`.
//!
//! # Mechanisms
//!
//! | family | mechanisms | key sizes (`C_GetMechanismInfo`) |
//! |---|---|---|
//! | RSA | `RSA_PKCS_KEY_PAIR_GEN`, `RSA_PKCS` (sign/verify over a caller DigestInfo, encrypt/decrypt, wrap/unwrap), `RSA_X_509`, `SHA{1,224,256,384,512}_RSA_PKCS`, `RSA_PKCS_PSS`, `SHA*_RSA_PKCS_PSS`, `RSA_PKCS_OAEP` (+wrap/unwrap) | 1024-4096 bits (generation: multiples of 128) |
//! | EC | `EC_KEY_PAIR_GEN`, `ECDSA` (raw hash of any length), `ECDSA_SHA{1,224,256,384,512}`, `ECDH1_DERIVE` (`CKD_NULL`, `CKD_SHA*_KDF`) | P-256, P-384, P-521 |
//! | EdDSA | `EC_EDWARDS_KEY_PAIR_GEN`, `EDDSA` (pure Ed25519) | 255 bits |
//! | digest | `SHA_1`, `SHA224`, `SHA256`, `SHA384`, `SHA512` | |
//! | HMAC | `SHA*_HMAC`, `SHA*_HMAC_GENERAL`, `GENERIC_SECRET_KEY_GEN` | 1-4096 bytes (generation: 8-32768 bits) |
//! | AES | `AES_KEY_GEN`, `AES_ECB`, `AES_CBC`, `AES_CBC_PAD`, `AES_CTR`, `AES_GCM`, `AES_KEY_WRAP`, `AES_KEY_WRAP_PAD` | 16-32 bytes |
//! | GOST (`gost.rs`) | `GOSTR3410_KEY_PAIR_GEN`, `GOSTR3410_512_KEY_PAIR_GEN`, `GOSTR3410`, `GOSTR3410_512`, `GOSTR3410_WITH_GOSTR3411_12_256/512`, `GOSTR3411_12_256/512`, `GOSTR3411_12_256/512_HMAC`, `GOSTR3410_12_DERIVE` (`CKD_NULL`) | 256 / 512 bits (HMAC: 1-4096 bytes) |
//!
//! Limits: EdDSA is single-part and pure Ed25519 only (no Ed25519ph/ctx, no Ed448); AES key wrap
//! takes 128- and 256-bit wrapping keys only (aws-lc-rs has no AES-192 KEK); GCM takes IVs of
//! 1-256 bytes and tags of 32, 64 or 96-128 bits; GOST VKO has no `CKD_CPDIVERSIFY_KDF`.
//!
//! raw code (the `unsafe_code` lint) is allowed in `ffi.rs` only (raw `aws-lc-sys` calls: RSA keys from components and the
//! raw RSA operations, ECDSA over a raw hash of any length, AES-GCM with non-default IV/tag sizes).
#![deny(unsafe_code)]

mod aes;
pub mod digest;
mod ec;
mod eddsa;
#[allow(unsafe_code)]
mod ffi;
mod gost;
mod hmac;
pub mod key;
pub mod padding;
pub mod pkcs8;
pub mod random;
pub mod registry;
mod rsa;
mod util;
pub mod x509;

pub use ec::{Curve, curve_from_params};
pub use key::Key;
pub use registry::{MechanismImpl, find, hash_then_sign, mechanisms};
