//! Fault injection on the soft token store (issue 7, item 3), through the built module:
//!
//! * SIGKILL at random moments of object writes, deletions and updates, of PIN changes and of
//!   wrong-PIN logins, in a loop: every object reported created is there, none is half there,
//!   deleted ones stay deleted, the PIN after an interrupted C_SetPIN is the old or the new one,
//!   and the failure counter never goes back;
//! * a full disk (a small tmpfs): CKR_DEVICE_MEMORY, and every object stored before is intact,
//!   before and after a reload, and after the file system grows again;
//! * a read-only store (a read-only tmpfs when root, file modes otherwise): CKF_WRITE_PROTECTED,
//!   objects readable and keys usable, every change CKR_TOKEN_WRITE_PROTECTED;
//! * two processes hammering one token for a minute (KLYUCH_HAMMER_SECS overrides): nothing lost.
//!
//! The random moments come from a seed printed by each test (KLYUCH_FAULT_SEED repeats a run).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use klyuch_tests::{module_path, pin, rv, Fixture, SO_PIN, USER_PIN};

/// DER of the P-256 curve OID 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// xorshift64* (Vigna 2016), as in the child: test randomness only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed(test: &str) -> u64 {
    let s = std::env::var("KLYUCH_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: KLYUCH_FAULT_SEED={s}");
    s | 1
}

fn child(f: &Fixture, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_p11_faults"));
    c.arg(args[0]).arg(module_path()).args(&args[1..]);
    for (k, v) in f.env() {
        c.env(k, v);
    }
    c
}

/// Start the child, wait for its first line (it is working then), let it run `delay_ms` more,
/// SIGKILL it, and return every line it printed.
fn run_and_kill(mut cmd: Command, delay_ms: u64) -> Vec<String> {
    let mut kid = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn p11_faults");
    let stdout = kid.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(());
            lines.push(line);
        }
        lines
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = kid.kill();
        let _ = kid.wait();
        panic!("the child printed nothing in 60 s");
    }
    std::thread::sleep(Duration::from_millis(delay_ms));
    kid.kill().expect("SIGKILL");
    let status = kid.wait().expect("wait");
    let lines = reader.join().expect("reader");
    // Still running when killed: it never stops on its own except by an error.
    assert!(
        status.code().is_none(),
        "the child ended by itself ({status}) before the kill: {lines:?}"
    );
    lines
}

/// (label → value) of the data objects whose label starts with `prefix-`.
fn objects_with_prefix(s: &Session, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for h in s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .expect("C_FindObjects")
    {
        let a = s
            .get_attributes(h, &[AttributeType::Label, AttributeType::Value])
            .expect("C_GetAttributeValue");
        if let [Attribute::Label(l), Attribute::Value(v)] = &a[..] {
            let l = String::from_utf8_lossy(l).into_owned();
            if l.starts_with(&format!("{prefix}-")) {
                assert!(out.insert(l.clone(), v.clone()).is_none(), "{l} twice");
            }
        }
    }
    out
}

/// The child's values (see src/bin/p11_faults.rs).
fn value(label: &str, version: u32, len: usize) -> Vec<u8> {
    let unit = if version == 1 {
        format!("value-{label}")
    } else {
        format!("value{version}-{label}")
    };
    if len == 0 {
        return unit.into_bytes();
    }
    unit.repeat(len / unit.len() + 1).into_bytes()[..len].to_vec()
}

/// The hammer's value length (as in the child).
const HAMMER_LEN: usize = 1536;

/// Replay a churn child's report: what must be in the store for each object (Some(version) or
/// None for deleted), and the one step that was in flight at the kill (its object and the
/// outcome it would have had), which may or may not have happened.
struct Churn {
    state: BTreeMap<usize, Option<u32>>,
    in_flight: Option<(usize, Option<u32>)>,
    updated: usize,
    deleted: usize,
}

fn replay(lines: &[String]) -> Churn {
    let mut c = Churn {
        state: BTreeMap::new(),
        in_flight: None,
        updated: 0,
        deleted: 0,
    };
    let mut next = 0;
    for l in lines {
        let w: Vec<&str> = l.split(' ').collect();
        let n = |i: usize| w[i].parse::<usize>().unwrap();
        match w[0] {
            "created" => {
                c.state.insert(n(1), Some(1));
                next = n(1) + 1;
                // The next creation starts right after the last step ends.
                c.in_flight = Some((next, Some(1)));
            }
            "deleting" => c.in_flight = Some((n(1), None)),
            "deleted" => {
                c.state.insert(n(1), None);
                c.deleted += 1;
                c.in_flight = None;
            }
            "updating" => c.in_flight = Some((n(1), Some(n(2) as u32))),
            "updated" => {
                c.state.insert(n(1), Some(n(2) as u32));
                c.updated += 1;
                c.in_flight = None;
            }
            other => panic!("unexpected line {other}"),
        }
    }
    // After a finished delete or update, the creation of the next object may be in flight.
    if c.in_flight.is_none() {
        c.in_flight = Some((next, Some(1)));
    }
    c
}

