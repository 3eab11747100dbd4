//! Klyuch's PC/SC backend: every PC/SC reader is a slot, a card in it a token.
//!
//! * [`PcscSource`] ([`source`]): the [`token_api::SlotSource`] the module registers
//!   (`PcscSource::new(&config)`); reader slots, hot-plug, `C_WaitForSlotEvent`, cancel.
//! * [`CardToken`] ([`token`]): the [`token_api::Token`] for a card: cached objects, PINs,
//!   host-side hashing/padding around the card's raw signature, decryption and ECDH.
//! * [`profile`]: card profiles (PIV, GOST token, the "unsupported card" fallback) as a
//!   registry; `docs/adding-a-card.md` explains how to add one.
//! * [`transport`]: `Connection`/`Transport` over pcscd (shared mode, one transaction per call,
//!   reconnect after a reset) and the replay transport of the unit tests; [`apdu`]: status
//!   words parsed in one place and the one table from card errors to `CKR_*`; [`pinpad`]: PC/SC
//!   part 10 PIN pads.
//!
//! Logging: every APDU at `trace` level with PINs and secrets masked.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod host;
pub mod pinpad;
pub mod profile;
pub mod source;
pub mod tlv;
pub mod token;
pub mod transport;

pub use source::PcscSource;
pub use token::{CardToken, TokenOptions};
pub use transport::{Connection, PcscConnection, ReplayConnection, Transport};
