//! The fallback for cards no profile recognises: a token labelled "unsupported card" with no
//! objects and no mechanisms, so the slot list and the browser keep working (OpenSC issue 3471
//! is what happens otherwise: endless probing of an unknown card).

use super::{Caps, CardIdent, CardProfile, Contents, PinRole};
use crate::apdu::{CardError, CardResult};
use crate::transport::Channel;
use token_api::Pin;
use token_api::ck::CKR_FUNCTION_NOT_SUPPORTED;

pub struct Unsupported;

impl CardProfile for Unsupported {
    fn name(&self) -> &'static str {
        "unsupported"
    }
    fn probe(&self, _ch: &mut Channel<'_>) -> CardResult<bool> {
        Ok(true)
    }
    fn select(&self, _ch: &mut Channel<'_>) -> CardResult<()> {
        Ok(())
    }
    fn identify(&self, _ch: &mut Channel<'_>) -> CardResult<CardIdent> {
        Ok(CardIdent {
            label: "unsupported card".into(),
            manufacturer: "unknown".into(),
            model: "unsupported card".into(),
            serial: String::new(),
            unique: Vec::new(),
        })
    }
    fn read_contents(&self, _ch: &mut Channel<'_>) -> CardResult<Contents> {
        Ok(Contents::default())
    }
    fn caps(&self) -> Caps {
        Caps::default()
    }
    fn verify_pin(&self, _ch: &mut Channel<'_>, _role: PinRole, _pin: &Pin) -> CardResult<()> {
        Err(CardError::Ck(token_api::Error::with(
            CKR_FUNCTION_NOT_SUPPORTED,
            "unsupported card",
        )))
    }
}
