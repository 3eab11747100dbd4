//! Errors in plain words: what went wrong, the `CKR_` name when a PKCS#11 call failed, and the
//! process exit code. Nothing here ever contains a PIN or key material.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, Rv, RvError};
use cryptoki_sys::*;
use std::fmt;

/// Exit codes (documented in `klyuch --help`).
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_INTERNAL: i32 = 70;

/// A failure to report to the user: one readable line (maybe more), and an exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
    /// The PKCS#11 return value, when a PKCS#11 call failed.
    pub rv: Option<CK_RV>,
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: EXIT_FAILURE,
            rv: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: EXIT_USAGE,
            rv: None,
        }
    }

    /// Put `what` in front of the message ("importing key.pem: ...").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Add a sentence after the message ("...; 1 try left").
    pub fn append(mut self, more: impl fmt::Display) -> Self {
        self.message = format!("{}; {more}", self.message);
        self
    }

    /// The `RvError` of a PKCS#11 failure.
    pub fn is_rv(&self, rv: CK_RV) -> bool {
        self.rv == Some(rv)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every standard `CKR_` value with its name, so that a failure prints `CKR_PIN_INCORRECT`
/// rather than a Rust enum name.
macro_rules! ckr_table {
    ($($name:ident),* $(,)?) => {
        const CKR_NAMES: &[(CK_RV, &str)] = &[$(($name, stringify!($name))),*];
    };
}

ckr_table!(
    CKR_OK,
    CKR_CANCEL,
    CKR_HOST_MEMORY,
    CKR_SLOT_ID_INVALID,
    CKR_GENERAL_ERROR,
    CKR_FUNCTION_FAILED,
    CKR_ARGUMENTS_BAD,
    CKR_NO_EVENT,
    CKR_NEED_TO_CREATE_THREADS,
    CKR_CANT_LOCK,
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_ATTRIBUTE_SENSITIVE,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_ACTION_PROHIBITED,
    CKR_DATA_INVALID,
    CKR_DATA_LEN_RANGE,
    CKR_DEVICE_ERROR,
    CKR_DEVICE_MEMORY,
    CKR_DEVICE_REMOVED,
    CKR_ENCRYPTED_DATA_INVALID,
    CKR_ENCRYPTED_DATA_LEN_RANGE,
    CKR_FUNCTION_CANCELED,
    CKR_FUNCTION_NOT_PARALLEL,
    CKR_FUNCTION_NOT_SUPPORTED,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_KEY_NOT_NEEDED,
    CKR_KEY_CHANGED,
    CKR_KEY_NEEDED,
    CKR_KEY_INDIGESTIBLE,
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_KEY_NOT_WRAPPABLE,
    CKR_KEY_UNEXTRACTABLE,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_OBJECT_HANDLE_INVALID,
    CKR_OPERATION_ACTIVE,
    CKR_OPERATION_NOT_INITIALIZED,
    CKR_PIN_INCORRECT,
    CKR_PIN_INVALID,
    CKR_PIN_LEN_RANGE,
    CKR_PIN_EXPIRED,
    CKR_PIN_LOCKED,
    CKR_SESSION_CLOSED,
    CKR_SESSION_COUNT,
    CKR_SESSION_HANDLE_INVALID,
    CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    CKR_SESSION_READ_ONLY,
    CKR_SESSION_EXISTS,
    CKR_SESSION_READ_ONLY_EXISTS,
    CKR_SESSION_READ_WRITE_SO_EXISTS,
    CKR_SIGNATURE_INVALID,
    CKR_SIGNATURE_LEN_RANGE,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_TOKEN_NOT_PRESENT,
    CKR_TOKEN_NOT_RECOGNIZED,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    CKR_UNWRAPPING_KEY_SIZE_RANGE,
    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_USER_ALREADY_LOGGED_IN,
    CKR_USER_NOT_LOGGED_IN,
    CKR_USER_PIN_NOT_INITIALIZED,
    CKR_USER_TYPE_INVALID,
    CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    CKR_USER_TOO_MANY_TYPES,
    CKR_WRAPPED_KEY_INVALID,
    CKR_WRAPPED_KEY_LEN_RANGE,
    CKR_WRAPPING_KEY_HANDLE_INVALID,
    CKR_WRAPPING_KEY_SIZE_RANGE,
    CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_RANDOM_SEED_NOT_SUPPORTED,
    CKR_RANDOM_NO_RNG,
    CKR_DOMAIN_PARAMS_INVALID,
    CKR_CURVE_NOT_SUPPORTED,
    CKR_BUFFER_TOO_SMALL,
    CKR_SAVED_STATE_INVALID,
    CKR_INFORMATION_SENSITIVE,
    CKR_STATE_UNSAVEABLE,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_CRYPTOKI_ALREADY_INITIALIZED,
    CKR_MUTEX_BAD,
    CKR_MUTEX_NOT_LOCKED,
    CKR_NEW_PIN_MODE,
    CKR_NEXT_OTP,
    CKR_EXCEEDED_MAX_ITERATIONS,
    CKR_FIPS_SELF_TEST_FAILED,
    CKR_LIBRARY_LOAD_FAILED,
    CKR_PIN_TOO_WEAK,
    CKR_PUBLIC_KEY_INVALID,
    CKR_FUNCTION_REJECTED,
    CKR_TOKEN_RESOURCE_EXCEEDED,
    CKR_OPERATION_CANCEL_FAILED,
);

/// `CKR_PIN_INCORRECT` for 0xA0; `CKR_VENDOR_DEFINED+0x...` or the hex value otherwise.
pub fn ckr_name(rv: CK_RV) -> String {
    if let Some((_, name)) = CKR_NAMES.iter().find(|(v, _)| *v == rv) {
        return (*name).to_string();
    }
    if rv >= CKR_VENDOR_DEFINED {
        return format!("CKR_VENDOR_DEFINED+{:#x}", rv - CKR_VENDOR_DEFINED);
    }
    format!("CKR_{rv:#x}")
}

/// The numeric value of a cryptoki `RvError` (cryptoki maps numbers to names only one way).
pub fn rv_value(err: RvError) -> CK_RV {
    match err {
        RvError::VendorDefined(v) | RvError::UnknownErrorCode(v) => v,
        other => CKR_NAMES
            .iter()
            .map(|(v, _)| *v)
            .find(|v| Rv::from(*v) == Rv::Error(other))
            .unwrap_or(CKR_GENERAL_ERROR),
    }
}

const GENERIC: &str = "the PKCS#11 call failed";

/// What a return value means, in plain words (the name follows in brackets).
pub fn plain_words(rv: CK_RV) -> &'static str {
    match rv {
        CKR_PIN_INCORRECT => "wrong PIN",
        CKR_PIN_LOCKED => "the PIN is locked (the SO can unblock the user PIN: klyuch pin unblock)",
        CKR_PIN_LEN_RANGE => "the PIN is too short or too long for this token",
        CKR_PIN_INVALID => "the PIN has characters this token does not accept",
        CKR_PIN_EXPIRED => "the PIN has expired and must be changed (klyuch pin set)",
        CKR_PIN_TOO_WEAK => "the new PIN is too weak",
        CKR_USER_PIN_NOT_INITIALIZED => {
            "the user PIN is not set on this token (klyuch pin unblock, or token init --init-pin)"
        }
        CKR_USER_NOT_LOGGED_IN => "this needs a login (the user PIN)",
        CKR_USER_ALREADY_LOGGED_IN => "already logged in",
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN => "another user is already logged in",
        CKR_USER_TYPE_INVALID => "the token does not know this kind of user",
        CKR_SESSION_EXISTS => "the token has open sessions (close other programs using it)",
        CKR_SESSION_READ_ONLY_EXISTS => {
            "another program has a read-only session open on the token, so the SO cannot log in"
        }
        CKR_SESSION_READ_ONLY => "the session is read-only",
        CKR_TOKEN_WRITE_PROTECTED => "the token is write-protected",
        CKR_TOKEN_NOT_PRESENT => "no token in the slot",
        CKR_TOKEN_NOT_RECOGNIZED => "the token in the slot is not recognised",
        CKR_SLOT_ID_INVALID => "no such slot",
        CKR_DEVICE_REMOVED => "the token was removed",
        CKR_DEVICE_ERROR => "the token reported a device error",
        CKR_DEVICE_MEMORY => "the token is out of memory",
        CKR_TOKEN_RESOURCE_EXCEEDED => "the token has no room left",
        CKR_TEMPLATE_INCOMPLETE => "the token needs attributes that were not given",
        CKR_TEMPLATE_INCONSISTENT => "the token rejects this combination of attributes",
        CKR_ATTRIBUTE_TYPE_INVALID => "the token does not support an attribute of this object",
        CKR_ATTRIBUTE_VALUE_INVALID => "the token rejects an attribute value of this object",
        CKR_ATTRIBUTE_READ_ONLY => "an attribute may not be set",
        CKR_ATTRIBUTE_SENSITIVE => "the value is sensitive and cannot be read",
        CKR_ACTION_PROHIBITED => "the token does not allow this on the object",
        CKR_OBJECT_HANDLE_INVALID => "the object no longer exists",
        CKR_KEY_SIZE_RANGE => "the token does not support this key size",
        CKR_CURVE_NOT_SUPPORTED => "the token does not support this curve",
        CKR_DOMAIN_PARAMS_INVALID => "the token does not support these key parameters",
        CKR_KEY_TYPE_INCONSISTENT => "the key type does not fit",
        CKR_PUBLIC_KEY_INVALID => "the public key is invalid",
        CKR_FUNCTION_NOT_SUPPORTED => "the module does not support this function",
        CKR_MECHANISM_INVALID => "the token does not support this mechanism",
        CKR_ARGUMENTS_BAD => "the module rejected the arguments",
        CKR_HOST_MEMORY => "out of memory",
        CKR_GENERAL_ERROR => "the module reported an internal error",
        CKR_FUNCTION_FAILED => "the module could not do it",
        CKR_CRYPTOKI_NOT_INITIALIZED => "the module is not initialised",
        CKR_CANT_LOCK => "the module cannot do the locking asked for",
        CKR_LIBRARY_LOAD_FAILED => "the module could not load a library it needs",
        CKR_SESSION_COUNT => "the token has too many open sessions",
        CKR_SESSION_HANDLE_INVALID | CKR_SESSION_CLOSED => "the session was closed",
        CKR_FUNCTION_REJECTED => "the request was rejected on the token",
        _ => GENERIC,
    }
}

