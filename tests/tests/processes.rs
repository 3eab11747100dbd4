//! Several threads and several processes on one token, and processes killed with SIGKILL while
//! they write: nothing reported created is ever lost, and no half object appears.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::Session;
use klyuch_tests::{module_path, Fixture};

fn writer(f: &Fixture, prefix: &str, count: usize, private: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_p11_writer"));
    c.arg(module_path()).arg(prefix).arg(count.to_string());
    if private {
        c.arg("private");
    }
    for (k, v) in f.env() {
        c.env(k, v);
    }
    c
}

fn values_with_prefix(s: &Session, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for h in s
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap()
    {
        let a = s
            .get_attributes(h, &[AttributeType::Label, AttributeType::Value])
            .unwrap();
        if let [Attribute::Label(l), Attribute::Value(v)] = &a[..] {
            let l = String::from_utf8_lossy(l).into_owned();
            if l.starts_with(&format!("{prefix}-")) {
                out.push((l, v.clone()));
            }
        }
    }
    out
}

#[test]
fn an_open_session_sees_objects_created_by_another_process() {
    let f = Fixture::new();
    let slot = f.init_token("multi");
    let s = f.user_session(slot);
    assert!(values_with_prefix(&s, "other").is_empty());
    let out = writer(&f, "other", 5, false).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = values_with_prefix(&s, "other");
    assert_eq!(found.len(), 5, "found without reloading: {found:?}");
    // And the other way round: an object made here is found by a new process.
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(b"here-0".to_vec()),
        Attribute::Value(b"value-here-0".to_vec()),
    ])
    .unwrap();
    let out = writer(&f, "late", 1, false).output().unwrap();
    assert!(out.status.success());
    assert_eq!(values_with_prefix(&s, "here").len(), 1);
    assert_eq!(values_with_prefix(&s, "late").len(), 1);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let f = Fixture::new();
    let slot = f.init_token("writers");
    let s = f.user_session(slot);
    let mut kids: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|p| {
            writer(&f, p, 40, *p == "b")
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process writes at the same time.
    for n in 0..40 {
        let label = format!("d-{n}");
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Value(format!("value-{label}").into_bytes()),
        ])
        .unwrap();
    }
    for k in &mut kids {
        assert!(k.wait().unwrap().success());
    }
    for p in ["a", "b", "c", "d"] {
        let v = values_with_prefix(&s, p);
        assert_eq!(v.len(), 40, "writer {p}");
        for (l, val) in v {
            assert_eq!(val, format!("value-{l}").into_bytes());
        }
    }
}

#[test]
fn sigkill_during_writes_keeps_every_reported_object() {
    let mut f = Fixture::new();
    let _ = f.init_token("crash");
    for round in 0..15 {
        let prefix = format!("r{round}");
        let mut child = writer(&f, &prefix, 100_000, round % 2 == 1)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut created = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("created ") {
                    created.push(n.parse::<usize>().unwrap());
                    let _ = first_tx.send(());
                }
            }
            created
        });
        // Kill at a different moment each round, once the writer is writing (a loaded machine
        // may take a while to start it).
        first_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer never created an object");
        std::thread::sleep(Duration::from_millis(20 + 37 * round as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let created = reader.join().unwrap();
        assert!(
            !created.is_empty(),
            "round {round}: the writer created nothing before the kill"
        );
        f.reload();
        let slot = f.p11().get_slots_with_initialized_token().unwrap()[0];
        let s = f.user_session(slot);
        let found = values_with_prefix(&s, &prefix);
        for n in &created {
            let label = format!("{prefix}-{n}");
            assert!(
                found.iter().any(|(l, _)| *l == label),
                "round {round}: {label} was reported created but is gone"
            );
        }
        for (l, v) in &found {
            assert_eq!(
                *v,
                format!("value-{l}").into_bytes(),
                "round {round}: half-written object {l}"
            );
        }
        assert!(
            found.len() <= created.len() + 1,
            "round {round}: more objects than created"
        );
    }
}

#[test]
fn threads_sign_and_digest_at_once() {
    let f = Fixture::new();
    let slot = f.init_token("threads");
    let s = f.user_session(slot);
    let (_, key) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::EcParams(vec![
                    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                ]),
                Attribute::Verify(true),
            ],
            &[Attribute::Sign(true), Attribute::Token(true)],
        )
        .unwrap();
    let p11 = f.p11().clone();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let p11 = p11.clone();
            scope.spawn(move || {
                let s = p11.open_ro_session(slot).unwrap();
                for i in 0..200 {
                    if t % 2 == 0 {
                        let sig = s
                            .sign(&Mechanism::EcdsaSha256, key, format!("{t}-{i}").as_bytes())
                            .unwrap();
                        assert_eq!(sig.len(), 64);
                    } else {
                        let d = s.digest(&Mechanism::Sha256, b"abc").unwrap();
                        assert_eq!(d[..4], [0xba, 0x78, 0x16, 0xbf]);
                    }
                }
            });
        }
    });
}