fn first_slot(f: &Fixture) -> cryptoki::slot::Slot {
    f.p11().get_slots_with_initialized_token().expect("slots")[0]
}

#[test]
fn sigkill_during_creates_deletes_and_updates() {
    let mut f = Fixture::new();
    f.init_token("churn");
    let mut rng = Rng(seed("sigkill_during_creates_deletes_and_updates"));
    // What every earlier round left: label → value (None: deleted). Checked again every round,
    // so a later crash or a later writer's repair never brings back or loses an older object.
    let mut known: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    for round in 0..12 {
        let prefix = format!("c{round}");
        // Odd rounds write 64 KiB values, so the log is compacted every few steps and some
        // kills land in a compaction.
        let len = if round % 2 == 1 { 65536 } else { 0 };
        let delay = rng.below(400);
        let lines = run_and_kill(
            child(
                &f,
                &["churn", &prefix, &rng.next().to_string(), &len.to_string()],
            ),
            delay,
        );
        let c = replay(&lines);
        assert!(!c.state.is_empty(), "round {round}: nothing created");
        f.reload();
        let s = f.user_session(first_slot(&f));
        let found = objects_with_prefix(&s, &prefix);
        let last = c
            .in_flight
            .map_or(0, |(n, _)| n)
            .max(*c.state.keys().max().unwrap());
        for n in 0..=last {
            let label = format!("{prefix}-{n}");
            let got = found.get(&label);
            let as_value = |v: Option<u32>| v.map(|v| value(&label, v, len));
            let mut allowed = vec![as_value(c.state.get(&n).copied().flatten())];
            if let Some((_, outcome)) = c.in_flight.filter(|(k, _)| *k == n) {
                allowed.push(as_value(outcome));
            }
            let what = |v: Option<&Vec<u8>>| match v {
                None => "nothing".to_string(),
                Some(v) => String::from_utf8_lossy(&v[..v.len().min(40)]).into_owned(),
            };
            assert!(
                allowed.iter().any(|a| a.as_ref() == got),
                "round {round}: {label} holds {}, expected one of {:?}",
                what(got),
                allowed.iter().map(|a| what(a.as_ref())).collect::<Vec<_>>()
            );
            known.insert(label, got.cloned());
        }
        let mut now = BTreeMap::new();
        for r in 0..=round {
            now.extend(objects_with_prefix(&s, &format!("c{r}")));
        }
        for (label, want) in &known {
            assert!(
                now.get(label) == want.as_ref(),
                "round {round}: {label} changed after its round"
            );
        }
        assert_eq!(
            now.len(),
            known.values().filter(|v| v.is_some()).count(),
            "round {round}: objects nobody created"
        );
        eprintln!(
            "round {round}: {len}-byte values, killed after {delay} ms; {} created, {} deleted, \
             {} updated, {} found; in flight: {:?}",
            c.state.len(),
            c.deleted,
            c.updated,
            found.len(),
            c.in_flight
        );
    }
}

#[test]
fn sigkill_during_pin_changes_leaves_the_old_or_the_new_pin() {
    let mut f = Fixture::new();
    f.init_token("pins");
    let mut rng = Rng(seed(
        "sigkill_during_pin_changes_leaves_the_old_or_the_new_pin",
    ));
    const OTHER: &str = "87654321";
    let mut current = USER_PIN.to_string();
    for round in 0..10 {
        let other = if current == USER_PIN { OTHER } else { USER_PIN };
        let delay = rng.below(300);
        let lines = run_and_kill(child(&f, &["pins", &current, other]), delay);
        let last_set = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("set "))
            .map(str::to_string);
        let in_flight = lines
            .last()
            .and_then(|l| l.strip_prefix("setting "))
            .map(str::to_string);
        let expected = last_set.unwrap_or(current.clone());
        f.reload();
        let s = f.p11().open_rw_session(first_slot(&f)).unwrap();
        current = match s.login(UserType::User, Some(&pin(&expected))) {
            Ok(()) => expected,
            Err(e) => {
                let p = in_flight.unwrap_or_else(|| {
                    panic!("round {round}: the last PIN set ({expected}) fails: {e}")
                });
                s.login(UserType::User, Some(&pin(&p))).unwrap_or_else(|e| {
                    panic!("round {round}: neither the old ({expected}) nor the new PIN ({p}): {e}")
                });
                p
            }
        };
        s.logout().unwrap();
        eprintln!(
            "round {round}: killed after {delay} ms, {} changes; PIN now {current}",
            lines.iter().filter(|l| l.starts_with("set ")).count()
        );
    }
}

