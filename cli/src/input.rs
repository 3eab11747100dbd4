//! Reading the files `klyuch import` accepts: PEM (one or more blocks) or DER certificates,
//! PKCS#8 private keys (plain or encrypted), PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`,
//! SubjectPublicKeyInfo public keys and PKCS#12 files. All ASN.1 goes through the RustCrypto
//! `der`-based crates; private keys come out as PKCS#8 `PrivateKeyInfo` DER, the form
//! `klyuch_crypto::pkcs8` takes.

use crate::error::{CliError, Result};
use crate::p12;
use crate::pbe::{self, PbeError};
use clap::ValueEnum;
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use pkcs8::PrivateKeyInfoOwned;
use pkcs12::pbe_params::EncryptedPrivateKeyInfo;
use secrecy::SecretString;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use zeroize::Zeroizing;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// PEM text: certificates, keys (any of the kinds below), one or more blocks.
    Pem,
    /// One DER certificate, private key (PKCS#8, PKCS#1, SEC1) or public key.
    Der,
    /// A PKCS#8 private key (plain or encrypted), PEM or DER.
    Pkcs8,
    /// A PKCS#12 (.p12/.pfx) file.
    Pkcs12,
}

/// A private key found in the input.
pub struct KeyItem {
    /// PKCS#8 `PrivateKeyInfo` DER.
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub name: Option<String>,
    pub local_key_id: Option<Vec<u8>>,
}

/// A certificate found in the input.
pub struct CertItem {
    pub der: Vec<u8>,
    pub name: Option<String>,
    pub local_key_id: Option<Vec<u8>>,
}

/// Everything found in one input file.
#[derive(Default)]
pub struct Contents {
    pub keys: Vec<KeyItem>,
    pub certs: Vec<CertItem>,
    /// SubjectPublicKeyInfo DER of lone public keys.
    pub public_keys: Vec<Vec<u8>>,
    /// What kind of file it was, for messages ("PEM", "PKCS#12", ...).
    pub kind: &'static str,
    /// Notes for the user (skipped blocks and the like).
    pub notes: Vec<String>,
}

impl Contents {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.certs.is_empty() && self.public_keys.is_empty()
    }
}

/// Asks for the passphrase when (and only when) the input turns out to be encrypted.
pub type PassphraseFn<'a> = dyn FnMut() -> Result<SecretString> + 'a;

fn looks_like_pem(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    text.contains("-----BEGIN ")
}

/// Read `bytes` as `format` (or detect it).
pub fn read(
    bytes: &[u8],
    format: Option<Format>,
    passphrase: &mut PassphraseFn<'_>,
) -> Result<Contents> {
    let pem = looks_like_pem(bytes);
    let mut out = match format {
        Some(Format::Pem) => {
            if !pem {
                return Err(CliError::new("not a PEM file (no -----BEGIN line)"));
            }
            read_pem(bytes, passphrase, false)?
        }
        Some(Format::Pkcs8) if pem => read_pem(bytes, passphrase, true)?,
        Some(Format::Pkcs8) => {
            let mut c = Contents {
                kind: "PKCS#8 DER",
                ..Contents::default()
            };
            c.keys.push(read_pkcs8_der(bytes, passphrase)?);
            c
        }
        Some(Format::Pkcs12) => read_p12(bytes, passphrase)?,
        Some(Format::Der) => read_der(bytes, passphrase)?,
        None if pem => read_pem(bytes, passphrase, false)?,
        None if p12::is_pfx(bytes) => read_p12(bytes, passphrase)?,
        None => read_der(bytes, passphrase)?,
    };
    if out.is_empty() {
        out.notes.push("no key or certificate found".into());
    }
    Ok(out)
}

fn read_p12(bytes: &[u8], passphrase: &mut PassphraseFn<'_>) -> Result<Contents> {
    if !p12::is_pfx(bytes) {
        return Err(CliError::new("not a PKCS#12 file"));
    }
    let pw = passphrase()?;
    let c = p12::parse(bytes, &pw).map_err(|e| match e {
        p12::P12Error::Pbe(PbeError::WrongPassword) => {
            CliError::new("wrong passphrase for the PKCS#12 file (its integrity check failed)")
        }
        other => CliError::new(other.to_string()),
    })?;
    let mut out = Contents {
        kind: "PKCS#12",
        ..Contents::default()
    };
    for k in c.keys {
        check_pkcs8(&k.value)?;
        out.keys.push(KeyItem {
            pkcs8: k.value,
            name: k.friendly_name,
            local_key_id: k.local_key_id,
        });
    }
    for cert in c.certs {
        Certificate::from_der(&cert.value)
            .map_err(|e| CliError::new(format!("a certificate in the PKCS#12 file: {e}")))?;
        out.certs.push(CertItem {
            der: cert.value,
            name: cert.friendly_name,
            local_key_id: cert.local_key_id,
        });
    }
    if c.skipped > 0 {
        out.notes.push(format!(
            "skipped {} PKCS#12 bag(s) that are neither keys nor X.509 certificates",
            c.skipped
        ));
    }
    Ok(out)
}

