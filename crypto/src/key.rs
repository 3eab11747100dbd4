//! Prepared keys: built once from an object's attributes, then shared (`Arc<Key>`) by every
//! operation that uses them, so parsing and validation are not repeated per signature.

use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, ParsedPublicKey};
use token_api::ck::*;
use token_api::{Error, Result, Template};
use zeroize::Zeroizing;

use crate::ec::{self, Curve};
use crate::ffi::{self, RsaParts};
use crate::gost;
use crate::util::{err, key_type_inconsistent, required, value_invalid};

/// A key ready for use: public, private or secret, of any supported key type.
pub struct Key {
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
    size: usize,
    pub(crate) kind: KeyKind,
}

/// The prepared key material.
pub(crate) enum KeyKind {
    /// An RSA key (public, or private with its public half).
    Rsa(ffi::Rsa),
    /// An EC key on a NIST prime curve (public, or private with its public point).
    Ec { curve: Curve, key: ffi::EcKey },
    /// An Ed25519 private key.
    Ed25519Private(Box<Ed25519KeyPair>),
    /// An Ed25519 public key, parsed once.
    Ed25519Public {
        key: Box<ParsedPublicKey>,
        raw: [u8; 32],
    },
    /// A secret key's value (AES, generic secret, HMAC key types).
    Secret(Zeroizing<Vec<u8>>),
    /// A GOST R 34.10-2012 key (see `gost.rs`).
    Gost(gost::GostKey),
}

impl fmt::Debug for Key {
    /// Class, type and size only: never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key(class={:#x}, type={:#x}, size={})",
            self.class, self.key_type, self.size
        )
    }
}

/// The secret key types whose value is used as is (`CKA_VALUE`).
const SECRET_TYPES: &[CK_KEY_TYPE] = &[
    CKK_GENERIC_SECRET,
    CKK_AES,
    CKK_SHA_1_HMAC,
    CKK_SHA224_HMAC,
    CKK_SHA256_HMAC,
    CKK_SHA384_HMAC,
    CKK_SHA512_HMAC,
    CKK_GOSTR3411,
    CKK_GOST28147,
    CKK_KUZNYECHIK,
    CKK_MAGMA,
];

/// The GOST block cipher key types: 256-bit keys (GOST 28147-89, GOST R 34.12-2015).
const GOST_CIPHER_TYPES: &[CK_KEY_TYPE] = &[CKK_GOST28147, CKK_KUZNYECHIK, CKK_MAGMA];

