//! PKCS#12 (RFC 7292) files: the private keys and certificates in them.
//!
//! The ASN.1 comes from the `pkcs12` and `cms` crates; every password-based step (the MAC, the
//! encrypted bags and shrouded keys) goes through [`crate::pbe`], where new algorithms (GOST)
//! are added.

use crate::pbe::{self, PbeError};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use const_oid::ObjectIdentifier;
use der::asn1::{BmpString, OctetString};
use der::{AnyRef, Decode};
use pkcs12::cms;
use pkcs12::pbe_params::EncryptedPrivateKeyInfo;
use pkcs12::{CertBag, Pfx, SafeBag};
use secrecy::SecretString;
use x509_cert::attr::Attributes;
use zeroize::Zeroizing;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

/// One bag's value with its PKCS#12 attributes.
pub struct Bag<T> {
    pub value: T,
    pub friendly_name: Option<String>,
    pub local_key_id: Option<Vec<u8>>,
}

/// What a PKCS#12 file holds that `klyuch import` uses.
#[derive(Default)]
pub struct Contents {
    /// PKCS#8 `PrivateKeyInfo` DER.
    pub keys: Vec<Bag<Zeroizing<Vec<u8>>>>,
    /// X.509 certificate DER.
    pub certs: Vec<Bag<Vec<u8>>>,
    /// Bags skipped (CRLs, secrets, unknown kinds), for a note to the user.
    pub skipped: usize,
}

/// Why a PKCS#12 file could not be read.
#[derive(Debug)]
pub enum P12Error {
    Pbe(PbeError),
    Format(String),
}

impl std::fmt::Display for P12Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            P12Error::Pbe(e) => e.fmt(f),
            P12Error::Format(s) => write!(f, "malformed PKCS#12 file: {s}"),
        }
    }
}

impl From<PbeError> for P12Error {
    fn from(e: PbeError) -> Self {
        P12Error::Pbe(e)
    }
}

impl From<der::Error> for P12Error {
    fn from(e: der::Error) -> Self {
        P12Error::Format(e.to_string())
    }
}

/// Whether `der` is a PKCS#12 `PFX` (checked by parsing, not by guessing).
pub fn is_pfx(der: &[u8]) -> bool {
    Pfx::from_der(der).is_ok()
}

/// Read the keys and certificates of a PKCS#12 file, checking its MAC with `password`.
pub fn parse(der: &[u8], password: &SecretString) -> Result<Contents, P12Error> {
    let pfx = Pfx::from_der(der)?;
    match pfx.auth_safe.content_type {
        ID_DATA => {}
        ID_SIGNED_DATA => {
            return Err(P12Error::Format(
                "public-key integrity mode (signed PFX) is not supported".into(),
            ));
        }
        other => return Err(P12Error::Format(format!("authSafe content type {other}"))),
    }
    let auth_safe = pfx.auth_safe.content.decode_as::<OctetString>()?;
    if let Some(mac) = &pfx.mac_data {
        pbe::verify_mac(mac, password, auth_safe.as_bytes())?;
    }
    let infos = Vec::<ContentInfo>::from_der(auth_safe.as_bytes())?;
    let mut out = Contents::default();
    for info in infos {
        let bags: Vec<SafeBag> = match info.content_type {
            ID_DATA => {
                let data = info.content.decode_as::<OctetString>()?;
                Vec::<SafeBag>::from_der(data.as_bytes())?
            }
            ID_ENCRYPTED_DATA => {
                let enc = info.content.decode_as::<EncryptedData>()?;
                let eci = enc.enc_content_info;
                let Some(ct) = eci.encrypted_content else {
                    continue;
                };
                let plain = pbe::decrypt(&eci.content_enc_alg, password, ct.as_bytes())?;
                Vec::<SafeBag>::from_der(&plain)
                    .map_err(|_| P12Error::Pbe(PbeError::WrongPassword))?
            }
            other => {
                return Err(P12Error::Format(format!("content type {other}")));
            }
        };
        collect(bags, password, &mut out, 0)?;
    }
    Ok(out)
}

