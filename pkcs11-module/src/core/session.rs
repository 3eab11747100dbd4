//! Sessions: what a session knows and which operations are active in it.

use std::sync::{Arc, Mutex};

use token_api::ck::*;
use token_api::ops::{CipherOp, DigestOp, SignOp, VerifyOp};
use token_api::{SessionCtx, Token, UserType};

/// One open session. The fixed parts are outside the mutex; the operation state inside.
pub struct SessionCell {
    pub handle: CK_SESSION_HANDLE,
    pub slot: CK_SLOT_ID,
    pub rw: bool,
    pub token: Arc<dyn Token>,
    pub state: Mutex<SessionState>,
}

impl SessionCell {
    pub fn ctx(&self) -> SessionCtx {
        SessionCtx {
            handle: self.handle,
            rw: self.rw,
        }
    }

    /// `CK_STATE` from the token's login state and the R/W flag (PKCS#11 §5.6 session states).
    pub fn ck_state(&self) -> CK_STATE {
        match (self.token.login_state(), self.rw) {
            (Some(UserType::So), true) => CKS_RW_SO_FUNCTIONS,
            (Some(UserType::User), true) => CKS_RW_USER_FUNCTIONS,
            (Some(UserType::User), false) => CKS_RO_USER_FUNCTIONS,
            (_, true) => CKS_RW_PUBLIC_SESSION,
            (_, false) => CKS_RO_PUBLIC_SESSION,
        }
    }
}

/// An active operation and the output it computed but could not hand out yet.
pub struct Active<T: ?Sized> {
    pub op: Box<T>,
    pub pending: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// A multi-part call (`*Update`) happened: single-part calls are no longer allowed.
    pub multipart: bool,
}

impl<T: ?Sized> Active<T> {
    pub fn new(op: Box<T>) -> Self {
        Active {
            op,
            pending: None,
            multipart: false,
        }
    }
}

/// The search of `C_FindObjectsInit` .. `C_FindObjectsFinal`.
pub struct Find {
    pub results: Vec<CK_OBJECT_HANDLE>,
    pub pos: usize,
}

#[derive(Default)]
pub struct SessionState {
    pub find: Option<Find>,
    pub sign: Option<Active<dyn SignOp>>,
    pub verify: Option<Active<dyn VerifyOp>>,
    pub encrypt: Option<Active<dyn CipherOp>>,
    pub decrypt: Option<Active<dyn CipherOp>>,
    pub digest: Option<Active<dyn DigestOp>>,
    /// Handles of session objects this session created (forgotten when it closes).
    pub session_objects: Vec<CK_OBJECT_HANDLE>,
}

impl SessionState {
    /// Cancel every active operation (`C_SessionCancel` with all flags, logout).
    pub fn cancel_all(&mut self) {
        self.find = None;
        self.sign = None;
        self.verify = None;
        self.encrypt = None;
        self.decrypt = None;
        self.digest = None;
    }
}
