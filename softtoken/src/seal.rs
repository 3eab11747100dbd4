//! The store's own cryptography, all from `aws-lc-rs`: AES-256-GCM for records and PIN wraps,
//! PBKDF2-HMAC-SHA-256 for the PIN-derived key-encryption keys, SHA-256 for frame checksums, and
//! the system random generator.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, pbkdf2, rand};
use std::num::NonZeroU32;
use token_api::ck::*;
use token_api::{Error, Result};
use zeroize::Zeroizing;

/// Length of every symmetric key of the store (AES-256).
pub const KEY_LEN: usize = 32;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;

/// A 256-bit secret key, wiped on drop.
pub type SecretKey = Zeroizing<[u8; KEY_LEN]>;

/// Fill `out` from the system random generator.
pub fn fill_random(out: &mut [u8]) -> Result<()> {
    rand::fill(out).map_err(|_| Error::with(CKR_FUNCTION_FAILED, "system random generator failed"))
}

/// `N` random bytes.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    fill_random(&mut b)?;
    Ok(b)
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<SecretKey> {
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(&mut k[..])?;
    Ok(k)
}

/// PBKDF2-HMAC-SHA-256 of a PIN: the key-encryption key that wraps the token key.
pub fn derive_kek(pin: &[u8], salt: &[u8], iterations: u32) -> SecretKey {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        pin,
        &mut out[..],
    );
    out
}

/// SHA-256 of `data`, cut to 16 bytes: the frame checksum (detects accidental damage without any
/// key; the AEAD tags inside detect deliberate changes).
pub fn checksum(data: &[u8]) -> [u8; 16] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

/// An AES-256-GCM key ready for many seal/open calls.
pub struct Aead(LessSafeKey);

impl Aead {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        // AES-256-GCM accepts any 32-byte key, so this cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte AES-256-GCM key");
        Aead(LessSafeKey::new(unbound))
    }

    /// Encrypt `plaintext` under a fresh random nonce. Returns (nonce, ciphertext || tag).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| Error::general("AES-GCM seal failed"))?;
        Ok((nonce, buf))
    }

    /// Decrypt and authenticate. `None` when the tag does not match (damaged or foreign data,
    /// or the wrong key).
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let n = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut buf[..],
            )
            .ok()?
            .len();
        buf.truncate(n);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = random_key().unwrap();
        let a = Aead::new(&k);
        let (n, mut ct) = a.seal(b"aad", b"hello").unwrap();
        assert_eq!(&a.open(&n, b"aad", &ct).unwrap()[..], b"hello");
        assert!(a.open(&n, b"aaD", &ct).is_none());
        ct[0] ^= 1;
        assert!(a.open(&n, b"aad", &ct).is_none());
        let other = Aead::new(&random_key().unwrap());
        ct[0] ^= 1;
        assert!(other.open(&n, b"aad", &ct).is_none());
    }

    #[test]
    fn kdf_is_deterministic_and_salted() {
        let a = derive_kek(b"1234", b"salt-salt-salt-1", 1000);
        let b = derive_kek(b"1234", b"salt-salt-salt-1", 1000);
        let c = derive_kek(b"1234", b"salt-salt-salt-2", 1000);
        let d = derive_kek(b"1234", b"salt-salt-salt-1", 1001);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
