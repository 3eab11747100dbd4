//! Exact (variable-time, public-data-only) point arithmetic: public-key validation and the
//! double-scalar multiplication of signature verification.
//!
//! `primeorder`'s complete Renes–Costello–Batina formulas are exception-free only for points of
//! odd order. On the cofactor-4 curves (tc26-256-A, tc26-512-C) an attacker can offer a point of
//! order 2, 4, 2q or 4q, where those formulas may return the "zero" triple (0:0:0), which would
//! look like the identity and let such a point pass a `q·Q = O` test (observed: with
//! `primeorder`, `(q-1)·T + T` "is the identity" for T of order 2 and of order 4 on
//! tc26-256-A and tc26-512-C). So the subgroup test here
//! uses textbook Jacobian formulas with every special case (identity, `P = ±Q`, `y = 0`) handled
//! explicitly. It is variable time, which is fine: its input is a public key.
//!
//! Verification uses the same arithmetic for `z1·P + z2·Q` (signature, digest and key are all
//! public): Jacobian coordinates, `a = -3` doubling where it applies, a width-5 NAF of `z2`
//! over affine odd multiples of Q, and the fixed-base table rows of P for `z1`.

use elliptic_curve::{
    Curve, FieldBytes,
    bigint::Encoding,
    ff::{Field, PrimeField},
    ops::Invert,
};
use primeorder::AffinePoint;

use crate::arith::GostCurve;

/// Jacobian point `(X : Y : Z)` = affine `(X/Z², Y/Z³)`; `None` is the identity.
type Jac<F> = Option<(F, F, F)>;

fn is_zero<F: Field>(f: &F) -> bool {
    bool::from(f.is_zero())
}

fn eq<F: Field>(a: &F, b: &F) -> bool {
    bool::from(a.ct_eq(b))
}

fn double<C: GostCurve>(p: Jac<C::FieldElement>) -> Jac<C::FieldElement> {
    let (x, y, z) = p?;
    if is_zero(&y) {
        return None; // point of order 2
    }
    if C::A_IS_MINUS_3 {
        // dbl-2001-b (a = -3), Explicit-Formulas Database.
        let delta = z.square();
        let gamma = y.square();
        let beta = x * gamma;
        let t = (x - delta) * (x + delta);
        let alpha = t.double() + t;
        let beta4 = beta.double().double();
        let x3 = alpha.square() - beta4.double();
        let z3 = (y + z).square() - gamma - delta;
        let y3 = alpha * (beta4 - x3) - gamma.square().double().double().double();
        return Some((x3, y3, z3));
    }
    // dbl-2007-bl (generic a), Explicit-Formulas Database.
    let xx = x.square();
    let yy = y.square();
    let yyyy = yy.square();
    let zz = z.square();
    let s = ((x + yy).square() - xx - yyyy).double();
    let m = xx.double() + xx + C::EQUATION_A * zz.square();
    let x3 = m.square() - s.double();
    let y3 = m * (s - x3) - yyyy.double().double().double();
    let z3 = (y + z).square() - yy - zz;
    Some((x3, y3, z3))
}

/// `p + (x2, y2)` with an affine second operand.
fn add_affine<C: GostCurve>(
    p: Jac<C::FieldElement>,
    x2: &C::FieldElement,
    y2: &C::FieldElement,
) -> Jac<C::FieldElement> {
    let Some((x1, y1, z1)) = p else {
        return Some((*x2, *y2, C::FieldElement::ONE));
    };
    let z1z1 = z1.square();
    let u2 = *x2 * z1z1;
    let s2 = *y2 * z1 * z1z1;
    if eq(&u2, &x1) {
        if eq(&s2, &y1) {
            return double::<C>(Some((x1, y1, z1)));
        }
        return None; // P + (-P)
    }
    // madd-2007-bl.
    let h = u2 - x1;
    let hh = h.square();
    let i = hh.double().double();
    let j = h * i;
    let r = (s2 - y1).double();
    let v = x1 * i;
    let x3 = r.square() - j - v.double();
    let y3 = r * (v - x3) - (y1 * j).double();
    let z3 = (z1 + h).square() - z1z1 - hh;
    Some((x3, y3, z3))
}

/// `n·P` for an affine non-identity `P`, by left-to-right double-and-add over the big-endian
/// bytes of `n`.
fn mul_be<C: GostCurve>(p: &AffinePoint<C>, n_be: &[u8]) -> Jac<C::FieldElement> {
    use elliptic_curve::point::AffineCoordinates;
    let x = Option::<C::FieldElement>::from(C::FieldElement::from_repr(p.x()))?;
    let y = Option::<C::FieldElement>::from(C::FieldElement::from_repr(p.y()))?;
    let mut acc: Jac<C::FieldElement> = None;
    for byte in n_be {
        for bit in (0..8).rev() {
            acc = double::<C>(acc);
            if (byte >> bit) & 1 == 1 {
                acc = add_affine::<C>(acc, &x, &y);
            }
        }
    }
    acc
}

