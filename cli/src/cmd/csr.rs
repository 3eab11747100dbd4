//! `klyuch csr`: a PKCS#10 certification request (RFC 2986) for a key on the token, signed by
//! that key through PKCS#11 `C_Sign` (what vendor tools such as Rutoken's `C_EX_CreateCSR` do).
//!
//! The ASN.1 comes from `x509-cert` (`CertReqInfo`, `CertReq`, `Name`) and `der`; the key's
//! SubjectPublicKeyInfo is the token's `CKA_PUBLIC_KEY_INFO`, or is built from the public key
//! object by `klyuch-crypto`. Signature algorithms:
//! * RSA: sha256WithRSAEncryption (1.2.840.113549.1.1.11, NULL parameters; RFC 8017 A.2.4,
//!   RFC 4055 §5), `CKM_SHA256_RSA_PKCS`;
//! * EC: ecdsa-with-SHA256/384/512 (1.2.840.10045.4.3.2/3/4, no parameters; RFC 5758 §3.2) by
//!   curve size, `CKM_ECDSA_SHA*`, `r || s` re-encoded as `ECDSA-Sig-Value` (RFC 5480 §2.2.3);
//! * GOST R 34.10-2012: id-tc26-signwithdigest-gost3410-12-256 / -512 (1.2.643.7.1.1.3.2 / .3.3,
//!   parameters absent: RFC 9215 §3), `CKM_GOSTR3410_WITH_GOSTR3411_12_256` / `_512`
//!   (0xD4321008/9, TC26); the signature is the raw `s || r` (RFC 9215 §3, gost-pkcs11.md §7).

use crate::attrs::{HexId, parse_hex_id};
use crate::ctx::{Ctx, TokenSelector};
use crate::describe::CKK_GOSTR3410_512;
use crate::error::{CliError, Result};
use crate::pin::UserPinArgs;
use crate::subject::parse_subject;
pub use crate::tokenkey::key_spki;
use crate::tokenkey::{
    CKM_GOSTR3410_WITH_GOSTR3411_12_256, CKM_GOSTR3410_WITH_GOSTR3411_12_512, ecdsa_der, find_one,
    vendor,
};
use clap::Args;
use const_oid::ObjectIdentifier;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki_sys::*;
use der::asn1::OctetString;
use der::asn1::{BitString, SetOfVec};
use der::{Decode, Encode, EncodePem};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::path::{Path, PathBuf};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

#[derive(Args, Debug)]
pub struct CsrArgs {
    /// The key: a PKCS#11 URI (RFC 7512) such as 'pkcs11:token=L;id=%01' or
    /// 'pkcs11:object=LABEL;type=private'
    #[arg(
        long,
        value_name = "URI",
        required_unless_present = "id",
        conflicts_with = "id"
    )]
    pub key: Option<String>,
    /// The key: CKA_ID (hex) of the private key on the token (instead of --key)
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub id: Option<HexId>,
    /// Subject, OpenSSL style ("/C=RU/O=Org/CN=Name") or RFC 4514 ("CN=Name,O=Org,C=RU").
    /// Types: CN, SN (surname), G (givenName), C, ST, L, STREET, O, OU, T (title), E,
    /// serialNumber, SNILS, INN, INNLE, OGRN, OGRNIP, or a dotted OID
    #[arg(long, value_name = "NAME")]
    pub subject: String,
    /// Key usage to request (extensionRequest), comma-separated: digitalSignature,
    /// nonRepudiation (= contentCommitment), keyEncipherment, dataEncipherment, keyAgreement,
    /// keyCertSign, cRLSign; "none" asks for no extension
    #[arg(
        long,
        value_name = "LIST",
        default_value = "digitalSignature,nonRepudiation"
    )]
    pub key_usage: String,
    /// Write the request here [default: standard output]
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write DER instead of PEM
    #[arg(long)]
    pub der: bool,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const GOST_SIGN_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.3.2");
const GOST_SIGN_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.3.3");

/// How to sign for one key type: the mechanism, the AlgorithmIdentifier, the signature format.
struct Scheme {
    mechanism: Mechanism<'static>,
    algorithm: AlgorithmIdentifierOwned,
    /// `r || s` to be re-encoded as ECDSA-Sig-Value.
    ecdsa: bool,
}

