//! Curve-generic GOST R 34.10-2012 arithmetic: fixed-base tables, signing, verification, VKO.
//!
//! Everything here is generic over [`GostCurve`]; `lib.rs` dispatches on [`crate::ParamSet`].
//! Integers cross this module's boundary as big-endian [`FieldBytes`] (the `primefield` byte
//! order chosen in `curves.rs`); the little-endian PKCS#11 conventions are handled in `lib.rs`.
//!
//! Constant time: the secret-dependent paths (fixed-base multiplication `k·P`, `d·P`, the
//! variable-base multiplication of VKO, scalar arithmetic, inversion of `Z`) use only
//! `primeorder`/`primefield`/`crypto-bigint` constant-time operations and full table scans with
//! conditional selects. The `*_vartime` functions are for public data only (verification).

use elliptic_curve::{
    Curve, CurveArithmetic, FieldBytes,
    array::typenum::Unsigned,
    ff::{Field, PrimeField},
    group::Group,
    ops::{Invert, Reduce},
    point::AffineCoordinates,
    subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption},
};
use primeorder::{AffinePoint, PrimeCurveParams, ProjectivePoint};
use zeroize::Zeroizing;

use crate::field::Word;

/// A scalar (integer mod q) of curve `C`.
pub(crate) type Scalar<C> = <C as CurveArithmetic>::Scalar;

/// What `lib.rs` needs from a curve beyond `primeorder`'s traits.
pub(crate) trait GostCurve: PrimeCurveParams {
    /// `m / q`: 1 or 4 (gost-pkcs11.md §3).
    const COFACTOR: u32;
    /// Module name, for diagnostics.
    #[allow(dead_code)]
    const NAME: &'static str;
    /// Whether `a = -3` (selects the RCB formulas).
    const A_IS_MINUS_3: bool;
    /// `d` of the Edwards form `u² + v² = 1 + d·u²·v²` (cofactor-4 curves only).
    const EDWARDS_D: Option<Self::FieldElement>;
    /// A field element as Montgomery-form words (`[Word; LIMBS]`).
    type Words: Copy + Default + AsRef<[Word]> + AsMut<[Word]>;
    /// The Montgomery-form words of a field element.
    fn fe_words(fe: &Self::FieldElement) -> Self::Words;
    /// A field element from Montgomery-form words (each `< p`).
    fn fe_from_words(words: &Self::Words) -> Self::FieldElement;
    /// The lazily built fixed-base table of the generator (one per curve, built once).
    fn base_table() -> &'static BaseTable<Self>;
}

/// Byte length of a coordinate / scalar (32 or 64).
pub(crate) fn byte_len<C: GostCurve>() -> usize {
    <C as Curve>::FieldBytesSize::USIZE
}

/// Window width of the fixed-base comb: signed digits in `[-2^(W-1), 2^(W-1)]`.
const W: usize = 6;
/// Entries per table row: `1·B .. 2^(W-1)·B`.
const ROW: usize = 1 << (W - 1);

/// Invert a secret non-zero field element through a random blind: `1/z = β/(z·β)` where `z·β`
/// is uniformly distributed and independent of `z`, so the variable-time inversion (about twice
/// as fast as the constant-time one) learns nothing about `z`. `None` if `z = 0`.
fn blinded_invert<C: GostCurve>(z: &C::FieldElement) -> Option<C::FieldElement> {
    let Ok(beta) = random_field_element::<C>() else {
        // No randomness: the constant-time inversion instead.
        return Option::from(Field::invert(z));
    };
    let zb = *z * beta;
    let inv = Option::<C::FieldElement>::from(zb.invert_vartime())?;
    Some(inv * beta)
}

/// A uniformly random non-zero field element (rejection sampling on the bit length of p).
fn random_field_element<C: GostCurve>() -> Result<C::FieldElement, getrandom::Error> {
    let bits = C::FieldElement::NUM_BITS as usize;
    let n = byte_len::<C>();
    loop {
        let mut repr = FieldBytes::<C>::default();
        getrandom::fill(&mut repr)?;
        let extra = 8 * n - bits;
        repr[0] &= 0xFFu8 >> extra;
        if let Some(fe) = Option::<C::FieldElement>::from(C::FieldElement::from_repr(repr)) {
            if !bool::from(fe.is_zero()) {
                return Ok(fe);
            }
        }
    }
}

/// A projective Weierstrass point `(X : Y : Z)` (`x = X/Z`, `y = Y/Z`; identity `(0 : 1 : 0)`)
/// for the constant-time fixed-base path, with the complete Renes–Costello–Batina mixed
/// addition (the same formulas `primeorder` uses, ported here so the table scan can feed raw
/// field words straight into them).
#[derive(Clone, Copy)]
struct Proj<C: PrimeCurveParams> {
    x: C::FieldElement,
    y: C::FieldElement,
    z: C::FieldElement,
}

impl<C: GostCurve> Proj<C> {
    fn identity() -> Self {
        Proj {
            x: C::FieldElement::ZERO,
            y: C::FieldElement::ONE,
            z: C::FieldElement::ZERO,
        }
    }