#[test]
fn sigkill_during_wrong_pins_never_resets_the_counter() {
    let config =
        |max: usize| format!("[softtoken]\nkdf_iterations = 1000\nmax_user_pin_failures = {max}\n");
    // A limit the child never reaches by itself: 8 rounds of up to 300 ms at about 1 ms per
    // wrong PIN on an idle machine would reach 1,000.
    const NEVER: usize = 1_000_000;
    let mut f = Fixture::with_config(&config(NEVER));
    let slot = f.init_token("counter");
    let mut rng = Rng(seed("sigkill_during_wrong_pins_never_resets_the_counter"));
    let mut reported = 0;
    for round in 0..8 {
        let delay = rng.below(300);
        let lines = run_and_kill(child(&f, &["wrong"]), delay);
        reported += lines.iter().filter(|l| l.starts_with("failed ")).count();
        // With the limit one above the failures reported so far, the token must show the final
        // try (the count is exactly that) or locked (one more was counted but not reported, as
        // the kill came between counting and answering): never less.
        std::fs::write(f.config_path(), config(reported + 1)).unwrap();
        f.reload();
        let i = f.p11().get_token_info(slot).unwrap();
        assert!(
            i.user_pin_final_try() || i.user_pin_locked(),
            "round {round}: {reported} wrong PINs reported, but the token shows fewer"
        );
        std::fs::write(f.config_path(), config(NEVER)).unwrap();
        f.reload();
        eprintln!("round {round}: killed after {delay} ms; {reported} wrong PINs so far");
    }
}

// ------------------------------------------------------------------ file systems

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A tmpfs mounted on a folder for one test; unmounted on drop (lazily if still busy).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount, or say why not (not root, or no permission in this container) and return None.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            eprintln!("SKIPPED: not root, so no tmpfs can be mounted for this test");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("mount");
        if !out.status.success() {
            eprintln!(
                "SKIPPED: mount -t tmpfs failed (no CAP_SYS_ADMIN here?): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount -o remount,{opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn data(
    s: &Session,
    label: &str,
    private: bool,
    value: Vec<u8>,
) -> cryptoki::error::Result<ObjectHandle> {
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(private),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value),
    ])
}

fn fill_value(label: &str, len: usize) -> Vec<u8> {
    let unit = format!("{label};");
    unit.repeat(len / unit.len() + 1).into_bytes()[..len].to_vec()
}

