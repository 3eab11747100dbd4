//! A full disk gives `CKR_DEVICE_MEMORY` and loses nothing already stored. Needs a small
//! tmpfs: the test mounts one when it runs as root (and may mount), and is skipped otherwise.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use token_api::ck::*;
use token_api::{SlotSource, UserType};

struct Mount<'a>(&'a Path);

impl Drop for Mount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn mount_tmpfs<'a>(at: &'a Path, size: &str) -> Option<Mount<'a>> {
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(at)
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(Mount(at))
}

#[test]
fn full_disk_is_device_memory_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let Some(_m) = mount_tmpfs(&mnt, "192k") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    // Ballast, removed later to free space again.
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![0u8; 32 << 10]).unwrap();
    let store = mnt.join("tokens");
    let src = open(&store);
    let t = init_token(&src);
    login_user(&t);
    let mut made = Vec::new();
    let err = loop {
        let label = format!("obj{}", made.len());
        match t.create_object(&RW, &data(&label, &[7u8; 3000], true, made.len() % 2 == 0)) {
            Ok(_) => made.push(label),
            Err(e) => break e,
        }
        assert!(made.len() < 1000, "the disk never filled");
    };
    assert_eq!(err.rv(), CKR_DEVICE_MEMORY, "{err}");
    assert!(made.len() > 10);
    // Smaller writes fail the same way or succeed; never half an object.
    for i in 0..20 {
        let label = format!("small{i}");
        match t.create_object(&RW, &data(&label, &[1u8; 100], true, false)) {
            Ok(_) => made.push(label),
            Err(e) => assert_eq!(e.rv(), CKR_DEVICE_MEMORY),
        }
    }
    made.sort();
    let labels = |t: &std::sync::Arc<dyn token_api::Token>| -> Vec<String> {
        contents(t).into_iter().map(|x| x.0).collect()
    };
    // Still readable in this instance.
    assert_eq!(labels(&t), made);
    // A PIN is not checked when its try cannot be counted: no uncounted guesses.
    t.logout().unwrap();
    let e = t
        .login(UserType::User, Some(&pin(b"wrong-pin")))
        .unwrap_err();
    assert!(
        matches!(e.rv(), CKR_PIN_INCORRECT | CKR_DEVICE_MEMORY),
        "wrong PIN on a full disk: {e}"
    );
    // A new instance reads the public objects without logging in.
    let src2 = open(&store);
    src2.slots().unwrap();
    let t2 = src2.token(0).unwrap();
    let public: Vec<String> = made
        .iter()
        .filter(|l| !l.starts_with("obj") || l[3..].parse::<usize>().unwrap() % 2 == 1)
        .cloned()
        .collect();
    assert_eq!(labels(&t2), public);
    // Space again: everything is there, and the token works as before.
    std::fs::remove_file(&ballast).unwrap();
    login_user(&t2);
    assert_eq!(labels(&t2), made);
    t2.create_object(&RW, &data("after", b"x", true, true))
        .unwrap();
    let ids = t2.find_objects(&RW, &by_label("obj1")).unwrap();
    t2.destroy_object(&RW, ids[0]).unwrap();
    let src3 = open(&store);
    src3.slots().unwrap();
    let t3 = src3.token(0).unwrap();
    login_user(&t3);
    let mut want = made.clone();
    want.retain(|l| l != "obj1");
    want.push("after".into());
    want.sort();
    assert_eq!(labels(&t3), want);
}

/// The in-place rewrite of the metadata (full disk): a crash at any byte of it leaves the old
/// or the new metadata, never a mix and never nothing (first copy written and synced, then the
/// second; `Meta::decode` takes the first intact copy).
#[test]
fn a_torn_in_place_metadata_write_reads_old_or_new() {
    use softtoken::store::TokenPaths;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tokens");
    let src = open(&store);
    init_token(&src);
    let folder = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    let paths = TokenPaths::new(folder);
    let (old, _) = paths.read_meta().unwrap();
    let mut new = old.clone();
    new.user_failures += 1;
    let (a, b) = (old.encode().unwrap(), new.encode().unwrap());
    assert_eq!(a.len(), b.len());
    let half = a.len() / 2;
    for cut in 0..=a.len() {
        // The new bytes up to `cut`, the old ones after: every moment of the two writes.
        let torn = [&b[..cut], &a[cut..]].concat();
        std::fs::write(paths.meta(), &torn).unwrap();
        let (m, _) = paths.read_meta().unwrap();
        // Once the first copy is complete the new metadata is what counts; before that, the old
        // one, or the new one when the bytes still to come equal the old ones (the first copy
        // already reads as the new one then).
        let got = m.user_failures;
        if cut >= half {
            assert_eq!(got, new.user_failures, "cut at {cut}");
        } else if b[cut..half] == a[cut..half] {
            assert_eq!(
                got, new.user_failures,
                "cut at {cut} (rest of copy 1 unchanged)"
            );
        } else {
            assert_eq!(got, old.user_failures, "cut at {cut}");
        }
    }
}
