//! CMS SignedData as `klyuch verify` reads it (cli/src/cms/, compiled in with #[path]): DER or
//! BER (OpenSSL's -stream) ContentInfo, the embedded content (constructed OCTET STRING segments
//! joined), then the whole verification on the host: signer certificate lookup, digest and
//! signature algorithms, signed attributes (messageDigest, signingTime, signingCertificateV2),
//! the signature through klyuch-crypto, the chain to a trust anchor.
//!
//! Input: `mode | bytes`. Mode bit 0: verify detached against a fixed content instead of the
//! embedded one; bit 1: the signature's own first certificate is also the trust anchor.
#![no_main]

#[path = "../../cli/src"]
#[allow(dead_code, clippy::all)]
mod cli {
    pub mod cms;
    pub mod describe;
    pub mod error;
    pub mod progress;
    pub mod tokenkey;
}
// `crate::describe`, `crate::error`, `crate::progress`, `crate::tokenkey` inside them resolve
// through this `use` (the module `cms` is not re-exported: the name is the cms crate's).
use cli::{describe, error, progress, tokenkey};

use cli::cms::check::{Content, Trust, verify};
use libfuzzer_sys::fuzz_target;
use x509_cert::Certificate;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, der)) = data.split_first() else {
        return;
    };
    let Ok((sd, ber)) = cli::cms::parse_signed_data(der) else {
        return;
    };
    let embedded = cli::cms::embedded_content(&sd, ber);
    let anchors: Vec<(Certificate, String)> = if mode & 2 != 0 {
        sd.certificates
            .iter()
            .flat_map(|s| s.0.iter())
            .filter_map(|c| match c {
                ::cms::cert::CertificateChoices::Certificate(c) => {
                    Some((c.clone(), "fuzz".to_string()))
                }
                _ => None,
            })
            .take(1)
            .collect()
    } else {
        Vec::new()
    };
    let content = match (&embedded, mode & 1) {
        (Ok(Some(c)), 0) => c.clone(),
        _ => b"klyuch fuzz content".to_vec(),
    };
    // progress bars stay hidden (no terminal output from the fuzzer)
    progress::set_quiet(true);
    let trust = Trust::Anchors {
        certs: anchors,
        system: None,
    };
    if let Ok(report) = verify(&sd, Content::Embedded(&content), &trust) {
        let _ = (report.problem.is_none(), report.signer.len());
    }
    let _: error::Result<()> = Ok(());
    let _ = (describe::CKK_GOSTR3410_512, tokenkey::ecdsa_raw(&[], 32));
});
