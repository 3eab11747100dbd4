//! Slot and token management (PKCS#11 3.0 §5.5).

use std::ffi::c_void;

use token_api::ck::*;
use token_api::{Error, util::unpad};

use crate::abi::entry::{call, call_unlocked};
use crate::abi::out_buf::OutBuf;
use crate::abi::ptr::{in_pin, padded, read_in, version, write_out};

/// # Safety
/// `pSlotList` NULL or writable for `*pulCount` slot IDs; `pulCount` readable and writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(
    tokenPresent: CK_BBOOL,
    pSlotList: *mut CK_SLOT_ID,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetSlotList", |k| {
        // The list is refreshed on the size query (NULL list), as the spec suggests; the second
        // call returns the same list unless it grew meanwhile.
        let slots = k.slot_list(tokenPresent != 0, pSlotList.is_null());
        // SAFETY: forwarded caller contract.
        unsafe { OutBuf::put_list(pSlotList, pulCount, &slots) }
    })
}

/// # Safety
/// `pInfo` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_SLOT_INFO) -> CK_RV {
    call("C_GetSlotInfo", |k| {
        if pInfo.is_null() {
            return Err(Error::args("NULL pInfo"));
        }
        let i = k.slot_info(slotID)?;
        let info = CK_SLOT_INFO {
            slotDescription: padded(&i.description),
            manufacturerID: padded(&i.manufacturer),
            flags: i.flags,
            hardwareVersion: version(i.hardware_version),
            firmwareVersion: version(i.firmware_version),
        };
        // SAFETY: forwarded caller contract.
        unsafe { write_out(pInfo, info) }
    })
}

/// # Safety
/// `pInfo` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slotID: CK_SLOT_ID, pInfo: *mut CK_TOKEN_INFO) -> CK_RV {
    call("C_GetTokenInfo", |k| {
        if pInfo.is_null() {
            return Err(Error::args("NULL pInfo"));
        }
        let (i, sessions, rw_sessions) = k.token_info(slotID)?;
        let mut utc = [b' '; 16];
        if let Some(t) = &i.utc_time {
            utc = padded(t);
        }
        let info = CK_TOKEN_INFO {
            label: padded(&i.label),
            manufacturerID: padded(&i.manufacturer),
            model: padded(&i.model),
            serialNumber: padded(&i.serial),
            flags: i.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: sessions,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: rw_sessions,
            ulMaxPinLen: i.max_pin_len,
            ulMinPinLen: i.min_pin_len,
            ulTotalPublicMemory: i.total_public_memory,
            ulFreePublicMemory: i.free_public_memory,
            ulTotalPrivateMemory: i.total_private_memory,
            ulFreePrivateMemory: i.free_private_memory,
            hardwareVersion: version(i.hardware_version),
            firmwareVersion: version(i.firmware_version),
            utcTime: utc,
        };
        // SAFETY: forwarded caller contract.
        unsafe { write_out(pInfo, info) }
    })
}

/// # Safety
/// `pSlot` NULL or writable; `pReserved` must be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    pSlot: *mut CK_SLOT_ID,
    pReserved: *mut c_void,
) -> CK_RV {
    call_unlocked("C_WaitForSlotEvent", |k| {
        if pSlot.is_null() || !pReserved.is_null() {
            return Err(Error::args("pSlot must be set and pReserved NULL"));
        }
        let slot = k.wait_for_slot_event(flags & CKF_DONT_BLOCK != 0)?;
        // SAFETY: forwarded caller contract.
        unsafe { write_out(pSlot, slot) }
    })
}

/// # Safety
/// `pMechanismList` NULL or writable for `*pulCount` entries; `pulCount` readable and writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slotID: CK_SLOT_ID,
    pMechanismList: *mut CK_MECHANISM_TYPE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    call("C_GetMechanismList", |k| {
        let list = k.mechanism_list(slotID)?;
        // SAFETY: forwarded caller contract.
        unsafe { OutBuf::put_list(pMechanismList, pulCount, &list) }
    })
}

/// # Safety
/// `pInfo` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slotID: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    pInfo: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    call("C_GetMechanismInfo", |k| {
        if pInfo.is_null() {
            return Err(Error::args("NULL pInfo"));
        }
        let i = k.mechanism_info(slotID, type_)?;
        let info = CK_MECHANISM_INFO {
            ulMinKeySize: i.min_key_size,
            ulMaxKeySize: i.max_key_size,
            flags: i.flags,
        };
        // SAFETY: forwarded caller contract.
        unsafe { write_out(pInfo, info) }
    })
}

/// # Safety
/// `pPin` NULL or readable for `ulPinLen` bytes; `pLabel` readable for 32 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitToken(
    slotID: CK_SLOT_ID,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pLabel: *mut CK_UTF8CHAR,
) -> CK_RV {
    call("C_InitToken", |k| {
        // SAFETY: forwarded caller contract.
        let pin = unsafe { in_pin(pPin, ulPinLen) }?;
        // SAFETY: the label is a 32-byte blank-padded field (PKCS#11 §5.5 C_InitToken).
        let label: [u8; 32] = unsafe { read_in(pLabel as *const [u8; 32]) }?;
        k.init_token(slotID, pin, &unpad(&label))
    })
}

/// # Safety
/// `pPin` NULL or readable for `ulPinLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitPIN(
    hSession: CK_SESSION_HANDLE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    call("C_InitPIN", |k| {
        // SAFETY: forwarded caller contract.
        let pin = unsafe { in_pin(pPin, ulPinLen) }?;
        k.init_pin(hSession, pin)
    })
}

/// # Safety
/// The PIN pointers NULL or readable for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetPIN(
    hSession: CK_SESSION_HANDLE,
    pOldPin: *mut CK_UTF8CHAR,
    ulOldLen: CK_ULONG,
    pNewPin: *mut CK_UTF8CHAR,
    ulNewLen: CK_ULONG,
) -> CK_RV {
    call("C_SetPIN", |k| {
        // SAFETY: forwarded caller contract.
        let old = unsafe { in_pin(pOldPin, ulOldLen) }?;
        // SAFETY: forwarded caller contract.
        let new = unsafe { in_pin(pNewPin, ulNewLen) }?;
        k.set_pin(hSession, old, new)
    })
}