    /// `self + (x2, y2)` for an affine point that is not the identity; complete (RCB 2015,
    /// Algorithm 5 for a = -3, Algorithm 2 for generic a; https://eprint.iacr.org/2015/1060).
    #[inline(always)]
    fn add_mixed(&self, x2: &C::FieldElement, y2: &C::FieldElement, b3: &C::FieldElement) -> Self {
        let (x1, y1, z1) = (self.x, self.y, self.z);
        if C::A_IS_MINUS_3 {
            let b = C::EQUATION_B;
            let xx = x1 * x2;
            let yy = y1 * y2;
            let xy_pairs = ((x1 + y1) * (*x2 + y2)) - (xx + yy);
            let yz_pairs = (*y2 * z1) + y1;
            let xz_pairs = (*x2 * z1) + x1;
            let bz_part = xz_pairs - (b * z1);
            let bz3_part = bz_part.double() + bz_part;
            let yy_m_bzz3 = yy - bz3_part;
            let yy_p_bzz3 = yy + bz3_part;
            let z3 = z1.double() + z1;
            let bxz_part = (b * xz_pairs) - (z3 + xx);
            let bxz3_part = bxz_part.double() + bxz_part;
            let xx3_m_zz3 = xx.double() + xx - z3;
            Proj {
                x: (yy_p_bzz3 * xy_pairs) - (yz_pairs * bxz3_part),
                y: (yy_p_bzz3 * yy_m_bzz3) + (xx3_m_zz3 * bxz3_part),
                z: (yy_m_bzz3 * yz_pairs) + (xy_pairs * xx3_m_zz3),
            }
        } else {
            let a = C::EQUATION_A;
            let t0 = x1 * x2;
            let t1 = y1 * y2;
            let t3 = (*x2 + y2) * (x1 + y1) - (t0 + t1);
            let t4 = *x2 * z1 + x1;
            let t5 = *y2 * z1 + y1;
            let z3 = a * t4 + *b3 * z1;
            let x3 = t1 - z3;
            let z3 = t1 + z3;
            let y3 = x3 * z3;
            let t1 = t0.double() + t0;
            let t2 = a * z1;
            let t4 = *b3 * t4;
            let t1 = t1 + t2;
            let t2 = a * (t0 - t2);
            let t4 = t4 + t2;
            Proj {
                x: t3 * x3 - t5 * t4,
                y: y3 + t1 * t4,
                z: t5 * z3 + t3 * t1,
            }
        }
    }

    /// Affine `(x, y)` as big-endian bytes; `None` for the identity.
    fn to_affine_be(self) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
        let zi = blinded_invert::<C>(&self.z)?;
        Some(((self.x * zi).to_repr(), (self.y * zi).to_repr()))
    }
}

/// A point of the Edwards form `u² + v² = 1 + d·u²·v²` of a cofactor-4 curve (tc26-256-A,
/// tc26-512-C: gost-pkcs11.md §3, RFC 7836 App. A) in extended coordinates `(X : Y : Z : T)`,
/// `u = X/Z`, `v = Y/Z`, `T = X·Y/Z`; identity `(0 : 1 : 1 : 0)`. With `d` a non-square the
/// addition law is complete (Bernstein–Lange 2007, Theorem 3.3), and a mixed addition costs
/// 8 multiplications instead of the 16 of the generic-a Weierstrass formulas.
#[derive(Clone, Copy)]
struct Ext<C: PrimeCurveParams> {
    x: C::FieldElement,
    y: C::FieldElement,
    z: C::FieldElement,
    t: C::FieldElement,
}

impl<C: GostCurve> Ext<C> {
    fn identity() -> Self {
        Ext {
            x: C::FieldElement::ZERO,
            y: C::FieldElement::ONE,
            z: C::FieldElement::ONE,
            t: C::FieldElement::ZERO,
        }
    }

    /// `self + (u2, v2)` given `w2 = d·u2·v2` ("add-2008-hwcd" of Hisil–Wong–Carter–Dawson
    /// 2008 with Z2 = 1 and e = 1).
    #[inline(always)]
    fn add_mixed(&self, u2: &C::FieldElement, v2: &C::FieldElement, w2: &C::FieldElement) -> Self {
        let a = self.x * u2;
        let b = self.y * v2;
        let c = self.t * w2;
        let e = (self.x + self.y) * (*u2 + v2) - a - b;
        let f = self.z - c;
        let g = self.z + c;
        let h = b - a;
        Ext {
            x: e * f,
            y: g * h,
            t: e * h,
            z: f * g,
        }
    }

