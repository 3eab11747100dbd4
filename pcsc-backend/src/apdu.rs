//! APDUs: commands, responses, status words, and the one table that maps card errors to `CKR_*`.
//!
//! Sources: ISO/IEC 7816-4:2020 §5.1 (command-response pairs: CLA INS P1 P2 [Lc data] [Le]),
//! §5.6 / Table 6 ("SW1-SW2 interpretation"), §5.1.1 (command chaining, CLA bit b5 = `0x10`).
//! Everything that looks at a status word goes through [`Sw`]; everything that turns a card error
//! into a PKCS#11 return value goes through [`CardError::rv`].

use std::fmt;
use token_api::Error;
use token_api::ck::*;
use zeroize::Zeroizing;

/// A status word, parsed once (ISO 7816-4 §5.6, Table 6 and the tables it refers to).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sw {
    /// `9000`: normal processing.
    Ok,
    /// `61xx`: xx more bytes available with GET RESPONSE (`00` = 256 or more).
    BytesRemaining(u8),
    /// `6300`: verification failed, no counter given.
    VerifyFailedNoCount,
    /// `63Cx`: verification failed, x tries left (ISO 7816-4 Table 8, "counter").
    VerifyFailed { tries_left: u8 },
    /// `6581`: memory failure.
    MemoryFailure,
    /// `6700`: wrong length.
    WrongLength,
    /// `6982`: security status not satisfied.
    SecurityStatusNotSatisfied,
    /// `6983`: authentication method blocked.
    AuthMethodBlocked,
    /// `6984`: reference data not usable.
    ReferenceDataNotUsable,
    /// `6985`: conditions of use not satisfied.
    ConditionsNotSatisfied,
    /// `6986`: command not allowed (no current EF).
    CommandNotAllowed,
    /// `6A80`: incorrect parameters in the command data field.
    IncorrectData,
    /// `6A81`: function not supported.
    FunctionNotSupported,
    /// `6A82`: file or application not found.
    NotFound,
    /// `6A84`: not enough memory space in the file.
    NotEnoughMemory,
    /// `6A86`: incorrect parameters P1-P2.
    IncorrectP1P2,
    /// `6A88`: referenced data or reference data not found (a key).
    ReferencedDataNotFound,
    /// `6B00`: wrong parameters P1-P2 (offset outside the EF).
    WrongP1P2,
    /// `6Cxx`: wrong Le field; xx = the exact length.
    WrongLe(u8),
    /// `6D00`: instruction code not supported or invalid.
    InsNotSupported,
    /// `6E00`: class not supported.
    ClaNotSupported,
    /// Anything else.
    Other(u8, u8),
}

impl Sw {
    /// Parse SW1 SW2.
    pub fn from_bytes(sw1: u8, sw2: u8) -> Sw {
        match (sw1, sw2) {
            (0x90, 0x00) => Sw::Ok,
            (0x61, n) => Sw::BytesRemaining(n),
            (0x63, 0x00) => Sw::VerifyFailedNoCount,
            (0x63, n) if n & 0xF0 == 0xC0 => Sw::VerifyFailed {
                tries_left: n & 0x0F,
            },
            (0x65, 0x81) => Sw::MemoryFailure,
            (0x67, 0x00) => Sw::WrongLength,
            (0x69, 0x82) => Sw::SecurityStatusNotSatisfied,
            (0x69, 0x83) => Sw::AuthMethodBlocked,
            (0x69, 0x84) => Sw::ReferenceDataNotUsable,
            (0x69, 0x85) => Sw::ConditionsNotSatisfied,
            (0x69, 0x86) => Sw::CommandNotAllowed,
            (0x6A, 0x80) => Sw::IncorrectData,
            (0x6A, 0x81) => Sw::FunctionNotSupported,
            (0x6A, 0x82) => Sw::NotFound,
            (0x6A, 0x84) => Sw::NotEnoughMemory,
            (0x6A, 0x86) => Sw::IncorrectP1P2,
            (0x6A, 0x88) => Sw::ReferencedDataNotFound,
            (0x6B, 0x00) => Sw::WrongP1P2,
            (0x6C, n) => Sw::WrongLe(n),
            (0x6D, 0x00) => Sw::InsNotSupported,
            (0x6E, 0x00) => Sw::ClaNotSupported,
            (a, b) => Sw::Other(a, b),
        }
    }

