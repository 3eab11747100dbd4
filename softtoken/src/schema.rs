//! The object model: which attributes each class (and key type) has, their defaults, and the
//! PKCS#11 3.0 rules for creating, generating, unwrapping, deriving, copying, changing and
//! reading them (base spec §4, "Common footnotes for object attribute tables").
//!
//! The footnote numbers of the spec are kept as flag names (`C1` = footnote 1, ...), so each
//! table row can be checked against the spec by eye.

use crate::seal;
use std::mem::size_of;
use token_api::ck::*;
use token_api::{AttrRead, Attribute, Error, Result, Template};

/// Footnote 1: must be specified when the object is created with `C_CreateObject`.
pub const C1: u32 = 1 << 1;
/// Footnote 2: must not be specified when the object is created with `C_CreateObject`.
pub const C2: u32 = 1 << 2;
/// Footnote 3: must be specified when the object is generated.
pub const C3: u32 = 1 << 3;
/// Footnote 4: must not be specified when the object is generated (or derived).
pub const C4: u32 = 1 << 4;
/// Footnote 5: must be specified when the object is unwrapped.
pub const C5: u32 = 1 << 5;
/// Footnote 6: must not be specified when the object is unwrapped.
pub const C6: u32 = 1 << 6;
/// Footnote 7: never revealed when the object is sensitive or unextractable.
pub const C7: u32 = 1 << 7;
/// Footnote 8: may be changed by `C_SetAttributeValue` and `C_CopyObject`.
pub const C8: u32 = 1 << 8;
/// Footnote 10: only the SO may set it to true.
pub const C10: u32 = 1 << 10;
/// Footnote 11: once true, read-only.
pub const C11: u32 = 1 << 11;
/// Footnote 12: once false, read-only.
pub const C12: u32 = 1 << 12;
/// May be changed in `C_CopyObject` only (`CKA_TOKEN`, `CKA_PRIVATE`; `CKA_MODIFIABLE`,
/// `CKA_COPYABLE`, `CKA_DESTROYABLE` only to false).
pub const C17: u32 = 1 << 17;
/// Set by the token only (footnotes 2, 4 and 6 together).
const TOKEN: u32 = C2 | C4 | C6;

/// The value syntax of an attribute.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Bool,
    Ulong,
    Bytes,
    /// `CK_DATE`: empty or eight ASCII digits.
    Date,
    /// An array of `CK_MECHANISM_TYPE`.
    MechList,
}

/// A default value, filled in when the template does not give one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dflt {
    None,
    Bool(bool),
    Ulong(CK_ULONG),
    Empty,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub ty: CK_ATTRIBUTE_TYPE,
    pub kind: Kind,
    pub flags: u32,
    pub default: Dflt,
}

const fn s(ty: CK_ATTRIBUTE_TYPE, kind: Kind, flags: u32, default: Dflt) -> Spec {
    Spec {
        ty,
        kind,
        flags,
        default,
    }
}

use Dflt as D;
use Kind::*;

const COMMON: &[Spec] = &[s(CKA_CLASS, Ulong, C1 | C5, D::None)];

/// Storage objects (§4.4). `CKA_PRIVATE`'s default depends on the class (see [`default_private`]).
const STORAGE: &[Spec] = &[
    s(CKA_TOKEN, Bool, C17, D::Bool(false)),
    s(CKA_PRIVATE, Bool, C17, D::None),
    s(CKA_MODIFIABLE, Bool, C17, D::Bool(true)),
    s(CKA_COPYABLE, Bool, C17, D::Bool(true)),
    s(CKA_DESTROYABLE, Bool, C17, D::Bool(true)),
    s(CKA_LABEL, Bytes, C8, D::Empty),
    s(CKA_UNIQUE_ID, Bytes, TOKEN, D::None),
];

/// Data objects (§4.5). Klyuch lets `CKA_VALUE` change too (on modifiable objects).
const DATA: &[Spec] = &[
    s(CKA_APPLICATION, Bytes, C8, D::Empty),
    s(CKA_OBJECT_ID, Bytes, C8, D::Empty),
    s(CKA_VALUE, Bytes, C8, D::Empty),
];

/// Certificates (§4.6) and X.509 public key certificates (§4.6.3).
const CERTIFICATE: &[Spec] = &[
    s(CKA_CERTIFICATE_TYPE, Ulong, C1, D::None),
    s(CKA_TRUSTED, Bool, C8 | C10, D::Bool(false)),
    s(CKA_CERTIFICATE_CATEGORY, Ulong, C8, D::Ulong(0)),
    s(CKA_CHECK_VALUE, Bytes, 0, D::None),
    s(CKA_START_DATE, Date, C8, D::Empty),
    s(CKA_END_DATE, Date, C8, D::Empty),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0, D::Empty),
    s(CKA_SUBJECT, Bytes, C1 | C8, D::None),
    s(CKA_ID, Bytes, C8, D::Empty),
    s(CKA_ISSUER, Bytes, 0, D::Empty),
    s(CKA_SERIAL_NUMBER, Bytes, 0, D::Empty),
    s(CKA_VALUE, Bytes, C1, D::None),
    s(CKA_URL, Bytes, C8, D::Empty),
    s(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Bytes, 0, D::Empty),
    s(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Bytes, 0, D::Empty),
    s(CKA_JAVA_MIDP_SECURITY_DOMAIN, Ulong, 0, D::Ulong(0)),
    s(CKA_NAME_HASH_ALGORITHM, Ulong, 0, D::Ulong(CKM_SHA_1)),
];

/// Keys (§4.7).
const KEY: &[Spec] = &[
    s(CKA_KEY_TYPE, Ulong, C1 | C5, D::None),
    s(CKA_ID, Bytes, C8, D::Empty),
    s(CKA_START_DATE, Date, C8, D::Empty),
    s(CKA_END_DATE, Date, C8, D::Empty),
    s(CKA_DERIVE, Bool, C8, D::Bool(false)),
    s(CKA_LOCAL, Bool, TOKEN, D::None),
    s(CKA_KEY_GEN_MECHANISM, Ulong, TOKEN, D::None),
    s(CKA_ALLOWED_MECHANISMS, MechList, C8, D::Empty),
];