    /// Weierstrass affine `(x, y)` as big-endian bytes: `x = s(1+v)/(1-v) + t`,
    /// `y = s(1+v)/((1-v)u)` (gost-pkcs11.md §3, RFC 7836 App. A.2), with one inversion of
    /// `(Z - Y)·X`. `None` for the identity (and the point of order 2, never reached here).
    fn to_weierstrass_be(
        self,
        s: &C::FieldElement,
        t: &C::FieldElement,
    ) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
        let inv = blinded_invert::<C>(&((self.z - self.y) * self.x))?;
        let n = *s * (self.z + self.y) * inv;
        Some(((n * self.x + t).to_repr(), (n * self.z).to_repr()))
    }

    /// `2·self` ("dbl-2008-hwcd" with a = e = 1: 4M + 4S; complete like the addition). The
    /// doubling does not read T, so `T` of the result is only computed when `with_t` (that is,
    /// when an addition follows); otherwise it is left as zero.
    fn double(&self, with_t: bool) -> Self {
        let a = self.x.square();
        let b = self.y.square();
        let c = self.z.square().double();
        let e = (self.x + self.y).square() - a - b;
        let g = a + b;
        let f = g - c;
        let h = a - b;
        Ext {
            x: e * f,
            y: g * h,
            t: if with_t { e * h } else { C::FieldElement::ZERO },
            z: f * g,
        }
    }

    /// Affine `(u, v, d·u·v)` (variable time: public points only).
    fn to_affine_vartime(self, d: &C::FieldElement) -> Option<[C::FieldElement; 3]> {
        let zi = Option::<C::FieldElement>::from(self.z.invert_vartime())?;
        let (u, v) = (self.x * zi, self.y * zi);
        Some([u, v, *d * u * v])
    }
}

/// `z1·P + z2·Q` on the Edwards form of a cofactor-4 curve, for public scalars (big-endian) and
/// a public affine Weierstrass `Q` of order q; affine Weierstrass big-endian `(x, y)`, `None`
/// for the identity. Complete formulas (d is a non-square), so no special cases.
pub(crate) fn lincomb_vartime_edwards<C: GostCurve>(
    z1_be: &[u8],
    q_point: &AffinePoint<C>,
    z2_be: &[u8],
) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
    let d = C::EDWARDS_D?;
    let table = C::base_table();
    let ed = table.edwards.as_ref()?;
    let fe = |b| Option::<C::FieldElement>::from(C::FieldElement::from_repr(b));
    let (x, y) = (fe(q_point.x())?, fe(q_point.y())?);
    // u = (x - t)/y, v = (x - t - s)/(x - t + s) (gost-pkcs11.md §3).
    let xt = x - ed.t;
    let u = xt * Option::<C::FieldElement>::from(y.invert_vartime())?;
    let v = (xt - ed.s) * Option::<C::FieldElement>::from((xt + ed.s).invert_vartime())?;
    // Q, 3Q, …, 15Q as affine (u, v, d·u·v).
    let q1 = [u, v, d * u * v];
    let q2 = Ext::<C> {
        x: u,
        y: v,
        z: C::FieldElement::ONE,
        t: u * v,
    }
    .double(true)
    .to_affine_vartime(&d)?;
    let mut ext = vec![Ext::<C> {
        x: u,
        y: v,
        z: C::FieldElement::ONE,
        t: u * v,
    }];
    for i in 1..8 {
        ext.push(ext[i - 1].add_mixed(&q2[0], &q2[1], &q2[2]));
    }
    let mut zs: Vec<C::FieldElement> = ext.iter().map(|p| p.z).collect();
    batch_invert_vartime(&mut zs);
    let mut odd = vec![q1];
    for (p, zi) in ext.iter().zip(&zs).skip(1) {
        let (u, v) = (p.x * zi, p.y * zi);
        odd.push([u, v, d * u * v]);
    }

    let mut acc = Ext::<C>::identity();
    let naf = crate::validate::wnaf5(z2_be);
    for (i, &digit) in naf.iter().enumerate().rev() {
        // T is needed by an addition right after, or by the fixed-base additions at the end.
        acc = acc.double(digit != 0 || i == 0);
        if digit != 0 {
            let [u, v, w] = odd[usize::from(digit.unsigned_abs() / 2)];
            acc = if digit > 0 {
                acc.add_mixed(&u, &v, &w)
            } else {
                acc.add_mixed(&-u, &v, &-w)
            };
        }
    }
    for (i, &digit) in BaseTable::<C>::recode(z1_be).iter().enumerate() {
        if digit != 0 {
            let e = 3 * (i * ROW + digit.unsigned_abs() as usize - 1);
            let u = C::fe_from_words(&table.words[e]);
            let v = C::fe_from_words(&table.words[e + 1]);
            let w = C::fe_from_words(&table.words[e + 2]);
            acc = if digit > 0 {
                acc.add_mixed(&u, &v, &w)
            } else {
                acc.add_mixed(&-u, &v, &-w)
            };
        }
    }
    // Back to Weierstrass: x = s(Z+Y)/(Z-Y) + t, y = s(Z+Y)·Z/((Z-Y)·X).
    let den = (acc.z - acc.y) * acc.x;
    let inv = Option::<C::FieldElement>::from(den.invert_vartime())?;
    let n = ed.s * (acc.z + acc.y) * inv;
    Some(((n * acc.x + ed.t).to_repr(), (n * acc.z).to_repr()))
}

