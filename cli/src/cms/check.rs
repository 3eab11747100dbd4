//! Verification of a CMS SignedData on the host: the content digest against messageDigest, the
//! signature over the signed attributes (aws-lc-rs and klyuch-gost through `klyuch-crypto`),
//! the signing-certificate attribute, the certificate's validity at signing time, and the
//! chain to the trust anchors.

use super::alg::{DigestAlg, SignAlg, sign_alg_of};
use super::*;
use crate::describe::{WARN_DAYS, days_between};
use crate::error::{CliError, Result};
use cryptoki_sys::{CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE};
use spki::SubjectPublicKeyInfoOwned;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_cert::ext::pkix::SubjectKeyIdentifier;

/// Where the signed content is.
pub enum Content<'a> {
    File(&'a Path),
    /// `len` bytes at `offset` of a file (the content inside an attached signature file).
    FileRange(&'a Path, u64, u64),
    Embedded(&'a [u8]),
}

/// How the chain is checked.
pub enum Trust {
    /// Trusted CA certificates (with the file each came from); `system` when they are the
    /// system trust store (no `--ca` given), which changes the words of a failure.
    Anchors {
        certs: Vec<(Certificate, String)>,
        system: Option<String>,
    },
    /// `--no-chain`: the chain is not checked (said in the report).
    Skip,
}

/// The state of the chain check, as `--json` names it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// Not reached (an earlier check failed).
    #[default]
    NotReached,
    Valid,
    Invalid,
    /// `--no-chain`.
    Skipped,
}

impl ChainStatus {
    pub fn code(self) -> &'static str {
        match self {
            ChainStatus::NotReached => "not_reached",
            ChainStatus::Valid => "valid",
            ChainStatus::Invalid => "invalid",
            ChainStatus::Skipped => "skipped",
        }
    }
}

/// What a verification found. `problem` is `None` only when everything checked is valid.
#[derive(Default)]
pub struct Report {
    /// What was checked: the content file, or "the content inside the signature".
    pub content: String,
    /// The content was inside the signature (attached), not a file of its own.
    pub attached: bool,
    pub signer: String,
    pub issuer: String,
    pub serial: String,
    pub signing_time: Option<String>,
    /// The signing time in RFC 3339 (`2026-01-02T03:04:05Z`).
    pub signing_time_rfc3339: Option<String>,
    pub algorithm: String,
    /// The digest algorithm's name (`SHA-256`, `Streebog-256 (GOST R 34.11-2012)`).
    pub digest: String,
    pub validity: String,
    /// The certificate's validity in RFC 3339, and its state now: `valid`, `expired`,
    /// `not_yet_valid`; days left (negative: days since it expired).
    pub not_before: String,
    pub not_after: String,
    pub cert_state_now: &'static str,
    pub days_left: i64,
    pub signing_cert_attr: String,
    pub chain: String,
    pub chain_status: ChainStatus,
    /// The chain from the signer to the trust anchor, subjects in order.
    pub chain_path: Vec<String>,
    /// Why the signature is not valid: a stable code and the message.
    pub problem: Option<(&'static str, String)>,
}

fn fmt_time(t: &Time) -> String {
    let d = t.to_date_time();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds()
    )
}

fn rfc3339(t: &Time) -> String {
    let d = t.to_date_time();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        d.month(),
        d.day(),
        d.hour(),
        d.minutes(),
        d.seconds()
    )
}