/// Public keys (§4.8).
const PUBLIC_KEY: &[Spec] = &[
    s(CKA_SUBJECT, Bytes, C8, D::Empty),
    s(CKA_ENCRYPT, Bool, C8, D::Bool(true)),
    s(CKA_VERIFY, Bool, C8, D::Bool(true)),
    s(CKA_VERIFY_RECOVER, Bool, C8, D::Bool(true)),
    s(CKA_WRAP, Bool, C8, D::Bool(true)),
    s(CKA_TRUSTED, Bool, C8 | C10, D::Bool(false)),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0, D::Empty),
];

/// Private keys (§4.9). Klyuch defaults to sensitive and unextractable.
const PRIVATE_KEY: &[Spec] = &[
    s(CKA_SUBJECT, Bytes, C8, D::Empty),
    s(CKA_SENSITIVE, Bool, C8 | C11, D::Bool(true)),
    s(CKA_DECRYPT, Bool, C8, D::Bool(true)),
    s(CKA_SIGN, Bool, C8, D::Bool(true)),
    s(CKA_SIGN_RECOVER, Bool, C8, D::Bool(true)),
    s(CKA_UNWRAP, Bool, C8, D::Bool(true)),
    s(CKA_EXTRACTABLE, Bool, C8 | C12, D::Bool(false)),
    s(CKA_ALWAYS_SENSITIVE, Bool, TOKEN, D::None),
    s(CKA_NEVER_EXTRACTABLE, Bool, TOKEN, D::None),
    s(CKA_WRAP_WITH_TRUSTED, Bool, C8 | C11, D::Bool(false)),
    s(CKA_ALWAYS_AUTHENTICATE, Bool, C8, D::Bool(false)),
    s(CKA_PUBLIC_KEY_INFO, Bytes, 0, D::Empty),
];

/// Secret keys (§4.10). Klyuch defaults to sensitive and unextractable.
const SECRET_KEY: &[Spec] = &[
    s(CKA_SENSITIVE, Bool, C8 | C11, D::Bool(true)),
    s(CKA_ENCRYPT, Bool, C8, D::Bool(true)),
    s(CKA_DECRYPT, Bool, C8, D::Bool(true)),
    s(CKA_SIGN, Bool, C8, D::Bool(true)),
    s(CKA_VERIFY, Bool, C8, D::Bool(true)),
    s(CKA_WRAP, Bool, C8, D::Bool(true)),
    s(CKA_UNWRAP, Bool, C8, D::Bool(true)),
    s(CKA_EXTRACTABLE, Bool, C8 | C12, D::Bool(false)),
    s(CKA_ALWAYS_SENSITIVE, Bool, TOKEN, D::None),
    s(CKA_NEVER_EXTRACTABLE, Bool, TOKEN, D::None),
    s(CKA_CHECK_VALUE, Bytes, 0, D::None),
    s(CKA_WRAP_WITH_TRUSTED, Bool, C8 | C11, D::Bool(false)),
    s(CKA_TRUSTED, Bool, C8 | C10, D::Bool(false)),
];

// Key-type components (mechanisms spec).
const RSA_PUBLIC: &[Spec] = &[
    s(CKA_MODULUS, Bytes, C1 | C4, D::None),
    s(CKA_MODULUS_BITS, Ulong, C2 | C3, D::None),
    s(CKA_PUBLIC_EXPONENT, Bytes, C1, D::None),
];
const RSA_PRIVATE: &[Spec] = &[
    s(CKA_MODULUS, Bytes, C1 | C4 | C6, D::None),
    s(CKA_PUBLIC_EXPONENT, Bytes, C4 | C6, D::None),
    s(CKA_PRIVATE_EXPONENT, Bytes, C1 | C4 | C6 | C7, D::None),
    s(CKA_PRIME_1, Bytes, C4 | C6 | C7, D::None),
    s(CKA_PRIME_2, Bytes, C4 | C6 | C7, D::None),
    s(CKA_EXPONENT_1, Bytes, C4 | C6 | C7, D::None),
    s(CKA_EXPONENT_2, Bytes, C4 | C6 | C7, D::None),
    s(CKA_COEFFICIENT, Bytes, C4 | C6 | C7, D::None),
];
const EC_PUBLIC: &[Spec] = &[
    s(CKA_EC_PARAMS, Bytes, C1 | C3, D::None),
    s(CKA_EC_POINT, Bytes, C1 | C4, D::None),
];
const EC_PRIVATE: &[Spec] = &[
    s(CKA_EC_PARAMS, Bytes, C1 | C4 | C6, D::None),
    s(CKA_VALUE, Bytes, C1 | C4 | C6 | C7, D::None),
];
const GOST_PUBLIC: &[Spec] = &[
    s(CKA_VALUE, Bytes, C1 | C4, D::None),
    s(CKA_GOSTR3410_PARAMS, Bytes, C1 | C3, D::None),
    s(CKA_GOSTR3411_PARAMS, Bytes, C8, D::None),
    s(CKA_GOST28147_PARAMS, Bytes, C8, D::None),
];
const GOST_PRIVATE: &[Spec] = &[
    s(CKA_VALUE, Bytes, C1 | C4 | C6 | C7, D::None),
    s(CKA_GOSTR3410_PARAMS, Bytes, C1 | C4 | C6, D::None),
    s(CKA_GOSTR3411_PARAMS, Bytes, C4 | C6 | C8, D::None),
    s(CKA_GOST28147_PARAMS, Bytes, C4 | C6 | C8, D::None),
];
/// DER of id-tc26-gost3411-12-256 (1.2.643.7.1.1.2.2) and -512 (1.2.643.7.1.1.2.3), RFC 9215 §3.
const STREEBOG_256_OID: &[u8] = &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02];
const STREEBOG_512_OID: &[u8] = &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x03];
/// Secret keys whose length is chosen at generation (`CKA_VALUE_LEN` required then).
const SECRET_VARIABLE: &[Spec] = &[
    s(CKA_VALUE, Bytes, C1 | C4 | C6 | C7, D::None),
    s(CKA_VALUE_LEN, Ulong, C2 | C3 | C6, D::None),
];
/// Secret keys of a fixed length.
const SECRET_FIXED: &[Spec] = &[
    s(CKA_VALUE, Bytes, C1 | C4 | C6 | C7, D::None),
    s(CKA_VALUE_LEN, Ulong, C2 | C6, D::None),
    s(CKA_GOST28147_PARAMS, Bytes, C8, D::None),
];

