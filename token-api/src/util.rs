//! Small helpers for the fixed-size, blank-padded strings of `CK_TOKEN_INFO` and friends.

/// Copy `s` into a blank-padded field of `N` bytes, cutting at a UTF-8 character boundary.
pub fn blank_padded<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

/// The text of a blank-padded field, trailing blanks and NULs removed.
pub fn unpad(field: &[u8]) -> String {
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_round_trip_and_utf8_cut() {
        let f: [u8; 8] = blank_padded("abc");
        assert_eq!(&f, b"abc     ");
        assert_eq!(unpad(&f), "abc");
        // "ключ" is 8 bytes; cutting to 7 must not split a character.
        let f: [u8; 7] = blank_padded("ключ");
        assert_eq!(unpad(&f), "клю");
    }
}
