//! Private keys in PKCS#8 (and the formats `klyuch import` reads) to PKCS#11 attributes and back.
//!
//! Read: PKCS#8 `PrivateKeyInfo` (RFC 5208 / RFC 5958) with RSA, EC (P-256/384/521) or Ed25519
//! keys; the bare PKCS#1 `RSAPrivateKey` (RFC 8017 A.1.2) and SEC 1 `ECPrivateKey` (RFC 5915);
//! PEM with the labels "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY" (RFC 7468).
//! Written: PKCS#8 v1 (`to_pkcs8`, for `C_WrapKey`).

use der::Decode;
use pkcs8::PrivateKeyInfoRef;
use token_api::ck::*;
use token_api::{Error, Result, Template};
use zeroize::Zeroizing;

use crate::ec::{Curve, curve_from_params};
use crate::key::{Key, KeyKind};
use crate::util::{der_octet_string, der_take, der_tlv, der_uint, strip_zeros, value_invalid};
use crate::x509::{OID_EC, OID_ED25519, OID_RSA};

/// DER of the algorithm OIDs (see `x509.rs` for their sources).
const OID_RSA_DER: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_EC_DER: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

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
            let seed = crate::util::der_octet_string_content(key)
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
    let bad = || value_invalid("bad RSAPrivateKey");
    let (0x30, mut body, []) = der_take(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let mut ints = Vec::with_capacity(9);
    while !body.is_empty() {
        let (tag, v, rest) = der_take(body).ok_or_else(bad)?;
        if tag != 0x02 {
            return Err(bad());
        }
        ints.push(v);
        body = rest;
    }
    if ints.len() != 9 || ints[0] != [0] {
        return Err(value_invalid(
            "only two-prime RSAPrivateKey (version 0) is supported",
        ));
    }
    let mut t = base(CKK_RSA);
    for (ty, v) in [
        CKA_MODULUS,
        CKA_PUBLIC_EXPONENT,
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
    ]
    .into_iter()
    .zip(&ints[1..])
    {
        t.set(ty, strip_zeros(v).to_vec());
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
    let (0x30, body, []) = der_take(der).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x02, [1], rest) = der_take(body).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x04, d, mut rest) = der_take(rest).ok_or_else(bad)? else {
        return Err(bad());
    };
    let mut params = outer_params.filter(|p| !p.is_empty()).map(<[u8]>::to_vec);
    while !rest.is_empty() {
        let (tag, v, r) = der_take(rest).ok_or_else(bad)?;
        if tag == 0xa0 && params.is_none() {
            params = Some(v.to_vec());
        }
        rest = r;
    }
    let params = params.ok_or_else(|| value_invalid("the EC key names no curve"))?;
    let curve = curve_from_params(&params)?;
    if curve == Curve::Ed25519 {
        return Err(value_invalid("an ECPrivateKey cannot be on edwards25519"));
    }
    let mut t = base(CKK_EC);
    t.set(CKA_EC_PARAMS, params);
    t.set(CKA_VALUE, d.to_vec());
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
    let (alg, inner): (Vec<u8>, Zeroizing<Vec<u8>>) = match &key.kind {
        KeyKind::Rsa(r) => {
            let p = r.parts();
            if p.p.is_empty() || p.dp.is_empty() {
                return Err(Error::with(
                    CKR_KEY_NOT_WRAPPABLE,
                    "an RSA key without its primes cannot be written as PKCS#1",
                ));
            }
            let mut body = Zeroizing::new(der_uint(&[0]));
            for v in [&p.n[..], &p.e, &p.d, &p.p, &p.q, &p.dp, &p.dq, &p.qinv] {
                body.extend_from_slice(&Zeroizing::new(der_uint(v)));
            }
            let mut alg = OID_RSA_DER.to_vec();
            alg.extend_from_slice(&[0x05, 0x00]); // NULL parameters (RFC 8017 A.1)
            (alg, Zeroizing::new(der_tlv(0x30, &body)))
        }
        KeyKind::Ec { curve, key: ec } => {
            let d = ec.private_scalar();
            let mut body = Zeroizing::new(der_uint(&[1]));
            body.extend_from_slice(&Zeroizing::new(der_octet_string(&d)));
            let mut bits = vec![0u8];
            bits.extend_from_slice(&ec.public_point());
            body.extend_from_slice(&der_tlv(0xa1, &der_tlv(0x03, &bits)));
            let mut alg = OID_EC_DER.to_vec();
            alg.extend_from_slice(curve.oid_der());
            (alg, Zeroizing::new(der_tlv(0x30, &body)))
        }
        KeyKind::Ed25519Private(kp) => {
            use aws_lc_rs::encoding::AsBigEndian;
            let seed = kp
                .seed()
                .and_then(|s| s.as_be_bytes())
                .map_err(|_| Error::general("Ed25519 seed export failed"))?;
            (
                Curve::Ed25519.oid_der().to_vec(),
                Zeroizing::new(der_octet_string(seed.as_ref())),
            )
        }
        KeyKind::Gost(g) => return crate::gost::to_pkcs8(g),
        _ => {
            return Err(Error::with(CKR_KEY_NOT_WRAPPABLE, "not a private key"));
        }
    };
    // PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier, privateKey OCTET STRING }
    let mut body = Zeroizing::new(der_uint(&[0]));
    body.extend_from_slice(&der_tlv(0x30, &alg));
    body.extend_from_slice(&Zeroizing::new(der_octet_string(&inner)));
    Ok(Zeroizing::new(der_tlv(0x30, &body)))
}
