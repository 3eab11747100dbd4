//! `klyuch verify`: check a CMS signature (from `klyuch sign`, OpenSSL, or any CAdES signer)
//! on the host, without a token: the content digest, the signature, the signing-certificate
//! attribute, the certificate's validity at signing time and its chain to the given CAs.

use crate::cms::check::{Content, Report, Trust, verify};
use crate::error::{CliError, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use x509_cert::Certificate;

/// A line on standard output; a closed pipe (`| head`) is not an error.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The signature file (DER or PEM CMS)
    #[arg(value_name = "FILE.sig")]
    pub signature: PathBuf,
    /// The signed file, for a detached signature [default: FILE.sig without ".sig", if there]
    #[arg(long, value_name = "FILE")]
    pub content: Option<PathBuf>,
    /// A trusted CA certificate (PEM or DER; a PEM file may hold several); repeat for more
    /// [default: the system trust store, /etc/ssl/certs/ca-certificates.crt]
    #[arg(long = "ca", value_name = "CA.pem")]
    pub ca: Vec<PathBuf>,
    /// Do not check the signer's certificate chain (said in the output); the signature, the
    /// content digest and the certificate's dates are still checked
    #[arg(long, conflicts_with = "ca")]
    pub no_chain: bool,
    /// Print the result as one JSON object on standard output (the shape is in cli/README.md);
    /// the exit status is the same
    #[arg(long)]
    pub json: bool,
}

/// The trust anchors when no `--ca` is given (Debian's ca-certificates bundle).
pub const SYSTEM_TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The certificates of the system trust store; those this parser cannot read are left out
/// (they are roots of other CAs; the signer's chain is then reported as untrusted).
fn system_anchors(path: &Path) -> Vec<(Certificate, String)> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let name = path.display().to_string();
    let text = String::from_utf8_lossy(&text);
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    text.match_indices(BEGIN)
        .filter_map(|(i, _)| {
            use der::DecodePem;
            let block = &text[i..];
            let end = block.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
            Certificate::from_pem(&block[..end]).ok()
        })
        .map(|c| (c, name.clone()))
        .collect()
}

fn load_anchors(files: &[PathBuf]) -> Result<Vec<(Certificate, String)>> {
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read(f)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", f.display())))?;
        let name = f.display().to_string();
        let certs = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
            Certificate::load_pem_chain(&data)
        } else {
            use der::Decode;
            Certificate::from_der(&data).map(|c| vec![c])
        }
        .map_err(|e| CliError::new(format!("{} is not a certificate file: {e}", f.display())))?;
        if certs.is_empty() {
            return Err(CliError::new(format!(
                "{} holds no certificate",
                f.display()
            )));
        }
        out.extend(certs.into_iter().map(|c| (c, name.clone())));
    }
    Ok(out)
}

pub fn run(a: &VerifyArgs) -> Result<()> {
    let r = check(a);
    if a.json {
        print_json(a, &r);
    }
    let r = r?;
    match r.problem {
        None => Ok(()),
        Some((_, why)) => Err(CliError::new(format!(
            "{}: NOT VALID: {why}",
            display(&a.signature)
        ))),
    }
}

