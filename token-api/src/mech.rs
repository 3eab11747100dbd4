//! Mechanisms with their parameters copied into owned Rust values.
//!
//! The ABI layer reads `CK_MECHANISM.pParameter` according to [`param_layout`] (one table, so the
//! C structs are decoded in one place) and hands the backends a [`Mechanism`].

use crate::ck::*;
use std::fmt;
use zeroize::Zeroizing;

/// A mechanism and its parameter, owned.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Mechanism {
    pub ty: CK_MECHANISM_TYPE,
    pub param: MechParam,
}

impl Mechanism {
    pub fn new(ty: CK_MECHANISM_TYPE) -> Self {
        Mechanism {
            ty,
            param: MechParam::None,
        }
    }
    pub fn with(ty: CK_MECHANISM_TYPE, param: MechParam) -> Self {
        Mechanism { ty, param }
    }
}

/// The decoded `pParameter` of a mechanism.
#[derive(Clone, PartialEq, Eq)]
pub enum MechParam {
    /// No parameter (NULL pointer and zero length).
    None,
    /// An opaque byte string: an IV (AES-CBC), an OID in DER (GOST hash parameters), or the raw
    /// bytes of a parameter this table does not decode.
    Bytes(Vec<u8>),
    /// A single `CK_ULONG` (e.g. `CK_MAC_GENERAL_PARAMS`).
    Ulong(CK_ULONG),
    /// `CK_RSA_PKCS_PSS_PARAMS`.
    RsaPss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    },
    /// `CK_RSA_PKCS_OAEP_PARAMS`; `source` is the label (`CKZ_DATA_SPECIFIED`) or empty.
    RsaOaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        source: Vec<u8>,
    },
    /// `CK_GCM_PARAMS`.
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: CK_ULONG,
    },
    /// `CK_AES_CTR_PARAMS`.
    Ctr {
        counter_bits: CK_ULONG,
        block: [u8; 16],
    },
    /// `CK_ECDH1_DERIVE_PARAMS`.
    Ecdh1 {
        kdf: CK_EC_KDF_TYPE,
        shared_data: Vec<u8>,
        public_data: Vec<u8>,
    },
    /// `CK_GOSTR3410_DERIVE_PARAMS` (VKO GOST R 34.10-2012).
    GostDerive {
        kdf: CK_ULONG,
        public_data: Vec<u8>,
        ukm: Vec<u8>,
    },
    /// `CK_EDDSA_PARAMS`.
    Eddsa { prehash: bool, context: Vec<u8> },
    /// `CK_KEY_DERIVATION_STRING_DATA` (e.g. `CKM_AES_ECB_ENCRYPT_DATA`), possibly secret.
    DeriveData(Zeroizing<Vec<u8>>),
    /// `CK_AES_CBC_ENCRYPT_DATA_PARAMS`.
    CbcDeriveData {
        iv: [u8; 16],
        data: Zeroizing<Vec<u8>>,
    },
}

impl fmt::Debug for MechParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MechParam::None => f.write_str("None"),
            MechParam::Bytes(b) => write!(f, "Bytes[{}]", b.len()),
            MechParam::Ulong(v) => write!(f, "Ulong({v})"),
            MechParam::RsaPss {
                hash,
                mgf,
                salt_len,
            } => {
                write!(f, "RsaPss(hash={hash:#x}, mgf={mgf:#x}, salt={salt_len})")
            }
            MechParam::RsaOaep { hash, mgf, source } => {
                write!(
                    f,
                    "RsaOaep(hash={hash:#x}, mgf={mgf:#x}, label[{}])",
                    source.len()
                )
            }
            MechParam::Gcm { iv, aad, tag_bits } => {
                write!(
                    f,
                    "Gcm(iv[{}], aad[{}], tag_bits={tag_bits})",
                    iv.len(),
                    aad.len()
                )
            }
            MechParam::Ctr { counter_bits, .. } => write!(f, "Ctr(bits={counter_bits})"),
            MechParam::Ecdh1 {
                kdf,
                shared_data,
                public_data,
            } => write!(
                f,
                "Ecdh1(kdf={kdf:#x}, shared[{}], public[{}])",
                shared_data.len(),
                public_data.len()
            ),
            MechParam::GostDerive {
                kdf,
                public_data,
                ukm,
            } => {
                write!(
                    f,
                    "GostDerive(kdf={kdf:#x}, public[{}], ukm[{}])",
                    public_data.len(),
                    ukm.len()
                )
            }
            MechParam::Eddsa { prehash, context } => {
                write!(f, "Eddsa(ph={prehash}, ctx[{}])", context.len())
            }
            MechParam::DeriveData(d) => write!(f, "DeriveData[{}]", d.len()),
            MechParam::CbcDeriveData { data, .. } => write!(f, "CbcDeriveData[{}]", data.len()),
        }
    }
}

