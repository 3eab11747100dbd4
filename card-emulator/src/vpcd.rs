//! The vpcd socket protocol (vsmartcard's `vpcd` reader driver for pcscd; see
//! shared/docs/interop.md §1.4): TCP, every message framed as a big-endian `u16` length and
//! that many bytes. From vpcd: one byte = control (`00` power off, `01` power on, `02` reset,
//! `04` get ATR, which is answered with a framed ATR), more bytes = a command APDU, answered
//! with one framed response APDU. The card is present while the connection is open.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Control bytes of the vpcd protocol (vsmartcard `vpcd.h`: VPCD_CTRL_OFF/ON/RESET/ATR).
pub const CTRL_OFF: u8 = 0x00;
pub const CTRL_ON: u8 = 0x01;
pub const CTRL_RESET: u8 = 0x02;
pub const CTRL_ATR: u8 = 0x04;

/// What a card must do to sit in the virtual reader.
pub trait Card {
    fn atr(&self) -> Vec<u8>;
    /// Power off, power on or warm reset: the card loses its volatile state.
    fn reset(&mut self);
    /// One command APDU in, one response APDU (data + SW) out.
    fn transmit(&mut self, apdu: &[u8]) -> Vec<u8>;
}

fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_frame(s: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    let len = u16::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response too long for vpcd"))?;
    let mut msg = Vec::with_capacity(data.len() + 2);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(data);
    s.write_all(&msg)
}

/// Serves one connection until vpcd closes it (pcscd stopped) or an I/O error occurs.
pub fn serve(stream: &mut TcpStream, card: &mut dyn Card, log: bool) -> io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let msg = match read_frame(stream) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        match msg.as_slice() {
            [CTRL_ATR] => write_frame(stream, &card.atr())?,
            [CTRL_OFF] | [CTRL_ON] | [CTRL_RESET] => {
                if log {
                    let what = ["power off", "power on", "reset"][usize::from(msg[0])];
                    eprintln!("vpcd: {what}");
                }
                card.reset();
            }
            [other] => {
                if log {
                    eprintln!("vpcd: unknown control byte {other:02X}");
                }
            }
            apdu => {
                let resp = card.transmit(apdu);
                write_frame(stream, &resp)?;
            }
        }
    }
}

/// Connects to vpcd at `host:port`, retrying every 200 ms while nobody listens (pcscd not
/// running yet), serves the card, and reconnects when pcscd goes away. Never returns unless
/// `once` is set.
pub fn run(host: &str, port: u16, card: &mut dyn Card, log: bool, once: bool) -> io::Result<()> {
    let mut announced = false;
    loop {
        match TcpStream::connect((host, port)) {
            Ok(mut s) => {
                eprintln!("klyuch-card-emulator: card inserted in vpcd {host}:{port}");
                announced = false;
                card.reset();
                let r = serve(&mut s, card, log);
                eprintln!("klyuch-card-emulator: vpcd closed the connection ({r:?})");
                if once {
                    return r;
                }
            }
            Err(e) => {
                if !announced {
                    eprintln!("klyuch-card-emulator: waiting for vpcd on {host}:{port} ({e})");
                    announced = true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
