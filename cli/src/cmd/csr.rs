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
use clap::Args;
use const_oid::ObjectIdentifier;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use der::asn1::{BitString, SetOfVec, UintRef};
use der::{Decode, Encode, EncodePem};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

#[derive(Args, Debug)]
pub struct CsrArgs {
    /// The key: CKA_ID (hex) of the private key on the token
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub id: HexId,
    /// Subject, OpenSSL style ("/C=RU/O=Org/CN=Name") or RFC 4514 ("CN=Name,O=Org,C=RU")
    #[arg(long, value_name = "NAME")]
    pub subject: String,
    /// Write the request here [default: standard output]
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write DER instead of PEM
    #[arg(long)]
    pub der: bool,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

/// CKM_GOSTR3410_WITH_GOSTR3411_12_256 / _512 (TC26, gost-pkcs11.md §1.2).
const CKM_GOSTR3410_WITH_GOSTR3411_12_256: CK_MECHANISM_TYPE = 0xD432_1008;
const CKM_GOSTR3410_WITH_GOSTR3411_12_512: CK_MECHANISM_TYPE = 0xD432_1009;

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const GOST_SIGN_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.3.2");
const GOST_SIGN_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.3.3");

/// How to sign for one key type: the mechanism, the AlgorithmIdentifier, the signature format.
struct Scheme {
    mechanism: Mechanism<'static>,
    algorithm: AlgorithmIdentifierOwned,
    /// `r || s` to be re-encoded as ECDSA-Sig-Value.
    ecdsa: bool,
}

fn vendor(ty: CK_MECHANISM_TYPE) -> Result<Mechanism<'static>> {
    let t = MechanismType::new_vendor_defined(ty)
        .map_err(|_| CliError::new("bad vendor mechanism number"))?;
    Ok(Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        t, None,
    )))
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
                "cannot make a certification request with a {} key (RSA, EC and GOST R \
                 34.10-2012 keys can)",
                crate::describe::key_type_name(other)
            )));
        }
    })
}

/// Escape an attribute value for an RFC 4514 string (§2.4).
fn escape_4514(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A subject name: OpenSSL's "/type=value/..." (most significant RDN first, as `openssl req
/// -subj` takes it) or an RFC 4514 string.
pub fn parse_subject(s: &str) -> Result<Name> {
    let bad = |e: der::Error| CliError::usage(format!("bad --subject {s:?}: {e}"));
    let Some(rest) = s.strip_prefix('/') else {
        return Name::from_str(s).map_err(bad);
    };
    let mut rdns = Vec::new();
    // "\/" escapes a slash inside a value, as in OpenSSL.
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '/' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let (ty, value) = part
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("bad --subject part {part:?}: no '='")))?;
        rdns.push(format!("{ty}={}", escape_4514(value)));
    }
    if rdns.is_empty() {
        return Err(CliError::usage("--subject is empty"));
    }
    // RFC 4514 lists the most specific RDN first.
    rdns.reverse();
    Name::from_str(&rdns.join(",")).map_err(bad)
}

fn find_one(session: &Session, class: ObjectClass, id: &[u8]) -> Result<Option<ObjectHandle>> {
    Ok(session
        .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?
        .into_iter()
        .next())
}

