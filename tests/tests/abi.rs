//! The raw C interface, driven by a C program (`tests/c/abi_check.c`) as a C application would:
//! NULL pointers and lengths at every entry point, the output-buffer contract with guard bytes,
//! function lists and interfaces, application mutexes, CKF_LIBRARY_CANT_CREATE_OS_THREADS, fork
//! and threads.

use klyuch_tests::{module_path, require, Fixture};
use std::path::PathBuf;
use std::process::Command;

fn compile(f: &Fixture) -> PathBuf {
    let src = klyuch_tests::workspace_root().join("tests/c/abi_check.c");
    let exe = f.path("abi_check");
    let out = Command::new("cc")
        // scripts/sanitizers.sh preloads the ASan runtime into the test: not into the compiler.
        .env_remove("LD_PRELOAD")
        .args([
            "-O1",
            "-Wall",
            "-Werror",
            "-Wno-unused-parameter",
            "-I/usr/include/p11-kit-1",
            "-o",
        ])
        .arg(&exe)
        .arg(&src)
        .args(["-ldl", "-lpthread"])
        // Extra flags: scripts/sanitizers.sh builds the program with -fsanitize=address, which
        // also brings the ASan runtime that a module built with -Zsanitizer=address needs.
        .args(
            std::env::var("KLYUCH_ABI_CFLAGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .output()
        .expect("cc");
    assert!(
        out.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn abi(test: &str) {
    require!("cc");
    if !std::path::Path::new("/usr/include/p11-kit-1/p11-kit/pkcs11.h").exists() {
        eprintln!("SKIPPED: libp11-kit-dev (pkcs11.h) is not installed");
        return;
    }
    let f = Fixture::new();
    f.init_token("abi");
    let exe = compile(&f);
    let mut c = Command::new(&exe);
    c.arg(module_path()).arg(test);
    for (k, v) in f.env() {
        c.env(k, v);
    }
    let out = c.output().expect("run abi_check");
    let text = klyuch_tests::text(&out);
    assert!(out.status.success(), "abi_check {test}:\n{text}");
    assert!(text.contains(&format!("PASS {test}")), "{text}");
}

#[test]
fn interfaces_and_function_lists() {
    abi("interfaces");
}

#[test]
fn every_function_before_initialize() {
    abi("uninit");
}

#[test]
fn bad_arguments_get_the_spec_codes() {
    abi("args");
}

#[test]
fn output_buffer_contract_never_overruns() {
    abi("buffers");
}

#[test]
fn application_mutex_callbacks() {
    abi("mutexes");
}

#[test]
fn library_cant_create_os_threads() {
    abi("nothreads");
}

#[test]
fn fork_child_is_not_initialized() {
    abi("fork");
}

#[test]
fn many_threads() {
    abi("threads");
}