/// DER of one object: try each kind by parsing it.
fn read_der(bytes: &[u8], passphrase: &mut PassphraseFn<'_>) -> Result<Contents> {
    let mut out = Contents {
        kind: "DER",
        ..Contents::default()
    };
    if Certificate::from_der(bytes).is_ok() {
        out.certs.push(CertItem {
            der: bytes.to_vec(),
            name: None,
            local_key_id: None,
        });
    } else if p12::is_pfx(bytes) {
        return read_p12(bytes, passphrase);
    } else if PrivateKeyInfoOwned::from_der(bytes).is_ok()
        || EncryptedPrivateKeyInfo::from_der(bytes).is_ok()
    {
        out.keys.push(read_pkcs8_der(bytes, passphrase)?);
    } else if let Ok(k) = pkcs1_to_pkcs8(bytes) {
        out.keys.push(KeyItem {
            pkcs8: k,
            name: None,
            local_key_id: None,
        });
    } else if let Ok(k) = sec1_to_pkcs8(bytes) {
        out.keys.push(KeyItem {
            pkcs8: k,
            name: None,
            local_key_id: None,
        });
    } else if SubjectPublicKeyInfoOwned::from_der(bytes).is_ok() {
        out.public_keys.push(bytes.to_vec());
    } else {
        return Err(CliError::new(
            "not a certificate, private key, public key or PKCS#12 file in a form klyuch \
             reads (PEM, DER, PKCS#8, PKCS#1, SEC1, PKCS#12)",
        ));
    }
    Ok(out)
}

/// A plain or encrypted PKCS#8 key in DER.
fn read_pkcs8_der(bytes: &[u8], passphrase: &mut PassphraseFn<'_>) -> Result<KeyItem> {
    if PrivateKeyInfoOwned::from_der(bytes).is_ok() {
        return Ok(KeyItem {
            pkcs8: Zeroizing::new(bytes.to_vec()),
            name: None,
            local_key_id: None,
        });
    }
    let enc = EncryptedPrivateKeyInfo::from_der(bytes)
        .map_err(|e| CliError::new(format!("not a PKCS#8 private key: {e}")))?;
    let pw = passphrase()?;
    let plain = pbe::decrypt(
        &enc.encryption_algorithm,
        &pw,
        enc.encrypted_data.as_bytes(),
    )
    .map_err(pbe_err)?;
    // A wrong passphrase usually fails the padding check; when it happens to pass, the result
    // is not a PrivateKeyInfo.
    if PrivateKeyInfoOwned::from_der(&plain).is_err() {
        return Err(pbe_err(PbeError::WrongPassword));
    }
    Ok(KeyItem {
        pkcs8: plain,
        name: None,
        local_key_id: None,
    })
}

fn pbe_err(e: PbeError) -> CliError {
    match e {
        PbeError::WrongPassword => CliError::new("wrong passphrase for the encrypted private key"),
        other => CliError::new(other.to_string()),
    }
}

fn check_pkcs8(der: &[u8]) -> Result<()> {
    PrivateKeyInfoOwned::from_der(der)
        .map(|_| ())
        .map_err(|e| CliError::new(format!("malformed PKCS#8 private key: {e}")))
}

/// Wrap a PKCS#1 `RSAPrivateKey` into PKCS#8.
fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    pkcs1::RsaPrivateKeyRef::from_der(der)
        .map_err(|e| CliError::new(format!("not a PKCS#1 RSA private key: {e}")))?;
    wrap_pkcs8(RSA_ENCRYPTION, Some(Any::null()), der)
}

