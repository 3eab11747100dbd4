//! The slot registry: every slot source (soft token store, PC/SC readers) and the slots they have
//! shown. Global slot ID = (source index << 24) | source-local number, so IDs of different
//! sources never collide and soft token IDs stay stable across restarts. The list never shrinks
//! while the library is initialised (browsers keep slot IDs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use token_api::ck::*;
use token_api::{Error, Result, SlotInfo, SlotSource, Token};

use super::{read, write};

const LOCAL_BITS: u32 = 24;
const LOCAL_MASK: u64 = (1 << LOCAL_BITS) - 1;

struct Known {
    source: usize,
    local: u64,
    /// The last info the source gave, for slots it no longer lists (shown without a token).
    last: SlotInfo,
}

pub struct Slots {
    /// (source number, source): the number is the backend's fixed place in the registry.
    sources: Vec<(u64, Arc<dyn SlotSource>)>,
    known: RwLock<BTreeMap<CK_SLOT_ID, Known>>,
    refreshed: AtomicBool,
}

impl Slots {
    pub fn new(sources: Vec<(u64, Arc<dyn SlotSource>)>) -> Self {
        Slots {
            sources,
            known: RwLock::new(BTreeMap::new()),
            refreshed: AtomicBool::new(false),
        }
    }

    fn global(&self, source: usize, local: u64) -> CK_SLOT_ID {
        (self.sources[source].0 << LOCAL_BITS) | (local & LOCAL_MASK)
    }

    /// Ask every source for its slots now. A source that fails keeps its old slots (logged).
    pub fn refresh(&self) {
        let mut seen = Vec::new();
        for (i, (_, src)) in self.sources.iter().enumerate() {
            match src.slots() {
                Ok(list) => {
                    for d in list {
                        if d.local > LOCAL_MASK {
                            log::warn!(
                                "{}: slot number {} out of range, ignored",
                                src.name(),
                                d.local
                            );
                            continue;
                        }
                        seen.push((self.global(i, d.local), i, d.local, d.info));
                    }
                }
                Err(e) => log::warn!("{}: listing slots failed: {e}", src.name()),
            }
        }
        let mut known = write(&self.known);
        for (id, source, local, info) in seen {
            known.insert(
                id,
                Known {
                    source,
                    local,
                    last: info,
                },
            );
        }
        self.refreshed.store(true, Ordering::Release);
    }

    /// The slot IDs, refreshed first when `refresh` is set (or never done).
    pub fn list(&self, token_present: bool, refresh: bool) -> Vec<CK_SLOT_ID> {
        if refresh || !self.refreshed.load(Ordering::Acquire) {
            self.refresh();
        }
        let ids: Vec<CK_SLOT_ID> = read(&self.known).keys().copied().collect();
        if !token_present {
            return ids;
        }
        ids.into_iter()
            .filter(|id| {
                self.slot_info(*id)
                    .is_ok_and(|i| i.flags & CKF_TOKEN_PRESENT != 0)
            })
            .collect()
    }

    fn resolve(&self, slot: CK_SLOT_ID) -> Result<(&Arc<dyn SlotSource>, u64)> {
        if !self.refreshed.load(Ordering::Acquire) {
            self.refresh();
        }
        let known = read(&self.known);
        let k = known
            .get(&slot)
            .ok_or_else(|| Error::new(CKR_SLOT_ID_INVALID))?;
        Ok((&self.sources[k.source].1, k.local))
    }

    /// `C_GetSlotInfo`, from the source's cached state. A slot the source no longer knows is
    /// shown as it was, without a token.
    pub fn slot_info(&self, slot: CK_SLOT_ID) -> Result<SlotInfo> {
        let (src, local) = self.resolve(slot)?;
        match src.slot_info(local) {
            Ok(i) => Ok(i),
            Err(e) if e.rv() == CKR_SLOT_ID_INVALID => {
                let known = read(&self.known);
                let mut last = known.get(&slot).map(|k| k.last.clone()).ok_or(e)?;
                last.flags &= !CKF_TOKEN_PRESENT;
                Ok(last)
            }
            Err(e) => Err(e),
        }
    }

    /// The token in a slot (`CKR_TOKEN_NOT_PRESENT` if none).
    pub fn token(&self, slot: CK_SLOT_ID) -> Result<Arc<dyn Token>> {
        let (src, local) = self.resolve(slot)?;
        match src.token(local) {
            Err(e) if e.rv() == CKR_SLOT_ID_INVALID => Err(Error::new(CKR_TOKEN_NOT_PRESENT)),
            r => r,
        }
    }

    /// `C_WaitForSlotEvent`. Polls every source with events when `block` is false; otherwise
    /// waits in slices so that `cancelled` (set by `C_Finalize`) is seen within half a second
    /// even if a source could not be woken.
    pub fn wait_event(&self, block: bool, cancelled: &AtomicBool) -> Result<CK_SLOT_ID> {
        let with_events: Vec<usize> = (0..self.sources.len())
            .filter(|i| self.sources[*i].1.has_events())
            .collect();
        loop {
            if cancelled.load(Ordering::Acquire) {
                return Err(Error::new(CKR_CRYPTOKI_NOT_INITIALIZED));
            }
            let slice = if !block {
                Duration::ZERO
            } else if with_events.len() == 1 {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(100)
            };
            for &i in &with_events {
                if let Some(local) = self.sources[i].1.wait_event(slice)? {
                    if cancelled.load(Ordering::Acquire) {
                        return Err(Error::new(CKR_CRYPTOKI_NOT_INITIALIZED));
                    }
                    self.refresh();
                    return Ok(self.global(i, local));
                }
            }
            if !block {
                return Err(Error::new(CKR_NO_EVENT));
            }
            if with_events.is_empty() {
                // Nothing can ever happen: sleep until C_Finalize.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Wake every blocked `wait_event` (C_Finalize).
    pub fn cancel(&self) {
        for (_, s) in &self.sources {
            s.cancel();
        }
    }
}
