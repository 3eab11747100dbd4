//! Operation objects handed out by a token at `C_*Init` and driven by the core's session state
//! machine. An operation owns what it needs (a prepared key, a card handle), so the token lock is
//! not held while it runs and two sessions can sign at the same time.
//!
//! The core implements the output-buffer contract around these (size query, `CKR_BUFFER_TOO_SMALL`
//! with the result kept for the next call); operations only compute.

use crate::ck::*;
use crate::error::{Error, Result};
use crate::pin::Pin;

/// Context-specific login (`CKA_ALWAYS_AUTHENTICATE` keys, `C_Login(CKU_CONTEXT_SPECIFIC)`).
pub trait ContextLogin {
    /// True if the key demands `C_Login(CKU_CONTEXT_SPECIFIC)` before this operation may finish
    /// and that login has not happened yet.
    fn needs_context_login(&self) -> bool {
        false
    }
    /// Authenticate this operation (`pin` is `None` on a protected authentication path).
    fn context_login(&mut self, _pin: Option<&Pin>) -> Result<()> {
        Err(Error::with(
            CKR_OPERATION_NOT_INITIALIZED,
            "this operation needs no context login",
        ))
    }
}

/// `C_SignInit` .. `C_Sign` / `C_SignUpdate` / `C_SignFinal`.
pub trait SignOp: ContextLogin + Send {
    /// The signature length (exact for every mechanism Klyuch has; used for the size query).
    fn signature_len(&self) -> usize;
    /// Whether `C_SignUpdate` is allowed (hash-and-sign mechanisms) or only `C_Sign`.
    fn multipart(&self) -> bool;
    /// Feed message data (multi-part mechanisms only).
    fn update(&mut self, data: &[u8]) -> Result<()>;
    /// Finish a multi-part signature.
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// Single-part signature of `data` (checks the input length rules of raw mechanisms).
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.update(data)?;
        self.finish()
    }
}

/// `C_VerifyInit` .. `C_Verify` / `C_VerifyUpdate` / `C_VerifyFinal`.
/// A bad signature is `Err(CKR_SIGNATURE_INVALID)`, a wrong length `Err(CKR_SIGNATURE_LEN_RANGE)`.
pub trait VerifyOp: Send {
    fn signature_len(&self) -> usize;
    fn multipart(&self) -> bool;
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn finish(&mut self, signature: &[u8]) -> Result<()>;
    fn verify(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        self.update(data)?;
        self.finish(signature)
    }
}

/// Encryption or decryption (`C_EncryptInit`/`C_DecryptInit` and the rest).
pub trait CipherOp: ContextLogin + Send {
    fn multipart(&self) -> bool;
    /// An upper bound of the output for a single-part call on `input_len` bytes, or for an
    /// update with `input_len` more bytes. Must not change state.
    fn output_len(&self, input_len: usize) -> usize;
    /// An upper bound of what `finish` will return. Must not change state.
    fn final_len(&self) -> usize;
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>>;
    fn finish(&mut self) -> Result<Vec<u8>>;
    /// Single-part encryption/decryption.
    fn one_shot(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = self.update(input)?;
        out.extend(self.finish()?);
        Ok(out)
    }
}

/// `C_DigestInit` .. `C_Digest` / `C_DigestUpdate` / `C_DigestKey` / `C_DigestFinal`.
pub trait DigestOp: Send {
    fn digest_len(&self) -> usize;
    fn update(&mut self, data: &[u8]) -> Result<()>;
    fn finish(&mut self) -> Result<Vec<u8>>;
}
