//! The mechanism registry: one `&'static dyn MechanismImpl` per mechanism type, contributed by the
//! algorithm modules. No `match` ladders over mechanism numbers outside the modules themselves.

use std::sync::{Arc, LazyLock};
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

use crate::aes::{AesBlockMech, AesKeyGen, AesKwMech, BlockMode};
use crate::digest::{DigestMech, Hash};
use crate::ec::{EcKeyGen, Ecdh1Derive, Ecdsa};
use crate::eddsa::{EdKeyGen, Eddsa};
use crate::hmac::{GenericKeyGen, HmacMech};
use crate::rsa::{RsaKeyGen, RsaMech, Scheme};

macro_rules! rsa {
    ($name:ident, $ty:expr, $scheme:expr, $hash:expr) => {
        static $name: RsaMech = RsaMech {
            ty: $ty,
            scheme: $scheme,
            hash: $hash,
        };
    };
}
rsa!(RSA_PKCS, CKM_RSA_PKCS, Scheme::Pkcs1, None);
rsa!(RSA_X_509, CKM_RSA_X_509, Scheme::Raw, None);
rsa!(SHA1_RSA, CKM_SHA1_RSA_PKCS, Scheme::Pkcs1, Some(Hash::Sha1));
rsa!(
    SHA224_RSA,
    CKM_SHA224_RSA_PKCS,
    Scheme::Pkcs1,
    Some(Hash::Sha224)
);
rsa!(
    SHA256_RSA,
    CKM_SHA256_RSA_PKCS,
    Scheme::Pkcs1,
    Some(Hash::Sha256)
);
rsa!(
    SHA384_RSA,
    CKM_SHA384_RSA_PKCS,
    Scheme::Pkcs1,
    Some(Hash::Sha384)
);
rsa!(
    SHA512_RSA,
    CKM_SHA512_RSA_PKCS,
    Scheme::Pkcs1,
    Some(Hash::Sha512)
);
rsa!(RSA_PSS, CKM_RSA_PKCS_PSS, Scheme::Pss, None);
rsa!(
    SHA1_PSS,
    CKM_SHA1_RSA_PKCS_PSS,
    Scheme::Pss,
    Some(Hash::Sha1)
);
rsa!(
    SHA224_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    Scheme::Pss,
    Some(Hash::Sha224)
);
rsa!(
    SHA256_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    Scheme::Pss,
    Some(Hash::Sha256)
);
rsa!(
    SHA384_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    Scheme::Pss,
    Some(Hash::Sha384)
);
rsa!(
    SHA512_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    Scheme::Pss,
    Some(Hash::Sha512)
);
rsa!(RSA_OAEP, CKM_RSA_PKCS_OAEP, Scheme::Oaep, None);

macro_rules! ecdsa {
    ($name:ident, $ty:expr, $hash:expr) => {
        static $name: Ecdsa = Ecdsa {
            ty: $ty,
            hash: $hash,
        };
    };
}
ecdsa!(ECDSA, CKM_ECDSA, None);
ecdsa!(ECDSA_SHA1, CKM_ECDSA_SHA1, Some(Hash::Sha1));
ecdsa!(ECDSA_SHA224, CKM_ECDSA_SHA224, Some(Hash::Sha224));
ecdsa!(ECDSA_SHA256, CKM_ECDSA_SHA256, Some(Hash::Sha256));
ecdsa!(ECDSA_SHA384, CKM_ECDSA_SHA384, Some(Hash::Sha384));
ecdsa!(ECDSA_SHA512, CKM_ECDSA_SHA512, Some(Hash::Sha512));

static SHA1: DigestMech = DigestMech(Hash::Sha1);
static SHA224: DigestMech = DigestMech(Hash::Sha224);
static SHA256: DigestMech = DigestMech(Hash::Sha256);
static SHA384: DigestMech = DigestMech(Hash::Sha384);
static SHA512: DigestMech = DigestMech(Hash::Sha512);

macro_rules! hmac {
    ($name:ident, $ty:expr, $hash:expr, $general:expr) => {
        static $name: HmacMech = HmacMech {
            ty: $ty,
            hash: $hash,
            general: $general,
        };
    };
}
hmac!(SHA1_HMAC, CKM_SHA_1_HMAC, Hash::Sha1, false);
hmac!(SHA1_HMAC_G, CKM_SHA_1_HMAC_GENERAL, Hash::Sha1, true);
hmac!(SHA224_HMAC, CKM_SHA224_HMAC, Hash::Sha224, false);
hmac!(SHA224_HMAC_G, CKM_SHA224_HMAC_GENERAL, Hash::Sha224, true);
hmac!(SHA256_HMAC, CKM_SHA256_HMAC, Hash::Sha256, false);
hmac!(SHA256_HMAC_G, CKM_SHA256_HMAC_GENERAL, Hash::Sha256, true);
hmac!(SHA384_HMAC, CKM_SHA384_HMAC, Hash::Sha384, false);
hmac!(SHA384_HMAC_G, CKM_SHA384_HMAC_GENERAL, Hash::Sha384, true);
hmac!(SHA512_HMAC, CKM_SHA512_HMAC, Hash::Sha512, false);
hmac!(SHA512_HMAC_G, CKM_SHA512_HMAC_GENERAL, Hash::Sha512, true);

