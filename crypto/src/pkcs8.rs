//! Private keys in PKCS#8 (and the formats `klyuch import` reads) to PKCS#11 attributes and back.

use token_api::{Result, Template};
use zeroize::Zeroizing;

use crate::key::Key;

/// The private key object attributes (`CKA_CLASS` = private key, `CKA_KEY_TYPE` and the
/// components) of a PKCS#8 `PrivateKeyInfo` in DER (RSA, EC P-256/384/521, Ed25519, GOST
/// R 34.10-2012 as OpenSSL's GOST engine writes it).
pub fn private_key_attributes(_der: &[u8]) -> Result<Template> {
    todo!()
}

/// The matching public key object attributes for a private key template.
pub fn public_from_private(_private: &Template) -> Result<Template> {
    todo!()
}

/// A private key as PKCS#8 DER (for `C_WrapKey`).
pub fn to_pkcs8(_key: &Key) -> Result<Zeroizing<Vec<u8>>> {
    todo!()
}
