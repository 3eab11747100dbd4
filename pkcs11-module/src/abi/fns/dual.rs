//! Dual-function cryptographic operations (PKCS#11 3.0 §5.13): not supported.

use token_api::ck::*;

use crate::abi::entry::not_supported;

macro_rules! dual {
    ($($name:ident),*) => {$(
        /// Not supported.
        ///
        /// # Safety
        /// Always safe (arguments are not read).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            _hSession: CK_SESSION_HANDLE,
            _pIn: *mut CK_BYTE,
            _ulInLen: CK_ULONG,
            _pOut: *mut CK_BYTE,
            _pulOutLen: *mut CK_ULONG,
        ) -> CK_RV {
            not_supported(stringify!($name))
        }
    )*};
}

dual!(
    C_DigestEncryptUpdate,
    C_DecryptDigestUpdate,
    C_SignEncryptUpdate,
    C_DecryptVerifyUpdate
);
