//! `token_api::Template` (raw attribute type and bytes, as `klyuch_crypto` builds them) to the
//! `cryptoki` crate's typed attributes, and the object ID that OpenSC would give a key.

use crate::error::{CliError, Result};
use cryptoki::object::{Attribute, AttributeType};
use cryptoki_sys::*;
use der::Decode;
use der::asn1::OctetStringRef;
use sha1::{Digest, Sha1};
use token_api::Template;

/// Name of an attribute type for messages (`CKA_GOSTR3410_PARAMS`).
pub fn attr_name(ty: CK_ATTRIBUTE_TYPE) -> String {
    token_api::attr::attr_name(ty)
}

/// One raw attribute as a cryptoki `Attribute`.
///
/// cryptoki 0.12 has no variant for some standard types (`CKA_GOSTR3410_PARAMS`,
/// `CKA_GOSTR3411_PARAMS`, ...); its `VendorDefined` variant passes any type number through
/// unchanged, so those go that way.
pub fn to_cryptoki(ty: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Result<Attribute> {
    let Ok(at) = AttributeType::try_from(ty) else {
        return Ok(Attribute::VendorDefined((
            AttributeType::VendorDefined(ty),
            value.to_vec(),
        )));
    };
    let bad = |what: &str| {
        CliError::new(format!(
            "attribute {} has a malformed value ({what})",
            attr_name(ty)
        ))
    };
    let ulong = || -> Result<CK_ULONG> {
        let b: [u8; size_of::<CK_ULONG>()] = value.try_into().map_err(|_| bad("not a CK_ULONG"))?;
        Ok(CK_ULONG::from_ne_bytes(b))
    };
    let boolean = || -> Result<bool> {
        match value {
            [b] => Ok(*b != 0),
            _ => Err(bad("not a CK_BBOOL")),
        }
    };
    use AttributeType as T;
    Ok(match at {
        T::Class => Attribute::Class(
            ulong()?
                .try_into()
                .map_err(|_| bad("unknown object class"))?,
        ),
        T::KeyType => Attribute::KeyType(ulong()?.try_into().map_err(|_| bad("unknown key type"))?),
        T::CertificateType => Attribute::CertificateType(
            ulong()?
                .try_into()
                .map_err(|_| bad("unknown certificate type"))?,
        ),
        T::ModulusBits => Attribute::ModulusBits(ulong()?.into()),
        T::ValueLen => Attribute::ValueLen(ulong()?.into()),
        T::StartDate | T::EndDate => {
            let date = if value.is_empty() {
                cryptoki::types::Date::new_empty()
            } else {
                if value.len() != 8 || !value.iter().all(u8::is_ascii_digit) {
                    return Err(bad("not a CK_DATE"));
                }
                let s = std::str::from_utf8(value).map_err(|_| bad("not a CK_DATE"))?;
                cryptoki::types::Date::new_from_str_slice(&s[0..4], &s[4..6], &s[6..8])
                    .map_err(|_| bad("not a CK_DATE"))?
            };
            if at == T::StartDate {
                Attribute::StartDate(date)
            } else {
                Attribute::EndDate(date)
            }
        }
        T::AlwaysAuthenticate => Attribute::AlwaysAuthenticate(boolean()?),
        T::Copyable => Attribute::Copyable(boolean()?),
        T::Decrypt => Attribute::Decrypt(boolean()?),
        T::Derive => Attribute::Derive(boolean()?),
        T::Destroyable => Attribute::Destroyable(boolean()?),
        T::Encrypt => Attribute::Encrypt(boolean()?),
        T::Extractable => Attribute::Extractable(boolean()?),
        T::Modifiable => Attribute::Modifiable(boolean()?),
        T::Private => Attribute::Private(boolean()?),
        T::Sensitive => Attribute::Sensitive(boolean()?),
        T::Sign => Attribute::Sign(boolean()?),
        T::SignRecover => Attribute::SignRecover(boolean()?),
        T::Token => Attribute::Token(boolean()?),
        T::Trusted => Attribute::Trusted(boolean()?),
        T::Unwrap => Attribute::Unwrap(boolean()?),
        T::Verify => Attribute::Verify(boolean()?),
        T::VerifyRecover => Attribute::VerifyRecover(boolean()?),
        T::Wrap => Attribute::Wrap(boolean()?),
        T::WrapWithTrusted => Attribute::WrapWithTrusted(boolean()?),
        T::Local => Attribute::Local(boolean()?),
        T::AlwaysSensitive => Attribute::AlwaysSensitive(boolean()?),
        T::NeverExtractable => Attribute::NeverExtractable(boolean()?),
        T::Application => Attribute::Application(value.to_vec()),
        T::Base => Attribute::Base(value.to_vec()),
        T::CheckValue => Attribute::CheckValue(value.to_vec()),
        T::Coefficient => Attribute::Coefficient(value.to_vec()),
        T::EcParams => Attribute::EcParams(value.to_vec()),
        T::EcPoint => Attribute::EcPoint(value.to_vec()),
        T::Exponent1 => Attribute::Exponent1(value.to_vec()),
        T::Exponent2 => Attribute::Exponent2(value.to_vec()),
        T::HashOfIssuerPublicKey => Attribute::HashOfIssuerPublicKey(value.to_vec()),
        T::HashOfSubjectPublicKey => Attribute::HashOfSubjectPublicKey(value.to_vec()),
        T::Id => Attribute::Id(value.to_vec()),
        T::Issuer => Attribute::Issuer(value.to_vec()),
        T::Label => Attribute::Label(value.to_vec()),
        T::Modulus => Attribute::Modulus(value.to_vec()),
        T::ObjectId => Attribute::ObjectId(value.to_vec()),
        T::Prime => Attribute::Prime(value.to_vec()),
        T::Prime1 => Attribute::Prime1(value.to_vec()),
        T::Prime2 => Attribute::Prime2(value.to_vec()),
        T::PrivateExponent => Attribute::PrivateExponent(value.to_vec()),
        T::PublicExponent => Attribute::PublicExponent(value.to_vec()),
        T::PublicKeyInfo => Attribute::PublicKeyInfo(value.to_vec()),
        T::SerialNumber => Attribute::SerialNumber(value.to_vec()),
        T::Subject => Attribute::Subject(value.to_vec()),
        T::Url => Attribute::Url(value.to_vec()),
        T::Value => Attribute::Value(value.to_vec()),
        T::VendorDefined(t) => Attribute::VendorDefined((T::VendorDefined(t), value.to_vec())),
        _ => {
            return Err(CliError::new(format!(
                "klyuch does not pass the attribute {} on import",
                attr_name(ty)
            )));
        }
    })
}

/// A whole template.
pub fn template_to_cryptoki(t: &Template) -> Result<Vec<Attribute>> {
    t.iter().map(|a| to_cryptoki(a.ty, &a.value)).collect()
}

/// The CKA_ID OpenSC gives a key (PKCS#15 "intrinsic ID"): SHA-1 of the RSA modulus, of the
/// EC point's X coordinate, or of the raw public value (EdDSA, GOST). `public` is a public
/// key template (or a private key template that carries the public parts).
pub fn intrinsic_id(public: &Template) -> Option<Vec<u8>> {
    let kt = public.get_ulong(CKA_KEY_TYPE).ok().flatten()?;
    let data: Vec<u8> = match kt {
        CKK_RSA => {
            let m = public.get(CKA_MODULUS)?;
            let first = m.iter().position(|b| *b != 0).unwrap_or(m.len());
            m[first..].to_vec()
        }
        CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY => {
            let raw = public.get(CKA_EC_POINT)?;
            // CKA_EC_POINT is a DER OCTET STRING; some modules store the bare point.
            let point = <&OctetStringRef>::from_der(raw)
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or_else(|_| raw.to_vec());
            if kt == CKK_EC && point.first() == Some(&4) && point.len() % 2 == 1 {
                point[1..1 + (point.len() - 1) / 2].to_vec()
            } else {
                point
            }
        }
        _ => public.get(CKA_VALUE)?.to_vec(),
    };
    Some(Sha1::digest(&data).to_vec())
}

/// A `CKA_ID` given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexId(pub Vec<u8>);

/// Parse `--id` (hex, with or without `0x`, colons allowed).
pub fn parse_hex_id(s: &str) -> std::result::Result<HexId, String> {
    let t: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if t.is_empty() {
        return Err("the ID is empty".into());
    }
    hex::decode(&t)
        .map(HexId)
        .map_err(|_| format!("\"{s}\" is not a hex ID (like 01 or a1b2c3)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_api::Attribute as TA;

    #[test]
    fn converts_common_types() {
        let t: Template = [
            TA::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
            TA::ulong(CKA_KEY_TYPE, CKK_RSA),
            TA::bool(CKA_SIGN, true),
            TA::new(CKA_MODULUS, vec![1, 2, 3]),
            TA::new(CKA_START_DATE, b"20250131".to_vec()),
            TA::ulong(CKA_KEY_TYPE, 0xD432_1003),
        ]
        .into_iter()
        .collect();
        let v = template_to_cryptoki(&t).unwrap();
        assert!(matches!(v[2], Attribute::Sign(true)));
        assert!(matches!(&v[3], Attribute::Modulus(m) if m == &vec![1, 2, 3]));
        // CKA_GOSTR3410_PARAMS has no cryptoki 0.12 variant: passed through by number.
        let a = to_cryptoki(CKA_GOSTR3410_PARAMS, &[6, 1, 0]).unwrap();
        assert_eq!(
            CK_ATTRIBUTE_TYPE::from(a.attribute_type()),
            CKA_GOSTR3410_PARAMS
        );
        assert!(to_cryptoki(CKA_START_DATE, b"2025").is_err());
        assert!(to_cryptoki(CKA_SIGN, &[1, 1]).is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(parse_hex_id("0xA1:b2").unwrap().0, vec![0xa1, 0xb2]);
        assert!(parse_hex_id("xyz").is_err());
        let t: Template = [
            TA::ulong(CKA_KEY_TYPE, CKK_EC),
            TA::new(CKA_EC_POINT, vec![4, 5, 4, 1, 2, 3, 4]),
        ]
        .into_iter()
        .collect();
        // X of 04||01 02||03 04
        assert_eq!(intrinsic_id(&t).unwrap(), Sha1::digest([1u8, 2]).to_vec());
    }
}