impl Key {
    /// Build a key from an object's attributes. Reads `CKA_CLASS` and `CKA_KEY_TYPE`, then the
    /// components (RSA: `CKA_MODULUS`, `CKA_PUBLIC_EXPONENT`, and for private keys
    /// `CKA_PRIVATE_EXPONENT`, `CKA_PRIME_1/2`, `CKA_EXPONENT_1/2`, `CKA_COEFFICIENT`;
    /// EC/EdDSA: `CKA_EC_PARAMS`, `CKA_EC_POINT` or `CKA_VALUE`; GOST: `CKA_GOSTR3410_PARAMS`,
    /// `CKA_VALUE`; secret keys: `CKA_VALUE`). Invalid or inconsistent components give
    /// `CKR_ATTRIBUTE_VALUE_INVALID` / `CKR_TEMPLATE_INCONSISTENT`, unknown key types
    /// `CKR_KEY_TYPE_INCONSISTENT`, points off the curve `CKR_PUBLIC_KEY_INVALID`.
    pub fn from_attributes(attrs: &Template) -> Result<Key> {
        let class = attrs
            .get_ulong(CKA_CLASS)?
            .ok_or_else(|| err(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS is missing"))?;
        let key_type = attrs
            .get_ulong(CKA_KEY_TYPE)?
            .ok_or_else(|| err(CKR_TEMPLATE_INCOMPLETE, "CKA_KEY_TYPE is missing"))?;
        if !matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
            return Err(Error::with(
                CKR_KEY_TYPE_INCONSISTENT,
                "the object is not a key",
            ));
        }
        if gost::is_gost_key_type(key_type) && class != CKO_SECRET_KEY {
            let (k, size) = gost::key_from_attributes(class, key_type, attrs)?;
            return Ok(Key {
                class,
                key_type,
                size,
                kind: KeyKind::Gost(k),
            });
        }
        let (size, kind) = match (class, key_type) {
            (CKO_PUBLIC_KEY, CKK_RSA) => {
                let n = required(attrs, CKA_MODULUS)?;
                let e = required(attrs, CKA_PUBLIC_EXPONENT)?;
                let rsa = ffi::Rsa::new_public(n, e)
                    .map_err(|_| value_invalid("invalid RSA modulus or public exponent"))?;
                (rsa.bits(), KeyKind::Rsa(rsa))
            }
            (CKO_PRIVATE_KEY, CKK_RSA) => {
                let get = |t| Zeroizing::new(attrs.get(t).unwrap_or_default().to_vec());
                let parts = RsaParts {
                    n: required(attrs, CKA_MODULUS)?.to_vec(),
                    e: required(attrs, CKA_PUBLIC_EXPONENT)?.to_vec(),
                    d: Zeroizing::new(required(attrs, CKA_PRIVATE_EXPONENT)?.to_vec()),
                    p: get(CKA_PRIME_1),
                    q: get(CKA_PRIME_2),
                    dp: get(CKA_EXPONENT_1),
                    dq: get(CKA_EXPONENT_2),
                    qinv: get(CKA_COEFFICIENT),
                };
                let rsa = ffi::Rsa::new_private(&parts).map_err(|_| {
                    Error::with(
                        CKR_ATTRIBUTE_VALUE_INVALID,
                        "invalid or inconsistent RSA private key components",
                    )
                })?;
                (rsa.bits(), KeyKind::Rsa(rsa))
            }
            (CKO_PUBLIC_KEY, CKK_EC) => {
                let curve = ec::curve_from_params(required(attrs, CKA_EC_PARAMS)?)?;
                let Some(nid) = curve.nid() else {
                    return Err(key_type_inconsistent(
                        "an Edwards curve needs CKK_EC_EDWARDS",
                    ));
                };
                let point = ec::point_from_attr(curve, required(attrs, CKA_EC_POINT)?)?;
                let key = ffi::EcKey::from_public(nid, point).map_err(|_| {
                    Error::with(CKR_PUBLIC_KEY_INVALID, "the EC point is not on the curve")
                })?;
                (curve.bits(), KeyKind::Ec { curve, key })
            }
            (CKO_PRIVATE_KEY, CKK_EC) => {
                let curve = ec::curve_from_params(required(attrs, CKA_EC_PARAMS)?)?;
                let Some(nid) = curve.nid() else {
                    return Err(key_type_inconsistent(
                        "an Edwards curve needs CKK_EC_EDWARDS",
                    ));
                };
                let d = crate::util::strip_zeros(required(attrs, CKA_VALUE)?);
                let key = ffi::EcKey::from_private(nid, d)
                    .map_err(|_| value_invalid("the EC private value is out of range"))?;
                (curve.bits(), KeyKind::Ec { curve, key })
            }
            (CKO_PUBLIC_KEY, CKK_EC_EDWARDS) => {
                let curve = ec::curve_from_params(required(attrs, CKA_EC_PARAMS)?)?;
                if curve != Curve::Ed25519 {
                    return Err(Error::with(
                        CKR_CURVE_NOT_SUPPORTED,
                        "only edwards25519 is supported",
                    ));
                }
                let point = ec::point_from_attr(curve, required(attrs, CKA_EC_POINT)?)?;
                let raw: [u8; 32] = point
                    .try_into()
                    .map_err(|_| value_invalid("an Ed25519 public key is 32 bytes"))?;
                let key = ParsedPublicKey::new(&ED25519, raw).map_err(|_| {
                    Error::with(CKR_PUBLIC_KEY_INVALID, "invalid Ed25519 public key")
                })?;
                (
                    curve.bits(),
                    KeyKind::Ed25519Public {
                        key: Box::new(key),
                        raw,
                    },
                )
            }
            (CKO_PRIVATE_KEY, CKK_EC_EDWARDS) => {
                let curve = ec::curve_from_params(required(attrs, CKA_EC_PARAMS)?)?;
                if curve != Curve::Ed25519 {
                    return Err(Error::with(
                        CKR_CURVE_NOT_SUPPORTED,
                        "only edwards25519 is supported",
                    ));
                }
                let seed = required(attrs, CKA_VALUE)?;
                if seed.len() != 32 {
                    return Err(value_invalid("an Ed25519 private key is 32 bytes"));
                }
                let kp = Ed25519KeyPair::from_seed_unchecked(seed)
                    .map_err(|_| value_invalid("invalid Ed25519 private key"))?;
                (curve.bits(), KeyKind::Ed25519Private(Box::new(kp)))
            }
            (CKO_SECRET_KEY, kt) if SECRET_TYPES.contains(&kt) => {
                let v = required(attrs, CKA_VALUE)?;
                if v.is_empty() {
                    return Err(value_invalid("an empty secret key"));
                }
                if kt == CKK_AES && ![16, 24, 32].contains(&v.len()) {
                    return Err(value_invalid("an AES key is 16, 24 or 32 bytes"));
                }
                if GOST_CIPHER_TYPES.contains(&kt) && v.len() != 32 {
                    return Err(value_invalid(
                        "GOST 28147-89 / Kuznyechik / Magma keys are 32 bytes",
                    ));
                }
                (v.len(), KeyKind::Secret(Zeroizing::new(v.to_vec())))
            }
            _ => {
                return Err(key_type_inconsistent(
                    "unsupported key type for this object class",
                ));
            }
        };
        Ok(Key {
            class,
            key_type,
            size,
            kind,
        })
    }

    pub fn class(&self) -> CK_OBJECT_CLASS {
        self.class
    }

    pub fn key_type(&self) -> CK_KEY_TYPE {
        self.key_type
    }

    /// Key size in the unit `C_GetMechanismInfo` uses for this key type (bits for RSA/EC/GOST,
    /// bytes for AES and generic secrets).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The public key's attributes as a public key object holds them (`CKA_KEY_TYPE` and
    /// `CKA_MODULUS` + `CKA_PUBLIC_EXPONENT`, or `CKA_EC_PARAMS` + `CKA_EC_POINT` as a DER
    /// OCTET STRING). `CKR_KEY_TYPE_INCONSISTENT` for secret keys.
    pub fn public_attributes(&self) -> Result<Template> {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
        t.set_ulong(CKA_KEY_TYPE, self.key_type);
        match &self.kind {
            KeyKind::Rsa(r) => {
                let p = r.parts();
                t.set(CKA_MODULUS, p.n);
                t.set(CKA_PUBLIC_EXPONENT, p.e);
            }
            KeyKind::Ec { curve, key } => {
                t.set(CKA_EC_PARAMS, curve.oid_der().to_vec());
                t.set(
                    CKA_EC_POINT,
                    crate::util::octet_string(&key.public_point())?,
                );
            }
            KeyKind::Ed25519Private(kp) => {
                t.set(CKA_EC_PARAMS, Curve::Ed25519.oid_der().to_vec());
                t.set(
                    CKA_EC_POINT,
                    crate::util::octet_string(kp.public_key().as_ref())?,
                );
            }
            KeyKind::Ed25519Public { raw, .. } => {
                t.set(CKA_EC_PARAMS, Curve::Ed25519.oid_der().to_vec());
                t.set(CKA_EC_POINT, crate::util::octet_string(raw)?);
            }
            KeyKind::Gost(g) => return gost::public_attributes(g),
            KeyKind::Secret(_) => {
                return Err(key_type_inconsistent("a secret key has no public half"));
            }
        }
        Ok(t)
    }

    /// The public half as a DER `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7), the value of
    /// `CKA_PUBLIC_KEY_INFO` for public and private keys. `CKR_KEY_TYPE_INCONSISTENT` for secret
    /// keys.
    pub fn public_key_info(&self) -> Result<Vec<u8>> {
        use der::asn1::{BitString, ObjectIdentifier, UintRef};
        use der::{Any, Decode, Encode};
        use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

        /// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
        #[derive(der::Sequence)]
        struct RsaPublicKey<'a> {
            modulus: UintRef<'a>,
            public_exponent: UintRef<'a>,
        }
        /// rsaEncryption (RFC 8017 A.1), id-ecPublicKey (RFC 5480 §2.1.1), id-Ed25519 (RFC 8410 §3).
        const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

        let bad = |_| Error::general("cannot encode the public key");
        let (oid, parameters, key) = match &self.kind {
            KeyKind::Rsa(r) => {
                let p = r.parts();
                let k = RsaPublicKey {
                    modulus: UintRef::new(&p.n).map_err(bad)?,
                    public_exponent: UintRef::new(&p.e).map_err(bad)?,
                };
                (RSA, Some(Any::null()), k.to_der().map_err(bad)?)
            }
            KeyKind::Ec { curve, key } => {
                let params = Any::from_der(curve.oid_der()).map_err(bad)?;
                (EC, Some(params), key.public_point())
            }
            KeyKind::Ed25519Private(kp) => (ED25519, None, kp.public_key().as_ref().to_vec()),
            KeyKind::Ed25519Public { raw, .. } => (ED25519, None, raw.to_vec()),
            KeyKind::Gost(g) => return gost::public_key_info(g),
            KeyKind::Secret(_) => {
                return Err(key_type_inconsistent("a secret key has no public half"));
            }
        };
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned { oid, parameters },
            subject_public_key: BitString::from_bytes(&key).map_err(bad)?,
        }
        .to_der()
        .map_err(bad)
    }

    pub(crate) fn rsa(&self) -> Option<&ffi::Rsa> {
        match &self.kind {
            KeyKind::Rsa(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn secret(&self) -> Option<&[u8]> {
        match &self.kind {
            KeyKind::Secret(v) => Some(v),
            _ => None,
        }
    }
}
