//! Safe traits and value types shared by the Klyuch PKCS#11 module (`pkcs11-module`) and the
//! token backends (`softtoken`, `pcsc-backend`).
//!
//! The module and the backends depend on this crate and never on each other. Everything here is
//! plain safe Rust: the C ABI lives in `pkcs11-module/src/abi/` only.
//!
//! * [`ck`]: the PKCS#11 constants and C types (re-exported from `cryptoki-sys`) plus the TC26
//!   vendor constants for GOST R 34.10-2012 / 34.11-2012 that `cryptoki-sys` lacks.
//! * [`error`]: one error type carrying a `CK_RV`.
//! * [`attr`]: owned attribute templates, attribute reads, and the attribute rule table.
//! * [`mech`]: owned mechanisms with their parameters already copied out of C memory.
//! * [`ops`]: the operation objects (sign, verify, encrypt, decrypt, digest) a token hands out.
//! * [`token`]: the [`token::Token`] and [`token::SlotSource`] traits.
//! * [`config`]: the configuration file and environment (`KLYUCH_*`).
//! * [`pin`]: a PIN that zeroizes itself and never prints.
#![forbid(unsafe_code)]

pub mod attr;
pub mod ck;
pub mod config;
pub mod error;
pub mod hash;
pub mod mech;
pub mod ops;
pub mod pin;
pub mod token;
pub mod util;

pub use attr::{AttrRead, Attribute, Template};
pub use error::{Error, Result};
pub use mech::{MechInfo, MechParam, Mechanism};
pub use pin::Pin;
pub use token::{ObjectId, SessionCtx, SlotDesc, SlotInfo, SlotSource, Token, TokenInfo, UserType};
