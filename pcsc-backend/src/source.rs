//! The PC/SC readers as a [`SlotSource`]: one slot per reader, hot-plug through the PnP
//! pseudo-reader, events through `SCardGetStatusChange` in the caller's thread, `SCardCancel`
//! on `C_Finalize`.
//!
//! * `slots()` asks pcscd only (SCardListReaders + SCardGetStatusChange with a zero timeout),
//!   never the card; the list never shrinks (a removed reader stays as a slot without token).
//! * `slot_info()` answers from the cached reader state, refreshed from pcscd at most once a
//!   second (NSS polls it; the card is never touched).
//! * `token()` connects to a new card once (shared mode) and keeps the token until the card is
//!   removed, handing out the same `Arc` meanwhile; a failed attempt is not retried until the
//!   reader's state changes (an unreadable card must not be hammered, cf. OpenSC issue 3471).
//!   It looks at pcscd (not the card) when there is no live token or the cached reader state is
//!   a second old, so a removal or re-insertion shows in `C_GetTokenInfo` too.
//! * Without pcscd there are no slots and no error; the daemon is looked for again at most every
//!   two seconds.

use crate::token::{CardToken, TokenOptions};
use crate::transport::PcscConnection;
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use token_api::ck::*;
use token_api::config::Config;
use token_api::{Error, Result, SlotDesc, SlotInfo, SlotSource, Token};

/// A slice of a blocking wait: a cancel that races with the start of a wait is still seen
/// within this time, and so is a new pcscd.
const WAIT_SLICE: Duration = Duration::from_millis(500);
/// How often to look for pcscd when it is not running.
const RETRY_ESTABLISH: Duration = Duration::from_secs(2);
/// `slot_info` refreshes from pcscd at most this often.
const INFO_REFRESH: Duration = Duration::from_secs(1);

struct Reader {
    name: String,
    /// The reader exists now (a vanished reader keeps its slot).
    present: bool,
    /// Last event state from pcscd (with the event counter in the upper 16 bits).
    state: pcsc::State,
    atr: Vec<u8>,
    /// The token of the card in the reader. Handed out as this one `Arc` for as long as the
    /// card stays (the core recognises a token's sessions by `Arc` identity).
    token: Option<Arc<CardToken>>,
    /// pcscd's event counter (insertions and removals) when the token was opened: a card
    /// pulled and put back between two looks is a new token.
    token_event: u32,
    /// The reader state (event counter) at which opening the token failed.
    failed_at: Option<u32>,
    /// What `wait_event` last reported for this slot: (card present, event counter).
    reported: Option<(bool, u32)>,
}

impl Reader {
    fn card_present(&self) -> bool {
        self.present
            && self.state.contains(pcsc::State::PRESENT)
            && !self.state.contains(pcsc::State::MUTE)
    }
    fn event_count(&self) -> u32 {
        (self.state.bits() >> 16) as u32
    }
    fn snapshot(&self) -> (bool, u32) {
        (self.card_present(), self.event_count())
    }
}

struct Inner {
    ctx: Option<pcsc::Context>,
    last_establish: Option<Instant>,
    last_refresh: Option<Instant>,
    readers: Vec<Reader>,
    /// The PnP pseudo-reader's last state (`None` = not supported by this pcscd).
    pnp: Option<pcsc::State>,
}

/// The PC/SC slot source. Construct with [`PcscSource::new`]; the module never constructs it
/// when `KLYUCH_PCSC=0` / `[pcsc] enabled = false`.
pub struct PcscSource {
    cfg: token_api::config::PcscConfig,
    inner: Mutex<Inner>,
    /// The context a `wait_event` is blocked in, for `cancel()`.
    wait_ctx: Mutex<Option<pcsc::Context>>,
    cancelled: AtomicBool,
    opts: TokenOptions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn establish() -> Option<pcsc::Context> {
    match pcsc::Context::establish(pcsc::Scope::User) {
        Ok(c) => Some(c),
        Err(e) => {
            log::debug!("pcsc: no PC/SC service ({e}); no reader slots");
            None
        }
    }
}

impl PcscSource {
    /// The source for this configuration. Never fails for lack of pcscd: then it simply has no
    /// slots until pcscd appears.
    pub fn new(cfg: &Config) -> Result<PcscSource> {
        let mut opts = TokenOptions::from_env(cfg.pcsc.pinpad);
        opts.counter = Arc::new(AtomicU64::new(0));
        opts.cache = Some(Arc::new(Mutex::new(HashMap::new())));
        let s = PcscSource {
            cfg: cfg.pcsc.clone(),
            inner: Mutex::new(Inner {
                ctx: None,
                last_establish: None,
                last_refresh: None,
                readers: Vec::new(),
                pnp: None,
            }),
            wait_ctx: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            opts,
        };
        {
            let mut inner = lock(&s.inner);
            s.refresh(&mut inner);
            // What exists at start is not an event.
            for r in &mut inner.readers {
                r.reported = Some(r.snapshot());
            }
        }
        Ok(s)
    }

