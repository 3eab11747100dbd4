//! One initialised library instance (`C_Initialize` .. `C_Finalize`): the PKCS#11 functions in
//! safe form. The ABI layer calls one method per C function with owned arguments.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use token_api::hash::IdMap;

use token_api::attr::AttrRead;
use token_api::ck::*;
use token_api::config::Config;
use token_api::ops::{CipherOp, ContextLogin, DigestOp, SignOp, VerifyOp};
use token_api::{
    Error, MechInfo, Mechanism, ObjectId, Pin, Result, SlotInfo, SlotSource, Template, Token,
    TokenInfo, UserType,
};

use super::handles::Handles;
use super::output::{Out, deliver};
use super::session::{Active, Find, SessionCell, SessionState};
use super::slots::Slots;
use super::{lock, read, write};

/// How `C_Initialize` was called.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitFlags {
    /// `CKF_OS_LOCKING_OK`.
    pub os_locking_ok: bool,
    /// The application passed its mutex callbacks (and the ABI layer serialises calls with them
    /// when `CKF_OS_LOCKING_OK` is absent).
    pub app_mutexes: bool,
    /// `CKF_LIBRARY_CANT_CREATE_OS_THREADS` (Klyuch never creates threads, so this changes
    /// nothing; recorded for the log).
    pub cant_create_threads: bool,
}

/// `C_GetSessionInfo`, owned.
pub struct SessionInfo {
    pub slot: CK_SLOT_ID,
    pub state: CK_STATE,
    pub flags: CK_FLAGS,
}

pub struct Inner {
    pub config: Config,
    pub flags: InitFlags,
    slots: Slots,
    sessions: RwLock<IdMap<CK_SESSION_HANDLE, Arc<SessionCell>>>,
    next_session: AtomicU64,
    handles: Mutex<Handles>,
    finalizing: AtomicBool,
}

/// Which key handle a `*Init` or key-management call failed on, for the right return value.
#[derive(Clone, Copy)]
enum KeyRole {
    Key,
    Wrapping,
    Unwrapping,
    Base,
}

impl KeyRole {
    fn invalid_rv(self) -> CK_RV {
        match self {
            KeyRole::Key | KeyRole::Base => CKR_KEY_HANDLE_INVALID,
            KeyRole::Wrapping => CKR_WRAPPING_KEY_HANDLE_INVALID,
            KeyRole::Unwrapping => CKR_UNWRAPPING_KEY_HANDLE_INVALID,
        }
    }
}

/// Which call of an operation is being made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `C_Sign`, `C_Encrypt`, `C_Digest`, ...: the whole input at once.
    Single,
    /// `C_SignUpdate`, `C_DigestKey`, ...
    Update,
    /// `C_SignFinal`, `C_EncryptFinal`, ...
    Final,
}

/// What the shared state machine asks of every operation kind.
trait OpKind {
    fn multipart(&self) -> bool;
    fn needs_context_login(&self) -> bool {
        false
    }
}

impl OpKind for dyn SignOp {
    fn multipart(&self) -> bool {
        SignOp::multipart(self)
    }
    fn needs_context_login(&self) -> bool {
        ContextLogin::needs_context_login(self)
    }
}

impl OpKind for dyn VerifyOp {
    fn multipart(&self) -> bool {
        VerifyOp::multipart(self)
    }
}

impl OpKind for dyn CipherOp {
    fn multipart(&self) -> bool {
        CipherOp::multipart(self)
    }
    fn needs_context_login(&self) -> bool {
        ContextLogin::needs_context_login(self)
    }
}

impl OpKind for dyn DigestOp {
    fn multipart(&self) -> bool {
        true
    }
}

fn is_gone(rv: CK_RV) -> bool {
    rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT
}

impl Inner {
    pub fn new(config: Config, flags: InitFlags, sources: Vec<(u64, Arc<dyn SlotSource>)>) -> Self {
        Inner {
            config,
            flags,
            slots: Slots::new(sources),
            sessions: RwLock::new(IdMap::default()),
            next_session: AtomicU64::new(1),
            handles: Mutex::new(Handles::default()),
            finalizing: AtomicBool::new(false),
        }
    }

