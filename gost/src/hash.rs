//! Streebog (GOST R 34.11-2012), HMAC-Streebog and KDF_GOSTR3411_2012_256, as thin helpers
//! over RustCrypto's `streebog` and `hmac` crates.

use digest::{Digest, KeyInit, Mac};

pub use streebog::{Streebog256, Streebog512};

/// HMAC_GOSTR3411_2012_256 (R 50.1.113-2016 §4.1.1; RFC 7836 §4.1.1).
pub type HmacStreebog256 = hmac::Hmac<Streebog256>;
/// HMAC_GOSTR3411_2012_512 (R 50.1.113-2016 §4.1.2; RFC 7836 §4.1.2).
pub type HmacStreebog512 = hmac::Hmac<Streebog512>;

/// Streebog-256 of `data`, in the byte order implementations print (gost-pkcs11.md §5).
pub fn streebog256(data: &[u8]) -> [u8; 32] {
    Streebog256::digest(data).into()
}

/// Streebog-512 of `data`, in the byte order implementations print (gost-pkcs11.md §5).
pub fn streebog512(data: &[u8]) -> [u8; 64] {
    Streebog512::digest(data).into()
}

/// HMAC-Streebog-256 of `data` under `key` (any key length).
pub fn hmac_streebog256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <HmacStreebog256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-Streebog-512 of `data` under `key` (any key length).
pub fn hmac_streebog512(key: &[u8], data: &[u8]) -> [u8; 64] {
    let mut mac = <HmacStreebog512 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// KDF_GOSTR3411_2012_256 (R 50.1.113-2016 §4.5; RFC 7836 §4.5):
/// `HMAC_GOSTR3411_2012_256(K_in, 0x01 || label || 0x00 || seed || 0x01 || 0x00)`.
pub fn kdf_gostr3411_2012_256(key: &[u8], label: &[u8], seed: &[u8]) -> [u8; 32] {
    let mut mac = <HmacStreebog256 as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(&[0x01]);
    mac.update(label);
    mac.update(&[0x00]);
    mac.update(seed);
    mac.update(&[0x01, 0x00]);
    mac.finalize().into_bytes().into()
}
