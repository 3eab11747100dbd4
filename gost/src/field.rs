//! A faster arithmetic backend for `primefield` Montgomery field elements.
//!
//! `primefield::monty_field_arithmetic!` delegates to `crypto-bigint`'s generic, slice-based
//! Montgomery multiplication. [`fast_monty_arithmetic!`] provides the same inherent methods
//! (the contract `primefield::monty_field_element!` relies on, like the `fiat-crypto` backends do)
//! with fixed-size, fully unrollable word arrays instead. The representation is unchanged:
//! `primefield`'s `MontyFieldElement` in Montgomery form (`a·R mod p`, `R = 2^(W·N)`), so
//! encoding, inversion (`crypto-bigint`'s constant-time safegcd) and all traits stay
//! `primefield`'s.
//!
//! Everything is constant time: no branches or memory accesses depend on the values; carries and
//! the final conditional subtractions are turned into masks arithmetically.

pub(crate) use crypto_bigint::{WideWord, Word};

const BITS: u32 = Word::BITS;

/// One CIOS round: `t = (t + a_i·b + m·p) / 2^W` with `m` chosen so the division is exact.
/// `(t, t_hi)` is the running value (N + 1 words).
#[inline(always)]
const fn mont_round<const N: usize>(
    t: &mut [Word; N],
    t_hi: &mut Word,
    ai: Word,
    b: &[Word; N],
    p: &[Word; N],
    p_inv: Word,
) {
    // t += a_i·b
    let ai = ai as WideWord;
    let mut carry: Word = 0;
    let mut j = 0;
    while j < N {
        let x = t[j] as WideWord + ai * (b[j] as WideWord) + carry as WideWord;
        t[j] = x as Word;
        carry = (x >> BITS) as Word;
        j += 1;
    }
    let x = *t_hi as WideWord + carry as WideWord;
    *t_hi = x as Word;
    let t_top = (x >> BITS) as Word; // t[N+1], 0 or 1

    // t = (t + m·p) / 2^W with m chosen so the low word vanishes.
    let m = t[0].wrapping_mul(p_inv) as WideWord;
    let x = t[0] as WideWord + m * (p[0] as WideWord);
    let mut carry = (x >> BITS) as Word;
    let mut j = 1;
    while j < N {
        let x = t[j] as WideWord + m * (p[j] as WideWord) + carry as WideWord;
        t[j - 1] = x as Word;
        carry = (x >> BITS) as Word;
        j += 1;
    }
    let x = *t_hi as WideWord + carry as WideWord;
    t[N - 1] = x as Word;
    *t_hi = t_top + (x >> BITS) as Word;
}

/// `a·b·R^-1 mod p` for `a, b < p` (CIOS Montgomery multiplication, Koç–Acar–Kaliski 1996;
/// Handbook of Applied Cryptography alg. 14.36). `p_inv = -p^-1 mod 2^W`.
///
/// The rounds are written out for the limb counts used here (4 and 8 on 64-bit targets, 8 and
/// 16 on 32-bit ones) so that the compiler sees every index as a constant and can fold the
/// modulus words (many are 0, 1 or all ones for the TC26 primes).
#[inline(always)]
pub(crate) const fn mont_mul<const N: usize>(
    a: &[Word; N],
    b: &[Word; N],
    p: &[Word; N],
    p_inv: Word,
) -> [Word; N] {
    let mut t = [0 as Word; N];
    let mut t_hi: Word = 0; // t[N]
    macro_rules! rounds {
        ($($i:literal)*) => { $( mont_round(&mut t, &mut t_hi, a[$i], b, p, p_inv); )* };
    }
    if N == 4 {
        rounds!(0 1 2 3);
    } else if N == 8 {
        rounds!(0 1 2 3 4 5 6 7);
    } else {
        let mut i = 0;
        while i < N {
            mont_round(&mut t, &mut t_hi, a[i], b, p, p_inv);
            i += 1;
        }
    }
    // t < 2p: subtract p once if (t_hi, t) >= p.
    reduce_once(&t, t_hi, p)
}

/// `(hi·2^(W·N) + t) mod p` for a value below `2p`, in constant time.
#[inline(always)]
const fn reduce_once<const N: usize>(t: &[Word; N], hi: Word, p: &[Word; N]) -> [Word; N] {
    let mut d = [0 as Word; N];
    let mut borrow: Word = 0;
    let mut j = 0;
    while j < N {
        let (x, b1) = t[j].overflowing_sub(p[j]);
        let (x, b2) = x.overflowing_sub(borrow);
        d[j] = x;
        borrow = (b1 | b2) as Word;
        j += 1;
    }
    // The subtraction is valid unless it borrowed past the high word.
    let (_, b) = hi.overflowing_sub(borrow);
    let keep_t = (b as Word).wrapping_neg(); // all ones: t < p, keep t
    let mut out = [0 as Word; N];
    let mut j = 0;
    while j < N {
        out[j] = (t[j] & keep_t) | (d[j] & !keep_t);
        j += 1;
    }
    out
}

