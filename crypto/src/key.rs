//! Prepared keys: built once from an object's attributes, then shared (`Arc<Key>`) by every
//! operation that uses them, so parsing and validation are not repeated per signature.

use token_api::ck::*;
use token_api::{Result, Template};

/// A key ready for use: public, private or secret, of any supported key type.
pub struct Key {
    // implementation-defined
}

impl Key {
    /// Build a key from an object's attributes. Reads `CKA_CLASS` and `CKA_KEY_TYPE`, then the
    /// components (RSA: `CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`, and for private keys
    /// `CKA_PRIVATE_EXPONENT`, `CKA_PRIME_1/2`, `CKA_EXPONENT_1/2`, `CKA_COEFFICIENT`;
    /// EC/EdDSA: `CKA_EC_PARAMS`, `CKA_EC_POINT` or `CKA_VALUE`; GOST: `CKA_GOSTR3410_PARAMS`,
    /// `CKA_VALUE`; secret keys: `CKA_VALUE`). Invalid or inconsistent components give
    /// `CKR_ATTRIBUTE_VALUE_INVALID` / `CKR_TEMPLATE_INCONSISTENT`, unknown key types
    /// `CKR_KEY_TYPE_INCONSISTENT`, points off the curve `CKR_PUBLIC_KEY_INVALID`.
    pub fn from_attributes(_attrs: &Template) -> Result<Key> {
        todo!()
    }

    pub fn class(&self) -> CK_OBJECT_CLASS {
        todo!()
    }

    pub fn key_type(&self) -> CK_KEY_TYPE {
        todo!()
    }

    /// Key size in the unit `C_GetMechanismInfo` uses for this key type (bits for RSA/EC/GOST,
    /// bytes for AES and generic secrets).
    pub fn size(&self) -> usize {
        todo!()
    }
}