    /// Every APDU sent to any card of this source so far (for tests and the benchmark).
    pub fn apdu_count(&self) -> u64 {
        self.opts.counter.load(Ordering::Relaxed)
    }

    /// The local slot number of a reader by name.
    pub fn slot_of(&self, reader: &str) -> Option<u64> {
        lock(&self.inner)
            .readers
            .iter()
            .position(|r| r.name == reader)
            .map(|i| i as u64)
    }

    /// The card token in a slot as its concrete type (tests: APDU counts, profile name).
    pub fn card_token(&self, local: u64) -> Result<CardToken> {
        self.token_inner(local).map(|t| (*t).clone())
    }

    fn excluded(&self, name: &str) -> bool {
        self.cfg
            .exclude_readers
            .iter()
            .any(|x| !x.is_empty() && name.contains(x.as_str()))
    }

    /// Ask pcscd (never the card): reader list, then their states with a zero timeout.
    fn refresh(&self, inner: &mut Inner) {
        inner.last_refresh = Some(Instant::now());
        if inner.ctx.is_none() {
            if inner
                .last_establish
                .is_some_and(|t| t.elapsed() < RETRY_ESTABLISH)
            {
                return;
            }
            inner.last_establish = Some(Instant::now());
            inner.ctx = establish();
            if inner.ctx.is_none() {
                return;
            }
        }
        let ctx = inner.ctx.clone().expect("context");
        let names = match ctx.list_readers_owned() {
            Ok(n) => n,
            Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
            Err(e) => {
                log::debug!("pcsc: SCardListReaders: {e}");
                if matches!(
                    e,
                    pcsc::Error::NoService
                        | pcsc::Error::ServiceStopped
                        | pcsc::Error::InvalidHandle
                ) {
                    inner.ctx = None;
                    inner.pnp = None;
                }
                for r in &mut inner.readers {
                    r.present = false;
                }
                self.drop_gone_tokens(inner);
                return;
            }
        };
        let names: Vec<String> = names
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("\\\\?PnP?"))
            .collect();
        for r in &mut inner.readers {
            r.present = names.contains(&r.name);
        }
        for n in names {
            if self.excluded(&n) || inner.readers.iter().any(|r| r.name == n) {
                continue;
            }
            if inner.readers.len() >= (1 << 24) {
                break;
            }
            log::info!("pcsc: reader {n:?} is slot {}", inner.readers.len());
            inner.readers.push(Reader {
                name: n,
                present: true,
                state: pcsc::State::UNAWARE,
                atr: Vec::new(),
                token: None,
                token_event: 0,
                failed_at: None,
                reported: None,
            });
        }
        let idx: Vec<usize> = (0..inner.readers.len())
            .filter(|&i| inner.readers[i].present)
            .collect();
        if !idx.is_empty() {
            let mut states: Vec<pcsc::ReaderState> = idx
                .iter()
                .filter_map(|&i| {
                    let r = &inner.readers[i];
                    Some(pcsc::ReaderState::new(
                        CString::new(r.name.clone()).ok()?,
                        r.state & !pcsc::State::CHANGED,
                    ))
                })
                .collect();
            match ctx.get_status_change(Duration::ZERO, &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) => {
                    for (s, &i) in states.iter().zip(&idx) {
                        let r = &mut inner.readers[i];
                        let ev = s.event_state();
                        if ev.contains(pcsc::State::CHANGED) || r.state == pcsc::State::UNAWARE {
                            r.state = ev & !pcsc::State::CHANGED;
                            r.atr = s.atr().to_vec();
                        }
                        if ev.contains(pcsc::State::UNKNOWN) || ev.contains(pcsc::State::IGNORE) {
                            r.present = false;
                        }
                    }
                }
                Err(e) => log::debug!("pcsc: SCardGetStatusChange: {e}"),
            }
        }
        self.drop_gone_tokens(inner);
    }

    /// Forget tokens whose card is gone or was swapped (the token reports itself dead).
    fn drop_gone_tokens(&self, inner: &mut Inner) {
        for r in &mut inner.readers {
            let keep = match &r.token {
                Some(t) => {
                    t.alive()
                        && r.card_present()
                        && t.atr() == r.atr.as_slice()
                        && r.event_count() == r.token_event
                }
                None => true,
            };
            if !keep {
                if let Some(t) = r.token.take() {
                    log::info!("pcsc: card removed from {:?}", r.name);
                    t.mark_removed();
                }
            }
            if !r.card_present() {
                r.failed_at = None;
            }
        }
    }

    fn token_inner(&self, local: u64) -> Result<Arc<CardToken>> {
        let mut inner = lock(&self.inner);
        let i = usize::try_from(local).map_err(|_| Error::new(CKR_SLOT_ID_INVALID))?;
        if i >= inner.readers.len() {
            return Err(Error::new(CKR_SLOT_ID_INVALID));
        }
        // The reader's state from pcscd (never the card) when it may have changed: no live
        // token yet (a card to open, or a removal to report), or not looked at for a second
        // (so a removal shows in C_GetTokenInfo within a second, as in C_GetSlotInfo).
        let r = &inner.readers[i];
        let live = r.token.as_ref().is_some_and(|t| t.alive());
        if r.state == pcsc::State::UNAWARE
            || !live
            || inner
                .last_refresh
                .is_none_or(|t| t.elapsed() >= INFO_REFRESH)
        {
            self.refresh(&mut inner);
        } else {
            self.drop_gone_tokens(&mut inner);
        }
        let ctx = inner.ctx.clone();
        let r = &mut inner.readers[i];
        if !r.card_present() {
            return Err(Error::new(CKR_TOKEN_NOT_PRESENT));
        }
        if let Some(t) = &r.token {
            return Ok(t.clone());
        }
        if r.failed_at == Some(r.event_count()) {
            return Err(Error::with(
                CKR_DEVICE_ERROR,
                "the card in this reader could not be read (reinsert it)",
            ));
        }
        let ctx = ctx.ok_or(Error::new(CKR_TOKEN_NOT_PRESENT))?;
        let opened = PcscConnection::connect(&ctx, &r.name)
            .map_err(Error::from)
            .and_then(|c| CardToken::open(Box::new(c), &r.name, self.opts.clone()));
        match opened {
            Ok(t) => {
                // The ATR pcscd reported is the one the token compares against later.
                if r.atr.is_empty() {
                    r.atr = t.atr().to_vec();
                }
                let t = Arc::new(t);
                r.token = Some(t.clone());
                r.token_event = r.event_count();
                Ok(t)
            }
            Err(e) => {
                log::warn!("pcsc: {:?}: cannot open the card: {e}", r.name);
                r.failed_at = Some(r.event_count());
                if e.rv() == CKR_DEVICE_REMOVED {
                    return Err(Error::new(CKR_TOKEN_NOT_PRESENT));
                }
                Err(e)
            }
        }
    }

    fn info_of(r: &Reader) -> SlotInfo {
        let mut flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
        if r.card_present() {
            flags |= CKF_TOKEN_PRESENT;
        }
        SlotInfo {
            description: r.name.clone(),
            manufacturer: "PC/SC".into(),
            flags,
            hardware_version: (0, 0),
            firmware_version: (0, 0),
        }
    }

    /// A pending event: a slot whose state differs from what was last reported.
    fn pending_event(inner: &mut Inner) -> Option<u64> {
        for (i, r) in inner.readers.iter_mut().enumerate() {
            let now = r.snapshot();
            if r.reported != Some(now) {
                // A changed event counter with the same presence is a swap: still an event.
                r.reported = Some(now);
                return Some(i as u64);
            }
        }
        None
    }
}

