//! One error type for the whole module: a `CK_RV` plus a short, secret-free explanation.
//!
//! Inner code returns `Result<T, Error>`; the C ABI wrapper maps `Err(e)` to `e.rv()`.

use crate::ck::*;
use std::borrow::Cow;
use std::fmt;

/// A PKCS#11 error: the return value the C caller sees, and a detail for logs and the `klyuch`
/// tool. The detail must never contain a PIN, key material or other secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    rv: CK_RV,
    detail: Cow<'static, str>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with no further detail.
    pub const fn new(rv: CK_RV) -> Self {
        Error {
            rv,
            detail: Cow::Borrowed(""),
        }
    }

    /// An error with a human-readable detail (no secrets!).
    pub fn with(rv: CK_RV, detail: impl Into<Cow<'static, str>>) -> Self {
        Error {
            rv,
            detail: detail.into(),
        }
    }

    /// The `CK_RV` the caller gets.
    pub fn rv(&self) -> CK_RV {
        self.rv
    }

    /// The detail text ("" when none was given).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Replace or add the detail, keeping the return value.
    pub fn context(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// `CKR_GENERAL_ERROR` with a detail: something that should not happen.
    pub fn general(detail: impl Into<Cow<'static, str>>) -> Self {
        Error::with(CKR_GENERAL_ERROR, detail)
    }

    /// `CKR_ARGUMENTS_BAD` with a detail.
    pub fn args(detail: impl Into<Cow<'static, str>>) -> Self {
        Error::with(CKR_ARGUMENTS_BAD, detail)
    }

    /// `CKR_FUNCTION_NOT_SUPPORTED`.
    pub const fn not_supported() -> Self {
        Error::new(CKR_FUNCTION_NOT_SUPPORTED)
    }

    /// `CKR_MECHANISM_INVALID`.
    pub const fn mechanism_invalid() -> Self {
        Error::new(CKR_MECHANISM_INVALID)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", rv_name(self.rv))?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({self})")
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    /// Store I/O: a full disk or quota is `CKR_DEVICE_MEMORY`, anything else `CKR_DEVICE_ERROR`.
    fn from(e: std::io::Error) -> Self {
        // ENOSPC = 28, EDQUOT = 122 on Linux.
        let rv = match e.raw_os_error() {
            Some(28) | Some(122) => CKR_DEVICE_MEMORY,
            _ if e.kind() == std::io::ErrorKind::OutOfMemory => CKR_DEVICE_MEMORY,
            _ => CKR_DEVICE_ERROR,
        };
        Error::with(rv, e.to_string())
    }
}

/// The spec name of a return value, e.g. `"CKR_PIN_INCORRECT"`.
pub fn rv_name(rv: CK_RV) -> &'static str {
    match RV_NAMES.iter().find(|(v, _)| *v == rv) {
        Some((_, n)) => n,
        None if rv >= CKR_VENDOR_DEFINED => "CKR_VENDOR_DEFINED",
        None => "CKR_(unknown)",
    }
}