fn check(a: &VerifyArgs) -> Result<Report> {
    let trust = if a.no_chain {
        Trust::Skip
    } else if a.ca.is_empty() {
        Trust::Anchors {
            certs: system_anchors(Path::new(SYSTEM_TRUST_STORE)),
            system: Some(SYSTEM_TRUST_STORE.to_string()),
        }
    } else {
        Trust::Anchors {
            certs: load_anchors(&a.ca)?,
            system: None,
        }
    };
    // An attached DER signature is read around its content, which is hashed from the file in
    // chunks (constant memory); anything else is read whole.
    let mut embedded_bytes: Option<Vec<u8>> = None;
    let streamed = match &a.content {
        None => crate::cms::attached_layout(&a.signature)?,
        Some(_) => None,
    };
    let (sd, embedded) = match streamed {
        Some(l) => (l.sd, Some((l.content_offset, l.content_len))),
        None => {
            let der = crate::cms::read_signature_file(&a.signature)?;
            let (sd, ber) = crate::cms::parse_signed_data(&der)
                .map_err(|e| e.context(a.signature.display()))?;
            embedded_bytes = crate::cms::embedded_content(&sd, ber)
                .map_err(|e| e.context(a.signature.display()))?;
            (sd, None)
        }
    };
    let guessed: Option<PathBuf> = a
        .signature
        .to_str()
        .and_then(|s| s.strip_suffix(".sig").or_else(|| s.strip_suffix(".p7s")))
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let inside = "the content inside the signature".to_string();
    let (content, what) = match (&a.content, embedded, &embedded_bytes, &guessed) {
        (Some(p), _, _, _) => (Content::File(p), p.display().to_string()),
        (None, Some((offset, len)), _, _) => {
            (Content::FileRange(&a.signature, offset, len), inside)
        }
        (None, None, Some(e), _) => (Content::Embedded(e), inside),
        (None, None, None, Some(p)) => (Content::File(p), p.display().to_string()),
        (None, None, None, None) => {
            return Err(CliError::usage(format!(
                "{} is a detached signature: name the signed file with --content FILE",
                a.signature.display()
            )));
        }
    };
    let mut r = verify(&sd, content, &trust).map_err(|e| e.context(a.signature.display()))?;
    r.attached = a.content.is_none() && (embedded.is_some() || embedded_bytes.is_some());
    r.content = what;
    if !a.json {
        print_text(&r);
    }
    Ok(r)
}

fn print_text(r: &Report) {
    let status = if r.problem.is_none() {
        "VALID"
    } else {
        "NOT VALID"
    };
    out!("Signature:    {status}");
    out!("Signed file:  {}", r.content);
    out!("Signer:       {}", r.signer);
    out!("Issuer:       {} (serial {})", r.issuer, r.serial);
    out!(
        "Signed at:    {}",
        r.signing_time
            .as_deref()
            .unwrap_or("unknown (no signingTime attribute)")
    );
    out!("Algorithm:    {}", r.algorithm);
    out!("Certificate:  valid {}", r.validity);
    if !r.signing_cert_attr.is_empty() {
        out!("Signing cert: {}", r.signing_cert_attr);
    }
    if !r.chain.is_empty() {
        out!("Chain:        {}", r.chain);
    }
}

/// The `--json` object (documented in cli/README.md, "klyuch verify --json"). A signature
/// that cannot be read at all gives `"result": "error"` with the message.
fn print_json(a: &VerifyArgs, r: &Result<Report>) {
    use serde_json::{Value, json};
    let opt = |s: &str| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::from(s)
        }
    };
    let v = match r {
        Err(e) => json!({
            "signature_file": display(&a.signature),
            "result": "error",
            "reason": { "code": "error", "message": e.to_string() },
        }),
        Ok(r) => json!({
            "signature_file": display(&a.signature),
            // the detached content's file, or null for the content inside the signature
            "content_file": if r.attached { Value::Null } else { Value::from(r.content.as_str()) },
            "result": if r.problem.is_none() { "valid" } else { "invalid" },
            "reason": match &r.problem {
                None => Value::Null,
                Some((code, message)) => json!({ "code": code, "message": message }),
            },
            "signer": {
                "subject": r.signer,
                "issuer": r.issuer,
                "serial": r.serial,
            },
            "signing_time": r.signing_time_rfc3339,
            "algorithm": r.algorithm,
            "digest": r.digest,
            "certificate": {
                "not_before": r.not_before,
                "not_after": r.not_after,
                "state_now": r.cert_state_now,
                "days_left": r.days_left,
            },
            "signing_certificate_attribute": opt(&r.signing_cert_attr),
            "chain": {
                "status": r.chain_status.code(),
                "path": r.chain_path,
                "words": opt(&r.chain),
            },
        }),
    };
    out!("{v:#}");
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Debian bundle (ca-certificates) is read block by block; nearly all its roots parse.
    #[test]
    fn system_trust_store_is_read() {
        let path = Path::new(SYSTEM_TRUST_STORE);
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: no {SYSTEM_TRUST_STORE}");
            return;
        };
        let blocks = text.matches("-----BEGIN CERTIFICATE-----").count();
        let certs = system_anchors(path);
        eprintln!("{} of {blocks} system roots parsed", certs.len());
        assert!(
            certs.len() * 10 >= blocks * 9,
            "{} of {blocks}",
            certs.len()
        );
        assert!(certs.iter().all(|(_, f)| f == SYSTEM_TRUST_STORE));
    }
}
