//! Files of one token folder, and the store folder.
//!
//! ```text
//! <store>/                     0700, created on demand
//!   .lock                      flock: creating tokens (slot numbers)
//!   <serial>/                  0700, one per token
//!     lock                     flock: shared to read, exclusive to write
//!     meta                     two identical frames of `Meta` (tmp + fsync + rename + dir fsync)
//!     objects-<uuid>.log       append-only log of record frames (append + fdatasync; compacted
//!                              by tmp + fsync + rename + dir fsync)
//! ```

use crate::format::Meta;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use token_api::ck::*;
use token_api::{Error, Result};

/// An I/O error as a PKCS#11 error: a full disk, a quota or a file-size limit is
/// `CKR_DEVICE_MEMORY`, a read-only file system `CKR_TOKEN_WRITE_PROTECTED`, anything else
/// `CKR_DEVICE_ERROR`.
pub fn io_err(what: &str, path: &Path, e: io::Error) -> Error {
    // ENOSPC 28, EFBIG 27, EDQUOT 122, EROFS 30 (Linux, asm-generic/errno-base.h and errno.h).
    let full = matches!(e.raw_os_error(), Some(27) | Some(28) | Some(122))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
        );
    let rv = if full {
        CKR_DEVICE_MEMORY
    } else if e.raw_os_error() == Some(30) || e.kind() == io::ErrorKind::ReadOnlyFilesystem {
        CKR_TOKEN_WRITE_PROTECTED
    } else {
        CKR_DEVICE_ERROR
    };
    Error::with(rv, format!("{what} {}: {e}", path.display()))
}

/// Does an error say that this process may not write there (a read-only file system, or file
/// permissions)? EROFS 30, EACCES 13, EPERM 1 (Linux).
pub fn is_no_write(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(30) | Some(13) | Some(1))
        || matches!(
            e.kind(),
            io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied
        )
}

/// Does the path have any write permission bit (a folder or file made read-only with `chmod
/// a-w` has none)? A missing path counts as writable. The owner's intent counts, not who this
/// process is: root, which could write anyway, also treats such a store as write-protected.
pub fn mode_writable(p: &Path) -> bool {
    match fs::metadata(p) {
        Ok(md) => md.permissions().mode() & 0o222 != 0,
        Err(_) => true,
    }
}

/// Open an existing token folder's lock file for writing, or only for reading where this
/// process may not write (a read-only mount, or permissions). `flock` works on either.
/// Returns the file and whether it could be opened for writing.
pub fn open_token_lock(p: &Path) -> Result<(File, bool)> {
    match OpenOptions::new().read(true).write(true).open(p) {
        Ok(f) => Ok((f, true)),
        Err(e) if is_no_write(&e) => File::open(p)
            .map(|f| (f, false))
            .map_err(|e| io_err("cannot open lock file", p, e)),
        // A token folder made by an older version, or a lost lock file: make it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((open_lock_file(p)?, true)),
        Err(e) => Err(io_err("cannot open lock file", p, e)),
    }
}

/// What identifies a version of a file cheaply (one `stat`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    /// For folders: changes when a subfolder comes or goes, even within one clock tick.
    pub nlink: u64,
}