/// `a + b mod p` for `a, b < p`.
#[inline(always)]
pub(crate) const fn add<const N: usize>(a: &[Word; N], b: &[Word; N], p: &[Word; N]) -> [Word; N] {
    let mut t = [0 as Word; N];
    let mut carry: Word = 0;
    let mut j = 0;
    while j < N {
        let x = a[j] as WideWord + b[j] as WideWord + carry as WideWord;
        t[j] = x as Word;
        carry = (x >> BITS) as Word;
        j += 1;
    }
    reduce_once(&t, carry, p)
}

/// `a - b mod p` for `a, b < p`.
#[inline(always)]
pub(crate) const fn sub<const N: usize>(a: &[Word; N], b: &[Word; N], p: &[Word; N]) -> [Word; N] {
    let mut t = [0 as Word; N];
    let mut borrow: Word = 0;
    let mut j = 0;
    while j < N {
        let (x, b1) = a[j].overflowing_sub(b[j]);
        let (x, b2) = x.overflowing_sub(borrow);
        t[j] = x;
        borrow = (b1 | b2) as Word;
        j += 1;
    }
    // If it borrowed, add p back.
    let mask = borrow.wrapping_neg();
    let mut carry: Word = 0;
    let mut j = 0;
    while j < N {
        let x = t[j] as WideWord + (p[j] & mask) as WideWord + carry as WideWord;
        t[j] = x as Word;
        carry = (x >> BITS) as Word;
        j += 1;
    }
    t
}

/// `-a mod p` for `a < p`.
#[inline(always)]
pub(crate) const fn neg<const N: usize>(a: &[Word; N], p: &[Word; N]) -> [Word; N] {
    sub(&[0 as Word; N], a, p)
}

/// Implements the inherent arithmetic methods `primefield::monty_field_element!` expects
/// (`add`, `double`, `sub`, `multiply`, `neg`, `square`, `invert`, `invert_vartime`,
/// `const_invert`, `to_canonical`, `from_uint_unchecked`) on top of [`mont_mul`] and friends.
macro_rules! fast_monty_arithmetic {
    (
        name: $fe:tt,
        params: $params:ty,
        uint: $uint:ty
    ) => {
        impl $fe {
            const P_WORDS: [$crate::field::Word; <$uint>::LIMBS] =
                <$params>::PARAMS.modulus().as_ref().to_words();
            const P_INV: $crate::field::Word = <$params>::PARAMS.mod_neg_inv().0;

            /// From Montgomery-form words (each value must be `< p`).
            #[inline(always)]
            pub(crate) const fn from_words(w: [$crate::field::Word; <$uint>::LIMBS]) -> Self {
                Self(
                    primefield::MontyFieldElement::<$params, { <$uint>::LIMBS }>::from_montgomery_words(w),
                )
            }

            /// Montgomery-form words (`a·R mod p`).
            #[inline(always)]
            pub(crate) const fn words(&self) -> [$crate::field::Word; <$uint>::LIMBS] {
                self.0.to_montgomery_words()
            }

            /// From an integer, reduced mod p first (not checked against p).
            #[inline]
            pub(crate) const fn from_uint_unchecked(w: $uint) -> Self {
                Self(primefield::MontyFieldElement::<$params, { <$uint>::LIMBS }>::from_uint_reduced(&w))
            }

            /// The canonical integer (out of Montgomery form).
            #[inline]
            pub const fn to_canonical(self) -> $uint {
                self.0.to_canonical()
            }

            /// `self + rhs`.
            #[inline(always)]
            pub const fn add(&self, rhs: &Self) -> Self {
                Self::from_words($crate::field::add(&self.words(), &rhs.words(), &Self::P_WORDS))
            }

            /// `2·self`.
            #[inline(always)]
            #[must_use]
            pub const fn double(&self) -> Self {
                self.add(self)
            }

            /// `self - rhs`.
            #[inline(always)]
            pub const fn sub(&self, rhs: &Self) -> Self {
                Self::from_words($crate::field::sub(&self.words(), &rhs.words(), &Self::P_WORDS))
            }

            /// `self · rhs`.
            #[inline(always)]
            pub const fn multiply(&self, rhs: &Self) -> Self {
                Self::from_words($crate::field::mont_mul(
                    &self.words(),
                    &rhs.words(),
                    &Self::P_WORDS,
                    Self::P_INV,
                ))
            }

            /// `-self`.
            #[inline(always)]
            pub const fn neg(&self) -> Self {
                Self::from_words($crate::field::neg(&self.words(), &Self::P_WORDS))
            }

            /// `self²`.
            #[inline(always)]
            #[must_use]
            pub const fn square(&self) -> Self {
                self.multiply(self)
            }

            /// `1 / self` (constant time; `None` for zero).
            #[inline]
            pub fn invert(&self) -> elliptic_curve::subtle::CtOption<Self> {
                self.0.invert().map(Self)
            }

            /// `1 / self` in variable time (public values only).
            #[inline]
            pub fn invert_vartime(&self) -> elliptic_curve::subtle::CtOption<Self> {
                self.0.invert_vartime().map(Self)
            }

            /// `1 / self` at compile time; panics on zero.
            pub const fn const_invert(&self) -> Self {
                Self(self.0.const_invert())
            }
        }
    };
}

pub(crate) use fast_monty_arithmetic;
