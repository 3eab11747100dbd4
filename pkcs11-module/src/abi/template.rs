//! `CK_ATTRIBUTE` arrays: copying a template in, and `C_GetAttributeValue`'s output contract.

use token_api::attr::{AttrRead, Attribute, Template};
use token_api::ck::*;
use token_api::{Error, Result};

use super::ptr::{in_bytes, to_ulong, to_usize};

/// The attributes whose values are `CK_ATTRIBUTE` arrays holding pointers (PKCS#11 3.0 §4.9,
/// §4.10): their copied bytes would mean nothing.
const NESTED_TEMPLATES: [CK_ATTRIBUTE_TYPE; 3] =
    [CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE];

/// More attributes or bytes than any real template has: refuse instead of allocating blindly.
const MAX_ATTRIBUTES: usize = 4096;
const MAX_VALUE_LEN: usize = 64 << 20;

/// Copy the `CK_ATTRIBUTE` headers of a template (type, pointer, length).
///
/// # Safety
/// `p` must be NULL or point to `count` readable `CK_ATTRIBUTE`s.
unsafe fn headers(p: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Vec<CK_ATTRIBUTE>> {
    let n = to_usize(count)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(Error::args("NULL template with a non-zero count"));
    }
    if n > MAX_ATTRIBUTES {
        return Err(Error::args(format!("template of {n} attributes")));
    }
    // SAFETY: `p` is non-NULL and points to `n` attributes per the contract; each is copied with
    // read_unaligned.
    Ok((0..n)
        .map(|i| unsafe { p.add(i).read_unaligned() })
        .collect())
}

/// Copy a template (for `C_CreateObject`, `C_FindObjectsInit`, key generation, ...).
///
/// Attribute values are copied as bytes. Attributes whose values hold pointers (the nested
/// templates `CKA_WRAP_TEMPLATE`, `CKA_UNWRAP_TEMPLATE`, `CKA_DERIVE_TEMPLATE`) are refused with
/// `CKR_ATTRIBUTE_TYPE_INVALID`; every other attribute, vendor ones with the
/// `CKF_ARRAY_ATTRIBUTE` bit included, is plain bytes.
///
/// # Safety
/// `p` must be NULL or point to `count` readable `CK_ATTRIBUTE`s whose `pValue`s are NULL or
/// readable for `ulValueLen` bytes.
pub unsafe fn read_template(p: *const CK_ATTRIBUTE, count: CK_ULONG) -> Result<Template> {
    // SAFETY: forwarded caller contract.
    let hs = unsafe { headers(p, count) }?;
    let mut t = Template::new();
    let mut total = 0usize;
    for h in hs {
        if NESTED_TEMPLATES.contains(&h.type_) {
            return Err(Error::with(
                CKR_ATTRIBUTE_TYPE_INVALID,
                format!(
                    "{} (nested templates are not supported)",
                    token_api::attr::attr_name(h.type_)
                ),
            ));
        }
        let len = to_usize(h.ulValueLen)?;
        total = total.saturating_add(len);
        if len > MAX_VALUE_LEN || total > MAX_VALUE_LEN {
            return Err(Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "attribute value too long",
            ));
        }
        // SAFETY: the caller guarantees pValue is NULL or readable for ulValueLen bytes.
        let v = unsafe { in_bytes(h.pValue as *const u8, h.ulValueLen) }.map_err(|_| {
            Error::with(
                CKR_ATTRIBUTE_VALUE_INVALID,
                "NULL attribute value with a length",
            )
        })?;
        t.0.push(Attribute::new(h.type_, v.to_vec()));
    }
    Ok(t)
}