impl Stamp {
    pub fn of(md: &fs::Metadata) -> Stamp {
        Stamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime_ns: md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
            ctime_ns: md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128,
            nlink: md.nlink(),
        }
    }

    /// The stamp of a path, `None` if it does not exist.
    pub fn path(p: &Path) -> Result<Option<Stamp>> {
        match fs::metadata(p) {
            Ok(md) => Ok(Some(Stamp::of(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot stat", p, e)),
        }
    }

    pub fn same_file(&self, other: &Stamp) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Create a folder (and its parents) with mode 0700.
pub fn create_dir_0700(p: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| io_err("cannot create folder", p, e))
}

/// fsync a folder (makes a rename or a new entry durable).
pub fn sync_dir(p: &Path) -> Result<()> {
    File::open(p)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync folder", p, e))
}

/// Open (creating if needed, 0600) a lock file.
pub fn open_lock_file(p: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(p)
        .map_err(|e| io_err("cannot open lock file", p, e))
}

/// An flock held on a file; released on drop.
pub struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    pub fn exclusive(f: &'a File) -> Result<Self> {
        f.lock()
            .map_err(|e| Error::with(CKR_DEVICE_ERROR, format!("cannot lock the store: {e}")))?;
        Ok(FileLock(f))
    }
    pub fn shared(f: &'a File) -> Result<Self> {
        f.lock_shared()
            .map_err(|e| Error::with(CKR_DEVICE_ERROR, format!("cannot lock the store: {e}")))?;
        Ok(FileLock(f))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Write `data` to `dest` atomically: a temporary file in the same folder (0600), fsync, rename,
/// fsync of the folder. A crash leaves either the old or the new file.
pub fn write_atomic(dir: &Path, dest: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| io_err("cannot create a temporary file in", dir, e))?;
    tmp.as_file_mut()
        .write_all(data)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| io_err("cannot write", tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| io_err("cannot rename onto", dest, e.error))?;
    sync_dir(dir)
}

/// Remove leftovers of interrupted atomic writes (call with the folder's exclusive lock held).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with(".tmp-") {
            log::info!("removing leftover temporary file {}", e.path().display());
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Read a whole file.
pub fn read_file(p: &Path) -> Result<Vec<u8>> {
    let mut f = File::open(p).map_err(|e| io_err("cannot open", p, e))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| io_err("cannot read", p, e))?;
    Ok(buf)
}

/// The paths of one token folder.
#[derive(Clone, Debug)]
pub struct TokenPaths {
    pub dir: PathBuf,
}

impl TokenPaths {
    pub fn new(dir: PathBuf) -> Self {
        TokenPaths { dir }
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn meta(&self) -> PathBuf {
        self.dir.join("meta")
    }
    pub fn log(&self, uuid: &[u8; 16]) -> PathBuf {
        self.dir.join(format!("objects-{}.log", hex(uuid)))
    }

    /// Read and parse the metadata. `CKR_DEVICE_ERROR` if no intact copy is left.
    pub fn read_meta(&self) -> Result<(Meta, Stamp)> {
        let p = self.meta();
        let mut f = File::open(&p).map_err(|e| io_err("cannot open", &p, e))?;
        let md = f.metadata().map_err(|e| io_err("cannot stat", &p, e))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| io_err("cannot read", &p, e))?;
        match Meta::decode(&buf) {
            Some(m) => Ok((m, Stamp::of(&md))),
            None => Err(Error::with(
                CKR_DEVICE_ERROR,
                format!("{}: damaged token metadata (no intact copy)", p.display()),
            )),
        }
    }

    /// Replace the metadata atomically (exclusive lock held by the caller). On a full disk,
    /// when the new contents have the old length (a PIN failure count going up or back to 0),
    /// they are written in place instead (see [`TokenPaths::write_meta_in_place`]), so that a
    /// login can still count its attempt.
    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        remove_stale_temporaries(&self.dir);
        let data = meta.encode()?;
        match write_atomic(&self.dir, &self.meta(), &data) {
            Err(e) if e.rv() == CKR_DEVICE_MEMORY => match self.write_meta_in_place(&data) {
                Ok(true) => Ok(()),
                Ok(false) => Err(e),
                Err(e2) => {
                    log::warn!("{e2}");
                    Err(e)
                }
            },
            r => r,
        }
    }

    /// Overwrite the metadata file in place, its first copy, sync, then its second copy, sync.
    /// Needs no new block, so it works on a full disk; only when the length does not change
    /// (`Ok(false)` otherwise). A crash leaves the first copy new and intact, or the second
    /// copy old and intact, and [`Meta::decode`] takes the first intact copy: the old or the
    /// new metadata, never a mix.
    fn write_meta_in_place(&self, data: &[u8]) -> Result<bool> {
        let p = self.meta();
        let f = OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| io_err("cannot open", &p, e))?;
        let len = f
            .metadata()
            .map_err(|e| io_err("cannot stat", &p, e))?
            .len();
        let half = data.len() / 2;
        if len != data.len() as u64 || !data.len().is_multiple_of(2) || data[..half] != data[half..]
        {
            return Ok(false);
        }
        f.write_all_at(&data[..half], 0)
            .and_then(|_| f.sync_data())
            .and_then(|_| f.write_all_at(&data[half..], half as u64))
            .and_then(|_| f.sync_data())
            .map_err(|e| io_err("cannot rewrite", &p, e))?;
        log::warn!(
            "{}: the disk is full; the token metadata was rewritten in place",
            p.display()
        );
        Ok(true)
    }

    /// Remove object logs of earlier incarnations (exclusive lock held by the caller).
    pub fn remove_old_logs(&self, current: &[u8; 16]) {
        let keep = self.log(current);
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("objects-") && name.ends_with(".log") && e.path() != keep {
                log::info!("removing the object log of an earlier incarnation: {name}");
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The append-only object log of one token, as far as this process has read it.
///
/// Klyuch writers only ever append to a log, and announce a log they replace (compaction) or
/// leave behind (re-initialisation) with a last "superseded" record (see
/// [`crate::format::OP_SUPERSEDED`]). So whether anything changed is one `lseek` on the open
/// descriptor: the file's size against the end of what was read. No path lookup per call.
pub struct Log {
    pub path: PathBuf,
    file: File,
    /// (device, inode) of the open file, to tell whether the path still names it.
    id: (u64, u64),
    /// End of the intact part read so far; the next frame goes here (anything after it is a torn
    /// or damaged tail, cut off by the next writer).
    pub valid_end: u64,
    /// The tail already reported (so a lasting one is logged once).
    pub warned_tail: Option<u64>,
}

impl Log {
    /// Open the log (creating it, 0600, if `create`). `writable` false: open it for reading
    /// only (a write-protected token; it is never created then).
    pub fn open(path: PathBuf, create: bool, writable: bool) -> Result<Log> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .create(create && writable)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err("cannot open", &path, e))?;
        let md = file
            .metadata()
            .map_err(|e| io_err("cannot stat", &path, e))?;
        Ok(Log {
            path,
            file,
            id: (md.dev(), md.ino()),
            valid_end: 0,
            warned_tail: None,
        })
    }

    /// The size of the open file (one `lseek`; positioned reads and writes do not use the
    /// offset it moves).
    pub fn size(&self) -> Result<u64> {
        (&self.file)
            .seek(SeekFrom::End(0))
            .map_err(|e| io_err("cannot seek in", &self.path, e))
    }

    /// Has the open file changed since it was last read? `Grown` when there is anything after
    /// the intact part (new records, or a torn tail that is read again until a writer cuts it
    /// off: it may be a write in progress, seen without the lock); `Replaced` when the file is
    /// shorter than what was read (not something a Klyuch writer does: open the path again).
    pub fn check(&self) -> Result<Change> {
        let size = self.size()?;
        Ok(if size == self.valid_end {
            Change::None
        } else if size > self.valid_end {
            Change::Grown
        } else {
            Change::Replaced
        })
    }

    /// Does the path still name the open file? (One `stat` by path: for writers, and for a
    /// superseded marker.)
    pub fn path_names_this_file(&self) -> Result<bool> {
        Ok(Stamp::path(&self.path)?.is_some_and(|s| (s.dev, s.ino) == self.id))
    }

    /// Read everything after `valid_end` (call with a lock held). Returns the bytes; the caller
    /// scans them and calls [`Log::consumed`]. Records keep pointing into the buffer.
    pub fn read_new(&mut self) -> Result<Arc<Vec<u8>>> {
        let size = self.size()?;
        let mut bytes = Vec::new();
        if size > self.valid_end {
            let len = usize::try_from(size - self.valid_end)
                .map_err(|_| Error::with(CKR_DEVICE_ERROR, "object log too large"))?;
            bytes = vec![0u8; len];
            self.file
                .read_exact_at(&mut bytes, self.valid_end)
                .map_err(|e| io_err("cannot read", &self.path, e))?;
        }
        Ok(Arc::new(bytes))
    }

    /// Record that `n` bytes after the old `valid_end` are intact.
    pub fn consumed(&mut self, n: usize) {
        self.valid_end += n as u64;
    }

    /// Append one frame durably (exclusive lock held, log read up to its end first). A torn tail
    /// left by a crashed writer is cut off first. On failure the file is cut back, so nothing
    /// half-written stays behind and nothing already stored is touched.
    pub fn append(&mut self, frame: &[u8]) -> Result<()> {
        let end = self.valid_end;
        let r = (|| -> io::Result<()> {
            if self.file.metadata()?.len() != end {
                log::warn!(
                    "{}: cutting off {} bytes of a torn or damaged tail",
                    self.path.display(),
                    self.file.metadata()?.len().saturating_sub(end)
                );
                self.file.set_len(end)?;
            }
            self.file.write_all_at(frame, end)?;
            self.file.sync_data()
        })();
        if let Err(e) = r {
            let _ = self.file.set_len(end);
            let _ = self.file.sync_data();
            return Err(io_err("cannot write", &self.path, e));
        }
        self.valid_end = end + frame.len() as u64;
        Ok(())
    }

    /// Append the superseded marker (exclusive lock held, log read up to its end; a torn tail is
    /// cut off first), unsynced (see [`append_marker`]). The marker counts as read, so this
    /// process never cuts it off later.
    pub fn append_marker(&mut self, frame: &[u8]) -> Result<()> {
        let end = self.valid_end;
        if self.size()? != end {
            self.file
                .set_len(end)
                .map_err(|e| io_err("cannot cut", &self.path, e))?;
        }
        write_at_end(&self.file, &self.path, end, frame)?;
        self.valid_end = end + frame.len() as u64;
        Ok(())
    }

    /// Replace the log by `contents` (compaction; exclusive lock held). On success this `Log`
    /// reads the new file.
    pub fn replace(&mut self, dir: &Path, contents: &[u8]) -> Result<()> {
        remove_stale_temporaries(dir);
        write_atomic(dir, &self.path, contents)?;
        let mut fresh = Log::open(self.path.clone(), false, true)?;
        fresh.valid_end = fresh.size()?;
        *self = fresh;
        Ok(())
    }
}

