//! Command and response APDUs (ISO/IEC 7816-4 §5.1 "Command-response pairs", short and
//! extended length), status words, and command/response chaining (§5.1.1, §7.1.3 GET RESPONSE).

/// Status words used by the applets. ISO/IEC 7816-4 §5.1.3 Tables 5-6; the PIV meanings are
/// those of SP 800-73-4 Part 2 §3 (status words listed per command), the GOST card's those of
/// docs/gost-card.md.
pub mod sw {
    pub const OK: u16 = 0x9000;
    /// `61xx`: more response bytes are available with GET RESPONSE (7816-4 §5.1.3).
    pub const MORE_DATA: u16 = 0x6100;
    /// `63Cx`: verification failed, x tries left (7816-4 Table 6).
    pub const VERIFY_FAIL: u16 = 0x63C0;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const SECURITY_STATUS: u16 = 0x6982;
    pub const AUTH_BLOCKED: u16 = 0x6983;
    pub const CONDITIONS: u16 = 0x6985;
    pub const INCORRECT_DATA: u16 = 0x6A80;
    pub const FUNC_NOT_SUPPORTED: u16 = 0x6A81;
    pub const NOT_FOUND: u16 = 0x6A82;
    pub const NOT_ENOUGH_MEMORY: u16 = 0x6A84;
    pub const INCORRECT_P1P2: u16 = 0x6A86;
    pub const REF_NOT_FOUND: u16 = 0x6A88;
    pub const WRONG_P1P2: u16 = 0x6B00;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
    pub const NO_PRECISE_DIAGNOSIS: u16 = 0x6F00;
    /// `6884`: command chaining not supported / `6883` last command of chain expected.
    pub const CHAIN_UNEXPECTED: u16 = 0x6883;
}

/// A parsed command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    /// Ne: `None` when absent; 256 for a short `00`, 65536 for an extended `0000`.
    pub le: Option<usize>,
    pub extended: bool,
}

impl Command {
    /// Parses the four cases of 7816-4 §5.1 (Table 1), short and extended.
    pub fn parse(b: &[u8]) -> Result<Command, u16> {
        if b.len() < 4 {
            return Err(sw::WRONG_LENGTH);
        }
        let (cla, ins, p1, p2) = (b[0], b[1], b[2], b[3]);
        let body = &b[4..];
        let mk = |data: &[u8], le, extended| Command {
            cla,
            ins,
            p1,
            p2,
            data: data.to_vec(),
            le,
            extended,
        };
        match body.len() {
            0 => return Ok(mk(&[], None, false)),
            1 => {
                let le = if body[0] == 0 {
                    256
                } else {
                    usize::from(body[0])
                };
                return Ok(mk(&[], Some(le), false));
            }
            _ => {}
        }
        if body[0] != 0 {
            // Short Lc.
            let lc = usize::from(body[0]);
            let data = body.get(1..1 + lc).ok_or(sw::WRONG_LENGTH)?;
            return match body.len() - 1 - lc {
                0 => Ok(mk(data, None, false)),
                1 => {
                    let le = body[1 + lc];
                    Ok(mk(
                        data,
                        Some(if le == 0 { 256 } else { usize::from(le) }),
                        false,
                    ))
                }
                _ => Err(sw::WRONG_LENGTH),
            };
        }
        // Extended: 00 followed by two bytes.
        if body.len() < 3 {
            return Err(sw::WRONG_LENGTH);
        }
        let n = usize::from(u16::from_be_bytes([body[1], body[2]]));
        if body.len() == 3 {
            return Ok(mk(&[], Some(if n == 0 { 65536 } else { n }), true));
        }
        if n == 0 {
            return Err(sw::WRONG_LENGTH);
        }
        let data = body.get(3..3 + n).ok_or(sw::WRONG_LENGTH)?;
        match body.len() - 3 - n {
            0 => Ok(mk(data, None, true)),
            2 => {
                let le = usize::from(u16::from_be_bytes([body[3 + n], body[4 + n]]));
                Ok(mk(data, Some(if le == 0 { 65536 } else { le }), true))
            }
            _ => Err(sw::WRONG_LENGTH),
        }
    }

    /// CLA bit b5 (`0x10`): "command is not the last command of a chain" (7816-4 §5.4.1 Table 2).
    pub fn is_chained(&self) -> bool {
        self.cla & 0x10 != 0
    }
}

/// A response: data and status word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl Response {
    pub fn ok(data: Vec<u8>) -> Response {
        Response { data, sw: sw::OK }
    }
    pub fn sw(sw: u16) -> Response {
        Response {
            data: Vec::new(),
            sw,
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.data.clone();
        v.extend_from_slice(&self.sw.to_be_bytes());
        v
    }
}

impl From<u16> for Response {
    fn from(sw: u16) -> Response {
        Response::sw(sw)
    }
}

/// Command chaining (7816-4 §5.1.1.1): collects the data of chained commands with the same
/// INS/P1/P2 until the last one (CLA b5 clear) arrives.
#[derive(Debug, Default)]
pub struct ChainBuffer {
    pending: Option<(u8, u8, u8, Vec<u8>)>,
}