/// Edwards data of a cofactor-4 curve: `d` and the map constants `s = (1-d)/4`,
/// `t = (1+d)/6` (gost-pkcs11.md §3; e = 1 for both curves).
struct EdwardsMap<C: PrimeCurveParams> {
    s: C::FieldElement,
    t: C::FieldElement,
}

/// Invert many public field elements with one inversion (Montgomery's trick); zeros stay zero.
pub(crate) fn batch_invert_vartime<F: Field>(v: &mut [F]) {
    let mut prefix = Vec::with_capacity(v.len());
    let mut acc = F::ONE;
    for x in v.iter() {
        prefix.push(acc);
        if !bool::from(x.is_zero()) {
            acc *= x;
        }
    }
    let mut inv = Option::<F>::from(acc.invert()).unwrap_or(F::ZERO);
    for (x, pre) in v.iter_mut().zip(prefix).rev() {
        if !bool::from(x.is_zero()) {
            let xi = inv * pre;
            inv *= *x;
            *x = xi;
        }
    }
}

/// Fixed-base table for the generator P: row `i` holds `j · 2^(W·i) · P` for `j = 1..=ROW`,
/// in affine coordinates, so `k·P` is one mixed addition per `W`-bit digit and no doublings.
pub(crate) struct BaseTable<C: GostCurve> {
    /// The entries as affine Weierstrass `(x, y)`, row-major, for the variable-time path; only
    /// kept for the Edwards curves (otherwise `words` holds exactly these).
    affine: Vec<(C::FieldElement, C::FieldElement)>,
    /// The same entries as Montgomery words for the constant-time path, row-major, `STRIDE`
    /// field elements each: Weierstrass `(x, y)`, or Edwards `(u, v, d·u·v)`.
    words: Vec<C::Words>,
    /// Field elements per entry in `words`: 2 or 3.
    stride: usize,
    /// `3·b`, for the generic-a Weierstrass formulas.
    b3: C::FieldElement,
    /// Set for the cofactor-4 curves: the constant-time path runs on the Edwards form.
    edwards: Option<EdwardsMap<C>>,
}

impl<C: GostCurve> BaseTable<C> {
    /// Number of signed digits that cover a scalar of `8·byte_len` bits plus the final carry.
    fn digits() -> usize {
        byte_len::<C>() * 8 / W + 1
    }

    /// Build the table (public data; a few milliseconds, once per curve).
    pub(crate) fn new() -> Self {
        use elliptic_curve::group::Curve as _;
        let n = Self::digits();
        let mut proj = Vec::with_capacity(n * ROW);
        let mut base = ProjectivePoint::<C>::GENERATOR;
        for _ in 0..n {
            let mut acc = base;
            for _ in 0..ROW {
                proj.push(acc);
                acc += &base;
            }
            // 2^W · base = 2 · (2^(W-1) · base), the last entry of this row doubled.
            base = proj[proj.len() - 1].double();
        }
        let mut affine = vec![AffinePoint::<C>::IDENTITY; proj.len()];
        ProjectivePoint::<C>::batch_normalize(&proj, &mut affine);
        let xy: Vec<(C::FieldElement, C::FieldElement)> = affine
            .iter()
            .map(|p| {
                let f = |b| {
                    Option::from(C::FieldElement::from_repr(b)).unwrap_or(C::FieldElement::ZERO)
                };
                (f(p.x()), f(p.y()))
            })
            .collect();
        let b3 = C::EQUATION_B.double() + C::EQUATION_B;
        let (words, stride, edwards) = match C::EDWARDS_D {
            None => {
                let words = xy
                    .iter()
                    .flat_map(|(x, y)| [C::fe_words(x), C::fe_words(y)])
                    .collect();
                (words, 2, None)
            }
            Some(d) => {
                // s = (1 - d)/4, t = (1 + d)/6; u = (x - t)/y, v = (x - t - s)/(x - t + s).
                let one = C::FieldElement::ONE;
                let four = C::FieldElement::from(4u64);
                let six = C::FieldElement::from(6u64);
                let s = (one - d)
                    * Option::<C::FieldElement>::from(Field::invert(&four)).unwrap_or(one);
                let t =
                    (one + d) * Option::<C::FieldElement>::from(Field::invert(&six)).unwrap_or(one);
                let mut den: Vec<C::FieldElement> = Vec::with_capacity(2 * xy.len());
                for (x, y) in &xy {
                    den.push(*y);
                    den.push(*x - t + s);
                }
                batch_invert_vartime(&mut den);
                let mut words = Vec::with_capacity(3 * xy.len());
                for (i, (x, _)) in xy.iter().enumerate() {
                    let u = (*x - t) * den[2 * i];
                    let v = (*x - t - s) * den[2 * i + 1];
                    words.extend([C::fe_words(&u), C::fe_words(&v), C::fe_words(&(d * u * v))]);
                }
                (words, 3, Some(EdwardsMap { s, t }))
            }
        };
        Self {
            affine: if edwards.is_some() { xy } else { Vec::new() },
            words,
            stride,
            b3,
            edwards,
        }
    }

