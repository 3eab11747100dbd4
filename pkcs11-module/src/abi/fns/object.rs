//! Object management (PKCS#11 3.0 §5.7).

use token_api::Error;
use token_api::ck::*;

use crate::abi::entry::call;
use crate::abi::ptr::{to_ulong, to_usize, write_out};
use crate::abi::template::{read_template, read_types, write_attributes};

/// # Safety
/// `pTemplate` NULL or `ulCount` readable attributes; `phObject` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CreateObject(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_CreateObject", |k| {
        if phObject.is_null() {
            return Err(Error::args("NULL phObject"));
        }
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulCount) }?;
        let h = k.create_object(hSession, &t)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(phObject, h) }
    })
}

/// # Safety
/// As `C_CreateObject`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CopyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
    phNewObject: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_CopyObject", |k| {
        if phNewObject.is_null() {
            return Err(Error::args("NULL phNewObject"));
        }
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulCount) }?;
        let h = k.copy_object(hSession, hObject, &t)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(phNewObject, h) }
    })
}

/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DestroyObject(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
) -> CK_RV {
    call("C_DestroyObject", |k| k.destroy_object(hSession, hObject))
}

/// # Safety
/// `pulSize` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetObjectSize(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pulSize: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetObjectSize", |k| {
        if pulSize.is_null() {
            return Err(Error::args("NULL pulSize"));
        }
        let n = k.object_size(hSession, hObject)?;
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(pulSize, n) }
    })
}

/// # Safety
/// `pTemplate` must point to `ulCount` attributes, readable and writable, whose `pValue`s are
/// NULL or writable for `ulValueLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    call("C_GetAttributeValue", |k| {
        // SAFETY: forwarded caller contract.
        let types = unsafe { read_types(pTemplate, ulCount) }?;
        let reads = k.get_attributes(hSession, hObject, &types)?;
        if reads.is_empty() {
            return Ok(());
        }
        // SAFETY: forwarded caller contract; reads.len() == ulCount.
        unsafe { write_attributes(pTemplate, &reads) }
    })
}

/// # Safety
/// As `C_CreateObject`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetAttributeValue(
    hSession: CK_SESSION_HANDLE,
    hObject: CK_OBJECT_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    call("C_SetAttributeValue", |k| {
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulCount) }?;
        k.set_attributes(hSession, hObject, &t)
    })
}

/// # Safety
/// As `C_CreateObject` (a NULL template with count 0 finds every object).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    hSession: CK_SESSION_HANDLE,
    pTemplate: *mut CK_ATTRIBUTE,
    ulCount: CK_ULONG,
) -> CK_RV {
    call("C_FindObjectsInit", |k| {
        // SAFETY: forwarded caller contract.
        let t = unsafe { read_template(pTemplate, ulCount) }?;
        k.find_init(hSession, &t)
    })
}

/// # Safety
/// `phObject` writable for `ulMaxObjectCount` handles; `pulObjectCount` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    hSession: CK_SESSION_HANDLE,
    phObject: *mut CK_OBJECT_HANDLE,
    ulMaxObjectCount: CK_ULONG,
    pulObjectCount: *mut CK_ULONG,
) -> CK_RV {
    call("C_FindObjects", |k| {
        if pulObjectCount.is_null() || (phObject.is_null() && ulMaxObjectCount > 0) {
            return Err(Error::args("NULL output pointers"));
        }
        let found = k.find(hSession, to_usize(ulMaxObjectCount)?)?;
        for (i, h) in found.iter().enumerate() {
            // SAFETY: i < found.len() <= ulMaxObjectCount handles are writable per the contract.
            unsafe { phObject.add(i).write_unaligned(*h) };
        }
        // SAFETY: checked non-NULL, writable per the contract.
        unsafe { write_out(pulObjectCount, to_ulong(found.len())) }
    })
}

/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsFinal(hSession: CK_SESSION_HANDLE) -> CK_RV {
    call("C_FindObjectsFinal", |k| k.find_final(hSession))
}