    /// SW1 SW2 back.
    pub fn to_bytes(self) -> [u8; 2] {
        match self {
            Sw::Ok => [0x90, 0x00],
            Sw::BytesRemaining(n) => [0x61, n],
            Sw::VerifyFailedNoCount => [0x63, 0x00],
            Sw::VerifyFailed { tries_left } => [0x63, 0xC0 | (tries_left & 0x0F)],
            Sw::MemoryFailure => [0x65, 0x81],
            Sw::WrongLength => [0x67, 0x00],
            Sw::SecurityStatusNotSatisfied => [0x69, 0x82],
            Sw::AuthMethodBlocked => [0x69, 0x83],
            Sw::ReferenceDataNotUsable => [0x69, 0x84],
            Sw::ConditionsNotSatisfied => [0x69, 0x85],
            Sw::CommandNotAllowed => [0x69, 0x86],
            Sw::IncorrectData => [0x6A, 0x80],
            Sw::FunctionNotSupported => [0x6A, 0x81],
            Sw::NotFound => [0x6A, 0x82],
            Sw::NotEnoughMemory => [0x6A, 0x84],
            Sw::IncorrectP1P2 => [0x6A, 0x86],
            Sw::ReferencedDataNotFound => [0x6A, 0x88],
            Sw::WrongP1P2 => [0x6B, 0x00],
            Sw::WrongLe(n) => [0x6C, n],
            Sw::InsNotSupported => [0x6D, 0x00],
            Sw::ClaNotSupported => [0x6E, 0x00],
            Sw::Other(a, b) => [a, b],
        }
    }

    pub fn is_ok(self) -> bool {
        self == Sw::Ok
    }
}

impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.to_bytes();
        write!(f, "{a:02X}{b:02X}")
    }
}

/// Why a card operation failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CardError {
    /// The card answered with a status word that the caller did not expect.
    Sw(Sw),
    /// The card (or its reader) is gone.
    Removed,
    /// Another program reset the card: the application is deselected and PINs are dropped.
    Reset,
    /// The PC/SC daemon or the reader failed in another way.
    Transport(String),
    /// The card's answer did not parse.
    Malformed(&'static str),
    /// A PKCS#11 error decided above the card layer (bad input, unsupported, ...).
    Ck(Error),
}

pub type CardResult<T> = Result<T, CardError>;

impl CardError {
    /// THE table: a card error to the `CKR_*` a PKCS#11 caller sees.
    ///
    /// Status words follow the ISO 7816-4 meaning (cf. OpenSC `iso7816.c` + `misc.c`, read for
    /// comparison): a failed verification is `CKR_PIN_INCORRECT`, a blocked PIN `CKR_PIN_LOCKED`,
    /// "security status not satisfied" means the login is gone (`CKR_USER_NOT_LOGGED_IN`, never
    /// a wrong result), a vanished card `CKR_DEVICE_REMOVED`.
    pub fn rv(&self) -> CK_RV {
        match self {
            CardError::Sw(sw) => match sw {
                Sw::Ok => CKR_OK,
                Sw::VerifyFailed { .. } | Sw::VerifyFailedNoCount => CKR_PIN_INCORRECT,
                Sw::AuthMethodBlocked | Sw::ReferenceDataNotUsable => CKR_PIN_LOCKED,
                Sw::SecurityStatusNotSatisfied => CKR_USER_NOT_LOGGED_IN,
                Sw::WrongLength => CKR_DATA_LEN_RANGE,
                Sw::IncorrectData => CKR_DATA_INVALID,
                Sw::NotEnoughMemory => CKR_DEVICE_MEMORY,
                Sw::ReferencedDataNotFound => CKR_KEY_HANDLE_INVALID,
                Sw::ConditionsNotSatisfied | Sw::CommandNotAllowed => CKR_FUNCTION_FAILED,
                Sw::FunctionNotSupported | Sw::InsNotSupported | Sw::ClaNotSupported => {
                    CKR_FUNCTION_NOT_SUPPORTED
                }
                _ => CKR_DEVICE_ERROR,
            },
            CardError::Removed => CKR_DEVICE_REMOVED,
            CardError::Reset => CKR_USER_NOT_LOGGED_IN,
            CardError::Transport(_) | CardError::Malformed(_) => CKR_DEVICE_ERROR,
            CardError::Ck(e) => e.rv(),
        }
    }
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardError::Sw(sw) => write!(f, "card answered {sw}"),
            CardError::Removed => f.write_str("card removed"),
            CardError::Reset => f.write_str("card reset by another program"),
            CardError::Transport(s) => write!(f, "PC/SC: {s}"),
            CardError::Malformed(s) => write!(f, "malformed card answer: {s}"),
            CardError::Ck(e) => write!(f, "{e}"),
        }
    }
}