    /// Signed `W`-bit digits of a big-endian scalar, least significant first; each digit in
    /// `[-(2^(W-1)-1), 2^(W-1)]`. Branch-free (the carries are computed arithmetically).
    fn recode(be: &[u8]) -> Vec<i32> {
        let n = Self::digits();
        let len = be.len();
        let bit = |i: usize| -> i32 {
            if i >= len * 8 {
                0
            } else {
                i32::from((be[len - 1 - i / 8] >> (i % 8)) & 1)
            }
        };
        let mut out = Vec::with_capacity(n);
        let mut carry = 0i32;
        for i in 0..n {
            let mut chunk = 0i32;
            for b in 0..W {
                chunk |= bit(i * W + b) << b;
            }
            let v = chunk + carry; // 0 ..= 2^W
            carry = (v + (ROW as i32) - 1) >> W; // 1 iff v > 2^(W-1)
            out.push(v - (carry << W));
        }
        debug_assert_eq!(carry, 0);
        out
    }

    /// Read row `i` in full and keep entry `|d| - 1` (all zero words if `d = 0`) with word
    /// masks: no secret-dependent index or branch. Returns the `stride` coordinates.
    #[inline(always)]
    fn select(&self, i: usize, abs: Word, out: &mut [C::Words; 3]) {
        let st = self.stride;
        let row = &self.words[st * ROW * i..st * ROW * (i + 1)];
        for o in out.iter_mut() {
            o.as_mut().iter_mut().for_each(|w| *w = 0);
        }
        for j in 0..ROW {
            // all ones iff abs == j + 1 (the xor is < 2^(W+1), so `- 1` borrows iff it is 0)
            let x = abs ^ (j as Word + 1);
            let mask =
                core::hint::black_box((x.wrapping_sub(1) >> (Word::BITS - 1)).wrapping_neg());
            for c in 0..st {
                for (o, e) in out[c].as_mut().iter_mut().zip(row[st * j + c].as_ref()) {
                    *o |= e & mask;
                }
            }
        }
    }

    /// `k·P` in constant time, as affine big-endian `(x, y)`; `None` if `k = 0`. For every
    /// digit the whole table row is read, then one complete mixed addition is made.
    pub(crate) fn mul(&self, k: &Scalar<C>) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
        let be = Zeroizing::new(k.to_repr());
        let mut digits = Zeroizing::new(Self::recode(&be));
        let mut sel = [C::Words::default(); 3];
        let out = match &self.edwards {
            None => {
                let mut acc = Proj::<C>::identity();
                for (i, &d) in digits.iter().enumerate() {
                    let neg = ((d >> 31) & 1) as Word; // 1 iff d < 0
                    let abs = ((d ^ -(neg as i32)) + neg as i32) as Word; // |d| in 0..=ROW
                    self.select(i, abs, &mut sel);
                    let tx = C::fe_from_words(&sel[0]);
                    let ty = C::fe_from_words(&sel[1]);
                    let ty =
                        C::FieldElement::conditional_select(&ty, &-ty, Choice::from(neg as u8));
                    let sum = acc.add_mixed(&tx, &ty, &self.b3);
                    // Digit 0 selects nothing (the identity, which RCB's mixed formulas do not
                    // take as input): keep `acc`.
                    let is_zero = abs.ct_eq(&0);
                    acc = Proj {
                        x: C::FieldElement::conditional_select(&sum.x, &acc.x, is_zero),
                        y: C::FieldElement::conditional_select(&sum.y, &acc.y, is_zero),
                        z: C::FieldElement::conditional_select(&sum.z, &acc.z, is_zero),
                    };
                }
                acc.to_affine_be()
            }
            Some(ed) => {
                let mut acc = Ext::<C>::identity();
                for (i, &d) in digits.iter().enumerate() {
                    let neg = ((d >> 31) & 1) as Word;
                    let abs = ((d ^ -(neg as i32)) + neg as i32) as Word;
                    self.select(i, abs, &mut sel);
                    // Digit 0: the Edwards identity (0, 1), d·0·1 = 0, is a valid input.
                    let is_zero = abs.ct_eq(&0);
                    let u = C::fe_from_words(&sel[0]);
                    let v = C::FieldElement::conditional_select(
                        &C::fe_from_words(&sel[1]),
                        &C::FieldElement::ONE,
                        is_zero,
                    );
                    let w = C::fe_from_words(&sel[2]);
                    // -(u, v) = (-u, v).
                    let neg = Choice::from(neg as u8);
                    let u = C::FieldElement::conditional_select(&u, &-u, neg);
                    let w = C::FieldElement::conditional_select(&w, &-w, neg);
                    acc = acc.add_mixed(&u, &v, &w);
                }
                acc.to_weierstrass_be(&ed.s, &ed.t)
            }
        };
        for c in sel.iter_mut() {
            c.as_mut().iter_mut().for_each(|w| *w = 0);
        }
        digits.iter_mut().for_each(|d| *d = 0);
        out
    }

    /// The signed digits of a public big-endian scalar (variable-time users).
    pub(crate) fn recode_public(&self, be: &[u8]) -> Vec<i32> {
        Self::recode(be)
    }

    /// Entry `j` of row `i`: `(j + 1) · 2^(W·i) · P`, affine.
    pub(crate) fn entry(&self, i: usize, j: usize) -> (C::FieldElement, C::FieldElement) {
        let k = i * ROW + j;
        if self.edwards.is_some() {
            self.affine[k]
        } else {
            (
                C::fe_from_words(&self.words[2 * k]),
                C::fe_from_words(&self.words[2 * k + 1]),
            )
        }
    }
}