fn unix(t: &Time) -> Duration {
    t.to_unix_duration()
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The certificate's validity now, in words: "valid until X (N days left)".
pub fn validity_words(cert: &Certificate) -> String {
    let v = cert.tbs_certificate().validity();
    let (nb, na, n) = (unix(&v.not_before), unix(&v.not_after), now());
    let from_to = format!(
        "from {} to {}",
        fmt_time(&v.not_before),
        fmt_time(&v.not_after)
    );
    if n < nb {
        format!("{from_to}: NOT YET VALID now")
    } else if n > na {
        let days = -days_between(n, na);
        format!("{from_to}: EXPIRED now ({days} days ago)")
    } else {
        let days = days_between(n, na);
        let warn = if days < WARN_DAYS {
            " - renew it soon"
        } else {
            ""
        };
        format!("{from_to}: valid now, {days} days left{warn}")
    }
}

/// Is `sig` (as CMS/X.509 carries it) a valid signature of `data` by the key `spki`?
pub fn host_verify(
    alg: SignAlg,
    spki: &SubjectPublicKeyInfoOwned,
    data: &[u8],
    sig: &[u8],
) -> Result<bool> {
    let spki_der = spki
        .to_der()
        .map_err(|e| CliError::new(format!("bad public key: {e}")))?;
    let t = klyuch_crypto::x509::public_key_attributes(&spki_der).map_err(|e| {
        CliError::new(format!(
            "the certificate's public key cannot be used: {}",
            e.detail()
        ))
    })?;
    let key = klyuch_crypto::Key::from_attributes(&t).map_err(|e| {
        CliError::new(format!(
            "the certificate's public key cannot be used: {}",
            e.detail()
        ))
    })?;
    let Some((mech, param, sig)) = alg.host_verifier(sig) else {
        return Ok(false); // an ECDSA signature that is not a well-formed ECDSA-Sig-Value
    };
    let m = klyuch_crypto::find(mech)
        .ok_or_else(|| CliError::new(format!("no verifier for {}", alg.describe())))?;
    let mut op = m
        .verify_init(Arc::new(key), &param)
        .map_err(|e| CliError::new(format!("cannot verify {}: {}", alg.describe(), e.detail())))?;
    match op.verify(data, &sig) {
        Ok(()) => Ok(true),
        Err(e) if e.rv() == CKR_SIGNATURE_INVALID || e.rv() == CKR_SIGNATURE_LEN_RANGE => Ok(false),
        Err(e) => Err(CliError::new(format!(
            "verifying the signature failed: {}",
            e.detail()
        ))),
    }
}

/// Did `issuer` sign `cert`?
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let ispki = issuer.tbs_certificate().subject_public_key_info();
    let Ok(alg) = sign_alg_of(cert.signature_algorithm(), None, ispki) else {
        return false;
    };
    let Ok(tbs) = cert.tbs_certificate().to_der() else {
        return false;
    };
    let Some(sig) = cert.signature().as_bytes() else {
        return false;
    };
    host_verify(alg, ispki, &tbs, sig).unwrap_or(false)
}

fn name_of(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

/// Is `cert` a CA certificate (basicConstraints cA TRUE, RFC 5280 §4.2.1.9)?
fn is_ca(cert: &Certificate) -> bool {
    use x509_cert::ext::pkix::BasicConstraints;
    matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, bc))) if bc.ca
    )
}

