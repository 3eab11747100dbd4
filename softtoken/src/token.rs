//! One soft token: the [`Token`] implementation (login and PINs, objects, crypto).

use crate::format::{Meta, PinWrap, Role};
use crate::objects::{Obj, SESSION_ID_BASE};
use crate::ops::{AuthCipher, AuthSign};
use crate::schema::{self, Op, flag, ulong};
use crate::seal::{self, SecretKey};
use crate::source::{Shared, lock};
use crate::state::{Pending, Ready};
use crate::store::{self, Stamp, TokenPaths};
use klyuch_crypto::{Key, MechanismImpl};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use token_api::ck::*;
use token_api::ops::{CipherOp, DigestOp, SignOp, VerifyOp};
use token_api::{
    AttrRead, Error, MechInfo, Mechanism, ObjectId, Pin, Result, SessionCtx, Template, Token,
    TokenInfo, UserType,
};
use zeroize::Zeroizing;

/// One slot's token. `None` inside: not initialised (no folder for this slot yet).
pub struct SoftToken {
    me: Weak<SoftToken>,
    shared: Arc<Shared>,
    slot: u64,
    inner: Mutex<Option<Box<Ready>>>,
    next_session_object: AtomicU64,
}

/// Statistics for tools and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub objects: usize,
    pub log_bytes: u64,
    pub dead_bytes: u64,
}

/// What a key is being used for: the attribute that must allow it, the classes that can do it,
/// and the return values for a handle that is no key and for a key of the wrong class.
struct KeyUse {
    attr: CK_ATTRIBUTE_TYPE,
    classes: &'static [CK_OBJECT_CLASS],
    invalid: CK_RV,
    wrong_class: CK_RV,
}

const SIGN: KeyUse = KeyUse {
    attr: CKA_SIGN,
    classes: &[CKO_PRIVATE_KEY, CKO_SECRET_KEY],
    invalid: CKR_KEY_HANDLE_INVALID,
    wrong_class: CKR_KEY_TYPE_INCONSISTENT,
};
const VERIFY: KeyUse = KeyUse {
    attr: CKA_VERIFY,
    classes: &[CKO_PUBLIC_KEY, CKO_SECRET_KEY],
    invalid: CKR_KEY_HANDLE_INVALID,
    wrong_class: CKR_KEY_TYPE_INCONSISTENT,
};
const ENCRYPT: KeyUse = KeyUse {
    attr: CKA_ENCRYPT,
    classes: &[CKO_PUBLIC_KEY, CKO_SECRET_KEY],
    invalid: CKR_KEY_HANDLE_INVALID,
    wrong_class: CKR_KEY_TYPE_INCONSISTENT,
};
const DECRYPT: KeyUse = KeyUse {
    attr: CKA_DECRYPT,
    classes: &[CKO_PRIVATE_KEY, CKO_SECRET_KEY],
    invalid: CKR_KEY_HANDLE_INVALID,
    wrong_class: CKR_KEY_TYPE_INCONSISTENT,
};
const WRAP: KeyUse = KeyUse {
    attr: CKA_WRAP,
    classes: &[CKO_PUBLIC_KEY, CKO_SECRET_KEY],
    invalid: CKR_WRAPPING_KEY_HANDLE_INVALID,
    wrong_class: CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
};
const UNWRAP: KeyUse = KeyUse {
    attr: CKA_UNWRAP,
    classes: &[CKO_PRIVATE_KEY, CKO_SECRET_KEY],
    invalid: CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    wrong_class: CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
};
const DERIVE: KeyUse = KeyUse {
    attr: CKA_DERIVE,
    classes: &[CKO_PRIVATE_KEY, CKO_SECRET_KEY],
    invalid: CKR_KEY_HANDLE_INVALID,
    wrong_class: CKR_KEY_TYPE_INCONSISTENT,
};

/// A key ready for an operation.
struct Prepared {
    key: Arc<Key>,
    always_authenticate: bool,
    always_sensitive: bool,
    never_extractable: bool,
    trusted: bool,
}

/// The key type a key-generation mechanism makes, for checking templates before the (slow)
/// generation. Unknown mechanisms are checked after generation only.
fn generated_key_type(mech: CK_MECHANISM_TYPE) -> Option<CK_KEY_TYPE> {
    Some(match mech {
        CKM_RSA_PKCS_KEY_PAIR_GEN => CKK_RSA,
        CKM_EC_KEY_PAIR_GEN => CKK_EC,
        CKM_EC_EDWARDS_KEY_PAIR_GEN => CKK_EC_EDWARDS,
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN => CKK_EC_MONTGOMERY,
        CKM_GOSTR3410_KEY_PAIR_GEN => CKK_GOSTR3410,
        CKM_GOSTR3410_512_KEY_PAIR_GEN => CKK_GOSTR3410_512,
        CKM_AES_KEY_GEN => CKK_AES,
        CKM_GENERIC_SECRET_KEY_GEN => CKK_GENERIC_SECRET,
        _ => return None,
    })
}

fn mechanism(ty: CK_MECHANISM_TYPE) -> Result<&'static dyn MechanismImpl> {
    klyuch_crypto::find(ty).ok_or_else(Error::mechanism_invalid)
}

fn is_key_class(c: CK_OBJECT_CLASS) -> bool {
    matches!(c, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY)
}

fn not_initialised() -> Error {
    Error::with(
        CKR_TOKEN_NOT_RECOGNIZED,
        "the token is not initialised (C_InitToken first)",
    )
}

fn pin_or_bad(pin: Option<&Pin>) -> Result<&Pin> {
    pin.ok_or_else(|| {
        Error::with(
            CKR_ARGUMENTS_BAD,
            "the soft token has no protected authentication path: give the PIN",
        )
    })
}