/// The attribute groups of a class and key type, or `CKR_ATTRIBUTE_VALUE_INVALID` for a class
/// or key type this token does not keep.
pub fn groups(
    class: CK_OBJECT_CLASS,
    key_type: Option<CK_KEY_TYPE>,
) -> Result<Vec<&'static [Spec]>> {
    let bad_kt = || {
        Error::with(
            CKR_ATTRIBUTE_VALUE_INVALID,
            format!(
                "key type {:#x} is not supported by the soft token",
                key_type.unwrap_or(0)
            ),
        )
    };
    let kt =
        || key_type.ok_or_else(|| Error::with(CKR_TEMPLATE_INCOMPLETE, "CKA_KEY_TYPE missing"));
    Ok(match class {
        CKO_DATA => vec![COMMON, STORAGE, DATA],
        CKO_CERTIFICATE => vec![COMMON, STORAGE, CERTIFICATE],
        CKO_PUBLIC_KEY => vec![
            COMMON,
            STORAGE,
            KEY,
            PUBLIC_KEY,
            match kt()? {
                CKK_RSA => RSA_PUBLIC,
                CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY => EC_PUBLIC,
                CKK_GOSTR3410 | CKK_GOSTR3410_512 => GOST_PUBLIC,
                _ => return Err(bad_kt()),
            },
        ],
        CKO_PRIVATE_KEY => vec![
            COMMON,
            STORAGE,
            KEY,
            PRIVATE_KEY,
            match kt()? {
                CKK_RSA => RSA_PRIVATE,
                CKK_EC | CKK_EC_EDWARDS | CKK_EC_MONTGOMERY => EC_PRIVATE,
                CKK_GOSTR3410 | CKK_GOSTR3410_512 => GOST_PRIVATE,
                _ => return Err(bad_kt()),
            },
        ],
        CKO_SECRET_KEY => vec![
            COMMON,
            STORAGE,
            KEY,
            SECRET_KEY,
            match kt()? {
                CKK_GENERIC_SECRET | CKK_AES | CKK_SHA_1_HMAC | CKK_SHA224_HMAC
                | CKK_SHA256_HMAC | CKK_SHA384_HMAC | CKK_SHA512_HMAC => SECRET_VARIABLE,
                CKK_GOST28147 | CKK_KUZNYECHIK | CKK_MAGMA => SECRET_FIXED,
                _ => return Err(bad_kt()),
            },
        ],
        _ => {
            return Err(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!("object class {class:#x} is not supported by the soft token"),
            ));
        }
    })
}

fn find(groups: &[&'static [Spec]], ty: CK_ATTRIBUTE_TYPE) -> Option<Spec> {
    // Later groups refine earlier ones (e.g. CKA_VALUE of a key type).
    groups
        .iter()
        .rev()
        .flat_map(|g| g.iter())
        .find(|s| s.ty == ty)
        .copied()
}

fn all_specs(groups: &[&'static [Spec]]) -> Vec<Spec> {
    let mut out: Vec<Spec> = Vec::new();
    for g in groups.iter().rev() {
        for s in g.iter() {
            if !out.iter().any(|o| o.ty == s.ty) {
                out.push(*s);
            }
        }
    }
    out
}

/// The CK_ULONG value of an attribute of a stored object.
pub fn ulong(attrs: &Template, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
    attrs.get_ulong(ty).ok().flatten()
}

/// The CK_BBOOL value of an attribute of a stored object (`default` if absent or malformed).
pub fn flag(attrs: &Template, ty: CK_ATTRIBUTE_TYPE, default: bool) -> bool {
    attrs.get_bool(ty).ok().flatten().unwrap_or(default)
}

/// The class-dependent default of `CKA_PRIVATE`: keys that hold secrets are private, the rest
/// (data, certificates, public keys) public.
pub fn default_private(class: CK_OBJECT_CLASS) -> bool {
    matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY)
}

/// Check one value against its syntax and return it normalised (booleans as 0/1).
fn check_value(spec: &Spec, a: &Attribute) -> Result<Vec<u8>> {
    let bad = |why: &str| {
        Error::with(
            CKR_ATTRIBUTE_VALUE_INVALID,
            format!("{}: {why}", token_api::attr::attr_name(a.ty)),
        )
    };
    let v = a.value.as_slice();
    match spec.kind {
        Bool => Ok(vec![a.as_bool()? as u8]),
        Ulong => {
            let x = a.as_ulong()?;
            match spec.ty {
                CKA_CLASS | CKA_KEY_TYPE | CKA_CERTIFICATE_TYPE => {}
                CKA_CERTIFICATE_CATEGORY | CKA_JAVA_MIDP_SECURITY_DOMAIN if x > 3 => {
                    return Err(bad("must be 0..3"));
                }
                CKA_MODULUS_BITS | CKA_VALUE_LEN if x == 0 || x > 1 << 20 => {
                    return Err(bad("out of range"));
                }
                _ => {}
            }
            Ok(v.to_vec())
        }
        Date => {
            if v.is_empty() || (v.len() == 8 && v.iter().all(u8::is_ascii_digit)) {
                Ok(v.to_vec())
            } else {
                Err(bad("a CK_DATE is empty or eight digits YYYYMMDD"))
            }
        }
        MechList => {
            if v.len().is_multiple_of(size_of::<CK_ULONG>()) {
                Ok(v.to_vec())
            } else {
                Err(bad("must be an array of CK_MECHANISM_TYPE"))
            }
        }
        Bytes => Ok(v.to_vec()),
    }
}

fn inconsistent(why: impl Into<String>) -> Error {
    Error::with(CKR_TEMPLATE_INCONSISTENT, why.into())
}

fn read_only(ty: CK_ATTRIBUTE_TYPE, why: &str) -> Error {
    Error::with(
        CKR_ATTRIBUTE_READ_ONLY,
        format!("{} {why}", token_api::attr::attr_name(ty)),
    )
}

/// How a new object comes to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// `C_CreateObject`.
    Create,
    /// `C_GenerateKey` / `C_GenerateKeyPair` with this mechanism.
    Generate(CK_MECHANISM_TYPE),
    /// `C_UnwrapKey`.
    Unwrap,
    /// `C_DeriveKey`, with the base key's `CKA_ALWAYS_SENSITIVE` and `CKA_NEVER_EXTRACTABLE`.
    Derive {
        always_sensitive: bool,
        never_extractable: bool,
    },
}