    // ---------------------------------------------------------------- general purpose

    /// `C_Finalize`: wake waiters, close every session, end logins.
    pub fn finalize(&self) {
        self.finalizing.store(true, Ordering::Release);
        self.slots.cancel();
        let all: Vec<Arc<SessionCell>> = write(&self.sessions).drain().map(|(_, s)| s).collect();
        let mut tokens: Vec<Arc<dyn Token>> = Vec::new();
        for s in all {
            s.token.session_closed(s.handle);
            if !tokens.iter().any(|t| Arc::ptr_eq(t, &s.token)) {
                tokens.push(s.token.clone());
            }
        }
        for t in tokens {
            if t.login_state().is_some() {
                let _ = t.logout();
            }
        }
    }

    // ---------------------------------------------------------------- slots and tokens

    pub fn slot_list(&self, token_present: bool, refresh: bool) -> Vec<CK_SLOT_ID> {
        self.slots.list(token_present, refresh)
    }

    pub fn slot_info(&self, slot: CK_SLOT_ID) -> Result<SlotInfo> {
        self.slots.slot_info(slot)
    }

    /// `C_GetTokenInfo`: the token's cached info plus the session counts this instance knows.
    pub fn token_info(&self, slot: CK_SLOT_ID) -> Result<(TokenInfo, CK_ULONG, CK_ULONG)> {
        let token = self.slots.token(slot)?;
        let info = token.info();
        let sessions = read(&self.sessions);
        let on_slot = sessions.values().filter(|s| s.slot == slot);
        let (mut all, mut rw) = (0, 0);
        for s in on_slot {
            all += 1;
            rw += s.rw as CK_ULONG;
        }
        Ok((info, all, rw))
    }

    pub fn mechanism_list(&self, slot: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        Ok(self.slots.token(slot)?.mechanism_list())
    }

    pub fn mechanism_info(&self, slot: CK_SLOT_ID, ty: CK_MECHANISM_TYPE) -> Result<MechInfo> {
        self.slots.token(slot)?.mechanism_info(ty)
    }

    pub fn init_token(&self, slot: CK_SLOT_ID, so_pin: Option<Pin>, label: &str) -> Result<()> {
        let token = self.slots.token(slot)?;
        if read(&self.sessions).values().any(|s| s.slot == slot) {
            return Err(Error::new(CKR_SESSION_EXISTS));
        }
        let pin = so_pin.ok_or_else(|| {
            Error::with(
                CKR_ARGUMENTS_BAD,
                "this token needs the SO PIN in C_InitToken",
            )
        })?;
        let r = token.init_token(&pin, label);
        // A soft token store shows a new empty slot after an initialisation.
        self.slots.refresh();
        r
    }

    pub fn wait_for_slot_event(&self, dont_block: bool) -> Result<CK_SLOT_ID> {
        self.slots.wait_event(!dont_block, &self.finalizing)
    }

    // ---------------------------------------------------------------- sessions

    fn session(&self, h: CK_SESSION_HANDLE) -> Result<Arc<SessionCell>> {
        let s = read(&self.sessions)
            .get(&h)
            .cloned()
            .ok_or_else(|| Error::new(CKR_SESSION_HANDLE_INVALID))?;
        if !s.token.alive() {
            self.drop_token_sessions(&s.token, s.slot);
            return Err(Error::new(CKR_DEVICE_REMOVED));
        }
        Ok(s)
    }

    /// The token went away: its sessions are closed and its handles forgotten.
    fn drop_token_sessions(&self, token: &Arc<dyn Token>, slot: CK_SLOT_ID) {
        let gone: Vec<Arc<SessionCell>> = {
            let mut sessions = write(&self.sessions);
            let ids: Vec<_> = sessions
                .values()
                .filter(|s| Arc::ptr_eq(&s.token, token))
                .map(|s| s.handle)
                .collect();
            ids.iter().filter_map(|h| sessions.remove(h)).collect()
        };
        if !gone.is_empty() {
            log::info!(
                "slot {slot:#x}: token removed, {} session(s) closed",
                gone.len()
            );
            lock(&self.handles).forget_slot(slot);
        }
    }