/// Wrap a SEC1 `ECPrivateKey` (RFC 5915) into PKCS#8; the curve moves to the algorithm.
fn sec1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = sec1::EcPrivateKey::from_der(der)
        .map_err(|e| CliError::new(format!("not an EC private key: {e}")))?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or_else(|| CliError::new("the EC private key does not name its curve"))?;
    let params = Any::encode_from(&curve).map_err(|e| CliError::new(e.to_string()))?;
    wrap_pkcs8(EC_PUBLIC_KEY, Some(params), der)
}

fn wrap_pkcs8(
    oid: ObjectIdentifier,
    parameters: Option<Any>,
    key: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let info = PrivateKeyInfoOwned::new(
        AlgorithmIdentifierOwned { oid, parameters },
        OctetString::new(key).map_err(|e| CliError::new(e.to_string()))?,
    );
    info.to_der()
        .map(Zeroizing::new)
        .map_err(|e| CliError::new(format!("cannot re-encode the key as PKCS#8: {e}")))
}

/// Split PEM text into its blocks (each from its BEGIN line to its END line).
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let Some(label_end) = after["-----BEGIN ".len()..].find("-----") else {
            break;
        };
        let label = &after["-----BEGIN ".len().."-----BEGIN ".len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = after.find(&end_marker) else {
            blocks.push(after);
            break;
        };
        let stop = end + end_marker.len();
        blocks.push(&after[..stop]);
        rest = &after[stop..];
    }
    blocks
}

