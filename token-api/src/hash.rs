//! A fast hasher for maps keyed by numbers that Klyuch itself hands out.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that are numbers the module or a store makes (session and object handles,
/// object ids, value hashes): one multiplication instead of SipHash. Handles and ids are sequence
/// numbers, so the multiplication spreads them over the table; nothing here is chosen by a remote
/// party. The multiplier is 2^64 / φ (Fibonacci hashing, Knuth, TAOCP vol. 3, §6.4).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29);
    }
}

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
