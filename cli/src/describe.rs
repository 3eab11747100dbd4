//! Human names for what tokens hold: key types and sizes, curves, GOST parameter sets,
//! certificate subjects and validity (parsed with `x509-cert`).

use const_oid::ObjectIdentifier;
use cryptoki_sys::*;
use der::Decode;
use der::asn1::PrintableStringRef;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

/// `CKK_GOSTR3410_512` (TC26 vendor key type); 256-bit GOST keys use `CKK_GOSTR3410`.
pub const CKK_GOSTR3410_512: CK_KEY_TYPE = 0xD432_1003;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_GOST_256: &str = "1.2.643.7.1.1.1.1";
const OID_GOST_512: &str = "1.2.643.7.1.1.1.2";
const OID_GOST_2001: &str = "1.2.643.2.2.19";

/// Well-known curves (EC and Edwards/Montgomery) by OID.
pub fn curve_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    Some(match oid.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256",
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.33" => "P-224",
        "1.2.840.10045.3.1.1" => "P-192",
        "1.3.132.0.10" => "secp256k1",
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1",
        "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1",
        "1.3.36.3.3.2.8.1.1.13" => "brainpoolP512r1",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => return None,
    })
}

/// GOST R 34.10 parameter sets (RFC 4357, RFC 7836, R 1323565.1.024) by OID.
pub fn gost_paramset_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    Some(match oid.to_string().as_str() {
        "1.2.643.2.2.35.0" => "CryptoPro test",
        "1.2.643.2.2.35.1" => "CryptoPro-A",
        "1.2.643.2.2.35.2" => "CryptoPro-B",
        "1.2.643.2.2.35.3" => "CryptoPro-C",
        "1.2.643.2.2.36.0" => "CryptoPro-XchA",
        "1.2.643.2.2.36.1" => "CryptoPro-XchB",
        "1.2.643.7.1.2.1.1.1" => "tc26-256-A",
        "1.2.643.7.1.2.1.1.2" => "tc26-256-B",
        "1.2.643.7.1.2.1.1.3" => "tc26-256-C",
        "1.2.643.7.1.2.1.1.4" => "tc26-256-D",
        "1.2.643.7.1.2.1.2.0" => "tc26-512-test",
        "1.2.643.7.1.2.1.2.1" => "tc26-512-A",
        "1.2.643.7.1.2.1.2.2" => "tc26-512-B",
        "1.2.643.7.1.2.1.2.3" => "tc26-512-C",
        _ => return None,
    })
}

/// `CKA_EC_PARAMS` (a DER OID, or for Edwards curves maybe a PrintableString) to a name.
pub fn ec_params_name(params: &[u8]) -> String {
    if let Ok(oid) = ObjectIdentifier::from_der(params) {
        return curve_name(&oid)
            .map(str::to_string)
            .unwrap_or_else(|| oid.to_string());
    }
    if let Ok(s) = PrintableStringRef::from_der(params) {
        return match s.as_str() {
            "edwards25519" => "Ed25519".into(),
            "edwards448" => "Ed448".into(),
            other => other.to_string(),
        };
    }
    "explicit curve".into()
}

/// The parameter set OID inside GOST public key parameters
/// (`SEQUENCE { publicKeyParamSet OID, digestParamSet OID OPTIONAL, ... }`).
fn gost_params_oid(params_der: &[u8]) -> Option<ObjectIdentifier> {
    #[derive(der::Sequence)]
    struct GostParams {
        public_key_param_set: ObjectIdentifier,
        digest_param_set: Option<ObjectIdentifier>,
    }
    GostParams::from_der(params_der)
        .ok()
        .map(|p| p.public_key_param_set)
        .or_else(|| ObjectIdentifier::from_der(params_der).ok())
}

/// The GOST parameter set name of a `CKA_GOSTR3410_PARAMS` value (a DER OID).
pub fn gost_params_name(params: &[u8]) -> String {
    match ObjectIdentifier::from_der(params) {
        Ok(oid) => gost_paramset_name(&oid)
            .map(str::to_string)
            .unwrap_or_else(|| oid.to_string()),
        Err(_) => "unknown parameters".into(),
    }
}

/// Bit length of a big-endian unsigned integer.
pub fn bit_len(be: &[u8]) -> usize {
    let be = match be.iter().position(|b| *b != 0) {
        Some(i) => &be[i..],
        None => return 0,
    };
    be.len() * 8 - be[0].leading_zeros() as usize
}