/// How the ABI layer must read `pParameter` for a mechanism type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParamLayout {
    /// Copy the bytes as they are (`MechParam::Bytes`, or `None` when NULL/0).
    Bytes,
    Ulong,
    RsaPss,
    RsaOaep,
    Gcm,
    Ctr,
    Ecdh1,
    GostDerive,
    Eddsa,
    DeriveData,
    CbcDeriveData,
}

/// The parameter layout of a mechanism type (PKCS#11 3.0 mechanisms spec; TC26 extension for
/// `CKM_GOSTR3410_12_DERIVE`, which takes `CK_GOSTR3410_DERIVE_PARAMS`). Every mechanism not in
/// the table takes its parameter as plain bytes.
pub fn param_layout(ty: CK_MECHANISM_TYPE) -> ParamLayout {
    match ty {
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => ParamLayout::RsaPss,
        CKM_RSA_PKCS_OAEP => ParamLayout::RsaOaep,
        CKM_AES_GCM => ParamLayout::Gcm,
        CKM_AES_CTR => ParamLayout::Ctr,
        CKM_ECDH1_DERIVE | CKM_ECDH1_COFACTOR_DERIVE => ParamLayout::Ecdh1,
        crate::ck::CKM_GOSTR3410_12_DERIVE | CKM_GOSTR3410_DERIVE => ParamLayout::GostDerive,
        CKM_EDDSA => ParamLayout::Eddsa,
        CKM_SHA_1_HMAC_GENERAL
        | CKM_SHA224_HMAC_GENERAL
        | CKM_SHA256_HMAC_GENERAL
        | CKM_SHA384_HMAC_GENERAL
        | CKM_SHA512_HMAC_GENERAL
        | CKM_AES_MAC_GENERAL => ParamLayout::Ulong,
        CKM_AES_ECB_ENCRYPT_DATA | CKM_CONCATENATE_DATA_AND_BASE | CKM_XOR_BASE_AND_DATA => {
            ParamLayout::DeriveData
        }
        CKM_AES_CBC_ENCRYPT_DATA => ParamLayout::CbcDeriveData,
        _ => ParamLayout::Bytes,
    }
}

/// `CK_MECHANISM_INFO`, owned. Key sizes are in the units the spec gives per mechanism (bits for
/// RSA/EC/GOST, bytes for AES and generic secrets).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MechInfo {
    pub min_key_size: CK_ULONG,
    pub max_key_size: CK_ULONG,
    pub flags: CK_FLAGS,
}

impl MechInfo {
    pub const fn new(min_key_size: CK_ULONG, max_key_size: CK_ULONG, flags: CK_FLAGS) -> Self {
        MechInfo {
            min_key_size,
            max_key_size,
            flags,
        }
    }
}

