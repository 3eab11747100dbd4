//! `klyuch sign`: CMS SignedData signatures (CAdES-BES) of files, with a key on the token.
//!
//! The content is hashed on the host in chunks (any size, constant memory); the token signs the
//! signed attributes (contentType, messageDigest, signingTime, signingCertificateV2) with the
//! hash-and-sign mechanism of the key type, so any PKCS#11 module that can sign works. The
//! signer's certificate is the certificate object with the key's `CKA_ID`.

use crate::cms::alg::SignAlg;
use crate::cms::check::validity_words;
use crate::ctx::{Ctx, TokenSelector};
use crate::error::{CliError, Result};
use crate::pin::UserPinArgs;
use crate::tokenkey::{bytes_attr, find_one, key_spki, key_type};
use clap::Args;
use cryptoki::object::{AttributeType, ObjectClass};
use cryptoki::session::UserType;
use der::{Decode, Encode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use x509_cert::Certificate;
use x509_cert::time::Time;

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The key: a PKCS#11 URI, e.g. 'pkcs11:token=My%20token;id=%01' (RFC 7512)
    #[arg(long, value_name = "URI")]
    pub key: String,
    /// The files to sign; each gets FILE.sig next to it
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Write the signature here (only with one FILE; "-" for standard output)
    #[arg(long, short = 'o', value_name = "FILE.sig")]
    pub out: Option<PathBuf>,
    /// Put the content inside the signature (enveloping) instead of a detached signature
    #[arg(long)]
    pub attached: bool,
    /// Write PEM (-----BEGIN CMS-----) instead of DER
    #[arg(long)]
    pub pem: bool,
    /// RSA keys: sign with RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) instead of PKCS#1 v1.5
    #[arg(long)]
    pub pss: bool,
    /// Sign even with an expired or not yet valid certificate
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

fn now_time() -> Result<Time> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CliError::new("the system clock is before 1970"))?
        .as_secs();
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|e| CliError::new(format!("the system clock is out of range: {e}")))?;
    Ok(Time::from(dt))
}

