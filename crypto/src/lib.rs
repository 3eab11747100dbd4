//! Klyuch's software mechanisms: a registry of [`registry::MechanismImpl`] trait objects, built on
//! `aws-lc-rs` (RSA, ECDSA, EdDSA, ECDH, AES, SHA, HMAC) and `klyuch-gost` (GOST R 34.10-2012,
//! Streebog). The soft token runs every operation here; the PC/SC backend uses it for host-side
//! hashing, public-key operations and parsing.
//!
//! `unsafe` is allowed in `ffi.rs` only (raw `aws-lc-sys` calls for `CKM_RSA_PKCS` with a
//! caller-supplied DigestInfo and `CKM_ECDSA` over a raw hash of any length).
#![deny(unsafe_code)]

pub mod key;
pub mod pkcs8;
pub mod random;
pub mod registry;
pub mod x509;

pub use key::Key;
pub use registry::{MechanismImpl, find, mechanisms};
