//! BER-TLV of the card protocols (ISO/IEC 7816-4 §6.3 with the X.690 §8.1 tag and length rules):
//! PIV data objects and GENERAL AUTHENTICATE templates, the GOST token's key directory records and
//! templates. Only for what travels in APDUs: certificates, public keys and every other ASN.1
//! structure go through `klyuch-crypto` and the `der` crate (`host.rs`).

/// One TLV element: its tag (the tag bytes as a big-endian number, e.g. `0x5FC105`), the value,
/// and the whole element's bytes (tag + length + value).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tlv<'a> {
    pub tag: u32,
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

/// Read one element from the front of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let mut i = 0usize;
    let first = *input.first()?;
    let mut tag = u32::from(first);
    i += 1;
    // X.690 §8.1.2.4: low five bits all one = the tag number continues in following bytes,
    // each with bit 8 set except the last.
    if first & 0x1F == 0x1F {
        loop {
            let b = *input.get(i)?;
            i += 1;
            if tag > 0x00FF_FFFF {
                return None;
            }
            tag = (tag << 8) | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let l0 = *input.get(i)?;
    i += 1;
    // X.690 §8.1.3: short form below 0x80, else 0x80 | number of length bytes.
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7F);
        if n == 0 || n > 3 {
            return None;
        }
        let mut l = 0usize;
        for _ in 0..n {
            l = (l << 8) | usize::from(*input.get(i)?);
            i += 1;
        }
        l
    };
    let end = i.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((
        Tlv {
            tag,
            value: &input[i..end],
            raw: &input[..end],
        },
        &input[end..],
    ))
}

/// All elements of a concatenation (stops at the first malformed one or at `00`/`FF` padding).
pub fn parse_all(mut input: &[u8]) -> Vec<Tlv<'_>> {
    let mut out = Vec::new();
    while let Some(&b) = input.first() {
        if b == 0x00 || b == 0xFF {
            break;
        }
        match read(input) {
            Some((t, rest)) => {
                out.push(t);
                input = rest;
            }
            None => break,
        }
    }
    out
}

/// The first element with `tag` among the elements of `input` (one level, no recursion).
pub fn find(input: &[u8], tag: u32) -> Option<&[u8]> {
    parse_all(input)
        .into_iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value)
}

/// Encode a length (X.690 §8.1.3 definite form).
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
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

/// Encode one element. `tag` is written with as many bytes as it needs.
pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    let tb = tag.to_be_bytes();
    let skip = tb.iter().position(|&b| b != 0).unwrap_or(3);
    out.extend_from_slice(&tb[skip..]);
    encode_len(value.len(), &mut out);
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_byte_tags_and_long_lengths() {
        let v = vec![0xAB; 300];
        let e = encode(0x5FC105, &v);
        assert_eq!(&e[..6], &[0x5F, 0xC1, 0x05, 0x82, 0x01, 0x2C]);
        let (t, rest) = read(&e).unwrap();
        assert_eq!(t.tag, 0x5FC105);
        assert_eq!(t.value, &v[..]);
        assert!(rest.is_empty());
        let two = [encode(0x70, b"ab"), encode(0x71, &[1])].concat();
        assert_eq!(find(&two, 0x71), Some(&[1u8][..]));
        assert_eq!(parse_all(&two).len(), 2);
        // truncated
        assert!(read(&[0x70, 0x05, 1, 2]).is_none());
        assert!(read(&[0x70, 0x84, 1, 1, 1, 1]).is_none());
    }
}
