//! Change detection without a path lookup per call: object calls look only at the size of the
//! open object log, so a log that is replaced (compaction) or left behind (re-initialisation)
//! must announce it with a superseded marker. These tests use two instances of the store in one
//! process (each has its own state and descriptors, like two processes) and only object calls
//! that do not look at the metadata (`C_GetAttributeValue`), so only the marker can tell.

mod common;

use common::*;
use softtoken::format::{self, OP_SUPERSEDED, SealedRecord};
use softtoken::seal::Aead;
use softtoken::store::TokenPaths;
use std::io::Write;
use std::path::{Path, PathBuf};
use token_api::ck::*;
use token_api::{AttrRead, SlotSource, Template, Token, UserType};

fn log_path(dir: &Path) -> PathBuf {
    files(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap()
}

fn token_dir(dir: &Path) -> PathBuf {
    log_path(dir).parent().unwrap().to_path_buf()
}

/// Append a superseded marker to the current log, as a compaction or re-initialisation that
/// crashed before its rename would leave it.
fn append_stale_marker(dir: &Path, key: Option<[u8; 32]>) {
    let paths = TokenPaths::new(token_dir(dir));
    let meta = paths.read_meta().unwrap().0;
    let aead = Aead::new(&key.unwrap_or(meta.k_pub));
    let r = SealedRecord::header_only(&aead, &meta.uuid, 0, 0, OP_SUPERSEDED).unwrap();
    let frame = format::records_frame(&[r]).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(paths.log(&meta.uuid))
        .unwrap();
    f.write_all(&frame).unwrap();
}

fn read(t: &std::sync::Arc<dyn Token>, id: u64, ty: CK_ATTRIBUTE_TYPE) -> Option<Vec<u8>> {
    match t.get_attributes(&RW, id, &[ty]) {
        Ok(mut v) => match v.remove(0) {
            AttrRead::Value(v) => Some(v.to_vec()),
            other => panic!("{other:?}"),
        },
        Err(e) => {
            assert_eq!(e.rv(), CKR_OBJECT_HANDLE_INVALID);
            None
        }
    }
}

fn set_value(t: &std::sync::Arc<dyn Token>, id: u64, v: &[u8]) {
    let mut ch = Template::new();
    ch.set(CKA_VALUE, v.to_vec());
    t.set_attributes(&RW, id, &ch).unwrap();
}

#[test]
fn a_reader_with_the_old_log_open_follows_a_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    login_user(&ta);
    let keep = ta
        .create_object(&RW, &data("keep", b"k", true, true))
        .unwrap();
    let gone = ta
        .create_object(&RW, &data("gone", b"g", true, false))
        .unwrap();
    let changing = ta
        .create_object(&RW, &data("changing", b"0", true, false))
        .unwrap();
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    login_user(&tb);
    assert_eq!(read(&tb, gone, CKA_VALUE).unwrap(), b"g");
    let old_log = std::fs::metadata(log_path(tmp.path())).unwrap();

    for i in 0..20u32 {
        set_value(&ta, changing, &i.to_le_bytes());
    }
    ta.destroy_object(&RW, gone).unwrap();
    a.soft_token(0).unwrap().compact().unwrap();
    // The compacted log is another file: b, which has the old one open, learns it from the
    // marker at the old one's end.
    let new_log = std::fs::metadata(log_path(tmp.path())).unwrap();
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&old_log),
        std::os::unix::fs::MetadataExt::ino(&new_log)
    );
    let n = ta
        .create_object(&RW, &data("after", b"n", true, false))
        .unwrap();
    assert_eq!(read(&tb, changing, CKA_VALUE).unwrap(), 19u32.to_le_bytes());
    assert_eq!(read(&tb, gone, CKA_VALUE), None);
    assert_eq!(read(&tb, keep, CKA_VALUE).unwrap(), b"k");
    assert_eq!(read(&tb, n, CKA_VALUE).unwrap(), b"n");
    // And b writes to the new log, where a finds it.
    set_value(&tb, n, b"from b");
    assert_eq!(read(&ta, n, CKA_VALUE).unwrap(), b"from b");
    assert_eq!(contents(&ta), contents(&tb));
}

#[test]
fn a_reader_sees_a_reinitialisation_at_its_next_object_call() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    let id = ta
        .create_object(&RW, &data("old", b"o", true, false))
        .unwrap();
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    login_user(&tb);
    assert_eq!(read(&tb, id, CKA_VALUE).unwrap(), b"o");

    ta.init_token(&pin(SO_PIN), "again").unwrap();
    // No metadata check in between: the old log's marker sends b to the new incarnation.
    assert_eq!(read(&tb, id, CKA_VALUE), None);
    assert_eq!(
        tb.login_state(),
        None,
        "the login ended with the old incarnation"
    );
    let n = tb
        .create_object(&RW, &data("new", b"n", true, false))
        .unwrap();
    assert_eq!(read(&ta, n, CKA_VALUE).unwrap(), b"n");
    assert_eq!(tb.info().label, "again");
    assert_eq!(
        tb.login(UserType::User, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_USER_PIN_NOT_INITIALIZED
    );
}

