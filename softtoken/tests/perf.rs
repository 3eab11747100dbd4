//! Timings with 0 / 100 / 1,000 / 10,000 objects (printed, never asserted):
//!
//! ```text
//! cargo test -p softtoken --release --test perf -- --ignored --nocapture
//! ```
//!
//! "open" is what a module start costs the soft token (open the store, list the slots, read the
//! token info); "first find" adds reading the object log; the rest are steady-state calls in
//! a process that has the token open. Half of the objects are private.

mod common;

use common::*;
use std::time::{Duration, Instant};
use token_api::ck::*;
use token_api::{SlotSource, Template};

fn per_call(n: u32, mut f: impl FnMut(u32)) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed() / n
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn id_of(i: u32) -> Vec<u8> {
    format!("id-{i:08}").into_bytes()
}

#[test]
#[ignore = "prints timings; run with --release -- --ignored --nocapture"]
fn find_and_open_timings() {
    println!(
        "| objects | open (module start) | open + first find | login + decrypt | find by CKA_OBJECT_ID | \
         find by CKA_LABEL | find by CKA_CLASS (all) | find by CKA_VALUE (unindexed) | \
         log size |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [0u32, 100, 1_000, 10_000] {
        let tmp = tempfile::tempdir().unwrap();
        let build = Instant::now();
        {
            let src = open(tmp.path());
            let t = init_token(&src);
            login_user(&t);
            for i in 0..n {
                let mut d = data(&format!("obj{i}"), &[0x5a; 64], true, i % 2 == 1);
                d.set(CKA_OBJECT_ID, id_of(i));
                d.set(CKA_APPLICATION, format!("app{}", i % 10).into_bytes());
                t.create_object(&RW, &d).unwrap();
            }
        }
        let build = build.elapsed();

        // Module start, a few times (the first one after writing may pay for the page cache).
        let mut open_time = Duration::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            let src = open(tmp.path());
            src.slots().unwrap();
            let _ = src.token(0).unwrap().info();
            open_time = open_time.min(t0.elapsed());
        }
        let t0 = Instant::now();
        let src = open(tmp.path());
        src.slots().unwrap();
        let t = src.token(0).unwrap();
        let _ = t.info();
        let mut s = Template::new();
        s.set(CKA_OBJECT_ID, id_of(n.saturating_sub(2)));
        let found = t.find_objects(&RW, &s).unwrap();
        let first_find = t0.elapsed();
        assert_eq!(found.len(), usize::from(n >= 2));

        let t1 = Instant::now();
        login_user(&t);
        let login = t1.elapsed();

        let k = 2000;
        let by_id = per_call(k, |i| {
            let mut s = Template::new();
            s.set(CKA_OBJECT_ID, id_of(i % n.max(1)));
            let r = t.find_objects(&RW, &s).unwrap();
            assert!(n == 0 || r.len() == 1);
        });
        let by_label = per_call(k, |i| {
            let r = t
                .find_objects(&RW, &by_label(&format!("obj{}", i % n.max(1))))
                .unwrap();
            assert!(n == 0 || r.len() == 1);
        });
        let reps = if n >= 10_000 { 20 } else { 200 };
        let by_class = per_call(reps, |_| {
            let mut s = Template::new();
            s.set_ulong(CKA_CLASS, CKO_DATA);
            assert_eq!(t.find_objects(&RW, &s).unwrap().len(), n as usize);
        });
        let unindexed = per_call(reps, |_| {
            let mut s = Template::new();
            s.set(CKA_VALUE, vec![0x5a; 64]);
            assert_eq!(t.find_objects(&RW, &s).unwrap().len(), n as usize);
        });
        let stats = src.soft_token(0).unwrap().stats().unwrap();
        println!(
            "| {n} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {} KiB |",
            open_time.as_secs_f64() * 1e3,
            first_find.as_secs_f64() * 1e3,
            login.as_secs_f64() * 1e3,
            us(by_id),
            us(by_label),
            us(by_class),
            us(unindexed),
            stats.log_bytes / 1024
        );
        eprintln!("  (building the store with {n} objects took {build:.2?})");
    }
}

/// Where the time of reading a 10,000-object log goes.
#[test]
#[ignore = "prints timings; run with --release -- --ignored --nocapture"]
fn load_breakdown() {
    use softtoken::format;
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    for i in 0..10_000u32 {
        let mut d = data(&format!("obj{i}"), &[0x5a; 64], true, false);
        d.set(CKA_OBJECT_ID, id_of(i));
        t.create_object(&RW, &d).unwrap();
    }
    let log = files(tmp.path())
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    let paths = softtoken::store::TokenPaths::new(log.parent().unwrap().to_path_buf());
    let meta = paths.read_meta().unwrap().0;
    let aead = softtoken::seal::Aead::new(&meta.k_pub);
    for _ in 0..3 {
        let t0 = Instant::now();
        let bytes = std::fs::read(&log).unwrap();
        let t1 = Instant::now();
        let scan = format::scan(&bytes);
        let t2 = Instant::now();
        let recs: Vec<format::SealedRecord> = scan
            .frames
            .iter()
            .flat_map(|f| format::decode_records(f.body).unwrap())
            .collect();
        let t3 = Instant::now();
        let opened = recs
            .iter()
            .filter(|r| r.open(&aead, &meta.uuid).is_some())
            .count();
        let t4 = Instant::now();
        let mut n = 0;
        for r in &recs {
            let aad = format::record_aad(&meta.uuid, r.seq, r.id, r.op, r.private);
            n += aead.open(&r.nonce, &aad, &r.ct).unwrap().len();
        }
        println!("  of which AES-GCM only: {:?} ({n} bytes)", t4.elapsed());
        assert_eq!(opened, 10_000);
        println!(
            "read {:?}, scan+checksum {:?}, decode {:?}, decrypt+decode attrs {:?}",
            t1 - t0,
            t2 - t1,
            t3 - t2,
            t4 - t3
        );
    }
    let t0 = Instant::now();
    let src = open(tmp.path());
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    t.find_objects(&RW, &by_label("obj5")).unwrap();
    println!("whole first find: {:?}", t0.elapsed());
}
