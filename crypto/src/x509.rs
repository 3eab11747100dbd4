//! X.509 certificates (parsed with `x509-cert`) to PKCS#11 attributes.

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoRef;
use token_api::ck::*;
use token_api::{Error, Result, Template};
use x509_cert::Certificate;
use x509_cert::time::Time;

use crate::ec::{Curve, curve_from_params};
use crate::util::{octet_string, value_invalid};

/// rsaEncryption (RFC 8017 appendix C), id-ecPublicKey (RFC 5480 §2.1.1), id-Ed25519 (RFC 8410 §3).
pub(crate) const OID_RSA: &str = "1.2.840.113549.1.1.1";
pub(crate) const OID_EC: &str = "1.2.840.10045.2.1";
pub(crate) const OID_ED25519: &str = "1.3.101.112";

fn der_err(_: der::Error) -> Error {
    value_invalid("malformed DER")
}

/// `CK_DATE` ("YYYYMMDD") of a certificate time.
fn ck_date(t: &Time) -> Vec<u8> {
    let d = t.to_date_time();
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day()).into_bytes()
}

/// The attributes PKCS#11 takes from a certificate's DER: `CKA_SUBJECT`, `CKA_ISSUER`,
/// `CKA_SERIAL_NUMBER` (the DER INTEGER), `CKA_START_DATE` / `CKA_END_DATE` (`CK_DATE`, from
/// notBefore / notAfter), `CKA_PUBLIC_KEY_INFO` (the SPKI DER), `CKA_CERTIFICATE_TYPE` = X.509.
/// Malformed DER gives `CKR_ATTRIBUTE_VALUE_INVALID`.
pub fn certificate_attributes(der: &[u8]) -> Result<Template> {
    let cert = Certificate::from_der(der).map_err(der_err)?;
    let tbs = cert.tbs_certificate();
    let mut t = Template::new();
    t.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    t.set(CKA_SUBJECT, tbs.subject().to_der().map_err(der_err)?);
    t.set(CKA_ISSUER, tbs.issuer().to_der().map_err(der_err)?);
    t.set(
        CKA_SERIAL_NUMBER,
        tbs.serial_number().to_der().map_err(der_err)?,
    );
    t.set(CKA_START_DATE, ck_date(&tbs.validity().not_before));
    t.set(CKA_END_DATE, ck_date(&tbs.validity().not_after));
    t.set(
        CKA_PUBLIC_KEY_INFO,
        tbs.subject_public_key_info().to_der().map_err(der_err)?,
    );
    Ok(t)
}

/// The public key object attributes (`CKA_KEY_TYPE` and components, e.g. `CKA_MODULUS` +
/// `CKA_PUBLIC_EXPONENT`, `CKA_EC_PARAMS` + `CKA_EC_POINT`, `CKA_GOSTR3410_PARAMS` +
/// `CKA_GOSTR3411_PARAMS` + `CKA_VALUE`) of a SubjectPublicKeyInfo in DER.
pub fn public_key_attributes(spki_der: &[u8]) -> Result<Template> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(der_err)?;
    let oid = spki.algorithm.oid.to_string();
    let params = match &spki.algorithm.parameters {
        Some(p) => p.to_der().map_err(der_err)?,
        None => Vec::new(),
    };
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| value_invalid("the public key is not a whole number of bytes"))?;
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    match oid.as_str() {
        OID_RSA => {
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1)
            let (n, e) = rsa_public_key(key).ok_or_else(|| value_invalid("bad RSAPublicKey"))?;
            t.set_ulong(CKA_KEY_TYPE, CKK_RSA);
            t.set(CKA_MODULUS, n.to_vec());
            t.set(CKA_PUBLIC_EXPONENT, e.to_vec());
        }
        OID_EC => {
            let curve = curve_from_params(&params)?;
            t.set_ulong(CKA_KEY_TYPE, CKK_EC);
            t.set(CKA_EC_PARAMS, params);
            let _ = curve;
            t.set(CKA_EC_POINT, octet_string(key)?);
        }
        OID_ED25519 => {
            if key.len() != 32 {
                return Err(value_invalid("an Ed25519 public key is 32 bytes"));
            }
            t.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
            t.set(CKA_EC_PARAMS, Curve::Ed25519.oid_der().to_vec());
            t.set(CKA_EC_POINT, octet_string(key)?);
        }
        o if crate::gost::is_gost_oid(o) => return crate::gost::spki_attributes(o, &params, key),
        _ => {
            return Err(Error::with(
                CKR_KEY_TYPE_INCONSISTENT,
                format!("unsupported public key algorithm {oid}"),
            ));
        }
    }
    // Check the key itself (e.g. the point is on the curve).
    crate::key::Key::from_attributes(&t)?;
    Ok(t)
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
#[derive(der::Sequence)]
pub(crate) struct RsaPublicKey<'a> {
    pub modulus: der::asn1::UintRef<'a>,
    pub public_exponent: der::asn1::UintRef<'a>,
}

/// (n, e) of a DER RSAPublicKey, without leading zero bytes.
pub(crate) fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let k = RsaPublicKey::from_der(der).ok()?;
    Some((k.modulus.as_bytes(), k.public_exponent.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input() {
        assert_eq!(
            certificate_attributes(b"not a cert").unwrap_err().rv(),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            public_key_attributes(&[0x30, 0x00]).unwrap_err().rv(),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }
}
