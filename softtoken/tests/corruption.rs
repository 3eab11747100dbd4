//! A flipped byte in any store file is detected and never returned as data; the rest of the
//! token keeps working.

mod common;

use common::*;
use std::collections::BTreeSet;
use token_api::ck::*;
use token_api::{SlotSource, Template};

#[test]
fn every_flipped_byte_of_every_file_is_detected() {
    // Thousands of stores: on a tmpfs when there is one (fsync is free there).
    let shm = std::path::Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let orig = tmp.path().join("orig");
    // Every version of every object ever written: whatever is read back must be one of them.
    let mut versions: BTreeSet<(String, Vec<u8>)> = BTreeSet::new();
    {
        let src = open(&orig);
        let t = init_token(&src);
        login_user(&t);
        for i in 0..3 {
            let (l, v) = (format!("pub{i}"), format!("public value {i}").into_bytes());
            t.create_object(&RW, &data(&l, &v, true, false)).unwrap();
            versions.insert((l, v));
            let (l, v) = (
                format!("priv{i}"),
                format!("private value {i}").into_bytes(),
            );
            t.create_object(&RW, &data(&l, &v, true, true)).unwrap();
            versions.insert((l, v));
        }
        let id = t.find_objects(&RW, &by_label("pub1")).unwrap()[0];
        let mut ch = Template::new();
        ch.set(CKA_LABEL, b"pub1-renamed".to_vec());
        t.set_attributes(&RW, id, &ch).unwrap();
        versions.insert(("pub1-renamed".into(), b"public value 1".to_vec()));
        let id = t.find_objects(&RW, &by_label("priv2")).unwrap()[0];
        t.destroy_object(&RW, id).unwrap();
    }
    let expected = {
        let src = open(&orig);
        src.slots().unwrap();
        let t = src.token(0).unwrap();
        login_user(&t);
        contents(&t)
    };
    assert_eq!(expected.len(), 5);

    let mut checked = 0;
    for file in files(&orig) {
        let rel = file.strip_prefix(&orig).unwrap().to_path_buf();
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        let is_meta = rel.ends_with("meta");
        for i in 0..len {
            let copy = tmp.path().join(format!("c{checked}"));
            copy_tree(&orig, &copy);
            let target = copy.join(&rel);
            let mut bytes = std::fs::read(&target).unwrap();
            bytes[i] ^= 0x5a;
            std::fs::write(&target, &bytes).unwrap();

            let src = open(&copy);
            src.slots().unwrap();
            let t = src.token(0).unwrap();
            login_user(&t);
            let got = contents(&t);
            for item in &got {
                assert!(
                    versions.contains(item) || item.0 == "priv2",
                    "{} byte {i}: returned {item:?}, which was never written",
                    rel.display()
                );
            }
            let intact = got.iter().filter(|x| expected.contains(x)).count();
            if is_meta {
                assert_eq!(got, expected, "meta byte {i}");
            } else {
                // At most the one damaged record is lost (a damaged deletion brings the deleted
                // object back, a damaged update the previous version).
                assert!(
                    intact + 1 >= expected.len(),
                    "{} byte {i}: only {intact} of {} objects left",
                    rel.display(),
                    expected.len()
                );
            }
            // The token keeps working: a new object is stored and read back by a new instance.
            if i % 5 == 0 {
                t.create_object(&RW, &data("after", b"after damage", true, true))
                    .unwrap();
                let src2 = open(&copy);
                src2.slots().unwrap();
                let t2 = src2.token(0).unwrap();
                login_user(&t2);
                let got2 = contents(&t2);
                assert!(got2.contains(&("after".to_string(), b"after damage".to_vec())));
                assert!(got2.len() >= got.len(), "{} byte {i}", rel.display());
            }
            drop((t, src));
            std::fs::remove_dir_all(&copy).unwrap();
            checked += 1;
        }
    }
    eprintln!("checked {checked} flipped bytes");
    assert!(checked > 1000);
}

#[test]
fn a_truncated_log_loses_only_the_cut_record() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    for i in 0..5 {
        t.create_object(&RW, &data(&format!("o{i}"), b"v", true, false))
            .unwrap();
    }
    drop((t, src));
    let log = files(tmp.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    let len = std::fs::metadata(&log).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len - 7).unwrap();
    let src = open(tmp.path());
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    assert_eq!(contents(&t).len(), 4);
    // The next write cuts the torn tail off and appends after the intact part.
    t.create_object(&RW, &data("o5", b"v", true, false))
        .unwrap();
    let src = open(tmp.path());
    src.slots().unwrap();
    let labels: Vec<String> = contents(&src.token(0).unwrap())
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(labels, vec!["o0", "o1", "o2", "o3", "o5"]);
}

#[test]
fn a_destroyed_meta_file_is_a_device_error_not_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    t.create_object(&RW, &data("o", b"v", true, false)).unwrap();
    let meta = files(tmp.path())
        .into_iter()
        .find(|p| p.ends_with("meta"))
        .unwrap();
    std::fs::write(&meta, vec![0u8; 100]).unwrap();
    // The open token notices on its next call.
    assert_eq!(
        t.find_objects(&RW, &Template::new()).unwrap_err().rv(),
        CKR_DEVICE_ERROR
    );
    // A new instance leaves the folder out (logged) and offers a fresh slot instead.
    let src = open(tmp.path());
    let slots = src.slots().unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(
        src.token(slots[0].local).unwrap().info().flags & CKF_TOKEN_INITIALIZED,
        0
    );
}
