//! The soft token store as a [`SlotSource`]: one slot per token folder, plus one slot with an
//! uninitialised token (the SoftHSM convention).

use crate::format::{Meta, PinWrap, Role};
use crate::seal;
use crate::store::{self, FileLock, Stamp};
use crate::token::SoftToken;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use token_api::ck::*;
use token_api::config::{Config, SoftTokenConfig};
use token_api::{Error, Pin, Result, SlotDesc, SlotInfo, SlotSource, Token};

/// Slot numbers stay below this (the module puts the source index above bit 24).
const MAX_SLOT: u64 = (1 << 24) - 1;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every token of a store shares: the folder, the configuration, and the folder listing.
pub struct Shared {
    pub dir: PathBuf,
    pub cfg: SoftTokenConfig,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// The store folder's stamp at the last listing (`Some(None)`: it did not exist).
    stamp: Option<Option<Stamp>>,
    folders: BTreeMap<u64, PathBuf>,
}

impl Shared {
    pub fn new(dir: PathBuf, cfg: SoftTokenConfig) -> Self {
        Shared {
            dir,
            cfg,
            registry: Mutex::new(Registry::default()),
        }
    }

    /// Token folders by slot number, listed again only when the store folder changed (one
    /// `stat` otherwise).
    pub fn folders(&self) -> Result<BTreeMap<u64, PathBuf>> {
        let stamp = Stamp::path(&self.dir)?;
        let mut reg = lock(&self.registry);
        if reg.stamp != Some(stamp) {
            reg.folders = scan_folders(&self.dir)?;
            reg.stamp = Some(stamp);
        }
        Ok(reg.folders.clone())
    }

    pub fn folder_for(&self, slot: u64) -> Result<Option<PathBuf>> {
        Ok(self.folders()?.get(&slot).cloned())
    }

    fn invalidate(&self) {
        lock(&self.registry).stamp = None;
    }

    /// `C_InitToken` on an uninitialised slot: create a token folder for `slot`.
    pub fn create_token(&self, slot: u64, so_pin: &Pin, label: &str) -> Result<PathBuf> {
        if !store::mode_writable(&self.dir) {
            return Err(Error::with(
                CKR_TOKEN_WRITE_PROTECTED,
                format!("the store {} is read-only", self.dir.display()),
            ));
        }
        store::create_dir_0700(&self.dir)?;
        let store_lock = store::open_lock_file(&self.dir.join(".lock"))?;
        let _g = FileLock::exclusive(&store_lock)?;
        self.invalidate();
        if self.folder_for(slot)?.is_some() {
            return Err(Error::with(
                CKR_DEVICE_ERROR,
                format!(
                    "slot {slot} was initialised by another process meanwhile; list the slots again"
                ),
            ));
        }
        let token_key = seal::random_key()?;
        let uuid: [u8; 16] = seal::random()?;
        let serial = store::hex(&seal::random::<8>()?).to_uppercase();
        let seq_base = (u64::from_le_bytes(seal::random()?) >> 24) + 1;
        let meta = Meta {
            version: crate::format::META_VERSION,
            uuid,
            serial,
            label: label.trim_end().to_owned(),
            slot,
            k_pub: *seal::random_key()?,
            so: PinWrap::new(
                &uuid,
                Role::So,
                so_pin.expose(),
                self.cfg.kdf_iterations,
                &token_key,
            )?,
            user: None,
            so_failures: 0,
            user_failures: 0,
            seq_base,
        };
        let dir = store::create_token_folder(&self.dir, &meta)?;
        self.invalidate();
        log::info!("created soft token {} in slot {slot}", meta.serial);
        Ok(dir)
    }
}

