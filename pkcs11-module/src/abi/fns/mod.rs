//! The exported `C_*` functions, one module per chapter of the PKCS#11 3.0 base specification
//! (§5.4 general purpose .. §5.17 random number generation, plus the 3.0 message functions).
//! Each is a thin wrapper: copy the arguments, call the core through [`super::entry`], write the
//! results back.
#![allow(non_snake_case)]

pub mod digest;
pub mod dual;
pub mod encrypt_decrypt;
pub mod general;
pub mod keys;
pub mod message;
pub mod object;
pub mod random;
pub mod session;
pub mod sign_verify;
pub mod slot_token;