/// The key's SubjectPublicKeyInfo: `CKA_PUBLIC_KEY_INFO` of the private or public key, else
/// built by `klyuch-crypto` from the public key object's components.
fn key_spki(
    session: &Session,
    private: ObjectHandle,
    public: Option<ObjectHandle>,
) -> Result<Vec<u8>> {
    for h in std::iter::once(private).chain(public) {
        if let Ok(attrs) = session.get_attributes(h, &[AttributeType::PublicKeyInfo]) {
            for a in attrs {
                if let Attribute::PublicKeyInfo(v) = a
                    && !v.is_empty()
                {
                    return Ok(v);
                }
            }
        }
    }
    let public = public.ok_or_else(|| {
        CliError::new("the token gives no public key for this key (no CKA_PUBLIC_KEY_INFO, no public key object with the same ID)")
    })?;
    let mut t = token_api::Template::new();
    t.set_ulong(token_api::ck::CKA_CLASS, CKO_PUBLIC_KEY);
    let wanted: [(CK_ATTRIBUTE_TYPE, AttributeType); 6] = [
        (CKA_KEY_TYPE, AttributeType::KeyType),
        (CKA_MODULUS, AttributeType::Modulus),
        (CKA_PUBLIC_EXPONENT, AttributeType::PublicExponent),
        (CKA_EC_PARAMS, AttributeType::EcParams),
        (CKA_EC_POINT, AttributeType::EcPoint),
        (CKA_VALUE, AttributeType::Value),
    ];
    for (ty, at) in wanted {
        let Ok(attrs) = session.get_attributes(public, &[at]) else {
            continue;
        };
        for a in attrs {
            let v: Vec<u8> = match a {
                Attribute::KeyType(k) => CK_KEY_TYPE::from(k).to_ne_bytes().to_vec(),
                Attribute::Modulus(v)
                | Attribute::PublicExponent(v)
                | Attribute::EcParams(v)
                | Attribute::EcPoint(v)
                | Attribute::Value(v) => v,
                _ => continue,
            };
            t.set(ty, v);
        }
    }
    // GOST domain parameters (no cryptoki attribute type of their own)
    for ty in [CKA_GOSTR3410_PARAMS, CKA_GOSTR3411_PARAMS] {
        if let Ok(attrs) = session.get_attributes(public, &[AttributeType::VendorDefined(ty)]) {
            for a in attrs {
                if let Attribute::VendorDefined((_, v)) = a {
                    t.set(ty, v);
                }
            }
        }
    }
    klyuch_crypto::Key::from_attributes(&t)
        .and_then(|k| k.public_key_info())
        .map_err(|e| CliError::new(format!("cannot encode the public key: {}", e.detail())))
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 5480 §2.2.3).
#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

fn ecdsa_der(rs: &[u8]) -> Result<Vec<u8>> {
    let (r, s) = rs.split_at(rs.len() / 2);
    let bad = |_| CliError::new("the token's ECDSA signature cannot be encoded");
    EcdsaSigValue {
        r: UintRef::new(r).map_err(bad)?,
        s: UintRef::new(s).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &CsrArgs) -> Result<()> {
    let subject = parse_subject(&a.subject)?;
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let session = ctx.open_session(slot, false)?;
    let pin = ctx.user_pin_for(&info, &a.pin.source())?;
    ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    let id = &a.id.0;
    let private = find_one(&session, ObjectClass::PRIVATE_KEY, id)?.ok_or_else(|| {
        CliError::new(format!(
            "no private key with ID {} on the token; `klyuch objects --login` lists them",
            hex::encode(id)
        ))
    })?;
    let public = find_one(&session, ObjectClass::PUBLIC_KEY, id)?;
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
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: spki,
        attributes: SetOfVec::new(),
    };
    let tbs = info.to_der().map_err(der_err)?;
    let sig = session
        .sign(&s.mechanism, private, &tbs)
        .map_err(|e| CliError::from(e).context("signing the request with the token key"))?;
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
    fn subjects() {
        let n = parse_subject("/C=RU/O=Klyuch, Demo/CN=Иван Петров").unwrap();
        assert_eq!(n.to_string(), "CN=Иван Петров,O=Klyuch\\, Demo,C=RU");
        let m = parse_subject("CN=Иван Петров,O=Klyuch\\, Demo,C=RU").unwrap();
        assert_eq!(n.to_der().unwrap(), m.to_der().unwrap());
        assert!(parse_subject("/").is_err());
        assert!(parse_subject("/CN").is_err());
        let s = parse_subject("/CN=a\\/b").unwrap();
        assert_eq!(s.to_string(), "CN=a/b");
    }
}
