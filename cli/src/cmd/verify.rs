//! `klyuch verify`: check a CMS signature (from `klyuch sign`, OpenSSL, or any CAdES signer)
//! on the host, without a token: the content digest, the signature, the signing-certificate
//! attribute, the certificate's validity at signing time and its chain to the given CAs.

use crate::cms::check::{Content, verify};
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
    #[arg(long = "ca", value_name = "CA.pem")]
    pub ca: Vec<PathBuf>,
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
    let anchors = load_anchors(&a.ca)?;
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
    let r = verify(&sd, content, &anchors).map_err(|e| e.context(a.signature.display()))?;
    let status = if r.problem.is_none() {
        "VALID"
    } else {
        "NOT VALID"
    };
    out!("Signature:    {status}");
    out!("Signed file:  {what}");
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
    match r.problem {
        None => Ok(()),
        Some(why) => Err(CliError::new(format!(
            "{}: NOT VALID: {why}",
            display(&a.signature)
        ))),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
