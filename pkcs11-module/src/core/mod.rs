//! The safe core of the module: the slot registry, the session table, object handles and the
//! operation state machines. Everything here takes owned, already-validated values; the C ABI in
//! `crate::abi` is the only code that touches raw pointers.
//!
//! Lock order (written once): `Inner.slots` → `Inner.sessions` → one `SessionCell.state` →
//! `Inner.handles` → token internals. No lock is held across a blocking wait.

pub mod handles;
pub mod instance;
pub mod logging;
pub mod output;
pub mod session;
pub mod slots;

pub use instance::{InitFlags, Inner};
pub use output::Out;

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Lock a mutex, ignoring poisoning: a panic in another call was already reported as
/// `CKR_GENERAL_ERROR` and must not make every later call fail.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}