/// Scalar from big-endian bytes of exactly the right length, `None` unless `< q`.
pub(crate) fn scalar_from_be<C: GostCurve>(be: &[u8]) -> CtOption<Scalar<C>> {
    let mut repr = FieldBytes::<C>::default();
    if be.len() != repr.len() {
        return CtOption::new(Scalar::<C>::ZERO, Choice::from(0));
    }
    repr.copy_from_slice(be);
    Scalar::<C>::from_repr(repr)
}

/// Big-endian bytes of the right length, reduced mod q.
pub(crate) fn scalar_reduce_be<C: GostCurve>(be: &FieldBytes<C>) -> Scalar<C> {
    <Scalar<C> as Reduce<FieldBytes<C>>>::reduce(be)
}

/// `e = LE(digest) mod q`, `e = 1` if that is 0 (RFC 7091 §6.1 steps 2-3; byte order from
/// gost-pkcs11.md §2.1, trap 1). The digest must be exactly `byte_len` bytes (checked by caller).
pub(crate) fn digest_to_e<C: GostCurve>(digest: &[u8]) -> Scalar<C> {
    let mut be = FieldBytes::<C>::default();
    for (dst, src) in be.iter_mut().zip(digest.iter().rev()) {
        *dst = *src;
    }
    let e = scalar_reduce_be::<C>(&be);
    Scalar::<C>::conditional_select(&e, &Scalar::<C>::ONE, e.is_zero())
}

/// A random non-zero scalar from the system RNG: `2·len` random bytes reduced mod q, whose
/// statistical distance from uniform is below `q / 2^(16·len)`, i.e. under 2^-256.
pub(crate) fn random_scalar<C: GostCurve>() -> Result<Scalar<C>, getrandom::Error> {
    let n = byte_len::<C>();
    // 2^(8n) mod q, as a scalar: (2^(8n) - 1) mod q, plus one.
    let mut ff = FieldBytes::<C>::default();
    ff.iter_mut().for_each(|b| *b = 0xFF);
    let two_8n = scalar_reduce_be::<C>(&ff) + Scalar::<C>::ONE;
    loop {
        let mut buf = Zeroizing::new([0u8; 128]);
        getrandom::fill(&mut buf[..2 * n])?;
        let mut hi = Zeroizing::new(FieldBytes::<C>::default());
        let mut lo = Zeroizing::new(FieldBytes::<C>::default());
        hi.copy_from_slice(&buf[..n]);
        lo.copy_from_slice(&buf[n..2 * n]);
        let k = scalar_reduce_be::<C>(&hi) * two_8n + scalar_reduce_be::<C>(&lo);
        if !bool::from(k.is_zero()) {
            return Ok(k);
        }
    }
}

/// Affine `(x, y)` as big-endian byte arrays; `None` for the identity.
#[cfg(test)]
pub(crate) fn affine_xy<C: GostCurve>(
    p: &AffinePoint<C>,
) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
    if bool::from(p.is_identity()) {
        None
    } else {
        Some((p.x(), p.y()))
    }
}

/// What one signature computation produced (the RFC 7091 §7 intermediate values).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct SignOutput<C: GostCurve> {
    pub(crate) e: Scalar<C>,
    pub(crate) cx: FieldBytes<C>,
    pub(crate) cy: FieldBytes<C>,
    pub(crate) r: Scalar<C>,
    pub(crate) s: Scalar<C>,
}

/// RFC 7091 §6.1 steps 2-6 with a given nonce `k` (0 < k < q). `None` if `r = 0` or `s = 0`
/// (the caller picks a new `k`).
pub(crate) fn sign_with_k<C: GostCurve>(
    d: &Scalar<C>,
    digest: &[u8],
    k: &Scalar<C>,
) -> Option<SignOutput<C>> {
    let e = digest_to_e::<C>(digest);
    // Step 4: C = k·P, r = x_C mod q. (k ≠ 0 mod q, so C is not the identity.)
    let (cx, cy) = C::base_table().mul(k)?;
    let r = scalar_reduce_be::<C>(&cx);
    // Step 5: s = (r·d + k·e) mod q.
    let s = r * d + *k * e;
    if bool::from(r.is_zero() | s.is_zero()) {
        return None;
    }
    Some(SignOutput { e, cx, cy, r, s })
}

