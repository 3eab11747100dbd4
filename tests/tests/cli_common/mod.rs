//! Shared by the `cli_*` tests: the built `klyuch` tool run against the fixture's store.
#![allow(dead_code)]

use klyuch_tests::{text, Fixture};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The `klyuch` tool next to the module (built by `cargo build --release -p klyuch`).
pub fn klyuch_bin() -> Option<PathBuf> {
    let m = klyuch_tests::module_path();
    let dir = m.parent()?;
    [dir.join("klyuch"), dir.parent()?.join("klyuch")]
        .into_iter()
        .find(|p| p.exists())
}

/// Skip the test (with a visible note) when the tool is not built.
#[macro_export]
macro_rules! require_klyuch {
    () => {
        match cli_common::klyuch_bin() {
            Some(b) => b,
            None => {
                eprintln!("SKIPPED: the klyuch tool is not built (cargo build -p klyuch)");
                return;
            }
        }
    };
}

/// Run `klyuch --module <Klyuch's module> ARGS` in the fixture's folder and environment.
pub fn run(f: &Fixture, bin: &Path, args: &[&str]) -> Output {
    let m = klyuch_tests::module_path();
    let mut all = vec!["--module", m.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    f.command(bin.to_str().expect("utf-8 path"), &all)
        .output()
        .expect("run klyuch")
}

/// As [`run`], and it must succeed: its stdout then stderr.
pub fn ok(f: &Fixture, bin: &Path, args: &[&str]) -> String {
    let o = run(f, bin, args);
    assert!(
        o.status.success(),
        "klyuch {args:?} failed ({}):\n{}",
        o.status,
        text(&o)
    );
    text(&o)
}

/// As [`run`], and it must fail with `code`, saying `words`: its stdout then stderr.
pub fn fails(f: &Fixture, bin: &Path, args: &[&str], code: i32, words: &str) -> String {
    let o = run(f, bin, args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(code), "klyuch {args:?}:\n{t}");
    assert!(
        t.contains(words),
        "klyuch {args:?} does not say {words:?}:\n{t}"
    );
    t
}

/// Run a tool in the fixture's folder; it must succeed. Its stdout then stderr.
pub fn tool(f: &Fixture, program: &str, args: &[&str]) -> String {
    text(&f.run(program, args))
}

/// `id` hex as a PKCS#11 URI id (`01a2` -> `%01%a2`).
pub fn uri_id(hex_id: &str) -> String {
    hex_id
        .as_bytes()
        .chunks(2)
        .map(|c| format!("%{}", std::str::from_utf8(c).unwrap()))
        .collect()
}

/// Is OpenSSL's GOST engine there?
pub fn have_gost_engine() -> bool {
    std::process::Command::new("openssl")
        .args(["engine", "gost", "-c"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A test CA (EC P-256): ca.key, ca.pem in the fixture folder.
pub fn make_ca(f: &Fixture) {
    tool(
        f,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Klyuch Test CA",
            "-days",
            "60",
        ],
    );
}

/// Issue `csr` with the test CA for `days` days into `out` (GOST requests through the engine).
pub fn issue(f: &Fixture, csr: &str, out: &str, days: &str, gost: bool) {
    let mut args = vec!["x509", "-req"];
    if gost {
        args.extend(["-engine", "gost"]);
    }
    args.extend([
        "-in",
        csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        days,
        "-copy_extensions",
        "copy",
        "-out",
        out,
    ]);
    tool(f, "openssl", &args);
}
