//! The two traits a backend implements: [`SlotSource`] (a family of slots: the soft token store,
//! the PC/SC readers) and [`Token`] (what is in a slot).
//!
//! Ownership and locking: the core keeps `Arc<dyn SlotSource>`s in a registry, asks them for
//! `Arc<dyn Token>`s, and keeps sessions itself. Tokens take `&self` and lock inside, briefly;
//! operations they hand out own their keys so that crypto runs outside any token lock.
//! Lock order, written once: registry → session table → one session → token internals.

use crate::attr::{AttrRead, Template};
use crate::ck::*;
use crate::error::{Error, Result};
use crate::mech::{MechInfo, Mechanism};
use crate::ops::{CipherOp, DigestOp, SignOp, VerifyOp};
use crate::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// A token's name for one of its objects. Stable for the life of the object in this process;
/// the core maps it to a `CK_OBJECT_HANDLE`.
pub type ObjectId = u64;

/// `CK_USER_TYPE` as an enum.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserType {
    So,
    User,
    ContextSpecific,
}

impl UserType {
    pub fn from_ck(u: CK_USER_TYPE) -> Result<Self> {
        match u {
            CKU_SO => Ok(UserType::So),
            CKU_USER => Ok(UserType::User),
            CKU_CONTEXT_SPECIFIC => Ok(UserType::ContextSpecific),
            _ => Err(Error::with(CKR_USER_TYPE_INVALID, format!("user type {u}"))),
        }
    }
}

/// What a token knows about the session making a call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionCtx {
    /// The session handle (tokens key session objects by it).
    pub handle: CK_SESSION_HANDLE,
    /// `CKF_RW_SESSION` was given at `C_OpenSession`.
    pub rw: bool,
}

/// `CK_TOKEN_INFO`, owned. The core fills in the session counts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TokenInfo {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// `CKF_*` token flags (`CKF_TOKEN_INITIALIZED`, `CKF_USER_PIN_COUNT_LOW`, ...).
    pub flags: CK_FLAGS,
    pub max_pin_len: CK_ULONG,
    pub min_pin_len: CK_ULONG,
    pub total_public_memory: CK_ULONG,
    pub free_public_memory: CK_ULONG,
    pub total_private_memory: CK_ULONG,
    pub free_private_memory: CK_ULONG,
    pub hardware_version: (u8, u8),
    pub firmware_version: (u8, u8),
    /// `utcTime` (16 chars) for tokens with `CKF_CLOCK_ON_TOKEN`.
    pub utc_time: Option<String>,
}

impl Default for TokenInfo {
    fn default() -> Self {
        TokenInfo {
            label: String::new(),
            manufacturer: "Klyuch".into(),
            model: String::new(),
            serial: String::new(),
            flags: 0,
            max_pin_len: 64,
            min_pin_len: 4,
            total_public_memory: CK_UNAVAILABLE_INFORMATION,
            free_public_memory: CK_UNAVAILABLE_INFORMATION,
            total_private_memory: CK_UNAVAILABLE_INFORMATION,
            free_private_memory: CK_UNAVAILABLE_INFORMATION,
            hardware_version: (0, 1),
            firmware_version: (0, 1),
            utc_time: None,
        }
    }
}

/// `CK_SLOT_INFO`, owned.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SlotInfo {
    pub description: String,
    pub manufacturer: String,
    /// `CKF_TOKEN_PRESENT`, `CKF_REMOVABLE_DEVICE`, `CKF_HW_SLOT`.
    pub flags: CK_FLAGS,
    pub hardware_version: (u8, u8),
    pub firmware_version: (u8, u8),
}

/// One slot of a source, identified by a source-local number.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SlotDesc {
    /// Source-local slot number, below `2^24`, stable while the library is initialised (and, for
    /// soft tokens, across restarts).
    pub local: u64,
    pub info: SlotInfo,
}

/// A family of slots. The module holds a registry of these (soft token store, PC/SC readers).
pub trait SlotSource: Send + Sync {
    /// Short name for logs ("softtoken", "pcsc").
    fn name(&self) -> &'static str;

    /// Refresh and list the slots. Must be cheap and must not talk to cards (local state or the
    /// PC/SC daemon only). A slot that was listed once must keep being listed while the library
    /// is initialised (browsers rely on a list that never shrinks).
    fn slots(&self) -> Result<Vec<SlotDesc>>;

    /// The slot's info, from cached state (NSS polls this).
    fn slot_info(&self, local: u64) -> Result<SlotInfo>;

    /// The token in the slot: `Err(CKR_TOKEN_NOT_PRESENT)` if there is none. Returns the same
    /// `Arc` for as long as the same token stays in the slot; a re-inserted card is a new token.
    fn token(&self, local: u64) -> Result<Arc<dyn Token>>;

    /// Whether this source ever reports slot events (`C_WaitForSlotEvent`).
    fn has_events(&self) -> bool {
        false
    }

    /// Wait up to `timeout` for a slot event (card inserted or removed, reader added). Returns the
    /// local slot number, or `None` on timeout or after [`SlotSource::cancel`]. Runs in the caller's
    /// thread (the module creates no threads of its own). `Duration::ZERO` polls.
    fn wait_event(&self, _timeout: Duration) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Make a blocked `wait_event` return promptly (called by `C_Finalize` from another thread).
    fn cancel(&self) {}
}

fn unsupported<T>() -> Result<T> {
    Err(Error::not_supported())
}

