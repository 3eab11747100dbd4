//! Random number generation (PKCS#11 3.0 §5.15).

use token_api::Error;
use token_api::ck::*;

use crate::abi::entry::call;
use crate::abi::ptr::{in_bytes, to_usize};

/// `CKR_RANDOM_SEED_NOT_SUPPORTED`: the system RNG needs no seed.
///
/// # Safety
/// `pSeed` readable for `ulSeedLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SeedRandom(
    hSession: CK_SESSION_HANDLE,
    pSeed: *mut CK_BYTE,
    ulSeedLen: CK_ULONG,
) -> CK_RV {
    call("C_SeedRandom", |k| {
        // SAFETY: forwarded caller contract.
        unsafe { in_bytes(pSeed, ulSeedLen) }?;
        k.seed_random(hSession)
    })
}

/// # Safety
/// `RandomData` writable for `ulRandomLen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(
    hSession: CK_SESSION_HANDLE,
    RandomData: *mut CK_BYTE,
    ulRandomLen: CK_ULONG,
) -> CK_RV {
    call("C_GenerateRandom", |k| {
        let n = to_usize(ulRandomLen)?;
        if n == 0 {
            return k.generate_random(hSession, &mut []);
        }
        if RandomData.is_null() || n > isize::MAX as usize {
            return Err(Error::args("NULL or oversized random buffer"));
        }
        // SAFETY: non-NULL and writable for `n` bytes per the contract; u8 needs no alignment.
        let out = unsafe { std::slice::from_raw_parts_mut(RandomData, n) };
        k.generate_random(hSession, out)
    })
}
