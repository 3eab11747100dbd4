//! Encryption and decryption (PKCS#11 3.0 §5.8, §5.9). Both share one state machine in the core.

use token_api::ck::*;

use crate::abi::entry::call;
use crate::abi::mechanism::read_mechanism;
use crate::abi::out_buf::OutBuf;
use crate::abi::ptr::in_bytes;

/// # Safety
/// `pMechanism` must point to a valid `CK_MECHANISM`.
unsafe fn init(
    name: &'static str,
    decrypt: bool,
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    call(name, |k| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(m) }?;
        k.cipher_init(h, decrypt, &m, key)
    })
}

/// # Safety
/// Input readable for its length; output per the buffer contract.
unsafe fn single(
    name: &'static str,
    decrypt: bool,
    h: CK_SESSION_HANDLE,
    p: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    call(name, |k| {
        // SAFETY: forwarded caller contract.
        let input = unsafe { in_bytes(p, len) }?;
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(out, out_len) }?;
        {
            let cap = ob.cap();
            ob.put(k.cipher(h, decrypt, input, cap)?)
        }
    })
}

/// # Safety
/// As [`single`].
unsafe fn update(
    name: &'static str,
    decrypt: bool,
    h: CK_SESSION_HANDLE,
    p: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    call(name, |k| {
        // SAFETY: forwarded caller contract.
        let input = unsafe { in_bytes(p, len) }?;
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(out, out_len) }?;
        {
            let cap = ob.cap();
            ob.put(k.cipher_update(h, decrypt, input, cap)?)
        }
    })
}

/// # Safety
/// Output per the buffer contract.
unsafe fn fin(
    name: &'static str,
    decrypt: bool,
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    call(name, |k| {
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(out, out_len) }?;
        {
            let cap = ob.cap();
            ob.put(k.cipher_final(h, decrypt, cap)?)
        }
    })
}

/// # Safety
/// See [`init`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe { init("C_EncryptInit", false, hSession, pMechanism, hKey) }
}

/// # Safety
/// See [`single`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Encrypt(
    hSession: CK_SESSION_HANDLE,
    pData: *mut CK_BYTE,
    ulDataLen: CK_ULONG,
    pEncryptedData: *mut CK_BYTE,
    pulEncryptedDataLen: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe {
        single(
            "C_Encrypt",
            false,
            hSession,
            pData,
            ulDataLen,
            pEncryptedData,
            pulEncryptedDataLen,
        )
    }
}

/// # Safety
/// See [`update`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pPart: *mut CK_BYTE,
    ulPartLen: CK_ULONG,
    pEncryptedPart: *mut CK_BYTE,
    pulEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe {
        update(
            "C_EncryptUpdate",
            false,
            hSession,
            pPart,
            ulPartLen,
            pEncryptedPart,
            pulEncryptedPartLen,
        )
    }
}

/// # Safety
/// See [`fin`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastEncryptedPart: *mut CK_BYTE,
    pulLastEncryptedPartLen: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe {
        fin(
            "C_EncryptFinal",
            false,
            hSession,
            pLastEncryptedPart,
            pulLastEncryptedPartLen,
        )
    }
}

/// # Safety
/// See [`init`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptInit(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe { init("C_DecryptInit", true, hSession, pMechanism, hKey) }
}

/// # Safety
/// See [`single`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Decrypt(
    hSession: CK_SESSION_HANDLE,
    pEncryptedData: *mut CK_BYTE,
    ulEncryptedDataLen: CK_ULONG,
    pData: *mut CK_BYTE,
    pulDataLen: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe {
        single(
            "C_Decrypt",
            true,
            hSession,
            pEncryptedData,
            ulEncryptedDataLen,
            pData,
            pulDataLen,
        )
    }
}

/// # Safety
/// See [`update`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptUpdate(
    hSession: CK_SESSION_HANDLE,
    pEncryptedPart: *mut CK_BYTE,
    ulEncryptedPartLen: CK_ULONG,
    pPart: *mut CK_BYTE,
    pulPartLen: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe {
        update(
            "C_DecryptUpdate",
            true,
            hSession,
            pEncryptedPart,
            ulEncryptedPartLen,
            pPart,
            pulPartLen,
        )
    }
}

/// # Safety
/// See [`fin`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptFinal(
    hSession: CK_SESSION_HANDLE,
    pLastPart: *mut CK_BYTE,
    pulLastPartLen: *mut CK_ULONG,
) -> CK_RV {
    // SAFETY: forwarded caller contract.
    unsafe { fin("C_DecryptFinal", true, hSession, pLastPart, pulLastPartLen) }
}
