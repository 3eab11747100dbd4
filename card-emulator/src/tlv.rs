//! BER-TLV as used on smart cards (ISO/IEC 7816-4 §5.2 "BER-TLV data objects", with the
//! tag and length rules of ITU-T X.690 §8.1.2-8.1.3) and the small DER writer the emulator
//! needs for certificates (X.690 §10).

/// One parsed data object: the tag as its raw bytes packed big-endian into a `u32`
/// (e.g. `0x5FC105`, `0x7F49`, `0x7C`), and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub value: &'a [u8],
}

/// Why a TLV could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvError;

/// Parses one data object from the start of `data`; returns it and the rest.
pub fn parse_one(data: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let mut i = 0;
    let first = *data.first().ok_or(TlvError)?;
    let mut tag = u32::from(first);
    i += 1;
    // X.690 §8.1.2.4: low five bits all ones = the tag number continues in further bytes,
    // each with b8 set except the last.
    if first & 0x1F == 0x1F {
        loop {
            let b = *data.get(i).ok_or(TlvError)?;
            if tag > 0x00FF_FFFF {
                return Err(TlvError);
            }
            tag = (tag << 8) | u32::from(b);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    // X.690 §8.1.3: short form below 0x80, long form 0x81..0x84 = that many length bytes.
    let l0 = *data.get(i).ok_or(TlvError)?;
    i += 1;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7F);
        if n == 0 || n > 3 {
            return Err(TlvError);
        }
        let mut len = 0usize;
        for _ in 0..n {
            len = (len << 8) | usize::from(*data.get(i).ok_or(TlvError)?);
            i += 1;
        }
        len
    };
    let end = i.checked_add(len).ok_or(TlvError)?;
    let value = data.get(i..end).ok_or(TlvError)?;
    Ok((Tlv { tag, value }, &data[end..]))
}

/// Parses a concatenation of data objects (the whole of `data` must be consumed).
pub fn parse_all(mut data: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (t, rest) = parse_one(data)?;
        out.push(t);
        data = rest;
    }
    Ok(out)
}

/// The first object with `tag` among the concatenated objects in `data`.
pub fn find(data: &[u8], tag: u32) -> Option<&[u8]> {
    parse_all(data)
        .ok()?
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value)
}

/// Appends a BER/DER length (definite form, X.690 §8.1.3.4-5).
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else if len <= 0xFFFF {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    } else {
        out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    }
}

/// Appends the tag bytes of a packed tag (no leading zero bytes).
fn push_tag(out: &mut Vec<u8>, tag: u32) {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// One encoded data object.
pub fn tlv(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    push_tag(&mut out, tag);
    push_len(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// One data object whose value is the concatenation of `parts`.
pub fn tlv_cat(tag: u32, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// DER writers (X.690 §8, §10) for the certificate builder.
pub mod der {
    use super::tlv;

    pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }
    pub fn set(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x31, &parts.concat())
    }
    /// INTEGER from unsigned big-endian magnitude bytes (minimal, non-negative).
    pub fn uint(bytes: &[u8]) -> Vec<u8> {
        let mut b: &[u8] = bytes;
        while b.len() > 1 && b[0] == 0 {
            b = &b[1..];
        }
        if b.is_empty() {
            return tlv(0x02, &[0]);
        }
        if b[0] & 0x80 != 0 {
            let mut v = vec![0];
            v.extend_from_slice(b);
            tlv(0x02, &v)
        } else {
            tlv(0x02, b)
        }
    }
    pub fn null() -> Vec<u8> {
        vec![0x05, 0x00]
    }
    pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(bytes);
        tlv(0x03, &v)
    }
    pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
        tlv(0x04, bytes)
    }
    pub fn utf8(s: &str) -> Vec<u8> {
        tlv(0x0C, s.as_bytes())
    }
    pub fn utc_time(s: &str) -> Vec<u8> {
        tlv(0x17, s.as_bytes())
    }
    pub fn explicit(n: u8, inner: &[u8]) -> Vec<u8> {
        tlv(0xA0 | u32::from(n), inner)
    }
    /// OBJECT IDENTIFIER from its dotted form (X.690 §8.19).
    pub fn oid(dotted: &str) -> Vec<u8> {
        tlv(0x06, &oid_contents(dotted))
    }
    /// The contents octets of an OBJECT IDENTIFIER (no tag, no length).
    pub fn oid_contents(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted
            .split('.')
            .map(|a| a.parse().expect("OID arc"))
            .collect();
        let mut out = Vec::new();
        let mut push = |mut v: u64| {
            let mut tmp = vec![(v & 0x7F) as u8];
            v >>= 7;
            while v > 0 {
                tmp.push(0x80 | (v & 0x7F) as u8);
                v >>= 7;
            }
            tmp.reverse();
            out.extend_from_slice(&tmp);
        };
        push(arcs[0] * 40 + arcs[1]);
        for a in &arcs[2..] {
            push(*a);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_multibyte_tags_and_long_lengths() {
        let big = vec![0xAB; 300];
        let enc = [tlv(0x5FC105, &big), tlv(0x7F49, &[1, 2]), tlv(0x53, &[])].concat();
        let all = parse_all(&enc).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].tag, 0x5FC105);
        assert_eq!(all[0].value.len(), 300);
        assert_eq!(all[1].tag, 0x7F49);
        assert_eq!(all[2].value, &[] as &[u8]);
        assert_eq!(&enc[..5], &[0x5F, 0xC1, 0x05, 0x82, 0x01]);
    }

    #[test]
    fn truncated_is_an_error() {
        assert!(parse_one(&[0x53, 0x05, 1, 2]).is_err());
        assert!(parse_one(&[0x5F]).is_err());
    }

    #[test]
    fn oid_encoding() {
        // id-tc26-gost3410-12-256 = 06 08 2A 85 03 07 01 01 01 01 (gost-pkcs11.md §2.3)
        assert_eq!(
            der::oid("1.2.643.7.1.1.1.1"),
            [0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x01]
        );
        assert_eq!(
            der::oid("1.2.840.10045.3.1.7"),
            [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
        );
    }
}
