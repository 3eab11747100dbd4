//! Random bytes from the system RNG (via aws-lc-rs).

use token_api::Result;

/// Fill `out` with random bytes.
pub fn fill(_out: &mut [u8]) -> Result<()> {
    todo!()
}
