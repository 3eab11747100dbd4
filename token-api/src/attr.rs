//! Attributes as owned bytes.
//!
//! A [`Template`] holds attribute values exactly as PKCS#11 lays them out in memory (a `CK_ULONG`
//! is its native-endian bytes, a `CK_BBOOL` one byte, a `CK_DATE` eight ASCII digits), copied out
//! of C memory by the ABI layer. Typed accessors check the length and give
//! `CKR_ATTRIBUTE_VALUE_INVALID` for a malformed value.

use crate::ck::*;
use crate::error::{Error, Result};
use std::fmt;
use zeroize::Zeroizing;

/// One attribute: its type and its value bytes. The value is wiped on drop (it may be key material).
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    pub ty: CK_ATTRIBUTE_TYPE,
    pub value: Zeroizing<Vec<u8>>,
}

impl Attribute {
    pub fn new(ty: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) -> Self {
        Attribute {
            ty,
            value: Zeroizing::new(value.into()),
        }
    }
    pub fn bool(ty: CK_ATTRIBUTE_TYPE, v: bool) -> Self {
        Attribute::new(ty, vec![v as u8])
    }
    pub fn ulong(ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) -> Self {
        Attribute::new(ty, v.to_ne_bytes().to_vec())
    }
    /// The value as a `CK_BBOOL` (exactly one byte; any non-zero byte is true).
    pub fn as_bool(&self) -> Result<bool> {
        match self.value.as_slice() {
            [b] => Ok(*b != 0),
            _ => Err(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                format!("{} must be a 1-byte CK_BBOOL", attr_name(self.ty)),
            )),
        }
    }
    /// The value as a `CK_ULONG` (exactly `size_of::<CK_ULONG>()` bytes, native endian).
    pub fn as_ulong(&self) -> Result<CK_ULONG> {
        let bytes: [u8; size_of::<CK_ULONG>()] =
            self.value.as_slice().try_into().map_err(|_| {
                Error::with(
                    CKR_ATTRIBUTE_VALUE_INVALID,
                    format!("{} must be a CK_ULONG", attr_name(self.ty)),
                )
            })?;
        Ok(CK_ULONG::from_ne_bytes(bytes))
    }
}

impl fmt::Debug for Attribute {
    /// Prints the type and the length, never the value (it may be a key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{} bytes]", attr_name(self.ty), self.value.len())
    }
}

/// An ordered list of attributes. Later entries do not override earlier ones: [`Template::get`]
/// returns the first. Use [`Template::set`] to replace.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Template(pub Vec<Attribute>);

impl Template {
    pub fn new() -> Self {
        Template(Vec::new())
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Attribute> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn attr(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&Attribute> {
        self.0.iter().find(|a| a.ty == ty)
    }
    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.attr(ty).map(|a| a.value.as_slice())
    }
    pub fn contains(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.attr(ty).is_some()
    }
    pub fn get_bool(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        self.attr(ty).map(Attribute::as_bool).transpose()
    }
    pub fn get_ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        self.attr(ty).map(Attribute::as_ulong).transpose()
    }
    /// Set (replace or append) an attribute.
    pub fn set(&mut self, ty: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) {
        let value = Zeroizing::new(value.into());
        match self.0.iter_mut().find(|a| a.ty == ty) {
            Some(a) => a.value = value,
            None => self.0.push(Attribute { ty, value }),
        }
    }
    pub fn set_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool) {
        self.set(ty, vec![v as u8]);
    }
    pub fn set_ulong(&mut self, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.set(ty, v.to_ne_bytes().to_vec());
    }
    /// Set only if absent (for defaults).
    pub fn set_default(&mut self, ty: CK_ATTRIBUTE_TYPE, value: impl Into<Vec<u8>>) {
        if !self.contains(ty) {
            self.set(ty, value);
        }
    }
    pub fn remove(&mut self, ty: CK_ATTRIBUTE_TYPE) -> Option<Attribute> {
        let i = self.0.iter().position(|a| a.ty == ty)?;
        Some(self.0.remove(i))
    }
    /// Does an object with these attributes match a search template? Every attribute of the
    /// search template must be present with byte-identical value (PKCS#11 `C_FindObjectsInit`).
    pub fn matches_search(&self, search: &Template) -> bool {
        search
            .iter()
            .all(|s| self.get(s.ty) == Some(s.value.as_slice()))
    }
    /// True if any attribute type occurs twice (the spec calls that `CKR_TEMPLATE_INCONSISTENT`
    /// when the values differ).
    pub fn has_conflicting_duplicates(&self) -> bool {
        self.0.iter().enumerate().any(|(i, a)| {
            self.0[..i]
                .iter()
                .any(|b| b.ty == a.ty && b.value != a.value)
        })
    }
}

impl FromIterator<Attribute> for Template {
    fn from_iter<I: IntoIterator<Item = Attribute>>(iter: I) -> Self {
        Template(iter.into_iter().collect())
    }
}

