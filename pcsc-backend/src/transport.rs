//! The seam between card logic and PC/SC: a [`Connection`] to a card begins transactions, a
//! [`Transport`] exchanges raw APDUs inside one, and a [`Channel`] adds what every profile needs
//! (GET RESPONSE, `6Cxx` retries, command chaining, counting, masked traces, recording).
//!
//! [`PcscConnection`] is the real thing (shared mode, one PC/SC transaction per PKCS#11 call,
//! reconnect after a reset by another program); [`ReplayConnection`] plays recorded exchanges
//! in unit tests (`tests/data/<card>/*.apdu`, format below).
//!
//! ## Trace / recording format
//!
//! ```text
//! # card: PIV (klyuch-card-emulator 0.1.0 --profile piv --provision)
//! atr 3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4
//! > 00 A4 04 00 09 A00000030800001000 00
//! < 61 11 ... 9000
//! > 00 20 00 80 08 <8 bytes masked>
//! < 9000
//! ! reset
//! ```
//!
//! `>` a command (hex, spaces ignored; a masked data field matches any data of that length),
//! `<` its response (a masked response replays as zeros), `! reset` / `! removed` make the next
//! exchange fail as PC/SC would after another program reset the card or the card was pulled.
//! `KLYUCH_APDU_RECORD=FILE` appends every exchange of the process to FILE in this format.

use crate::apdu::{CardError, CardResult, Command, Response, Sw, hex_upper, parse_hex};
use std::collections::VecDeque;
use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use zeroize::Zeroizing;

/// Raw APDU exchange inside one transaction.
pub trait Transport {
    /// Send one command APDU (raw bytes), get the raw response (data || SW1 SW2).
    fn transmit(&mut self, apdu: &[u8]) -> CardResult<Vec<u8>>;
    /// `SCardControl` (PC/SC part 10 features); `Err` when the reader has none.
    fn control(&mut self, code: u32, data: &[u8]) -> CardResult<Vec<u8>>;
}

/// A connection to a card that can begin transactions.
pub trait Connection: Send {
    /// The card's ATR as seen at connect time.
    fn atr(&self) -> Vec<u8>;
    /// Begin a transaction. The flag is true when the card was reset by someone else since the
    /// last transaction (the connection has already reconnected): the caller must reselect its
    /// application and treat every PIN as no longer verified.
    fn begin(&mut self) -> CardResult<(Box<dyn Transport + '_>, bool)>;
    /// After a [`CardError::Reset`] inside a transaction: reconnect so that the next `begin`
    /// works (the next `begin` then reports the reset).
    fn recover(&mut self) -> CardResult<()>;
}

// ---------------------------------------------------------------- Channel

/// APDU traffic helper over a [`Transport`]: GET RESPONSE loops, `6Cxx` retries, chaining,
/// the APDU counter and masked trace logging.
pub struct Channel<'a> {
    tx: &'a mut dyn Transport,
    counter: &'a AtomicU64,
}

impl<'a> Channel<'a> {
    pub fn new(tx: &'a mut dyn Transport, counter: &'a AtomicU64) -> Self {
        Channel { tx, counter }
    }

    fn exchange(&mut self, cmd: &Command) -> CardResult<Response> {
        self.counter.fetch_add(1, Ordering::Relaxed);
        let line = cmd.trace();
        log::trace!("APDU > {line}");
        let raw = self.tx.transmit(&cmd.to_bytes());
        let raw = match raw {
            Ok(r) => r,
            Err(e) => {
                log::trace!("APDU ! {e}");
                record(&format!("> {line}"));
                record(match e {
                    CardError::Reset => "! reset",
                    CardError::Removed => "! removed",
                    _ => "! error",
                });
                return Err(e);
            }
        };
        // Response keeps its own wiped copy; the raw answer is wiped too.
        let raw = Zeroizing::new(raw);
        let resp = Response::from_bytes(&raw)?;
        let rline = resp.trace(cmd.secret_response);
        log::trace!("APDU < {rline}");
        record(&format!("> {line}\n< {rline}"));
        Ok(resp)
    }