/// The signature file for `file`: FILE.sig next to it.
fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Refuse a certificate that is not valid now, unless forced.
fn check_validity(cert: &Certificate, force: bool) -> Result<()> {
    let v = cert.tbs_certificate().validity();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let problem = if now < v.not_before.to_unix_duration() {
        Some(format!(
            "the signer's certificate is not valid yet (it is valid from {})",
            v.not_before
        ))
    } else if now > v.not_after.to_unix_duration() {
        Some(format!(
            "the signer's certificate has expired (it was valid until {})",
            v.not_after
        ))
    } else {
        None
    };
    match (problem, force) {
        (None, _) => Ok(()),
        (Some(p), false) => Err(CliError::new(format!(
            "{p}; a signature made with it will not be accepted. Nothing was signed. Renew the \
             certificate, or sign anyway with --force"
        ))),
        (Some(p), true) => {
            eprintln!("klyuch: warning: {p}; signing anyway (--force)");
            Ok(())
        }
    }
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &SignArgs) -> Result<()> {
    let uri = crate::uri::parse(&a.key)?;
    if a.out.is_some() && a.files.len() > 1 {
        return Err(CliError::usage(
            "-o/--out names one signature file, but several files are to be signed; leave -o out \
             (each FILE gets FILE.sig)",
        ));
    }
    let sel = uri.selector(sel)?;
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(&sel)?;
    if !uri.token_matches(&info) {
        return Err(CliError::new(format!(
            "the selected token \"{}\" does not match the key URI's serial/manufacturer/model",
            info.label().trim_end()
        )));
    }
    let session = ctx.open_session(slot, false)?;
    let pin = ctx.user_pin_for(&info, &uri.pin_args(&a.pin).source())?;
    ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    let (private, id) =
        crate::uri::find_private_key(&session, uri.id.as_deref(), uri.object.as_deref())?;
    let cert_h = find_one(&session, ObjectClass::CERTIFICATE, &id)?.ok_or_else(|| {
        CliError::new(format!(
            "no certificate with the key's ID {} on the token: a CMS signature carries the \
             signer's certificate; `klyuch import CERT.pem --id {}` puts it there",
            hex::encode(&id),
            hex::encode(&id)
        ))
    })?;
    let cert_der = bytes_attr(&session, cert_h, AttributeType::Value)
        .ok_or_else(|| CliError::new("the certificate object has no value (CKA_VALUE)"))?;
    let cert = Certificate::from_der(&cert_der).map_err(|e| {
        CliError::new(format!(
            "the certificate with ID {} is not a valid X.509 certificate: {e}",
            hex::encode(&id)
        ))
    })?;
    let public = find_one(&session, ObjectClass::PUBLIC_KEY, &id)?;
    let spki_der = key_spki(&session, private, public)?;
    let cert_spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| CliError::new(format!("bad certificate: {e}")))?;
    if cert_spki != spki_der {
        return Err(CliError::new(format!(
            "the certificate with ID {} is for another key than the private key; nothing was \
             signed",
            hex::encode(&id)
        )));
    }
    check_validity(&cert, a.force)?;
    let always_auth = crate::tokenkey::always_authenticate(&session, private);
    let intermediates = issuer_chain(&session, &cert);
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(&spki_der)
        .map_err(|e| CliError::new(format!("the key's SubjectPublicKeyInfo is malformed: {e}")))?;
    let alg = SignAlg::for_key(key_type(&session, private)?, &spki, a.pss)?;
    let mechanism = alg.mechanism()?;
    for file in &a.files {
        let (digest, len) = alg.digest.digest_file(file)?;
        let attrs = crate::cms::signed_attributes(alg, &digest, &cert, &cert_der, now_time()?)?;
        let tbs = crate::cms::signed_attributes_der(&attrs)?;
        let signing = |e: cryptoki::error::Error| {
            CliError::from(e).context(format!("signing {}", file.display()))
        };
        let sig = match crate::tokenkey::sign(
            &session,
            private,
            always_auth,
            pin.as_ref(),
            &mechanism,
            &tbs,
        )
        .map_err(signing)
        {
            Ok(sig) => sig,
            // A module without the hash-and-sign mechanism (SoftHSMv2 2.6 has only CKM_ECDSA;
            // some GOST tokens only the raw CKM_GOSTR3410[_512]): hash the signed attributes
            // here and sign the digest (PKCS#11 3.0 §2.3.6; gost-pkcs11.md §2.1, §8).
            Err(e) if e.is_rv(cryptoki_sys::CKR_MECHANISM_INVALID) => match alg.raw_mechanism()? {
                // single-part only: with CKA_ALWAYS_AUTHENTICATE the login must come between
                // C_SignInit and C_Sign, which cryptoki has no call for
                Some(raw) => session
                    .sign(&raw, private, &alg.digest.digest(&tbs))
                    .map_err(signing)?,
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let sig = match alg.kind {
            crate::cms::alg::SigKind::Ecdsa { .. } => crate::tokenkey::ecdsa_der(&sig)?,
            _ => sig,
        };
        let sd = crate::cms::signed_data(alg, &cert, &intermediates, attrs, sig)?;
        let content = a.attached.then_some((file.as_path(), len));
        let out_path = a.out.clone().unwrap_or_else(|| sig_path(file));
        let mut der = Vec::new();
        let stdout = out_path.as_os_str() == "-";
        if a.pem {
            // PEM is for small files: the whole signature is built in memory.
            crate::cms::write_content_info(&mut der, &sd, content)?;
            let pem = pem_rfc7468::encode_string(
                crate::cms::PEM_LABEL,
                pem_rfc7468::LineEnding::LF,
                &der,
            )
            .map_err(|e| CliError::new(format!("cannot encode PEM: {e}")))?;
            write_out(&out_path, stdout, |w| {
                w.write_all(pem.as_bytes())
                    .map_err(|e| CliError::new(format!("writing: {e}")))
            })?;
        } else {
            write_out(&out_path, stdout, |w| {
                crate::cms::write_content_info(w, &sd, content)
            })?;
        }
        if !stdout {
            eprintln!(
                "Signed {} -> {} ({}, {})",
                file.display(),
                out_path.display(),
                alg.describe(),
                if a.attached { "attached" } else { "detached" }
            );
        }
    }
    let _ = session.logout();
    eprintln!(
        "Signer: {}; certificate {}",
        cert.tbs_certificate().subject(),
        validity_words(&cert)
    );
    Ok(())
}

/// The intermediate CA certificates of `cert` that are on the token (found by subject = issuer
/// name, up to a self-signed root, which is left out: the verifier has its own roots).
fn issuer_chain(session: &cryptoki::session::Session, cert: &Certificate) -> Vec<Certificate> {
    let mut out: Vec<Certificate> = Vec::new();
    let mut current = cert.clone();
    for _ in 0..8 {
        let tbs = current.tbs_certificate();
        if tbs.issuer() == tbs.subject() {
            break;
        }
        let Ok(issuer) = tbs.issuer().to_der() else {
            break;
        };
        let Ok(found) = session.find_objects(&[
            cryptoki::object::Attribute::Class(ObjectClass::CERTIFICATE),
            cryptoki::object::Attribute::Subject(issuer),
        ]) else {
            break;
        };
        let next = found
            .into_iter()
            .filter_map(|h| bytes_attr(session, h, AttributeType::Value))
            .filter_map(|d| Certificate::from_der(&d).ok())
            .find(|c| *c != current && !out.contains(c));
        match next {
            Some(n) if n.tbs_certificate().issuer() != n.tbs_certificate().subject() => {
                out.push(n.clone());
                current = n;
            }
            _ => break,
        }
    }
    out
}

/// Write through a temporary file renamed into place, so a failure never leaves half a
/// signature under the final name.
fn write_out(
    path: &Path,
    stdout: bool,
    f: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    if stdout {
        let mut out = std::io::stdout().lock();
        f(&mut out)?;
        return out
            .flush()
            .map_err(|e| CliError::new(format!("writing: {e}")));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| CliError::new(format!("cannot write in {}: {e}", dir.display())))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        f(&mut w)?;
        w.flush()
            .map_err(|e| CliError::new(format!("writing {}: {e}", path.display())))?;
    }
    // A signature is public: readable by all, as any file written with the usual umask.
    use std::os::unix::fs::PermissionsExt;
    let _ = tmp
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644));
    tmp.persist(path)
        .map_err(|e| CliError::new(format!("writing {}: {}", path.display(), e.error)))?;
    Ok(())
}