/// "RSA 2048", "EC P-256", "Ed25519", "GOST R 34.10-2012 256 tc26-256-A" from a
/// SubjectPublicKeyInfo.
pub fn spki_summary(spki_der: &[u8]) -> Option<String> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let oid = spki.algorithm.oid.to_string();
    let params = spki.algorithm.parameters.and_then(|p| {
        let mut v = Vec::new();
        der::Encode::encode_to_vec(&p, &mut v).ok()?;
        Some(v)
    });
    Some(match oid.as_str() {
        OID_RSA => {
            let key = pkcs1::RsaPublicKeyRef::from_der(spki.subject_public_key.raw_bytes()).ok()?;
            format!("RSA {}", bit_len(key.modulus.as_bytes()))
        }
        OID_EC => format!("EC {}", ec_params_name(params.as_deref()?)),
        OID_GOST_256 | OID_GOST_512 | OID_GOST_2001 => {
            let size = match oid.as_str() {
                OID_GOST_512 => "GOST R 34.10-2012 512",
                OID_GOST_256 => "GOST R 34.10-2012 256",
                _ => "GOST R 34.10-2001",
            };
            match params.as_deref().and_then(gost_params_oid) {
                Some(p) => format!(
                    "{size} {}",
                    gost_paramset_name(&p)
                        .map(str::to_string)
                        .unwrap_or_else(|| p.to_string())
                ),
                None => size.to_string(),
            }
        }
        other => {
            let oid = ObjectIdentifier::new(other).ok()?;
            curve_name(&oid)
                .map(str::to_string)
                .unwrap_or_else(|| format!("key {other}"))
        }
    })
}

/// The GOST parameter set name from a SubjectPublicKeyInfo, if it is a GOST key.
pub fn spki_gost_paramset(spki_der: &[u8]) -> Option<String> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    if !spki.algorithm.oid.to_string().starts_with("1.2.643.") {
        return None;
    }
    let p = spki.algorithm.parameters?;
    let mut v = Vec::new();
    der::Encode::encode_to_vec(&p, &mut v).ok()?;
    let oid = gost_params_oid(&v)?;
    Some(
        gost_paramset_name(&oid)
            .map(str::to_string)
            .unwrap_or_else(|| oid.to_string()),
    )
}

/// Key type names for the table.
pub fn key_type_name(kt: CK_KEY_TYPE) -> String {
    match kt {
        CKK_RSA => "RSA".into(),
        CKK_EC => "EC".into(),
        CKK_EC_EDWARDS => "EdDSA".into(),
        CKK_EC_MONTGOMERY => "ECDH (Montgomery)".into(),
        CKK_DSA => "DSA".into(),
        CKK_DH => "DH".into(),
        CKK_GENERIC_SECRET => "generic secret".into(),
        CKK_AES => "AES".into(),
        CKK_DES3 => "3DES".into(),
        CKK_DES => "DES".into(),
        CKK_GOSTR3410 => "GOST R 34.10-2012 256".into(),
        CKK_GOSTR3410_512 => "GOST R 34.10-2012 512".into(),
        CKK_GOSTR3411 => "GOST R 34.11".into(),
        CKK_GOST28147 => "GOST 28147-89".into(),
        CKK_SHA256_HMAC => "HMAC-SHA256".into(),
        other => format!("key type {other:#x}"),
    }
}

/// What the table and `--json` say about a certificate.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub expired: bool,
    pub not_yet_valid: bool,
    /// Whole days until notAfter (negative once expired: -3 = expired 3 days ago).
    pub days_left: i64,
    /// "expired 3 days ago", "expires in 10 days (under 30)", "not yet valid": set when the
    /// certificate cannot be used or has less than [`WARN_DAYS`] days left.
    pub warning: Option<String>,
    /// "RSA 2048", "EC P-256", ...
    pub key: Option<String>,
    /// The GOST R 34.10 parameter set, for GOST keys.
    pub gost_paramset: Option<String>,
}