fn function_name(f: Function) -> String {
    // cryptoki's `Function` names follow the PKCS#11 ones without the `C_` prefix.
    format!("C_{f:?}")
}

impl From<CkError> for CliError {
    fn from(e: CkError) -> Self {
        match e {
            CkError::Pkcs11(err, func) => {
                let rv = rv_value(err);
                let words = plain_words(rv);
                let message = if words == GENERIC {
                    format!("{words}: {} returned {}", function_name(func), ckr_name(rv))
                } else {
                    format!("{words} ({})", ckr_name(rv))
                };
                CliError {
                    message,
                    code: EXIT_FAILURE,
                    rv: Some(rv),
                }
            }
            CkError::LibraryLoading(e) => CliError::new(format!("cannot load the module: {e}")),
            CkError::NullFunctionPointer | CkError::MissingSymbol(_) => CliError::new(format!(
                "the module does not provide a function it must have ({e})"
            )),
            CkError::NotSupported => {
                CliError::new("the module returned a value the cryptoki library cannot represent")
            }
            other => CliError::new(format!("PKCS#11 interface error: {other}")),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

/// `Err(CliError::new(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::CliError::new(format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert_eq!(ckr_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
        assert_eq!(ckr_name(CKR_VENDOR_DEFINED + 5), "CKR_VENDOR_DEFINED+0x5");
        assert_eq!(rv_value(RvError::PinIncorrect), CKR_PIN_INCORRECT);
        assert_eq!(
            rv_value(RvError::UserPinNotInitialized),
            CKR_USER_PIN_NOT_INITIALIZED
        );
        // Every code cryptoki knows round-trips through the table.
        for (v, _) in CKR_NAMES.iter().skip(1) {
            if let Rv::Error(e) = Rv::from(*v) {
                assert_eq!(rv_value(e), *v, "{}", ckr_name(*v));
            }
        }
    }

    #[test]
    fn message_has_words_and_name() {
        let e: CliError = CkError::Pkcs11(RvError::PinIncorrect, Function::Login).into();
        assert_eq!(e.message, "wrong PIN (CKR_PIN_INCORRECT)");
        assert!(e.is_rv(CKR_PIN_INCORRECT));
        let e: CliError = CkError::Pkcs11(RvError::KeyChanged, Function::Sign).into();
        assert_eq!(
            e.message,
            "the PKCS#11 call failed: C_Sign returned CKR_KEY_CHANGED"
        );
    }
}
