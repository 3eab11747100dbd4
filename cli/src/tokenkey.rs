//! A key on the token, for commands that sign with it (`klyuch csr`, `klyuch sign`): finding
//! the private key, its public key (SubjectPublicKeyInfo) and its certificate by `CKA_ID`, and
//! the signature encodings that differ between PKCS#11 and X.509/CMS.

use crate::error::{CliError, Result};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use der::Encode;
use der::asn1::UintRef;

/// CKM_GOSTR3410_WITH_GOSTR3411_12_256 / _512 (TC26, gost-pkcs11.md §1.2).
pub const CKM_GOSTR3410_WITH_GOSTR3411_12_256: CK_MECHANISM_TYPE = 0xD432_1008;
pub const CKM_GOSTR3410_WITH_GOSTR3411_12_512: CK_MECHANISM_TYPE = 0xD432_1009;

/// A vendor-defined mechanism without parameter.
pub fn vendor(ty: CK_MECHANISM_TYPE) -> Result<Mechanism<'static>> {
    let t = MechanismType::new_vendor_defined(ty)
        .map_err(|_| CliError::new("bad vendor mechanism number"))?;
    Ok(Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        t, None,
    )))
}

/// The first object of `class` with `CKA_ID` = `id`.
pub fn find_one(session: &Session, class: ObjectClass, id: &[u8]) -> Result<Option<ObjectHandle>> {
    Ok(session
        .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?
        .into_iter()
        .next())
}

/// The key type of a key object.
pub fn key_type(session: &Session, key: ObjectHandle) -> Result<CK_KEY_TYPE> {
    session
        .get_attributes(key, &[AttributeType::KeyType])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::KeyType(k) => Some(CK_KEY_TYPE::from(k)),
            _ => None,
        })
        .ok_or_else(|| CliError::new("the private key has no CKA_KEY_TYPE"))
}

/// One attribute's bytes (`None` when the token does not have it).
pub fn bytes_attr(session: &Session, h: ObjectHandle, ty: AttributeType) -> Option<Vec<u8>> {
    let attrs = session.get_attributes(h, &[ty]).ok()?;
    attrs.into_iter().find_map(|a| match a {
        Attribute::Value(v)
        | Attribute::Id(v)
        | Attribute::PublicKeyInfo(v)
        | Attribute::Modulus(v)
        | Attribute::PublicExponent(v)
        | Attribute::EcParams(v)
        | Attribute::EcPoint(v) => Some(v),
        Attribute::Label(v) => Some(v),
        _ => None,
    })
}

/// The key's SubjectPublicKeyInfo: `CKA_PUBLIC_KEY_INFO` of the private or public key, else
/// built by `klyuch-crypto` from the public key object's components.
pub fn key_spki(
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
pub struct EcdsaSigValue<'a> {
    pub r: UintRef<'a>,
    pub s: UintRef<'a>,
}

/// PKCS#11's ECDSA signature `r || s` as the DER `ECDSA-Sig-Value` that X.509 and CMS carry.
pub fn ecdsa_der(rs: &[u8]) -> Result<Vec<u8>> {
    let (r, s) = rs.split_at(rs.len() / 2);
    let bad = |_| CliError::new("the token's ECDSA signature cannot be encoded");
    EcdsaSigValue {
        r: UintRef::new(r).map_err(bad)?,
        s: UintRef::new(s).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// A DER `ECDSA-Sig-Value` as PKCS#11's `r || s`, each half `half` bytes long.
pub fn ecdsa_raw(der_sig: &[u8], half: usize) -> Option<Vec<u8>> {
    use der::Decode;
    let v = EcdsaSigValue::from_der(der_sig).ok()?;
    let (r, s) = (v.r.as_bytes(), v.s.as_bytes());
    if r.len() > half || s.len() > half {
        return None;
    }
    let mut out = vec![0u8; 2 * half];
    out[half - r.len()..half].copy_from_slice(r);
    out[2 * half - s.len()..].copy_from_slice(s);
    Some(out)
}

/// Does the key want the PIN again for every signature (`CKA_ALWAYS_AUTHENTICATE`: the
/// non-repudiation keys of qualified-signature tokens, PIV's 9C; PKCS#11 3.0 §4.9)?
pub fn always_authenticate(session: &Session, key: ObjectHandle) -> bool {
    matches!(
        session
            .get_attributes(key, &[AttributeType::AlwaysAuthenticate])
            .ok()
            .and_then(|v| v.into_iter().next()),
        Some(Attribute::AlwaysAuthenticate(true))
    )
}

/// One signature by the token. With `always_auth`, the context-specific login comes between
/// C_SignInit and the data (multi-part, as PKCS#11 3.0 §5.2 requires the login right after the
/// init); otherwise a single C_Sign.
pub fn sign(
    session: &cryptoki::session::Session,
    key: cryptoki::object::ObjectHandle,
    always_auth: bool,
    pin: Option<&secrecy::SecretString>,
    mechanism: &cryptoki::mechanism::Mechanism<'_>,
    data: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    if !always_auth {
        return session.sign(mechanism, key, data);
    }
    session.sign_init(mechanism, key)?;
    session.login(cryptoki::session::UserType::ContextSpecific, pin)?;
    session.sign_update(data)?;
    session.sign_final()
}