/// The class and key type a template asks for (`CKA_CLASS` falling back to `class_default`).
pub fn class_of(t: &Template, class_default: Option<CK_OBJECT_CLASS>) -> Result<CK_OBJECT_CLASS> {
    match (t.get_ulong(CKA_CLASS)?, class_default) {
        (Some(c), Some(d)) if c != d => Err(inconsistent(format!(
            "CKA_CLASS {c:#x} does not fit this function (needs {d:#x})"
        ))),
        (Some(c), _) => Ok(c),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(Error::with(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS missing")),
    }
}

/// A new CKA_UNIQUE_ID (32 hex digits of randomness).
pub fn new_unique_id() -> Result<Vec<u8>> {
    let r: [u8; 16] = seal::random()?;
    Ok(crate::store::hex(&r).into_bytes())
}

/// Check the caller's template for a new object and complete it with the token's
/// contributions (`contributed`: key components from generation or unwrapping, attributes taken
/// from a certificate's DER, `CKA_LOCAL`/`CKA_KEY_GEN_MECHANISM`, ...), the defaults and the
/// token-maintained attributes. `contributed` values are not subject to the template rules but
/// must agree with what the caller gave.
pub fn new_object(
    op: Op,
    template: &Template,
    class_default: Option<CK_OBJECT_CLASS>,
    contributed: &Template,
    is_so: bool,
) -> Result<Template> {
    if template.has_conflicting_duplicates() {
        return Err(inconsistent(
            "an attribute is given twice with different values",
        ));
    }
    let class = class_of(template, class_default.or(ulong(contributed, CKA_CLASS)))?;
    let key_type = match template.get_ulong(CKA_KEY_TYPE)? {
        Some(k) => Some(k),
        None => ulong(contributed, CKA_KEY_TYPE),
    };
    let groups = groups(class, key_type)?;

    let mut out = check_attrs(op, template, &groups, is_so)?;
    out.set_ulong(CKA_CLASS, class);
    for c in contributed.iter() {
        match out.get(c.ty) {
            Some(v) if v != c.value.as_slice() => {
                // The caller's value must agree with the token's.
                return Err(inconsistent(format!(
                    "{} does not match the key or certificate",
                    token_api::attr::attr_name(c.ty)
                )));
            }
            Some(_) => {}
            None => out.set(c.ty, c.value.to_vec()),
        }
    }

    // Derived values.
    if matches!(class, CKO_PUBLIC_KEY)
        && key_type == Some(CKK_RSA)
        && let Some(m) = out.get(CKA_MODULUS)
    {
        {
            let bits = bit_length(m) as CK_ULONG;
            match ulong(&out, CKA_MODULUS_BITS) {
                Some(b) if b != bits => {
                    return Err(inconsistent("CKA_MODULUS_BITS does not match CKA_MODULUS"));
                }
                _ => out.set_ulong(CKA_MODULUS_BITS, bits),
            }
        }
    }
    // GOST keys: CKA_GOSTR3411_PARAMS defaults to the Streebog of the key size (DER OIDs
    // id-tc26-gost3411-12-256 1.2.643.7.1.1.2.2 / -512 1.2.643.7.1.1.2.3, gost-pkcs11.md §2.3;
    // the vendor tokens' templates carry it, gost-pkcs11.md §2.2).
    if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY) && !out.contains(CKA_GOSTR3411_PARAMS) {
        match key_type {
            Some(CKK_GOSTR3410) => out.set(CKA_GOSTR3411_PARAMS, STREEBOG_256_OID.to_vec()),
            Some(CKK_GOSTR3410_512) => out.set(CKA_GOSTR3411_PARAMS, STREEBOG_512_OID.to_vec()),
            _ => {}
        }
    }
    if class == CKO_SECRET_KEY
        && let Some(v) = out.get(CKA_VALUE)
    {
        {
            let len = v.len() as CK_ULONG;
            if key_type == Some(CKK_AES) && ![16, 24, 32].contains(&len) {
                return Err(Error::with(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    "an AES key is 16, 24 or 32 bytes",
                ));
            }
            match ulong(&out, CKA_VALUE_LEN) {
                Some(l) if l != len => {
                    return Err(inconsistent("CKA_VALUE_LEN does not match CKA_VALUE"));
                }
                _ => out.set_ulong(CKA_VALUE_LEN, len),
            }
        }
    }
    if class == CKO_CERTIFICATE {
        match ulong(&out, CKA_CERTIFICATE_TYPE) {
            Some(CKC_X_509) | None => {}
            Some(t) => {
                return Err(Error::with(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    format!(
                        "certificate type {t:#x}: the soft token keeps X.509 certificates only"
                    ),
                ));
            }
        }
    }

    // Required attributes.
    let specs = all_specs(&groups);
    let need = match op {
        Op::Create => C1,
        Op::Generate(_) => C3,
        Op::Unwrap => C5,
        Op::Derive { .. } => 0,
    };
    if need != 0
        && let Some(missing) = specs
            .iter()
            .find(|s| s.flags & need != 0 && !out.contains(s.ty))
    {
        {
            return Err(Error::with(
                CKR_TEMPLATE_INCOMPLETE,
                format!("{} missing", token_api::attr::attr_name(missing.ty)),
            ));
        }
    }

    // Defaults.
    for spec in &specs {
        if out.contains(spec.ty) {
            continue;
        }
        match spec.default {
            D::None => {}
            D::Bool(b) => out.set_bool(spec.ty, b),
            D::Ulong(u) => out.set_ulong(spec.ty, u),
            D::Empty => out.set(spec.ty, Vec::new()),
        }
    }
    out.set_default(CKA_PRIVATE, vec![default_private(class) as u8]);
    out.set(CKA_UNIQUE_ID, new_unique_id()?);

    // Attributes the token maintains.
    if matches!(class, CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let (local, mech) = match op {
            Op::Generate(m) => (true, m),
            _ => (false, CK_UNAVAILABLE_INFORMATION),
        };
        out.set_default(CKA_LOCAL, vec![local as u8]);
        out.set_default(CKA_KEY_GEN_MECHANISM, mech.to_ne_bytes().to_vec());
    }
    if matches!(class, CKO_PRIVATE_KEY | CKO_SECRET_KEY) {
        let sensitive = flag(&out, CKA_SENSITIVE, false);
        let extractable = flag(&out, CKA_EXTRACTABLE, true);
        let (always_sensitive, never_extractable) = match op {
            Op::Generate(_) => (sensitive, !extractable),
            Op::Derive {
                always_sensitive,
                never_extractable,
            } => (
                always_sensitive && sensitive,
                never_extractable && !extractable,
            ),
            Op::Create | Op::Unwrap => (false, false),
        };
        out.set_bool(CKA_ALWAYS_SENSITIVE, always_sensitive);
        out.set_bool(CKA_NEVER_EXTRACTABLE, never_extractable);
    }
    Ok(out)
}

/// Domain parameters that a generation template may repeat for the private key although the
/// mechanism supplies them (accepted when they agree; SoftHSM refuses them, some applications
/// send them).
fn repeatable(ty: CK_ATTRIBUTE_TYPE) -> bool {
    matches!(
        ty,
        CKA_EC_PARAMS | CKA_GOSTR3410_PARAMS | CKA_GOSTR3411_PARAMS | CKA_GOST28147_PARAMS
    )
}

/// Check the caller's attributes one by one: known for the class, well-formed, allowed for this
/// way of making an object. Returns them normalised.
fn check_attrs(
    op: Op,
    template: &Template,
    groups: &[&'static [Spec]],
    is_so: bool,
) -> Result<Template> {
    let mut out = Template::new();
    for a in template.iter() {
        if out.contains(a.ty) {
            continue; // an identical duplicate
        }
        let Some(spec) = find(groups, a.ty) else {
            return Err(Error::with(
                CKR_ATTRIBUTE_TYPE_INVALID,
                format!(
                    "{} is not an attribute of this object class",
                    token_api::attr::attr_name(a.ty)
                ),
            ));
        };
        let v = check_value(&spec, a)?;
        // Lenient: a CKA_VALUE_LEN / CKA_MODULUS_BITS given at creation must agree with the
        // value (checked by the caller of this function).
        let forbidden = match op {
            Op::Create => spec.flags & C2 != 0 && !matches!(a.ty, CKA_VALUE_LEN | CKA_MODULUS_BITS),
            Op::Generate(_) => spec.flags & C4 != 0 && !repeatable(a.ty),
            Op::Derive { .. } => spec.flags & C4 != 0,
            // CKA_VALUE_LEN may say how much of an unwrapped value is the key.
            Op::Unwrap => spec.flags & C6 != 0 && a.ty != CKA_VALUE_LEN,
        };
        if forbidden {
            return Err(read_only(a.ty, "may not be given here (the token sets it)"));
        }
        if spec.flags & C10 != 0 && v == [1] && !is_so {
            return Err(read_only(a.ty, "can be set to true by the SO only"));
        }
        out.set(a.ty, v);
    }
    Ok(out)
}

/// Check a generation template before the (slow) generation: class, key type, syntax,
/// forbidden and required attributes. `key_type` is what the mechanism makes.
pub fn check_generate_template(
    template: &Template,
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
    is_so: bool,
) -> Result<()> {
    if template.has_conflicting_duplicates() {
        return Err(inconsistent(
            "an attribute is given twice with different values",
        ));
    }
    class_of(template, Some(class))?;
    if let Some(k) = template.get_ulong(CKA_KEY_TYPE)?
        && k != key_type
    {
        {
            return Err(inconsistent(format!(
                "CKA_KEY_TYPE {k:#x} does not fit the mechanism (makes {key_type:#x})"
            )));
        }
    }
    let groups = groups(class, Some(key_type))?;
    let out = check_attrs(Op::Generate(0), template, &groups, is_so)?;
    if let Some(missing) = all_specs(&groups)
        .iter()
        .find(|s| s.flags & C3 != 0 && !out.contains(s.ty))
    {
        return Err(Error::with(
            CKR_TEMPLATE_INCOMPLETE,
            format!("{} missing", token_api::attr::attr_name(missing.ty)),
        ));
    }
    Ok(())
}

fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
        None => 0,
    }
}

