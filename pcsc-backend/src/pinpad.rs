//! PIN-pad readers: PC/SC Part 10 v2.02.09 ("IFDs with Secure PIN Entry Capabilities").
//!
//! The reader lists its features in answer to `CM_IOCTL_GET_FEATURE_REQUEST` (`SCardControl`
//! with `SCARD_CTL_CODE(3400)`, Part 10 §2.2) as TLVs: a one-byte feature tag, length 4, and
//! the control code (big-endian) to use for that feature. Klyuch uses
//! `FEATURE_VERIFY_PIN_DIRECT` (0x06) and `FEATURE_MODIFY_PIN_DIRECT` (0x07) (Part 10 §2.3,
//! Table 2-1) with the `PIN_VERIFY_STRUCTURE` / `PIN_MODIFY_STRUCTURE` of §2.5.2 / §2.5.3.
//! Multi-byte fields of those structures are little-endian (Part 10 §2.5, "as in CCID").

use crate::apdu::{CardError, CardResult, Response, Sw};
use crate::transport::Channel;

/// `FEATURE_VERIFY_PIN_DIRECT` (Part 10 §2.3 Table 2-1).
pub const FEATURE_VERIFY_PIN_DIRECT: u8 = 0x06;
/// `FEATURE_MODIFY_PIN_DIRECT` (Part 10 §2.3 Table 2-1).
pub const FEATURE_MODIFY_PIN_DIRECT: u8 = 0x07;
/// The function number of `CM_IOCTL_GET_FEATURE_REQUEST` (Part 10 §2.2).
pub const GET_FEATURE_REQUEST_FUNCTION: u32 = 3400;

/// `SCARD_CTL_CODE(code)` as pcsc-lite defines it (`reader.h`: `0x42000000 + code`).
pub fn ctl_code(code: u32) -> u32 {
    0x4200_0000 + code
}

/// The secure PIN entry features a reader offers (control codes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinPad {
    pub verify: Option<u32>,
    pub modify: Option<u32>,
}

impl PinPad {
    pub fn has_verify(&self) -> bool {
        self.verify.is_some()
    }

    /// Parse the answer to `CM_IOCTL_GET_FEATURE_REQUEST` (Part 10 §2.2: a list of
    /// `tag(1) len(1)=4 value(4, big-endian)`).
    pub fn parse_features(data: &[u8]) -> PinPad {
        let mut p = PinPad::default();
        let mut rest = data;
        while rest.len() >= 2 {
            let (tag, len) = (rest[0], usize::from(rest[1]));
            if rest.len() < 2 + len {
                break;
            }
            if len == 4 {
                let code = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
                match tag {
                    FEATURE_VERIFY_PIN_DIRECT => p.verify = Some(code),
                    FEATURE_MODIFY_PIN_DIRECT => p.modify = Some(code),
                    _ => {}
                }
            }
            rest = &rest[2 + len..];
        }
        p
    }

    /// Ask the reader (no APDU: an `SCardControl`). Readers without the ioctl have no pad.
    pub fn query(ch: &mut Channel<'_>) -> PinPad {
        match ch.control(ctl_code(GET_FEATURE_REQUEST_FUNCTION), &[]) {
            Ok(d) => PinPad::parse_features(&d),
            Err(_) => PinPad::default(),
        }
    }
}

/// How a card wants its PIN formatted, for the reader to do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinFormat {
    /// The VERIFY APDU header (CLA INS P1 P2).
    pub verify_header: [u8; 4],
    /// The CHANGE REFERENCE DATA header.
    pub change_header: [u8; 4],
    /// Bytes of one PIN block (1..=15: `bmPINBlockString` has four bits for it).
    pub block_len: u8,
    /// Padding byte of the block.
    pub pad: u8,
    pub min_len: u8,
    pub max_len: u8,
}

/// `bmFormatString` (Part 10 §2.5.2): bit 7 = units are bytes, bits 6-3 = PIN position in the
/// APDU data, bit 2 = left justified (0), bits 1-0 = `10` ASCII.
fn format_string(position: u8) -> u8 {
    0x80 | ((position & 0x0F) << 3) | 0x02
}

/// Build a `PIN_VERIFY_STRUCTURE` (Part 10 §2.5.2) for one PIN block of `f`.
pub fn verify_structure(f: &PinFormat) -> CardResult<Vec<u8>> {
    if f.block_len == 0 || f.block_len > 15 {
        return Err(CardError::Transport(
            "the card's PIN block does not fit a PIN-pad structure".into(),
        ));
    }
    let mut apdu = f.verify_header.to_vec();
    apdu.push(f.block_len);
    apdu.extend(std::iter::repeat_n(f.pad, usize::from(f.block_len)));
    let mut s = vec![
        0x00,             // bTimerOut: reader default
        0x00,             // bTimerOut2
        format_string(0), // bmFormatString: ASCII at offset 0, left justified
        f.block_len,      // bmPINBlockString: no length field, block of block_len bytes
        0x00,             // bmPINLengthFormat: no PIN length in the APDU
        f.max_len,        // wPINMaxExtraDigit (LE): max ...
        f.min_len,        //   ... then min (XXYY = min XX, max YY)
        0x02,             // bEntryValidationCondition: validation key pressed
        0x01,             // bNumberMessage: one message
        0x09,             // wLangId = 0x0409 (English, LE)
        0x04,             //
        0x00,             // bMsgIndex
        0x00,             // bTeoPrologue[3] (T=1 only, 0 for T=0 / pcsc-lite)
        0x00,
        0x00,
    ];
    s.extend_from_slice(&(apdu.len() as u32).to_le_bytes()); // ulDataLength
    s.extend_from_slice(&apdu);
    Ok(s)
}

