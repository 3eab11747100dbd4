//! Signatures and verifications per second for every curve (one thread).
//!
//! `cargo run --release -p klyuch-gost --example speed [seconds-per-row]`

use std::time::{Duration, Instant};

use klyuch_gost::{ParamSet, SigningKey, streebog256, streebog512};

fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up (builds the fixed-base table), then count whole iterations in `budget`.
    f();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    println!(
        "{:<42} {:>12} {:>12}",
        "parameter set", "sign/s", "verify/s"
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
        let key = SigningKey::generate(ps).expect("keygen");
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
        println!("{:<42} {:>12.0} {:>12.0}", ps.name(), s, v);
    }
}
