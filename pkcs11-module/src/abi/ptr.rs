//! Reading from and writing to C memory. Every function checks NULL and lengths first; values are
//! copied (`read_unaligned`), never cast in place.

use token_api::ck::*;
use token_api::{Error, Pin, Result};

/// `CK_ULONG` → `usize` (habit: never with `as`).
pub fn to_usize(v: CK_ULONG) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::args("length does not fit in memory"))
}

/// `usize` → `CK_ULONG`.
pub fn to_ulong(v: usize) -> CK_ULONG {
    CK_ULONG::try_from(v).unwrap_or(CK_ULONG::MAX)
}

/// A byte buffer passed in by the caller, borrowed for the duration of the call (the caller keeps
/// it valid until the function returns, PKCS#11 §5.2). `(NULL, 0)` is the empty buffer;
/// NULL with a length is `CKR_ARGUMENTS_BAD`.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes that stay valid and unmodified for `'a`.
pub unsafe fn in_bytes<'a>(p: *const u8, len: CK_ULONG) -> Result<&'a [u8]> {
    let len = to_usize(len)?;
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::args("NULL buffer with a non-zero length"));
    }
    if len > isize::MAX as usize {
        return Err(Error::args("buffer length out of range"));
    }
    // SAFETY: non-NULL, `len` bytes readable per the caller contract above; u8 needs no alignment.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A PIN argument: NULL means "use the protected authentication path" (`None`).
///
/// # Safety
/// As [`in_bytes`].
pub unsafe fn in_pin(p: *const u8, len: CK_ULONG) -> Result<Option<Pin>> {
    if p.is_null() {
        return if len == 0 {
            Ok(None)
        } else {
            Err(Error::args("NULL PIN with a non-zero length"))
        };
    }
    // SAFETY: forwarded caller contract.
    let bytes = unsafe { in_bytes(p, len) }?;
    Ok(Some(Pin::new(bytes)))
}

/// Write one value through an output pointer (`CKR_ARGUMENTS_BAD` when NULL).
///
/// # Safety
/// `p` must be NULL or valid for writing one `T` (alignment not required).
pub unsafe fn write_out<T>(p: *mut T, v: T) -> Result<()> {
    if p.is_null() {
        return Err(Error::args("NULL output pointer"));
    }
    // SAFETY: non-NULL and writable per the contract; write_unaligned tolerates any alignment.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// Read one value through an input pointer (`CKR_ARGUMENTS_BAD` when NULL).
///
/// # Safety
/// `p` must be NULL or valid for reading one `T` (alignment not required).
pub unsafe fn read_in<T>(p: *const T) -> Result<T> {
    if p.is_null() {
        return Err(Error::args("NULL input pointer"));
    }
    // SAFETY: non-NULL and readable per the contract; read_unaligned tolerates any alignment.
    Ok(unsafe { p.read_unaligned() })
}

/// Fill a fixed-size, blank-padded C string field.
pub fn padded<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    token_api::util::blank_padded::<N>(s)
}

pub fn version(v: (u8, u8)) -> CK_VERSION {
    CK_VERSION {
        major: v.0,
        minor: v.1,
    }
}
