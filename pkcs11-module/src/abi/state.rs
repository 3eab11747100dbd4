//! The process-wide library state.
//!
//! `CURRENT` points to the instance made by the last successful `C_Initialize`. Instances are
//! small and deliberately leaked (never freed), so a pointer read from `CURRENT` stays valid even
//! while another thread finalises; the heavy part (`Inner`: sessions, tokens, backends) sits in an
//! `Arc` inside and is released by `C_Finalize` once in-flight calls are done.
//!
//! Fork: a `pthread_atfork` child handler bumps `FORK_GEN` and clears `CURRENT` and the init
//! lock, all plain atomics, so the child sees `CKR_CRYPTOKI_NOT_INITIALIZED` until it calls
//! `C_Initialize` itself, and never touches (or frees) the parent's state.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Once, RwLock};

use token_api::ck::*;
use token_api::config::Config;
use token_api::{Error, Result};

use super::ptr::read_in;
use crate::core::{InitFlags, Inner, logging, read, write};

/// Application-supplied mutex callbacks (`CK_C_INITIALIZE_ARGS`), used to serialise every call
/// when the application did not allow OS locking.
pub struct AppMutex {
    destroy: unsafe extern "C" fn(*mut c_void) -> CK_RV,
    lock: unsafe extern "C" fn(*mut c_void) -> CK_RV,
    unlock: unsafe extern "C" fn(*mut c_void) -> CK_RV,
    mutex: *mut c_void,
}

// SAFETY: the application promises (PKCS#11 §5.4) that its mutex functions may be called from any
// thread; the handle is only passed back to them.
unsafe impl Send for AppMutex {}
// SAFETY: as above.
unsafe impl Sync for AppMutex {}

pub struct AppGuard<'a>(&'a AppMutex);

impl AppMutex {
    pub fn lock(&self) -> Result<AppGuard<'_>> {
        // SAFETY: a function pointer the application supplied, with the handle it created.
        match unsafe { (self.lock)(self.mutex) } {
            CKR_OK => Ok(AppGuard(self)),
            rv => Err(Error::with(rv, "application LockMutex failed")),
        }
    }
}

impl Drop for AppGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `lock`.
        unsafe { (self.0.unlock)(self.0.mutex) };
    }
}

impl Drop for AppMutex {
    fn drop(&mut self) {
        // SAFETY: as in `lock`; the handle is not used afterwards.
        unsafe { (self.destroy)(self.mutex) };
    }
}

pub struct Instance {
    fork_gen: u64,
    pub inner: RwLock<Option<Arc<Inner>>>,
    pub app_mutex: RwLock<Option<AppMutex>>,
    /// Whether `app_mutex` was set at `C_Initialize` (fixed for the instance's life).
    pub uses_app_mutex: bool,
}

static CURRENT: AtomicPtr<Instance> = AtomicPtr::new(std::ptr::null_mut());
static INIT_BUSY: AtomicBool = AtomicBool::new(false);
static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::AcqRel);
    CURRENT.store(std::ptr::null_mut(), Ordering::Release);
    INIT_BUSY.store(false, Ordering::Release);
}

/// The live instance, if this process initialised the library.
pub fn current() -> Option<&'static Instance> {
    let p = CURRENT.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: every pointer stored in CURRENT comes from Box::leak and is never freed.
    let inst: &'static Instance = unsafe { &*p };
    (inst.fork_gen == FORK_GEN.load(Ordering::Acquire)).then_some(inst)
}

/// The live instance's core, or `CKR_CRYPTOKI_NOT_INITIALIZED`.
pub fn inner() -> Result<(Arc<Inner>, &'static Instance)> {
    let inst = current().ok_or_else(|| Error::new(CKR_CRYPTOKI_NOT_INITIALIZED))?;
    let inner = read(&inst.inner)
        .clone()
        .ok_or_else(|| Error::new(CKR_CRYPTOKI_NOT_INITIALIZED))?;
    Ok((inner, inst))
}

/// Serialise C_Initialize / C_Finalize with a spin flag (a plain atomic, so a fork in the middle
/// cannot leave the child with a lock it can never take: the child handler clears it).
struct InitLock;

