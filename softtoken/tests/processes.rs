//! Real processes: a writer killed with SIGKILL at random moments (crash safety), and two
//! processes creating and finding objects at the same time. The child processes are this test
//! binary itself, running one of the `helper_*` tests with an environment variable set.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use token_api::ck::*;
use token_api::{SlotSource, Template};

const DIR_VAR: &str = "KLYUCH_SOFTTOKEN_TEST_DIR";
const PREFIX_VAR: &str = "KLYUCH_SOFTTOKEN_TEST_PREFIX";

/// The value a crash-test object with this label must have.
fn value_for(label: &str) -> Vec<u8> {
    let n: usize = label[1..].parse().unwrap_or(0);
    let mut v = label.as_bytes().repeat(1 + n % 97 * 7);
    v.truncate(4000);
    v
}

fn child(test: &str, dir: &Path, prefix: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir)
        .env(PREFIX_VAR, prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Crash-test writer: creates objects (public and private, of varying size), updates and
/// destroys some, and reports each finished call on stdout.
#[test]
#[ignore = "helper process of crash_safety_under_sigkill"]
fn helper_writer() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let prefix = std::env::var(PREFIX_VAR).unwrap();
    let src = open(Path::new(&dir));
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    // A small compaction threshold, so that kills also land in compactions.
    src.soft_token(0)
        .unwrap()
        .set_compact_threshold(16 << 10)
        .unwrap();
    login_user(&t);
    let out = std::io::stdout();
    let mut made = Vec::new();
    for i in 0.. {
        let label = format!("{prefix}{i}");
        let id = t
            .create_object(&RW, &data(&label, &value_for(&label), true, i % 2 == 0))
            .unwrap();
        writeln!(out.lock(), "created {label}").unwrap();
        made.push((id, label));
        if i % 5 == 4 {
            let (id, l) = &made[made.len() / 2];
            let mut ch = Template::new();
            ch.set(CKA_APPLICATION, format!("updated {i}").into_bytes());
            if t.set_attributes(&RW, *id, &ch).is_ok() {
                writeln!(out.lock(), "updated {l}").unwrap();
            }
        }
        if i % 7 == 6 {
            let (id, l) = made.remove(0);
            writeln!(out.lock(), "destroying {l}").unwrap();
            t.destroy_object(&RW, id).unwrap();
            writeln!(out.lock(), "destroyed {l}").unwrap();
        }
    }
}

fn random_below(n: u64) -> u64 {
    u64::from_le_bytes(softtoken::seal::random().unwrap()) % n
}

#[test]
fn crash_safety_under_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    drop(init_token(&src));
    let mut created: BTreeSet<String> = BTreeSet::new();
    let mut destroyed: BTreeSet<String> = BTreeSet::new();
    // Destructions under way when the writer was killed: either outcome is right.
    let mut destroying: BTreeSet<String> = BTreeSet::new();
    let rounds = 20;
    for round in 0..rounds {
        let prefix = ((b'a' + round) as char).to_string();
        let mut c = child("helper_writer", tmp.path(), &prefix);
        let stdout = c.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait for the first object, then kill at a random moment.
        let mut lines = Vec::new();
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("child started");
            let started = l.starts_with("created ");
            lines.push(l);
            if started {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(random_below(80)));
        c.kill().unwrap();
        c.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for l in lines {
            if let Some(x) = l.strip_prefix("created ") {
                created.insert(x.to_string());
            } else if let Some(x) = l.strip_prefix("destroyed ") {
                destroyed.insert(x.to_string());
                destroying.remove(x);
            } else if let Some(x) = l.strip_prefix("destroying ") {
                destroying.insert(x.to_string());
            }
        }

        // Everything reported is there, complete, with the right value; nothing half-made.
        let src = open(tmp.path());
        src.slots().unwrap();
        let t = src.token(0).unwrap();
        login_user(&t);
        let ids = t.find_objects(&RW, &Template::new()).unwrap();
        let mut found = BTreeMap::new();
        for id in ids {
            let label = label_of(&t, id);
            assert_eq!(get(&t, id, CKA_VALUE), value_for(&label), "{label}");
            assert_eq!(get(&t, id, CKA_CLASS), CKO_DATA.to_ne_bytes());
            found.insert(label, id);
        }
        for l in created.difference(&destroyed) {
            if destroying.contains(l) {
                continue;
            }
            assert!(
                found.contains_key(l),
                "round {round}: {l} was reported created but is gone"
            );
        }
        // A destruction that was under way is settled now: remember how it ended.
        for l in std::mem::take(&mut destroying) {
            if !found.contains_key(&l) {
                destroyed.insert(l);
            }
        }
        for l in &destroyed {
            assert!(
                !found.contains_key(l),
                "round {round}: {l} was destroyed but is back"
            );
        }
        // Objects not reported (killed between the write and the report) may exist; nothing else.
        for l in found.keys() {
            let n: usize = l[1..].parse().unwrap();
            assert!(n < 100_000, "{l}");
        }
    }
    eprintln!(
        "{} objects reported created and {} destroyed over {rounds} killed writers",
        created.len(),
        destroyed.len()
    );
    assert!(created.len() > rounds as usize);
}

/// Concurrency writer: creates objects, then waits until it sees the other process's objects.
#[test]
#[ignore = "helper process of two_processes_create_and_find_concurrently"]
fn helper_concurrent() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let prefix = std::env::var(PREFIX_VAR).unwrap();
    let other = if prefix == "p" { "q" } else { "p" };
    let src = open(Path::new(&dir));
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    login_user(&t);
    let n = 150;
    for i in 0..n {
        let label = format!("{prefix}{i}");
        t.create_object(&RW, &data(&label, label.as_bytes(), true, i % 3 == 0))
            .unwrap();
        // Interleave finds of the other process's objects (same session, no reload).
        let _ = t
            .find_objects(&RW, &by_label(&format!("{other}{i}")))
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = t.find_objects(&RW, &Template::new()).unwrap();
        if all.len() == 2 * n {
            break;
        }
        assert!(Instant::now() < deadline, "saw only {} objects", all.len());
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..n {
        let label = format!("{other}{i}");
        let ids = t.find_objects(&RW, &by_label(&label)).unwrap();
        assert_eq!(ids.len(), 1, "{label}");
        assert_eq!(get(&t, ids[0], CKA_VALUE), label.as_bytes());
    }
    println!("saw all {}", 2 * n);
}

#[test]
fn two_processes_create_and_find_concurrently() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    init_token(&src);
    let mut a = child("helper_concurrent", tmp.path(), "p");
    let mut b = child("helper_concurrent", tmp.path(), "q");
    let out_a = std::io::read_to_string(a.stdout.take().unwrap()).unwrap();
    let out_b = std::io::read_to_string(b.stdout.take().unwrap()).unwrap();
    assert!(a.wait().unwrap().success(), "{out_a}");
    assert!(b.wait().unwrap().success(), "{out_b}");
    assert!(out_a.contains("saw all 300"), "{out_a}");
    assert!(out_b.contains("saw all 300"), "{out_b}");
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    login_user(&t);
    assert_eq!(t.find_objects(&RW, &Template::new()).unwrap().len(), 300);
}
