//! # Klyuch soft token
//!
//! A SoftHSM-style file token: each token is a folder of the store
//! ([`token_api::config::Config::token_dir`]: `KLYUCH_TOKEN_DIR`, the configuration file's
//! `softtoken.dir`, or `~/.local/share/klyuch/tokens`), encrypted and integrity-protected at
//! rest, crash-safe, and shared safely by several processes at once.
//!
//! The module builds it with [`SoftTokenSource::new`] (or [`SoftTokenSource::factory`] for its
//! backend table) and uses it through the [`token_api::SlotSource`] and [`token_api::Token`]
//! traits.
//!
//! ## Slots
//!
//! Every token folder is one slot; its number (`SlotDesc::local`) is kept in the token's
//! metadata, so it is stable across restarts. One more slot holds an uninitialised token;
//! `C_InitToken` there creates a token folder (the store folder is created on demand, 0700, every
//! file 0600) and a new uninitialised slot appears: the SoftHSM convention that
//! `pkcs11-tool --init-token` and `softhsm2-util`-style scripts expect. `C_InitToken` on an
//! initialised token, with the right SO PIN, re-initialises it in place: all objects are gone,
//! the user PIN is not set, the slot stays.
//!
//! ## Files
//!
//! ```text
//! <store>/.lock                      flock while creating a token (slot numbers)
//! <store>/<serial>/lock              flock: shared to read, exclusive to write
//! <store>/<serial>/meta              token metadata, two identical frames
//! <store>/<serial>/objects-<id>.log  the objects: an append-only log of frames
//! ```
//!
//! A *frame* is `"KLY1" | kind | 0 0 0 | length (u32 LE) | body | SHA-256(header and body)[..16]`;
//! bodies are [`postcard`](https://docs.rs/postcard) encodings. An object frame holds one or more
//! *records*; each record is one version of one object (or its deletion), sealed with
//! AES-256-GCM. The record's additional data binds it to the token incarnation (a random id made
//! at every initialisation), to its object id, its sequence number, its operation and its key,
//! so a record cannot be moved to another token or object, or passed off as another version.
//! The highest sequence number of an object wins, so replaying an old record changes nothing.
//!
//! ### Why an append-only log
//!
//! The issue allowed one file per object written with tmp + fsync + rename + folder fsync, or a
//! log of self-authenticating records compacted the same way. The log was chosen because:
//!
//! * **Opening is one sequential read**, not one `open` per object: a token with 10,000 objects
//!   opens in milliseconds (the figures are printed by `cargo test -p softtoken --release --test
//!   perf -- --ignored --nocapture`).
//! * **Other processes' changes are read incrementally**: the staleness check is one `stat` of
//!   the log (size, mtime, inode); when it grew, only the new bytes are read and applied. No
//!   re-reading of the store per call (SoftHSM's cause of slow finds), no reload.
//! * **Crash safety is simple**: a write is one frame appended and `fdatasync`ed under the
//!   exclusive lock before `C_CreateObject` returns. A process killed mid-write leaves a torn
//!   last frame, which fails its checksum and is cut off by the next writer; every earlier frame
//!   is untouched. A key pair is one frame, so it is stored whole or not at all.
//! * **Compaction** (when superseded records exceed both 1 MiB and the live records) writes the
//!   live records to a temporary file, fsyncs it, renames it over the log and fsyncs the
//!   folder: a crash leaves the old log or the new one. Other processes notice the new inode and
//!   re-read it, keeping every object whose record did not change.
//!
//! The metadata (PIN wraps, failure counters, label, slot) is small and changes rarely, so it is
//! one file replaced with tmp + fsync + rename + folder fsync. It holds its frame twice, so one
//! damaged byte leaves an intact copy.
//!
//! ## Keys and threat model
//!
//! * A random 256-bit **token key** seals private objects (`CKA_PRIVATE = true`). It is stored
//!   only wrapped (AES-256-GCM) under keys derived from the user PIN and from the SO PIN
//!   (PBKDF2-HMAC-SHA-256, random 16-byte salt, the iteration count stored with the wrap:
//!   `softtoken.kdf_iterations`, default 200,000; a wrap with fewer iterations than configured
//!   is redone at the next successful login). Without a PIN, private objects, their attribute
//!   values and the keys in them cannot be read from the files, and they are invisible to
//!   sessions before the user logs in.
//! * Public objects must be readable before login, so they are sealed with a **public-object
//!   key** kept in the clear in the metadata. Its AES-GCM tags detect any damage, but anyone
//!   who can read the files can read public objects (which are public by definition) and anyone
//!   who can write them can forge public objects. The file permissions (0700/0600) are the
//!   protection here, as for SoftHSM.
//! * **Keys with `CKA_PRIVATE = false`** (browsers create such keys to use them without a login)
//!   are public objects: their key material is protected only by the file permissions. Create
//!   keys private unless an application needs otherwise; Klyuch's default for private and
//!   secret keys is `CKA_PRIVATE = true`.
//! * Integrity: every frame has a SHA-256 checksum and every record an AEAD tag; a flipped byte
//!   anywhere is detected and the damaged part is never returned as data. A damaged object is
//!   skipped with a log line, and the rest of the token keeps working. A file that someone with
//!   write access replaces by an older copy (a rollback) cannot be detected: that needs storage
//!   outside the attacker's reach, which a file token does not have.
//! * The PIN **failure counters** live in the metadata, so a new process cannot reset them.
//!   As on a smart card, every attempt is counted durably *before* the PIN is checked and the
//!   count is reset when it was right, so killing the process mid-check never yields an
//!   uncounted guess. On a full disk the metadata is rewritten in place (same length, one
//!   copy after the other, each synced), so attempts are still counted; where even that fails
//!   no PIN is checked (`CKR_DEVICE_MEMORY`). Someone who can write the
//!   files can of course reset them (or copy the files and attack the PBKDF2 wraps offline):
//!   the lockout protects against guessing through the PKCS#11 interface.
//!
//! ## Full disks and read-only stores
//!
//! A write that finds no space (ENOSPC, EDQUOT, EFBIG) fails with `CKR_DEVICE_MEMORY` and leaves
//! the files as they were (a half-appended frame is cut back). Objects stay readable, and logins
//! work: the metadata (failure counter) is then rewritten in place, which needs no new block
//! (tests/faults.rs fills a small tmpfs).
//!
//! A token folder this process cannot write (a read-only mount, or a folder, lock file or log
//! without any write permission bit) opens **write-protected**: `CKF_WRITE_PROTECTED`, only
//! read-only sessions (`C_OpenSession` with `CKF_RW_SESSION` gives `CKR_TOKEN_WRITE_PROTECTED`),
//! and every change of the token (token objects, PINs, re-initialisation) gives
//! `CKR_TOKEN_WRITE_PROTECTED`. Objects are readable, keys usable, session objects work. Wrong
//! PINs are counted in the process on top of the stored count (a PIN locked in the files stays
//! locked); the count cannot be made durable, but whoever can use a read-only store can also
//! copy it and attack the PIN wraps offline, where the KDF cost is the only limit anyway.
//!
//! ## Several processes
//!
//! Readers take a shared `flock` on `lock` while reading new bytes; writers take it exclusive,
//! read what others appended, decide on that up-to-date state (so two processes changing one
//! object both count, and two processes creating objects both keep theirs), append, fsync and
//! release. New object ids are the sequence numbers of their first record, unique per token.
//!
//! ## Objects
//!
//! The object model follows PKCS#11 3.0 §4 (see [`schema`]): data objects, X.509 certificates
//! (subject, issuer, serial number and validity taken from the DER when not given), public,
//! private and secret keys (RSA, EC, EdDSA, GOST R 34.10-2012, generic secret, AES, GOST
//! ciphers); token and session objects. Defaults: private and secret keys are private, sensitive
//! and unextractable; data, certificates and public keys are public.
//!
//! ## Performance
//!
//! Opening the store reads only the metadata of each token; a token's object log is read at
//! its first object call, private records are decrypted at the user's login, and a hash index
//! per attribute type (`CKA_ID`, `CKA_LABEL`, `CKA_CLASS`, `CKA_KEY_TYPE`, `CKA_SUBJECT`,
//! `CKA_SERIAL_NUMBER`, `CKA_APPLICATION`, `CKA_OBJECT_ID`) is built at the first search that
//! uses it and then kept up to date. After that a call costs one `stat` of the metadata and of
//! the log. Measured on the 2-core development machine (release build, other builds running;
//! `cargo test -p softtoken --release --test perf -- --ignored --nocapture`), data objects with
//! half of them private:
//!
//! | objects | module start | start + first find | login + decrypt | find by id | find by label |
//! |---:|---:|---:|---:|---:|---:|
//! | 0 | 0.02 ms | 0.04 ms | 8 ms | 3 µs | 5 µs |
//! | 100 | 0.03 ms | 0.19 ms | 15 ms | 4 µs | 5 µs |
//! | 1,000 | 0.02 ms | 0.97 ms | 3 ms | 3 µs | 3 µs |
//! | 10,000 | 0.03 ms | 10.4 ms | 11 ms | 4 µs | 6 µs |
//!
//! (Login includes PBKDF2 with the test's 1,000 iterations and two fsynced metadata writes;
//! with 10,000 public objects the first find takes about 22 ms.) SoftHSMv2 on the same kind of
//! machine: about 140 ms per find by `CKA_ID` among 10,000 objects, 300–430 ms module start.
#![forbid(unsafe_code)]

pub mod backup;
pub mod format;
pub mod objects;
mod ops;
pub mod schema;
pub mod seal;
mod source;
mod state;
pub mod store;
mod token;

pub use source::SoftTokenSource;
pub use token::{SoftToken, Stats};