/// Read every token folder: slot → folder. Two folders claiming one slot (a copied folder):
/// the first by name keeps it, the other gets a free number for this process (logged).
fn scan_folders(dir: &Path) -> Result<BTreeMap<u64, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut clashes = Vec::new();
    for (folder, meta) in store::list_tokens(dir)? {
        if meta.slot > MAX_SLOT || out.contains_key(&meta.slot) {
            clashes.push((folder, meta.slot));
        } else {
            out.insert(meta.slot, folder);
        }
    }
    for (folder, slot) in clashes {
        let free = out.keys().next_back().map_or(0, |m| m + 1);
        log::warn!(
            "soft token folder {} claims slot {slot}, which is taken; it shows as slot {free} in \
             this process",
            folder.display()
        );
        out.insert(free, folder);
    }
    Ok(out)
}

/// The soft token store: a [`SlotSource`] over the token folders in `Config::token_dir()`.
pub struct SoftTokenSource {
    shared: Arc<Shared>,
    slots: Mutex<BTreeMap<u64, Arc<SoftToken>>>,
}

impl std::fmt::Debug for SoftTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftTokenSource")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl SoftTokenSource {
    /// Open the store named by the configuration (`KLYUCH_TOKEN_DIR`, the file's
    /// `softtoken.dir`, or `~/.local/share/klyuch/tokens`). Reads only the token metadata; the
    /// folder is created at the first `C_InitToken`.
    pub fn new(cfg: &Config) -> Result<Self> {
        Self::with_dir(cfg.token_dir(), cfg.softtoken.clone())
    }

    /// Open a store in an explicit folder.
    pub fn with_dir(dir: PathBuf, cfg: SoftTokenConfig) -> Result<Self> {
        let src = SoftTokenSource {
            shared: Arc::new(Shared::new(dir, cfg)),
            slots: Mutex::new(BTreeMap::new()),
        };
        src.refresh()?;
        Ok(src)
    }

    /// The module's backend factory: `None` when the soft token is switched off.
    pub fn factory(cfg: &Config) -> Result<Option<Arc<dyn SlotSource>>> {
        if !cfg.softtoken.enabled {
            return Ok(None);
        }
        Ok(Some(Arc::new(SoftTokenSource::new(cfg)?)))
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The concrete token of a slot (for tools and tests: compaction, statistics).
    pub fn soft_token(&self, local: u64) -> Result<Arc<SoftToken>> {
        lock(&self.slots)
            .get(&local)
            .cloned()
            .ok_or_else(|| Error::new(CKR_SLOT_ID_INVALID))
    }

    /// Update the slot list: every token folder has a slot, and exactly one slot more holds an
    /// uninitialised token (unless one without a folder is already listed). Never removes one.
    fn refresh(&self) -> Result<Vec<u64>> {
        let folders = self.shared.folders()?;
        let mut slots = lock(&self.slots);
        for &slot in folders.keys() {
            slots
                .entry(slot)
                .or_insert_with(|| SoftToken::new(self.shared.clone(), slot));
        }
        let has_uninit = slots.keys().any(|s| !folders.contains_key(s));
        if !has_uninit {
            let next = slots.keys().next_back().map_or(0, |m| m + 1);
            if next <= MAX_SLOT {
                slots.insert(next, SoftToken::new(self.shared.clone(), next));
            }
        }
        Ok(slots.keys().copied().collect())
    }

    fn info_of(&self, local: u64) -> SlotInfo {
        SlotInfo {
            description: format!("Klyuch soft token slot {local}"),
            manufacturer: "Klyuch".into(),
            flags: CKF_TOKEN_PRESENT,
            hardware_version: (0, 1),
            firmware_version: (0, 1),
        }
    }
}

impl SlotSource for SoftTokenSource {
    fn name(&self) -> &'static str {
        "softtoken"
    }

    fn slots(&self) -> Result<Vec<SlotDesc>> {
        Ok(self
            .refresh()?
            .into_iter()
            .map(|local| SlotDesc {
                local,
                info: self.info_of(local),
            })
            .collect())
    }

    fn slot_info(&self, local: u64) -> Result<SlotInfo> {
        if lock(&self.slots).contains_key(&local) {
            Ok(self.info_of(local))
        } else {
            Err(Error::new(CKR_SLOT_ID_INVALID))
        }
    }

    fn token(&self, local: u64) -> Result<Arc<dyn Token>> {
        Ok(self.soft_token(local)?)
    }
}