/// The attribute types asked for by `C_GetAttributeValue`.
///
/// # Safety
/// As [`read_template`] (only the headers are read).
pub unsafe fn read_types(
    p: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<Vec<CK_ATTRIBUTE_TYPE>> {
    // SAFETY: forwarded caller contract.
    Ok(unsafe { headers(p, count) }?
        .iter()
        .map(|h| h.type_)
        .collect())
}

/// Write `C_GetAttributeValue` results into the caller's template (PKCS#11 3.0 §5.7.5):
/// for each attribute, in order,
/// * not revealable: `ulValueLen = CK_UNAVAILABLE_INFORMATION`, `CKR_ATTRIBUTE_SENSITIVE`;
/// * no such attribute: `ulValueLen = CK_UNAVAILABLE_INFORMATION`, `CKR_ATTRIBUTE_TYPE_INVALID`;
/// * `pValue == NULL`: `ulValueLen` = the length;
/// * `ulValueLen` large enough: the value is copied and `ulValueLen` set to its length;
/// * otherwise: `ulValueLen = CK_UNAVAILABLE_INFORMATION`, `CKR_BUFFER_TOO_SMALL`, nothing copied.
///
/// Every attribute is processed; the first error met is returned.
///
/// # Safety
/// `p` must point to `reads.len()` `CK_ATTRIBUTE`s, readable and writable, whose `pValue`s are
/// NULL or writable for `ulValueLen` bytes.
pub unsafe fn write_attributes(p: *mut CK_ATTRIBUTE, reads: &[AttrRead]) -> Result<()> {
    let mut first: Option<CK_RV> = None;
    for (i, r) in reads.iter().enumerate() {
        // SAFETY: i < reads.len() == the count the caller passed; the element is readable.
        let h = unsafe { p.add(i).read_unaligned() };
        let (len, rv) = match r {
            AttrRead::Sensitive => (CK_UNAVAILABLE_INFORMATION, Some(CKR_ATTRIBUTE_SENSITIVE)),
            AttrRead::Invalid => (CK_UNAVAILABLE_INFORMATION, Some(CKR_ATTRIBUTE_TYPE_INVALID)),
            AttrRead::Value(v) if h.pValue.is_null() => (to_ulong(v.len()), None),
            AttrRead::Value(v) if to_usize(h.ulValueLen)? >= v.len() => {
                // SAFETY: pValue is non-NULL and writable for ulValueLen >= v.len() bytes; the
                // source is our own buffer.
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), h.pValue as *mut u8, v.len()) };
                (to_ulong(v.len()), None)
            }
            AttrRead::Value(_) => (CK_UNAVAILABLE_INFORMATION, Some(CKR_BUFFER_TOO_SMALL)),
        };
        // SAFETY: the element is writable; only its ulValueLen field is written.
        unsafe { std::ptr::addr_of_mut!((*p.add(i)).ulValueLen).write_unaligned(len) };
        if first.is_none() {
            first = rv;
        }
    }
    match first {
        None => Ok(()),
        Some(rv) => Err(Error::new(rv)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn attr(ty: CK_ATTRIBUTE_TYPE, buf: &mut [u8], len: CK_ULONG, null: bool) -> CK_ATTRIBUTE {
        CK_ATTRIBUTE {
            type_: ty,
            pValue: if null {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            ulValueLen: len,
        }
    }

    #[test]
    fn get_attribute_value_contract() {
        let mut b0 = [0xEEu8; 8];
        let mut b1 = [0xEEu8; 3]; // too small for 5 bytes
        let mut b2 = [0xEEu8; 8];
        let mut b3 = [0xEEu8; 8];
        let mut t = [
            attr(CKA_LABEL, &mut b0, 8, false),
            attr(CKA_ID, &mut b1, 3, false),
            attr(CKA_VALUE, &mut b2, 8, false),
            attr(CKA_SUBJECT, &mut b3, 0, true),
        ];
        let reads = vec![
            AttrRead::Value(Zeroizing::new(b"abc".to_vec())),
            AttrRead::Value(Zeroizing::new(b"12345".to_vec())),
            AttrRead::Sensitive,
            AttrRead::Value(Zeroizing::new(vec![1; 40])),
        ];
        // SAFETY: `t` holds 4 attributes with buffers of the stated sizes.
        let r = unsafe { write_attributes(t.as_mut_ptr(), &reads) };
        assert_eq!(
            r.unwrap_err().rv(),
            CKR_BUFFER_TOO_SMALL,
            "first error wins"
        );
        assert_eq!(t[0].ulValueLen, 3);
        assert_eq!(&b0[..3], b"abc");
        assert_eq!(b0[3..], [0xEE; 5]);
        assert_eq!(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(b1, [0xEE; 3], "a short buffer is never written");
        assert_eq!(t[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
        assert_eq!(b2, [0xEE; 8]);
        assert_eq!(t[3].ulValueLen, 40, "size query on NULL");
    }

    #[test]
    fn reading_templates_checks_pointers() {
        let mut v = [1u8];
        let t = [CK_ATTRIBUTE {
            type_: CKA_TOKEN,
            pValue: v.as_mut_ptr().cast(),
            ulValueLen: 1,
        }];
        // SAFETY: one valid attribute.
        let got = unsafe { read_template(t.as_ptr(), 1) }.unwrap();
        assert_eq!(got.get_bool(CKA_TOKEN).unwrap(), Some(true));
        let bad = [CK_ATTRIBUTE {
            type_: CKA_LABEL,
            pValue: std::ptr::null_mut(),
            ulValueLen: 4,
        }];
        // SAFETY: NULL value is checked before use.
        let e = unsafe { read_template(bad.as_ptr(), 1) }.unwrap_err();
        assert_eq!(e.rv(), CKR_ATTRIBUTE_VALUE_INVALID);
        // SAFETY: NULL template is checked before use.
        let e = unsafe { read_template(std::ptr::null(), 2) }.unwrap_err();
        assert_eq!(e.rv(), CKR_ARGUMENTS_BAD);
        // SAFETY: (NULL, 0) is the empty template.
        let empty = unsafe { read_template(std::ptr::null(), 0) }.unwrap();
        assert!(empty.is_empty());
    }
}
