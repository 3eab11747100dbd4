//! Host-side work around the card's raw primitives. Nothing here is hand-written cryptography
//! or ASN.1: hashing, RSA encodings, certificates and public keys come from `klyuch-crypto`, the
//! few remaining DER structures from the `der` crate.
//!
//! * hashing for hash-and-sign mechanisms: the digest mechanisms of `klyuch-crypto`
//!   ([`digest_op`]), Streebog included;
//! * which hash goes with which raw signature: [`klyuch_crypto::hash_then_sign`] (GOST pairs
//!   included);
//! * certificates and SubjectPublicKeyInfo to PKCS#11 attributes: [`klyuch_crypto::x509`];
//!   `CKA_PUBLIC_KEY_INFO` of keys without a certificate: [`klyuch_crypto::Key::public_key_info`];
//! * ECDSA-Sig-Value (PIV's signature format) to PKCS#11's `r || s`: `der`.
//!
//! Everything here works on public data or on data the card already produced; no private key
//! ever exists on the host. The BER-TLV of the card protocols (PIV data objects, the GOST
//! token's key directory) stays in [`crate::tlv`].

use der::asn1::{ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode, Encode};
use token_api::ck::*;
use token_api::ops::DigestOp;
use token_api::{Error, MechParam, Result, Template};

/// What kind of key a card key is, with its size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyKind {
    Rsa { bits: usize },
    EcP256,
    EcP384,
    Gost256,
    Gost512,
}

impl KeyKind {
    pub fn key_type(self) -> CK_KEY_TYPE {
        match self {
            KeyKind::Rsa { .. } => CKK_RSA,
            KeyKind::EcP256 | KeyKind::EcP384 => CKK_EC,
            KeyKind::Gost256 => CKK_GOSTR3410,
            KeyKind::Gost512 => CKK_GOSTR3410_512,
        }
    }
    /// Signature length in bytes.
    pub fn sig_len(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits.div_ceil(8),
            KeyKind::EcP256 | KeyKind::Gost256 => 64,
            KeyKind::EcP384 => 96,
            KeyKind::Gost512 => 128,
        }
    }
    /// Key size as `C_GetMechanismInfo` counts it (bits).
    pub fn bits(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits,
            KeyKind::EcP256 | KeyKind::Gost256 => 256,
            KeyKind::EcP384 => 384,
            KeyKind::Gost512 => 512,
        }
    }
    /// `CKA_EC_PARAMS` (the curve's DER OID) of an EC key.
    pub fn ec_params(self) -> Option<&'static [u8]> {
        match self {
            KeyKind::EcP256 => Some(klyuch_crypto::Curve::P256.oid_der()),
            KeyKind::EcP384 => Some(klyuch_crypto::Curve::P384.oid_der()),
            _ => None,
        }
    }
}

// ------------------------------------------------------------------ hashing

/// A hash-and-sign mechanism split into (digest mechanism, raw signature mechanism), or `None`
/// for a raw mechanism.
pub fn hash_then_sign(mech: CK_MECHANISM_TYPE) -> Option<(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)> {
    klyuch_crypto::hash_then_sign(mech)
}

/// Output length of a digest mechanism this backend hashes with.
pub fn digest_len(mech: CK_MECHANISM_TYPE) -> Option<usize> {
    Some(match mech {
        CKM_SHA_1 => 20,
        CKM_SHA224 => 28,
        CKM_SHA256 | CKM_GOSTR3411_12_256 => 32,
        CKM_SHA384 => 48,
        CKM_SHA512 | CKM_GOSTR3411_12_512 => 64,
        _ => return None,
    })
}

/// A running hash for a digest mechanism (`klyuch-crypto`'s digest mechanisms: SHA and
/// Streebog).
pub fn digest_op(mech: CK_MECHANISM_TYPE) -> Result<Box<dyn DigestOp>> {
    match klyuch_crypto::find(mech) {
        Some(imp) if imp.info().flags & CKF_DIGEST != 0 => imp.digest_init(&MechParam::None),
        _ => Err(Error::mechanism_invalid()),
    }
}

/// One-shot hash with a digest mechanism.
pub fn hash(mech: CK_MECHANISM_TYPE, data: &[u8]) -> Result<Vec<u8>> {
    let mut op = digest_op(mech)?;
    op.update(data)?;
    op.finish()
}

// ------------------------------------------------------------------ host-side key operations

/// `CKF_VERIFY` / `CKF_ENCRYPT` for a mechanism when `klyuch-crypto` can run it with a card's
/// public key (verification and encryption need no card).
pub fn public_op_flags(mech: CK_MECHANISM_TYPE) -> CK_FLAGS {
    klyuch_crypto::find(mech)
        .map(|i| i.info().flags & (CKF_VERIFY | CKF_ENCRYPT))
        .unwrap_or(0)
}

