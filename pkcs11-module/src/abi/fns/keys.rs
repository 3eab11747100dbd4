//! Key management (PKCS#11 3.0 §5.14).

use token_api::Error;
use token_api::ck::*;

use crate::abi::entry::call;
use crate::abi::mechanism::read_mechanism;
use crate::abi::out_buf::OutBuf;
use crate::abi::ptr::{in_bytes, write_out};
use crate::abi::template::read_template;

/// # Safety
/// Mechanism and template valid; `phKey` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_GenerateKey", |k| {
        if phKey.is_null() {
            return Err(Error::args("NULL phKey"));
        }
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulCount) }?;
        let h = k.generate_key(hSession, &m, &t)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(phKey, h) }
    })
}

/// # Safety
/// Mechanism and templates valid; the handle pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    pPublicKeyTemplate: *mut CK_ATTRIBUTE,
    ulPublicKeyAttributeCount: CK_ULONG,
    pPrivateKeyTemplate: *mut CK_ATTRIBUTE,
    ulPrivateKeyAttributeCount: CK_ULONG,
    phPublicKey: *mut CK_OBJECT_HANDLE,
    phPrivateKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_GenerateKeyPair", |k| {
        if phPublicKey.is_null() || phPrivateKey.is_null() {
            return Err(Error::args("NULL key handle pointers"));
        }
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        // SAFETY: forwarded caller contract.
        let pu = unsafe { read_template(pPublicKeyTemplate, ulPublicKeyAttributeCount) }?;
        // SAFETY: forwarded caller contract.
        let pr = unsafe { read_template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount) }?;
        let (hpu, hpr) = k.generate_key_pair(hSession, &m, &pu, &pr)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe {
            write_out(phPublicKey, hpu)?;
            write_out(phPrivateKey, hpr)
        }
    })
}

/// # Safety
/// Mechanism valid; output per the buffer contract.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_WrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hWrappingKey: CK_OBJECT_HANDLE,
    hKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    pulWrappedKeyLen: *mut CK_ULONG,
) -> CK_RV {
    call("C_WrapKey", |k| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        // SAFETY: forwarded caller contract.
        let ob = unsafe { OutBuf::new(pWrappedKey, pulWrappedKeyLen) }?;
        {
            let cap = ob.cap();
            ob.put(k.wrap_key(hSession, &m, hWrappingKey, hKey, cap)?)
        }
    })
}

/// # Safety
/// Mechanism, wrapped key and template valid; `phKey` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_UnwrapKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hUnwrappingKey: CK_OBJECT_HANDLE,
    pWrappedKey: *mut CK_BYTE,
    ulWrappedKeyLen: CK_ULONG,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_UnwrapKey", |k| {
        if phKey.is_null() {
            return Err(Error::args("NULL phKey"));
        }
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        // SAFETY: forwarded caller contract.
        let wrapped = unsafe { in_bytes(pWrappedKey, ulWrappedKeyLen) }?;
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulAttributeCount) }?;
        let h = k.unwrap_key(hSession, &m, hUnwrappingKey, wrapped, &t)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(phKey, h) }
    })
}

/// # Safety
/// Mechanism and template valid; `phKey` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DeriveKey(
    hSession: CK_SESSION_HANDLE,
    pMechanism: *mut CK_MECHANISM,
    hBaseKey: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulAttributeCount: CK_ULONG,
    phKey: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_DeriveKey", |k| {
        if phKey.is_null() {
            return Err(Error::args("NULL phKey"));
        }
        // SAFETY: forwarded caller contract.
        let m = unsafe { read_mechanism(pMechanism) }?;
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulAttributeCount) }?;
        let h = k.derive_key(hSession, &m, hBaseKey, &t)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(phKey, h) }
    })
}
