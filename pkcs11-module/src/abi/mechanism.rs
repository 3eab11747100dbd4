//! `CK_MECHANISM` → [`Mechanism`]: the parameter structs of every mechanism Klyuch knows are
//! decoded here, in one place, by [`token_api::mech::param_layout`].

use token_api::ck::*;
use token_api::mech::{MechParam, Mechanism, ParamLayout, param_layout};
use token_api::{Error, Result};
use zeroize::Zeroizing;

use super::ptr::{in_bytes, read_in, to_usize};

fn bad_param(what: &str) -> Error {
    Error::with(CKR_MECHANISM_PARAM_INVALID, what.to_owned())
}

/// Read a parameter struct `T` exactly (`ulParameterLen` must be `size_of::<T>()`).
///
/// # Safety
/// `p` must be NULL or readable for `len` bytes.
unsafe fn param_struct<T>(p: *const std::ffi::c_void, len: CK_ULONG, what: &str) -> Result<T> {
    if p.is_null() || to_usize(len)? != size_of::<T>() {
        return Err(bad_param(&format!(
            "{what}: expected a {}-byte parameter",
            size_of::<T>()
        )));
    }
    // SAFETY: non-NULL and readable for size_of::<T>() bytes per the contract.
    unsafe { read_in(p as *const T) }
}

/// # Safety
/// As [`in_bytes`]; failures are `CKR_MECHANISM_PARAM_INVALID`.
unsafe fn bytes(p: *const u8, len: CK_ULONG, what: &str) -> Result<Vec<u8>> {
    // SAFETY: forwarded caller contract.
    unsafe { in_bytes(p, len) }
        .map(<[u8]>::to_vec)
        .map_err(|_| bad_param(what))
}