/// Append `frame` at the current end of the log file at `path`, if there is one (exclusive lock
/// held): the superseded marker of a log about to be replaced or left behind. Not synced: it
/// only tells processes that have the file open (a crash takes them along, or leaves the
/// marker stale, which readers recognise). After a torn tail the frame is still found: readers
/// skip damaged bytes to the next intact frame.
pub fn append_marker(path: &Path, frame: &[u8]) -> Result<()> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot open", path, e)),
    };
    let end = file
        .metadata()
        .map_err(|e| io_err("cannot stat", path, e))?
        .len();
    write_at_end(&file, path, end, frame)
}

fn write_at_end(file: &File, path: &Path, end: u64, frame: &[u8]) -> Result<()> {
    file.write_all_at(frame, end).map_err(|e| {
        let _ = file.set_len(end);
        io_err("cannot write", path, e)
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Change {
    None,
    Grown,
    Replaced,
}

/// Create a new token folder atomically: build it under a temporary name, then rename it into
/// place, so other processes see all of it or nothing. Returns its path.
pub fn create_token_folder(store: &Path, meta: &Meta) -> Result<PathBuf> {
    create_token_folder_with(store, meta, &[])
}

/// [`create_token_folder`] with an object log that already holds records (a restored backup).
pub fn create_token_folder_with(store: &Path, meta: &Meta, log: &[u8]) -> Result<PathBuf> {
    // Leftovers of interrupted creations (the caller holds the store lock).
    if let Ok(rd) = fs::read_dir(store) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".new-") {
                log::info!("removing an unfinished token folder {}", e.path().display());
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(store)
        .map_err(|e| io_err("cannot create a folder in", store, e))?;
    let paths = TokenPaths::new(tmp.path().to_path_buf());
    let lock = open_lock_file(&paths.lock())?;
    lock.sync_all()
        .map_err(|e| io_err("cannot sync", &paths.lock(), e))?;
    let meta_path = paths.meta();
    let write = |p: &Path, data: &[u8]| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
            .map_err(|e| io_err("cannot create", p, e))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .map_err(|e| io_err("cannot write", p, e))
    };
    write(&meta_path, &meta.encode()?)?;
    write(&paths.log(&meta.uuid), log)?;
    sync_dir(tmp.path())?;
    let dest = store.join(&meta.serial);
    fs::rename(tmp.path(), &dest).map_err(|e| io_err("cannot rename onto", &dest, e))?;
    // The folder now lives under its final name: do not let TempDir remove it.
    let _ = tmp.keep();
    sync_dir(store)?;
    Ok(dest)
}

/// Read the metadata of every token folder in the store: (folder, meta). Folders without an
/// intact metadata file are logged and left out.
pub fn list_tokens(store: &Path) -> Result<Vec<(PathBuf, Meta)>> {
    let rd = match fs::read_dir(store) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot list", store, e)),
    };
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    names.sort();
    for dir in names {
        let paths = TokenPaths::new(dir.clone());
        match paths.read_meta() {
            Ok((m, _)) => out.push((dir, m)),
            Err(e) => log::error!("soft token folder {} skipped: {e}", dir.display()),
        }
    }
    Ok(out)
}