/// Every return value of the PKCS#11 3.2 header, by name (generated from `cryptoki-sys`).
const RV_NAMES: &[(CK_RV, &str)] = &[
    (CKR_OK, "CKR_OK"),
    (CKR_CANCEL, "CKR_CANCEL"),
    (CKR_HOST_MEMORY, "CKR_HOST_MEMORY"),
    (CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"),
    (CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"),
    (CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"),
    (CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"),
    (CKR_NO_EVENT, "CKR_NO_EVENT"),
    (CKR_NEED_TO_CREATE_THREADS, "CKR_NEED_TO_CREATE_THREADS"),
    (CKR_CANT_LOCK, "CKR_CANT_LOCK"),
    (CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY"),
    (CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"),
    (CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"),
    (CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"),
    (CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED"),
    (CKR_DATA_INVALID, "CKR_DATA_INVALID"),
    (CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"),
    (CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"),
    (CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"),
    (CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"),
    (CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"),
    (CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"),
    (CKR_AEAD_DECRYPT_FAILED, "CKR_AEAD_DECRYPT_FAILED"),
    (CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"),
    (CKR_FUNCTION_NOT_PARALLEL, "CKR_FUNCTION_NOT_PARALLEL"),
    (CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"),
    (CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"),
    (CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"),
    (CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"),
    (CKR_KEY_NOT_NEEDED, "CKR_KEY_NOT_NEEDED"),
    (CKR_KEY_CHANGED, "CKR_KEY_CHANGED"),
    (CKR_KEY_NEEDED, "CKR_KEY_NEEDED"),
    (CKR_KEY_INDIGESTIBLE, "CKR_KEY_INDIGESTIBLE"),
    (
        CKR_KEY_FUNCTION_NOT_PERMITTED,
        "CKR_KEY_FUNCTION_NOT_PERMITTED",
    ),
    (CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"),
    (CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"),
    (CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"),
    (CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"),
    (CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"),
    (CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"),
    (
        CKR_OPERATION_NOT_INITIALIZED,
        "CKR_OPERATION_NOT_INITIALIZED",
    ),
    (CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"),
    (CKR_PIN_INVALID, "CKR_PIN_INVALID"),
    (CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"),
    (CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"),
    (CKR_PIN_LOCKED, "CKR_PIN_LOCKED"),
    (CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"),
    (CKR_SESSION_COUNT, "CKR_SESSION_COUNT"),
    (CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"),
    (
        CKR_SESSION_PARALLEL_NOT_SUPPORTED,
        "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
    ),
    (CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"),
    (CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS"),
    (CKR_SESSION_READ_ONLY_EXISTS, "CKR_SESSION_READ_ONLY_EXISTS"),
    (
        CKR_SESSION_READ_WRITE_SO_EXISTS,
        "CKR_SESSION_READ_WRITE_SO_EXISTS",
    ),
    (CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID"),
    (CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE"),
    (CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"),
    (CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"),
    (CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"),
    (CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"),
    (CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"),
    (
        CKR_UNWRAPPING_KEY_HANDLE_INVALID,
        "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
    ),
    (
        CKR_UNWRAPPING_KEY_SIZE_RANGE,
        "CKR_UNWRAPPING_KEY_SIZE_RANGE",
    ),
    (
        CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
        "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
    ),
    (CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"),
    (CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"),
    (CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"),
    (CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"),
    (
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
    ),
    (CKR_USER_TOO_MANY_TYPES, "CKR_USER_TOO_MANY_TYPES"),
    (CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID"),
    (CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE"),
    (
        CKR_WRAPPING_KEY_HANDLE_INVALID,
        "CKR_WRAPPING_KEY_HANDLE_INVALID",
    ),
    (CKR_WRAPPING_KEY_SIZE_RANGE, "CKR_WRAPPING_KEY_SIZE_RANGE"),
    (
        CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
        "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
    ),
    (
        CKR_RANDOM_SEED_NOT_SUPPORTED,
        "CKR_RANDOM_SEED_NOT_SUPPORTED",
    ),
    (CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG"),
    (CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID"),
    (CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED"),
    (CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"),
    (CKR_SAVED_STATE_INVALID, "CKR_SAVED_STATE_INVALID"),
    (CKR_INFORMATION_SENSITIVE, "CKR_INFORMATION_SENSITIVE"),
    (CKR_STATE_UNSAVEABLE, "CKR_STATE_UNSAVEABLE"),
    (CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"),
    (
        CKR_CRYPTOKI_ALREADY_INITIALIZED,
        "CKR_CRYPTOKI_ALREADY_INITIALIZED",
    ),
    (CKR_MUTEX_BAD, "CKR_MUTEX_BAD"),
    (CKR_MUTEX_NOT_LOCKED, "CKR_MUTEX_NOT_LOCKED"),
    (CKR_NEW_PIN_MODE, "CKR_NEW_PIN_MODE"),
    (CKR_NEXT_OTP, "CKR_NEXT_OTP"),
    (CKR_EXCEEDED_MAX_ITERATIONS, "CKR_EXCEEDED_MAX_ITERATIONS"),
    (CKR_FIPS_SELF_TEST_FAILED, "CKR_FIPS_SELF_TEST_FAILED"),
    (CKR_LIBRARY_LOAD_FAILED, "CKR_LIBRARY_LOAD_FAILED"),
    (CKR_PIN_TOO_WEAK, "CKR_PIN_TOO_WEAK"),
    (CKR_PUBLIC_KEY_INVALID, "CKR_PUBLIC_KEY_INVALID"),
    (CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED"),
    (CKR_TOKEN_RESOURCE_EXCEEDED, "CKR_TOKEN_RESOURCE_EXCEEDED"),
    (CKR_OPERATION_CANCEL_FAILED, "CKR_OPERATION_CANCEL_FAILED"),
    (CKR_KEY_EXHAUSTED, "CKR_KEY_EXHAUSTED"),
    (CKR_PENDING, "CKR_PENDING"),
    (
        CKR_SESSION_ASYNC_NOT_SUPPORTED,
        "CKR_SESSION_ASYNC_NOT_SUPPORTED",
    ),
    (CKR_SEED_RANDOM_REQUIRED, "CKR_SEED_RANDOM_REQUIRED"),
    (CKR_OPERATION_NOT_VALIDATED, "CKR_OPERATION_NOT_VALIDATED"),
    (CKR_TOKEN_NOT_INITIALIZED, "CKR_TOKEN_NOT_INITIALIZED"),
    (
        CKR_PARAMETER_SET_NOT_SUPPORTED,
        "CKR_PARAMETER_SET_NOT_SUPPORTED",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_display() {
        assert_eq!(rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(CKR_OK), "CKR_OK");
        assert_eq!(rv_name(CKR_VENDOR_DEFINED + 5), "CKR_VENDOR_DEFINED");
        let e = Error::with(CKR_PIN_LOCKED, "10 wrong PINs");
        assert_eq!(e.to_string(), "CKR_PIN_LOCKED: 10 wrong PINs");
        assert_eq!(e.rv(), CKR_PIN_LOCKED);
    }

    #[test]
    fn full_disk_is_device_memory() {
        let e: Error = std::io::Error::from_raw_os_error(28).into();
        assert_eq!(e.rv(), CKR_DEVICE_MEMORY);
        let e: Error = std::io::Error::from_raw_os_error(5).into();
        assert_eq!(e.rv(), CKR_DEVICE_ERROR);
    }
}
