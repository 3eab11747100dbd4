//! The mechanism registry: one `&'static dyn MechanismImpl` per mechanism type, contributed by the
//! algorithm modules. No `match` ladders over mechanism numbers outside the modules themselves.

use std::sync::Arc;
use token_api::ck::*;
use token_api::ops::{CipherOp, DigestOp, SignOp, VerifyOp};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::key::Key;

/// One mechanism. Operations it does not support return `CKR_MECHANISM_INVALID` (the defaults).
pub trait MechanismImpl: Send + Sync {
    fn ty(&self) -> CK_MECHANISM_TYPE;
    /// Truthful `C_GetMechanismInfo` (sizes and `CKF_*` flags of what is implemented).
    fn info(&self) -> MechInfo;

    fn sign_init(&self, _key: Arc<Key>, _p: &MechParam) -> Result<Box<dyn SignOp>> {
        Err(Error::mechanism_invalid())
    }
    fn verify_init(&self, _key: Arc<Key>, _p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        Err(Error::mechanism_invalid())
    }
    fn encrypt_init(&self, _key: Arc<Key>, _p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Err(Error::mechanism_invalid())
    }
    fn decrypt_init(&self, _key: Arc<Key>, _p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Err(Error::mechanism_invalid())
    }
    fn digest_init(&self, _p: &MechParam) -> Result<Box<dyn DigestOp>> {
        Err(Error::mechanism_invalid())
    }
    /// Secret key generation: returns the key's own attributes (`CKA_KEY_TYPE`, `CKA_VALUE`,
    /// `CKA_VALUE_LEN`), given the caller's template (`CKA_VALUE_LEN`, ...).
    fn generate_key(&self, _p: &MechParam, _t: &Template) -> Result<Template> {
        Err(Error::mechanism_invalid())
    }
    /// Key pair generation: returns (public, private) key attributes (`CKA_KEY_TYPE` and the
    /// components), given the caller's templates (`CKA_MODULUS_BITS`, `CKA_PUBLIC_EXPONENT`,
    /// `CKA_EC_PARAMS`, `CKA_GOSTR3410_PARAMS`, ...).
    fn generate_key_pair(
        &self,
        _p: &MechParam,
        _public: &Template,
        _private: &Template,
    ) -> Result<(Template, Template)> {
        Err(Error::mechanism_invalid())
    }
    /// Key derivation: returns the new key's attributes (`CKA_VALUE`, and `CKA_KEY_TYPE` /
    /// `CKA_VALUE_LEN` as the template and mechanism decide).
    fn derive(&self, _base: Arc<Key>, _p: &MechParam, _t: &Template) -> Result<Template> {
        Err(Error::mechanism_invalid())
    }
    /// Wrap `key_data` (a secret key's value, or a private key's PKCS#8 DER).
    fn wrap(&self, _wrapping: Arc<Key>, _p: &MechParam, _key_data: &[u8]) -> Result<Vec<u8>> {
        Err(Error::mechanism_invalid())
    }
    fn unwrap(
        &self,
        _unwrapping: Arc<Key>,
        _p: &MechParam,
        _wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::mechanism_invalid())
    }
}

/// Every mechanism Klyuch implements in software, in `C_GetMechanismList` order.
pub fn mechanisms() -> &'static [&'static dyn MechanismImpl] {
    todo!()
}

/// The implementation of one mechanism type.
pub fn find(ty: CK_MECHANISM_TYPE) -> Option<&'static dyn MechanismImpl> {
    mechanisms().iter().copied().find(|m| m.ty() == ty)
}