fn groups_of(attrs: &Template) -> Result<Vec<&'static [Spec]>> {
    let class =
        ulong(attrs, CKA_CLASS).ok_or_else(|| Error::general("stored object without CKA_CLASS"))?;
    groups(class, ulong(attrs, CKA_KEY_TYPE))
}

/// `C_SetAttributeValue`: the object with `changes` applied, or the spec's error.
pub fn apply_set(current: &Template, changes: &Template, is_so: bool) -> Result<Template> {
    if changes.has_conflicting_duplicates() {
        return Err(inconsistent(
            "an attribute is given twice with different values",
        ));
    }
    if !flag(current, CKA_MODIFIABLE, true) {
        return Err(Error::with(
            CKR_ACTION_PROHIBITED,
            "the object is not modifiable (CKA_MODIFIABLE is false)",
        ));
    }
    let groups = groups_of(current)?;
    let mut out = current.clone();
    for a in changes.iter() {
        let Some(spec) = find(&groups, a.ty) else {
            return Err(Error::with(
                CKR_ATTRIBUTE_TYPE_INVALID,
                format!(
                    "{} is not an attribute of this object",
                    token_api::attr::attr_name(a.ty)
                ),
            ));
        };
        let v = check_value(&spec, a)?;
        if spec.flags & C8 == 0 {
            return Err(read_only(a.ty, "cannot be changed"));
        }
        check_transition(&spec, current, &v, is_so)?;
        out.set(a.ty, v);
    }
    Ok(out)
}

