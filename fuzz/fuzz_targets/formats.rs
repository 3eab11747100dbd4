//! The file formats `klyuch import` reads: PEM, DER certificates, PKCS#8 (plain and encrypted),
//! PKCS#1, SEC1, SubjectPublicKeyInfo and PKCS#12 (with every PBE and MAC it knows, GOST
//! included), through the tool's own reader (`cli/src/input.rs`, compiled in here with #[path])
//! and then the key and certificate attribute extraction of `klyuch_crypto` that
//! `klyuch import` applies to what it found.
//!
//! Input: `format | passphrase choice | file bytes`.
#![no_main]

// The parsers of the `klyuch` binary crate, compiled into this target as they are (the cli
// crate has no library target). `crate::error`, `crate::p12` and `crate::pbe` inside them
// resolve through the `use` below.
#[path = "../../cli/src"]
#[allow(dead_code, clippy::all)]
mod cli {
    pub mod error;
    pub mod input;
    pub mod p12;
    pub mod pbe;
}
use cli::{error, input, p12, pbe};

use input::Format;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

const FORMATS: [Option<Format>; 5] = [
    None,
    Some(Format::Pem),
    Some(Format::Der),
    Some(Format::Pkcs8),
    Some(Format::Pkcs12),
];

/// The passphrase of the seed files (fuzz/corpus/formats/README), or others.
const PASSPHRASES: [&str; 3] = ["fuzz", "", "wrong"];

fuzz_target!(|data: &[u8]| {
    let (Some(&f), Some(&p)) = (data.first(), data.get(1)) else {
        return;
    };
    let bytes = &data[2..];
    let format = FORMATS[usize::from(f) % FORMATS.len()];
    let pw = PASSPHRASES[usize::from(p) % PASSPHRASES.len()];
    let mut asked = 0;
    let mut passphrase = || -> error::Result<SecretString> {
        asked += 1;
        Ok(SecretString::from(pw))
    };
    let Ok(contents) = input::read(bytes, format, &mut passphrase) else {
        return;
    };
    // What `klyuch import` does with it (cli/src/cmd/import.rs, `plan`).
    for c in &contents.certs {
        if let Ok(attrs) = klyuch_crypto::x509::certificate_attributes(&c.der) {
            if let Some(spki) = attrs.get(token_api::ck::CKA_PUBLIC_KEY_INFO) {
                let _ = klyuch_crypto::x509::public_key_attributes(spki);
            }
        }
    }
    for k in &contents.keys {
        if let Ok(private) = klyuch_crypto::pkcs8::private_key_attributes(&k.pkcs8) {
            let _ = klyuch_crypto::pkcs8::public_from_private(&private);
        }
    }
    for spki in &contents.public_keys {
        let _ = klyuch_crypto::x509::public_key_attributes(spki);
    }
    let _ = (
        contents.kind,
        contents.notes.len(),
        p12::is_pfx(bytes),
        pbe::PBES2,
    );
});
