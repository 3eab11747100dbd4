//! Operations on keys with `CKA_ALWAYS_AUTHENTICATE = true`: the crypto crate's operation,
//! wrapped so that it reports `needs_context_login()` and refuses to run until
//! `C_Login(CKU_CONTEXT_SPECIFIC)` has verified the user PIN (which counts toward the lockout).

use crate::token::SoftToken;
use std::sync::Weak;
use token_api::ck::*;
use token_api::ops::{CipherOp, ContextLogin, SignOp};
use token_api::{Error, Pin, Result};

/// The context login state of one operation.
struct Gate {
    token: Weak<SoftToken>,
    done: bool,
}

impl Gate {
    fn check(&self) -> Result<()> {
        if self.done {
            Ok(())
        } else {
            Err(Error::with(
                CKR_USER_NOT_LOGGED_IN,
                "this key needs C_Login(CKU_CONTEXT_SPECIFIC) before each operation",
            ))
        }
    }

    fn login(&mut self, pin: Option<&Pin>) -> Result<()> {
        let pin = pin.ok_or_else(|| {
            Error::with(
                CKR_ARGUMENTS_BAD,
                "the soft token has no protected authentication path",
            )
        })?;
        let token = self
            .token
            .upgrade()
            .ok_or_else(|| Error::new(CKR_DEVICE_REMOVED))?;
        token.verify_user_pin(pin)?;
        self.done = true;
        Ok(())
    }
}

/// A signature that needs a context-specific login.
pub struct AuthSign {
    inner: Box<dyn SignOp>,
    gate: Gate,
}

impl AuthSign {
    pub fn new(inner: Box<dyn SignOp>, token: Weak<SoftToken>) -> Self {
        AuthSign {
            inner,
            gate: Gate { token, done: false },
        }
    }
}

impl ContextLogin for AuthSign {
    fn needs_context_login(&self) -> bool {
        !self.gate.done
    }
    fn context_login(&mut self, pin: Option<&Pin>) -> Result<()> {
        self.gate.login(pin)
    }
}

impl SignOp for AuthSign {
    fn signature_len(&self) -> usize {
        self.inner.signature_len()
    }
    fn multipart(&self) -> bool {
        self.inner.multipart()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.gate.check()?;
        self.inner.update(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        self.gate.check()?;
        self.inner.finish()
    }
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.gate.check()?;
        self.inner.sign(data)
    }
}

/// A decryption that needs a context-specific login.
pub struct AuthCipher {
    inner: Box<dyn CipherOp>,
    gate: Gate,
}

impl AuthCipher {
    pub fn new(inner: Box<dyn CipherOp>, token: Weak<SoftToken>) -> Self {
        AuthCipher {
            inner,
            gate: Gate { token, done: false },
        }
    }
}

impl ContextLogin for AuthCipher {
    fn needs_context_login(&self) -> bool {
        !self.gate.done
    }
    fn context_login(&mut self, pin: Option<&Pin>) -> Result<()> {
        self.gate.login(pin)
    }
}

impl CipherOp for AuthCipher {
    fn multipart(&self) -> bool {
        self.inner.multipart()
    }
    fn output_len(&self, input_len: usize) -> usize {
        self.inner.output_len(input_len)
    }
    fn final_len(&self) -> usize {
        self.inner.final_len()
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.gate.check()?;
        self.inner.update(input)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        self.gate.check()?;
        self.inner.finish()
    }
    fn one_shot(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.gate.check()?;
        self.inner.one_shot(input)
    }
}