/// Copy a mechanism and its parameter.
///
/// # Safety
/// `m` must be NULL or point to a readable `CK_MECHANISM` whose parameter (and the buffers it
/// points to) are readable for their stated lengths.
pub unsafe fn read_mechanism(m: *const CK_MECHANISM) -> Result<Mechanism> {
    // SAFETY: forwarded caller contract.
    let m = unsafe { read_in(m) }?;
    let (p, len) = (m.pParameter as *const std::ffi::c_void, m.ulParameterLen);
    let param = match param_layout(m.mechanism) {
        ParamLayout::Bytes => {
            if p.is_null() && len == 0 {
                MechParam::None
            } else {
                // SAFETY: forwarded caller contract.
                MechParam::Bytes(unsafe { bytes(p.cast(), len, "parameter") }?)
            }
        }
        ParamLayout::Ulong => {
            // SAFETY: forwarded caller contract.
            MechParam::Ulong(unsafe { param_struct::<CK_ULONG>(p, len, "CK_MAC_GENERAL_PARAMS") }?)
        }
        ParamLayout::RsaPss => {
            // SAFETY: forwarded caller contract.
            let s: CK_RSA_PKCS_PSS_PARAMS =
                unsafe { param_struct(p, len, "CK_RSA_PKCS_PSS_PARAMS") }?;
            MechParam::RsaPss {
                hash: s.hashAlg,
                mgf: s.mgf,
                salt_len: s.sLen,
            }
        }
        ParamLayout::RsaOaep => {
            // SAFETY: forwarded caller contract.
            let s: CK_RSA_PKCS_OAEP_PARAMS =
                unsafe { param_struct(p, len, "CK_RSA_PKCS_OAEP_PARAMS") }?;
            let source = match s.source {
                0 => Vec::new(),
                // SAFETY: the struct's buffer is readable per the caller contract.
                CKZ_DATA_SPECIFIED => unsafe {
                    bytes(
                        s.pSourceData as *const u8,
                        s.ulSourceDataLen,
                        "OAEP source data",
                    )
                }?,
                _ => return Err(bad_param("OAEP source type")),
            };
            MechParam::RsaOaep {
                hash: s.hashAlg,
                mgf: s.mgf,
                source,
            }
        }
        ParamLayout::Gcm => {
            // SAFETY: forwarded caller contract.
            let s: CK_GCM_PARAMS = unsafe { param_struct(p, len, "CK_GCM_PARAMS") }?;
            // SAFETY: the struct's buffers are readable per the caller contract.
            let iv = unsafe { bytes(s.pIv, s.ulIvLen, "GCM IV") }?;
            // SAFETY: as above.
            let aad = unsafe { bytes(s.pAAD, s.ulAADLen, "GCM AAD") }?;
            MechParam::Gcm {
                iv,
                aad,
                tag_bits: s.ulTagBits,
            }
        }
        ParamLayout::Ctr => {
            // SAFETY: forwarded caller contract.
            let s: CK_AES_CTR_PARAMS = unsafe { param_struct(p, len, "CK_AES_CTR_PARAMS") }?;
            MechParam::Ctr {
                counter_bits: s.ulCounterBits,
                block: s.cb,
            }
        }
        ParamLayout::Ecdh1 => {
            // SAFETY: forwarded caller contract.
            let s: CK_ECDH1_DERIVE_PARAMS =
                unsafe { param_struct(p, len, "CK_ECDH1_DERIVE_PARAMS") }?;
            MechParam::Ecdh1 {
                kdf: s.kdf,
                // SAFETY: the struct's buffers are readable per the caller contract.
                shared_data: unsafe { bytes(s.pSharedData, s.ulSharedDataLen, "shared data") }?,
                // SAFETY: as above.
                public_data: unsafe { bytes(s.pPublicData, s.ulPublicDataLen, "public data") }?,
            }
        }
        ParamLayout::GostDerive => {
            // SAFETY: forwarded caller contract.
            let s: CK_GOSTR3410_DERIVE_PARAMS =
                unsafe { param_struct(p, len, "CK_GOSTR3410_DERIVE_PARAMS") }?;
            MechParam::GostDerive {
                kdf: s.kdf,
                // SAFETY: the struct's buffers are readable per the caller contract.
                public_data: unsafe { bytes(s.pPublicData, s.ulPublicDataLen, "public data") }?,
                // SAFETY: as above.
                ukm: unsafe { bytes(s.pUKM, s.ulUKMLen, "UKM") }?,
            }
        }
        ParamLayout::Eddsa => {
            if p.is_null() && len == 0 {
                MechParam::None
            } else {
                // SAFETY: forwarded caller contract.
                let s: CK_EDDSA_PARAMS = unsafe { param_struct(p, len, "CK_EDDSA_PARAMS") }?;
                MechParam::Eddsa {
                    prehash: s.phFlag != 0,
                    // SAFETY: the struct's buffer is readable per the caller contract.
                    context: unsafe { bytes(s.pContextData, s.ulContextDataLen, "context") }?,
                }
            }
        }
        ParamLayout::DeriveData => {
            // SAFETY: forwarded caller contract.
            let s: CK_KEY_DERIVATION_STRING_DATA =
                unsafe { param_struct(p, len, "CK_KEY_DERIVATION_STRING_DATA") }?;
            // SAFETY: the struct's buffer is readable per the caller contract.
            MechParam::DeriveData(Zeroizing::new(unsafe { bytes(s.pData, s.ulLen, "data") }?))
        }
        ParamLayout::CbcDeriveData => {
            // SAFETY: forwarded caller contract.
            let s: CK_AES_CBC_ENCRYPT_DATA_PARAMS =
                unsafe { param_struct(p, len, "CK_AES_CBC_ENCRYPT_DATA_PARAMS") }?;
            MechParam::CbcDeriveData {
                iv: s.iv,
                // SAFETY: the struct's buffer is readable per the caller contract.
                data: Zeroizing::new(unsafe { bytes(s.pData, s.length, "data") }?),
            }
        }
    };
    Ok(Mechanism {
        ty: m.mechanism,
        param,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_and_wrong_sizes() {
        let mut pss = CK_RSA_PKCS_PSS_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            sLen: 32,
        };
        let m = CK_MECHANISM {
            mechanism: CKM_SHA256_RSA_PKCS_PSS,
            pParameter: (&mut pss as *mut CK_RSA_PKCS_PSS_PARAMS).cast(),
            ulParameterLen: size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG,
        };
        // SAFETY: `m` and its parameter are valid.
        let got = unsafe { read_mechanism(&m) }.unwrap();
        assert_eq!(
            got.param,
            MechParam::RsaPss {
                hash: CKM_SHA256,
                mgf: CKG_MGF1_SHA256,
                salt_len: 32
            }
        );
        let m2 = CK_MECHANISM {
            ulParameterLen: 8,
            ..m
        };
        // SAFETY: the length mismatch is detected before reading.
        let e = unsafe { read_mechanism(&m2) }.unwrap_err();
        assert_eq!(e.rv(), CKR_MECHANISM_PARAM_INVALID);
        // SAFETY: NULL mechanism is checked.
        let e = unsafe { read_mechanism(std::ptr::null()) }.unwrap_err();
        assert_eq!(e.rv(), CKR_ARGUMENTS_BAD);
    }

    #[test]
    fn plain_mechanisms() {
        let m = CK_MECHANISM {
            mechanism: CKM_SHA256,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        // SAFETY: valid mechanism without parameter.
        let got = unsafe { read_mechanism(&m) }.unwrap();
        assert_eq!(got, Mechanism::new(CKM_SHA256));
    }
}