    /// Send a command (chained if long), collect `61xx` continuations with GET RESPONSE
    /// (ISO 7816-4 §7.6.1, INS `C0`) and repeat once with the right Le on `6Cxx`. Returns the
    /// final response whatever its status.
    pub fn send(&mut self, cmd: &Command) -> CardResult<Response> {
        let parts = cmd.chain();
        let n = parts.len();
        let mut resp = None;
        for (i, part) in parts.iter().enumerate() {
            let r = self.exchange(part)?;
            if i + 1 < n && !r.sw.is_ok() {
                return Ok(r);
            }
            resp = Some(r);
        }
        let mut resp = resp.ok_or(CardError::Malformed("empty command"))?;
        if let Sw::WrongLe(le) = resp.sw {
            let mut again = parts[n - 1].clone();
            again.le = Some(if le == 0 { 256 } else { u16::from(le) });
            resp = self.exchange(&again)?;
        }
        let mut data = std::mem::take(&mut resp.data);
        let mut sw = resp.sw;
        let mut guard = 0;
        while let Sw::BytesRemaining(more) = sw {
            guard += 1;
            if guard > 64 {
                return Err(CardError::Malformed("endless GET RESPONSE"));
            }
            let mut gr = Command::new(parts[n - 1].cla & !0x10, 0xC0, 0, 0).le(if more == 0 {
                256
            } else {
                u16::from(more)
            });
            gr.secret_response = cmd.secret_response;
            let r = self.exchange(&gr)?;
            data.extend_from_slice(&r.data);
            sw = r.sw;
        }
        Ok(Response { data, sw })
    }

    /// Send and require `9000`.
    pub fn ok(&mut self, cmd: &Command) -> CardResult<zeroize::Zeroizing<Vec<u8>>> {
        self.send(cmd)?.ok()
    }

    /// `SCardControl` passthrough (PIN pads).
    pub fn control(&mut self, code: u32, data: &[u8]) -> CardResult<Vec<u8>> {
        self.tx.control(code, data)
    }
}

fn recorder() -> &'static Option<Mutex<std::fs::File>> {
    static REC: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    REC.get_or_init(|| {
        let path = std::env::var_os("KLYUCH_APDU_RECORD")?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
            .map(Mutex::new)
    })
}