fn scheme(key_type: CK_KEY_TYPE, spki: &SubjectPublicKeyInfoOwned) -> Result<Scheme> {
    let alg = |oid, parameters| AlgorithmIdentifierOwned { oid, parameters };
    Ok(match key_type {
        CKK_RSA => Scheme {
            mechanism: Mechanism::Sha256RsaPkcs,
            algorithm: alg(SHA256_WITH_RSA, Some(der::Any::null())),
            ecdsa: false,
        },
        CKK_EC => {
            // The point length tells the curve size: 65 (P-256), 97 (P-384), 133 (P-521).
            let n = spki.subject_public_key.raw_bytes().len();
            let (mechanism, oid) = match n {
                0..=65 => (Mechanism::EcdsaSha256, ECDSA_SHA256),
                66..=97 => (Mechanism::EcdsaSha384, ECDSA_SHA384),
                _ => (Mechanism::EcdsaSha512, ECDSA_SHA512),
            };
            Scheme {
                mechanism,
                algorithm: alg(oid, None),
                ecdsa: true,
            }
        }
        // Ed25519: id-Ed25519 1.3.101.112, parameters absent (RFC 8410 §3, §6), CKM_EDDSA
        // without parameters (pure Ed25519, PKCS#11 3.0 §2.3.14).
        CKK_EC_EDWARDS => Scheme {
            mechanism: Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
                cryptoki::mechanism::eddsa::EddsaSignatureScheme::Pure,
            )),
            algorithm: alg(ED25519, None),
            ecdsa: false,
        },
        CKK_GOSTR3410 => Scheme {
            mechanism: vendor(CKM_GOSTR3410_WITH_GOSTR3411_12_256)?,
            algorithm: alg(GOST_SIGN_256, None),
            ecdsa: false,
        },
        CKK_GOSTR3410_512 => Scheme {
            mechanism: vendor(CKM_GOSTR3410_WITH_GOSTR3411_12_512)?,
            algorithm: alg(GOST_SIGN_512, None),
            ecdsa: false,
        },
        other => {
            return Err(CliError::new(format!(
                "cannot make a certification request with a {} key (RSA, EC, Ed25519 and GOST R \
                 34.10-2012 keys can)",
                crate::describe::key_type_name(other)
            )));
        }
    })
}

/// keyUsage bits by name (RFC 5280 §4.2.1.3; contentCommitment is the newer name of
/// nonRepudiation).
fn key_usage(list: &str) -> Result<Option<KeyUsage>> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let mut bits: Option<KeyUsage> = None;
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let f = match name.to_ascii_lowercase().as_str() {
            "digitalsignature" => KeyUsages::DigitalSignature,
            "nonrepudiation" | "contentcommitment" => KeyUsages::NonRepudiation,
            "keyencipherment" => KeyUsages::KeyEncipherment,
            "dataencipherment" => KeyUsages::DataEncipherment,
            "keyagreement" => KeyUsages::KeyAgreement,
            "keycertsign" => KeyUsages::KeyCertSign,
            "crlsign" => KeyUsages::CRLSign,
            "encipheronly" => KeyUsages::EncipherOnly,
            "decipheronly" => KeyUsages::DecipherOnly,
            other => {
                return Err(CliError::usage(format!(
                    "unknown key usage {other:?} (digitalSignature, nonRepudiation, \
                     keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, \
                     encipherOnly, decipherOnly, or none)"
                )));
            }
        };
        bits = Some(match bits {
            None => KeyUsage(f.into()),
            Some(KeyUsage(b)) => KeyUsage(b | f),
        });
    }
    bits.map(Some)
        .ok_or_else(|| CliError::usage("--key-usage is empty (use none for no extension)"))
}