static AES_ECB: AesBlockMech = AesBlockMech {
    ty: CKM_AES_ECB,
    mode: BlockMode::Ecb,
};
static AES_CBC: AesBlockMech = AesBlockMech {
    ty: CKM_AES_CBC,
    mode: BlockMode::Cbc,
};
static AES_CBC_PAD: AesBlockMech = AesBlockMech {
    ty: CKM_AES_CBC_PAD,
    mode: BlockMode::CbcPad,
};
static AES_KW: AesKwMech = AesKwMech {
    ty: CKM_AES_KEY_WRAP,
    pad: false,
};
static AES_KWP: AesKwMech = AesKwMech {
    ty: CKM_AES_KEY_WRAP_PAD,
    pad: true,
};

/// The standard (non-GOST) mechanisms, in `C_GetMechanismList` order: key generation, then
/// RSA, EC, EdDSA, digests, HMAC, AES.
static STANDARD: &[&dyn MechanismImpl] = &[
    &RsaKeyGen,
    &EcKeyGen,
    &EdKeyGen,
    &GenericKeyGen,
    &AesKeyGen,
    &RSA_PKCS,
    &RSA_X_509,
    &SHA1_RSA,
    &SHA224_RSA,
    &SHA256_RSA,
    &SHA384_RSA,
    &SHA512_RSA,
    &RSA_PSS,
    &SHA1_PSS,
    &SHA224_PSS,
    &SHA256_PSS,
    &SHA384_PSS,
    &SHA512_PSS,
    &RSA_OAEP,
    &ECDSA,
    &ECDSA_SHA1,
    &ECDSA_SHA224,
    &ECDSA_SHA256,
    &ECDSA_SHA384,
    &ECDSA_SHA512,
    &Ecdh1Derive,
    &Eddsa,
    &SHA1,
    &SHA224,
    &SHA256,
    &SHA384,
    &SHA512,
    &SHA1_HMAC,
    &SHA1_HMAC_G,
    &SHA224_HMAC,
    &SHA224_HMAC_G,
    &SHA256_HMAC,
    &SHA256_HMAC_G,
    &SHA384_HMAC,
    &SHA384_HMAC_G,
    &SHA512_HMAC,
    &SHA512_HMAC_G,
    &AES_ECB,
    &AES_CBC,
    &AES_CBC_PAD,
    &crate::aes::AES_CTR,
    &crate::aes::AES_GCM,
    &AES_KW,
    &AES_KWP,
];

static ALL: LazyLock<Vec<&'static dyn MechanismImpl>> = LazyLock::new(|| {
    STANDARD
        .iter()
        .chain(crate::gost::MECHANISMS.iter())
        .copied()
        .collect()
});

/// Every mechanism Klyuch implements in software, in `C_GetMechanismList` order.
pub fn mechanisms() -> &'static [&'static dyn MechanismImpl] {
    &ALL
}

/// The mechanisms sorted by type, for [`find`] (called on every `C_*Init`).
static BY_TYPE: LazyLock<Vec<(CK_MECHANISM_TYPE, &'static dyn MechanismImpl)>> =
    LazyLock::new(|| {
        let mut v: Vec<_> = ALL.iter().map(|m| (m.ty(), *m)).collect();
        v.sort_by_key(|e| e.0);
        v
    });

/// The implementation of one mechanism type.
pub fn find(ty: CK_MECHANISM_TYPE) -> Option<&'static dyn MechanismImpl> {
    BY_TYPE
        .binary_search_by_key(&ty, |e| e.0)
        .ok()
        .map(|i| BY_TYPE[i].1)
}

/// For a hash-and-sign mechanism, the digest mechanism and the raw signature mechanism it is
/// made of: "hash with H, then sign the hash with R" (`CKM_SHA256_RSA_PKCS` →
/// (`CKM_SHA256`, `CKM_RSA_PKCS`): the raw mechanism takes the DigestInfo, see
/// [`crate::padding::digest_info`]; `CKM_SHA256_RSA_PKCS_PSS` → (`CKM_SHA256`,
/// `CKM_RSA_PKCS_PSS`); `CKM_ECDSA_SHA256` → (`CKM_SHA256`, `CKM_ECDSA`)). `None` for anything
/// else (GOST pairs come from `gost.rs`).
pub fn hash_then_sign(mech: CK_MECHANISM_TYPE) -> Option<(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)> {
    const PAIRS: &[(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)] = &[
        (CKM_SHA1_RSA_PKCS, CKM_SHA_1, CKM_RSA_PKCS),
        (CKM_SHA224_RSA_PKCS, CKM_SHA224, CKM_RSA_PKCS),
        (CKM_SHA256_RSA_PKCS, CKM_SHA256, CKM_RSA_PKCS),
        (CKM_SHA384_RSA_PKCS, CKM_SHA384, CKM_RSA_PKCS),
        (CKM_SHA512_RSA_PKCS, CKM_SHA512, CKM_RSA_PKCS),
        (CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, CKM_RSA_PKCS_PSS),
        (CKM_SHA224_RSA_PKCS_PSS, CKM_SHA224, CKM_RSA_PKCS_PSS),
        (CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKM_RSA_PKCS_PSS),
        (CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, CKM_RSA_PKCS_PSS),
        (CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, CKM_RSA_PKCS_PSS),
        (CKM_ECDSA_SHA1, CKM_SHA_1, CKM_ECDSA),
        (CKM_ECDSA_SHA224, CKM_SHA224, CKM_ECDSA),
        (CKM_ECDSA_SHA256, CKM_SHA256, CKM_ECDSA),
        (CKM_ECDSA_SHA384, CKM_SHA384, CKM_ECDSA),
        (CKM_ECDSA_SHA512, CKM_SHA512, CKM_ECDSA),
    ];
    PAIRS
        .iter()
        .find(|p| p.0 == mech)
        .map(|p| (p.1, p.2))
        .or_else(|| crate::gost::hash_then_sign(mech))
}