fn record(line: &str) {
    if let Some(m) = recorder() {
        if let Ok(mut f) = m.lock() {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Note the ATR of a newly connected card in the recording.
pub fn record_atr(reader: &str, atr: &[u8]) {
    record(&format!("# reader: {reader}\natr {}", hex_upper(atr)));
}

// ---------------------------------------------------------------- PC/SC

/// PC/SC error to card error: gone is gone, reset is reset, the rest is a transport failure.
pub fn map_pcsc(e: pcsc::Error) -> CardError {
    use pcsc::Error as E;
    match e {
        E::ResetCard => CardError::Reset,
        E::RemovedCard
        | E::NoSmartcard
        | E::ReaderUnavailable
        | E::UnknownReader
        | E::UnpoweredCard
        | E::UnresponsiveCard
        | E::NoService
        | E::ServiceStopped
        | E::InvalidHandle => CardError::Removed,
        other => CardError::Transport(other.to_string()),
    }
}

/// A card connected through pcscd in shared mode (`SCARD_SHARE_SHARED`: other programs keep
/// working with the card; PC/SC transactions give us exclusivity for one PKCS#11 call at a time).
pub struct PcscConnection {
    reader: String,
    card: Option<pcsc::Card>,
    atr: Vec<u8>,
    pending_reset: bool,
}

impl PcscConnection {
    pub fn connect(ctx: &pcsc::Context, reader: &str) -> CardResult<PcscConnection> {
        let name = CString::new(reader).map_err(|_| CardError::Malformed("reader name"))?;
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(|e| match e {
                pcsc::Error::SharingViolation => {
                    CardError::Transport("the card is in exclusive use by another program".into())
                }
                other => map_pcsc(other),
            })?;
        let atr = card
            .status2_owned()
            .map(|s| s.atr().to_vec())
            .map_err(map_pcsc)?;
        record_atr(reader, &atr);
        Ok(PcscConnection {
            reader: reader.to_owned(),
            card: Some(card),
            atr,
            pending_reset: false,
        })
    }

    fn card(&mut self) -> CardResult<&mut pcsc::Card> {
        self.card.as_mut().ok_or(CardError::Removed)
    }

    pub fn reader(&self) -> &str {
        &self.reader
    }
}

impl Drop for PcscConnection {
    fn drop(&mut self) {
        // Leave the card as it is: `pcsc::Card`'s own drop resets it, which would log out every
        // other program using the card.
        if let Some(c) = self.card.take() {
            let _ = c.disconnect(pcsc::Disposition::LeaveCard);
        }
    }
}

struct PcscTx<'a> {
    tx: pcsc::Transaction<'a>,
}

impl Transport for PcscTx<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> CardResult<Vec<u8>> {
        // The answer may be a secret (a decrypted block, a shared secret): the buffer is wiped.
        let mut buf = Zeroizing::new([0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED]);
        let r = self.tx.transmit(apdu, &mut buf[..]).map_err(map_pcsc)?;
        Ok(r.to_vec())
    }
    fn control(&mut self, code: u32, data: &[u8]) -> CardResult<Vec<u8>> {
        let mut buf = [0u8; 1024];
        let r = self
            .tx
            .control(code as _, data, &mut buf)
            .map_err(map_pcsc)?;
        Ok(r.to_vec())
    }
}

impl Connection for PcscConnection {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }

    fn begin(&mut self) -> CardResult<(Box<dyn Transport + '_>, bool)> {
        let reset = std::mem::take(&mut self.pending_reset);
        let reader = &self.reader;
        let card = self.card.as_mut().ok_or(CardError::Removed)?;
        match card.transaction2() {
            Ok(tx) => Ok((Box::new(PcscTx { tx }), reset)),
            // SCardBeginTransaction answers SCARD_W_RESET_CARD once after a reset by someone
            // else: reconnect (leaving the card as it is) and try again, once.
            Err((card, e)) => match map_pcsc(e) {
                CardError::Reset => {
                    log::debug!("{reader}: card was reset by another program, reconnecting");
                    card.reconnect(
                        pcsc::ShareMode::Shared,
                        pcsc::Protocols::ANY,
                        pcsc::Disposition::LeaveCard,
                    )
                    .map_err(map_pcsc)?;
                    let tx = card.transaction().map_err(map_pcsc)?;
                    Ok((Box::new(PcscTx { tx }), true))
                }
                other => Err(other),
            },
        }
    }

    fn recover(&mut self) -> CardResult<()> {
        log::debug!(
            "{}: card was reset by another program, reconnecting",
            self.reader
        );
        self.card()?
            .reconnect(
                pcsc::ShareMode::Shared,
                pcsc::Protocols::ANY,
                pcsc::Disposition::LeaveCard,
            )
            .map_err(map_pcsc)?;
        self.pending_reset = true;
        Ok(())
    }
}

// ---------------------------------------------------------------- replay

/// One step of a recorded session.
#[derive(Clone, Debug)]
enum Step {
    Exchange {
        cmd: Vec<u8>,
        /// Data length of a masked command (the data bytes are not compared).
        masked: Option<usize>,
        resp: Vec<u8>,
    },
    /// Any command gets this response ([`ReplayConnection::answering`]).
    Answer(Vec<u8>),
    Reset,
    Removed,
}

