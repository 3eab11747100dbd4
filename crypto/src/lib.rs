//! Klyuch's software mechanisms: a registry of [`registry::MechanismImpl`] trait objects, built on
//! `aws-lc-rs` (RSA, ECDSA, EdDSA, ECDH, AES, SHA, HMAC) and `klyuch-gost` (GOST R 34.10-2012,
//! Streebog). The soft token runs every operation here; the PC/SC backend uses it for host-side
//! hashing ([`digest::hash`]), public-key operations, RSA encodings for raw-RSA cards
//! ([`padding`]) and the split of hash-and-sign mechanisms ([`registry::hash_then_sign`]).
//!
//! Keys are prepared once ([`Key::from_attributes`]) and shared as `Arc<Key>`; an operation only
//! clones the `Arc`.
//!
//! `unsafe` is allowed in `ffi.rs` only (raw `aws-lc-sys` calls: RSA keys from components and the
//! raw RSA operations, ECDSA over a raw hash of any length).
#![deny(unsafe_code)]

mod aes;
pub mod digest;
mod ec;
mod eddsa;
#[allow(unsafe_code)]
mod ffi;
pub mod gost;
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
