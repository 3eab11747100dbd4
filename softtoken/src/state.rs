//! The in-memory state of one initialised token and its synchronisation with the files:
//! staleness checks, reading other processes' records, writing our own, compaction.

use crate::format::{self, Meta, OP_DELETE, OP_MARK, OP_PUT, OP_SUPERSEDED, SealedRecord};
use crate::objects::{IdMap, Obj, Table};
use crate::seal::{Aead, SecretKey};
use crate::store::{self, Change, FileLock, Log, Stamp, TokenPaths};
use std::fs::File;
use std::sync::Arc;
use token_api::ck::*;
use token_api::{Error, ObjectId, Result, Template, UserType};

/// Compact the log when it holds more than this many bytes of superseded records and more
/// superseded than live bytes.
pub const COMPACT_MIN_DEAD: u64 = 1 << 20;

/// Sequence numbers (and so token object ids) stay below this.
const MAX_SEQ: u64 = crate::objects::SESSION_ID_BASE - 1;

/// What a write does to one object.
pub enum Pending {
    /// A new token object; its id is the sequence number of its record.
    New {
        private: bool,
        attrs: Template,
    },
    /// A new version of a token object.
    Update {
        id: ObjectId,
        attrs: Template,
    },
    Delete {
        id: ObjectId,
    },
}

/// How a read of the log ended.
#[derive(PartialEq, Eq)]
enum Read {
    Done,
    /// At a real superseded marker: the log must be opened again by its path.
    Superseded,
}

/// The frame of a superseded marker for the log of incarnation `uuid`.
fn superseded_frame(pub_aead: &Aead, uuid: &[u8; 16]) -> Result<Vec<u8>> {
    let r = SealedRecord::header_only(pub_aead, uuid, 0, 0, OP_SUPERSEDED)?;
    format::records_frame(&[r])
}

pub struct Ready {
    pub paths: TokenPaths,
    lock: Arc<File>,
    pub meta: Meta,
    meta_stamp: Stamp,
    pub_aead: Aead,
    /// The token key while someone is logged in (the user, or the SO for `C_InitPIN`).
    tok: Option<(SecretKey, Aead)>,
    pub login: Option<UserType>,
    /// The object log, once read (lazily, at the first object call).
    log: Option<Log>,
    pub objects: Table,
    /// Deleted token objects: id → sequence number of the deletion.
    tombstones: IdMap<ObjectId, u64>,
    last_seq: u64,
    live_bytes: u64,
    /// Compaction threshold (tests lower it).
    pub compact_min_dead: u64,
    /// This process cannot write the token's files (a read-only mount, or a folder or files
    /// without write permission): `CKF_WRITE_PROTECTED`, and every change is refused with
    /// `CKR_TOKEN_WRITE_PROTECTED`.
    pub write_protected: bool,
    /// Wrong PINs (SO, user) counted in this process only, on a write-protected token, where
    /// the count in the metadata cannot grow. See [`crate::SoftToken`]'s login.
    pub ro_failures: [u32; 2],
}

fn write_protected_error() -> Error {
    Error::with(
        CKR_TOKEN_WRITE_PROTECTED,
        "the soft token's files are read-only for this process (read-only mount or permissions)",
    )
}

impl Ready {
    /// Open an initialised token folder (reads the metadata only).
    pub fn open(paths: TokenPaths) -> Result<Ready> {
        let (lock, lock_writable) = store::open_token_lock(&paths.lock())?;
        let lock = Arc::new(lock);
        let (meta, meta_stamp) = paths.read_meta()?;
        let write_protected = !lock_writable
            || !store::mode_writable(&paths.dir)
            || !store::mode_writable(&paths.log(&meta.uuid));
        if write_protected {
            log::info!(
                "soft token folder {} is read-only for this process: the token is write-protected",
                paths.dir.display()
            );
        }
        Ok(Ready {
            write_protected,
            ro_failures: [0; 2],
            pub_aead: Aead::new(&meta.k_pub),
            last_seq: meta.seq_base,
            paths,
            lock,
            meta,
            meta_stamp,
            tok: None,
            login: None,
            log: None,
            objects: Table::default(),
            tombstones: IdMap::default(),
            live_bytes: 0,
            compact_min_dead: COMPACT_MIN_DEAD,
        })
    }

