//! Signing and verifying (PKCS#11 3.0 §5.11–§5.12). Signatures with recovery are not supported.

use token_api::ck::*;

use crate::abi::entry::{call, not_supported};
use crate::abi::mechanism::read_mechanism;
use crate::abi::out_buf::OutBuf;
use crate::abi::ptr::in_bytes;

/// # Safety
/// `pMechanism` must point to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_SignInit", |k| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        k.sign_init(hSession, &m, hKey)
    })
}

/// # Safety
/// Input readable for its length; output per the buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    call("C_Sign", |k| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { in_bytes(pData, ulDataLen) }?;
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(pSignature, pulSignatureLen) }?;
        {
            let cap = ob.cap();
            ob.put(k.sign(hSession, data, cap)?)
        }
    })
}

/// # Safety
/// Input readable for its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    call("C_SignUpdate", |k| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { in_bytes(pPart, ulPartLen) }?;
        k.sign_update(hSession, data)
    })
}

/// # Safety
/// Output per the buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    call("C_SignFinal", |k| {
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(pSignature, pulSignatureLen) }?;
        {
            let cap = ob.cap();
            ob.put(k.sign_final(hSession, cap)?)
        }
    })
}

/// Not supported.
///
/// # Safety
/// Always safe (arguments are not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignRecoverInit(
    _hSession: CK_SESSION_HANDLE,
    _pMechanism: *mut CK_MECHANISM,
    _hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    not_supported("C_SignRecoverInit")
}

/// Not supported.
///
/// # Safety
/// Always safe (arguments are not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignRecover(
    _hSession: CK_SESSION_HANDLE,
    _pData: *mut CK_BYTE,
    _ulDataLen: CK_ULONG,
    _pSignature: *mut CK_BYTE,
    _pulSignatureLen: *mut CK_ULONG,
) -> CK_RV {
    not_supported("C_SignRecover")
}

/// # Safety
/// `pMechanism` must point to a valid `CK_MECHANISM`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_VerifyInit", |k| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        k.verify_init(hSession, &m, hKey)
    })
}

/// # Safety
/// Inputs readable for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Verify(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    call("C_Verify", |k| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { in_bytes(pData, ulDataLen) }?;
        // SAFETY: forwarded caller contract.
        let sig = unsafe { in_bytes(pSignature, ulSignatureLen) }?;
        k.verify(hSession, data, sig)
    })
}

/// # Safety
/// Input readable for its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
) -> CK_RV {
    call("C_VerifyUpdate", |k| {
        // SAFETY: forwarded caller contract.
        let data = unsafe { in_bytes(pPart, ulPartLen) }?;
        k.verify_update(hSession, data)
    })
}

/// # Safety
/// Input readable for its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyFinal(
    hSession: CK_SESSION_HANDLE,
    pSignature: *mut CK_BYTE,
    ulSignatureLen: CK_ULONG,
) -> CK_RV {
    call("C_VerifyFinal", |k| {
        // SAFETY: forwarded caller contract.
        let sig = unsafe { in_bytes(pSignature, ulSignatureLen) }?;
        k.verify_final(hSession, sig)
    })
}

/// Not supported.
///
/// # Safety
/// Always safe (arguments are not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyRecoverInit(
    _hSession: CK_SESSION_HANDLE,
    _pMechanism: *mut CK_MECHANISM,
    _hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    not_supported("C_VerifyRecoverInit")
}

/// Not supported.
///
/// # Safety
/// Always safe (arguments are not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyRecover(
    _hSession: CK_SESSION_HANDLE,
    _pSignature: *mut CK_BYTE,
    _ulSignatureLen: CK_ULONG,
    _pData: *mut CK_BYTE,
    _pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    not_supported("C_VerifyRecover")
}