/// Recorded exchanges played back in order. Any command that does not match the next recorded
/// one fails the test with both shown.
#[derive(Clone)]
pub struct ReplayConnection {
    atr: Vec<u8>,
    steps: Arc<Mutex<VecDeque<Step>>>,
    /// Control responses: code → response.
    pub controls: Vec<(u32, Vec<u8>)>,
    reset_seen: bool,
    /// Past the last step the card is gone ([`ReplayConnection::answering`]) instead of a
    /// failed test.
    lenient: bool,
}

impl ReplayConnection {
    /// Parse a trace in the format of the module docs.
    pub fn parse(text: &str) -> Result<ReplayConnection, String> {
        let mut atr = Vec::new();
        let mut steps = VecDeque::new();
        let mut pending: Option<(Vec<u8>, Option<usize>)> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let err = |m: &str| format!("line {}: {m}: {line}", n + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("atr ") {
                atr = parse_hex(rest).ok_or_else(|| err("bad ATR"))?;
            } else if let Some(rest) = line.strip_prefix('>') {
                if pending.is_some() {
                    return Err(err("command without response"));
                }
                pending = Some(parse_masked(rest).ok_or_else(|| err("bad command"))?);
            } else if let Some(rest) = line.strip_prefix('<') {
                let (cmd, masked) = pending.take().ok_or_else(|| err("response first"))?;
                let resp = parse_response(rest).ok_or_else(|| err("bad response"))?;
                steps.push_back(Step::Exchange { cmd, masked, resp });
            } else if line == "! reset" {
                pending = None;
                steps.push_back(Step::Reset);
            } else if line == "! removed" {
                pending = None;
                steps.push_back(Step::Removed);
            } else if line.starts_with('!') {
                pending = None;
            } else {
                return Err(err("unknown line"));
            }
        }
        Ok(ReplayConnection {
            atr,
            steps: Arc::new(Mutex::new(steps)),
            controls: Vec::new(),
            reset_seen: false,
            lenient: false,
        })
    }

    /// A card that answers whatever it is sent with `responses`, in order (each raw: data ||
    /// SW1 SW2, possibly malformed), and is removed after the last: for the fuzzer
    /// (fuzz/fuzz_targets/card_answers.rs), where the card's answers are the input.
    pub fn answering(atr: Vec<u8>, responses: Vec<Vec<u8>>) -> ReplayConnection {
        ReplayConnection {
            atr,
            steps: Arc::new(Mutex::new(
                responses.into_iter().map(Step::Answer).collect(),
            )),
            controls: Vec::new(),
            reset_seen: false,
            lenient: true,
        }
    }

    /// Read `tests/data/<card>/<name>.apdu`.
    pub fn from_file(path: &std::path::Path) -> Result<ReplayConnection, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text)
    }

    /// Exchanges not played yet (a finished test expects 0).
    pub fn remaining(&self) -> usize {
        self.steps.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// A handle on the same script (to check `remaining()` after the connection moved away).
    pub fn handle(&self) -> ReplayConnection {
        self.clone()
    }
}

fn parse_masked(s: &str) -> Option<(Vec<u8>, Option<usize>)> {
    if let Some(i) = s.find('<') {
        let head = parse_hex(&s[..i])?;
        let inner = &s[i + 1..s.find('>')?];
        let n: usize = inner.split_whitespace().next()?.parse().ok()?;
        // Header (4 bytes) + Lc; the data is not compared.
        Some((head, Some(n)))
    } else {
        Some((parse_hex(s)?, None))
    }
}

fn parse_response(s: &str) -> Option<Vec<u8>> {
    if let Some(i) = s.find('<') {
        let inner = &s[i + 1..s.find('>')?];
        let n: usize = inner.split_whitespace().next()?.parse().ok()?;
        let mut v = vec![0u8; n];
        v.extend(parse_hex(&s[s.find('>')? + 1..])?);
        Some(v)
    } else {
        parse_hex(s)
    }
}