fn no_mech<T>() -> Result<T> {
    Err(Error::mechanism_invalid())
}

/// A token: a soft token or a card in a reader. Optional operations default to
/// `CKR_FUNCTION_NOT_SUPPORTED` (object management, PIN management) or `CKR_MECHANISM_INVALID`
/// (crypto).
///
/// The token is the authority on login state (a card reset logs out); the core keeps sessions and
/// derives each session's state from [`Token::login_state`] and the session's R/W flag.
pub trait Token: Send + Sync {
    /// Token info from cached state (must not talk to a card on every call).
    fn info(&self) -> TokenInfo;

    /// False once the token is gone (card removed). Cached state, no I/O.
    fn alive(&self) -> bool {
        true
    }

    fn mechanism_list(&self) -> Vec<CK_MECHANISM_TYPE>;
    fn mechanism_info(&self, mech: CK_MECHANISM_TYPE) -> Result<MechInfo>;

    // --- PINs and login (the core enforces the session-level rules of PKCS#11 §5.6) ---

    /// `C_InitToken`. The core has checked that no session is open on this token.
    fn init_token(&self, _so_pin: &Pin, _label: &str) -> Result<()> {
        unsupported()
    }
    /// `C_Login` for `So` or `User` (`pin` = `None`: protected authentication path).
    fn login(&self, user: UserType, pin: Option<&Pin>) -> Result<()>;
    /// End the login (last session closed or `C_Logout`).
    fn logout(&self) -> Result<()>;
    /// Who is logged in now. A card reset makes this `None`.
    fn login_state(&self) -> Option<UserType>;
    /// `C_InitPIN` (SO logged in; unblocks a locked user PIN).
    fn init_pin(&self, _pin: Option<&Pin>) -> Result<()> {
        unsupported()
    }
    /// `C_SetPIN` for the logged-in user, or for the normal user when no one is logged in.
    fn set_pin(&self, _old: Option<&Pin>, _new: Option<&Pin>) -> Result<()> {
        unsupported()
    }
    /// The session is closed: drop its session objects.
    fn session_closed(&self, _session: CK_SESSION_HANDLE) {}

    // --- objects ---

    fn create_object(&self, _s: &SessionCtx, _template: &Template) -> Result<ObjectId> {
        unsupported()
    }
    fn copy_object(
        &self,
        _s: &SessionCtx,
        _obj: ObjectId,
        _template: &Template,
    ) -> Result<ObjectId> {
        unsupported()
    }
    fn destroy_object(&self, _s: &SessionCtx, _obj: ObjectId) -> Result<()> {
        unsupported()
    }
    fn object_size(&self, _s: &SessionCtx, _obj: ObjectId) -> Result<CK_ULONG> {
        Ok(CK_UNAVAILABLE_INFORMATION)
    }
    /// One [`AttrRead`] per requested type, in order. `Err` only for the whole call
    /// (`CKR_OBJECT_HANDLE_INVALID`, `CKR_DEVICE_REMOVED`, ...).
    fn get_attributes(
        &self,
        s: &SessionCtx,
        obj: ObjectId,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrRead>>;
    fn set_attributes(&self, _s: &SessionCtx, _obj: ObjectId, _template: &Template) -> Result<()> {
        unsupported()
    }
    /// All objects visible to the session that match the template (every attribute byte-equal).
    fn find_objects(&self, s: &SessionCtx, template: &Template) -> Result<Vec<ObjectId>>;

    // --- crypto ---

    fn sign_init(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _key: ObjectId,
    ) -> Result<Box<dyn SignOp>> {
        no_mech()
    }
    fn verify_init(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _key: ObjectId,
    ) -> Result<Box<dyn VerifyOp>> {
        no_mech()
    }
    fn encrypt_init(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _key: ObjectId,
    ) -> Result<Box<dyn CipherOp>> {
        no_mech()
    }
    fn decrypt_init(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _key: ObjectId,
    ) -> Result<Box<dyn CipherOp>> {
        no_mech()
    }
    fn digest_init(&self, _s: &SessionCtx, _m: &Mechanism) -> Result<Box<dyn DigestOp>> {
        no_mech()
    }
    /// The value of a secret key for `C_DigestKey` (`CKR_KEY_INDIGESTIBLE` if not possible).
    fn digest_key_value(&self, _s: &SessionCtx, _key: ObjectId) -> Result<Zeroizing<Vec<u8>>> {
        Err(Error::new(CKR_KEY_INDIGESTIBLE))
    }
    fn generate_key(&self, _s: &SessionCtx, _m: &Mechanism, _t: &Template) -> Result<ObjectId> {
        no_mech()
    }
    fn generate_key_pair(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _public: &Template,
        _private: &Template,
    ) -> Result<(ObjectId, ObjectId)> {
        no_mech()
    }
    fn wrap_key(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _wrapping_key: ObjectId,
        _key: ObjectId,
    ) -> Result<Vec<u8>> {
        no_mech()
    }
    fn unwrap_key(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _unwrapping_key: ObjectId,
        _wrapped: &[u8],
        _t: &Template,
    ) -> Result<ObjectId> {
        no_mech()
    }
    fn derive_key(
        &self,
        _s: &SessionCtx,
        _m: &Mechanism,
        _base_key: ObjectId,
        _t: &Template,
    ) -> Result<ObjectId> {
        no_mech()
    }
    /// Fill `out` with random bytes (system RNG for soft tokens; the card may offer its own).
    fn generate_random(&self, out: &mut [u8]) -> Result<()>;
}
