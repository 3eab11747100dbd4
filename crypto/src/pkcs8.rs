//! Private keys in PKCS#8 (and the formats `klyuch import` reads) to PKCS#11 attributes and back.
//!
//! Read: PKCS#8 `PrivateKeyInfo` (RFC 5208 / RFC 5958) with RSA, EC (P-256/384/521) or Ed25519
//! keys; the bare PKCS#1 `RSAPrivateKey` (RFC 8017 A.1.2) and SEC 1 `ECPrivateKey` (RFC 5915);
//! PEM with the labels "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY" (RFC 7468).
//! Written: PKCS#8 v1 (`to_pkcs8`, for `C_WrapKey`).

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use pkcs8::PrivateKeyInfoRef;
use token_api::ck::*;
use token_api::{Error, Result, Template};
use zeroize::Zeroizing;

use crate::ec::{Curve, curve_from_params};
use crate::key::{Key, KeyKind};
use crate::util::{octet_string_content, value_invalid};
use crate::x509::{OID_EC, OID_ED25519, OID_RSA};

/// The algorithm OIDs (see `x509.rs` for their sources).
const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap(OID_RSA);
const EC_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap(OID_EC);
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap(OID_ED25519);

/// `RSAPrivateKey` (RFC 8017 A.1.2), two-prime (version 0, no otherPrimeInfos).
#[derive(Sequence)]
struct RsaPrivateKey<'a> {
    version: u8,
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
    private_exponent: UintRef<'a>,
    prime1: UintRef<'a>,
    prime2: UintRef<'a>,
    exponent1: UintRef<'a>,
    exponent2: UintRef<'a>,
    coefficient: UintRef<'a>,
}

/// `ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING, parameters [0]
/// ECParameters OPTIONAL, publicKey [1] BIT STRING OPTIONAL }` (RFC 5915 §3).
#[derive(Sequence)]
struct EcPrivateKey<'a> {
    version: u8,
    private_key: &'a OctetStringRef,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    parameters: Option<AnyRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    public_key: Option<BitStringRef<'a>>,
}

fn der_err(_: der::Error) -> Error {
    value_invalid("malformed private key DER")
}

/// The private key object attributes (`CKA_CLASS` = private key, `CKA_KEY_TYPE` and the
/// components) of a PKCS#8 `PrivateKeyInfo` in DER (RSA, EC P-256/384/521, Ed25519, GOST
/// R 34.10-2012 as OpenSSL's GOST engine writes it).
pub fn private_key_attributes(der: &[u8]) -> Result<Template> {
    let pki = PrivateKeyInfoRef::from_der(der).map_err(der_err)?;
    let oid = pki.algorithm.oid.to_string();
    let params = match &pki.algorithm.parameters {
        Some(p) => der::Encode::to_der(p).map_err(der_err)?,
        None => Vec::new(),
    };
    let key = pki.private_key.as_bytes();
    let t = match oid.as_str() {
        OID_RSA => rsa_private_key_attributes(key)?,
        OID_EC => ec_sec1(key, Some(&params))?,
        OID_ED25519 => {
            // CurvePrivateKey ::= OCTET STRING (RFC 8410 §7)
            let seed = octet_string_content(key)
                .filter(|s| s.len() == 32)
                .ok_or_else(|| value_invalid("bad Ed25519 private key"))?;
            let mut t = base(CKK_EC_EDWARDS);
            t.set(CKA_EC_PARAMS, Curve::Ed25519.oid_der().to_vec());
            t.set(CKA_VALUE, seed.to_vec());
            t
        }
        o if crate::gost::is_gost_oid(o) => crate::gost::pkcs8_attributes(o, &params, key)?,
        _ => {
            return Err(Error::with(
                CKR_KEY_TYPE_INCONSISTENT,
                format!("unsupported private key algorithm {oid}"),
            ));
        }
    };
    Key::from_attributes(&t)?;
    Ok(t)
}

fn base(kt: CK_KEY_TYPE) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
    t.set_ulong(CKA_KEY_TYPE, kt);
    t
}

/// Private key attributes of a PKCS#1 `RSAPrivateKey` (two-prime, version 0).
pub fn rsa_private_key_attributes(der: &[u8]) -> Result<Template> {
    let k = RsaPrivateKey::from_der(der).map_err(|_| {
        value_invalid("bad RSAPrivateKey (only two-prime keys, version 0, are supported)")
    })?;
    if k.version != 0 {
        return Err(value_invalid(
            "only two-prime RSAPrivateKey (version 0) is supported",
        ));
    }
    let mut t = base(CKK_RSA);
    for (ty, v) in [
        (CKA_MODULUS, k.modulus),
        (CKA_PUBLIC_EXPONENT, k.public_exponent),
        (CKA_PRIVATE_EXPONENT, k.private_exponent),
        (CKA_PRIME_1, k.prime1),
        (CKA_PRIME_2, k.prime2),
        (CKA_EXPONENT_1, k.exponent1),
        (CKA_EXPONENT_2, k.exponent2),
        (CKA_COEFFICIENT, k.coefficient),
    ] {
        t.set(ty, v.as_bytes().to_vec());
    }
    Ok(t)
}

/// Private key attributes of a SEC 1 `ECPrivateKey` (RFC 5915), the curve from its `[0]`
/// parameters.
pub fn ec_private_key_attributes(der: &[u8]) -> Result<Template> {
    let t = ec_sec1(der, None)?;
    Key::from_attributes(&t)?;
    Ok(t)
}

