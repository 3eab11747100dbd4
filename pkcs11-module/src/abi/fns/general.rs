//! General-purpose functions (PKCS#11 3.0 §5.4) and the legacy parallel functions (§5.18).

use std::ffi::c_void;

use token_api::ck::*;

use crate::abi::entry::{call, run};
use crate::abi::ptr::{padded, version, write_out};
use crate::abi::state;

fn library_version() -> CK_VERSION {
    let major = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    version((major, minor))
}

fn info(cryptoki: (u8, u8)) -> CK_INFO {
    CK_INFO {
        cryptokiVersion: version(cryptoki),
        manufacturerID: padded("Klyuch"),
        flags: 0,
        libraryDescription: padded("Klyuch PKCS#11 module"),
        libraryVersion: library_version(),
    }
}

/// # Safety
/// `pInitArgs` must be NULL or point to a `CK_C_INITIALIZE_ARGS`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(pInitArgs: *mut c_void) -> CK_RV {
    // SAFETY: forwarded caller contract.
    run("C_Initialize", || unsafe {
        state::initialize(pInitArgs as *const CK_C_INITIALIZE_ARGS)
    })
}

/// # Safety
/// Always safe; the argument must be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(pReserved: *mut c_void) -> CK_RV {
    // SAFETY: the pointer is only compared with NULL.
    run("C_Finalize", || unsafe { state::finalize(pReserved) })
}

/// `C_GetInfo` of the 2.40 function list.
///
/// # Safety
/// `pInfo` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(pInfo: *mut CK_INFO) -> CK_RV {
    // SAFETY: forwarded caller contract.
    call("C_GetInfo", |_| unsafe { write_out(pInfo, info((2, 40))) })
}

/// `C_GetInfo` of the 3.0 interface: the same, reporting Cryptoki 3.0.
///
/// # Safety
/// `pInfo` must be NULL or writable.
pub unsafe extern "C" fn C_GetInfo_3_0(pInfo: *mut CK_INFO) -> CK_RV {
    // SAFETY: forwarded caller contract.
    call("C_GetInfo", |_| unsafe { write_out(pInfo, info((3, 0))) })
}

/// Legacy (§5.18): always `CKR_FUNCTION_NOT_PARALLEL`.
///
/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionStatus(hSession: CK_SESSION_HANDLE) -> CK_RV {
    call("C_GetFunctionStatus", |k| {
        k.session_info(hSession)?;
        Err(token_api::Error::new(CKR_FUNCTION_NOT_PARALLEL))
    })
}

/// Legacy (§5.18): always `CKR_FUNCTION_NOT_PARALLEL`.
///
/// # Safety
/// Always safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CancelFunction(hSession: CK_SESSION_HANDLE) -> CK_RV {
    call("C_CancelFunction", |k| {
        k.session_info(hSession)?;
        Err(token_api::Error::new(CKR_FUNCTION_NOT_PARALLEL))
    })
}