impl ChainBuffer {
    /// Feeds one command. Returns `Ok(None)` when it was a non-final part of a chain (answer
    /// `9000`), `Ok(Some(cmd))` with the whole command otherwise.
    pub fn feed(&mut self, cmd: Command) -> Result<Option<Command>, u16> {
        const MAX: usize = 64 * 1024;
        if cmd.is_chained() {
            match &mut self.pending {
                Some((ins, p1, p2, buf)) if *ins == cmd.ins && *p1 == cmd.p1 && *p2 == cmd.p2 => {
                    if buf.len() + cmd.data.len() > MAX {
                        self.pending = None;
                        return Err(sw::WRONG_LENGTH);
                    }
                    buf.extend_from_slice(&cmd.data);
                }
                _ => self.pending = Some((cmd.ins, cmd.p1, cmd.p2, cmd.data)),
            }
            return Ok(None);
        }
        match self.pending.take() {
            Some((ins, p1, p2, mut buf)) => {
                if ins != cmd.ins || p1 != cmd.p1 || p2 != cmd.p2 {
                    // A different command ends the chain: the chain is abandoned.
                    return Ok(Some(cmd));
                }
                buf.extend_from_slice(&cmd.data);
                Ok(Some(Command { data: buf, ..cmd }))
            }
            None => Ok(Some(cmd)),
        }
    }

    pub fn clear(&mut self) {
        self.pending = None;
    }
}

/// Response chaining: a response longer than Ne is sent in parts, each ending in `61xx`
/// (xx = bytes still available, `00` meaning 256 or more), fetched with GET RESPONSE
/// `00 C0 00 00 Le` (7816-4 §7.1.3).
#[derive(Debug, Default)]
pub struct ResponseBuffer {
    rest: Vec<u8>,
    final_sw: u16,
}

impl ResponseBuffer {
    /// Cuts `resp` to at most `ne` bytes (Ne from the command; 256 when absent, the short
    /// maximum, so that cards talking to T=1 readers behave as the hardware does).
    pub fn send(&mut self, resp: Response, ne: Option<usize>) -> Response {
        let ne = ne.unwrap_or(256);
        if resp.data.len() <= ne {
            self.rest.clear();
            return resp;
        }
        let mut data = resp.data;
        self.rest = data.split_off(ne);
        self.final_sw = resp.sw;
        let left = self.rest.len();
        Response {
            data,
            sw: sw::MORE_DATA | if left >= 256 { 0 } else { left as u16 },
        }
    }

    /// GET RESPONSE.
    pub fn get_response(&mut self, ne: Option<usize>) -> Response {
        if self.rest.is_empty() {
            return Response::sw(sw::CONDITIONS);
        }
        let rest = std::mem::take(&mut self.rest);
        let sw = self.final_sw;
        self.send(Response { data: rest, sw }, ne)
    }

    pub fn clear(&mut self) {
        self.rest.clear();
    }
}

/// Formats an APDU for the trace, with the data field masked for commands that carry
/// secrets (PINs, PUK, management keys, private keys).
pub fn trace_command(raw: &[u8], secret: bool) -> String {
    if !secret || raw.len() <= 5 {
        return hex::encode_upper(raw);
    }
    format!(
        "{} <{} bytes masked>",
        hex::encode_upper(&raw[..5]),
        raw.len() - 5
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let c = Command::parse(&[0, 0xA4, 4, 0]).unwrap();
        assert_eq!((c.data.len(), c.le), (0, None));
        let c = Command::parse(&[0, 0xCA, 1, 0x81, 0]).unwrap();
        assert_eq!(c.le, Some(256));
        let c = Command::parse(&[0, 0x20, 0, 0x80, 2, 1, 2]).unwrap();
        assert_eq!((c.data, c.le), (vec![1, 2], None));
        let c = Command::parse(&[0, 0x20, 0, 0x80, 2, 1, 2, 0]).unwrap();
        assert_eq!(c.le, Some(256));
        let c = Command::parse(&[0, 0x87, 7, 0x9A, 0, 0, 2, 1, 2, 0, 0]).unwrap();
        assert_eq!((c.data, c.le, c.extended), (vec![1, 2], Some(65536), true));
        assert!(Command::parse(&[0, 0x20, 0, 0x80, 3, 1, 2]).is_err());
    }

    #[test]
    fn chaining() {
        let mut cb = ChainBuffer::default();
        let a = Command::parse(&[0x10, 0xDB, 0x3F, 0xFF, 2, 1, 2]).unwrap();
        let b = Command::parse(&[0x00, 0xDB, 0x3F, 0xFF, 1, 3]).unwrap();
        assert_eq!(cb.feed(a).unwrap(), None);
        assert_eq!(cb.feed(b).unwrap().unwrap().data, vec![1, 2, 3]);
    }

    #[test]
    fn response_chaining() {
        let mut rb = ResponseBuffer::default();
        let r = rb.send(Response::ok(vec![7; 600]), Some(256));
        assert_eq!((r.data.len(), r.sw), (256, 0x6100));
        let r = rb.get_response(Some(256));
        assert_eq!((r.data.len(), r.sw), (256, 0x6158));
        let r = rb.get_response(Some(256));
        assert_eq!((r.data.len(), r.sw), (88, 0x9000));
    }
}