impl SoftToken {
    pub(crate) fn new(shared: Arc<Shared>, slot: u64) -> Arc<SoftToken> {
        Arc::new_cyclic(|me| SoftToken {
            me: me.clone(),
            shared,
            slot,
            inner: Mutex::new(None),
            next_session_object: AtomicU64::new(SESSION_ID_BASE),
        })
    }

    /// The source-local slot number.
    pub fn slot(&self) -> u64 {
        self.slot
    }

    fn state(&self) -> MutexGuard<'_, Option<Box<Ready>>> {
        lock(&self.inner)
    }

    /// Bring the in-memory state up to date: find the folder of a token initialised elsewhere,
    /// notice one that was removed, read what other processes changed. `objects`: only what
    /// object calls need (the object log, read if it was not; the metadata is checked by the
    /// other calls, and by object calls when the log names a change).
    fn resolve(&self, g: &mut Option<Box<Ready>>, objects: bool) -> Result<()> {
        match g {
            None => {
                if let Some(dir) = self.shared.folder_for(self.slot)? {
                    let mut r = Box::new(Ready::open(TokenPaths::new(dir))?);
                    if objects {
                        r.ensure_loaded()?;
                    }
                    *g = Some(r);
                }
                Ok(())
            }
            Some(r) => match if objects { r.sync_objects() } else { r.sync() } {
                Ok(()) => Ok(()),
                Err(e) => {
                    if !r.paths.dir.exists() {
                        log::warn!("soft token folder {} is gone", r.paths.dir.display());
                        *g = None;
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
            },
        }
    }

    /// Run `f` on the up-to-date state of an initialised token.
    fn with_ready<T>(&self, f: impl FnOnce(&mut Ready) -> Result<T>) -> Result<T> {
        let mut g = self.state();
        self.resolve(&mut g, false)?;
        match g.as_deref_mut() {
            Some(r) => f(r),
            None => Err(not_initialised()),
        }
    }

    /// Run `f` with the objects up to date (the object log read).
    pub(crate) fn with_objects<T>(&self, f: impl FnOnce(&mut Ready) -> Result<T>) -> Result<T> {
        let mut g = self.state();
        self.resolve(&mut g, true)?;
        match g.as_deref_mut() {
            Some(r) => f(r),
            None => Err(not_initialised()),
        }
    }

    /// Statistics of the token (reads the object log if needed).
    pub fn stats(&self) -> Result<Stats> {
        self.with_objects(|r| {
            Ok(Stats {
                objects: r.objects.len(),
                log_bytes: r.log_size(),
                dead_bytes: r.dead_bytes(),
            })
        })
    }

    /// Rewrite the object log with only live records.
    pub fn compact(&self) -> Result<()> {
        self.with_ready(|r| r.compact())
    }

    /// Set the compaction threshold (bytes of superseded records); for tests.
    #[doc(hidden)]
    pub fn set_compact_threshold(&self, bytes: u64) -> Result<()> {
        self.with_ready(|r| {
            r.compact_min_dead = bytes;
            Ok(())
        })
    }

    fn max_failures(&self, role: Role) -> u32 {
        match role {
            Role::So => self.shared.cfg.max_so_pin_failures,
            Role::User => self.shared.cfg.max_user_pin_failures,
        }
    }

    fn check_pin_len(&self, pin: &Pin) -> Result<()> {
        check_pin_len(&self.shared.cfg, pin, "a PIN")
    }

    /// Verify a PIN against its wrap of the token key and return the token key.
    ///
    /// Like a smart card, the attempt is counted in the store *before* the PIN is checked, and
    /// the count is reset when the PIN was right: killing the process, or a full disk, can
    /// never give an uncounted guess (a full disk rewrites the metadata in place; where the
    /// count cannot be written at all, no PIN is checked). A right PIN
    /// also upgrades the KDF iterations if the configuration asks for more. The slow KDF runs
    /// without the token's lock.
    fn verify_pin(&self, role: Role, pin: &Pin) -> Result<SecretKey> {
        let max = self.max_failures(role);
        let want_iter = self.shared.cfg.kdf_iterations;
        if self.with_ready(|r| Ok(r.write_protected))? {
            return self.verify_pin_read_only(role, pin, max);
        }
        let (wrap, uuid, used) = self.with_ready(|r| {
            let mut out = None;
            r.update_meta(|m| {
                let w = m.wrap(role).cloned().ok_or_else(|| {
                    Error::with(CKR_USER_PIN_NOT_INITIALIZED, "the user PIN is not set")
                })?;
                let n = m.failures(role);
                if n >= max {
                    return Err(Error::with(CKR_PIN_LOCKED, locked_msg(role)));
                }
                *m.failures_mut(role) = n + 1;
                out = Some((w, m.uuid, n + 1));
                Ok(true)
            })?;
            out.ok_or_else(|| Error::general("PIN check not started"))
        })?;
        let kek = seal::derive_kek(pin.expose(), &wrap.salt, wrap.iterations);
        let Some(key) = wrap.unwrap_with(&uuid, role, &kek) else {
            log::warn!("wrong {role:?} PIN ({used} of {max} tries used)");
            return Err(if used >= max {
                Error::with(
                    CKR_PIN_INCORRECT,
                    format!("wrong PIN; the {role:?} PIN is now locked"),
                )
            } else {
                Error::with(
                    CKR_PIN_INCORRECT,
                    format!("wrong PIN; {} tries left", max - used),
                )
            });
        };
        let upgraded = if wrap.iterations < want_iter {
            Some(PinWrap::new(&uuid, role, pin.expose(), want_iter, &key)?)
        } else {
            None
        };
        let reset = self.with_ready(|r| {
            r.update_meta(|m| {
                if m.uuid != uuid {
                    return Err(Error::with(
                        CKR_DEVICE_ERROR,
                        "the token was re-initialised meanwhile",
                    ));
                }
                *m.failures_mut(role) = 0;
                if let Some(w) = &upgraded
                    && m.wrap(role) == Some(&wrap)
                {
                    log::info!(
                        "raising the {role:?} PIN KDF iterations from {} to {}",
                        wrap.iterations,
                        w.iterations
                    );
                    set_wrap(m, role, w.clone());
                }
                Ok(true)
            })
        });
        match reset {
            Ok(()) => Ok(key),
            Err(e) if e.rv() == CKR_DEVICE_MEMORY => {
                // The PIN was right; the count stays one higher until the next login.
                log::warn!("the PIN was right but its try count could not be reset: {e}");
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// [`SoftToken::verify_pin`] on a write-protected token: the count in the metadata cannot
    /// grow, so wrong PINs are counted on top of it in this process only (and the stored count
    /// is honoured: a PIN locked in the files stays locked). A new process starts again from the
    /// stored count; whoever can run the module on a read-only store can also copy the files and
    /// attack the PIN wraps offline, so the durable lockout would add nothing there (the KDF
    /// cost is the limit; see SECURITY.md).
    fn verify_pin_read_only(&self, role: Role, pin: &Pin, max: u32) -> Result<SecretKey> {
        let idx = role as usize;
        let (wrap, uuid, used) = self.with_ready(|r| {
            let w = r.meta.wrap(role).cloned().ok_or_else(|| {
                Error::with(CKR_USER_PIN_NOT_INITIALIZED, "the user PIN is not set")
            })?;
            let n = r.meta.failures(role).saturating_add(r.ro_failures[idx]);
            if n >= max {
                return Err(Error::with(CKR_PIN_LOCKED, locked_msg(role)));
            }
            // Counted before the check, as on a writable token.
            r.ro_failures[idx] += 1;
            Ok((w, r.meta.uuid, n + 1))
        })?;
        let kek = seal::derive_kek(pin.expose(), &wrap.salt, wrap.iterations);
        let Some(key) = wrap.unwrap_with(&uuid, role, &kek) else {
            log::warn!("wrong {role:?} PIN ({used} of {max} tries used; write-protected token)");
            return Err(Error::with(
                CKR_PIN_INCORRECT,
                if used >= max {
                    format!("wrong PIN; the {role:?} PIN is now locked")
                } else {
                    format!("wrong PIN; {} tries left", max - used)
                },
            ));
        };
        self.with_ready(|r| {
            r.ro_failures[idx] = 0;
            Ok(())
        })?;
        Ok(key)
    }

    /// Verify the user PIN for a context-specific login (`CKA_ALWAYS_AUTHENTICATE` keys).
    pub(crate) fn verify_user_pin(&self, pin: &Pin) -> Result<()> {
        self.verify_pin(Role::User, pin).map(|_| ())
    }

    fn is_so(r: &Ready) -> bool {
        r.login == Some(UserType::So)
    }

    /// May this session make an object with these `CKA_TOKEN` / `CKA_PRIVATE` values?
    fn check_access(r: &Ready, s: &SessionCtx, token: bool, private: bool) -> Result<()> {
        if token {
            // PKCS#11 2.40 §5.1.6: CKR_TOKEN_WRITE_PROTECTED ranks above CKR_SESSION_READ_ONLY.
            r.check_writable()?;
        }
        if token && !s.rw {
            return Err(Error::with(
                CKR_SESSION_READ_ONLY,
                "token objects need a read/write session",
            ));
        }
        if private && r.login != Some(UserType::User) {
            return Err(Error::with(
                CKR_USER_NOT_LOGGED_IN,
                "private objects need the user logged in",
            ));
        }
        Ok(())
    }

    /// Store a new object (token or session) and return its id.
    fn store_new(
        &self,
        r: &mut Ready,
        s: &SessionCtx,
        mut attrs: Template,
        key: Option<Arc<Key>>,
    ) -> Result<ObjectId> {
        with_public_key_info(&mut attrs, key.as_deref());
        let token = flag(&attrs, CKA_TOKEN, false);
        let private = flag(&attrs, CKA_PRIVATE, true);
        if token {
            let ids = r.write(|_| Ok(vec![Pending::New { private, attrs }]))?;
            let id = ids[0];
            if let Some(o) = r.objects.get_mut(id) {
                o.key = key;
            }
            Ok(id)
        } else {
            let id = self.next_session_object.fetch_add(1, Ordering::Relaxed);
            r.objects
                .put(id, Obj::session(attrs, private, Some(s.handle), key));
            Ok(id)
        }
    }

    /// Store two new objects (a key pair) in one write.
    fn store_pair(
        &self,
        r: &mut Ready,
        s: &SessionCtx,
        mut a: (Template, Option<Arc<Key>>),
        mut b: (Template, Option<Arc<Key>>),
    ) -> Result<(ObjectId, ObjectId)> {
        with_public_key_info(&mut a.0, a.1.as_deref());
        with_public_key_info(&mut b.0, b.1.as_deref());
        let a_token = flag(&a.0, CKA_TOKEN, false);
        let b_token = flag(&b.0, CKA_TOKEN, false);
        if a_token && b_token {
            let pa = flag(&a.0, CKA_PRIVATE, true);
            let pb = flag(&b.0, CKA_PRIVATE, true);
            let ids = r.write(|_| {
                Ok(vec![
                    Pending::New {
                        private: pa,
                        attrs: a.0,
                    },
                    Pending::New {
                        private: pb,
                        attrs: b.0,
                    },
                ])
            })?;
            for (id, key) in [(ids[0], a.1), (ids[1], b.1)] {
                if let Some(o) = r.objects.get_mut(id) {
                    o.key = key;
                }
            }
            Ok((ids[0], ids[1]))
        } else {
            // The token one first, so a failed write leaves no session object behind.
            if a_token {
                let ia = self.store_new(r, s, a.0, a.1)?;
                Ok((ia, self.store_new(r, s, b.0, b.1)?))
            } else {
                let ib = self.store_new(r, s, b.0, b.1)?;
                Ok((self.store_new(r, s, a.0, a.1)?, ib))
            }
        }
    }

    /// Find a key for an operation and check that it may do it. What the checks read is kept
    /// with the object (`KeyFacts`), as is the prepared key, so a repeated use scans nothing.
    fn prepare(&self, id: ObjectId, mech: CK_MECHANISM_TYPE, u: &KeyUse) -> Result<Prepared> {
        self.with_objects(|r| {
            let o = r.visible(id).ok_or_else(|| Error::new(u.invalid))?;
            let f = o.facts().ok_or_else(|| Error::new(u.invalid))?;
            if !is_key_class(f.class) {
                return Err(Error::with(u.invalid, "the object is not a key"));
            }
            if !u.classes.contains(&f.class) {
                return Err(Error::with(
                    u.wrong_class,
                    "this class of key cannot do that",
                ));
            }
            if !f.allows(u.attr) {
                return Err(Error::with(
                    CKR_KEY_FUNCTION_NOT_PERMITTED,
                    format!("the key has {} false", token_api::attr::attr_name(u.attr)),
                ));
            }
            if !f.mechanism_allowed(mech) {
                return Err(Error::with(
                    CKR_MECHANISM_INVALID,
                    "the mechanism is not in the key's CKA_ALLOWED_MECHANISMS",
                ));
            }
            let (always_authenticate, always_sensitive, never_extractable, trusted) = (
                f.always_authenticate,
                f.always_sensitive,
                f.never_extractable,
                f.trusted,
            );
            // The prepared key is cached with the object (dropped when the object changes).
            let key = match &o.key {
                Some(k) => k.clone(),
                None => {
                    let a = o.attrs().ok_or_else(|| Error::new(u.invalid))?;
                    let k = Arc::new(Key::from_attributes(a)?);
                    if let Some(o) = r.objects.get_mut(id) {
                        o.key = Some(k.clone());
                    }
                    k
                }
            };
            Ok(Prepared {
                key,
                always_authenticate,
                always_sensitive,
                never_extractable,
                trusted,
            })
        })
    }
}

fn locked_msg(role: Role) -> &'static str {
    match role {
        Role::So => "the SO PIN is locked (too many wrong PINs)",
        Role::User => {
            "the user PIN is locked (too many wrong PINs); the SO can unblock it with C_InitPIN"
        }
    }
}

fn set_wrap(m: &mut Meta, role: Role, w: PinWrap) {
    match role {
        Role::So => m.so = w,
        Role::User => m.user = Some(w),
    }
}

fn pin_flags(r: &Ready, role: Role, max: u32) -> CK_FLAGS {
    let (low, final_try, locked) = match role {
        Role::So => (
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        ),
        Role::User => (
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        ),
    };
    let n = r
        .meta
        .failures(role)
        .saturating_add(r.ro_failures[role as usize]);
    let mut f = 0;
    if n >= max {
        f |= locked;
    } else {
        if n > 0 {
            f |= low;
        }
        if max - n == 1 {
            f |= final_try;
        }
    }
    f
}

impl Token for SoftToken {
    fn info(&self) -> TokenInfo {
        let mut g = self.state();
        if let Err(e) = self.resolve(&mut g, false) {
            log::warn!("soft token slot {}: {e}", self.slot);
        }
        let cfg = &self.shared.cfg;
        let mut info = TokenInfo {
            model: "Soft token".into(),
            min_pin_len: cfg.min_pin_len as CK_ULONG,
            max_pin_len: cfg.max_pin_len as CK_ULONG,
            flags: CKF_RNG | CKF_LOGIN_REQUIRED | CKF_RESTORE_KEY_NOT_NEEDED,
            ..TokenInfo::default()
        };
        if let Some(r) = g.as_deref() {
            let m = &r.meta;
            info.label = m.label.clone();
            info.serial = m.serial.clone();
            info.flags |= CKF_TOKEN_INITIALIZED;
            if m.user.is_some() {
                info.flags |= CKF_USER_PIN_INITIALIZED;
                info.flags |= pin_flags(r, Role::User, cfg.max_user_pin_failures);
            }
            info.flags |= pin_flags(r, Role::So, cfg.max_so_pin_failures);
            if r.write_protected {
                info.flags |= CKF_WRITE_PROTECTED;
            }
        }
        info
    }

    fn mechanism_list(&self) -> Vec<CK_MECHANISM_TYPE> {
        klyuch_crypto::mechanisms().iter().map(|m| m.ty()).collect()
    }

    fn mechanism_info(&self, mech: CK_MECHANISM_TYPE) -> Result<MechInfo> {
        Ok(mechanism(mech)?.info())
    }

    // ------------------------------------------------------------------ PINs and login

    fn init_token(&self, so_pin: &Pin, label: &str) -> Result<()> {
        let initialised = {
            let mut g = self.state();
            self.resolve(&mut g, false)?;
            g.is_some()
        };
        if !initialised {
            self.check_pin_len(so_pin)?;
            let dir = self.shared.create_token(self.slot, so_pin, label)?;
            let mut g = self.state();
            *g = Some(Box::new(Ready::open(TokenPaths::new(dir))?));
            return Ok(());
        }
        // Re-initialisation: the SO PIN must be right (and counts toward its lockout).
        self.with_ready(|r| {
            r.check_writable()?;
            r.logout();
            Ok(())
        })?;
        let _ = self.verify_pin(Role::So, so_pin)?;
        let token_key = seal::random_key()?;
        let uuid: [u8; 16] = seal::random()?;
        let so = PinWrap::new(
            &uuid,
            Role::So,
            so_pin.expose(),
            self.shared.cfg.kdf_iterations,
            &token_key,
        )?;
        let k_pub = *seal::random_key()?;
        let seq_base = (u64::from_le_bytes(seal::random()?) >> 24) + 1;
        self.with_ready(|r| {
            let paths = r.paths.clone();
            let lock = r.lock_handle();
            let _g = store::FileLock::exclusive(&lock)?;
            let old = paths.read_meta()?.0;
            // Processes that read the old object log learn from it that it is left behind.
            r.leave_log(&old)?;
            let meta = Meta {
                uuid,
                label: label.trim_end().to_owned(),
                k_pub,
                so,
                user: None,
                so_failures: 0,
                user_failures: 0,
                seq_base,
                ..old
            };
            // The new, empty log first, then the metadata that names it: a crash leaves the
            // old token or the new one, never a mix.
            store::write_atomic(&paths.dir, &paths.log(&uuid), &[])?;
            paths.write_meta(&meta)?;
            paths.remove_old_logs(&uuid);
            let stamp = Stamp::path(&paths.meta())?.unwrap_or_default();
            r.reset(meta, stamp);
            log::info!("re-initialised soft token {}", r.meta.serial);
            Ok(())
        })
    }

    fn login(&self, user: UserType, pin: Option<&Pin>) -> Result<()> {
        let role = match user {
            UserType::So => Role::So,
            UserType::User => Role::User,
            UserType::ContextSpecific => {
                return Err(Error::with(
                    CKR_OPERATION_NOT_INITIALIZED,
                    "no operation needs a context-specific login",
                ));
            }
        };
        let pin = pin_or_bad(pin)?;
        self.with_ready(|r| match r.login {
            Some(u) if u == user => Err(Error::new(CKR_USER_ALREADY_LOGGED_IN)),
            Some(_) => Err(Error::new(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
            None => Ok(()),
        })?;
        let key = self.verify_pin(role, pin)?;
        self.with_ready(|r| {
            if r.login.is_some() {
                return Err(Error::new(CKR_USER_ALREADY_LOGGED_IN));
            }
            r.set_login(user, key);
            log::info!("soft token {}: {user:?} logged in", r.meta.serial);
            Ok(())
        })
    }

    fn logout(&self) -> Result<()> {
        let mut g = self.state();
        if let Some(r) = g.as_deref_mut() {
            r.logout();
        }
        Ok(())
    }

    fn login_state(&self) -> Option<UserType> {
        self.state().as_deref().and_then(|r| r.login)
    }

    fn init_pin(&self, pin: Option<&Pin>) -> Result<()> {
        let pin = pin_or_bad(pin)?;
        self.check_pin_len(pin)?;
        let (uuid, key) = self.with_ready(|r| {
            r.check_writable()?;
            if r.login != Some(UserType::So) {
                return Err(Error::with(
                    CKR_USER_NOT_LOGGED_IN,
                    "C_InitPIN needs the SO logged in",
                ));
            }
            let k = r
                .token_key()
                .cloned()
                .ok_or_else(|| Error::new(CKR_USER_NOT_LOGGED_IN))?;
            Ok((r.meta.uuid, k))
        })?;
        let wrap = PinWrap::new(
            &uuid,
            Role::User,
            pin.expose(),
            self.shared.cfg.kdf_iterations,
            &key,
        )?;
        self.with_ready(|r| {
            r.update_meta(|m| {
                if m.uuid != uuid {
                    return Err(Error::with(
                        CKR_DEVICE_ERROR,
                        "the token was re-initialised meanwhile",
                    ));
                }
                m.user = Some(wrap);
                m.user_failures = 0;
                Ok(true)
            })?;
            log::info!("soft token {}: user PIN set by the SO", r.meta.serial);
            Ok(())
        })
    }

    fn set_pin(&self, old: Option<&Pin>, new: Option<&Pin>) -> Result<()> {
        let old = pin_or_bad(old)?;
        let new = pin_or_bad(new)?;
        let role = self.with_ready(|r| {
            r.check_writable()?;
            Ok(if r.login == Some(UserType::So) {
                Role::So
            } else {
                Role::User
            })
        })?;
        self.check_pin_len(new)?;
        let key = self.verify_pin(role, old)?;
        let uuid = self.with_ready(|r| Ok(r.meta.uuid))?;
        let wrap = PinWrap::new(
            &uuid,
            role,
            new.expose(),
            self.shared.cfg.kdf_iterations,
            &key,
        )?;
        self.with_ready(|r| {
            r.update_meta(|m| {
                if m.uuid != uuid {
                    return Err(Error::with(
                        CKR_DEVICE_ERROR,
                        "the token was re-initialised meanwhile",
                    ));
                }
                set_wrap(m, role, wrap);
                Ok(true)
            })?;
            log::info!("soft token {}: {role:?} PIN changed", r.meta.serial);
            Ok(())
        })
    }

    fn session_closed(&self, session: CK_SESSION_HANDLE) {
        let mut g = self.state();
        if let Some(r) = g.as_deref_mut() {
            let ids: Vec<ObjectId> = r
                .objects
                .iter()
                .filter(|(_, o)| o.owner == Some(session))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                r.objects.remove(id);
            }
        }
    }

    // ------------------------------------------------------------------ objects

    fn create_object(&self, s: &SessionCtx, template: &Template) -> Result<ObjectId> {
        self.with_objects(|r| {
            if template.has_conflicting_duplicates() {
                return Err(Error::with(
                    CKR_TEMPLATE_INCONSISTENT,
                    "an attribute is given twice with different values",
                ));
            }
            let class = schema::class_of(template, None)?;
            let token = template.get_bool(CKA_TOKEN)?.unwrap_or(false);
            let private = template
                .get_bool(CKA_PRIVATE)?
                .unwrap_or(schema::default_private(class));
            Self::check_access(r, s, token, private)?;
            let mut contributed = Template::new();
            if class == CKO_CERTIFICATE
                && template.get_ulong(CKA_CERTIFICATE_TYPE)? == Some(CKC_X_509)
                && let Some(der) = template.get(CKA_VALUE)
            {
                // Taken from the DER unless the caller gave them.
                for a in klyuch_crypto::x509::certificate_attributes(der)?.iter() {
                    if !template.contains(a.ty) {
                        contributed.set(a.ty, a.value.to_vec());
                    }
                }
            }
            let attrs =
                schema::new_object(Op::Create, template, None, &contributed, Self::is_so(r))?;
            let key = if is_key_class(class) {
                Some(Arc::new(Key::from_attributes(&attrs)?))
            } else {
                None
            };
            self.store_new(r, s, attrs, key)
        })
    }

    fn copy_object(&self, s: &SessionCtx, obj: ObjectId, template: &Template) -> Result<ObjectId> {
        self.with_objects(|r| {
            let src = r.attrs(obj, CKR_OBJECT_HANDLE_INVALID)?.clone();
            let attrs = schema::apply_copy(&src, template, Self::is_so(r))?;
            let token = flag(&attrs, CKA_TOKEN, false);
            let private = flag(&attrs, CKA_PRIVATE, true);
            Self::check_access(r, s, token, private)?;
            let key = r.objects.get(obj).and_then(|o| o.key.clone());
            self.store_new(r, s, attrs, key)
        })
    }

    fn destroy_object(&self, s: &SessionCtx, obj: ObjectId) -> Result<()> {
        self.with_objects(|r| {
            let o = r
                .visible(obj)
                .ok_or_else(|| Error::new(CKR_OBJECT_HANDLE_INVALID))?;
            if !o.attrs().is_some_and(|a| flag(a, CKA_DESTROYABLE, true)) {
                return Err(Error::with(
                    CKR_ACTION_PROHIBITED,
                    "the object cannot be destroyed (CKA_DESTROYABLE is false)",
                ));
            }
            if o.is_token() {
                r.check_writable()?;
                if !s.rw {
                    return Err(Error::with(
                        CKR_SESSION_READ_ONLY,
                        "token objects need a read/write session",
                    ));
                }
                r.write(|r| {
                    if r.visible(obj).is_none() {
                        return Err(Error::new(CKR_OBJECT_HANDLE_INVALID));
                    }
                    Ok(vec![Pending::Delete { id: obj }])
                })?;
            } else {
                r.objects.remove(obj);
            }
            Ok(())
        })
    }

    fn object_size(&self, _s: &SessionCtx, obj: ObjectId) -> Result<CK_ULONG> {
        self.with_objects(|r| {
            let a = r.attrs(obj, CKR_OBJECT_HANDLE_INVALID)?;
            Ok(a.iter().map(|x| x.value.len() + 16).sum::<usize>() as CK_ULONG)
        })
    }

    fn get_attributes(
        &self,
        _s: &SessionCtx,
        obj: ObjectId,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrRead>> {
        self.with_objects(|r| {
            let a = r.attrs(obj, CKR_OBJECT_HANDLE_INVALID)?;
            Ok(types.iter().map(|&ty| schema::read(a, ty)).collect())
        })
    }

    fn set_attributes(&self, s: &SessionCtx, obj: ObjectId, template: &Template) -> Result<()> {
        self.with_objects(|r| {
            let o = r
                .visible(obj)
                .ok_or_else(|| Error::new(CKR_OBJECT_HANDLE_INVALID))?;
            let is_so = Self::is_so(r);
            if o.is_token() {
                r.check_writable()?;
                if !s.rw {
                    return Err(Error::with(
                        CKR_SESSION_READ_ONLY,
                        "token objects need a read/write session",
                    ));
                }
                r.write(|r| {
                    // Decide on the latest version (another process may have changed it).
                    let cur = r.attrs(obj, CKR_OBJECT_HANDLE_INVALID)?;
                    let attrs = schema::apply_set(cur, template, is_so)?;
                    Ok(vec![Pending::Update { id: obj, attrs }])
                })?;
            } else {
                let cur = o.attrs().cloned().unwrap_or_default();
                let attrs = schema::apply_set(&cur, template, is_so)?;
                let (private, owner) = (o.private, o.owner);
                r.objects
                    .put(obj, Obj::session(attrs, private, owner, None));
            }
            Ok(())
        })
    }

    fn find_objects(&self, _s: &SessionCtx, template: &Template) -> Result<Vec<ObjectId>> {
        // A search also checks the metadata (one `stat`; searches are not the per-signature
        // path), so damage to it is reported by the next search as before.
        let mut g = self.state();
        self.resolve(&mut g, false)?;
        let Some(r) = g.as_deref_mut() else {
            return Ok(Vec::new());
        };
        r.ensure_loaded()?;
        let mut out: Vec<ObjectId> = r
            .objects
            .candidates(template)
            .into_iter()
            .filter(|&id| r.visible(id).is_some_and(|o| o.matches_search(template)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    // ------------------------------------------------------------------ crypto

    fn sign_init(&self, _s: &SessionCtx, m: &Mechanism, key: ObjectId) -> Result<Box<dyn SignOp>> {
        let imp = mechanism(m.ty)?;
        let p = self.prepare(key, m.ty, &SIGN)?;
        let op = imp.sign_init(p.key, &m.param)?;
        Ok(if p.always_authenticate {
            Box::new(AuthSign::new(op, self.me.clone()))
        } else {
            op
        })
    }

    fn verify_init(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        key: ObjectId,
    ) -> Result<Box<dyn VerifyOp>> {
        let imp = mechanism(m.ty)?;
        let p = self.prepare(key, m.ty, &VERIFY)?;
        imp.verify_init(p.key, &m.param)
    }

    fn encrypt_init(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        key: ObjectId,
    ) -> Result<Box<dyn CipherOp>> {
        let imp = mechanism(m.ty)?;
        let p = self.prepare(key, m.ty, &ENCRYPT)?;
        imp.encrypt_init(p.key, &m.param)
    }

    fn decrypt_init(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        key: ObjectId,
    ) -> Result<Box<dyn CipherOp>> {
        let imp = mechanism(m.ty)?;
        let p = self.prepare(key, m.ty, &DECRYPT)?;
        let op = imp.decrypt_init(p.key, &m.param)?;
        Ok(if p.always_authenticate {
            Box::new(AuthCipher::new(op, self.me.clone()))
        } else {
            op
        })
    }

    fn digest_init(&self, _s: &SessionCtx, m: &Mechanism) -> Result<Box<dyn DigestOp>> {
        mechanism(m.ty)?.digest_init(&m.param)
    }

    fn digest_key_value(&self, _s: &SessionCtx, key: ObjectId) -> Result<Zeroizing<Vec<u8>>> {
        self.with_objects(|r| {
            let a = r.attrs(key, CKR_KEY_HANDLE_INVALID)?;
            if ulong(a, CKA_CLASS) != Some(CKO_SECRET_KEY) {
                return Err(Error::with(
                    CKR_KEY_INDIGESTIBLE,
                    "only secret keys can be digested",
                ));
            }
            a.get(CKA_VALUE)
                .map(|v| Zeroizing::new(v.to_vec()))
                .ok_or_else(|| Error::new(CKR_KEY_INDIGESTIBLE))
        })
    }

    fn generate_key(&self, s: &SessionCtx, m: &Mechanism, t: &Template) -> Result<ObjectId> {
        let imp = mechanism(m.ty)?;
        self.with_objects(|r| {
            let class = schema::class_of(t, Some(CKO_SECRET_KEY))?;
            if let Some(kt) = generated_key_type(m.ty) {
                schema::check_generate_template(t, class, kt, Self::is_so(r))?;
            }
            let token = t.get_bool(CKA_TOKEN)?.unwrap_or(false);
            let private = t.get_bool(CKA_PRIVATE)?.unwrap_or(true);
            Self::check_access(r, s, token, private)
        })?;
        let generated = imp.generate_key(&m.param, t)?;
        self.with_objects(|r| {
            let attrs = schema::new_object(
                Op::Generate(m.ty),
                t,
                Some(CKO_SECRET_KEY),
                &generated,
                Self::is_so(r),
            )?;
            let token = flag(&attrs, CKA_TOKEN, false);
            let private = flag(&attrs, CKA_PRIVATE, true);
            Self::check_access(r, s, token, private)?;
            let key = Arc::new(Key::from_attributes(&attrs)?);
            self.store_new(r, s, attrs, Some(key))
        })
    }

    fn generate_key_pair(
        &self,
        s: &SessionCtx,
        m: &Mechanism,
        public: &Template,
        private: &Template,
    ) -> Result<(ObjectId, ObjectId)> {
        let imp = mechanism(m.ty)?;
        self.with_objects(|r| {
            let is_so = Self::is_so(r);
            for (t, class) in [(public, CKO_PUBLIC_KEY), (private, CKO_PRIVATE_KEY)] {
                schema::class_of(t, Some(class))?;
                if let Some(kt) = generated_key_type(m.ty) {
                    schema::check_generate_template(t, class, kt, is_so)?;
                }
                let token = t.get_bool(CKA_TOKEN)?.unwrap_or(false);
                let private = t
                    .get_bool(CKA_PRIVATE)?
                    .unwrap_or(schema::default_private(class));
                Self::check_access(r, s, token, private)?;
            }
            Ok(())
        })?;
        let (pub_gen, priv_gen) = imp.generate_key_pair(&m.param, public, private)?;
        self.with_objects(|r| {
            let is_so = Self::is_so(r);
            let pub_attrs = schema::new_object(
                Op::Generate(m.ty),
                public,
                Some(CKO_PUBLIC_KEY),
                &pub_gen,
                is_so,
            )?;
            let priv_attrs = schema::new_object(
                Op::Generate(m.ty),
                private,
                Some(CKO_PRIVATE_KEY),
                &priv_gen,
                is_so,
            )?;
            for a in [&pub_attrs, &priv_attrs] {
                Self::check_access(r, s, flag(a, CKA_TOKEN, false), flag(a, CKA_PRIVATE, true))?;
            }
            let pub_key = Arc::new(Key::from_attributes(&pub_attrs)?);
            let priv_key = Arc::new(Key::from_attributes(&priv_attrs)?);
            self.store_pair(
                r,
                s,
                (pub_attrs, Some(pub_key)),
                (priv_attrs, Some(priv_key)),
            )
        })
    }

    fn wrap_key(
        &self,
        _s: &SessionCtx,
        m: &Mechanism,
        wrapping_key: ObjectId,
        key: ObjectId,
    ) -> Result<Vec<u8>> {
        let imp = mechanism(m.ty)?;
        let w = self.prepare(wrapping_key, m.ty, &WRAP)?;
        let data = self.with_objects(|r| {
            let a = r.attrs(key, CKR_KEY_HANDLE_INVALID)?;
            let class = ulong(a, CKA_CLASS).unwrap_or(CKO_DATA);
            if !matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY) {
                return Err(Error::with(
                    CKR_KEY_NOT_WRAPPABLE,
                    "only secret and private keys can be wrapped",
                ));
            }
            if !flag(a, CKA_EXTRACTABLE, false) {
                return Err(Error::with(
                    CKR_KEY_UNEXTRACTABLE,
                    "the key has CKA_EXTRACTABLE false",
                ));
            }
            if flag(a, CKA_WRAP_WITH_TRUSTED, false) && !w.trusted {
                return Err(Error::with(
                    CKR_KEY_NOT_WRAPPABLE,
                    "the key may be wrapped with a trusted key only",
                ));
            }
            if class == CKO_SECRET_KEY {
                a.get(CKA_VALUE)
                    .map(|v| Zeroizing::new(v.to_vec()))
                    .ok_or_else(|| Error::new(CKR_KEY_NOT_WRAPPABLE))
            } else {
                let k = Key::from_attributes(a)?;
                klyuch_crypto::pkcs8::to_pkcs8(&k)
            }
        })?;
        imp.wrap(w.key, &m.param, &data)
    }

    fn unwrap_key(
        &self,
        s: &SessionCtx,
        m: &Mechanism,
        unwrapping_key: ObjectId,
        wrapped: &[u8],
        t: &Template,
    ) -> Result<ObjectId> {
        let imp = mechanism(m.ty)?;
        let u = self.prepare(unwrapping_key, m.ty, &UNWRAP)?;
        let class = schema::class_of(t, None)?;
        if !matches!(class, CKO_SECRET_KEY | CKO_PRIVATE_KEY) {
            return Err(Error::with(
                CKR_TEMPLATE_INCONSISTENT,
                "only secret and private keys can be unwrapped",
            ));
        }
        self.with_objects(|r| {
            let token = t.get_bool(CKA_TOKEN)?.unwrap_or(false);
            let private = t
                .get_bool(CKA_PRIVATE)?
                .unwrap_or(schema::default_private(class));
            Self::check_access(r, s, token, private)
        })?;
        let data = imp.unwrap(u.key, &m.param, wrapped)?;
        let mut contributed = Template::new();
        if class == CKO_SECRET_KEY {
            let mut v = data.to_vec();
            if let Some(len) = t.get_ulong(CKA_VALUE_LEN)? {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > v.len() {
                    zeroize::Zeroize::zeroize(&mut v);
                    return Err(Error::with(
                        CKR_TEMPLATE_INCONSISTENT,
                        "CKA_VALUE_LEN is longer than the unwrapped key",
                    ));
                }
                v.truncate(len);
            }
            contributed.set(CKA_VALUE, v);
        } else {
            contributed = klyuch_crypto::pkcs8::private_key_attributes(&data).map_err(|e| {
                Error::with(CKR_WRAPPED_KEY_INVALID, format!("not a private key: {e}"))
            })?;
        }
        self.with_objects(|r| {
            let attrs =
                schema::new_object(Op::Unwrap, t, Some(class), &contributed, Self::is_so(r))?;
            Self::check_access(
                r,
                s,
                flag(&attrs, CKA_TOKEN, false),
                flag(&attrs, CKA_PRIVATE, true),
            )?;
            let key = Arc::new(Key::from_attributes(&attrs)?);
            self.store_new(r, s, attrs, Some(key))
        })
    }

    fn derive_key(
        &self,
        s: &SessionCtx,
        m: &Mechanism,
        base_key: ObjectId,
        t: &Template,
    ) -> Result<ObjectId> {
        let imp = mechanism(m.ty)?;
        let b = self.prepare(base_key, m.ty, &DERIVE)?;
        let class = schema::class_of(t, Some(CKO_SECRET_KEY))?;
        self.with_objects(|r| {
            let token = t.get_bool(CKA_TOKEN)?.unwrap_or(false);
            let private = t
                .get_bool(CKA_PRIVATE)?
                .unwrap_or(schema::default_private(class));
            Self::check_access(r, s, token, private)
        })?;
        let derived = imp.derive(b.key, &m.param, t)?;
        self.with_objects(|r| {
            let attrs = schema::new_object(
                Op::Derive {
                    always_sensitive: b.always_sensitive,
                    never_extractable: b.never_extractable,
                },
                t,
                Some(class),
                &derived,
                Self::is_so(r),
            )?;
            Self::check_access(
                r,
                s,
                flag(&attrs, CKA_TOKEN, false),
                flag(&attrs, CKA_PRIVATE, true),
            )?;
            let key = Arc::new(Key::from_attributes(&attrs)?);
            self.store_new(r, s, attrs, Some(key))
        })
    }

    fn generate_random(&self, out: &mut [u8]) -> Result<()> {
        klyuch_crypto::random::fill(out)
    }
}

/// `CKA_PUBLIC_KEY_INFO` of a new public or private key, when the caller left it empty
/// (PKCS#11 3.0 §4.8: "DEFAULT derived from the underlying public key data"): applications such
/// as OpenSSL's pkcs11 provider read the public key from it.
fn with_public_key_info(attrs: &mut Template, key: Option<&Key>) {
    let Some(k) = key else { return };
    if k.class() == CKO_SECRET_KEY
        || attrs
            .get(CKA_PUBLIC_KEY_INFO)
            .is_some_and(|v| !v.is_empty())
    {
        return;
    }
    match k.public_key_info() {
        Ok(spki) => attrs.set(CKA_PUBLIC_KEY_INFO, spki),
        Err(e) => log::debug!("no CKA_PUBLIC_KEY_INFO for this key: {e}"),
    }
}

/// `CKR_PIN_LEN_RANGE` unless the PIN's length is within the configured bounds; `who` names the
/// PIN in the message ("a PIN", "the new SO PIN").
pub(crate) fn check_pin_len(
    c: &token_api::config::SoftTokenConfig,
    pin: &Pin,
    who: &str,
) -> Result<()> {
    let n = pin.len();
    if n < c.min_pin_len as usize || n > c.max_pin_len as usize {
        return Err(Error::with(
            CKR_PIN_LEN_RANGE,
            format!(
                "{who} has {}..{} characters (this one has {n})",
                c.min_pin_len, c.max_pin_len
            ),
        ));
    }
    Ok(())
}