/// The spec name of a mechanism type (for logs, errors and `klyuch`), or `None` if unknown here.
pub fn mech_name(ty: CK_MECHANISM_TYPE) -> Option<&'static str> {
    use crate::ck as c;
    Some(match ty {
        CKM_RSA_PKCS_KEY_PAIR_GEN => "CKM_RSA_PKCS_KEY_PAIR_GEN",
        CKM_RSA_PKCS => "CKM_RSA_PKCS",
        CKM_RSA_X_509 => "CKM_RSA_X_509",
        CKM_SHA1_RSA_PKCS => "CKM_SHA1_RSA_PKCS",
        CKM_SHA224_RSA_PKCS => "CKM_SHA224_RSA_PKCS",
        CKM_SHA256_RSA_PKCS => "CKM_SHA256_RSA_PKCS",
        CKM_SHA384_RSA_PKCS => "CKM_SHA384_RSA_PKCS",
        CKM_SHA512_RSA_PKCS => "CKM_SHA512_RSA_PKCS",
        CKM_RSA_PKCS_PSS => "CKM_RSA_PKCS_PSS",
        CKM_SHA1_RSA_PKCS_PSS => "CKM_SHA1_RSA_PKCS_PSS",
        CKM_SHA224_RSA_PKCS_PSS => "CKM_SHA224_RSA_PKCS_PSS",
        CKM_SHA256_RSA_PKCS_PSS => "CKM_SHA256_RSA_PKCS_PSS",
        CKM_SHA384_RSA_PKCS_PSS => "CKM_SHA384_RSA_PKCS_PSS",
        CKM_SHA512_RSA_PKCS_PSS => "CKM_SHA512_RSA_PKCS_PSS",
        CKM_RSA_PKCS_OAEP => "CKM_RSA_PKCS_OAEP",
        CKM_EC_KEY_PAIR_GEN => "CKM_EC_KEY_PAIR_GEN",
        CKM_ECDSA => "CKM_ECDSA",
        CKM_ECDSA_SHA1 => "CKM_ECDSA_SHA1",
        CKM_ECDSA_SHA224 => "CKM_ECDSA_SHA224",
        CKM_ECDSA_SHA256 => "CKM_ECDSA_SHA256",
        CKM_ECDSA_SHA384 => "CKM_ECDSA_SHA384",
        CKM_ECDSA_SHA512 => "CKM_ECDSA_SHA512",
        CKM_ECDH1_DERIVE => "CKM_ECDH1_DERIVE",
        CKM_EC_EDWARDS_KEY_PAIR_GEN => "CKM_EC_EDWARDS_KEY_PAIR_GEN",
        CKM_EDDSA => "CKM_EDDSA",
        CKM_SHA_1 => "CKM_SHA_1",
        CKM_SHA224 => "CKM_SHA224",
        CKM_SHA256 => "CKM_SHA256",
        CKM_SHA384 => "CKM_SHA384",
        CKM_SHA512 => "CKM_SHA512",
        CKM_SHA_1_HMAC => "CKM_SHA_1_HMAC",
        CKM_SHA224_HMAC => "CKM_SHA224_HMAC",
        CKM_SHA256_HMAC => "CKM_SHA256_HMAC",
        CKM_SHA384_HMAC => "CKM_SHA384_HMAC",
        CKM_SHA512_HMAC => "CKM_SHA512_HMAC",
        CKM_GENERIC_SECRET_KEY_GEN => "CKM_GENERIC_SECRET_KEY_GEN",
        CKM_AES_KEY_GEN => "CKM_AES_KEY_GEN",
        CKM_AES_ECB => "CKM_AES_ECB",
        CKM_AES_CBC => "CKM_AES_CBC",
        CKM_AES_CBC_PAD => "CKM_AES_CBC_PAD",
        CKM_AES_CTR => "CKM_AES_CTR",
        CKM_AES_GCM => "CKM_AES_GCM",
        CKM_AES_KEY_WRAP => "CKM_AES_KEY_WRAP",
        CKM_AES_KEY_WRAP_PAD => "CKM_AES_KEY_WRAP_PAD",
        CKM_GOSTR3410_KEY_PAIR_GEN => "CKM_GOSTR3410_KEY_PAIR_GEN",
        CKM_GOSTR3410 => "CKM_GOSTR3410",
        CKM_GOSTR3410_WITH_GOSTR3411 => "CKM_GOSTR3410_WITH_GOSTR3411",
        c::CKM_GOSTR3410_512_KEY_PAIR_GEN => "CKM_GOSTR3410_512_KEY_PAIR_GEN",
        c::CKM_GOSTR3410_512 => "CKM_GOSTR3410_512",
        c::CKM_GOSTR3410_12_DERIVE => "CKM_GOSTR3410_12_DERIVE",
        c::CKM_GOSTR3410_WITH_GOSTR3411_12_256 => "CKM_GOSTR3410_WITH_GOSTR3411_12_256",
        c::CKM_GOSTR3410_WITH_GOSTR3411_12_512 => "CKM_GOSTR3410_WITH_GOSTR3411_12_512",
        c::CKM_GOSTR3411_12_256 => "CKM_GOSTR3411_12_256",
        c::CKM_GOSTR3411_12_512 => "CKM_GOSTR3411_12_512",
        c::CKM_GOSTR3411_12_256_HMAC => "CKM_GOSTR3411_12_256_HMAC",
        c::CKM_GOSTR3411_12_512_HMAC => "CKM_GOSTR3411_12_512_HMAC",
        _ => return None,
    })
}