    /// Pass a token result through, closing the token's sessions if it reports removal.
    fn tok<T>(&self, s: &SessionCell, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if is_gone(e.rv()) {
                self.drop_token_sessions(&s.token, s.slot);
                return Err(Error::new(CKR_DEVICE_REMOVED));
            }
        }
        r
    }

    pub fn open_session(&self, slot: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Error::new(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
        }
        let token = self.slots.token(slot)?;
        let token_flags = token.info().flags;
        if token_flags & CKF_TOKEN_INITIALIZED == 0 {
            return Err(Error::with(
                CKR_TOKEN_NOT_RECOGNIZED,
                "the token is not initialised",
            ));
        }
        let rw = flags & CKF_RW_SESSION != 0;
        if rw && token_flags & CKF_WRITE_PROTECTED != 0 {
            // PKCS#11 2.40 §5.6 C_OpenSession: only read-only sessions on a write-protected token.
            return Err(Error::with(
                CKR_TOKEN_WRITE_PROTECTED,
                "the token is write-protected: open a read-only session",
            ));
        }
        if !rw && token.login_state() == Some(UserType::So) {
            return Err(Error::new(CKR_SESSION_READ_WRITE_SO_EXISTS));
        }
        let handle = self.next_session.fetch_add(1, Ordering::Relaxed);
        let cell = SessionCell {
            handle,
            slot,
            rw,
            token,
            state: Mutex::new(SessionState::default()),
        };
        write(&self.sessions).insert(handle, Arc::new(cell));
        Ok(handle)
    }

    fn after_close(&self, closed: Vec<Arc<SessionCell>>) {
        for s in &closed {
            s.token.session_closed(s.handle);
            let objs = std::mem::take(&mut lock(&s.state).session_objects);
            let mut handles = lock(&self.handles);
            for h in objs {
                handles.forget(h);
            }
        }
        let sessions = read(&self.sessions);
        let mut done: Vec<&Arc<dyn Token>> = Vec::new();
        for s in &closed {
            if done.iter().any(|t| Arc::ptr_eq(t, &s.token)) {
                continue;
            }
            done.push(&s.token);
            let others = sessions.values().any(|o| Arc::ptr_eq(&o.token, &s.token));
            if !others && s.token.login_state().is_some() {
                // PKCS#11 §5.6: closing the last session of an application logs it out.
                if let Err(e) = s.token.logout() {
                    log::debug!("logout after the last session closed: {e}");
                }
            }
        }
    }

    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = write(&self.sessions)
            .remove(&h)
            .ok_or_else(|| Error::new(CKR_SESSION_HANDLE_INVALID))?;
        self.after_close(vec![s]);
        Ok(())
    }

    pub fn close_all_sessions(&self, slot: CK_SLOT_ID) -> Result<()> {
        self.slots.slot_info(slot)?;
        let closed: Vec<Arc<SessionCell>> = {
            let mut sessions = write(&self.sessions);
            let ids: Vec<_> = sessions
                .values()
                .filter(|s| s.slot == slot)
                .map(|s| s.handle)
                .collect();
            ids.iter().filter_map(|h| sessions.remove(h)).collect()
        };
        self.after_close(closed);
        Ok(())
    }

    pub fn session_info(&self, h: CK_SESSION_HANDLE) -> Result<SessionInfo> {
        let s = self.session(h)?;
        let flags = CKF_SERIAL_SESSION | if s.rw { CKF_RW_SESSION } else { 0 };
        Ok(SessionInfo {
            slot: s.slot,
            state: s.ck_state(),
            flags,
        })
    }

    /// `C_SessionCancel` (PKCS#11 3.0): end the operations named by `flags`.
    pub fn session_cancel(&self, h: CK_SESSION_HANDLE, flags: CK_FLAGS) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        if flags & CKF_ENCRYPT != 0 {
            st.encrypt = None;
        }
        if flags & CKF_DECRYPT != 0 {
            st.decrypt = None;
        }
        if flags & CKF_DIGEST != 0 {
            st.digest = None;
        }
        if flags & CKF_SIGN != 0 {
            st.sign = None;
        }
        if flags & CKF_VERIFY != 0 {
            st.verify = None;
        }
        if flags & CKF_FIND_OBJECTS != 0 {
            st.find = None;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- login and PINs

    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: Option<Pin>) -> Result<()> {
        let s = self.session(h)?;
        let user = UserType::from_ck(user)?;
        if user == UserType::ContextSpecific {
            let mut st = lock(&s.state);
            let st = &mut *st;
            let r = if let Some(a) = st.sign.as_mut().filter(|a| a.op.needs_context_login()) {
                a.op.context_login(pin.as_ref())
            } else if let Some(a) = st.decrypt.as_mut().filter(|a| a.op.needs_context_login()) {
                a.op.context_login(pin.as_ref())
            } else if let Some(a) = st.encrypt.as_mut().filter(|a| a.op.needs_context_login()) {
                a.op.context_login(pin.as_ref())
            } else {
                Err(Error::with(
                    CKR_OPERATION_NOT_INITIALIZED,
                    "no active operation needs a context-specific login",
                ))
            };
            return self.tok(&s, r);
        }
        match s.token.login_state() {
            Some(u) if u == user => return Err(Error::new(CKR_USER_ALREADY_LOGGED_IN)),
            Some(_) => return Err(Error::new(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
            None => {}
        }
        if user == UserType::So
            && read(&self.sessions)
                .values()
                .any(|o| o.slot == s.slot && !o.rw)
        {
            return Err(Error::new(CKR_SESSION_READ_ONLY_EXISTS));
        }
        let r = s.token.login(user, pin.as_ref());
        self.tok(&s, r)
    }

    pub fn logout(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        if s.token.login_state().is_none() {
            return Err(Error::new(CKR_USER_NOT_LOGGED_IN));
        }
        let r = s.token.logout();
        self.tok(&s, r)
    }

    pub fn init_pin(&self, h: CK_SESSION_HANDLE, pin: Option<Pin>) -> Result<()> {
        let s = self.session(h)?;
        if s.token.info().flags & CKF_WRITE_PROTECTED != 0 {
            return Err(Error::new(CKR_TOKEN_WRITE_PROTECTED));
        }
        if !s.rw {
            return Err(Error::new(CKR_SESSION_READ_ONLY));
        }
        if s.ck_state() != CKS_RW_SO_FUNCTIONS {
            return Err(Error::with(
                CKR_USER_NOT_LOGGED_IN,
                "C_InitPIN needs the SO logged in",
            ));
        }
        let r = s.token.init_pin(pin.as_ref());
        self.tok(&s, r)
    }

    pub fn set_pin(&self, h: CK_SESSION_HANDLE, old: Option<Pin>, new: Option<Pin>) -> Result<()> {
        let s = self.session(h)?;
        // CKR_TOKEN_WRITE_PROTECTED ranks above CKR_SESSION_READ_ONLY (PKCS#11 2.40 §5.1.6).
        if s.token.info().flags & CKF_WRITE_PROTECTED != 0 {
            return Err(Error::new(CKR_TOKEN_WRITE_PROTECTED));
        }
        if !s.rw {
            return Err(Error::new(CKR_SESSION_READ_ONLY));
        }
        let r = s.token.set_pin(old.as_ref(), new.as_ref());
        self.tok(&s, r)
    }

    // ---------------------------------------------------------------- objects

    fn object(&self, s: &SessionCell, h: CK_OBJECT_HANDLE, invalid: CK_RV) -> Result<ObjectId> {
        match lock(&self.handles).resolve(h) {
            Some((slot, id)) if slot == s.slot => Ok(id),
            _ => Err(Error::new(invalid)),
        }
    }

    fn key(&self, s: &SessionCell, h: CK_OBJECT_HANDLE, role: KeyRole) -> Result<ObjectId> {
        self.object(s, h, role.invalid_rv())
    }

    /// Map a token's "no such object" for a key argument to the key-specific return value.
    fn key_rv<T>(r: Result<T>, role: KeyRole) -> Result<T> {
        r.map_err(|e| {
            if e.rv() == CKR_OBJECT_HANDLE_INVALID {
                Error::with(role.invalid_rv(), e.detail().to_owned())
            } else {
                e
            }
        })
    }

    /// Hand out a handle for a new object, remembering session objects to forget them later.
    fn new_handle(&self, s: &SessionCell, st: &mut SessionState, id: ObjectId) -> CK_OBJECT_HANDLE {
        let h = lock(&self.handles).handle(s.slot, id);
        let is_token = matches!(
            s.token.get_attributes(&s.ctx(), id, &[CKA_TOKEN]).as_deref(),
            Ok([AttrRead::Value(v)]) if v.as_slice() == [1]
        );
        if !is_token {
            st.session_objects.push(h);
        }
        h
    }

    pub fn create_object(&self, h: CK_SESSION_HANDLE, t: &Template) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let id = self.tok(&s, s.token.create_object(&s.ctx(), t))?;
        let mut st = lock(&s.state);
        Ok(self.new_handle(&s, &mut st, id))
    }

    pub fn copy_object(
        &self,
        h: CK_SESSION_HANDLE,
        obj: CK_OBJECT_HANDLE,
        t: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let id = self.object(&s, obj, CKR_OBJECT_HANDLE_INVALID)?;
        let new = self.tok(&s, s.token.copy_object(&s.ctx(), id, t))?;
        let mut st = lock(&s.state);
        Ok(self.new_handle(&s, &mut st, new))
    }

    pub fn destroy_object(&self, h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        let id = self.object(&s, obj, CKR_OBJECT_HANDLE_INVALID)?;
        self.tok(&s, s.token.destroy_object(&s.ctx(), id))?;
        lock(&self.handles).forget(obj);
        Ok(())
    }

    pub fn object_size(&self, h: CK_SESSION_HANDLE, obj: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
        let s = self.session(h)?;
        let id = self.object(&s, obj, CKR_OBJECT_HANDLE_INVALID)?;
        let r = s.token.object_size(&s.ctx(), id);
        self.tok(&s, r)
    }

    pub fn get_attributes(
        &self,
        h: CK_SESSION_HANDLE,
        obj: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<AttrRead>> {
        let s = self.session(h)?;
        let id = self.object(&s, obj, CKR_OBJECT_HANDLE_INVALID)?;
        let r = s.token.get_attributes(&s.ctx(), id, types);
        let reads = self.tok(&s, r)?;
        if reads.len() != types.len() {
            return Err(Error::general(
                "token returned a wrong number of attributes",
            ));
        }
        Ok(reads)
    }

    pub fn set_attributes(
        &self,
        h: CK_SESSION_HANDLE,
        obj: CK_OBJECT_HANDLE,
        t: &Template,
    ) -> Result<()> {
        let s = self.session(h)?;
        let id = self.object(&s, obj, CKR_OBJECT_HANDLE_INVALID)?;
        let r = s.token.set_attributes(&s.ctx(), id, t);
        self.tok(&s, r)
    }

    pub fn find_init(&self, h: CK_SESSION_HANDLE, t: &Template) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        if st.find.is_some() {
            return Err(Error::new(CKR_OPERATION_ACTIVE));
        }
        let ids = self.tok(&s, s.token.find_objects(&s.ctx(), t))?;
        let results = {
            let mut handles = lock(&self.handles);
            ids.into_iter()
                .map(|id| handles.handle(s.slot, id))
                .collect()
        };
        st.find = Some(Find { results, pos: 0 });
        Ok(())
    }

    pub fn find(&self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let f = st
            .find
            .as_mut()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?;
        let end = f.results.len().min(f.pos.saturating_add(max));
        let out = f.results[f.pos..end].to_vec();
        f.pos = end;
        Ok(out)
    }

    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        st.find
            .take()
            .map(|_| ())
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))
    }

    // ---------------------------------------------------------------- crypto operations
    //
    // Every operation kind follows one state machine (PKCS#11 3.0 §5.2 and the function
    // descriptions): `*Init` starts it (CKR_OPERATION_ACTIVE if one runs), a single-part call or
    // a `*Final` ends it unless it returns CKR_BUFFER_TOO_SMALL or answers a size query, an error
    // ends it, and `*Update` continues it. With a CKA_ALWAYS_AUTHENTICATE key the context-specific
    // login must come right after `*Init`, before the first call that uses the key (PKCS#11 3.0
    // §5.6 C_Login). `step` does the checks all calls share.

    /// Start an operation of one kind in a session.
    fn start<T: ?Sized>(
        &self,
        h: CK_SESSION_HANDLE,
        slot: fn(&mut SessionState) -> &mut Option<Active<T>>,
        init: impl FnOnce(&SessionCell) -> Result<Box<T>>,
    ) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        if slot(&mut st).is_some() {
            return Err(Error::new(CKR_OPERATION_ACTIVE));
        }
        let op = init(&s);
        *slot(&mut st) = Some(Active::new(self.tok(&s, op)?));
        Ok(())
    }

    /// The checks every call on a running operation makes; returns it ready for `kind`.
    fn step<T: ?Sized + OpKind>(
        slot: &mut Option<Active<T>>,
        kind: Step,
    ) -> Result<&mut Active<T>> {
        let a = slot
            .as_ref()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?;
        if kind == Step::Single && a.multipart {
            // The operation stays: the application may still finish it with *Final.
            return Err(Error::with(
                CKR_OPERATION_ACTIVE,
                "a single-part call after an update",
            ));
        }
        let refusal = if kind != Step::Single && !a.op.multipart() {
            Some(Error::with(
                CKR_FUNCTION_NOT_SUPPORTED,
                "this mechanism is single-part",
            ))
        } else if a.op.needs_context_login() {
            Some(Error::with(
                CKR_USER_NOT_LOGGED_IN,
                "the key needs C_Login(CKU_CONTEXT_SPECIFIC)",
            ))
        } else {
            None
        };
        if let Some(e) = refusal {
            *slot = None;
            return Err(e);
        }
        let a = slot
            .as_mut()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?;
        if kind != Step::Single {
            a.multipart = true;
        }
        Ok(a)
    }

    /// After an output step: end the operation when it completed or failed.
    fn finish_step<T: ?Sized>(
        &self,
        s: &SessionCell,
        slot: &mut Option<Active<T>>,
        r: Result<(Out, bool)>,
    ) -> Result<Out> {
        match r {
            Ok((out, done)) => {
                if done {
                    *slot = None;
                }
                Ok(out)
            }
            Err(e) => {
                *slot = None;
                self.tok(s, Err(e))
            }
        }
    }

    /// After an update or a call without output: end the operation if it failed.
    fn end_on_error<T: ?Sized, R>(
        &self,
        s: &SessionCell,
        slot: &mut Option<Active<T>>,
        r: Result<R>,
    ) -> Result<R> {
        if r.is_err() {
            *slot = None;
        }
        self.tok(s, r)
    }

    pub fn sign_init(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start(
            h,
            |st| &mut st.sign,
            |s| {
                let id = self.key(s, key, KeyRole::Key)?;
                Self::key_rv(s.token.sign_init(&s.ctx(), m, id), KeyRole::Key)
            },
        )
    }

    pub fn sign(&self, h: CK_SESSION_HANDLE, data: &[u8], cap: Option<usize>) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let Active { op, pending, .. } = Self::step(&mut st.sign, Step::Single)?;
        let r = deliver(pending, cap, op.signature_len(), || op.sign(data));
        self.finish_step(&s, &mut st.sign, r)
    }

    pub fn sign_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let r = Self::step(&mut st.sign, Step::Update)?.op.update(data);
        self.end_on_error(&s, &mut st.sign, r)
    }

    pub fn sign_final(&self, h: CK_SESSION_HANDLE, cap: Option<usize>) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let Active { op, pending, .. } = Self::step(&mut st.sign, Step::Final)?;
        let r = deliver(pending, cap, op.signature_len(), || op.finish());
        self.finish_step(&s, &mut st.sign, r)
    }

    pub fn verify_init(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start(
            h,
            |st| &mut st.verify,
            |s| {
                let id = self.key(s, key, KeyRole::Key)?;
                Self::key_rv(s.token.verify_init(&s.ctx(), m, id), KeyRole::Key)
            },
        )
    }

    /// `C_Verify` and `C_VerifyFinal` always end the operation (there is no output buffer).
    fn verify_end(&self, h: CK_SESSION_HANDLE, kind: Step, data: &[u8], sig: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let a = Self::step(&mut st.verify, kind)?;
        let r = if kind == Step::Single {
            a.op.verify(data, sig)
        } else {
            a.op.finish(sig)
        };
        st.verify = None;
        self.tok(&s, r)
    }

    pub fn verify(&self, h: CK_SESSION_HANDLE, data: &[u8], sig: &[u8]) -> Result<()> {
        self.verify_end(h, Step::Single, data, sig)
    }

    pub fn verify_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let r = Self::step(&mut st.verify, Step::Update)?.op.update(data);
        self.end_on_error(&s, &mut st.verify, r)
    }

    pub fn verify_final(&self, h: CK_SESSION_HANDLE, sig: &[u8]) -> Result<()> {
        self.verify_end(h, Step::Final, &[], sig)
    }

    /// Encrypt or decrypt: the two share their state machine.
    fn cipher_slot(decrypt: bool) -> fn(&mut SessionState) -> &mut Option<Active<dyn CipherOp>> {
        if decrypt {
            |st| &mut st.decrypt
        } else {
            |st| &mut st.encrypt
        }
    }

    pub fn cipher_init(
        &self,
        h: CK_SESSION_HANDLE,
        decrypt: bool,
        m: &Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.start(h, Self::cipher_slot(decrypt), |s| {
            let id = self.key(s, key, KeyRole::Key)?;
            let op = if decrypt {
                s.token.decrypt_init(&s.ctx(), m, id)
            } else {
                s.token.encrypt_init(&s.ctx(), m, id)
            };
            Self::key_rv(op, KeyRole::Key)
        })
    }

    pub fn cipher(
        &self,
        h: CK_SESSION_HANDLE,
        decrypt: bool,
        input: &[u8],
        cap: Option<usize>,
    ) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let slot = Self::cipher_slot(decrypt)(&mut st);
        let Active { op, pending, .. } = Self::step(slot, Step::Single)?;
        let r = deliver(pending, cap, op.output_len(input.len()), || {
            op.one_shot(input)
        });
        self.finish_step(&s, slot, r)
    }

    pub fn cipher_update(
        &self,
        h: CK_SESSION_HANDLE,
        decrypt: bool,
        input: &[u8],
        cap: Option<usize>,
    ) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let slot = Self::cipher_slot(decrypt)(&mut st);
        let Active { op, pending, .. } = Self::step(slot, Step::Update)?;
        let r = deliver(pending, cap, op.output_len(input.len()), || {
            op.update(input)
        });
        self.end_on_error(&s, slot, r).map(|(out, _)| out)
    }

    pub fn cipher_final(
        &self,
        h: CK_SESSION_HANDLE,
        decrypt: bool,
        cap: Option<usize>,
    ) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let slot = Self::cipher_slot(decrypt)(&mut st);
        let Active { op, pending, .. } = Self::step(slot, Step::Final)?;
        let r = deliver(pending, cap, op.final_len(), || op.finish());
        self.finish_step(&s, slot, r)
    }

    pub fn digest_init(&self, h: CK_SESSION_HANDLE, m: &Mechanism) -> Result<()> {
        self.start(h, |st| &mut st.digest, |s| s.token.digest_init(&s.ctx(), m))
    }

    pub fn digest(&self, h: CK_SESSION_HANDLE, data: &[u8], cap: Option<usize>) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let Active { op, pending, .. } = Self::step(&mut st.digest, Step::Single)?;
        let r = deliver(pending, cap, op.digest_len(), || {
            op.update(data)?;
            op.finish()
        });
        self.finish_step(&s, &mut st.digest, r)
    }

    pub fn digest_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let r = Self::step(&mut st.digest, Step::Update)?.op.update(data);
        self.end_on_error(&s, &mut st.digest, r)
    }

    pub fn digest_key(&self, h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        Self::step(&mut st.digest, Step::Update)?;
        let value = self
            .key(&s, key, KeyRole::Key)
            .and_then(|id| Self::key_rv(s.token.digest_key_value(&s.ctx(), id), KeyRole::Key));
        let r = value.and_then(|v| Self::step(&mut st.digest, Step::Update)?.op.update(&v));
        self.end_on_error(&s, &mut st.digest, r)
    }

    pub fn digest_final(&self, h: CK_SESSION_HANDLE, cap: Option<usize>) -> Result<Out> {
        let s = self.session(h)?;
        let mut st = lock(&s.state);
        let Active { op, pending, .. } = Self::step(&mut st.digest, Step::Final)?;
        let r = deliver(pending, cap, op.digest_len(), || op.finish());
        self.finish_step(&s, &mut st.digest, r)
    }

    // ---------------------------------------------------------------- key management

    pub fn generate_key(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        t: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let id = self.tok(&s, s.token.generate_key(&s.ctx(), m, t))?;
        let mut st = lock(&s.state);
        Ok(self.new_handle(&s, &mut st, id))
    }

    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        public: &Template,
        private: &Template,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let s = self.session(h)?;
        // Klyuch's alias of CKM_GOSTR3410_KEY_PAIR_GEN (token_api::ck says why it exists).
        let aliased;
        let m = if m.ty == token_api::ck::CKM_KLYUCH_GOSTR3410_256_KEY_PAIR_GEN {
            aliased = Mechanism {
                ty: token_api::ck::CKM_GOSTR3410_KEY_PAIR_GEN,
                param: m.param.clone(),
            };
            &aliased
        } else {
            m
        };
        let (pu, pr) = self.tok(&s, s.token.generate_key_pair(&s.ctx(), m, public, private))?;
        let mut st = lock(&s.state);
        Ok((
            self.new_handle(&s, &mut st, pu),
            self.new_handle(&s, &mut st, pr),
        ))
    }

    pub fn wrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
        cap: Option<usize>,
    ) -> Result<Out> {
        let s = self.session(h)?;
        let w = self.key(&s, wrapping, KeyRole::Wrapping)?;
        let k = self.key(&s, key, KeyRole::Key)?;
        let wrapped = self.tok(&s, s.token.wrap_key(&s.ctx(), m, w, k))?;
        Ok(match cap {
            None => Out::Len(wrapped.len()),
            Some(c) if c < wrapped.len() => Out::TooSmall(wrapped.len()),
            Some(_) => Out::Data(zeroize::Zeroizing::new(wrapped)),
        })
    }

    pub fn unwrap_key(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        t: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let u = self.key(&s, unwrapping, KeyRole::Unwrapping)?;
        let r = Self::key_rv(
            s.token.unwrap_key(&s.ctx(), m, u, wrapped, t),
            KeyRole::Unwrapping,
        );
        let id = self.tok(&s, r)?;
        let mut st = lock(&s.state);
        Ok(self.new_handle(&s, &mut st, id))
    }

    pub fn derive_key(
        &self,
        h: CK_SESSION_HANDLE,
        m: &Mechanism,
        base: CK_OBJECT_HANDLE,
        t: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        let s = self.session(h)?;
        let b = self.key(&s, base, KeyRole::Base)?;
        let r = Self::key_rv(s.token.derive_key(&s.ctx(), m, b, t), KeyRole::Base);
        let id = self.tok(&s, r)?;
        let mut st = lock(&s.state);
        Ok(self.new_handle(&s, &mut st, id))
    }

    // ---------------------------------------------------------------- random

    pub fn generate_random(&self, h: CK_SESSION_HANDLE, out: &mut [u8]) -> Result<()> {
        let s = self.session(h)?;
        let r = s.token.generate_random(out);
        self.tok(&s, r)
    }

    pub fn seed_random(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.session(h)?;
        Err(Error::with(
            CKR_RANDOM_SEED_NOT_SUPPORTED,
            "the system RNG needs no seed",
        ))
    }

    /// Validate a session handle (for functions Klyuch does not implement, so that a bad handle
    /// still gets `CKR_SESSION_HANDLE_INVALID` rather than `CKR_FUNCTION_NOT_SUPPORTED`).
    pub fn check_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.session(h).map(|_| ())
    }
}