/// The PKCS#9 extensionRequest attribute (RFC 2985 §5.4.2, 1.2.840.113549.1.9.14) holding a
/// critical keyUsage extension (RFC 5280 §4.2.1.3: "conforming CAs SHOULD mark this extension
/// as critical").
fn extension_request(ku: &KeyUsage) -> Result<x509_cert::attr::Attribute> {
    let der_err = |e: der::Error| CliError::new(format!("cannot encode the key usage: {e}"));
    let ext = Extension {
        extn_id: <KeyUsage as const_oid::AssociatedOid>::OID,
        critical: true,
        extn_value: OctetString::new(ku.to_der().map_err(der_err)?).map_err(der_err)?,
    };
    x509_cert::attr::Attribute::try_from(ExtensionReq(vec![ext])).map_err(der_err)
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &CsrArgs) -> Result<()> {
    let subject = parse_subject(&a.subject)?;
    let usage = key_usage(&a.key_usage)?;
    let uri = a.key.as_deref().map(crate::uri::parse).transpose()?;
    let sel = match &uri {
        Some(u) => u.selector(sel)?,
        None => sel.clone(),
    };
    let pin_args = match &uri {
        Some(u) => u.pin_args(&a.pin),
        None => a.pin.clone(),
    };
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(&sel)?;
    if let Some(u) = &uri
        && !u.token_matches(&info)
    {
        return Err(CliError::new(format!(
            "the token in slot {} does not match the URI's serial/manufacturer/model",
            slot.id()
        )));
    }
    let session = ctx.open_session(slot, false)?;
    let pin = ctx.user_pin_for(&info, &pin_args.source())?;
    ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    let (private, id) = match &uri {
        Some(u) => crate::uri::find_private_key(&session, u.id.as_deref(), u.object.as_deref())?,
        None => {
            let id = a.id.as_ref().map(|i| i.0.clone()).unwrap_or_default();
            crate::uri::find_private_key(&session, Some(&id), None)?
        }
    };
    let public = find_one(&session, ObjectClass::PUBLIC_KEY, &id)?;
    let key_type = session
        .get_attributes(private, &[AttributeType::KeyType])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::KeyType(k) => Some(CK_KEY_TYPE::from(k)),
            _ => None,
        })
        .ok_or_else(|| CliError::new("the private key has no CKA_KEY_TYPE"))?;
    let spki_der = key_spki(&session, private, public)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&spki_der)
        .map_err(|e| CliError::new(format!("the key's SubjectPublicKeyInfo is malformed: {e}")))?;
    let s = scheme(key_type, &spki)?;
    let der_err = |e: der::Error| CliError::new(format!("cannot encode the request: {e}"));
    let mut attributes = SetOfVec::new();
    if let Some(ku) = &usage {
        attributes.insert(extension_request(ku)?).map_err(der_err)?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: spki,
        attributes,
    };
    let tbs = info.to_der().map_err(der_err)?;
    let signing = |e: cryptoki::error::Error| {
        CliError::from(e).context("signing the request with the token key")
    };
    let always_auth = crate::tokenkey::always_authenticate(&session, private);
    let sig = match crate::tokenkey::sign(
        &session,
        private,
        always_auth,
        pin.as_ref(),
        &s.mechanism,
        &tbs,
    )
    .map_err(signing)
    {
        Ok(sig) => sig,
        // Modules without the hash-and-sign ECDSA mechanisms (SoftHSMv2 2.6 has only
        // CKM_ECDSA): hash here, sign the digest with CKM_ECDSA (PKCS#11 3.0 §2.3.6).
        Err(e) if s.ecdsa && e.is_rv(CKR_MECHANISM_INVALID) => {
            use sha2::Digest;
            let digest = match s.mechanism {
                Mechanism::EcdsaSha384 => sha2::Sha384::digest(&tbs).to_vec(),
                Mechanism::EcdsaSha512 => sha2::Sha512::digest(&tbs).to_vec(),
                _ => sha2::Sha256::digest(&tbs).to_vec(),
            };
            session
                .sign(&Mechanism::Ecdsa, private, &digest)
                .map_err(signing)?
        }
        Err(e) => return Err(e),
    };
    let sig = if s.ecdsa { ecdsa_der(&sig)? } else { sig };
    let req = CertReq {
        info,
        algorithm: s.algorithm,
        signature: BitString::from_bytes(&sig).map_err(der_err)?,
    };
    let _ = session.logout();
    let out: Vec<u8> = if a.der {
        req.to_der().map_err(der_err)?
    } else {
        req.to_pem(der::pem::LineEnding::LF)
            .map_err(der_err)?
            .into_bytes()
    };
    match &a.out {
        Some(p) => {
            std::fs::write(p, &out)
                .map_err(|e| CliError::new(format!("writing {}: {e}", p.display())))?;
            eprintln!("Wrote the certification request to {}", p.display());
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_usage_lists() {
        let ku = key_usage("digitalSignature, contentCommitment")
            .unwrap()
            .unwrap();
        assert!(ku.digital_signature() && ku.non_repudiation() && !ku.key_encipherment());
        assert!(key_usage("none").unwrap().is_none());
        assert!(key_usage("frob").is_err());
        assert!(key_usage(",").is_err());
        let attr = extension_request(&ku).unwrap();
        assert_eq!(attr.oid.to_string(), "1.2.840.113549.1.9.14");
    }
}