fn date(t: &x509_cert::time::Time) -> String {
    let d = t.to_date_time();
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

pub fn cert_summary(der: &[u8]) -> Option<CertSummary> {
    let cert = Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    let validity = tbs.validity();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let spki = der::Encode::to_der(tbs.subject_public_key_info()).ok();
    Some(CertSummary {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: hex::encode(tbs.serial_number().as_bytes()),
        not_before: date(&validity.not_before),
        not_after: date(&validity.not_after),
        expired: validity.not_after.to_unix_duration() < now,
        not_yet_valid: validity.not_before.to_unix_duration() > now,
        days_left: days_between(now, validity.not_after.to_unix_duration()),
        warning: None,
        key: spki.as_deref().and_then(spki_summary),
        gost_paramset: spki.as_deref().and_then(spki_gost_paramset),
    })
    .map(|mut c| {
        c.warning = validity_warning(&c, WARN_DAYS);
        c
    })
}

/// Certificates with fewer days left than this get a warning (`klyuch objects`, `status`).
pub const WARN_DAYS: i64 = 30;

/// Days from `now` to `until`, rounded up (a certificate made with `-days 10` has 10 days
/// left); zero or negative once `until` has passed (-3: expired 3 whole days ago).
pub fn days_between(now: std::time::Duration, until: std::time::Duration) -> i64 {
    let secs = until.as_secs() as i64 - now.as_secs() as i64;
    -(-secs).div_euclid(86_400)
}

/// The warning for a certificate: expired, not yet valid, or under `warn_days` days left.
pub fn validity_warning(c: &CertSummary, warn_days: i64) -> Option<String> {
    let plural = |n: i64| if n == 1 { "" } else { "s" };
    if c.expired {
        let ago = -c.days_left;
        return Some(if ago <= 0 {
            "EXPIRED today".to_string()
        } else {
            format!("EXPIRED {ago} day{} ago", plural(ago))
        });
    }
    if c.not_yet_valid {
        return Some(format!("NOT YET VALID (from {})", c.not_before));
    }
    if c.days_left < warn_days {
        return Some(format!(
            "expires in {} day{} (under {warn_days}): renew it",
            c.days_left,
            plural(c.days_left)
        ));
    }
    None
}

/// The `CN` of a certificate subject, for a default label.
pub fn cert_common_name(der: &[u8]) -> Option<String> {
    let cert = Certificate::from_der(der).ok()?;
    let cn = const_oid::db::rfc4519::CN;
    for rdn in cert.tbs_certificate().subject().iter_rdn() {
        for atv in rdn.iter() {
            if atv.oid == cn {
                if let Ok(s) = atv.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                    return Some(s.as_str().to_string());
                }
                if let Ok(s) = atv.value.decode_as::<PrintableStringRef<'_>>() {
                    return Some(s.as_str().to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let p256 = [6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7];
        assert_eq!(ec_params_name(&p256), "P-256");
        let ed = [6, 3, 0x2b, 101, 112];
        assert_eq!(ec_params_name(&ed), "Ed25519");
        let mut ps = vec![0x13, 12];
        ps.extend_from_slice(b"edwards25519");
        assert_eq!(ec_params_name(&ps), "Ed25519");
        // 1.2.643.7.1.2.1.1.1
        let tc26a = [6, 9, 0x2a, 0x85, 3, 7, 1, 2, 1, 1, 1];
        assert_eq!(gost_params_name(&tc26a), "tc26-256-A");
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0x01, 0]), 9);
        assert_eq!(key_type_name(CKK_GOSTR3410_512), "GOST R 34.10-2012 512");
    }

    #[test]
    fn gost_certificates_from_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let make = |alg: &str, set: &str, out: &str| {
            std::process::Command::new("openssl")
                .args([
                    "req", "-engine", "gost", "-x509", "-newkey", alg, "-pkeyopt", set, "-nodes",
                    "-keyout", "k.pem", "-out", out, "-outform", "DER", "-subj", "/CN=GOST",
                    "-days", "2",
                ])
                .current_dir(dir.path())
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !make("gost2012_256", "paramset:A", "a.der")
            || !make("gost2012_512", "paramset:B", "b.der")
        {
            eprintln!("note: no OpenSSL GOST engine; skipped");
            return;
        }
        let a = cert_summary(&std::fs::read(dir.path().join("a.der")).unwrap()).unwrap();
        assert_eq!(a.key.as_deref(), Some("GOST R 34.10-2012 256 CryptoPro-A"));
        assert_eq!(a.gost_paramset.as_deref(), Some("CryptoPro-A"));
        let b = cert_summary(&std::fs::read(dir.path().join("b.der")).unwrap()).unwrap();
        assert_eq!(b.key.as_deref(), Some("GOST R 34.10-2012 512 tc26-512-B"));
        assert_eq!(b.subject, "CN=GOST");
    }
}