impl From<CardError> for Error {
    fn from(e: CardError) -> Error {
        match e {
            CardError::Ck(e) => e,
            other => Error::with(other.rv(), other.to_string()),
        }
    }
}

impl From<Error> for CardError {
    fn from(e: Error) -> CardError {
        CardError::Ck(e)
    }
}

/// A command APDU. `sensitive` marks data that must never be logged (PINs, PUKs, keys,
/// authentication cryptograms); `secret_response` marks answers that are secrets (a decrypted
/// block, an ECDH shared secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Zeroizing<Vec<u8>>,
    /// Expected response length: `None` = no Le field; `Some(256)` is encoded as `00`.
    pub le: Option<u16>,
    pub sensitive: bool,
    pub secret_response: bool,
}

impl Command {
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Command {
        Command {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            le: None,
            sensitive: false,
            secret_response: false,
        }
    }
    pub fn data(mut self, data: impl Into<Vec<u8>>) -> Command {
        self.data = Zeroizing::new(data.into());
        self
    }
    pub fn le(mut self, le: u16) -> Command {
        self.le = Some(le);
        self
    }
    /// Mark the data as secret (masked in every trace).
    pub fn sensitive(mut self) -> Command {
        self.sensitive = true;
        self
    }
    /// Mark the answer as secret (masked in every trace).
    pub fn secret_response(mut self) -> Command {
        self.secret_response = true;
        self
    }

    /// Short APDU encoding (ISO 7816-4 §5.1, cases 1-4). Data longer than 255 bytes must be
    /// chained by the caller ([`Command::chain`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(6 + self.data.len()));
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            debug_assert!(self.data.len() <= 255);
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(if le >= 256 { 0 } else { le as u8 });
        }
        out
    }

    /// Split into short APDUs with command chaining (ISO 7816-4 §5.1.1: CLA bit b5 set on all
    /// but the last command) when the data exceeds 255 bytes.
    pub fn chain(&self) -> Vec<Command> {
        if self.data.len() <= 255 {
            return vec![self.clone()];
        }
        let chunks: Vec<&[u8]> = self.data.chunks(255).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let last = i + 1 == n;
                Command {
                    cla: if last { self.cla } else { self.cla | 0x10 },
                    ins: self.ins,
                    p1: self.p1,
                    p2: self.p2,
                    data: Zeroizing::new(c.to_vec()),
                    le: if last { self.le } else { None },
                    sensitive: self.sensitive,
                    secret_response: self.secret_response,
                }
            })
            .collect()
    }

    /// The trace line of this command: header and Lc/Le in clear, data masked when sensitive.
    pub fn trace(&self) -> String {
        let mut s = format!(
            "{:02X} {:02X} {:02X} {:02X}",
            self.cla, self.ins, self.p1, self.p2
        );
        if !self.data.is_empty() {
            s.push_str(&format!(" {:02X} ", self.data.len()));
            if self.sensitive {
                s.push_str(&format!("<{} bytes masked>", self.data.len()));
            } else {
                s.push_str(&hex_upper(&self.data));
            }
        }
        if let Some(le) = self.le {
            s.push_str(&format!(" {:02X}", if le >= 256 { 0 } else { le }));
        }
        s
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({})", self.trace())
    }
}

/// A response APDU: data (wiped on drop) and the status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Zeroizing<Vec<u8>>,
    pub sw: Sw,
}

impl Response {
    /// Split raw response bytes (data || SW1 SW2).
    pub fn from_bytes(raw: &[u8]) -> Result<Response, CardError> {
        if raw.len() < 2 {
            return Err(CardError::Malformed("response shorter than a status word"));
        }
        let (data, sw) = raw.split_at(raw.len() - 2);
        Ok(Response {
            data: Zeroizing::new(data.to_vec()),
            sw: Sw::from_bytes(sw[0], sw[1]),
        })
    }

    /// The data if the status is `9000`, else the status as an error.
    pub fn ok(self) -> CardResult<Zeroizing<Vec<u8>>> {
        if self.sw.is_ok() {
            Ok(self.data)
        } else {
            Err(CardError::Sw(self.sw))
        }
    }