fn ec_sec1(der: &[u8], outer_params: Option<&[u8]>) -> Result<Template> {
    let bad = || value_invalid("bad ECPrivateKey");
    let k = EcPrivateKey::from_der(der).map_err(|_| bad())?;
    if k.version != 1 {
        return Err(bad());
    }
    let params = match outer_params.filter(|p| !p.is_empty()) {
        Some(p) => p.to_vec(),
        None => k
            .parameters
            .ok_or_else(|| value_invalid("the EC key names no curve"))?
            .to_der()
            .map_err(|_| bad())?,
    };
    let curve = curve_from_params(&params)?;
    if curve == Curve::Ed25519 {
        return Err(value_invalid("an ECPrivateKey cannot be on edwards25519"));
    }
    let mut t = base(CKK_EC);
    t.set(CKA_EC_PARAMS, params);
    t.set(CKA_VALUE, k.private_key.as_bytes().to_vec());
    Ok(t)
}

/// Private key attributes from PEM: "PRIVATE KEY" (PKCS#8), "RSA PRIVATE KEY" (PKCS#1) or
/// "EC PRIVATE KEY" (SEC 1). Encrypted PEM is not handled here.
pub fn private_key_attributes_pem(pem: &str) -> Result<Template> {
    let (label, der) =
        der::pem::decode_vec(pem.as_bytes()).map_err(|_| value_invalid("not PEM"))?;
    let der = Zeroizing::new(der);
    match label {
        "PRIVATE KEY" => private_key_attributes(&der),
        "RSA PRIVATE KEY" => {
            let t = rsa_private_key_attributes(&der)?;
            Key::from_attributes(&t)?;
            Ok(t)
        }
        "EC PRIVATE KEY" => ec_private_key_attributes(&der),
        _ => Err(value_invalid("unsupported PEM label")),
    }
}

/// The matching public key object attributes for a private key template.
pub fn public_from_private(private: &Template) -> Result<Template> {
    Key::from_attributes(private)?.public_attributes()
}

/// A private key as PKCS#8 DER (for `C_WrapKey`).
pub fn to_pkcs8(key: &Key) -> Result<Zeroizing<Vec<u8>>> {
    if key.class() != CKO_PRIVATE_KEY {
        return Err(Error::with(
            CKR_KEY_NOT_WRAPPABLE,
            "only private keys become PKCS#8",
        ));
    }
    let enc = |_| Error::general("cannot encode the private key");
    let (oid, params, inner): (ObjectIdentifier, Option<AnyRef<'_>>, Zeroizing<Vec<u8>>) =
        match &key.kind {
            KeyKind::Rsa(r) => {
                let p = r.parts();
                if p.p.is_empty() || p.dp.is_empty() {
                    return Err(Error::with(
                        CKR_KEY_NOT_WRAPPABLE,
                        "an RSA key without its primes cannot be written as PKCS#1",
                    ));
                }
                let u = |v| UintRef::new(v).map_err(enc);
                let k = RsaPrivateKey {
                    version: 0,
                    modulus: u(&p.n)?,
                    public_exponent: u(&p.e)?,
                    private_exponent: u(&p.d)?,
                    prime1: u(&p.p)?,
                    prime2: u(&p.q)?,
                    exponent1: u(&p.dp)?,
                    exponent2: u(&p.dq)?,
                    coefficient: u(&p.qinv)?,
                };
                // NULL parameters (RFC 8017 A.1)
                (
                    RSA_OID,
                    Some(AnyRef::NULL),
                    Zeroizing::new(k.to_der().map_err(enc)?),
                )
            }
            KeyKind::Ec { curve, key: ec } => {
                let d = ec.private_scalar();
                let point = ec.public_point();
                let k = EcPrivateKey {
                    version: 1,
                    private_key: OctetStringRef::new(&d).map_err(enc)?,
                    parameters: None,
                    public_key: Some(BitStringRef::from_bytes(&point).map_err(enc)?),
                };
                (
                    EC_OID,
                    Some(AnyRef::from_der(curve.oid_der()).map_err(enc)?),
                    Zeroizing::new(k.to_der().map_err(enc)?),
                )
            }
            KeyKind::Ed25519Private(kp) => {
                use aws_lc_rs::encoding::AsBigEndian;
                let seed = kp
                    .seed()
                    .and_then(|s| s.as_be_bytes())
                    .map_err(|_| Error::general("Ed25519 seed export failed"))?;
                // CurvePrivateKey ::= OCTET STRING (RFC 8410 §7), no parameters
                (
                    ED25519_OID,
                    None,
                    Zeroizing::new(crate::util::octet_string(seed.as_ref())?),
                )
            }
            KeyKind::Gost(g) => return crate::gost::to_pkcs8(g),
            _ => {
                return Err(Error::with(CKR_KEY_NOT_WRAPPABLE, "not a private key"));
            }
        };
    // PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier, privateKey OCTET STRING }
    let pki = PrivateKeyInfoRef::new(
        spki::AlgorithmIdentifier {
            oid,
            parameters: params,
        },
        OctetStringRef::new(&inner).map_err(enc)?,
    );
    Ok(Zeroizing::new(pki.to_der().map_err(enc)?))
}