/// Whether `q·P = O` for an affine point `P` on the curve that is not the identity.
pub(crate) fn order_divides_q<C: GostCurve>(p: &AffinePoint<C>) -> bool {
    if bool::from(p.is_identity()) {
        return false;
    }
    let q_be = <C as Curve>::ORDER.as_ref().to_be_bytes();
    mul_be::<C>(p, q_be.as_ref()).is_none()
}

/// Exact `n·P` in affine big-endian coordinates (`None` = identity); used by tests to build
/// points of small order.
#[cfg(test)]
pub(crate) fn mul_exact<C: GostCurve>(
    p: &AffinePoint<C>,
    n_be: &[u8],
) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
    let (x, y, z) = mul_be::<C>(p, n_be)?;
    let zi = Option::<C::FieldElement>::from(Field::invert(&z))?;
    let zi2 = zi.square();
    Some(((x * zi2).to_repr(), (y * zi2 * zi).to_repr()))
}

/// Signed width-5 NAF of a big-endian integer, least significant digit first: digits in
/// `{0, ±1, ±3, …, ±15}`, at most one non-zero digit in any 5 consecutive ones.
pub(crate) fn wnaf5(be: &[u8]) -> Vec<i8> {
    // Little-endian 64-bit limbs plus one spare limb for the carries.
    let mut limbs = vec![0u64; be.len().div_ceil(8) + 1];
    for (i, b) in be.iter().rev().enumerate() {
        limbs[i / 8] |= u64::from(*b) << (8 * (i % 8));
    }
    let mut out = Vec::with_capacity(8 * be.len() + 1);
    while limbs.iter().any(|&l| l != 0) {
        let mut d = 0i8;
        if limbs[0] & 1 == 1 {
            d = (limbs[0] & 31) as i8;
            if d > 16 {
                d -= 32;
            }
            // limbs -= d
            if d > 0 {
                let mut borrow = d as u64;
                for l in limbs.iter_mut() {
                    let (x, b) = l.overflowing_sub(borrow);
                    *l = x;
                    borrow = u64::from(b);
                    if borrow == 0 {
                        break;
                    }
                }
            } else {
                let mut carry = u64::from(d.unsigned_abs());
                for l in limbs.iter_mut() {
                    let (x, c) = l.overflowing_add(carry);
                    *l = x;
                    carry = u64::from(c);
                    if carry == 0 {
                        break;
                    }
                }
            }
        }
        out.push(d);
        // limbs >>= 1
        for i in 0..limbs.len() {
            let hi = limbs.get(i + 1).copied().unwrap_or(0);
            limbs[i] = (limbs[i] >> 1) | (hi << 63);
        }
    }
    out
}