    /// The trace line: data (or its length when secret) and the status word.
    pub fn trace(&self, secret: bool) -> String {
        if self.data.is_empty() {
            format!("{}", self.sw)
        } else if secret {
            format!("<{} bytes masked> {}", self.data.len(), self.sw)
        } else {
            format!("{} {}", hex_upper(&self.data), self.sw)
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} bytes, {})", self.data.len(), self.sw)
    }
}

/// Upper-case hex without separators.
pub fn hex_upper(b: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02X}");
    }
    s
}

/// Parse hex (whitespace ignored).
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_word_round_trips() {
        for sw1 in 0..=255u8 {
            for sw2 in 0..=255u8 {
                let sw = Sw::from_bytes(sw1, sw2);
                assert_eq!(sw.to_bytes(), [sw1, sw2], "{sw:?}");
            }
        }
        assert_eq!(
            Sw::from_bytes(0x63, 0xC2),
            Sw::VerifyFailed { tries_left: 2 }
        );
        assert_eq!(Sw::from_bytes(0x61, 0x10), Sw::BytesRemaining(0x10));
        assert_eq!(Sw::from_bytes(0x6C, 0x08), Sw::WrongLe(8));
        assert_eq!(Sw::from_bytes(0x90, 0x00), Sw::Ok);
    }

    #[test]
    fn the_ckr_table() {
        let rv = |a, b| CardError::Sw(Sw::from_bytes(a, b)).rv();
        assert_eq!(rv(0x63, 0xC3), CKR_PIN_INCORRECT);
        assert_eq!(rv(0x63, 0xC0), CKR_PIN_INCORRECT);
        assert_eq!(rv(0x63, 0x00), CKR_PIN_INCORRECT);
        assert_eq!(rv(0x69, 0x83), CKR_PIN_LOCKED);
        assert_eq!(rv(0x69, 0x84), CKR_PIN_LOCKED);
        assert_eq!(rv(0x69, 0x82), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(rv(0x67, 0x00), CKR_DATA_LEN_RANGE);
        assert_eq!(rv(0x6A, 0x80), CKR_DATA_INVALID);
        assert_eq!(rv(0x6A, 0x84), CKR_DEVICE_MEMORY);
        assert_eq!(rv(0x6A, 0x88), CKR_KEY_HANDLE_INVALID);
        assert_eq!(rv(0x69, 0x85), CKR_FUNCTION_FAILED);
        assert_eq!(rv(0x6D, 0x00), CKR_FUNCTION_NOT_SUPPORTED);
        assert_eq!(rv(0x6F, 0x00), CKR_DEVICE_ERROR);
        assert_eq!(CardError::Removed.rv(), CKR_DEVICE_REMOVED);
        assert_eq!(CardError::Reset.rv(), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(CardError::Transport("x".into()).rv(), CKR_DEVICE_ERROR);
        let e: Error = CardError::Sw(Sw::AuthMethodBlocked).into();
        assert_eq!(e.rv(), CKR_PIN_LOCKED);
    }

    #[test]
    fn encoding_and_chaining() {
        let c = Command::new(0x00, 0xA4, 0x04, 0x00)
            .data(vec![0xA0, 0x00])
            .le(256);
        assert_eq!(
            &c.to_bytes()[..],
            &[0x00, 0xA4, 0x04, 0x00, 0x02, 0xA0, 0x00, 0x00]
        );
        let c = Command::new(0x00, 0xDB, 0x3F, 0xFF).data(vec![7u8; 600]);
        let parts = c.chain();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].cla, 0x10);
        assert_eq!(parts[1].cla, 0x10);
        assert_eq!(parts[2].cla, 0x00);
        assert_eq!(parts[2].data.len(), 90);
    }

    #[test]
    fn pins_are_masked_in_traces() {
        let pin = b"123456\xFF\xFF";
        let c = Command::new(0x00, 0x20, 0x00, 0x80)
            .data(pin.to_vec())
            .sensitive();
        let t = c.trace();
        assert_eq!(t, "00 20 00 80 08 <8 bytes masked>");
        assert!(!t.contains("313233"));
        assert!(!format!("{c:?}").contains("313233"));
        let r = Response::from_bytes(&[1, 2, 3, 0x90, 0x00]).unwrap();
        assert_eq!(r.trace(true), "<3 bytes masked> 9000");
        assert_eq!(r.trace(false), "010203 9000");
    }
}
