//! The one wrapper every exported function goes through: initialisation check, the application's
//! mutex (when it asked for it), panic catching (a panic never crosses the C boundary), logging,
//! and `Result` → `CK_RV`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use token_api::Result;
use token_api::ck::*;

use super::state;
use crate::core::{Inner, read};

/// Run `f` and turn its result into a `CK_RV`, catching panics.
pub fn run(name: &'static str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            log::debug!("{name} -> CKR_OK");
            CKR_OK
        }
        Ok(Err(e)) => {
            log::debug!("{name} -> {e}");
            e.rv()
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!("{name}: internal error (panic): {what}");
            CKR_GENERAL_ERROR
        }
    }
}

/// For functions that need an initialised library: `f` gets the core, under the application's
/// mutex when the application supplied mutex callbacks without `CKF_OS_LOCKING_OK`.
pub fn call(name: &'static str, f: impl FnOnce(&Arc<Inner>) -> Result<()>) -> CK_RV {
    run(name, || {
        let (inner, inst) = state::inner()?;
        // Only applications that gave mutex callbacks without CKF_OS_LOCKING_OK pay for the lock.
        let app = inst.uses_app_mutex.then(|| read(&inst.app_mutex));
        let _guard = app
            .as_ref()
            .and_then(|a| a.as_ref())
            .map(|m| m.lock())
            .transpose()?;
        f(&inner)
    })
}

/// For `C_WaitForSlotEvent`: like [`call`] but never holds the application's mutex while it
/// blocks (other threads must be able to call in, and `C_Finalize` must be able to wake it).
pub fn call_unlocked(name: &'static str, f: impl FnOnce(&Arc<Inner>) -> Result<()>) -> CK_RV {
    run(name, || {
        let (inner, _) = state::inner()?;
        f(&inner)
    })
}

/// For functions Klyuch does not implement: `CKR_CRYPTOKI_NOT_INITIALIZED` before
/// initialisation, `CKR_FUNCTION_NOT_SUPPORTED` after.
pub fn not_supported(name: &'static str) -> CK_RV {
    run(name, || {
        state::inner()?;
        Err(token_api::Error::not_supported())
    })
}