#[test]
fn a_stale_marker_left_by_a_crash_before_the_rename_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    login_user(&ta);
    let first = ta
        .create_object(&RW, &data("first", b"1", true, true))
        .unwrap();
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    login_user(&tb);
    assert_eq!(read(&tb, first, CKA_VALUE).unwrap(), b"1");

    // A compaction or re-initialisation killed between its marker and its rename (a
    // re-initialisation would also have left a new, unnamed log behind).
    append_stale_marker(tmp.path(), None);
    let orphan = token_dir(tmp.path()).join(format!("objects-{}.log", "ab".repeat(16)));
    std::fs::write(&orphan, b"").unwrap();
    // b reads the marker, finds the metadata and the path unchanged, and goes on.
    assert_eq!(read(&tb, first, CKA_VALUE).unwrap(), b"1");
    assert_eq!(tb.login_state(), Some(UserType::User));
    // a appends after the marker; b and a fresh instance see it, and the records around the
    // marker.
    let second = ta
        .create_object(&RW, &data("second", b"2", true, true))
        .unwrap();
    set_value(&ta, first, b"1b");
    assert_eq!(read(&tb, second, CKA_VALUE).unwrap(), b"2");
    assert_eq!(read(&tb, first, CKA_VALUE).unwrap(), b"1b");
    let third = tb
        .create_object(&RW, &data("third", b"3", true, false))
        .unwrap();
    assert_eq!(read(&ta, third, CKA_VALUE).unwrap(), b"3");
    let c = open(tmp.path());
    c.slots().unwrap();
    let tc = c.token(0).unwrap();
    login_user(&tc);
    assert_eq!(contents(&tc), contents(&ta));
    assert_eq!(contents(&tc).len(), 3);
    // A later compaction drops the stale marker, and a re-initialisation the orphan log.
    a.soft_token(0).unwrap().compact().unwrap();
    assert_eq!(contents(&tb), contents(&ta));
    ta.init_token(&pin(SO_PIN), "again").unwrap();
    assert!(!orphan.exists());
}

#[test]
fn a_marker_that_does_not_authenticate_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    let id = ta
        .create_object(&RW, &data("x", b"1", true, false))
        .unwrap();
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    assert_eq!(read(&tb, id, CKA_VALUE).unwrap(), b"1");
    append_stale_marker(tmp.path(), Some([9; 32]));
    assert_eq!(read(&tb, id, CKA_VALUE).unwrap(), b"1");
    set_value(&ta, id, b"2");
    assert_eq!(read(&tb, id, CKA_VALUE).unwrap(), b"2");
    let c = open(tmp.path());
    c.slots().unwrap();
    assert_eq!(read(&c.token(0).unwrap(), id, CKA_VALUE).unwrap(), b"2");
}

#[test]
fn a_log_cut_below_what_a_reader_read_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    let ids: Vec<u64> = (0..4)
        .map(|i| {
            ta.create_object(&RW, &data(&format!("o{i}"), b"v", true, false))
                .unwrap()
        })
        .collect();
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    assert_eq!(read(&tb, ids[3], CKA_VALUE).unwrap(), b"v");
    // Not something Klyuch does (it only appends): someone cuts the last record.
    let log = log_path(tmp.path());
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    assert_eq!(read(&tb, ids[3], CKA_VALUE), None);
    assert_eq!(read(&tb, ids[2], CKA_VALUE).unwrap(), b"v");
}

#[test]
fn key_uses_look_at_the_open_log_only() {
    // Not a timing: the per-call check of attribute reads and key uses does not depend on the
    // path. With the token folder moved away (not something a Klyuch process does), they still
    // work from the open log; searches, logins and the token information check the metadata
    // and report the token gone.
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    let id = ta
        .create_object(&RW, &data("x", b"1", true, false))
        .unwrap();
    assert_eq!(read(&ta, id, CKA_VALUE).unwrap(), b"1");
    std::fs::rename(token_dir(tmp.path()), elsewhere.path().join("moved")).unwrap();
    assert_eq!(read(&ta, id, CKA_VALUE).unwrap(), b"1");
    assert!(ta.find_objects(&RW, &Template::new()).unwrap().is_empty());
    assert_eq!(ta.info().flags & CKF_TOKEN_INITIALIZED, 0);
}