/// The inner value of a bag's `[0] EXPLICIT` wrapper.
fn bag_inner(bag: &SafeBag) -> Result<&[u8], P12Error> {
    Ok(AnyRef::from_der(&bag.bag_value)?.value())
}

fn collect(
    bags: Vec<SafeBag>,
    password: &SecretString,
    out: &mut Contents,
    depth: usize,
) -> Result<(), P12Error> {
    if depth > 4 {
        return Err(P12Error::Format("safe contents nested too deep".into()));
    }
    for bag in bags {
        let friendly_name = attr_friendly_name(bag.bag_attributes.as_ref());
        let local_key_id = attr_local_key_id(bag.bag_attributes.as_ref());
        match bag.bag_id {
            pkcs12::PKCS_12_KEY_BAG_OID => out.keys.push(Bag {
                value: Zeroizing::new(bag_inner(&bag)?.to_vec()),
                friendly_name,
                local_key_id,
            }),
            pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                let epki = EncryptedPrivateKeyInfo::from_der(bag_inner(&bag)?)?;
                let plain = pbe::decrypt(
                    &epki.encryption_algorithm,
                    password,
                    epki.encrypted_data.as_bytes(),
                )?;
                out.keys.push(Bag {
                    value: plain,
                    friendly_name,
                    local_key_id,
                });
            }
            pkcs12::PKCS_12_CERT_BAG_OID => {
                let cert = CertBag::from_der(bag_inner(&bag)?)?;
                if cert.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                    out.certs.push(Bag {
                        value: cert.cert_value.as_bytes().to_vec(),
                        friendly_name,
                        local_key_id,
                    });
                } else {
                    out.skipped += 1;
                }
            }
            pkcs12::PKCS_12_SAFE_CONTENTS_BAG_OID => {
                let inner = Vec::<SafeBag>::from_der(bag_inner(&bag)?)?;
                collect(inner, password, out, depth + 1)?;
            }
            _ => out.skipped += 1,
        }
    }
    Ok(())
}

fn attr_values(
    attrs: Option<&Attributes>,
    oid: ObjectIdentifier,
) -> impl Iterator<Item = &der::Any> {
    attrs
        .into_iter()
        .flat_map(|set| set.iter())
        .filter(move |a| a.oid == oid)
        .flat_map(|a| a.values.iter())
}

fn attr_friendly_name(attrs: Option<&Attributes>) -> Option<String> {
    attr_values(attrs, FRIENDLY_NAME)
        .find_map(|v| v.decode_as::<BmpString>().ok())
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
}

