//! Session management (PKCS#11 3.0 §5.6), including the 3.0 `C_LoginUser` and `C_SessionCancel`.

use std::ffi::c_void;

use token_api::Error;
use token_api::ck::*;

use crate::abi::entry::{call, not_supported};
use crate::abi::ptr::{in_bytes, in_pin, write_out};

/// # Safety
/// `phSession` NULL or writable. Notification callbacks are accepted and never called (Klyuch
/// has no surrender points).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slotID: CK_SLOT_ID,
    flags: CK_FLAGS,
    _pApplication: *mut c_void,
    _Notify: CK_NOTIFY,
    phSession: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    call("C_OpenSession", |k| {
        if phSession.is_null() {
            return Err(Error::args("NULL phSession"));
        }
        let h = k.open_session(slotID, flags)?;
        // SAFETY: forwarded caller contract (checked non-NULL).
        unsafe { write_out(phSession, h) }
    })
}

/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseSession(hSession: CK_SESSION_HANDLE) -> CK_RV {
    call("C_CloseSession", |k| k.close_session(hSession))
}

/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseAllSessions(slotID: CK_SLOT_ID) -> CK_RV {
    call("C_CloseAllSessions", |k| k.close_all_sessions(slotID))
}

/// # Safety
/// `pInfo` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(
    hSession: CK_SESSION_HANDLE,
    pInfo: *mut CK_SESSION_INFO,
) -> CK_RV {
    call("C_GetSessionInfo", |k| {
        if pInfo.is_null() {
            return Err(Error::args("NULL pInfo"));
        }
        let i = k.session_info(hSession)?;
        let info = CK_SESSION_INFO {
            slotID: i.slot,
            state: i.state,
            flags: i.flags,
            ulDeviceError: 0,
        };
        // SAFETY: forwarded caller contract (checked non-NULL).
        unsafe { write_out(pInfo, info) }
    })
}

/// Not supported: operation state cannot be saved.
///
/// # Safety
/// Always safe (arguments are not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetOperationState(
    _hSession: CK_SESSION_HANDLE,
    _pOperationState: *mut CK_BYTE,
    _pulOperationStateLen: *mut CK_ULONG,
) -> CK_RV {
    not_supported("C_GetOperationState")
}

/// Not supported: operation state cannot be restored.
///
/// # Safety
/// Always safe (arguments are not read).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetOperationState(
    _hSession: CK_SESSION_HANDLE,
    _pOperationState: *mut CK_BYTE,
    _ulOperationStateLen: CK_ULONG,
    _hEncryptionKey: CK_OBJECT_HANDLE,
    _hAuthenticationKey: CK_OBJECT_HANDLE,
) -> CK_RV {
    not_supported("C_SetOperationState")
}

/// # Safety
/// `pPin` NULL (protected authentication path) or readable for `ulPinLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
) -> CK_RV {
    call("C_Login", |k| {
        // SAFETY: forwarded caller contract.
        let pin = unsafe { in_pin(pPin, ulPinLen) }?;
        log::debug!(
            "C_Login session={hSession} user={userType} pin={}",
            if pin.is_some() { "given" } else { "NULL" }
        );
        k.login(hSession, userType, pin)
    })
}

/// PKCS#11 3.0 `C_LoginUser`. Klyuch tokens have no user names: the name is checked for
/// readability and otherwise ignored, as for a token without user names.
///
/// # Safety
/// The PIN and user name pointers NULL or readable for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_LoginUser(
    hSession: CK_SESSION_HANDLE,
    userType: CK_USER_TYPE,
    pPin: *mut CK_UTF8CHAR,
    ulPinLen: CK_ULONG,
    pUsername: *mut CK_UTF8CHAR,
    ulUsernameLen: CK_ULONG,
) -> CK_RV {
    call("C_LoginUser", |k| {
        // SAFETY: forwarded caller contract.
        let pin = unsafe { in_pin(pPin, ulPinLen) }?;
        // SAFETY: forwarded caller contract.
        unsafe { in_bytes(pUsername, ulUsernameLen) }?;
        k.login(hSession, userType, pin)
    })
}

/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Logout(hSession: CK_SESSION_HANDLE) -> CK_RV {
    call("C_Logout", |k| k.logout(hSession))
}

/// PKCS#11 3.0 `C_SessionCancel`.
///
/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SessionCancel(hSession: CK_SESSION_HANDLE, flags: CK_FLAGS) -> CK_RV {
    call("C_SessionCancel", |k| k.session_cancel(hSession, flags))
}
