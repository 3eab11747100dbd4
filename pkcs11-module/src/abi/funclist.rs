//! The function lists and interfaces: the 2.40 `CK_FUNCTION_LIST` (all 68 functions) and the
//! 3.0 `CK_FUNCTION_LIST_3_0` ("PKCS 11" 3.0, with `C_LoginUser`, `C_SessionCancel` and the
//! message functions), offered by `C_GetFunctionList`, `C_GetInterfaceList` and `C_GetInterface`.
#![allow(non_snake_case)]

use std::ffi::{CStr, c_void};

use token_api::Error;
use token_api::ck::*;

use super::entry::run;
use super::fns::*;
use super::out_buf::OutBuf;
use super::ptr::{read_in, write_out};

/// The 2.40 function list.
pub static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(general::C_Initialize),
    C_Finalize: Some(general::C_Finalize),
    C_GetInfo: Some(general::C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(slot_token::C_GetSlotList),
    C_GetSlotInfo: Some(slot_token::C_GetSlotInfo),
    C_GetTokenInfo: Some(slot_token::C_GetTokenInfo),
    C_GetMechanismList: Some(slot_token::C_GetMechanismList),
    C_GetMechanismInfo: Some(slot_token::C_GetMechanismInfo),
    C_InitToken: Some(slot_token::C_InitToken),
    C_InitPIN: Some(slot_token::C_InitPIN),
    C_SetPIN: Some(slot_token::C_SetPIN),
    C_OpenSession: Some(session::C_OpenSession),
    C_CloseSession: Some(session::C_CloseSession),
    C_CloseAllSessions: Some(session::C_CloseAllSessions),
    C_GetSessionInfo: Some(session::C_GetSessionInfo),
    C_GetOperationState: Some(session::C_GetOperationState),
    C_SetOperationState: Some(session::C_SetOperationState),
    C_Login: Some(session::C_Login),
    C_Logout: Some(session::C_Logout),
    C_CreateObject: Some(object::C_CreateObject),
    C_CopyObject: Some(object::C_CopyObject),
    C_DestroyObject: Some(object::C_DestroyObject),
    C_GetObjectSize: Some(object::C_GetObjectSize),
    C_GetAttributeValue: Some(object::C_GetAttributeValue),
    C_SetAttributeValue: Some(object::C_SetAttributeValue),
    C_FindObjectsInit: Some(object::C_FindObjectsInit),
    C_FindObjects: Some(object::C_FindObjects),
    C_FindObjectsFinal: Some(object::C_FindObjectsFinal),
    C_EncryptInit: Some(encrypt_decrypt::C_EncryptInit),
    C_Encrypt: Some(encrypt_decrypt::C_Encrypt),
    C_EncryptUpdate: Some(encrypt_decrypt::C_EncryptUpdate),
    C_EncryptFinal: Some(encrypt_decrypt::C_EncryptFinal),
    C_DecryptInit: Some(encrypt_decrypt::C_DecryptInit),
    C_Decrypt: Some(encrypt_decrypt::C_Decrypt),
    C_DecryptUpdate: Some(encrypt_decrypt::C_DecryptUpdate),
    C_DecryptFinal: Some(encrypt_decrypt::C_DecryptFinal),
    C_DigestInit: Some(digest::C_DigestInit),
    C_Digest: Some(digest::C_Digest),
    C_DigestUpdate: Some(digest::C_DigestUpdate),
    C_DigestKey: Some(digest::C_DigestKey),
    C_DigestFinal: Some(digest::C_DigestFinal),
    C_SignInit: Some(sign_verify::C_SignInit),
    C_Sign: Some(sign_verify::C_Sign),
    C_SignUpdate: Some(sign_verify::C_SignUpdate),
    C_SignFinal: Some(sign_verify::C_SignFinal),
    C_SignRecoverInit: Some(sign_verify::C_SignRecoverInit),
    C_SignRecover: Some(sign_verify::C_SignRecover),
    C_VerifyInit: Some(sign_verify::C_VerifyInit),
    C_Verify: Some(sign_verify::C_Verify),
    C_VerifyUpdate: Some(sign_verify::C_VerifyUpdate),
    C_VerifyFinal: Some(sign_verify::C_VerifyFinal),
    C_VerifyRecoverInit: Some(sign_verify::C_VerifyRecoverInit),
    C_VerifyRecover: Some(sign_verify::C_VerifyRecover),
    C_DigestEncryptUpdate: Some(dual::C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(dual::C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(dual::C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(dual::C_DecryptVerifyUpdate),
    C_GenerateKey: Some(keys::C_GenerateKey),
    C_GenerateKeyPair: Some(keys::C_GenerateKeyPair),
    C_WrapKey: Some(keys::C_WrapKey),
    C_UnwrapKey: Some(keys::C_UnwrapKey),
    C_DeriveKey: Some(keys::C_DeriveKey),
    C_SeedRandom: Some(random::C_SeedRandom),
    C_GenerateRandom: Some(random::C_GenerateRandom),
    C_GetFunctionStatus: Some(general::C_GetFunctionStatus),
    C_CancelFunction: Some(general::C_CancelFunction),
    C_WaitForSlotEvent: Some(slot_token::C_WaitForSlotEvent),
};

/// The 3.0 function list.
pub static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
    version: CK_VERSION { major: 3, minor: 0 },
    C_Initialize: Some(general::C_Initialize),
    C_Finalize: Some(general::C_Finalize),
    C_GetInfo: Some(general::C_GetInfo_3_0),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(slot_token::C_GetSlotList),
    C_GetSlotInfo: Some(slot_token::C_GetSlotInfo),
    C_GetTokenInfo: Some(slot_token::C_GetTokenInfo),
    C_GetMechanismList: Some(slot_token::C_GetMechanismList),
    C_GetMechanismInfo: Some(slot_token::C_GetMechanismInfo),
    C_InitToken: Some(slot_token::C_InitToken),
    C_InitPIN: Some(slot_token::C_InitPIN),
    C_SetPIN: Some(slot_token::C_SetPIN),
    C_OpenSession: Some(session::C_OpenSession),
    C_CloseSession: Some(session::C_CloseSession),
    C_CloseAllSessions: Some(session::C_CloseAllSessions),
    C_GetSessionInfo: Some(session::C_GetSessionInfo),
    C_GetOperationState: Some(session::C_GetOperationState),
    C_SetOperationState: Some(session::C_SetOperationState),
    C_Login: Some(session::C_Login),
    C_Logout: Some(session::C_Logout),
    C_CreateObject: Some(object::C_CreateObject),
    C_CopyObject: Some(object::C_CopyObject),
    C_DestroyObject: Some(object::C_DestroyObject),
    C_GetObjectSize: Some(object::C_GetObjectSize),
    C_GetAttributeValue: Some(object::C_GetAttributeValue),
    C_SetAttributeValue: Some(object::C_SetAttributeValue),
    C_FindObjectsInit: Some(object::C_FindObjectsInit),
    C_FindObjects: Some(object::C_FindObjects),
    C_FindObjectsFinal: Some(object::C_FindObjectsFinal),
    C_EncryptInit: Some(encrypt_decrypt::C_EncryptInit),
    C_Encrypt: Some(encrypt_decrypt::C_Encrypt),
    C_EncryptUpdate: Some(encrypt_decrypt::C_EncryptUpdate),
    C_EncryptFinal: Some(encrypt_decrypt::C_EncryptFinal),
    C_DecryptInit: Some(encrypt_decrypt::C_DecryptInit),
    C_Decrypt: Some(encrypt_decrypt::C_Decrypt),
    C_DecryptUpdate: Some(encrypt_decrypt::C_DecryptUpdate),
    C_DecryptFinal: Some(encrypt_decrypt::C_DecryptFinal),
    C_DigestInit: Some(digest::C_DigestInit),
    C_Digest: Some(digest::C_Digest),
    C_DigestUpdate: Some(digest::C_DigestUpdate),
    C_DigestKey: Some(digest::C_DigestKey),
    C_DigestFinal: Some(digest::C_DigestFinal),
    C_SignInit: Some(sign_verify::C_SignInit),
    C_Sign: Some(sign_verify::C_Sign),
    C_SignUpdate: Some(sign_verify::C_SignUpdate),
    C_SignFinal: Some(sign_verify::C_SignFinal),
    C_SignRecoverInit: Some(sign_verify::C_SignRecoverInit),
    C_SignRecover: Some(sign_verify::C_SignRecover),
    C_VerifyInit: Some(sign_verify::C_VerifyInit),
    C_Verify: Some(sign_verify::C_Verify),
    C_VerifyUpdate: Some(sign_verify::C_VerifyUpdate),
    C_VerifyFinal: Some(sign_verify::C_VerifyFinal),
    C_VerifyRecoverInit: Some(sign_verify::C_VerifyRecoverInit),
    C_VerifyRecover: Some(sign_verify::C_VerifyRecover),
    C_DigestEncryptUpdate: Some(dual::C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(dual::C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(dual::C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(dual::C_DecryptVerifyUpdate),
    C_GenerateKey: Some(keys::C_GenerateKey),
    C_GenerateKeyPair: Some(keys::C_GenerateKeyPair),
    C_WrapKey: Some(keys::C_WrapKey),
    C_UnwrapKey: Some(keys::C_UnwrapKey),
    C_DeriveKey: Some(keys::C_DeriveKey),
    C_SeedRandom: Some(random::C_SeedRandom),
    C_GenerateRandom: Some(random::C_GenerateRandom),
    C_GetFunctionStatus: Some(general::C_GetFunctionStatus),
    C_CancelFunction: Some(general::C_CancelFunction),
    C_WaitForSlotEvent: Some(slot_token::C_WaitForSlotEvent),
    C_GetInterfaceList: Some(C_GetInterfaceList),
    C_GetInterface: Some(C_GetInterface),
    C_LoginUser: Some(session::C_LoginUser),
    C_SessionCancel: Some(session::C_SessionCancel),
    C_MessageEncryptInit: Some(message::C_MessageEncryptInit),
    C_EncryptMessage: Some(message::C_EncryptMessage),
    C_EncryptMessageBegin: Some(message::C_EncryptMessageBegin),
    C_EncryptMessageNext: Some(message::C_EncryptMessageNext),
    C_MessageEncryptFinal: Some(message::C_MessageEncryptFinal),
    C_MessageDecryptInit: Some(message::C_MessageDecryptInit),
    C_DecryptMessage: Some(message::C_DecryptMessage),
    C_DecryptMessageBegin: Some(message::C_DecryptMessageBegin),
    C_DecryptMessageNext: Some(message::C_DecryptMessageNext),
    C_MessageDecryptFinal: Some(message::C_MessageDecryptFinal),
    C_MessageSignInit: Some(message::C_MessageSignInit),
    C_SignMessage: Some(message::C_SignMessage),
    C_SignMessageBegin: Some(message::C_SignMessageBegin),
    C_SignMessageNext: Some(message::C_SignMessageNext),
    C_MessageSignFinal: Some(message::C_MessageSignFinal),
    C_MessageVerifyInit: Some(message::C_MessageVerifyInit),
    C_VerifyMessage: Some(message::C_VerifyMessage),
    C_VerifyMessageBegin: Some(message::C_VerifyMessageBegin),
    C_VerifyMessageNext: Some(message::C_VerifyMessageNext),
    C_MessageVerifyFinal: Some(message::C_MessageVerifyFinal),
};

/// The interface name of both lists (PKCS#11 3.0 §3.6: "PKCS 11").
static INTERFACE_NAME: &CStr = c"PKCS 11";

/// The interfaces, the default (3.0) first. They live in writable memory: callers may write
/// through the pointer `C_GetInterface` returns (OpenSC's pkcs11-spy replaces `pFunctionList`
/// with its own list), which crashed on a read-only static.
struct Interfaces(std::cell::UnsafeCell<[CK_INTERFACE; 2]>);
// SAFETY: Klyuch only reads the cell; the pointers in it refer to statics that live for the
// whole program. What an application writes through the pointers it was given is its business.
unsafe impl Sync for Interfaces {}

static INTERFACES: Interfaces = Interfaces(std::cell::UnsafeCell::new([
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
        pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut c_void,
        flags: 0,
    },
]));

/// The versions of the two interfaces, by index (not read back from the writable cell).
const VERSIONS: [CK_VERSION; 2] = [FUNCTION_LIST_3_0.version, FUNCTION_LIST.version];

/// Our own copy of the interfaces (as first written).
fn interfaces() -> [CK_INTERFACE; 2] {
    [
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTION_LIST_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
            flags: 0,
        },
        CK_INTERFACE {
            pInterfaceName: INTERFACE_NAME.as_ptr() as *mut CK_UTF8CHAR,
            pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut c_void,
            flags: 0,
        },
    ]
}

/// # Safety
/// `ppFunctionList` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(ppFunctionList: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    run("C_GetFunctionList", || {
        let list = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        // SAFETY: forwarded caller contract.
        unsafe { write_out(ppFunctionList, list) }
    })
}

