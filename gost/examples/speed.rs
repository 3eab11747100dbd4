//! Signatures and verifications per second for every curve (one thread).
//!
//! `cargo run --release -p klyuch-gost --example speed [seconds-per-row]`
//!
//! Rates are per second of this thread's CPU time (Linux `/proc/thread-self/schedstat`), so that
//! other processes competing for the cores do not distort them; wall-clock time is used where
//! that file is missing. `bench/openssl_gost_speed.py` measures OpenSSL's engine the same way.

use std::time::{Duration, Instant};

/// CPU time of the current thread in seconds, if the kernel reports it.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

use klyuch_gost::{ParamSet, SigningKey, streebog256, streebog512};

fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up (builds the fixed-base table), then count whole iterations in `budget`.
    f();
    let start = Instant::now();
    let cpu0 = thread_cpu_secs();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    let secs = match (cpu0, thread_cpu_secs()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => start.elapsed().as_secs_f64(),
    };
    n as f64 / secs
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    println!(
        "{:<42} {:>12} {:>12} {:>14}",
        "parameter set", "sign/s", "verify/s", "table build ms"
    );
    for ps in [
        ParamSet::Tc26Gost256A,
        ParamSet::Tc26Gost256B,
        ParamSet::Tc26Gost256C,
        ParamSet::Tc26Gost256D,
        ParamSet::Tc26Gost512A,
        ParamSet::Tc26Gost512B,
        ParamSet::Tc26Gost512C,
    ] {
        // The first key generation builds the curve's fixed-base table.
        let t0 = Instant::now();
        let key = SigningKey::generate(ps).expect("keygen");
        let _ = key.verifying_key();
        let build_ms = t0.elapsed().as_secs_f64() * 1e3;
        let vk = key.verifying_key().clone();
        let digest = if ps.bits() == 256 {
            streebog256(b"speed").to_vec()
        } else {
            streebog512(b"speed").to_vec()
        };
        let sig = key.sign_digest(&digest).expect("sign");
        let s = rate(budget, || {
            std::hint::black_box(
                key.sign_digest(std::hint::black_box(&digest))
                    .expect("sign"),
            );
        });
        let v = rate(budget, || {
            vk.verify_digest(std::hint::black_box(&digest), &sig)
                .expect("verify");
        });
        println!(
            "{:<42} {:>12.0} {:>12.0} {:>14.1}",
            ps.name(),
            s,
            v,
            build_ms
        );
    }
}
