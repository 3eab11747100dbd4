//! Random sequences of PKCS#11 calls with adversarial arguments, through the exported C
//! functions of the module, on a soft token store made once per process (see
//! `pkcs11-module/src/abi/fuzz.rs` for the decoding and what is checked).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// The store folder, kept for the life of the process (a fuzzing process ends by exit or
/// abort, so scripts/fuzz.sh removes the folders of earlier runs).
static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("klyuch-fuzz-abi-")
            .tempdir()
            .expect("temporary folder")
    });
    klyuch_pkcs11::abi::fuzz::fuzz_setup(dir.path());
    klyuch_pkcs11::abi::fuzz::fuzz_calls(data);
});