/// What `C_GetAttributeValue` learns about one requested attribute; the ABI layer turns it into
/// bytes in the caller's buffer or `CK_UNAVAILABLE_INFORMATION` and the right return value.
#[derive(Clone, PartialEq, Eq)]
pub enum AttrRead {
    /// The value (wiped on drop: may be an extractable key).
    Value(Zeroizing<Vec<u8>>),
    /// The attribute exists but may not be revealed: `CKR_ATTRIBUTE_SENSITIVE`.
    Sensitive,
    /// The object has no such attribute: `CKR_ATTRIBUTE_TYPE_INVALID`.
    Invalid,
}

impl fmt::Debug for AttrRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrRead::Value(v) => write!(f, "Value[{} bytes]", v.len()),
            AttrRead::Sensitive => f.write_str("Sensitive"),
            AttrRead::Invalid => f.write_str("Invalid"),
        }
    }
}

/// Attribute rules from the PKCS#11 attribute tables' footnotes (PKCS#11 3.0 base spec §4.2,
/// "Common footnotes for object attribute tables"). Class-independent flags per attribute type;
/// class-specific "must be specified" rules live with the object schema of each backend.
pub mod rules {
    use crate::ck::*;

    /// Footnote 8: may be changed with `C_SetAttributeValue` (if the object is `CKA_MODIFIABLE`)
    /// and in `C_CopyObject`.
    pub const MODIFIABLE: u32 = 1 << 0;
    /// Footnotes 2/4/6: set by the token only, never in a template (`CKA_LOCAL`, ...).
    pub const TOKEN_SET_ONLY: u32 = 1 << 1;
    /// Footnote 10: only the SO may set it to true.
    pub const SO_SETS_TRUE: u32 = 1 << 2;
    /// Footnote 11: once true, read-only.
    pub const STICKY_TRUE: u32 = 1 << 3;
    /// Footnote 12: once false, read-only.
    pub const STICKY_FALSE: u32 = 1 << 4;
    /// Footnote 7: secret key material, never revealed when the key is sensitive or unextractable.
    pub const SECRET: u32 = 1 << 5;
    /// May change in `C_CopyObject` only (`CKA_TOKEN`, `CKA_PRIVATE`, `CKA_MODIFIABLE`,
    /// `CKA_COPYABLE`, `CKA_DESTROYABLE`; the last three only to false).
    pub const COPY_ONLY: u32 = 1 << 6;

    /// The rule flags of an attribute type (0 = settable at creation, then read-only).
    pub fn flags(ty: CK_ATTRIBUTE_TYPE) -> u32 {
        match ty {
            CKA_LABEL
            | CKA_ID
            | CKA_START_DATE
            | CKA_END_DATE
            | CKA_SUBJECT
            | CKA_APPLICATION
            | CKA_OBJECT_ID
            | CKA_ENCRYPT
            | CKA_DECRYPT
            | CKA_SIGN
            | CKA_VERIFY
            | CKA_SIGN_RECOVER
            | CKA_VERIFY_RECOVER
            | CKA_WRAP
            | CKA_UNWRAP
            | CKA_DERIVE
            | CKA_ALLOWED_MECHANISMS
            | CKA_URL
            | CKA_ALWAYS_AUTHENTICATE
            | CKA_CERTIFICATE_CATEGORY => MODIFIABLE,
            CKA_TRUSTED => MODIFIABLE | SO_SETS_TRUE,
            CKA_SENSITIVE | CKA_WRAP_WITH_TRUSTED => MODIFIABLE | STICKY_TRUE,
            CKA_EXTRACTABLE => MODIFIABLE | STICKY_FALSE,
            CKA_LOCAL
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_KEY_GEN_MECHANISM
            | CKA_UNIQUE_ID => TOKEN_SET_ONLY,
            CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2 | CKA_EXPONENT_1 | CKA_EXPONENT_2
            | CKA_COEFFICIENT => SECRET,
            CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE | CKA_COPYABLE | CKA_DESTROYABLE => COPY_ONLY,
            _ => 0,
        }
    }
}