impl SlotSource for PcscSource {
    fn name(&self) -> &'static str {
        "pcsc"
    }

    fn slots(&self) -> Result<Vec<SlotDesc>> {
        let mut inner = lock(&self.inner);
        self.refresh(&mut inner);
        Ok(inner
            .readers
            .iter()
            .enumerate()
            .map(|(i, r)| SlotDesc {
                local: i as u64,
                info: Self::info_of(r),
            })
            .collect())
    }

    fn slot_info(&self, local: u64) -> Result<SlotInfo> {
        let mut inner = lock(&self.inner);
        if inner
            .last_refresh
            .is_none_or(|t| t.elapsed() >= INFO_REFRESH)
        {
            self.refresh(&mut inner);
        }
        let i = usize::try_from(local).map_err(|_| Error::new(CKR_SLOT_ID_INVALID))?;
        inner
            .readers
            .get(i)
            .map(Self::info_of)
            .ok_or(Error::new(CKR_SLOT_ID_INVALID))
    }

    fn token(&self, local: u64) -> Result<Arc<dyn Token>> {
        self.token_inner(local).map(|t| t as Arc<dyn Token>)
    }

    fn has_events(&self) -> bool {
        true
    }

    fn wait_event(&self, timeout: Duration) -> Result<Option<u64>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.cancelled.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let (ctx, mut states, idx, pnp) = {
                let mut inner = lock(&self.inner);
                self.refresh(&mut inner);
                if let Some(slot) = Self::pending_event(&mut inner) {
                    return Ok(Some(slot));
                }
                let idx: Vec<usize> = (0..inner.readers.len())
                    .filter(|&i| inner.readers[i].present)
                    .collect();
                let mut states: Vec<pcsc::ReaderState> = idx
                    .iter()
                    .filter_map(|&i| {
                        let r = &inner.readers[i];
                        Some(pcsc::ReaderState::new(
                            CString::new(r.name.clone()).ok()?,
                            r.state & !pcsc::State::CHANGED,
                        ))
                    })
                    .collect();
                let pnp = inner.pnp.unwrap_or(pcsc::State::UNAWARE);
                states.push(pcsc::ReaderState::new(pcsc::PNP_NOTIFICATION(), pnp));
                (inner.ctx.clone(), states, idx, pnp)
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let slice = (deadline - now).min(WAIT_SLICE);
            let Some(_main) = ctx else {
                // No pcscd: sleep in slices so that cancel() is seen promptly.
                std::thread::sleep(slice);
                continue;
            };
            // A context of our own for the blocking call, so that cancel() can SCardCancel it
            // without touching the context other calls use.
            let wctx = {
                let mut w = lock(&self.wait_ctx);
                if w.is_none() {
                    *w = establish();
                }
                match w.clone() {
                    Some(c) => c,
                    None => {
                        drop(w);
                        std::thread::sleep(slice);
                        continue;
                    }
                }
            };
            if self.cancelled.load(Ordering::SeqCst) {
                return Ok(None);
            }
            match wctx.get_status_change(slice, &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) => {
                    let pnp_state = states.last().map(|s| s.event_state());
                    let mut inner = lock(&self.inner);
                    if let Some(ps) = pnp_state {
                        if ps.contains(pcsc::State::UNKNOWN) {
                            // This pcscd has no PnP notification: plain slices then.
                            inner.pnp = Some(pcsc::State::IGNORE);
                        } else if pnp != pcsc::State::IGNORE {
                            inner.pnp = Some(ps & !pcsc::State::CHANGED);
                        }
                    }
                    let _ = idx;
                }
                Err(pcsc::Error::Cancelled) => return Ok(None),
                Err(e) => {
                    log::debug!("pcsc: wait: {e}");
                    *lock(&self.wait_ctx) = None;
                    std::thread::sleep(slice.min(Duration::from_millis(200)));
                }
            }
        }
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Some(c) = lock(&self.wait_ctx).as_ref() {
            let _ = c.cancel();
        }
    }
}