#[test]
fn a_full_disk_gives_device_memory_and_keeps_every_object() {
    let mut f = Fixture::new();
    let Some(fs) = Tmpfs::mount(&f.store(), "256k") else {
        return;
    };
    let slot = f.init_token("full");
    let s = f.user_session(slot);
    // label → (private, value). 2 KiB objects until the disk is full, then small ones until not
    // even those fit (so no smaller write below can slip into the last free bytes).
    let mut stored = BTreeMap::new();
    let mut failures = Vec::new();
    for (phase, len) in [("big", 2048), ("small", 40)] {
        for n in 0..10_000 {
            let (label, private) = (format!("full-{phase}{n}"), n % 2 == 1);
            let v = fill_value(&label, len);
            match data(&s, &label, private, v.clone()) {
                Ok(_) => {
                    stored.insert(label, (private, v));
                }
                Err(e) => {
                    failures.push(rv(Err::<(), _>(e)));
                    break;
                }
            }
        }
    }
    assert_eq!(failures.len(), 2, "256 KiB never filled up");
    for failure in &failures {
        assert!(
            matches!(failure, RvError::DeviceMemory | RvError::FunctionFailed),
            "a full disk gave {failure:?}"
        );
    }
    eprintln!("{} objects stored before {failures:?}", stored.len());
    assert!(stored.len() > 10, "only {} objects fit", stored.len());
    let check = |s: &Session, private_too: bool| {
        let found = objects_with_prefix(s, "full");
        for (label, (private, v)) in &stored {
            if *private && !private_too {
                assert!(!found.contains_key(label), "private {label} before login");
                continue;
            }
            assert_eq!(found.get(label), Some(v), "{label}");
        }
        assert_eq!(
            found.len(),
            stored
                .iter()
                .filter(|(_, (p, _))| private_too || !*p)
                .count(),
            "objects that were never stored"
        );
    };
    // More writes fail the same way and change nothing.
    let h = s
        .find_objects(&[Attribute::Label(b"full-big0".to_vec())])
        .unwrap()[0];
    let e = rv(s.update_attributes(h, &[Attribute::Value(vec![0x55; 4096])]));
    assert!(
        matches!(e, RvError::DeviceMemory | RvError::FunctionFailed),
        "{e:?}"
    );
    let e = rv(s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::EcParams(P256.to_vec()), Attribute::Token(true)],
        &[Attribute::Token(true), Attribute::Sign(true)],
    ));
    assert!(
        matches!(e, RvError::DeviceMemory | RvError::FunctionFailed),
        "{e:?}"
    );
    check(&s, true);
    drop(s);

    // A restart on the full disk: public objects are readable without a login.
    f.reload();
    let s = f.p11().open_ro_session(slot).unwrap();
    check(&s, false);
    // A login counts its attempt in the store before the PIN is checked: on the full disk the
    // metadata is rewritten in place. A wrong PIN is counted, the right one resets the count
    // and opens the private objects.
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("0000")))),
        RvError::PinIncorrect
    );
    assert!(f.p11().get_token_info(slot).unwrap().user_pin_count_low());
    f.reload();
    assert!(
        f.p11().get_token_info(slot).unwrap().user_pin_count_low(),
        "the wrong PIN on the full disk was not counted durably"
    );
    let s = f.p11().open_ro_session(slot).unwrap();
    s.login(UserType::User, Some(&pin(USER_PIN)))
        .expect("login on the full disk");
    assert!(!f.p11().get_token_info(slot).unwrap().user_pin_count_low());
    check(&s, true);
    drop(s);

    // The file system grows: the user logs in and finds everything.
    fs.remount("size=2m");
    f.reload();
    let s = f.user_session(slot);
    check(&s, true);
    data(&s, "full-after", true, b"room again".to_vec()).expect("a write after growing");
    drop(s);
    unload(&mut f);
    drop(fs);
}

/// Finalise the module (it holds files of the store open) before a file system goes away.
fn unload(f: &mut Fixture) {
    if let Some(p) = f.pkcs11.take() {
        p.finalize().expect("C_Finalize");
    }
}

/// Make the store read-only: a read-only remount of its tmpfs when root (root ignores file
/// modes), else `chmod -R a-w`. Returns a guard that makes it writable again.
enum ReadOnly {
    Mount(Tmpfs),
    Modes(PathBuf),
}

impl ReadOnly {
    fn make(store: &Path, fs: Option<Tmpfs>) -> ReadOnly {
        match fs {
            Some(fs) => {
                fs.remount("ro");
                ReadOnly::Mount(fs)
            }
            None => {
                let st = Command::new("chmod")
                    .arg("-R")
                    .arg("a-w")
                    .arg(store)
                    .status();
                assert!(st.is_ok_and(|s| s.success()), "chmod -R a-w");
                ReadOnly::Modes(store.to_path_buf())
            }
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        match self {
            ReadOnly::Mount(fs) => {
                let _ = Command::new("mount")
                    .args(["-o", "remount,rw"])
                    .arg(&fs.0)
                    .status();
            }
            ReadOnly::Modes(p) => {
                let _ = Command::new("chmod").arg("-R").arg("u+w").arg(&*p).status();
            }
        }
    }
}

#[test]
fn a_read_only_store_opens_write_protected() {
    let mut f = Fixture::new();
    let fs = if is_root() {
        match Tmpfs::mount(&f.store(), "4m") {
            Some(fs) => Some(fs),
            None => return, // said why
        }
    } else {
        eprintln!("not root: the store is made read-only with file modes");
        None
    };
    let slot = f.init_token("readonly");
    let s = f.user_session(slot);
    data(&s, "ro-public", false, b"public value".to_vec()).unwrap();
    data(&s, "ro-private", true, b"private value".to_vec()).unwrap();
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::EcParams(P256.to_vec()),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(b"ro-key".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Sign(true),
            Attribute::Label(b"ro-key".to_vec()),
        ],
    )
    .unwrap();
    drop(s);
    f.reload();
    let _ro = ReadOnly::make(&f.store(), fs);
    f.reload();