/// Why no chain was found.
enum ChainError {
    /// A certificate in the path has no CA basicConstraints, or was not valid at signing time:
    /// the code and the message.
    Bad(&'static str, String),
    /// No path to any anchor; the last issuer's name.
    Untrusted(String),
}

/// Find a path from `leaf` to one of `anchors` through `others` (intermediate CAs from the
/// signature file, which must be CA certificates valid at `at`): the subjects in order, the
/// anchor last with the file it came from. Anchors are trusted as given.
fn chain(
    leaf: &Certificate,
    others: &[Certificate],
    anchors: &[(Certificate, String)],
    at: Duration,
) -> std::result::Result<Vec<String>, ChainError> {
    let mut current = leaf.clone();
    let mut path = Vec::new();
    for _ in 0..8 {
        if let Some((_, file)) = anchors.iter().find(|(a, _)| *a == current) {
            path.push(format!("{} (trusted, {file})", name_of(&current)));
            return Ok(path);
        }
        if let Some((a, file)) = anchors.iter().find(|(a, _)| issued_by(&current, a)) {
            path.push(name_of(&current));
            path.push(format!("{} (trusted, {file})", name_of(a)));
            return Ok(path);
        }
        path.push(name_of(&current));
        match others
            .iter()
            .find(|c| **c != current && issued_by(&current, c))
        {
            Some(next) => {
                if !is_ca(next) {
                    return Err(ChainError::Bad(
                        "chain_issuer_not_ca",
                        format!(
                            "the certificate {} was issued by {}, which is not a CA certificate \
                             (no basicConstraints CA:TRUE)",
                            name_of(&current),
                            name_of(next)
                        ),
                    ));
                }
                let v = next.tbs_certificate().validity();
                if at < unix(&v.not_before) || at > unix(&v.not_after) {
                    return Err(ChainError::Bad(
                        "chain_intermediate_not_valid",
                        format!(
                            "the intermediate CA certificate {} was not valid when the document \
                             was signed (valid from {} to {})",
                            name_of(next),
                            fmt_time(&v.not_before),
                            fmt_time(&v.not_after)
                        ),
                    ));
                }
                current = next.clone()
            }
            None => break,
        }
    }
    Err(ChainError::Untrusted(
        current.tbs_certificate().issuer().to_string(),
    ))
}

/// The attribute `oid` of a signer, its first value.
fn attr(attrs: &Attributes, oid: ObjectIdentifier) -> Option<&Any> {
    attrs.iter().find(|a| a.oid == oid)?.values.iter().next()
}

fn signer_cert<'a>(si: &SignerInfo, certs: &'a [Certificate]) -> Option<&'a Certificate> {
    certs.iter().find(|c| {
        let tbs = c.tbs_certificate();
        match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                *tbs.issuer() == isn.issuer && *tbs.serial_number() == isn.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                matches!(tbs.get_extension::<SubjectKeyIdentifier>(), Ok(Some((_, s))) if s == *ski)
            }
        }
    })
}

/// Check the signingCertificateV2 (or the older signingCertificate) attribute against `cert`.
fn check_signing_cert_attr(attrs: &Attributes, cert: &Certificate) -> Result<String, String> {
    let cert_der = cert.to_der().map_err(|e| e.to_string())?;
    if let Some(v) = attr(attrs, ID_SIGNING_CERTIFICATE_V2) {
        let sc: SigningCertificateV2 = v
            .decode_as()
            .map_err(|e| format!("the signingCertificateV2 attribute is malformed: {e}"))?;
        let first = sc
            .certs
            .first()
            .ok_or("the signingCertificateV2 attribute names no certificate")?;
        let hash = match &first.hash_algorithm {
            None => DigestAlg::Sha256,
            Some(a) => DigestAlg::from_oid(&a.oid).ok_or_else(|| {
                format!(
                    "the signingCertificateV2 attribute uses an unsupported hash {}",
                    a.oid
                )
            })?,
        };
        if hash.digest(&cert_der) != first.cert_hash.as_bytes() {
            return Err(
                "the signingCertificateV2 attribute names another certificate than the signer's \
                 certificate in the file (its hash differs)"
                    .into(),
            );
        }
        if let Some(is) = &first.issuer_serial {
            let tbs = cert.tbs_certificate();
            let issuer_ok = is
                .issuer
                .iter()
                .any(|g| matches!(g, GeneralName::DirectoryName(n) if n == tbs.issuer()));
            if !issuer_ok || is.serial_number != *tbs.serial_number() {
                return Err(
                    "the signingCertificateV2 attribute names another certificate \
                            (issuer or serial number differ)"
                        .into(),
                );
            }
        }
        return Ok(format!(
            "signingCertificateV2 matches the signer's certificate ({})",
            hash.name()
        ));
    }
    if let Some(v) = attr(attrs, ID_SIGNING_CERTIFICATE) {
        // SigningCertificate ::= SEQUENCE { certs SEQUENCE OF ESSCertID, ... } with
        // ESSCertID ::= SEQUENCE { certHash OCTET STRING (SHA-1), issuerSerial OPTIONAL }
        // (RFC 2634 §5.4.1): the same shape as V2 without the hash algorithm.
        let sc: SigningCertificateV2 = v
            .decode_as()
            .map_err(|e| format!("the signingCertificate attribute is malformed: {e}"))?;
        let first = sc
            .certs
            .first()
            .ok_or("the signingCertificate attribute names no certificate")?;
        use sha1::Digest;
        if sha1::Sha1::digest(&cert_der).as_slice() != first.cert_hash.as_bytes() {
            return Err(
                "the signingCertificate attribute names another certificate than the signer's"
                    .into(),
            );
        }
        return Ok("signingCertificate (SHA-1) matches the signer's certificate".into());
    }
    Ok(
        "absent (not a CAdES signature; the signer's certificate is bound only by the \
        issuer and serial number)"
            .into(),
    )
}

