//! Message digesting (PKCS#11 3.0 §5.10).

use token_api::ck::*;

use crate::abi::entry::call;
use crate::abi::mechanism::read_mechanism;
use crate::abi::out_buf::OutBuf;
use crate::abi::ptr::in_bytes;

/// # Safety
/// `pMechanism` must point to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
) -> CK_RV {
    call("C_DigestInit", |k| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        k.digest_init(hSession, &m)
    })
}

/// # Safety
/// Input readable for its length; output per the buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Digest(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    call("C_Digest", |k| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { in_bytes(pData, ulDataLen) }?;
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(pDigest, pulDigestLen) }?;
        {
            let cap = ob.cap();
            ob.put(k.digest(hSession, data, cap)?)
        }
    })
}

/// # Safety
/// Input readable for its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    call("C_DigestUpdate", |k| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { in_bytes(pPart, ulPartLen) }?;
        k.digest_update(hSession, data)
    })
}

/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestKey(hSession: CK_SESSION_HANDLE, hKey: CK_OBJECT_HANDLE) -> CK_RV {
    call("C_DigestKey", |k| k.digest_key(hSession, hKey))
}

/// # Safety
/// Output per the buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestFinal(
    hSession: CK_SESSION_HANDLE,
    pDigest: *mut CK_BYTE,
    pulDigestLen: *mut CK_ULONG,
) -> CK_RV {
    call("C_DigestFinal", |k| {
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(pDigest, pulDigestLen) }?;
        {
            let cap = ob.cap();
            ob.put(k.digest_final(hSession, cap)?)
        }
    })
}
