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
    ops::{Invert, MulVartime, Reduce},
    point::AffineCoordinates,
    subtle::{Choice, ConditionallySelectable, ConstantTimeEq, CtOption},
};
use primeorder::{AffinePoint, PrimeCurveParams, ProjectivePoint};
use zeroize::Zeroizing;

/// A scalar (integer mod q) of curve `C`.
pub(crate) type Scalar<C> = <C as CurveArithmetic>::Scalar;

/// What `lib.rs` needs from a curve beyond `primeorder`'s traits.
pub(crate) trait GostCurve: PrimeCurveParams {
    /// The `crypto-bigint` integer type of the field (U256 or U512).
    #[allow(dead_code)]
    type U;
    /// `m / q`: 1 or 4 (gost-pkcs11.md §3).
    const COFACTOR: u32;
    /// Module name, for diagnostics.
    #[allow(dead_code)]
    const NAME: &'static str;
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

/// Fixed-base table for the generator P: row `i` holds `j · 2^(W·i) · P` for `j = 1..=ROW`,
/// in affine coordinates, so `k·P` is one mixed addition per `W`-bit digit and no doublings.
pub(crate) struct BaseTable<C: PrimeCurveParams> {
    rows: Vec<[AffinePoint<C>; ROW]>,
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
        let rows = affine
            .chunks_exact(ROW)
            .map(|c| core::array::from_fn(|j| c[j]))
            .collect();
        Self { rows }
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

    /// `k·P` in constant time: every row is scanned in full with conditional selects.
    pub(crate) fn mul(&self, k: &Scalar<C>) -> ProjectivePoint<C> {
        let be = Zeroizing::new(k.to_repr());
        let mut digits = Zeroizing::new(Self::recode(&be));
        let mut acc = ProjectivePoint::<C>::IDENTITY;
        for (row, &d) in self.rows.iter().zip(digits.iter()) {
            let neg = (d >> 31) & 1; // 1 iff d < 0
            let abs = ((d ^ -neg) + neg) as u32; // |d|, branch-free
            let mut t = AffinePoint::<C>::IDENTITY;
            for (j, entry) in row.iter().enumerate() {
                t.conditional_assign(entry, abs.ct_eq(&(j as u32 + 1)));
            }
            let t_neg = -t;
            t.conditional_assign(&t_neg, Choice::from(neg as u8));
            acc += &t; // complete mixed addition; handles t = identity
        }
        digits.iter_mut().for_each(|d| *d = 0);
        acc
    }

    /// `k·P` in variable time (public scalars only: verification).
    pub(crate) fn mul_vartime(&self, k: &Scalar<C>) -> ProjectivePoint<C> {
        let digits = Self::recode(&k.to_repr());
        let mut acc = ProjectivePoint::<C>::IDENTITY;
        for (row, &d) in self.rows.iter().zip(digits.iter()) {
            if d > 0 {
                acc += &row[(d - 1) as usize];
            } else if d < 0 {
                acc += &-row[(-d - 1) as usize];
            }
        }
        acc
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

/// A uniformly random non-zero scalar from the system RNG: `2·len` random bytes reduced mod q
/// (statistical distance from uniform below `2^-(8·len - 2)`, i.e. 2^-254 or worse never).
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
    pub(crate) c: AffinePoint<C>,
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
    // Step 4: C = k·P, r = x_C mod q.
    let c = C::base_table().mul(k).to_affine();
    let r = scalar_reduce_be::<C>(&c.x());
    // Step 5: s = (r·d + k·e) mod q.
    let s = r * d + *k * e;
    if bool::from(r.is_zero() | s.is_zero()) {
        return None;
    }
    Some(SignOutput { e, c, r, s })
}

/// What one verification computed (the RFC 7091 §7 intermediate values).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct VerifyOutput<C: GostCurve> {
    pub(crate) e: Scalar<C>,
    pub(crate) v: Scalar<C>,
    pub(crate) z1: Scalar<C>,
    pub(crate) z2: Scalar<C>,
    /// `C' = z1·P + z2·Q` (identity if the check failed there).
    pub(crate) c: AffinePoint<C>,
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
    let c = (C::base_table().mul_vartime(&z1)
        + ProjectivePoint::<C>::from(*q_point).mul_vartime(&z2))
    .to_affine();
    let ok = match affine_xy::<C>(&c) {
        Some((x, _)) => scalar_reduce_be::<C>(&x) == *r,
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

/// `d·P` for a secret `d` (constant time).
pub(crate) fn public_point<C: GostCurve>(d: &Scalar<C>) -> AffinePoint<C> {
    C::base_table().mul(d).to_affine()
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

    fn check_table<C: GostCurve>() {
        // k·P via the table equals k·P via primeorder's generic multiplication.
        for _ in 0..8 {
            let k = random_scalar::<C>().unwrap();
            let a = C::base_table().mul(&k);
            let b = ProjectivePoint::<C>::GENERATOR * k;
            assert_eq!(a, b, "{}", C::NAME);
            assert_eq!(C::base_table().mul_vartime(&k), b, "{}", C::NAME);
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
            assert_eq!(C::base_table().mul(&k), b, "{}", C::NAME);
            assert_eq!(C::base_table().mul_vartime(&k), b, "{}", C::NAME);
        }
        // q·P = O: (q-1)·P + P.
        let g = ProjectivePoint::<C>::GENERATOR;
        assert!(bool::from(
            (C::base_table().mul(&-Scalar::<C>::ONE) + g).is_identity()
        ));
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
