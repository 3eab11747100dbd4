//! Small helpers shared by the mechanism modules: errors with spec codes, attribute reads, and
//! the few DER shapes PKCS#11 attributes use (OCTET STRING, INTEGER).

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

/// Encode a DER length (X.690 §8.1.3, definite form).
pub(crate) fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A DER TLV with the given tag.
pub(crate) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    der_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// DER OCTET STRING (tag 0x04, X.690 §8.7).
pub(crate) fn der_octet_string(content: &[u8]) -> Vec<u8> {
    der_tlv(0x04, content)
}

/// DER INTEGER (tag 0x02, X.690 §8.3) of an unsigned big-endian value.
pub(crate) fn der_uint(be: &[u8]) -> Vec<u8> {
    let v = strip_zeros(be);
    let mut c = Vec::with_capacity(v.len() + 1);
    if v.is_empty() {
        c.push(0);
    } else {
        if v[0] & 0x80 != 0 {
            c.push(0);
        }
        c.extend_from_slice(v);
    }
    der_tlv(0x02, &c)
}

/// Split one DER TLV off the front of `input`: (tag, content, rest). Only single-byte tags and
/// definite lengths (DER); `None` for anything malformed.
pub(crate) fn der_take(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        // DER: the shortest form only.
        if len < 0x80 || rest[0] == 0 {
            return None;
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The content of a DER OCTET STRING that is exactly `input` (no trailing bytes).
pub(crate) fn der_octet_string_content(input: &[u8]) -> Option<&[u8]> {
    match der_take(input)? {
        (0x04, c, []) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(der_octet_string(&[1, 2]), vec![4, 2, 1, 2]);
        let long = vec![7u8; 200];
        let enc = der_octet_string(&long);
        assert_eq!(&enc[..3], &[4, 0x81, 200]);
        assert_eq!(der_octet_string_content(&enc), Some(&long[..]));
        assert_eq!(der_uint(&[0, 0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_uint(&[0, 0]), vec![2, 1, 0]);
        assert_eq!(der_uint(&[1, 0, 1]), vec![2, 3, 1, 0, 1]);
        assert_eq!(bit_len(&[0, 1, 0]), 9);
        assert_eq!(bit_len(&[0]), 0);
        // non-minimal lengths and truncation are rejected
        assert_eq!(der_take(&[4, 0x81, 1, 0]), None);
        assert_eq!(der_take(&[4, 3, 1]), None);
        assert_eq!(der_take(&[]), None);
        assert_eq!(der_octet_string_content(&[4, 1, 1, 0]), None);
    }
}