/// # Safety
/// `pInterfacesList` NULL or writable for `*pulCount` entries; `pulCount` readable and writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterfaceList(
    pInterfacesList: *mut CK_INTERFACE,
    pulCount: *mut CK_ULONG,
) -> CK_RV {
    run("C_GetInterfaceList", || {
        // SAFETY: forwarded caller contract.
        unsafe { OutBuf::put_list(pInterfacesList, pulCount, &interfaces()) }
    })
}

/// # Safety
/// `pInterfaceName` NULL or a NUL-terminated string; `pVersion` NULL or readable;
/// `ppInterface` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterface(
    pInterfaceName: *mut CK_UTF8CHAR,
    pVersion: *mut CK_VERSION,
    ppInterface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> CK_RV {
    run("C_GetInterface", || {
        if ppInterface.is_null() {
            return Err(Error::args("NULL ppInterface"));
        }
        if !pInterfaceName.is_null() {
            // SAFETY: a NUL-terminated string per the contract.
            let name = unsafe { CStr::from_ptr(pInterfaceName as *const std::ffi::c_char) };
            if name != INTERFACE_NAME {
                return Err(Error::args("unknown interface name"));
            }
        }
        let want = if pVersion.is_null() {
            None
        } else {
            // SAFETY: non-NULL, readable per the contract.
            Some(unsafe { read_in(pVersion) }?)
        };
        let found = interfaces().iter().zip(VERSIONS).position(|(i, v)| {
            want.is_none_or(|w| w.major == v.major && w.minor == v.minor)
                && i.flags & flags == flags
        });
        let n = found.ok_or_else(|| Error::args("no interface with that version and flags"))?;
        // SAFETY: `n` < 2; the pointer stays inside the static array.
        let p = unsafe { INTERFACES.0.get().cast::<CK_INTERFACE>().add(n) };
        // SAFETY: forwarded caller contract.
        unsafe { write_out(ppInterface, p) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_filled() {
        // CK_FUNCTION_LIST is a version followed by function pointers: none may be NULL.
        let n = (size_of::<CK_FUNCTION_LIST>() - size_of::<CK_VERSION>()) / size_of::<usize>();
        assert_eq!(n, 68);
        let l = &FUNCTION_LIST;
        assert!(
            l.C_Initialize.is_some()
                && l.C_WaitForSlotEvent.is_some()
                && l.C_GetFunctionList.is_some()
        );
        let l3 = &FUNCTION_LIST_3_0;
        assert!(
            l3.C_LoginUser.is_some()
                && l3.C_SessionCancel.is_some()
                && l3.C_MessageVerifyFinal.is_some()
        );
    }
}