struct ReplayTx<'a> {
    conn: &'a mut ReplayConnection,
}

impl Transport for ReplayTx<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> CardResult<Vec<u8>> {
        let mut steps = self.conn.steps.lock().expect("replay lock");
        match steps.pop_front() {
            Some(Step::Exchange { cmd, masked, resp }) => {
                let matches = match masked {
                    None => cmd == apdu,
                    // header + Lc must match; data of the masked length; optional Le after it.
                    Some(n) => {
                        apdu.len() >= cmd.len() + n
                            && apdu[..cmd.len()] == cmd[..]
                            && apdu.len() <= cmd.len() + n + 1
                    }
                };
                if !matches {
                    panic!(
                        "replay: expected > {}{}, got > {}",
                        hex_upper(&cmd),
                        masked.map(|n| format!(" <{n} masked>")).unwrap_or_default(),
                        if masked.is_some() {
                            format!("{} ...", hex_upper(&apdu[..apdu.len().min(5)]))
                        } else {
                            hex_upper(apdu)
                        }
                    );
                }
                Ok(resp)
            }
            Some(Step::Answer(resp)) => Ok(resp),
            Some(Step::Reset) => Err(CardError::Reset),
            Some(Step::Removed) => {
                steps.push_front(Step::Removed);
                Err(CardError::Removed)
            }
            None if self.conn.lenient => {
                steps.push_back(Step::Removed);
                Err(CardError::Removed)
            }
            None => panic!(
                "replay: no more recorded exchanges, got > {}",
                hex_upper(&apdu[..apdu.len().min(5)])
            ),
        }
    }
    fn control(&mut self, code: u32, _data: &[u8]) -> CardResult<Vec<u8>> {
        self.conn
            .controls
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, r)| r.clone())
            .ok_or(CardError::Transport("no such control".into()))
    }
}

impl Connection for ReplayConnection {
    fn atr(&self) -> Vec<u8> {
        self.atr.clone()
    }
    fn begin(&mut self) -> CardResult<(Box<dyn Transport + '_>, bool)> {
        {
            let steps = self.steps.lock().expect("replay lock");
            if matches!(steps.front(), Some(Step::Removed)) {
                return Err(CardError::Removed);
            }
        }
        let reset = std::mem::take(&mut self.reset_seen);
        Ok((Box::new(ReplayTx { conn: self }), reset))
    }
    fn recover(&mut self) -> CardResult<()> {
        self.reset_seen = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_matches_masked_pins_and_plays_get_response() {
        let mut c = ReplayConnection::parse(
            "# card: test\natr 3B00\n> 00 20 00 80 08 <8 bytes masked>\n< 63C2\n\
             > 00 CB 3F FF 05 5C 03 5FC102 00\n< 0102 6102\n> 00 C0 00 00 02\n< 0304 9000\n",
        )
        .unwrap();
        let counter = AtomicU64::new(0);
        let h = c.handle();
        let (mut tx, reset) = c.begin().unwrap();
        assert!(!reset);
        let mut ch = Channel::new(tx.as_mut(), &counter);
        let pin = Command::new(0, 0x20, 0, 0x80)
            .data(b"999999\xff\xff".to_vec())
            .sensitive();
        assert_eq!(
            ch.send(&pin).unwrap().sw,
            Sw::VerifyFailed { tries_left: 2 }
        );
        let get = Command::new(0, 0xCB, 0x3F, 0xFF)
            .data(vec![0x5C, 0x03, 0x5F, 0xC1, 0x02])
            .le(256);
        assert_eq!(&ch.ok(&get).unwrap()[..], &[1, 2, 3, 4]);
        drop(tx);
        assert_eq!(counter.load(Ordering::Relaxed), 3);
        assert_eq!(h.remaining(), 0);
    }
}
