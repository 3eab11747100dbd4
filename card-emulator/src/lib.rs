//! `klyuch-card-emulator`: a smart card in the vsmartcard vpcd virtual reader, for tests of
//! the PC/SC path through the real pcscd. Profiles: a PIV card that looks like a YubiKey 5
//! (NIST SP 800-73-4 plus the YubiKey extensions tools rely on) and the Klyuch GOST token
//! of `docs/gost-card.md`. The `harness` module starts emulators for other test suites.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod cert;
pub mod crypto;
pub mod gost;
pub mod gost_card;
pub mod harness;
pub mod piv;
pub mod store;
pub mod tlv;
pub mod vpcd;