    let info = f.p11().get_token_info(slot).unwrap();
    assert!(info.write_protected(), "CKF_WRITE_PROTECTED");
    assert_eq!(
        rv(f.p11().open_rw_session(slot)),
        RvError::TokenWriteProtected
    );
    let s = f.p11().open_ro_session(slot).unwrap();
    assert_eq!(
        objects_with_prefix(&s, "ro").get("ro-public"),
        Some(&b"public value".to_vec())
    );
    // Wrong PINs are refused (and counted in this process).
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("0000")))),
        RvError::PinIncorrect
    );
    assert!(f.p11().get_token_info(slot).unwrap().user_pin_count_low());
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let found = objects_with_prefix(&s, "ro");
    assert_eq!(found.get("ro-private"), Some(&b"private value".to_vec()));
    let key = |class| {
        s.find_objects(&[
            Attribute::Class(class),
            Attribute::Label(b"ro-key".to_vec()),
        ])
        .unwrap()[0]
    };
    let sig = s
        .sign(
            &Mechanism::EcdsaSha256,
            key(ObjectClass::PRIVATE_KEY),
            b"read-only",
        )
        .unwrap();
    s.verify(
        &Mechanism::EcdsaSha256,
        key(ObjectClass::PUBLIC_KEY),
        b"read-only",
        &sig,
    )
    .unwrap();

    // Every change to the token is refused; session objects still work.
    let wp = RvError::TokenWriteProtected;
    assert_eq!(rv(data(&s, "ro-new", false, b"x".to_vec())), wp);
    let public = s
        .find_objects(&[Attribute::Label(b"ro-public".to_vec())])
        .unwrap()[0];
    assert_eq!(rv(s.destroy_object(public)), wp);
    assert_eq!(
        rv(s.update_attributes(public, &[Attribute::Value(b"y".to_vec())])),
        wp
    );
    assert_eq!(rv(s.set_pin(&pin(USER_PIN), &pin("87654321"))), wp);
    assert_eq!(
        rv(s.generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec()), Attribute::Token(true)],
            &[Attribute::Token(true), Attribute::Sign(true)],
        )),
        wp
    );
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(false),
        Attribute::Label(b"session".to_vec()),
        Attribute::Value(b"in memory".to_vec()),
    ])
    .expect("a session object on a write-protected token");
    drop(s);
    assert_eq!(rv(f.p11().init_token(slot, &pin(SO_PIN), "again")), wp);
    let empty = f.empty_slot();
    assert_eq!(rv(f.p11().init_token(empty, &pin(SO_PIN), "new")), wp);
    unload(&mut f);
    drop(_ro);
}

#[test]
fn two_processes_hammer_one_token_and_lose_nothing() {
    let mut f = Fixture::new();
    let slot = f.init_token("hammer");
    let s = f.user_session(slot);
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::EcParams(P256.to_vec()),
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::Label(b"hammer-key".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Sign(true),
            Attribute::Label(b"hammer-key".to_vec()),
        ],
    )
    .unwrap();
    drop(s);
    let secs: u64 = std::env::var("KLYUCH_HAMMER_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut rng = Rng(seed("two_processes_hammer_one_token_and_lose_nothing"));
    let started = Instant::now();
    let kids: Vec<_> = ["ha", "hb"]
        .iter()
        .map(|p| {
            let kid = child(
                &f,
                &["hammer", p, &secs.to_string(), &rng.next().to_string()],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
            (*p, kid)
        })
        .collect();
    let mut live = BTreeMap::new();
    for (p, kid) in kids {
        let out = kid.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "hammer {p} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("live ") {
                let (label, v) = rest.split_once(' ').unwrap();
                live.insert(label.to_string(), v.parse::<u32>().unwrap());
            } else {
                eprintln!("{p}: {line}");
            }
        }
    }
    eprintln!("both done in {:.1} s", started.elapsed().as_secs_f64());
    f.reload();
    let s = f.user_session(slot);
    for p in ["ha", "hb"] {
        let found = objects_with_prefix(&s, p);
        let want: BTreeMap<String, Vec<u8>> = live
            .iter()
            .filter(|(l, _)| l.starts_with(&format!("{p}-")))
            .map(|(l, v)| (l.clone(), value(l, *v, HAMMER_LEN)))
            .collect();
        assert_eq!(
            found.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{p}: the objects in the store are not the ones it kept"
        );
        assert!(found == want, "{p}: a value differs");
    }
}