    pub fn lock_handle(&self) -> Arc<File> {
        self.lock.clone()
    }

    /// The key for private records, when the user is logged in.
    fn user_aead(&self) -> Option<&Aead> {
        match (self.login, &self.tok) {
            (Some(UserType::User), Some((_, a))) => Some(a),
            _ => None,
        }
    }

    pub fn token_key(&self) -> Option<&SecretKey> {
        self.tok.as_ref().map(|(k, _)| k)
    }

    /// Log in with the token key (already verified against a PIN).
    pub fn set_login(&mut self, who: UserType, key: SecretKey) {
        let aead = Aead::new(&key);
        self.tok = Some((key, aead));
        self.login = Some(who);
        if who == UserType::User {
            self.reveal_private();
        }
    }

    /// End the login: forget the token key and every private plaintext; private session
    /// objects go away.
    pub fn logout(&mut self) {
        self.login = None;
        self.tok = None;
        let ids: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, o)| o.private)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let session = self.objects.get(id).is_some_and(|o| !o.is_token());
            if session {
                self.objects.remove(id);
            } else {
                self.objects.conceal(id);
            }
        }
    }

    /// Decrypt the private token objects (user login). Their attributes are checked and kept
    /// encoded; templates are made when a caller needs one.
    fn reveal_private(&mut self) {
        let Some(aead) = self.user_aead() else { return };
        let uuid = self.meta.uuid;
        let mut opened = Vec::new();
        let mut damaged = Vec::new();
        for (id, o) in self.objects.iter() {
            if o.has_attrs() {
                continue;
            }
            if let Some(rec) = &o.record {
                match rec.open_plain(aead, &uuid) {
                    Some(p) => opened.push((*id, p)),
                    None => damaged.push(*id),
                }
            }
        }
        for (id, plain) in opened {
            self.objects.reveal(id, plain);
        }
        for id in damaged {
            log::error!(
                "{}: private object {id} does not authenticate (damaged); skipped",
                self.paths.dir.display()
            );
            self.drop_token_object(id);
        }
    }

    // ------------------------------------------------------------------ staleness
    //
    // Object calls check only the object log, by its size on the open descriptor (one `lseek`):
    // every change a Klyuch writer makes is an append, and a log that is replaced (compaction)
    // or left behind (re-initialisation) gets a superseded marker first, which sends readers
    // to the metadata and the path. The metadata is checked (one `stat`) where it matters: token
    // information, login and PINs, before the log is first read, and by every writer.

    /// Bring the metadata and (if read) the object log up to date with the files.
    pub fn sync(&mut self) -> Result<()> {
        self.sync_meta()?;
        if self.log.is_some() {
            self.sync_log()?;
        }
        Ok(())
    }

    /// Bring the objects up to date (reading the log if it was not read yet): one `lseek` when
    /// nothing changed.
    pub fn sync_objects(&mut self) -> Result<()> {
        if self.log.is_none() {
            return self.ensure_loaded();
        }
        self.sync_log()
    }

    fn sync_log(&mut self) -> Result<()> {
        let Some(log) = &self.log else { return Ok(()) };
        match log.check()? {
            Change::None => Ok(()),
            Change::Grown => {
                let lock = self.lock_handle();
                let _g = FileLock::shared(&lock)?;
                self.catch_up()
            }
            Change::Replaced => {
                let lock = self.lock_handle();
                let _g = FileLock::shared(&lock)?;
                self.sync_meta()?;
                self.reload_log()
            }
        }
    }

    fn sync_meta(&mut self) -> Result<()> {
        match Stamp::path(&self.paths.meta())? {
            Some(s) if s == self.meta_stamp => Ok(()),
            None => Err(Error::with(
                CKR_DEVICE_ERROR,
                format!("{}: the token metadata is gone", self.paths.dir.display()),
            )),
            Some(_) => self.reload_meta(),
        }
    }

    /// Read the metadata file again (after a change seen by `stat`, or under the exclusive lock
    /// before changing it).
    pub fn reload_meta(&mut self) -> Result<()> {
        let (meta, stamp) = self.paths.read_meta()?;
        if meta.uuid != self.meta.uuid {
            log::info!(
                "{}: the token was re-initialised by another process",
                self.paths.dir.display()
            );
            self.reset(meta, stamp);
        } else {
            self.pub_aead = Aead::new(&meta.k_pub);
            self.meta = meta;
            self.meta_stamp = stamp;
        }
        Ok(())
    }

    /// Forget everything of the old incarnation (after a re-initialisation).
    pub fn reset(&mut self, meta: Meta, stamp: Stamp) {
        self.pub_aead = Aead::new(&meta.k_pub);
        self.last_seq = meta.seq_base;
        self.meta = meta;
        self.meta_stamp = stamp;
        self.tok = None;
        self.login = None;
        self.log = None;
        self.objects = Table::default();
        self.tombstones.clear();
        self.live_bytes = 0;
        self.ro_failures = [0; 2];
    }

    /// Read the object log if it has not been read yet (the metadata first: it names the log).
    pub fn ensure_loaded(&mut self) -> Result<()> {
        if self.log.is_some() {
            return Ok(());
        }
        let lock = self.lock_handle();
        let _g = FileLock::shared(&lock)?;
        self.sync_meta()?;
        self.reload_log()
    }

    /// (Re)read the whole log (first use, or another process compacted it). Objects whose
    /// record did not change keep their decrypted attributes.
    fn reload_log(&mut self) -> Result<()> {
        let path = self.paths.log(&self.meta.uuid);
        self.log = Some(Log::open(path, true, !self.write_protected)?);
        let before: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, o)| o.is_token())
            .map(|(id, _)| *id)
            .collect();
        if before.is_empty() {
            return self.catch_up();
        }
        let mut seen = IdMap::default();
        if self.read_appended(Some(&mut seen))? == Read::Superseded {
            // Replaced again meanwhile: start over from the path.
            return self.follow_marker();
        }
        for id in before {
            if !seen.contains_key(&id) {
                // Gone from the compacted log: deleted by another process.
                self.drop_token_object(id);
            }
        }
        Ok(())
    }

    /// Read and apply what was appended since the last read (a lock is held by the caller),
    /// following a superseded marker to the new log.
    fn catch_up(&mut self) -> Result<()> {
        match self.read_appended(None)? {
            Read::Done => Ok(()),
            Read::Superseded => self.follow_marker(),
        }
    }

    /// The log this process reads was replaced or left behind: take the metadata and the log
    /// the folder has now (a lock is held by the caller).
    fn follow_marker(&mut self) -> Result<()> {
        self.sync_meta()?;
        // After a re-initialisation `reset` forgot everything; else a compaction: objects
        // whose record is still there keep their attributes.
        self.reload_log()
    }

    /// Is a superseded marker real: was the token re-initialised (the metadata names another
    /// incarnation), or does the path name another file? A marker left by a crash before the
    /// rename is neither.
    fn marker_is_real(&mut self) -> Result<bool> {
        let uuid = self.meta.uuid;
        self.sync_meta()?;
        if self.meta.uuid != uuid || self.log.is_none() {
            return Ok(true);
        }
        match &self.log {
            Some(log) => Ok(!log.path_names_this_file()?),
            None => Ok(true),
        }
    }

    /// Read the bytes appended since the last read and apply their records; `seen` collects the
    /// ids of the objects whose records were seen. Stops at a real superseded marker.
    fn read_appended(&mut self, mut seen: Option<&mut IdMap<ObjectId, ()>>) -> Result<Read> {
        let Some(log) = self.log.as_mut() else {
            return Ok(Read::Done);
        };
        let new = log.read_new()?;
        let scan = format::scan(&new);
        let base = log.valid_end;
        let valid = scan.valid_end(new.len());
        let path = log.path.clone();
        for (a, b) in &scan.damaged {
            log::error!(
                "{}: bytes {}..{} are damaged and were skipped",
                path.display(),
                base + *a as u64,
                base + *b as u64
            );
        }
        if let Some(t) = scan
            .tail
            .filter(|t| log.warned_tail != Some(base + *t as u64))
        {
            log.warned_tail = Some(base + t as u64);
            log::warn!(
                "{}: {} bytes at the end hold no intact record (an interrupted write or damage)",
                path.display(),
                new.len() - t
            );
        }
        log.consumed(valid);
        if base == 0 {
            // A first read: about one object per frame.
            self.objects.reserve(scan.frames.len());
        }
        for f in &scan.frames {
            if f.kind != format::KIND_RECORDS {
                log::error!("{}: unexpected frame kind {}", path.display(), f.kind);
                continue;
            }
            let Some(records) = format::decode_records_in(&new, f.body) else {
                log::error!(
                    "{}: a record frame at {} does not decode; skipped",
                    path.display(),
                    base + f.offset as u64
                );
                continue;
            };
            for r in records {
                if r.op == OP_SUPERSEDED {
                    if !r.open_header(&self.pub_aead, &self.meta.uuid) {
                        log::error!(
                            "{}: a superseded marker does not authenticate; skipped",
                            path.display()
                        );
                    } else if self.marker_is_real()? {
                        return Ok(Read::Superseded);
                    }
                    continue;
                }
                if let Some(seen) = seen.as_deref_mut() {
                    seen.insert(r.id, ());
                }
                self.apply(r);
            }
        }
        Ok(Read::Done)
    }

    fn drop_token_object(&mut self, id: ObjectId) {
        if let Some(o) = self.objects.remove(id)
            && let Some(r) = &o.record
        {
            self.live_bytes = self.live_bytes.saturating_sub(r.size() as u64);
        }
    }

    /// Apply one record read from the log.
    fn apply(&mut self, r: SealedRecord) {
        if r.seq > MAX_SEQ || r.id > MAX_SEQ || r.seq < r.id {
            log::error!(
                "{}: a record with impossible numbers; skipped",
                self.paths.dir.display()
            );
            return;
        }
        let uuid = self.meta.uuid;
        match r.op {
            OP_MARK | OP_DELETE => {
                if !r.open_header(&self.pub_aead, &uuid) {
                    log::error!(
                        "{}: a record does not authenticate (damaged or foreign); skipped",
                        self.paths.dir.display()
                    );
                    return;
                }
                self.last_seq = self.last_seq.max(r.seq);
                if r.op == OP_DELETE {
                    if self.objects.get(r.id).is_some_and(|o| o.seq() < r.seq) {
                        self.drop_token_object(r.id);
                    }
                    let t = self.tombstones.entry(r.id).or_insert(0);
                    *t = (*t).max(r.seq);
                }
            }
            OP_PUT => {
                if self.tombstones.get(&r.id).is_some_and(|&t| t >= r.seq)
                    || self.objects.get(r.id).is_some_and(|o| o.seq() >= r.seq)
                {
                    return; // superseded
                }
                let key = if r.private {
                    self.user_aead()
                } else {
                    Some(&self.pub_aead)
                };
                let plain = match key {
                    Some(k) => match r.open_plain(k, &uuid) {
                        Some(p) => Some(p),
                        None => {
                            log::error!(
                                "{}: object {} (version {}) does not authenticate (damaged or \
                                 foreign); skipped",
                                self.paths.dir.display(),
                                r.id,
                                r.seq
                            );
                            return;
                        }
                    },
                    None => None,
                };
                self.last_seq = self.last_seq.max(r.seq);
                let id = r.id;
                self.put_token_object(id, Obj::read(r, plain));
            }
            _ => log::error!("{}: unknown record type; skipped", self.paths.dir.display()),
        }
    }

    fn put_token_object(&mut self, id: ObjectId, o: Obj) {
        self.drop_token_object(id);
        self.live_bytes += o.record.as_ref().map_or(0, |r| r.size() as u64);
        self.objects.put(id, o);
    }

    // ------------------------------------------------------------------ writing

    /// Change the metadata: under the exclusive lock, read it fresh, let `f` change it, write it
    /// back atomically. `f` returns `Ok(false)` to write nothing.
    pub fn update_meta(&mut self, f: impl FnOnce(&mut Meta) -> Result<bool>) -> Result<()> {
        self.check_writable()?;
        let lock = self.lock_handle();
        let _g = FileLock::exclusive(&lock)?;
        self.reload_meta()?;
        let mut m = self.meta.clone();
        if f(&mut m)? {
            self.paths.write_meta(&m)?;
            self.reload_meta()?;
        }
        Ok(())
    }

    /// Write records: under the exclusive lock, catch up with other processes, let `build`
    /// decide on the up-to-date state, then append one frame (all records or none) with fsync.
    /// Returns the ids of the new objects.
    pub fn write(
        &mut self,
        build: impl FnOnce(&mut Ready) -> Result<Vec<Pending>>,
    ) -> Result<Vec<ObjectId>> {
        self.check_writable()?;
        self.ensure_loaded()?;
        let lock = self.lock_handle();
        let _g = FileLock::exclusive(&lock)?;
        self.catch_up_exclusive()?;
        let pending = build(self)?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let uuid = self.meta.uuid;
        let mut seq = self.last_seq;
        let mut records = Vec::with_capacity(pending.len());
        let mut applied: Vec<(SealedRecord, Option<Template>)> =
            Vec::with_capacity(records.capacity());
        let mut new_ids = Vec::new();
        for p in pending {
            seq += 1;
            if seq > MAX_SEQ {
                return Err(Error::with(CKR_DEVICE_MEMORY, "object numbers exhausted"));
            }
            let (rec, attrs) = match p {
                Pending::New { private, attrs } => {
                    new_ids.push(seq);
                    (self.seal_put(seq, seq, private, &attrs)?, Some(attrs))
                }
                Pending::Update { id, attrs } => {
                    let private = self
                        .objects
                        .get(id)
                        .map(|o| o.private)
                        .ok_or_else(|| Error::new(CKR_OBJECT_HANDLE_INVALID))?;
                    (self.seal_put(seq, id, private, &attrs)?, Some(attrs))
                }
                Pending::Delete { id } => (
                    SealedRecord::header_only(&self.pub_aead, &uuid, seq, id, OP_DELETE)?,
                    None,
                ),
            };
            records.push(rec.clone());
            applied.push((rec, attrs));
        }
        let frame = format::records_frame(&records)?;
        let log = self
            .log
            .as_mut()
            .ok_or_else(|| Error::general("object log not open"))?;
        log.append(&frame)?;
        self.last_seq = seq;
        for (rec, attrs) in applied {
            if rec.op == OP_DELETE {
                self.drop_token_object(rec.id);
                self.tombstones.insert(rec.id, rec.seq);
            } else {
                let id = rec.id;
                self.put_token_object(id, Obj::written(rec, attrs.unwrap_or_default()));
            }
        }
        self.maybe_compact();
        Ok(new_ids)
    }

    fn seal_put(&self, seq: u64, id: u64, private: bool, attrs: &Template) -> Result<SealedRecord> {
        let aead = if private {
            self.user_aead().ok_or_else(|| {
                Error::with(
                    CKR_USER_NOT_LOGGED_IN,
                    "private objects need the user logged in",
                )
            })?
        } else {
            &self.pub_aead
        };
        SealedRecord::put(aead, &self.meta.uuid, seq, id, private, attrs)
    }

    /// Bytes of superseded records in the log.
    pub fn dead_bytes(&self) -> u64 {
        self.log
            .as_ref()
            .map_or(0, |l| l.valid_end.saturating_sub(self.live_bytes))
    }

    fn maybe_compact(&mut self) {
        let dead = self.dead_bytes();
        if dead >= self.compact_min_dead
            && dead > self.live_bytes
            && let Err(e) = self.compact_locked()
        {
            // Not fatal: the log stays as it is and still holds everything.
            log::warn!("{}: compaction failed: {e}", self.paths.dir.display());
        }
    }

    /// Rewrite the log with only the live records (exclusive lock held, log caught up).
    fn compact_locked(&mut self) -> Result<()> {
        let mut ids: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, o)| o.is_token())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let mut buf = Vec::with_capacity(self.live_bytes as usize + 256);
        for id in ids {
            if let Some(r) = self.objects.get(id).and_then(|o| o.record.as_ref()) {
                buf.extend_from_slice(&format::records_frame(std::slice::from_ref(r))?);
            }
        }
        let mark =
            SealedRecord::header_only(&self.pub_aead, &self.meta.uuid, self.last_seq, 0, OP_MARK)?;
        buf.extend_from_slice(&format::records_frame(&[mark])?);
        let marker = superseded_frame(&self.pub_aead, &self.meta.uuid)?;
        let dir = self.paths.dir.clone();
        let log = self
            .log
            .as_mut()
            .ok_or_else(|| Error::general("object log not open"))?;
        let before = log.valid_end;
        // Readers that have the old file open learn from it that it is replaced. (A crash
        // between the two leaves a stale marker, which readers recognise and skip.)
        log.append_marker(&marker)?;
        log.replace(&dir, &buf)?;
        self.tombstones.clear();
        log::info!(
            "{}: compacted the object log from {before} to {} bytes",
            dir.display(),
            buf.len()
        );
        Ok(())
    }

    /// `CKR_TOKEN_WRITE_PROTECTED` when this process cannot write the token's files.
    pub fn check_writable(&self) -> Result<()> {
        if self.write_protected {
            Err(write_protected_error())
        } else {
            Ok(())
        }
    }

    /// Compact now (under the exclusive lock).
    pub fn compact(&mut self) -> Result<()> {
        self.check_writable()?;
        self.ensure_loaded()?;
        let lock = self.lock_handle();
        let _g = FileLock::exclusive(&lock)?;
        self.catch_up_exclusive()?;
        self.compact_locked()
    }

    /// Under the exclusive lock, before a write: the metadata and the log as they are now
    /// (writers also check the path, one `stat`, so they never append to a replaced file even
    /// without a marker).
    fn catch_up_exclusive(&mut self) -> Result<()> {
        self.sync_meta()?;
        match &self.log {
            // The token was re-initialised meanwhile.
            None => self.reload_log(),
            Some(log) if !log.path_names_this_file()? || log.check()? == Change::Replaced => {
                self.reload_log()
            }
            Some(_) => self.catch_up(),
        }
    }

    /// Tell processes that read the current log that it is left behind (re-initialisation;
    /// exclusive lock held; `old` is the metadata as it is on disk). This process reads the log
    /// the metadata names from now on.
    pub fn leave_log(&mut self, old: &Meta) -> Result<()> {
        self.check_writable()?;
        let frame = superseded_frame(&Aead::new(&old.k_pub), &old.uuid)?;
        store::append_marker(&self.paths.log(&old.uuid), &frame)?;
        self.log = None;
        Ok(())
    }

    /// Is an object visible to the current login?
    pub fn visible(&self, id: ObjectId) -> Option<&Obj> {
        let o = self.objects.get(id)?;
        if o.private && self.login != Some(UserType::User) {
            return None;
        }
        o.has_attrs().then_some(o)
    }

    /// The attributes of a visible object, or `rv`.
    pub fn attrs(&self, id: ObjectId, rv: CK_RV) -> Result<&Template> {
        self.visible(id)
            .and_then(|o| o.attrs())
            .ok_or_else(|| Error::new(rv))
    }

    pub fn log_size(&self) -> u64 {
        self.log.as_ref().map_or(0, |l| l.valid_end)
    }
}