impl InitLock {
    fn take() -> InitLock {
        while INIT_BUSY
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::thread::yield_now();
        }
        InitLock
    }
}

impl Drop for InitLock {
    fn drop(&mut self) {
        INIT_BUSY.store(false, Ordering::Release);
    }
}

/// `C_Initialize`.
///
/// # Safety
/// `args` must be NULL or point to a readable `CK_C_INITIALIZE_ARGS`.
pub unsafe fn initialize(args: *const CK_C_INITIALIZE_ARGS) -> Result<()> {
    let mut flags = InitFlags::default();
    let mut app_mutex = None;
    if !args.is_null() {
        // SAFETY: non-NULL, readable per the contract.
        let a = unsafe { read_in(args) }?;
        if !a.pReserved.is_null() {
            return Err(Error::args("CK_C_INITIALIZE_ARGS.pReserved must be NULL"));
        }
        flags.os_locking_ok = a.flags & CKF_OS_LOCKING_OK != 0;
        flags.cant_create_threads = a.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0;
        let given = [
            a.CreateMutex.is_some(),
            a.DestroyMutex.is_some(),
            a.LockMutex.is_some(),
            a.UnlockMutex.is_some(),
        ];
        match (a.CreateMutex, a.DestroyMutex, a.LockMutex, a.UnlockMutex) {
            (Some(create), Some(destroy), Some(lock), Some(unlock)) => {
                flags.app_mutexes = true;
                if !flags.os_locking_ok {
                    // PKCS#11 §5.4 case 3: the library must use the application's mutexes.
                    let mut mutex: *mut c_void = std::ptr::null_mut();
                    // SAFETY: the application's CreateMutex with a valid out pointer.
                    let rv = unsafe { create(&mut mutex) };
                    if rv != CKR_OK {
                        return Err(Error::with(rv, "application CreateMutex failed"));
                    }
                    app_mutex = Some(AppMutex {
                        destroy,
                        lock,
                        unlock,
                        mutex,
                    });
                }
            }
            _ if given.iter().any(|g| *g) => {
                return Err(Error::args("either all four mutex functions or none"));
            }
            _ => {}
        }
    }

    let _l = InitLock::take();
    if current().is_some() {
        return Err(Error::new(CKR_CRYPTOKI_ALREADY_INITIALIZED));
    }
    let config = Config::load().inspect_err(|e| {
        // The logger is not set up yet: say it where a user sees it.
        eprintln!("klyuch: {e}");
    })?;
    logging::init(&config);
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only touches atomics; async-signal-safe.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({rc}): fork detection relies on C_Initialize");
        }
    });
    log::info!(
        "C_Initialize: Klyuch {} (os_locking_ok={}, app_mutexes={}, cant_create_threads={}, config={})",
        env!("CARGO_PKG_VERSION"),
        flags.os_locking_ok,
        flags.app_mutexes,
        flags.cant_create_threads,
        config
            .source
            .as_ref()
            .map_or("defaults".into(), |p| p.display().to_string())
    );
    let sources = crate::backends::sources(&config);
    let inner = Arc::new(Inner::new(config, flags, sources));
    let inst = Box::leak(Box::new(Instance {
        fork_gen: FORK_GEN.load(Ordering::Acquire),
        inner: RwLock::new(Some(inner)),
        uses_app_mutex: app_mutex.is_some(),
        app_mutex: RwLock::new(app_mutex),
    }));
    CURRENT.store(inst, Ordering::Release);
    Ok(())
}

/// `C_Finalize`.
///
/// # Safety
/// Always safe to call; `reserved` is only compared with NULL.
pub unsafe fn finalize(reserved: *mut c_void) -> Result<()> {
    if !reserved.is_null() {
        return Err(Error::args("C_Finalize argument must be NULL"));
    }
    let _l = InitLock::take();
    let inst = current().ok_or_else(|| Error::new(CKR_CRYPTOKI_NOT_INITIALIZED))?;
    CURRENT.store(std::ptr::null_mut(), Ordering::Release);
    let inner = write(&inst.inner).take();
    if let Some(inner) = inner {
        inner.finalize();
    }
    drop(write(&inst.app_mutex).take());
    log::info!("C_Finalize");
    Ok(())
}