/// Build a `PIN_MODIFY_STRUCTURE` (Part 10 §2.5.3): old PIN block then new PIN block.
pub fn modify_structure(f: &PinFormat) -> CardResult<Vec<u8>> {
    if f.block_len == 0 || f.block_len > 15 {
        return Err(CardError::Transport(
            "the card's PIN block does not fit a PIN-pad structure".into(),
        ));
    }
    let mut apdu = f.change_header.to_vec();
    apdu.push(2 * f.block_len);
    apdu.extend(std::iter::repeat_n(f.pad, 2 * usize::from(f.block_len)));
    let mut s = vec![
        0x00,             // bTimerOut
        0x00,             // bTimerOut2
        format_string(0), // bmFormatString
        f.block_len,      // bmPINBlockString
        0x00,             // bmPINLengthFormat
        0x00,             // bInsertionOffsetOld (bytes)
        f.block_len,      // bInsertionOffsetNew
        f.max_len,        // wPINMaxExtraDigit (LE): max, min
        f.min_len,
        0x03, // bConfirmPIN: confirm new PIN (bit 0) + enter current PIN (bit 1)
        0x02, // bEntryValidationCondition: validation key
        0x03, // bNumberMessage
        0x09, // wLangId 0x0409
        0x04,
        0x00, // bMsgIndex1
        0x01, // bMsgIndex2
        0x02, // bMsgIndex3
        0x00, // bTeoPrologue[3]
        0x00,
        0x00,
    ];
    s.extend_from_slice(&(apdu.len() as u32).to_le_bytes());
    s.extend_from_slice(&apdu);
    Ok(s)
}

/// Send a structure to the reader and interpret its answer: the card's SW, or the reader's own
/// `6400` (timeout) / `6401` (cancelled by the user) / `6B80` (bad structure) (Part 10 §2.5.2
/// "abData", CCID §6.1.11 reported by pcsc-lite's ccid driver).
pub fn run(ch: &mut Channel<'_>, code: u32, structure: &[u8]) -> CardResult<Response> {
    log::trace!(
        "PIN pad: control {code:#X} ({} bytes, no PIN)",
        structure.len()
    );
    let raw = ch.control(code, structure)?;
    let r = Response::from_bytes(&raw)?;
    match r.sw {
        Sw::Other(0x64, 0x00) | Sw::Other(0x64, 0x01) => {
            Err(CardError::Ck(token_api::Error::with(
                token_api::ck::CKR_FUNCTION_CANCELED,
                "PIN entry cancelled or timed out on the PIN pad",
            )))
        }
        _ => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The feature list of a Cherry ST-2000 class reader as pcsc-lite's ccid driver reports it
    /// (tags 06, 07, 0A, 12; codes 0x42330006.. as ccid's `ifdhandler.c` numbers them).
    const RECORDED_FEATURES: &[u8] = &[
        0x06, 0x04, 0x42, 0x33, 0x00, 0x06, 0x07, 0x04, 0x42, 0x33, 0x00, 0x07, 0x0A, 0x04, 0x42,
        0x33, 0x00, 0x0A, 0x12, 0x04, 0x42, 0x33, 0x00, 0x12,
    ];

    #[test]
    fn features_parse() {
        let p = PinPad::parse_features(RECORDED_FEATURES);
        assert_eq!(p.verify, Some(0x4233_0006));
        assert_eq!(p.modify, Some(0x4233_0007));
        let none = PinPad::parse_features(&[0x0A, 0x04, 0x42, 0x33, 0x00, 0x0A]);
        assert!(!none.has_verify());
        assert_eq!(
            PinPad::parse_features(&[0x06, 0x04, 0x42]),
            PinPad::default()
        );
        assert_eq!(ctl_code(3400), 0x4200_0D48);
    }

    fn piv() -> PinFormat {
        PinFormat {
            verify_header: [0x00, 0x20, 0x00, 0x80],
            change_header: [0x00, 0x24, 0x00, 0x80],
            block_len: 8,
            pad: 0xFF,
            min_len: 6,
            max_len: 8,
        }
    }

    #[test]
    fn verify_structure_for_piv() {
        let s = verify_structure(&piv()).unwrap();
        let expected: Vec<u8> = [
            &[
                0x00, 0x00, 0x82, 0x08, 0x00, 0x08, 0x06, 0x02, 0x01, 0x09, 0x04, 0x00,
            ][..],
            &[0x00, 0x00, 0x00],
            &[13, 0, 0, 0],
            &[0x00, 0x20, 0x00, 0x80, 0x08],
            &[0xFF; 8],
        ]
        .concat();
        assert_eq!(s, expected);
    }

    #[test]
    fn modify_structure_for_piv() {
        let s = modify_structure(&piv()).unwrap();
        assert_eq!(s.len(), 24 + 5 + 16);
        assert_eq!(&s[..7], &[0x00, 0x00, 0x82, 0x08, 0x00, 0x00, 0x08]);
        assert_eq!(s[9], 0x03);
        assert_eq!(&s[20..24], &[21, 0, 0, 0]);
        assert_eq!(&s[24..29], &[0x00, 0x24, 0x00, 0x80, 0x10]);
    }

    #[test]
    fn blocks_too_long_for_a_pad_are_refused() {
        let mut f = piv();
        f.block_len = 16;
        assert!(verify_structure(&f).is_err());
    }
}
