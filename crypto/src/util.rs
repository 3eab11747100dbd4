//! Small helpers shared by the mechanism modules: errors with spec codes, attribute reads, and
//! the DER OCTET STRING that wraps `CKA_EC_POINT` (through the `der` crate).

use der::asn1::OctetStringRef;
use der::{Decode, Encode};
use token_api::ck::*;
use token_api::{Error, Result, Template};

pub(crate) fn err(rv: CK_RV, detail: &'static str) -> Error {
    Error::with(rv, detail)
}

pub(crate) fn param_invalid(detail: &'static str) -> Error {
    Error::with(CKR_MECHANISM_PARAM_INVALID, detail)
}

pub(crate) fn key_type_inconsistent(detail: &'static str) -> Error {
    Error::with(CKR_KEY_TYPE_INCONSISTENT, detail)
}

pub(crate) fn value_invalid(detail: &'static str) -> Error {
    Error::with(CKR_ATTRIBUTE_VALUE_INVALID, detail)
}

/// A required attribute: `CKR_TEMPLATE_INCOMPLETE` when absent.
pub(crate) fn required(t: &Template, ty: CK_ATTRIBUTE_TYPE) -> Result<&[u8]> {
    t.get(ty).ok_or_else(|| {
        Error::with(
            CKR_TEMPLATE_INCOMPLETE,
            format!("{} is missing", token_api::attr::attr_name(ty)),
        )
    })
}

/// `CK_ULONG` → `usize` without truncation (saturating: too big is as bad as any bad size).
pub(crate) fn to_usize(v: CK_ULONG) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// A big-endian integer without its leading zero bytes (at least one byte).
pub(crate) fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    if i == b.len() {
        if b.is_empty() { b } else { &b[b.len() - 1..] }
    } else {
        &b[i..]
    }
}

/// The number of significant bits of a big-endian integer.
pub(crate) fn bit_len(b: &[u8]) -> usize {
    let b = strip_zeros(b);
    match b.first() {
        None | Some(0) => 0,
        Some(&top) => (b.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// DER OCTET STRING of `content` (X.690 §8.7), encoded by the `der` crate.
pub(crate) fn octet_string(content: &[u8]) -> Result<Vec<u8>> {
    OctetStringRef::new(content)
        .and_then(|o| o.to_der())
        .map_err(|_| Error::general("DER encoding failed"))
}

/// The content of a DER OCTET STRING that is exactly `input` (no trailing bytes).
pub(crate) fn octet_string_content(input: &[u8]) -> Option<&[u8]> {
    <&OctetStringRef>::from_der(input)
        .ok()
        .map(|o| o.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_strings_and_bit_lengths() {
        assert_eq!(octet_string(&[1, 2]).unwrap(), vec![4, 2, 1, 2]);
        let long = vec![7u8; 200];
        let enc = octet_string(&long).unwrap();
        assert_eq!(&enc[..3], &[4, 0x81, 200]);
        assert_eq!(octet_string_content(&enc), Some(&long[..]));
        assert_eq!(bit_len(&[0, 1, 0]), 9);
        assert_eq!(bit_len(&[0]), 0);
        // non-minimal lengths, truncation and trailing bytes are rejected
        assert_eq!(octet_string_content(&[4, 0x81, 1, 0]), None);
        assert_eq!(octet_string_content(&[4, 3, 1]), None);
        assert_eq!(octet_string_content(&[]), None);
        assert_eq!(octet_string_content(&[4, 1, 1, 0]), None);
    }
}