// ------------------------------------------------------------------ ECDSA signature format

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (SEC 1 §C.5, RFC 5480 §2.2.3).
#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// A DER ECDSA-Sig-Value to PKCS#11's `r || s`, each `n` bytes.
pub fn ecdsa_der_to_raw(sig: &[u8], n: usize) -> Option<Vec<u8>> {
    let v = EcdsaSigValue::from_der(sig).ok()?;
    let mut out = Vec::with_capacity(2 * n);
    for i in [v.r, v.s] {
        let b = strip_zeros(i.as_bytes());
        if b.len() > n {
            return None;
        }
        out.resize(out.len() + n - b.len(), 0);
        out.extend_from_slice(b);
    }
    Some(out)
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let i = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[i..]
}

/// Strip leading zero bytes of a big-endian number (a modulus or exponent from a card).
pub fn unsigned(v: &[u8]) -> Vec<u8> {
    strip_zeros(v).to_vec()
}

// ------------------------------------------------------------------ DER helpers

/// The DER of an OBJECT IDENTIFIER from its content octets (as a card's BER-TLV carries it).
pub fn oid_der_from_content(content: &[u8]) -> Option<Vec<u8>> {
    ObjectIdentifier::from_bytes(content).ok()?.to_der().ok()
}

/// The content octets of a DER OBJECT IDENTIFIER (`CKA_GOSTR3410_PARAMS` → card format).
pub fn oid_content(der: &[u8]) -> Result<Vec<u8>> {
    <ObjectIdentifier>::from_der(der)
        .map(|o| o.as_bytes().to_vec())
        .map_err(|_| Error::with(CKR_ATTRIBUTE_VALUE_INVALID, "not a DER OBJECT IDENTIFIER"))
}

/// A DER OCTET STRING around `v` (`CKA_EC_POINT`).
pub fn octet_string(v: &[u8]) -> Result<Vec<u8>> {
    OctetStringRef::new(v)
        .and_then(|o: &OctetStringRef| o.to_der())
        .map_err(|_| Error::general("cannot encode an OCTET STRING"))
}

/// The content of a DER OCTET STRING (a peer's EC point given as `CKA_EC_POINT` does).
pub fn octet_string_content(der: &[u8]) -> Option<Vec<u8>> {
    <&OctetStringRef>::from_der(der)
        .ok()
        .map(|o| o.as_bytes().to_vec())
}

/// OBJECT IDENTIFIER of Streebog-256 / -512 (id-tc26-gost3411-12-256 1.2.643.7.1.1.2.2 and
/// -512 1.2.643.7.1.1.2.3, RFC 9215 §3 / gost-pkcs11.md §2.3): `CKA_GOSTR3411_PARAMS`.
pub fn streebog_oid_der(kind: KeyKind) -> Vec<u8> {
    let oid = if kind == KeyKind::Gost512 {
        ObjectIdentifier::new_unwrap("1.2.643.7.1.1.2.3")
    } else {
        ObjectIdentifier::new_unwrap("1.2.643.7.1.1.2.2")
    };
    oid.to_der().unwrap_or_default()
}

// ------------------------------------------------------------------ certificates and keys

/// Certificate object attributes (without class/label/id/token flags): what
/// [`klyuch_crypto::x509::certificate_attributes`] takes from the DER, plus the defaults of a
/// certificate a card holds (PKCS#11 3.0 §4.6.3).
pub fn certificate_attributes(der: &[u8]) -> Result<Template> {
    let mut t = klyuch_crypto::x509::certificate_attributes(der)?;
    t.set(CKA_VALUE, der.to_vec());
    t.set_ulong(
        CKA_CERTIFICATE_CATEGORY,
        CK_CERTIFICATE_CATEGORY_UNSPECIFIED,
    );
    t.set_bool(CKA_TRUSTED, false);
    t.set(CKA_URL, Vec::new());
    t.set(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new());
    t.set(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new());
    t.set_ulong(
        CKA_JAVA_MIDP_SECURITY_DOMAIN,
        CK_SECURITY_DOMAIN_UNSPECIFIED,
    );
    Ok(t)
}

/// The kind of a public key template (`CKA_KEY_TYPE` and components), checked by building the
/// key with `klyuch-crypto` where it can (RSA, EC).
pub fn key_kind(public: &Template) -> Result<KeyKind> {
    let unsupported = || Error::with(CKR_KEY_TYPE_INCONSISTENT, "key type unsupported on cards");
    match public.get_ulong(CKA_KEY_TYPE)? {
        Some(CKK_RSA) => {
            let mut t = public.clone();
            t.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
            let k = klyuch_crypto::Key::from_attributes(&t)?;
            Ok(KeyKind::Rsa { bits: k.size() })
        }
        Some(CKK_EC) => {
            let params = public
                .get(CKA_EC_PARAMS)
                .ok_or(Error::new(CKR_TEMPLATE_INCOMPLETE))?;
            match klyuch_crypto::curve_from_params(params)? {
                klyuch_crypto::Curve::P256 => Ok(KeyKind::EcP256),
                klyuch_crypto::Curve::P384 => Ok(KeyKind::EcP384),
                _ => Err(Error::new(CKR_CURVE_NOT_SUPPORTED)),
            }
        }
        Some(CKK_GOSTR3410) => Ok(KeyKind::Gost256),
        Some(CKK_GOSTR3410_512) => Ok(KeyKind::Gost512),
        _ => Err(unsupported()),
    }
}

