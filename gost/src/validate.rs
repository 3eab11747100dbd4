//! Exact (variable-time, public-data-only) point arithmetic for public-key validation.
//!
//! `primeorder`'s complete Renes–Costello–Batina formulas are exception-free only for points of
//! odd order. On the cofactor-4 curves (tc26-256-A, tc26-512-C) an attacker can offer a point of
//! order 2, 4, 2q or 4q, where those formulas may return the "zero" triple (0:0:0), which would
//! look like the identity and let such a point pass a `q·Q = O` test. So the subgroup test here
//! uses textbook Jacobian formulas with every special case (identity, `P = ±Q`, `y = 0`) handled
//! explicitly. It is variable time, which is fine: its input is a public key.

use elliptic_curve::{
    Curve,
    bigint::Encoding,
    ff::{Field, PrimeField},
};
use primeorder::{AffinePoint, PrimeCurveParams};

use crate::arith::GostCurve;

/// Jacobian point `(X : Y : Z)` = affine `(X/Z², Y/Z³)`; `None` is the identity.
type Jac<F> = Option<(F, F, F)>;

fn is_zero<F: Field>(f: &F) -> bool {
    bool::from(f.is_zero())
}

fn eq<F: Field>(a: &F, b: &F) -> bool {
    bool::from(a.ct_eq(b))
}

fn double<C: PrimeCurveParams>(p: Jac<C::FieldElement>) -> Jac<C::FieldElement> {
    let (x, y, z) = p?;
    if is_zero(&y) {
        return None; // point of order 2
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
fn add_affine<C: PrimeCurveParams>(
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
fn mul_be<C: PrimeCurveParams>(p: &AffinePoint<C>, n_be: &[u8]) -> Jac<C::FieldElement> {
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
#[allow(dead_code)]
pub(crate) fn mul_exact<C: GostCurve>(
    p: &AffinePoint<C>,
    n_be: &[u8],
) -> Option<(elliptic_curve::FieldBytes<C>, elliptic_curve::FieldBytes<C>)> {
    let (x, y, z) = mul_be::<C>(p, n_be)?;
    let zi = Option::<C::FieldElement>::from(z.invert())?;
    let zi2 = zi.square();
    Some(((x * zi2).to_repr(), (y * zi2 * zi).to_repr()))
}
