//! The output-buffer contract of PKCS#11 §5.2, on the C side, written once:
//! * `pOut == NULL`: store the (maximum) length in `*pulOutLen`, return `CKR_OK`;
//! * `*pulOutLen` too small: store the needed length, return `CKR_BUFFER_TOO_SMALL`, write nothing
//!   into the buffer;
//! * otherwise copy the result, store its length, `CKR_OK`.
//!
//! The safe side ([`crate::core::output`]) decides which case applies; this file only copies.

use token_api::ck::*;
use token_api::{Error, Result};

use super::ptr::{to_ulong, to_usize};
use crate::core::Out;

pub struct OutBuf {
    ptr: *mut u8,
    len_ptr: *mut CK_ULONG,
    cap: Option<usize>,
}

impl OutBuf {
    /// # Safety
    /// `len_ptr` must be NULL or valid for reading and writing a `CK_ULONG`; `ptr` must be NULL or
    /// valid for writing `*len_ptr` bytes.
    pub unsafe fn new(ptr: *mut u8, len_ptr: *mut CK_ULONG) -> Result<Self> {
        if len_ptr.is_null() {
            return Err(Error::args("NULL output length pointer"));
        }
        let cap = if ptr.is_null() {
            None
        } else {
            // SAFETY: non-NULL, readable per the contract.
            Some(to_usize(unsafe { len_ptr.read_unaligned() })?)
        };
        Ok(OutBuf { ptr, len_ptr, cap })
    }

    /// `None`: the caller only asks for the length.
    pub fn cap(&self) -> Option<usize> {
        self.cap
    }

    fn set_len(&self, n: usize) {
        // SAFETY: `len_ptr` is non-NULL and writable (checked in `new`).
        unsafe { self.len_ptr.write_unaligned(to_ulong(n)) };
    }

    /// Hand `out` to the caller. Never writes more than the caller's stated length.
    pub fn put(self, out: Out) -> Result<()> {
        match out {
            Out::Len(n) => {
                self.set_len(n);
                Ok(())
            }
            Out::TooSmall(n) => {
                self.set_len(n);
                Err(Error::new(CKR_BUFFER_TOO_SMALL))
            }
            Out::Data(v) => match self.cap {
                None => {
                    self.set_len(v.len());
                    Ok(())
                }
                Some(cap) if v.len() > cap => {
                    self.set_len(v.len());
                    Err(Error::new(CKR_BUFFER_TOO_SMALL))
                }
                Some(_) => {
                    // SAFETY: `ptr` is non-NULL (cap is Some) and writable for `cap` >= v.len()
                    // bytes; the source is our own Vec, so the regions do not overlap.
                    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), self.ptr, v.len()) };
                    self.set_len(v.len());
                    Ok(())
                }
            },
        }
    }

    /// For lists of `CK_ULONG`-sized items (slot IDs, mechanism types, ...): the same contract
    /// with the count of items instead of bytes.
    ///
    /// # Safety
    /// `ptr` must be NULL or valid for writing `*len_ptr` items; `len_ptr` as in [`OutBuf::new`].
    pub unsafe fn put_list<T: Copy>(
        ptr: *mut T,
        len_ptr: *mut CK_ULONG,
        items: &[T],
    ) -> Result<()> {
        if len_ptr.is_null() {
            return Err(Error::args("NULL count pointer"));
        }
        let n = to_ulong(items.len());
        if ptr.is_null() {
            // SAFETY: checked non-NULL above.
            unsafe { len_ptr.write_unaligned(n) };
            return Ok(());
        }
        // SAFETY: non-NULL, readable per the contract.
        let cap = to_usize(unsafe { len_ptr.read_unaligned() })?;
        // SAFETY: non-NULL, writable per the contract.
        unsafe { len_ptr.write_unaligned(n) };
        if cap < items.len() {
            return Err(Error::new(CKR_BUFFER_TOO_SMALL));
        }
        for (i, item) in items.iter().enumerate() {
            // SAFETY: i < items.len() <= cap items are writable per the contract.
            unsafe { ptr.add(i).write_unaligned(*item) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(buf: &mut [u8], len: &mut CK_ULONG, with_ptr: bool, out: Out) -> CK_RV {
        let p = if with_ptr {
            buf.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        // SAFETY: `buf` is writable for its length, and `len` never exceeds it in these tests.
        let ob = unsafe { OutBuf::new(p, len) }.unwrap();
        match ob.put(out) {
            Ok(()) => CKR_OK,
            Err(e) => e.rv(),
        }
    }

    #[test]
    fn size_query_too_small_and_fit() {
        let mut buf = [0xAAu8; 16];
        let mut len: CK_ULONG = 0;
        assert_eq!(run(&mut buf, &mut len, false, Out::Len(10)), CKR_OK);
        assert_eq!(len, 10);
        len = 4;
        assert_eq!(
            run(&mut buf, &mut len, true, Out::TooSmall(10)),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 10);
        assert_eq!(buf, [0xAA; 16], "nothing written on BUFFER_TOO_SMALL");
        len = 16;
        assert_eq!(
            run(
                &mut buf,
                &mut len,
                true,
                Out::Data(zeroize::Zeroizing::new(vec![1; 10]))
            ),
            CKR_OK
        );
        assert_eq!(len, 10);
        assert_eq!(&buf[..10], &[1; 10]);
        assert_eq!(&buf[10..], &[0xAA; 6]);
    }

    #[test]
    fn a_short_buffer_is_never_overrun() {
        // The buffer is 8 bytes inside a larger guarded region; the result is 12.
        let mut region = [0x55u8; 32];
        let mut len: CK_ULONG = 8;
        let p = region[8..].as_mut_ptr();
        // SAFETY: 24 writable bytes at p; len 8 is within them.
        let ob = unsafe { OutBuf::new(p, &mut len) }.unwrap();
        assert_eq!(
            ob.put(Out::Data(zeroize::Zeroizing::new(vec![9; 12])))
                .unwrap_err()
                .rv(),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 12);
        assert_eq!(region, [0x55; 32]);
    }

    #[test]
    fn null_length_pointer_is_arguments_bad() {
        let mut b = [0u8; 4];
        // SAFETY: NULL length pointer is checked before use.
        let r = unsafe { OutBuf::new(b.as_mut_ptr(), std::ptr::null_mut()) };
        assert_eq!(r.err().map(|e| e.rv()), Some(CKR_ARGUMENTS_BAD));
    }

    #[test]
    fn lists() {
        let mut items = [0 as CK_ULONG; 2];
        let mut n: CK_ULONG = 0;
        // SAFETY: NULL list pointer: only the count is written.
        unsafe { OutBuf::put_list(std::ptr::null_mut(), &mut n, &[1, 2, 3]) }.unwrap();
        assert_eq!(n, 3);
        n = 2;
        // SAFETY: `items` has room for 2.
        let r = unsafe { OutBuf::put_list(items.as_mut_ptr(), &mut n, &[1, 2, 3]) };
        assert_eq!(r.unwrap_err().rv(), CKR_BUFFER_TOO_SMALL);
        assert_eq!(items, [0, 0]);
        assert_eq!(n, 3);
    }
}
