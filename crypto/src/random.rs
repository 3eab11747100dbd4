//! Random bytes from the system RNG (via aws-lc-rs).

use token_api::ck::CKR_FUNCTION_FAILED;
use token_api::{Error, Result};

/// Fill `out` with random bytes.
pub fn fill(out: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(out).map_err(|_| Error::with(CKR_FUNCTION_FAILED, "the RNG failed"))
}
