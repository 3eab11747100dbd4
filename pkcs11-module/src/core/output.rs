//! The output-buffer contract of PKCS#11 (§5.2 "Conventions for functions returning output in a
//! variable-length buffer"), on the safe side.
//!
//! The caller says how much room it has (`None`: only asking for the length). An operation
//! computes its result once; when the caller's buffer is too small the result is kept in the
//! operation and handed out by the next call, so a retried `C_Sign` returns the same signature
//! and never signs twice.

use token_api::Result;
use zeroize::Zeroizing;

/// What to tell the caller. The data may be a secret (a decrypted message, a session key an
/// application unwraps itself with C_Decrypt): it is wiped once handed out, also when it waits
/// for a bigger buffer, and `Debug` shows only its length.
#[derive(PartialEq, Eq)]
pub enum Out {
    /// A length only: the answer to a size query (`CKR_OK`), possibly an upper bound.
    Len(usize),
    /// The result did not fit: `CKR_BUFFER_TOO_SMALL` with the exact length needed.
    TooSmall(usize),
    /// The result; it fits the caller's buffer.
    Data(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Len(n) => write!(f, "Len({n})"),
            Out::TooSmall(n) => write!(f, "TooSmall({n})"),
            Out::Data(v) => write!(f, "Data({} bytes)", v.len()),
        }
    }
}

/// The state machine step shared by every output-producing call.
///
/// * `cap`: `None` for a size query, else the caller's buffer length.
/// * `pending`: a result computed earlier that did not fit.
/// * `bound`: an upper bound of the output length, known without computing.
/// * `compute`: produces the output (advances the operation).
///
/// Returns the answer and whether the step is complete (the operation may move on or end):
/// `false` for a size query or a too-small buffer.
pub fn deliver(
    pending: &mut Option<Zeroizing<Vec<u8>>>,
    cap: Option<usize>,
    bound: usize,
    compute: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(Out, bool)> {
    if let Some(p) = pending.as_ref() {
        return Ok(match cap {
            None => (Out::Len(p.len()), false),
            Some(c) if c < p.len() => (Out::TooSmall(p.len()), false),
            Some(_) => (Out::Data(pending.take().unwrap_or_default()), true),
        });
    }
    let Some(cap) = cap else {
        return Ok((Out::Len(bound), false));
    };
    let data = Zeroizing::new(compute()?);
    if data.len() > cap {
        let n = data.len();
        *pending = Some(data);
        Ok((Out::TooSmall(n), false))
    } else {
        Ok((Out::Data(data), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_then_small_then_fit_computes_once() {
        let mut pending = None;
        let calls = std::cell::Cell::new(0);
        let mut f = |cap| {
            deliver(&mut pending, cap, 64, || {
                calls.set(calls.get() + 1);
                Ok(vec![7u8; 48])
            })
        };
        assert_eq!(f(None).unwrap(), (Out::Len(64), false));
        assert_eq!(f(Some(10)).unwrap(), (Out::TooSmall(48), false));
        assert_eq!(f(None).unwrap(), (Out::Len(48), false));
        assert_eq!(
            f(Some(48)).unwrap(),
            (Out::Data(Zeroizing::new(vec![7u8; 48])), true)
        );
        assert_eq!(calls.get(), 1);
        assert!(pending.is_none());
    }
}