/// What one verification computed (the RFC 7091 §7 intermediate values).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct VerifyOutput<C: GostCurve> {
    pub(crate) e: Scalar<C>,
    pub(crate) v: Scalar<C>,
    pub(crate) z1: Scalar<C>,
    pub(crate) z2: Scalar<C>,
    /// `C' = z1·P + z2·Q`, affine big-endian (`None`: the identity).
    pub(crate) c: Option<(FieldBytes<C>, FieldBytes<C>)>,
    pub(crate) ok: bool,
}

/// RFC 7091 §6.2 steps 3-7 for `r`, `s` already known to be in `(0, q)`. Public data only:
/// variable time.
pub(crate) fn verify_rs<C: GostCurve>(
    q_point: &AffinePoint<C>,
    digest: &[u8],
    r: &Scalar<C>,
    s: &Scalar<C>,
) -> VerifyOutput<C> {
    let e = digest_to_e::<C>(digest);
    // Step 4: v = e^-1 mod q (e ≠ 0 by construction).
    let v = Option::<Scalar<C>>::from(e.invert_vartime()).unwrap_or(Scalar::<C>::ZERO);
    // Step 5: z1 = s·v, z2 = -r·v mod q.
    let z1 = *s * v;
    let z2 = -(*r * v);
    // Step 6: C = z1·P + z2·Q, R = x_C mod q.
    let c = if C::EDWARDS_D.is_some() {
        lincomb_vartime_edwards::<C>(&z1.to_repr(), q_point, &z2.to_repr())
    } else {
        crate::validate::lincomb_vartime::<C>(&z1.to_repr(), q_point, &z2.to_repr())
    };
    let ok = match &c {
        Some((x, _)) => scalar_reduce_be::<C>(x) == *r,
        None => false,
    };
    VerifyOutput {
        e,
        v,
        z1,
        z2,
        c,
        ok,
    }
}

/// The VKO point `K = (m/q · UKM · d mod q) · Q` (R 50.1.113-2016 §4.3.1), constant time in
/// `d`. `Q` must be a validated point of the q-subgroup; `None` if K is the identity.
pub(crate) fn vko_point<C: GostCurve>(
    d: &Scalar<C>,
    q_point: &AffinePoint<C>,
    ukm: &Scalar<C>,
) -> Option<AffinePoint<C>> {
    let k = Zeroizing::new(*d * ukm * Scalar::<C>::from(u64::from(C::COFACTOR)));
    let p = (ProjectivePoint::<C>::from(*q_point) * *k).to_affine();
    if bool::from(p.is_identity()) {
        None
    } else {
        Some(p)
    }
}

/// `d·P` for a secret `d` (constant time), as big-endian `(x, y)`; `None` if `d = 0`.
pub(crate) fn public_point<C: GostCurve>(d: &Scalar<C>) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
    C::base_table().mul(d)
}

/// Affine point from big-endian coordinates: `None` unless both are `< p` and the point is on
/// the curve. (It is never the identity.) The subgroup check is separate: [`crate::validate`].
pub(crate) fn point_from_be<C: GostCurve>(x: &[u8], y: &[u8]) -> Option<AffinePoint<C>> {
    let mut xb = FieldBytes::<C>::default();
    let mut yb = FieldBytes::<C>::default();
    if x.len() != xb.len() || y.len() != yb.len() {
        return None;
    }
    xb.copy_from_slice(x);
    yb.copy_from_slice(y);
    AffinePoint::<C>::from_coordinates(&xb, &yb).into()
}