fn read_pem(bytes: &[u8], passphrase: &mut PassphraseFn<'_>, keys_only: bool) -> Result<Contents> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CliError::new("the PEM file is not valid text (UTF-8)"))?;
    let mut out = Contents {
        kind: "PEM",
        ..Contents::default()
    };
    let blocks = pem_blocks(text);
    if blocks.is_empty() {
        return Err(CliError::new("no PEM block found"));
    }
    for (n, block) in blocks.into_iter().enumerate() {
        let n = n + 1;
        if block.contains("Proc-Type:") && block.contains("ENCRYPTED") {
            return Err(CliError::new(format!(
                "PEM block {n} is encrypted the legacy OpenSSL way (Proc-Type header); convert it \
                 to encrypted PKCS#8 first: openssl pkcs8 -topk8 -in OLD -out NEW.pem"
            )));
        }
        let (label, der) = pem_rfc7468::decode_vec(block.as_bytes())
            .map_err(|e| CliError::new(format!("PEM block {n}: {e}")))?;
        let der = Zeroizing::new(der);
        let label = label.to_string();
        let is_key = matches!(
            label.as_str(),
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
        );
        if keys_only && !is_key {
            return Err(CliError::new(format!(
                "PEM block {n} is a {label}, not a PKCS#8 private key"
            )));
        }
        let ctx = |e: CliError| e.context(format!("PEM block {n} ({label})"));
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                Certificate::from_der(&der)
                    .map_err(|e| ctx(CliError::new(format!("malformed certificate: {e}"))))?;
                out.certs.push(CertItem {
                    der: der.to_vec(),
                    name: None,
                    local_key_id: None,
                });
            }
            "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                out.keys
                    .push(read_pkcs8_der(&der, passphrase).map_err(ctx)?);
            }
            "RSA PRIVATE KEY" => out.keys.push(KeyItem {
                pkcs8: pkcs1_to_pkcs8(&der).map_err(ctx)?,
                name: None,
                local_key_id: None,
            }),
            "EC PRIVATE KEY" => out.keys.push(KeyItem {
                pkcs8: sec1_to_pkcs8(&der).map_err(ctx)?,
                name: None,
                local_key_id: None,
            }),
            "PUBLIC KEY" => {
                SubjectPublicKeyInfoOwned::from_der(&der)
                    .map_err(|e| ctx(CliError::new(format!("malformed public key: {e}"))))?;
                out.public_keys.push(der.to_vec());
            }
            "RSA PUBLIC KEY" => {
                pkcs1::RsaPublicKeyRef::from_der(&der)
                    .map_err(|e| ctx(CliError::new(format!("malformed RSA public key: {e}"))))?;
                let spki = SubjectPublicKeyInfoOwned {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: RSA_ENCRYPTION,
                        parameters: Some(Any::null()),
                    },
                    subject_public_key: der::asn1::BitString::from_bytes(&der)
                        .map_err(|e| ctx(CliError::new(e.to_string())))?,
                };
                out.public_keys.push(
                    spki.to_der()
                        .map_err(|e| ctx(CliError::new(e.to_string())))?,
                );
            }
            "EC PARAMETERS" => {} // `openssl ecparam -genkey` writes it before the key
            "PKCS12" => out.notes.push(format!("skipped PEM block {n} ({label})")),
            other => {
                out.notes.push(format!(
                    "skipped PEM block {n}: \"{other}\" is not a certificate or key"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pem_blocks() {
        let text = "junk\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
                    -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\ntrailer";
        let b = pem_blocks(text);
        assert_eq!(b.len(), 2);
        assert!(b[0].starts_with("-----BEGIN EC PARAMETERS-----"));
        assert!(b[1].ends_with("-----END CERTIFICATE-----"));
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let mut pw = || -> Result<SecretString> { Err(CliError::new("no")) };
        let e = read(b"hello world", None, &mut pw).err().unwrap();
        assert!(e.message.contains("not a certificate"), "{}", e.message);
        let e = read(
            b"-----BEGIN FOO-----\n!!\n-----END FOO-----\n",
            None,
            &mut pw,
        )
        .err()
        .unwrap();
        assert!(e.message.contains("PEM block 1"), "{}", e.message);
    }

    fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn read_file(path: &std::path::Path, format: Option<Format>, pass: &str) -> Result<Contents> {
        let bytes = std::fs::read(path).unwrap();
        let mut pw = || -> Result<SecretString> { Ok(SecretString::from(pass)) };
        read(&bytes, format, &mut pw)
    }

    #[test]
    fn openssl_key_forms() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        if !openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
                "-out",
                "rsa.pem",
            ],
        ) {
            eprintln!("note: no openssl; skipped");
            return;
        }
        assert!(openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                "ec.pem"
            ]
        ));
        assert!(openssl(
            d,
            &["pkey", "-in", "rsa.pem", "-traditional", "-out", "rsa1.pem"]
        ));
        assert!(openssl(d, &["ec", "-in", "ec.pem", "-out", "sec1.pem"]));
        assert!(openssl(
            d,
            &["ec", "-in", "ec.pem", "-outform", "DER", "-out", "sec1.der"]
        ));
        assert!(openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "ec.pem",
                "-v2",
                "aes-256-cbc",
                "-passout",
                "pass:pw",
                "-out",
                "enc.pem"
            ]
        ));
        assert!(openssl(
            d,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "rsa.pem",
                "-v2",
                "des3",
                "-v2prf",
                "hmacWithSHA512",
                "-passout",
                "pass:pw",
                "-outform",
                "DER",
                "-out",
                "enc.der"
            ]
        ));
        assert!(openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa.pem",
                "-aes128",
                "-traditional",
                "-passout",
                "pass:pw",
                "-out",
                "legacy.pem"
            ]
        ));
        assert!(openssl(
            d,
            &["pkey", "-in", "rsa.pem", "-pubout", "-out", "pub.pem"]
        ));

        let reference = |name: &str| {
            let c = read_file(&d.join(name), None, "pw").unwrap();
            assert_eq!(c.keys.len(), 1, "{name}");
            PrivateKeyInfoOwned::from_der(&c.keys[0].pkcs8).unwrap()
        };
        let rsa = reference("rsa.pem");
        assert_eq!(reference("rsa1.pem").algorithm.oid, RSA_ENCRYPTION);
        assert_eq!(rsa.private_key, reference("rsa1.pem").private_key);
        assert_eq!(rsa.private_key, reference("enc.der").private_key);
        let ec = reference("ec.pem");
        assert_eq!(reference("sec1.pem").algorithm, ec.algorithm);
        assert_eq!(reference("sec1.der").algorithm, ec.algorithm);
        assert_eq!(reference("enc.pem").private_key, ec.private_key);
        assert_eq!(
            read_file(&d.join("pub.pem"), None, "")
                .unwrap()
                .public_keys
                .len(),
            1
        );

        let e = read_file(&d.join("enc.pem"), None, "bad").err().unwrap();
        assert!(e.message.contains("wrong passphrase"), "{}", e.message);
        let e = read_file(&d.join("legacy.pem"), None, "pw").err().unwrap();
        assert!(e.message.contains("openssl pkcs8 -topk8"), "{}", e.message);
        let e = read_file(&d.join("pub.pem"), Some(Format::Pkcs8), "")
            .err()
            .unwrap();
        assert!(e.message.contains("not a PKCS#8"), "{}", e.message);
        let e = read_file(&d.join("rsa.pem"), Some(Format::Pkcs12), "")
            .err()
            .unwrap();
        assert!(e.message.contains("not a PKCS#12"), "{}", e.message);
    }
}