/// The sticky and SO-only rules for a new value of a changeable attribute.
fn check_transition(spec: &Spec, current: &Template, v: &[u8], is_so: bool) -> Result<()> {
    let now = current.get(spec.ty);
    if spec.flags & C11 != 0 && now == Some(&[1][..]) && v == [0] {
        return Err(read_only(spec.ty, "cannot go back from true to false"));
    }
    if spec.flags & C12 != 0 && now == Some(&[0][..]) && v == [1] {
        return Err(read_only(spec.ty, "cannot go back from false to true"));
    }
    if spec.flags & C10 != 0 && v == [1] && now != Some(&[1][..]) && !is_so {
        return Err(read_only(spec.ty, "can be set to true by the SO only"));
    }
    Ok(())
}

/// `C_CopyObject`: the copy, or the spec's error.
pub fn apply_copy(current: &Template, changes: &Template, is_so: bool) -> Result<Template> {
    if !flag(current, CKA_COPYABLE, true) {
        return Err(Error::with(
            CKR_ACTION_PROHIBITED,
            "the object cannot be copied (CKA_COPYABLE is false)",
        ));
    }
    if changes.has_conflicting_duplicates() {
        return Err(inconsistent(
            "an attribute is given twice with different values",
        ));
    }
    let groups = groups_of(current)?;
    let modifiable = flag(current, CKA_MODIFIABLE, true);
    let mut out = current.clone();
    for a in changes.iter() {
        let Some(spec) = find(&groups, a.ty) else {
            return Err(Error::with(
                CKR_ATTRIBUTE_TYPE_INVALID,
                format!(
                    "{} is not an attribute of this object",
                    token_api::attr::attr_name(a.ty)
                ),
            ));
        };
        let v = check_value(&spec, a)?;
        if spec.flags & C17 != 0 {
            let only_to_false = matches!(a.ty, CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE);
            if only_to_false && v == [1] && current.get(a.ty) == Some(&[0][..]) {
                return Err(read_only(a.ty, "can only be changed to false in a copy"));
            }
        } else if spec.flags & C8 != 0 {
            if !modifiable && current.get(a.ty) != Some(v.as_slice()) {
                return Err(read_only(
                    a.ty,
                    "cannot change: the object is not modifiable",
                ));
            }
            check_transition(&spec, current, &v, is_so)?;
        } else if current.get(a.ty) != Some(v.as_slice()) {
            return Err(read_only(a.ty, "cannot be changed in a copy"));
        }
        out.set(a.ty, v);
    }
    out.set(CKA_UNIQUE_ID, new_unique_id()?);
    Ok(out)
}

/// Is the object sensitive or unextractable (so footnote-7 attributes stay hidden)?
pub fn is_hidden(attrs: &Template) -> bool {
    flag(attrs, CKA_SENSITIVE, false) || !flag(attrs, CKA_EXTRACTABLE, true)
}

/// `C_GetAttributeValue` of one attribute.
pub fn read(attrs: &Template, ty: CK_ATTRIBUTE_TYPE) -> AttrRead {
    let Some(v) = attrs.get(ty) else {
        return AttrRead::Invalid;
    };
    let secret = match groups_of(attrs) {
        Ok(g) => find(&g, ty).is_some_and(|s| s.flags & C7 != 0),
        Err(_) => true,
    };
    if secret && is_hidden(attrs) {
        AttrRead::Sensitive
    } else {
        AttrRead::Value(zeroize::Zeroizing::new(v.to_vec()))
    }
}