/// Whether `Q` (on the curve, not the identity) has order q, i.e. `q·Q = O`. Only needed on
/// the cofactor-4 curves; for cofactor 1 every point on the curve qualifies.
pub(crate) fn in_subgroup<C: GostCurve>(q_point: &AffinePoint<C>) -> bool {
    if C::COFACTOR == 1 {
        return true;
    }
    crate::validate::order_divides_q::<C>(q_point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curves::*;

    /// The Jacobian path, and for the Edwards curves the Edwards path too (must agree).
    fn lincomb_both<C: GostCurve>(
        z1: &[u8],
        q: &AffinePoint<C>,
        z2: &[u8],
    ) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
        let j = crate::validate::lincomb_vartime::<C>(z1, q, z2);
        if C::EDWARDS_D.is_some() {
            assert_eq!(lincomb_vartime_edwards::<C>(z1, q, z2), j, "{}", C::NAME);
        }
        j
    }

    fn check_table<C: GostCurve>() {
        // k·P via the table equals k·P via primeorder's generic multiplication.
        for _ in 0..8 {
            let k = random_scalar::<C>().unwrap();
            let a = C::base_table().mul(&k);
            let b = ProjectivePoint::<C>::GENERATOR * k;
            assert_eq!(a, affine_xy::<C>(&b.to_affine()), "{}", C::NAME);
            let v = lincomb_both::<C>(
                &k.to_repr(),
                &AffinePoint::<C>::GENERATOR,
                &Scalar::<C>::ZERO.to_repr(),
            );
            assert_eq!(v, affine_xy::<C>(&b.to_affine()), "{}", C::NAME);
            // z1·P + z2·Q against primeorder's generic arithmetic, Q = k·P.
            let z1 = random_scalar::<C>().unwrap();
            let z2 = random_scalar::<C>().unwrap();
            let q = b.to_affine();
            if !bool::from(q.is_identity()) {
                let want =
                    ProjectivePoint::<C>::GENERATOR * z1 + ProjectivePoint::<C>::from(q) * z2;
                let got = lincomb_both::<C>(&z1.to_repr(), &q, &z2.to_repr());
                assert_eq!(got, affine_xy::<C>(&want.to_affine()), "{}", C::NAME);
                // Including the cancelling case z1·P + (-z1/k)·Q = O and P + P (doubling).
                let k_inv = Option::<Scalar<C>>::from(k.invert_vartime()).unwrap();
                let z2c = -(z1 * k_inv);
                assert_eq!(lincomb_both::<C>(&z1.to_repr(), &q, &z2c.to_repr()), None);
                let two = lincomb_both::<C>(&(z1 * k).to_repr(), &q, &z1.to_repr());
                let want = ProjectivePoint::<C>::from(q) * (z1 + z1);
                assert_eq!(two, affine_xy::<C>(&want.to_affine()), "{}", C::NAME);
            }
        }
        // Edge scalars: 0, 1, 2, q-1, and all-digit patterns.
        for k in [
            Scalar::<C>::ZERO,
            Scalar::<C>::ONE,
            Scalar::<C>::from(2u64),
            Scalar::<C>::from(32u64),
            Scalar::<C>::from(33u64),
            -Scalar::<C>::ONE,
            -Scalar::<C>::from(32u64),
        ] {
            let b = ProjectivePoint::<C>::GENERATOR * k;
            let a = C::base_table().mul(&k);
            assert_eq!(a, affine_xy::<C>(&b.to_affine()), "{}", C::NAME);
            let v = lincomb_both::<C>(
                &k.to_repr(),
                &AffinePoint::<C>::GENERATOR,
                &Scalar::<C>::ZERO.to_repr(),
            );
            assert_eq!(v, affine_xy::<C>(&b.to_affine()), "{}", C::NAME);
        }
        // (q-1)·P = -P.
        let g = ProjectivePoint::<C>::GENERATOR.to_affine();
        let m = C::base_table().mul(&-Scalar::<C>::ONE);
        assert_eq!(m, affine_xy::<C>(&-g), "{}", C::NAME);
        // 0·P = O.
        assert!(C::base_table().mul(&Scalar::<C>::ZERO).is_none());
    }

    #[test]
    fn base_tables_match_generic_multiplication() {
        check_table::<tc26_256_a::Tc26Gost256A>();
        check_table::<tc26_256_b::Tc26Gost256B>();
        check_table::<tc26_256_c::Tc26Gost256C>();
        check_table::<tc26_256_d::Tc26Gost256D>();
        check_table::<tc26_512_a::Tc26Gost512A>();
        check_table::<tc26_512_b::Tc26Gost512B>();
        check_table::<tc26_512_c::Tc26Gost512C>();
        check_table::<test_256::GostTest256>();
        check_table::<test_512::GostTest512>();
    }

    /// The Edwards map constants give back the Weierstrass a and b (gost-pkcs11.md §3:
    /// a = s² - 3t², b = 2t³ - t·s²).
    #[test]
    fn edwards_map_matches_weierstrass_coefficients() {
        fn check<C: GostCurve>() {
            let ed = C::base_table().edwards.as_ref().unwrap();
            let (s, t) = (ed.s, ed.t);
            let three = C::FieldElement::from(3u64);
            assert_eq!(
                s.square() - three * t.square(),
                C::EQUATION_A,
                "{}",
                C::NAME
            );
            assert_eq!(
                t.square() * t.double() - t * s.square(),
                C::EQUATION_B,
                "{}",
                C::NAME
            );
        }
        check::<tc26_256_a::Tc26Gost256A>();
        check::<tc26_512_c::Tc26Gost512C>();
    }

    #[test]
    fn recode_reconstructs() {
        type C = tc26_256_b::Tc26Gost256B;
        for _ in 0..32 {
            let k = random_scalar::<C>().unwrap();
            let digits = BaseTable::<C>::recode(&k.to_repr());
            // Σ d_i·2^(W·i) computed in the scalar field equals k.
            let mut acc = Scalar::<C>::ZERO;
            let mut pow = Scalar::<C>::ONE;
            let step = Scalar::<C>::from(1u64 << W);
            for &d in &digits {
                assert!((-(ROW as i32) < d) && d <= ROW as i32);
                let m = Scalar::<C>::from(d.unsigned_abs() as u64);
                acc += if d < 0 { -(m * pow) } else { m * pow };
                pow *= step;
            }
            assert_eq!(acc, k);
        }
    }
}
