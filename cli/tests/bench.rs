//! `klyuch bench` runs end to end (a tiny run: one round, milliseconds per value) and prints its
//! table; speed itself is never checked here.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn klyuch_module() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KLYUCH_TEST_MODULE") {
        return Some(PathBuf::from(p));
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_klyuch"));
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        bin.parent().map(|d| d.join("libklyuch_pkcs11.so")),
        Some(ws.join("target/release/libklyuch_pkcs11.so")),
        Some(ws.join("target/debug/libklyuch_pkcs11.so")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.exists())
}

fn bench(module: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_klyuch"))
        .arg("--module")
        .arg(module)
        .arg("bench")
        .args(["--rounds", "1", "--seconds", "0.005"])
        .args(args)
        .output()
        .expect("run klyuch");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn prints_ratios_side_by_side() {
    let Some(m) = klyuch_module() else {
        eprintln!("SKIPPED: libklyuch_pkcs11.so not built");
        return;
    };
    if !Path::new(SOFTHSM).exists() {
        eprintln!("SKIPPED: SoftHSMv2 not installed");
        return;
    }
    let (code, out, err) = bench(&m, &["--only", "digest,random"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for text in [
        "SHA-256 C_DigestInit + C_Digest, 64 B",
        "C_GenerateRandom, 1 MiB",
        "SoftHSMv2",
        "aws-lc-rs raw",
        "≥ 3x",
        "machine: ",
        "targets: ",
    ] {
        assert!(out.contains(text), "no {text:?} in\n{out}\n{err}");
    }
    assert!(out.contains('x'), "{out}");

    let (code, out, err) = bench(
        &m,
        &["--only", "objects", "--objects", "0,10", "--markdown"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("| operation | Klyuch |"), "{out}\n{err}");
    assert!(out.contains("C_FindObjects by CKA_ID, 10 objects"), "{out}");
    assert!(
        out.contains("module start + C_Login + first C_FindObjects, 10 objects"),
        "{out}"
    );
    assert!(!out.contains("n/a"), "{out}\n{err}");
}

#[test]
fn a_missing_contender_is_not_available_not_a_failure() {
    let Some(m) = klyuch_module() else {
        eprintln!("SKIPPED: libklyuch_pkcs11.so not built");
        return;
    };
    let (code, out, err) = bench(
        &m,
        &[
            "--only",
            "digest",
            "--filter",
            "digest/sha256/64",
            "--softhsm",
            "/nonexistent/libsofthsm2.so",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("n/a [1]"), "{out}");
    assert!(
        out.contains("SoftHSMv2: /nonexistent/libsofthsm2.so does not exist"),
        "{out}"
    );
}