/// Are any of the object's attributes secret (footnote 7)? Such objects' values are zeroized
/// and never logged.
pub fn has_secret_parts(attrs: &Template) -> bool {
    match groups_of(attrs) {
        Ok(g) => attrs
            .iter()
            .any(|a| find(&g, a.ty).is_some_and(|s| s.flags & C7 != 0)),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_api::attr::rules;

    fn t(attrs: &[(CK_ATTRIBUTE_TYPE, &[u8])]) -> Template {
        attrs
            .iter()
            .map(|(ty, v)| Attribute::new(*ty, v.to_vec()))
            .collect()
    }
    fn ul(v: CK_ULONG) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    #[test]
    fn tables_agree_with_the_token_api_footnotes() {
        // Every attribute the shared table calls modifiable is modifiable wherever we have it,
        // and every token-set one is token-set.
        let all = [
            CKO_DATA,
            CKO_CERTIFICATE,
            CKO_PUBLIC_KEY,
            CKO_PRIVATE_KEY,
            CKO_SECRET_KEY,
        ];
        for class in all {
            let kts: &[CK_KEY_TYPE] = match class {
                CKO_PUBLIC_KEY | CKO_PRIVATE_KEY => {
                    &[CKK_RSA, CKK_EC, CKK_EC_EDWARDS, CKK_GOSTR3410]
                }
                CKO_SECRET_KEY => &[CKK_AES, CKK_GENERIC_SECRET],
                _ => &[0],
            };
            for &kt in kts {
                let g = groups(class, Some(kt)).unwrap();
                for spec in all_specs(&g) {
                    let f = rules::flags(spec.ty);
                    if f & rules::TOKEN_SET_ONLY != 0 {
                        assert_eq!(spec.flags & TOKEN, TOKEN, "{:#x}", spec.ty);
                    }
                    if f & rules::COPY_ONLY != 0 {
                        assert!(spec.flags & C17 != 0, "{:#x}", spec.ty);
                    }
                    if f & rules::STICKY_TRUE != 0 {
                        assert!(spec.flags & C11 != 0, "{:#x}", spec.ty);
                    }
                    if f & rules::STICKY_FALSE != 0 {
                        assert!(spec.flags & C12 != 0, "{:#x}", spec.ty);
                    }
                    if f & rules::SO_SETS_TRUE != 0 {
                        assert!(spec.flags & C10 != 0, "{:#x}", spec.ty);
                    }
                    if f & rules::SECRET != 0 {
                        assert!(spec.flags & C7 != 0, "{:#x}", spec.ty);
                    }
                }
            }
        }
    }

    #[test]
    fn data_object_defaults_and_errors() {
        let o = new_object(
            Op::Create,
            &t(&[(CKA_CLASS, &ul(CKO_DATA)), (CKA_LABEL, b"x")]),
            None,
            &Template::new(),
            false,
        )
        .unwrap();
        assert_eq!(o.get(CKA_TOKEN), Some(&[0][..]));
        assert_eq!(o.get(CKA_PRIVATE), Some(&[0][..]));
        assert_eq!(o.get(CKA_MODIFIABLE), Some(&[1][..]));
        assert_eq!(o.get(CKA_VALUE), Some(&[][..]));
        assert_eq!(o.get(CKA_UNIQUE_ID).unwrap().len(), 32);

        let err = |tpl: Template| {
            new_object(Op::Create, &tpl, None, &Template::new(), false)
                .unwrap_err()
                .rv()
        };
        assert_eq!(err(t(&[(CKA_LABEL, b"x")])), CKR_TEMPLATE_INCOMPLETE);
        assert_eq!(
            err(t(&[(CKA_CLASS, &ul(CKO_DATA)), (CKA_MODULUS, b"x")])),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        assert_eq!(
            err(t(&[(CKA_CLASS, &ul(CKO_DATA)), (CKA_TOKEN, &[1, 1])])),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            err(t(&[(CKA_CLASS, &ul(CKO_DATA)), (CKA_UNIQUE_ID, b"1")])),
            CKR_ATTRIBUTE_READ_ONLY
        );
        assert_eq!(
            err(t(&[
                (CKA_CLASS, &ul(CKO_DATA)),
                (CKA_LABEL, b"a"),
                (CKA_LABEL, b"b")
            ])),
            CKR_TEMPLATE_INCONSISTENT
        );
        assert_eq!(
            err(t(&[(CKA_CLASS, &ul(CKO_HW_FEATURE))])),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            err(t(&[(CKA_CLASS, &ul(CKO_DATA)), (CKA_START_DATE, b"2024")])),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
    }

    #[test]
    fn secret_key_rules() {
        let base = t(&[
            (CKA_CLASS, &ul(CKO_SECRET_KEY)),
            (CKA_KEY_TYPE, &ul(CKK_AES)),
            (CKA_VALUE, &[7u8; 16]),
        ]);
        let o = new_object(Op::Create, &base, None, &Template::new(), false).unwrap();
        assert_eq!(o.get(CKA_SENSITIVE), Some(&[1][..]));
        assert_eq!(o.get(CKA_EXTRACTABLE), Some(&[0][..]));
        assert_eq!(o.get(CKA_ALWAYS_SENSITIVE), Some(&[0][..]));
        assert_eq!(o.get(CKA_NEVER_EXTRACTABLE), Some(&[0][..]));
        assert_eq!(o.get(CKA_LOCAL), Some(&[0][..]));
        assert_eq!(ulong(&o, CKA_VALUE_LEN), Some(16));
        assert_eq!(
            ulong(&o, CKA_KEY_GEN_MECHANISM),
            Some(CK_UNAVAILABLE_INFORMATION)
        );
        assert_eq!(o.get(CKA_PRIVATE), Some(&[1][..]));
        assert_eq!(read(&o, CKA_VALUE), AttrRead::Sensitive);
        assert_eq!(read(&o, CKA_MODULUS), AttrRead::Invalid);
        assert!(matches!(read(&o, CKA_VALUE_LEN), AttrRead::Value(_)));

        // Sticky attributes.
        let rv = |cur: &Template, ch: Template| apply_set(cur, &ch, false).unwrap_err().rv();
        assert_eq!(rv(&o, t(&[(CKA_SENSITIVE, &[0])])), CKR_ATTRIBUTE_READ_ONLY);
        assert_eq!(
            rv(&o, t(&[(CKA_EXTRACTABLE, &[1])])),
            CKR_ATTRIBUTE_READ_ONLY
        );
        assert_eq!(
            rv(&o, t(&[(CKA_VALUE, &[0u8; 16])])),
            CKR_ATTRIBUTE_READ_ONLY
        );
        assert_eq!(rv(&o, t(&[(CKA_LOCAL, &[1])])), CKR_ATTRIBUTE_READ_ONLY);
        assert_eq!(rv(&o, t(&[(CKA_TOKEN, &[1])])), CKR_ATTRIBUTE_READ_ONLY);
        assert_eq!(rv(&o, t(&[(CKA_TRUSTED, &[1])])), CKR_ATTRIBUTE_READ_ONLY);
        assert_eq!(
            rv(&o, t(&[(CKA_MODULUS, &[1])])),
            CKR_ATTRIBUTE_TYPE_INVALID
        );
        assert!(apply_set(&o, &t(&[(CKA_TRUSTED, &[1])]), true).is_ok());
        let o2 = apply_set(&o, &t(&[(CKA_LABEL, b"new"), (CKA_ENCRYPT, &[0])]), false).unwrap();
        assert_eq!(o2.get(CKA_LABEL), Some(&b"new"[..]));

        // Extractable and not sensitive: the value can be read; then make it sensitive.
        let mut open = base.clone();
        open.set_bool(CKA_SENSITIVE, false);
        open.set_bool(CKA_EXTRACTABLE, true);
        let o = new_object(Op::Create, &open, None, &Template::new(), false).unwrap();
        assert!(matches!(read(&o, CKA_VALUE), AttrRead::Value(v) if v.len() == 16));
        let o = apply_set(&o, &t(&[(CKA_SENSITIVE, &[1])]), false).unwrap();
        assert_eq!(read(&o, CKA_VALUE), AttrRead::Sensitive);
        assert_eq!(o.get(CKA_ALWAYS_SENSITIVE), Some(&[0][..]));

        // Non-modifiable objects.
        let o3 = apply_copy(&o, &t(&[(CKA_MODIFIABLE, &[0])]), false).unwrap();
        assert_eq!(
            apply_set(&o3, &t(&[(CKA_LABEL, b"x")]), false)
                .unwrap_err()
                .rv(),
            CKR_ACTION_PROHIBITED
        );
        assert_eq!(
            apply_copy(&o3, &t(&[(CKA_MODIFIABLE, &[1])]), false)
                .unwrap_err()
                .rv(),
            CKR_ATTRIBUTE_READ_ONLY
        );
        assert_eq!(
            apply_copy(&o3, &t(&[(CKA_LABEL, b"x")]), false)
                .unwrap_err()
                .rv(),
            CKR_ATTRIBUTE_READ_ONLY
        );
        let o4 = apply_copy(&o3, &t(&[(CKA_TOKEN, &[1]), (CKA_COPYABLE, &[0])]), false).unwrap();
        assert_ne!(o4.get(CKA_UNIQUE_ID), o3.get(CKA_UNIQUE_ID));
        assert_eq!(
            apply_copy(&o4, &Template::new(), false).unwrap_err().rv(),
            CKR_ACTION_PROHIBITED
        );

        // Wrong lengths and forbidden attributes.
        let mut bad = base.clone();
        bad.set(CKA_VALUE, vec![1u8; 15]);
        assert_eq!(
            new_object(Op::Create, &bad, None, &Template::new(), false)
                .unwrap_err()
                .rv(),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        let mut bad = base.clone();
        bad.set_ulong(CKA_VALUE_LEN, 32);
        assert_eq!(
            new_object(Op::Create, &bad, None, &Template::new(), false)
                .unwrap_err()
                .rv(),
            CKR_TEMPLATE_INCONSISTENT
        );
        let mut bad = base.clone();
        bad.set_bool(CKA_LOCAL, true);
        assert_eq!(
            new_object(Op::Create, &bad, None, &Template::new(), false)
                .unwrap_err()
                .rv(),
            CKR_ATTRIBUTE_READ_ONLY
        );
        let mut gen_t = t(&[(CKA_VALUE_LEN, &ul(32))]);
        assert!(check_generate_template(&gen_t, CKO_SECRET_KEY, CKK_AES, false).is_ok());
        gen_t.set(CKA_VALUE, vec![0u8; 32]);
        assert_eq!(
            check_generate_template(&gen_t, CKO_SECRET_KEY, CKK_AES, false)
                .unwrap_err()
                .rv(),
            CKR_ATTRIBUTE_READ_ONLY
        );
        assert_eq!(
            check_generate_template(&Template::new(), CKO_SECRET_KEY, CKK_AES, false)
                .unwrap_err()
                .rv(),
            CKR_TEMPLATE_INCOMPLETE
        );
    }

    #[test]
    fn generated_and_derived_keys_get_token_attributes() {
        let mut tpl = t(&[(CKA_VALUE_LEN, &ul(16)), (CKA_EXTRACTABLE, &[0])]);
        tpl.set_bool(CKA_SENSITIVE, true);
        let mut contributed = Template::new();
        contributed.set_ulong(CKA_KEY_TYPE, CKK_AES);
        contributed.set(CKA_VALUE, vec![1u8; 16]);
        contributed.set_ulong(CKA_VALUE_LEN, 16);
        let o = new_object(
            Op::Generate(CKM_AES_KEY_GEN),
            &tpl,
            Some(CKO_SECRET_KEY),
            &contributed,
            false,
        )
        .unwrap();
        assert_eq!(o.get(CKA_LOCAL), Some(&[1][..]));
        assert_eq!(o.get(CKA_ALWAYS_SENSITIVE), Some(&[1][..]));
        assert_eq!(o.get(CKA_NEVER_EXTRACTABLE), Some(&[1][..]));
        assert_eq!(ulong(&o, CKA_KEY_GEN_MECHANISM), Some(CKM_AES_KEY_GEN));

        let d = new_object(
            Op::Derive {
                always_sensitive: true,
                never_extractable: false,
            },
            &t(&[(CKA_KEY_TYPE, &ul(CKK_GENERIC_SECRET))]),
            Some(CKO_SECRET_KEY),
            &t(&[(CKA_VALUE, &[3u8; 20])]),
            false,
        )
        .unwrap();
        assert_eq!(d.get(CKA_LOCAL), Some(&[0][..]));
        assert_eq!(d.get(CKA_ALWAYS_SENSITIVE), Some(&[1][..]));
        assert_eq!(d.get(CKA_NEVER_EXTRACTABLE), Some(&[0][..]));
        assert_eq!(ulong(&d, CKA_VALUE_LEN), Some(20));
    }

    #[test]
    fn rsa_public_key_gets_modulus_bits() {
        let mut m = vec![0u8; 1];
        m.extend_from_slice(&[0x80; 256]);
        let tpl = t(&[
            (CKA_CLASS, &ul(CKO_PUBLIC_KEY)),
            (CKA_KEY_TYPE, &ul(CKK_RSA)),
            (CKA_MODULUS, &m),
            (CKA_PUBLIC_EXPONENT, &[1, 0, 1]),
        ]);
        let o = new_object(Op::Create, &tpl, None, &Template::new(), false).unwrap();
        assert_eq!(ulong(&o, CKA_MODULUS_BITS), Some(2048));
        assert_eq!(o.get(CKA_PRIVATE), Some(&[0][..]));
        assert_eq!(o.get(CKA_VERIFY), Some(&[1][..]));
        let mut incomplete = tpl.clone();
        incomplete.remove(CKA_PUBLIC_EXPONENT);
        assert_eq!(
            new_object(Op::Create, &incomplete, None, &Template::new(), false)
                .unwrap_err()
                .rv(),
            CKR_TEMPLATE_INCOMPLETE
        );
        assert_eq!(bit_length(&[0, 0, 1]), 1);
        assert_eq!(bit_length(&[]), 0);
    }
}