/// `z1·P + z2·Q` for public scalars (big-endian) and a public affine `Q`; affine big-endian
/// `(x, y)`, `None` for the identity. `P`'s part comes from the fixed-base table rows.
pub(crate) fn lincomb_vartime<C: GostCurve>(
    z1_be: &[u8],
    q_point: &AffinePoint<C>,
    z2_be: &[u8],
) -> Option<(FieldBytes<C>, FieldBytes<C>)> {
    use elliptic_curve::point::AffineCoordinates;
    let fe = |b| Option::<C::FieldElement>::from(C::FieldElement::from_repr(b));
    let (qx, qy) = (fe(q_point.x())?, fe(q_point.y())?);
    // Q, 3Q, 5Q, …, 15Q in affine coordinates (one batch inversion). Q has order q, so none of
    // these is the identity.
    let (x2, y2, z2) = double::<C>(Some((qx, qy, C::FieldElement::ONE)))?;
    let z2i = Option::<C::FieldElement>::from(z2.invert_vartime())?;
    let (q2x, q2y) = (x2 * z2i.square(), y2 * z2i.square() * z2i);
    let mut jac = vec![(qx, qy, C::FieldElement::ONE)];
    for i in 1..8 {
        jac.push(add_affine::<C>(Some(jac[i - 1]), &q2x, &q2y)?);
    }
    let mut zs: Vec<C::FieldElement> = jac.iter().map(|p| p.2).collect();
    crate::arith::batch_invert_vartime(&mut zs);
    let odd: Vec<(C::FieldElement, C::FieldElement)> = jac
        .iter()
        .zip(&zs)
        .map(|((x, y, _), zi)| (*x * zi.square(), *y * zi.square() * zi))
        .collect();

    let mut acc: Jac<C::FieldElement> = None;
    for &d in wnaf5(z2_be).iter().rev() {
        acc = double::<C>(acc);
        if d != 0 {
            let (x, y) = odd[usize::from(d.unsigned_abs() / 2)];
            acc = if d > 0 {
                add_affine::<C>(acc, &x, &y)
            } else {
                add_affine::<C>(acc, &x, &-y)
            };
        }
    }
    let table = C::base_table();
    for (i, &d) in table.recode_public(z1_be).iter().enumerate() {
        if d != 0 {
            let (x, y) = table.entry(i, d.unsigned_abs() as usize - 1);
            acc = if d > 0 {
                add_affine::<C>(acc, &x, &y)
            } else {
                add_affine::<C>(acc, &x, &-y)
            };
        }
    }
    let (x, y, z) = acc?;
    let zi = Option::<C::FieldElement>::from(z.invert_vartime())?;
    let zi2 = zi.square();
    Some(((x * zi2).to_repr(), (y * zi2 * zi).to_repr()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curves::{tc26_256_a::Tc26Gost256A, tc26_512_c::Tc26Gost512C};
    use crate::{ParamSet, VerifyingKey};
    use elliptic_curve::point::AffineCoordinates;

    /// A random point on the curve (not necessarily in the q-subgroup).
    fn random_point<C: GostCurve>() -> AffinePoint<C> {
        loop {
            let mut xb = FieldBytes::<C>::default();
            getrandom::fill(&mut xb).unwrap();
            xb[0] &= 0x3F; // below p for every curve here
            let Some(x) = Option::<C::FieldElement>::from(C::FieldElement::from_repr(xb)) else {
                continue;
            };
            let rhs = x.square() * x + C::EQUATION_A * x + C::EQUATION_B;
            let Some(y) = Option::<C::FieldElement>::from(rhs.sqrt()) else {
                continue;
            };
            let p = Option::<AffinePoint<C>>::from(AffinePoint::<C>::from_coordinates(
                &x.to_repr(),
                &y.to_repr(),
            ));
            if let Some(p) = p {
                return p;
            }
        }
    }

    fn encode<C: GostCurve>(xy: &(FieldBytes<C>, FieldBytes<C>)) -> Vec<u8> {
        let mut v: Vec<u8> = xy.0.iter().rev().copied().collect();
        v.extend(xy.1.iter().rev());
        v
    }

    fn point<C: GostCurve>(xy: &(FieldBytes<C>, FieldBytes<C>)) -> AffinePoint<C> {
        Option::from(AffinePoint::<C>::from_coordinates(&xy.0, &xy.1)).unwrap()
    }

    /// On a cofactor-4 curve, build points of order 2, 4, 2q and 4q and check that every one
    /// is refused as a public key while 4·R (order q) is accepted.
    fn small_order_points_refused<C: GostCurve>(params: ParamSet) {
        let q = <C as Curve>::ORDER.as_ref().to_be_bytes();
        let q = q.as_ref();
        // R of order 4q: q·R must have order exactly 4.
        let (r, p4) = loop {
            let r = random_point::<C>();
            if let Some(p4) = mul_exact::<C>(&r, q) {
                let p4_pt = point::<C>(&p4);
                if mul_exact::<C>(&p4_pt, &[2]).is_some() {
                    break (r, p4);
                }
            }
        };
        let p4_pt = point::<C>(&p4);
        assert!(mul_exact::<C>(&p4_pt, &[4]).is_none(), "order 4");
        let t2 = mul_exact::<C>(&p4_pt, &[2]).unwrap();
        let r_xy = (r.x(), r.y());
        let r2 = mul_exact::<C>(&r, &[2]).unwrap();
        let r4 = mul_exact::<C>(&r, &[4]).unwrap();

        for (what, xy) in [
            ("order 4", &p4),
            ("order 2", &t2),
            ("order 4q", &r_xy),
            ("order 2q", &r2),
        ] {
            assert_eq!(
                VerifyingKey::from_le_bytes(params, &encode::<C>(xy)),
                Err(crate::Error::InvalidPublicKey),
                "{what} point accepted"
            );
            assert!(!order_divides_q::<C>(&point::<C>(xy)), "{what}");
        }
        // 4·R has order q: a valid public key.
        VerifyingKey::from_le_bytes(params, &encode::<C>(&r4)).unwrap();
        assert!(order_divides_q::<C>(&point::<C>(&r4)));
    }

    #[test]
    fn tc26_256_a_small_order_points_refused() {
        for _ in 0..4 {
            small_order_points_refused::<Tc26Gost256A>(ParamSet::Tc26Gost256A);
        }
    }

    #[test]
    fn tc26_512_c_small_order_points_refused() {
        for _ in 0..4 {
            small_order_points_refused::<Tc26Gost512C>(ParamSet::Tc26Gost512C);
        }
    }

    #[test]
    fn generators_have_order_q() {
        fn g<C: GostCurve>() {
            assert!(
                order_divides_q::<C>(&AffinePoint::<C>::GENERATOR),
                "{}",
                C::NAME
            );
        }
        use crate::curves::*;
        g::<tc26_256_a::Tc26Gost256A>();
        g::<tc26_256_b::Tc26Gost256B>();
        g::<tc26_256_c::Tc26Gost256C>();
        g::<tc26_256_d::Tc26Gost256D>();
        g::<tc26_512_a::Tc26Gost512A>();
        g::<tc26_512_b::Tc26Gost512B>();
        g::<tc26_512_c::Tc26Gost512C>();
        g::<test_256::GostTest256>();
        g::<test_512::GostTest512>();
    }
}