/// Verify the first SignerInfo of `sd` over `content`, the chain as `trust` says.
pub fn verify(sd: &SignedData, content: Content<'_>, trust: &Trust) -> Result<Report> {
    let mut r = Report::default();
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|s| s.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    let si =
        sd.signer_infos.0.iter().next().ok_or_else(|| {
            CliError::new("the signature file holds no signature (no SignerInfo)")
        })?;
    let cert = signer_cert(si, &certs).ok_or_else(|| {
        CliError::new(
            "the signer's certificate is not in the signature file, so the signature cannot be \
             checked",
        )
    })?;
    let tbs = cert.tbs_certificate();
    r.signer = tbs.subject().to_string();
    r.issuer = tbs.issuer().to_string();
    r.serial = hex::encode(tbs.serial_number().as_bytes());
    r.validity = validity_words(cert);
    {
        let v = tbs.validity();
        r.not_before = rfc3339(&v.not_before);
        r.not_after = rfc3339(&v.not_after);
        let (nb, na, n) = (unix(&v.not_before), unix(&v.not_after), now());
        // days left as `klyuch objects` and `status` count them
        r.days_left = days_between(n, na);
        r.cert_state_now = if n < nb {
            "not_yet_valid"
        } else if n > na {
            "expired"
        } else {
            "valid"
        };
    }
    let digest = DigestAlg::from_oid(&si.digest_alg.oid).ok_or_else(|| {
        CliError::new(format!(
            "the digest algorithm {} is not supported",
            si.digest_alg.oid
        ))
    })?;
    let alg = sign_alg_of(
        &si.signature_algorithm,
        Some(digest),
        tbs.subject_public_key_info(),
    )?;
    r.algorithm = alg.describe();
    r.digest = digest.name().to_string();
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| {
        CliError::new(
            "the signature has no signed attributes (no messageDigest, no signing time); such \
             signatures are not supported",
        )
    })?;
    // signing time
    let signing_time: Option<Time> =
        match attr(attrs, ID_SIGNING_TIME) {
            Some(v) => Some(v.decode_as().map_err(|e| {
                CliError::new(format!("the signingTime attribute is malformed: {e}"))
            })?),
            None => None,
        };
    r.signing_time = signing_time.as_ref().map(fmt_time);
    r.signing_time_rfc3339 = signing_time.as_ref().map(rfc3339);
    let fail = |mut r: Report, code: &'static str, why: String| {
        r.problem = Some((code, why));
        Ok(r)
    };
    // content type
    let ct: Option<ObjectIdentifier> =
        attr(attrs, ID_CONTENT_TYPE).and_then(|v| v.decode_as().ok());
    if ct != Some(sd.encap_content_info.econtent_type) {
        return fail(
            r,
            "content_type_mismatch",
            "the contentType attribute is missing or differs from the signed content's type".into(),
        );
    }
    // message digest
    let md: OctetString = match attr(attrs, ID_MESSAGE_DIGEST).map(|v| v.decode_as()) {
        Some(Ok(md)) => md,
        _ => {
            return fail(
                r,
                "message_digest_missing",
                "the messageDigest attribute is missing or malformed".into(),
            );
        }
    };
    let actual = match content {
        Content::File(p) => digest.digest_file(p)?.0,
        Content::FileRange(p, offset, len) => digest.digest_file_range(p, offset, Some(len))?.0,
        Content::Embedded(b) => digest.digest(b),
    };
    if actual != md.as_bytes() {
        return fail(
            r,
            "content_changed",
            format!(
                "the content was CHANGED after signing: its {} digest differs from the one that \
                 was signed (messageDigest)",
                digest.name()
            ),
        );
    }
    // the signature over the signed attributes
    let signed = signed_attributes_der(attrs)?;
    if !host_verify(
        alg,
        tbs.subject_public_key_info(),
        &signed,
        si.signature.as_bytes(),
    )? {
        return fail(
            r,
            "signature_mismatch",
            "the signature does NOT match the signer's certificate: it was made by another key \
             (or the signed attributes were altered)"
                .into(),
        );
    }
    // signing-certificate attribute
    match check_signing_cert_attr(attrs, cert) {
        Ok(words) => r.signing_cert_attr = words,
        Err(why) => return fail(r, "signing_certificate_mismatch", why),
    }
    // validity at signing time
    let v = tbs.validity();
    let (at, at_words) = match &signing_time {
        Some(t) => (unix(t), "when it was signed"),
        None => (now(), "now (the signature has no signing time)"),
    };
    if at < unix(&v.not_before) {
        return fail(
            r,
            "certificate_not_yet_valid",
            format!(
                "the signer's certificate was NOT YET VALID {at_words}: it is valid from {}",
                fmt_time(&v.not_before)
            ),
        );
    }
    if at > unix(&v.not_after) {
        return fail(
            r,
            "certificate_expired",
            format!(
                "the signer's certificate had EXPIRED {at_words}: it was valid until {}",
                fmt_time(&v.not_after)
            ),
        );
    }
    // chain
    let (anchors, system) = match trust {
        Trust::Skip => {
            r.chain_status = ChainStatus::Skipped;
            r.chain = "NOT CHECKED (--no-chain): the signer's certificate is not checked against \
                       any trusted CA"
                .into();
            return Ok(r);
        }
        Trust::Anchors { certs: a, system } => (a, system),
    };
    match chain(cert, &certs, anchors, at) {
        Ok(path) => {
            r.chain = path.join(" <- ");
            r.chain_path = path;
            r.chain_status = ChainStatus::Valid;
            Ok(r)
        }
        Err(e) => {
            r.chain_status = ChainStatus::Invalid;
            let (code, why) = match (e, system) {
                (ChainError::Bad(code, why), _) => (code, why),
                (ChainError::Untrusted(issuer), None) => (
                    "chain_untrusted",
                    format!(
                        "the signer's certificate was not issued by any of the trusted CAs given \
                         with --ca (issuer: {issuer})"
                    ),
                ),
                (ChainError::Untrusted(issuer), Some(store)) if anchors.is_empty() => (
                    "chain_no_trust_anchor",
                    format!(
                        "no trusted CA to check the signer's certificate against: no --ca was \
                         given and there is no system trust store ({store}); name the CA with \
                         --ca CA.pem, or skip the chain check with --no-chain (issuer: {issuer})"
                    ),
                ),
                (ChainError::Untrusted(issuer), Some(store)) => (
                    "chain_untrusted",
                    format!(
                        "the signer's certificate does not chain to any CA of the system trust \
                         store ({store}); name its CA with --ca CA.pem, or skip the chain check \
                         with --no-chain (issuer: {issuer})"
                    ),
                ),
            };
            fail(r, code, why)
        }
    }
}
