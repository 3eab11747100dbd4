//! `libklyuch_pkcs11.so`: the Klyuch PKCS#11 module.
//!
//! * [`abi`]: the C ABI (the only code with `unsafe`): exported `C_*` functions, the function
//!   lists and interfaces, pointer and buffer handling.
//! * [`core`]: the safe core: slots, sessions, object handles, operation state machines.
//! * [`backends`]: the registry of slot sources (soft token store, PC/SC readers).
#![deny(unsafe_code)]
#![warn(clippy::cast_possible_truncation)]

#[allow(unsafe_code)]
pub mod abi;
pub mod backends;
pub mod core;
