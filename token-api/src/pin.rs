//! A PIN: zeroized on drop, never printed.

use std::fmt;
use zeroize::Zeroizing;

/// A PIN or other authentication secret as the caller passed it (bytes, usually UTF-8 digits).
///
/// `Debug` prints only the length class, never the value; the memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    pub fn new(bytes: &[u8]) -> Self {
        Pin(Zeroizing::new(bytes.to_vec()))
    }

    /// Take ownership of a buffer (it is wiped when the `Pin` drops).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Pin(Zeroizing::new(bytes))
    }

    /// The secret bytes. Call only where the PIN is actually used (KDF, VERIFY APDU).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_pin() {
        let p = Pin::new(b"123456");
        let s = format!("{p:?} {:?}", Some(&p));
        assert!(!s.contains("123456"));
        assert!(!s.contains("49"));
    }
}