/// Public key object attributes (`CKA_KEY_TYPE`, components, `CKA_MODULUS_BITS`,
/// `CKA_PUBLIC_KEY_INFO`) of a DER SubjectPublicKeyInfo, and the key kind.
pub fn public_key_from_spki(spki: &[u8]) -> Result<(Template, KeyKind)> {
    let mut t = klyuch_crypto::x509::public_key_attributes(spki)?;
    let kind = key_kind(&t)?;
    t.remove(CKA_CLASS);
    if let KeyKind::Rsa { bits } = kind {
        t.set_ulong(CKA_MODULUS_BITS, bits as CK_ULONG);
    }
    t.set(CKA_PUBLIC_KEY_INFO, spki.to_vec());
    Ok((t, kind))
}

/// `CKA_PUBLIC_KEY_INFO` of a public key template without one: the SubjectPublicKeyInfo as
/// `klyuch-crypto` encodes it (RSA, EC and GOST).
pub fn public_key_info(public: &Template) -> Result<Vec<u8>> {
    let mut t = public.clone();
    t.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    klyuch_crypto::Key::from_attributes(&t)?.public_key_info()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_through_the_registry_streebog_included() {
        // FIPS 180-2 Appendix B.1 ("abc").
        assert_eq!(
            hex::encode_upper(hash(CKM_SHA256, b"abc").unwrap()),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
        // GOST R 34.11-2012 Appendix A example 1 (M1, 256-bit), as RFC 6986 §10.1 prints the
        // hash output bytes.
        let m1 = b"012345678901234567890123456789012345678901234567890123456789012";
        assert_eq!(
            hex::encode_upper(hash(CKM_GOSTR3411_12_256, m1).unwrap()),
            "9D151EEFD8590B89DAA6BA6CB74AF9275DD051026BB149A452FD84E5E57B5500"
        );
        let mut op = digest_op(CKM_GOSTR3411_12_512).unwrap();
        assert_eq!(op.digest_len(), 64);
        op.update(&m1[..10]).unwrap();
        op.update(&m1[10..]).unwrap();
        assert_eq!(
            op.finish().unwrap(),
            hash(CKM_GOSTR3411_12_512, m1).unwrap()
        );
        assert!(op.finish().is_err());
        assert_eq!(
            digest_op(CKM_MD5).err().unwrap().rv(),
            CKR_MECHANISM_INVALID
        );
        for m in [CKM_SHA_1, CKM_SHA384, CKM_GOSTR3411_12_256] {
            assert_eq!(hash(m, b"").unwrap().len(), digest_len(m).unwrap());
        }
    }

    #[test]
    fn mechanism_splits() {
        assert_eq!(
            hash_then_sign(CKM_SHA256_RSA_PKCS),
            Some((CKM_SHA256, CKM_RSA_PKCS))
        );
        assert_eq!(
            hash_then_sign(CKM_GOSTR3410_WITH_GOSTR3411_12_256),
            Some((CKM_GOSTR3411_12_256, CKM_GOSTR3410))
        );
        assert_eq!(hash_then_sign(CKM_ECDSA), None);
    }

    #[test]
    fn ecdsa_conversion() {
        let der = [0x30, 0x08, 0x02, 0x02, 0x00, 0x81, 0x02, 0x02, 0x01, 0x02];
        assert_eq!(
            ecdsa_der_to_raw(&der, 3).unwrap(),
            vec![0, 0, 0x81, 0, 1, 2]
        );
        assert!(ecdsa_der_to_raw(&der[..5], 3).is_none());
        assert!(ecdsa_der_to_raw(&der, 1).is_none());
    }

    #[test]
    fn der_helpers() {
        let p256 = klyuch_crypto::Curve::P256.oid_der();
        let content = oid_content(p256).unwrap();
        assert_eq!(oid_der_from_content(&content).unwrap(), p256);
        assert!(oid_content(&[0x04, 0x01, 0x00]).is_err());
        let os = octet_string(&[4, 1, 2]).unwrap();
        assert_eq!(os, vec![0x04, 0x03, 4, 1, 2]);
        assert_eq!(octet_string_content(&os).unwrap(), vec![4, 1, 2]);
        assert_eq!(
            streebog_oid_der(KeyKind::Gost256),
            vec![0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02]
        );
    }
}