fn attr_local_key_id(attrs: Option<&Attributes>) -> Option<Vec<u8>> {
    attr_values(attrs, LOCAL_KEY_ID)
        .find_map(|v| v.decode_as::<OctetString>().ok())
        .map(|s| s.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Make a key, a certificate and PKCS#12 files with the `openssl` tool; `None` without it.
    fn openssl_p12(dir: &std::path::Path, extra: &[&str]) -> Option<Vec<u8>> {
        let ok = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !dir.join("k.pem").exists()
            && !ok(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
                "-subj",
                "/CN=p12 test",
                "-days",
                "2",
            ])
        {
            return None;
        }
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            "k.pem",
            "-in",
            "c.pem",
            "-name",
            "my key",
            "-passout",
            "pass:secret",
            "-out",
            "t.p12",
        ];
        args.extend_from_slice(extra);
        if !ok(&args) {
            return None;
        }
        std::fs::read(dir.join("t.p12")).ok()
    }

    fn check(extra: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let Some(der) = openssl_p12(dir.path(), extra) else {
            eprintln!("note: openssl cannot write PKCS#12 {extra:?} here; skipped");
            return;
        };
        assert!(is_pfx(&der));
        let c = parse(&der, &SecretString::from("secret")).unwrap();
        assert_eq!(c.keys.len(), 1);
        assert_eq!(c.certs.len(), 1);
        assert_eq!(c.keys[0].friendly_name.as_deref(), Some("my key"));
        assert!(c.keys[0].local_key_id.is_some());
        assert_eq!(c.keys[0].local_key_id, c.certs[0].local_key_id);
        pkcs8::PrivateKeyInfoRef::from_der(&c.keys[0].value).unwrap();
        x509_cert::Certificate::from_der(&c.certs[0].value).unwrap();
        if extra.contains(&"-nomac") {
            // Nothing protects the file: any passphrase reads it.
            assert!(parse(&der, &SecretString::from("wrong")).is_ok());
            return;
        }
        match parse(&der, &SecretString::from("wrong")) {
            Err(P12Error::Pbe(PbeError::WrongPassword)) => {}
            Err(e) => panic!("wrong password gave {e}"),
            Ok(_) => panic!("wrong password accepted"),
        }
    }

    #[test]
    fn openssl3_default_pbes2_aes() {
        check(&[]);
    }

    #[test]
    fn openssl_legacy_rc2_3des_sha1() {
        check(&["-legacy"]);
    }

    #[test]
    fn three_des_with_sha512_mac() {
        check(&[
            "-keypbe",
            "PBE-SHA1-3DES",
            "-certpbe",
            "PBE-SHA1-3DES",
            "-macalg",
            "sha512",
        ]);
    }

    #[test]
    fn unencrypted_certs_and_no_mac() {
        check(&["-certpbe", "NONE", "-keypbe", "NONE", "-nomac"]);
    }

    /// GOST PKCS#12 of OpenSSL's GOST engine: a GOST R 34.10-2012 key and certificate, the bags
    /// encrypted with Kuznyechik-CTR-ACPKM, Magma-CTR-ACPKM or GOST 28147-89 (PBES2), the MAC
    /// HMAC-Streebog-512; a non-ASCII passphrase (PBKDF2 takes its UTF-8 bytes).
    #[test]
    fn gost_engine_pbes2_and_streebog_mac() {
        let dir = tempfile::tempdir().unwrap();
        let ok = |args: &[&str]| {
            Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !ok(&[
            "req",
            "-x509",
            "-new",
            "-engine",
            "gost",
            "-newkey",
            "gost2012_256",
            "-pkeyopt",
            "paramset:A",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-subj",
            "/CN=gost",
            "-days",
            "2",
        ]) {
            eprintln!("note: OpenSSL's GOST engine is not available; skipped");
            return;
        }
        for pbe in ["kuznyechik-ctr-acpkm", "magma-ctr-acpkm", "gost89"] {
            assert!(ok(&[
                "pkcs12",
                "-engine",
                "gost",
                "-export",
                "-inkey",
                "k.pem",
                "-in",
                "c.pem",
                "-keypbe",
                pbe,
                "-certpbe",
                pbe,
                "-macalg",
                "md_gost12_512",
                "-passout",
                "pass:пароль",
                "-out",
                "g.p12",
            ]));
            let der = std::fs::read(dir.path().join("g.p12")).unwrap();
            let c = parse(&der, &SecretString::from("пароль")).unwrap();
            assert_eq!((c.keys.len(), c.certs.len()), (1, 1), "{pbe}");
            let t = klyuch_crypto::pkcs8::private_key_attributes(&c.keys[0].value).unwrap();
            assert_eq!(t.get(token_api::ck::CKA_VALUE).map(<[u8]>::len), Some(32));
            assert!(matches!(
                parse(&der, &SecretString::from("Пароль")),
                Err(P12Error::Pbe(PbeError::WrongPassword))
            ));
        }
    }

    #[test]
    fn not_a_pfx() {
        assert!(!is_pfx(b"hello"));
        assert!(parse(b"\x30\x03\x02\x01\x03", &SecretString::from("x")).is_err());
    }
}