/// The spec name of an attribute type, for logs and errors ("CKA_0x..." when unknown).
pub fn attr_name(ty: CK_ATTRIBUTE_TYPE) -> String {
    let known = match ty {
        CKA_CLASS => "CKA_CLASS",
        CKA_TOKEN => "CKA_TOKEN",
        CKA_PRIVATE => "CKA_PRIVATE",
        CKA_LABEL => "CKA_LABEL",
        CKA_APPLICATION => "CKA_APPLICATION",
        CKA_VALUE => "CKA_VALUE",
        CKA_OBJECT_ID => "CKA_OBJECT_ID",
        CKA_CERTIFICATE_TYPE => "CKA_CERTIFICATE_TYPE",
        CKA_ISSUER => "CKA_ISSUER",
        CKA_SERIAL_NUMBER => "CKA_SERIAL_NUMBER",
        CKA_TRUSTED => "CKA_TRUSTED",
        CKA_CERTIFICATE_CATEGORY => "CKA_CERTIFICATE_CATEGORY",
        CKA_KEY_TYPE => "CKA_KEY_TYPE",
        CKA_SUBJECT => "CKA_SUBJECT",
        CKA_ID => "CKA_ID",
        CKA_SENSITIVE => "CKA_SENSITIVE",
        CKA_ENCRYPT => "CKA_ENCRYPT",
        CKA_DECRYPT => "CKA_DECRYPT",
        CKA_WRAP => "CKA_WRAP",
        CKA_UNWRAP => "CKA_UNWRAP",
        CKA_SIGN => "CKA_SIGN",
        CKA_SIGN_RECOVER => "CKA_SIGN_RECOVER",
        CKA_VERIFY => "CKA_VERIFY",
        CKA_VERIFY_RECOVER => "CKA_VERIFY_RECOVER",
        CKA_DERIVE => "CKA_DERIVE",
        CKA_START_DATE => "CKA_START_DATE",
        CKA_END_DATE => "CKA_END_DATE",
        CKA_MODULUS => "CKA_MODULUS",
        CKA_MODULUS_BITS => "CKA_MODULUS_BITS",
        CKA_PUBLIC_EXPONENT => "CKA_PUBLIC_EXPONENT",
        CKA_PRIVATE_EXPONENT => "CKA_PRIVATE_EXPONENT",
        CKA_PRIME_1 => "CKA_PRIME_1",
        CKA_PRIME_2 => "CKA_PRIME_2",
        CKA_EXPONENT_1 => "CKA_EXPONENT_1",
        CKA_EXPONENT_2 => "CKA_EXPONENT_2",
        CKA_COEFFICIENT => "CKA_COEFFICIENT",
        CKA_PUBLIC_KEY_INFO => "CKA_PUBLIC_KEY_INFO",
        CKA_VALUE_LEN => "CKA_VALUE_LEN",
        CKA_EXTRACTABLE => "CKA_EXTRACTABLE",
        CKA_LOCAL => "CKA_LOCAL",
        CKA_NEVER_EXTRACTABLE => "CKA_NEVER_EXTRACTABLE",
        CKA_ALWAYS_SENSITIVE => "CKA_ALWAYS_SENSITIVE",
        CKA_KEY_GEN_MECHANISM => "CKA_KEY_GEN_MECHANISM",
        CKA_MODIFIABLE => "CKA_MODIFIABLE",
        CKA_COPYABLE => "CKA_COPYABLE",
        CKA_DESTROYABLE => "CKA_DESTROYABLE",
        CKA_EC_PARAMS => "CKA_EC_PARAMS",
        CKA_EC_POINT => "CKA_EC_POINT",
        CKA_ALWAYS_AUTHENTICATE => "CKA_ALWAYS_AUTHENTICATE",
        CKA_WRAP_WITH_TRUSTED => "CKA_WRAP_WITH_TRUSTED",
        CKA_GOSTR3410_PARAMS => "CKA_GOSTR3410_PARAMS",
        CKA_GOSTR3411_PARAMS => "CKA_GOSTR3411_PARAMS",
        CKA_GOST28147_PARAMS => "CKA_GOST28147_PARAMS",
        CKA_ALLOWED_MECHANISMS => "CKA_ALLOWED_MECHANISMS",
        CKA_UNIQUE_ID => "CKA_UNIQUE_ID",
        CKA_CHECK_VALUE => "CKA_CHECK_VALUE",
        CKA_URL => "CKA_URL",
        _ => return format!("CKA_0x{ty:08X}"),
    };
    known.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_checks_lengths() {
        let mut t = Template::new();
        t.set_bool(CKA_TOKEN, true);
        t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        t.set(CKA_LABEL, b"k".to_vec());
        t.set(CKA_SIGN, vec![1, 0]);
        assert_eq!(t.get_bool(CKA_TOKEN).unwrap(), Some(true));
        assert_eq!(t.get_ulong(CKA_CLASS).unwrap(), Some(CKO_PRIVATE_KEY));
        assert_eq!(t.get_bool(CKA_PRIVATE).unwrap(), None);
        assert_eq!(
            t.get_bool(CKA_SIGN).unwrap_err().rv(),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
        assert_eq!(
            t.get_ulong(CKA_LABEL).unwrap_err().rv(),
            CKR_ATTRIBUTE_VALUE_INVALID
        );
    }

    #[test]
    fn search_matching_is_bytewise_and_total() {
        let mut obj = Template::new();
        obj.set_ulong(CKA_CLASS, CKO_DATA);
        obj.set(CKA_LABEL, b"abc".to_vec());
        let mut s = Template::new();
        assert!(obj.matches_search(&s));
        s.set(CKA_LABEL, b"abc".to_vec());
        assert!(obj.matches_search(&s));
        s.set(CKA_ID, b"1".to_vec());
        assert!(!obj.matches_search(&s));
    }

    #[test]
    fn debug_hides_values() {
        let a = Attribute::new(CKA_VALUE, b"secret-key".to_vec());
        assert_eq!(format!("{a:?}"), "CKA_VALUE[10 bytes]");
    }

    #[test]
    fn duplicates() {
        let t: Template = [
            Attribute::bool(CKA_TOKEN, true),
            Attribute::bool(CKA_TOKEN, false),
        ]
        .into_iter()
        .collect();
        assert!(t.has_conflicting_duplicates());
    }
}
