//! GOST R 34.10-2012 signatures and VKO key agreement, GOST R 34.11-2012 (Streebog) hashing
//! and HMAC, with the byte conventions of PKCS#11 GOST tokens.
//!
//! * Curves: every TC26 parameter set (256-bit A, B, C, D; 512-bit A, B, C), the CryptoPro
//!   A/B/C and XchA/XchB OIDs (aliases of tc26-256-B/C/D), and the two test curves of
//!   RFC 7091 §7. See [`ParamSet`].
//! * Arithmetic: `primeorder` short-Weierstrass curves over `primefield` Montgomery fields
//!   (`crypto-bigint` integers). The field elements use a fixed-size Montgomery backend of this
//!   crate (`field.rs`, plugged into `primefield`'s element macro the way its `fiat-crypto`
//!   backends are), about twice as fast as the generic one.
//! * Signing (`k·P`) and key generation (`d·P`) use a per-curve fixed-base table of the
//!   generator, built lazily once (`OnceLock`): signed 6-bit digits, one complete mixed
//!   addition per digit, every table row read in full with word masks. On tc26-256-A and
//!   tc26-512-C (cofactor 4) that path runs on the curves' Edwards form (complete formulas,
//!   8 multiplications per addition); elsewhere on the Renes–Costello–Batina formulas.
//! * Constant time for secrets: no secret-dependent branches or table indices; the one field
//!   inversion per signature is blinded (`1/z = β/(z·β)`, β random) before a variable-time
//!   inversion. Private keys are zeroized on drop. Verification, public-key validation and
//!   the fixed-base table construction handle public data only and may take variable time.
//! * Public keys from outside are checked: coordinates `< p`, on the curve, and in the
//!   subgroup of order q (exact arithmetic, so that points of order 2, 4, 2q or 4q on the
//!   cofactor-4 curves are refused).
//! * Byte order (shared/docs/gost-pkcs11.md, "the three traps"): a digest is read as a
//!   **little-endian** integer; a signature is **`s || r`**, each half big-endian; private keys
//!   are `d` little-endian and public keys `X || Y`, each little-endian — exactly the PKCS#11
//!   `CKA_VALUE` and `C_Sign` formats.
//! * Nonces: a fresh uniformly random `k` from the operating system (`getrandom`) per
//!   signature (no deterministic derivation).
//!
//! ```
//! use klyuch_gost::{ParamSet, SigningKey, streebog256};
//!
//! let key = SigningKey::generate(ParamSet::Tc26Gost256B).unwrap();
//! let digest = streebog256(b"message");
//! let sig = key.sign_digest(&digest).unwrap(); // 64 bytes: s || r
//! key.verifying_key().verify_digest(&digest, &sig).unwrap();
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod arith;
mod curves;
mod field;
mod hash;
mod validate;

use std::fmt;
use std::sync::OnceLock;

use elliptic_curve::{
    ff::{Field, PrimeField},
    point::AffineCoordinates,
};
use zeroize::Zeroizing;

use crate::arith::{GostCurve, Scalar};

pub use crate::hash::{
    HmacStreebog256, HmacStreebog512, Streebog256, Streebog512, hmac_streebog256, hmac_streebog512,
    kdf_gostr3411_2012_256, streebog256, streebog512,
};

/// Errors of this crate. No function of this crate panics on any input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The parameter set OID is not one of [`ParamSet::all`].
    UnknownParamSet,
    /// A private key is not `0 < d < q`, or has the wrong length.
    InvalidPrivateKey,
    /// A public key has the wrong length, a coordinate `>= p`, is not on the curve, or is not
    /// in the subgroup of order q.
    InvalidPublicKey,
    /// A digest is not exactly 32 (256-bit keys) or 64 (512-bit keys) bytes.
    InvalidDigestLength,
    /// A signature does not verify (wrong length, `r` or `s` outside `(0, q)`, or mismatch).
    InvalidSignature,
    /// A caller-supplied nonce is not `0 < k < q`, or gives `r = 0` or `s = 0`.
    InvalidNonce,
    /// A VKO UKM is empty, longer than the key, or zero mod q.
    InvalidUkm,
    /// The two keys of a key agreement are on different curves.
    CurveMismatch,
    /// VKO gave the point at infinity.
    KeyAgreementFailed,
    /// The operating system's random number generator failed.
    Rng,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::UnknownParamSet => "unknown GOST R 34.10-2012 parameter set OID",
            Error::InvalidPrivateKey => "invalid GOST private key (must be 0 < d < q)",
            Error::InvalidPublicKey => "invalid GOST public key (not a point of order q)",
            Error::InvalidDigestLength => "digest length does not match the key size",
            Error::InvalidSignature => "GOST signature verification failed",
            Error::InvalidNonce => "invalid signature nonce",
            Error::InvalidUkm => "invalid VKO UKM",
            Error::CurveMismatch => "keys are on different curves",
            Error::KeyAgreementFailed => "VKO produced the point at infinity",
            Error::Rng => "system random number generator failed",
        })
    }
}

impl std::error::Error for Error {}

impl From<getrandom::Error> for Error {
    fn from(_: getrandom::Error) -> Self {
        Error::Rng
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A GOST R 34.10 parameter set, identified by its OID (gost-pkcs11.md §2.3).
///
/// Several OIDs name the same curve (§2.3 "Curve aliases", RFC 9215, RFC 4357): keys of
/// [`ParamSet::CryptoProA`] and [`ParamSet::Tc26Gost256B`] interoperate. [`ParamSet::same_curve`]
/// tells whether two sets are aliases; the OID a key was created with is kept for reporting
/// it back (`CKA_GOSTR3410_PARAMS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamSet {
    /// id-tc26-gost-3410-12-256-paramSetA, 1.2.643.7.1.2.1.1.1 (cofactor 4).
    Tc26Gost256A,
    /// id-tc26-gost-3410-12-256-paramSetB, 1.2.643.7.1.2.1.1.2 (= CryptoPro-A curve).
    Tc26Gost256B,
    /// id-tc26-gost-3410-12-256-paramSetC, 1.2.643.7.1.2.1.1.3 (= CryptoPro-B curve).
    Tc26Gost256C,
    /// id-tc26-gost-3410-12-256-paramSetD, 1.2.643.7.1.2.1.1.4 (= CryptoPro-C curve).
    Tc26Gost256D,
    /// id-GostR3410-2001-CryptoPro-A-ParamSet, 1.2.643.2.2.35.1.
    CryptoProA,
    /// id-GostR3410-2001-CryptoPro-B-ParamSet, 1.2.643.2.2.35.2.
    CryptoProB,
    /// id-GostR3410-2001-CryptoPro-C-ParamSet, 1.2.643.2.2.35.3.
    CryptoProC,
    /// id-GostR3410-2001-CryptoPro-XchA-ParamSet, 1.2.643.2.2.36.0 (= CryptoPro-A curve).
    CryptoProXchA,
    /// id-GostR3410-2001-CryptoPro-XchB-ParamSet, 1.2.643.2.2.36.1 (= CryptoPro-C curve).
    CryptoProXchB,
    /// id-tc26-gost-3410-12-512-paramSetA, 1.2.643.7.1.2.1.2.1.
    Tc26Gost512A,
    /// id-tc26-gost-3410-12-512-paramSetB, 1.2.643.7.1.2.1.2.2.
    Tc26Gost512B,
    /// id-tc26-gost-3410-12-512-paramSetC, 1.2.643.7.1.2.1.2.3 (cofactor 4).
    Tc26Gost512C,
    /// id-GostR3410-2001-TestParamSet, 1.2.643.2.2.35.0: the curve of RFC 7091 §7.1. Tests only.
    Test256,
    /// id-tc26-gost-3410-12-512-paramSetTest, 1.2.643.7.1.2.1.2.0: the curve of RFC 7091 §7.2.
    /// Tests only.
    Test512,
}

/// The distinct curves behind the parameter sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CurveId {
    Tc256A,
    Tc256B,
    Tc256C,
    Tc256D,
    Tc512A,
    Tc512B,
    Tc512C,
    Test256,
    Test512,
}

/// Run `$body` with `$c` bound to the curve type of parameter set `$ps`.
macro_rules! with_curve {
    ($ps:expr, $c:ident => $body:expr) => {
        match $ps.curve_id() {
            CurveId::Tc256A => {
                type $c = curves::tc26_256_a::Tc26Gost256A;
                $body
            }
            CurveId::Tc256B => {
                type $c = curves::tc26_256_b::Tc26Gost256B;
                $body
            }
            CurveId::Tc256C => {
                type $c = curves::tc26_256_c::Tc26Gost256C;
                $body
            }
            CurveId::Tc256D => {
                type $c = curves::tc26_256_d::Tc26Gost256D;
                $body
            }
            CurveId::Tc512A => {
                type $c = curves::tc26_512_a::Tc26Gost512A;
                $body
            }
            CurveId::Tc512B => {
                type $c = curves::tc26_512_b::Tc26Gost512B;
                $body
            }
            CurveId::Tc512C => {
                type $c = curves::tc26_512_c::Tc26Gost512C;
                $body
            }
            CurveId::Test256 => {
                type $c = curves::test_256::GostTest256;
                $body
            }
            CurveId::Test512 => {
                type $c = curves::test_512::GostTest512;
                $body
            }
        }
    };
}

/// OID contents (DER without the 06 tag and length), gost-pkcs11.md §2.3 (checked there with
/// `openssl asn1parse`; RFC 7836 / RFC 4357 / RFC 9215).
const OID_TC26: [u8; 8] = [0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01]; // 1.2.643.7.1.2.1.1
const OID_TC26_512: [u8; 8] = [0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x02]; // 1.2.643.7.1.2.1.2
const OID_CP_SIGN: [u8; 6] = [0x2A, 0x85, 0x03, 0x02, 0x02, 0x23]; // 1.2.643.2.2.35
const OID_CP_XCH: [u8; 6] = [0x2A, 0x85, 0x03, 0x02, 0x02, 0x24]; // 1.2.643.2.2.36

/// Algorithm and digest OIDs used around GOST keys, DER-encoded with the 06 tag
/// (gost-pkcs11.md §2.3; RFC 9215).
pub mod oid {
    /// id-tc26-gost3410-12-256, 1.2.643.7.1.1.1.1 (SPKI algorithm of 256-bit keys).
    pub const GOST3410_12_256: &[u8] =
        &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x01];
    /// id-tc26-gost3410-12-512, 1.2.643.7.1.1.1.2 (SPKI algorithm of 512-bit keys).
    pub const GOST3410_12_512: &[u8] =
        &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x02];
    /// id-tc26-gost3411-12-256 (Streebog-256), 1.2.643.7.1.1.2.2.
    pub const GOST3411_12_256: &[u8] =
        &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02];
    /// id-tc26-gost3411-12-512 (Streebog-512), 1.2.643.7.1.1.2.3.
    pub const GOST3411_12_512: &[u8] =
        &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x03];
    /// id-tc26-signwithdigest-gost3410-12-256, 1.2.643.7.1.1.3.2.
    pub const SIGNWITHDIGEST_12_256: &[u8] =
        &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x03, 0x02];
    /// id-tc26-signwithdigest-gost3410-12-512, 1.2.643.7.1.1.3.3.
    pub const SIGNWITHDIGEST_12_512: &[u8] =
        &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x03, 0x03];
}

impl ParamSet {
    /// Every parameter set this crate knows (including the aliases and the two test sets).
    pub fn all() -> &'static [ParamSet] {
        use ParamSet::*;
        &[
            Tc26Gost256A,
            Tc26Gost256B,
            Tc26Gost256C,
            Tc26Gost256D,
            CryptoProA,
            CryptoProB,
            CryptoProC,
            CryptoProXchA,
            CryptoProXchB,
            Tc26Gost512A,
            Tc26Gost512B,
            Tc26Gost512C,
            Test256,
            Test512,
        ]
    }

    fn curve_id(self) -> CurveId {
        use ParamSet::*;
        match self {
            Tc26Gost256A => CurveId::Tc256A,
            Tc26Gost256B | CryptoProA | CryptoProXchA => CurveId::Tc256B,
            Tc26Gost256C | CryptoProB => CurveId::Tc256C,
            Tc26Gost256D | CryptoProC | CryptoProXchB => CurveId::Tc256D,
            Tc26Gost512A => CurveId::Tc512A,
            Tc26Gost512B => CurveId::Tc512B,
            Tc26Gost512C => CurveId::Tc512C,
            Test256 => CurveId::Test256,
            Test512 => CurveId::Test512,
        }
    }

    /// Whether the two parameter sets name the same curve (e.g. CryptoPro-A and tc26-256-B).
    pub fn same_curve(self, other: ParamSet) -> bool {
        self.curve_id() == other.curve_id()
    }

    /// The OID contents (without tag and length).
    fn oid_contents(self) -> Vec<u8> {
        use ParamSet::*;
        let (prefix, last): (&[u8], u8) = match self {
            Tc26Gost256A => (&OID_TC26, 1),
            Tc26Gost256B => (&OID_TC26, 2),
            Tc26Gost256C => (&OID_TC26, 3),
            Tc26Gost256D => (&OID_TC26, 4),
            Test256 => (&OID_CP_SIGN, 0),
            CryptoProA => (&OID_CP_SIGN, 1),
            CryptoProB => (&OID_CP_SIGN, 2),
            CryptoProC => (&OID_CP_SIGN, 3),
            CryptoProXchA => (&OID_CP_XCH, 0),
            CryptoProXchB => (&OID_CP_XCH, 1),
            Test512 => (&OID_TC26_512, 0),
            Tc26Gost512A => (&OID_TC26_512, 1),
            Tc26Gost512B => (&OID_TC26_512, 2),
            Tc26Gost512C => (&OID_TC26_512, 3),
        };
        let mut v = prefix.to_vec();
        v.push(last);
        v
    }

    /// The DER encoding of the OID, with the 06 tag (the `CKA_GOSTR3410_PARAMS` value).
    pub fn oid_der(self) -> Vec<u8> {
        let c = self.oid_contents();
        let mut v = Vec::with_capacity(c.len() + 2);
        v.push(0x06);
        v.push(c.len() as u8); // at most 9: short form
        v.extend_from_slice(&c);
        v
    }

    /// The parameter set of an OID given as DER (`06 len contents`) or as bare contents.
    pub fn from_oid(oid: &[u8]) -> Result<ParamSet> {
        let contents = match oid {
            [0x06, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
            _ => oid,
        };
        ParamSet::all()
            .iter()
            .copied()
            .find(|ps| ps.oid_contents() == contents)
            .ok_or(Error::UnknownParamSet)
    }

    /// The conventional name, e.g. `id-tc26-gost-3410-12-256-paramSetA`.
    pub fn name(self) -> &'static str {
        use ParamSet::*;
        match self {
            Tc26Gost256A => "id-tc26-gost-3410-12-256-paramSetA",
            Tc26Gost256B => "id-tc26-gost-3410-12-256-paramSetB",
            Tc26Gost256C => "id-tc26-gost-3410-12-256-paramSetC",
            Tc26Gost256D => "id-tc26-gost-3410-12-256-paramSetD",
            CryptoProA => "id-GostR3410-2001-CryptoPro-A-ParamSet",
            CryptoProB => "id-GostR3410-2001-CryptoPro-B-ParamSet",
            CryptoProC => "id-GostR3410-2001-CryptoPro-C-ParamSet",
            CryptoProXchA => "id-GostR3410-2001-CryptoPro-XchA-ParamSet",
            CryptoProXchB => "id-GostR3410-2001-CryptoPro-XchB-ParamSet",
            Tc26Gost512A => "id-tc26-gost-3410-12-512-paramSetA",
            Tc26Gost512B => "id-tc26-gost-3410-12-512-paramSetB",
            Tc26Gost512C => "id-tc26-gost-3410-12-512-paramSetC",
            Test256 => "id-GostR3410-2001-TestParamSet",
            Test512 => "id-tc26-gost-3410-12-512-paramSetTest",
        }
    }

    /// Key size in bits: 256 or 512.
    pub fn bits(self) -> usize {
        match self.curve_id() {
            CurveId::Tc512A | CurveId::Tc512B | CurveId::Tc512C | CurveId::Test512 => 512,
            _ => 256,
        }
    }

    /// Length of a private key, a digest and each signature half: 32 or 64 bytes.
    pub fn key_len(self) -> usize {
        self.bits() / 8
    }

    /// Length of a public key (`X || Y`) and of a signature (`s || r`): 64 or 128 bytes.
    pub fn signature_len(self) -> usize {
        2 * self.key_len()
    }

    /// The curve's cofactor m/q: 4 for tc26-256-A and tc26-512-C, else 1 (gost-pkcs11.md §3).
    pub fn cofactor(self) -> u32 {
        with_curve!(self, C => <C as GostCurve>::COFACTOR)
    }

    /// DER OID of the SPKI key algorithm: id-tc26-gost3410-12-256 or -512.
    pub fn key_algorithm_oid_der(self) -> &'static [u8] {
        if self.bits() == 512 {
            oid::GOST3410_12_512
        } else {
            oid::GOST3410_12_256
        }
    }

    /// DER OID of the matching Streebog digest (the usual `CKA_GOSTR3411_PARAMS`).
    pub fn digest_oid_der(self) -> &'static [u8] {
        if self.bits() == 512 {
            oid::GOST3411_12_512
        } else {
            oid::GOST3411_12_256
        }
    }
}

impl fmt::Display for ParamSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

/// `s || r`, each big-endian (gost-pkcs11.md §2.1, trap 2).
fn encode_signature<C: GostCurve>(s: &Scalar<C>, r: &Scalar<C>) -> Vec<u8> {
    let mut sig = Vec::with_capacity(2 * arith::byte_len::<C>());
    sig.extend_from_slice(&s.to_repr());
    sig.extend_from_slice(&r.to_repr());
    sig
}

/// A GOST R 34.10-2012 private key `d` with its parameter set. Zeroized on drop.
#[derive(Clone)]
pub struct SigningKey {
    params: ParamSet,
    /// `d`, big-endian, exactly `key_len` bytes, `0 < d < q`.
    d_be: Zeroizing<Vec<u8>>,
    public: OnceLock<VerifyingKey>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The private key from its PKCS#11 `CKA_VALUE`: `d` little-endian, exactly
    /// [`ParamSet::key_len`] bytes. Rejects `d = 0` and `d >= q`.
    pub fn from_le_bytes(params: ParamSet, d_le: &[u8]) -> Result<SigningKey> {
        if d_le.len() != params.key_len() {
            return Err(Error::InvalidPrivateKey);
        }
        let d_be = Zeroizing::new(reversed(d_le));
        let valid = with_curve!(params, C => {
            let d = arith::scalar_from_be::<C>(&d_be);
            bool::from(d.is_some() & !d.unwrap_or(Scalar::<C>::ZERO).is_zero())
        });
        if !valid {
            return Err(Error::InvalidPrivateKey);
        }
        Ok(SigningKey {
            params,
            d_be,
            public: OnceLock::new(),
        })
    }

    /// A new random key (system RNG), uniform in `[1, q-1]`.
    pub fn generate(params: ParamSet) -> Result<SigningKey> {
        let d_be = with_curve!(params, C => {
            let d = Zeroizing::new(arith::random_scalar::<C>()?);
            Zeroizing::new(d.to_repr().to_vec())
        });
        Ok(SigningKey {
            params,
            d_be,
            public: OnceLock::new(),
        })
    }

    /// The parameter set.
    pub fn params(&self) -> ParamSet {
        self.params
    }

    /// `d` little-endian (the PKCS#11 private `CKA_VALUE`).
    pub fn to_le_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(reversed(&self.d_be))
    }

    fn scalar<C: GostCurve>(&self) -> Zeroizing<Scalar<C>> {
        // Validated at construction: `from_repr` succeeds.
        Zeroizing::new(arith::scalar_from_be::<C>(&self.d_be).unwrap_or(Scalar::<C>::ONE))
    }

    /// The public key `Q = d·P` (computed once, constant time).
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.public.get_or_init(|| {
            with_curve!(self.params, C => {
                // d ≠ 0 mod q, so Q is never the identity.
                let (x, y) = arith::public_point::<C>(&self.scalar::<C>()).unwrap_or_default();
                let mut xy_le = reversed(&x);
                xy_le.extend(y.iter().rev());
                VerifyingKey { params: self.params, xy_le }
            })
        })
    }

    /// Sign a digest (RFC 7091 §6.1) with a fresh random nonce.
    ///
    /// `digest` is the Streebog output exactly as the hash returns it: 32 bytes for 256-bit keys,
    /// 64 for 512-bit keys (the PKCS#11 `CKM_GOSTR3410` / `CKM_GOSTR3410_512` input). Returns
    /// `s || r`, 64 or 128 bytes.
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        if digest.len() != self.params.key_len() {
            return Err(Error::InvalidDigestLength);
        }
        with_curve!(self.params, C => {
            let d = self.scalar::<C>();
            loop {
                let k = Zeroizing::new(arith::random_scalar::<C>()?);
                if let Some(out) = arith::sign_with_k::<C>(&d, digest, &k) {
                    return Ok(encode_signature::<C>(&out.s, &out.r));
                }
            }
        })
    }

    /// Sign with a caller-chosen nonce `k` (big-endian, `key_len` bytes, `0 < k < q`), for
    /// known-answer tests such as RFC 7091 §7. Never reuse a nonce: two signatures with the
    /// same `k` reveal the key.
    #[doc(hidden)]
    pub fn sign_digest_with_nonce(&self, digest: &[u8], k_be: &[u8]) -> Result<Vec<u8>> {
        if digest.len() != self.params.key_len() {
            return Err(Error::InvalidDigestLength);
        }
        with_curve!(self.params, C => {
            let k = Option::<Scalar<C>>::from(arith::scalar_from_be::<C>(k_be))
                .filter(|k| !bool::from(k.is_zero()))
                .ok_or(Error::InvalidNonce)?;
            let k = Zeroizing::new(k);
            let d = self.scalar::<C>();
            let out = arith::sign_with_k::<C>(&d, digest, &k).ok_or(Error::InvalidNonce)?;
            Ok(encode_signature::<C>(&out.s, &out.r))
        })
    }
}

/// A validated GOST R 34.10-2012 public key `Q`: on the curve, not the identity, of order q.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    params: ParamSet,
    /// `X_le || Y_le`.
    xy_le: Vec<u8>,
}

impl VerifyingKey {
    /// The public key from its PKCS#11 `CKA_VALUE` (also the SPKI OCTET STRING contents):
    /// `X` little-endian then `Y` little-endian, 64 or 128 bytes. Checks that the coordinates
    /// are `< p`, the point is on the curve and in the subgroup of order q (`q·Q = O`; on the
    /// cofactor-4 curves this refuses points of order 2, 4, 2q, 4q).
    pub fn from_le_bytes(params: ParamSet, xy_le: &[u8]) -> Result<VerifyingKey> {
        if xy_le.len() != params.signature_len() {
            return Err(Error::InvalidPublicKey);
        }
        with_curve!(params, C => {
            let p = Self::parse::<C>(params, xy_le).ok_or(Error::InvalidPublicKey)?;
            if !arith::in_subgroup::<C>(&p) {
                return Err(Error::InvalidPublicKey);
            }
        });
        Ok(VerifyingKey {
            params,
            xy_le: xy_le.to_vec(),
        })
    }

    /// Point on the curve (coordinates `< p`), no subgroup check.
    fn parse<C: GostCurve>(params: ParamSet, xy_le: &[u8]) -> Option<primeorder::AffinePoint<C>> {
        let n = params.key_len();
        if xy_le.len() != 2 * n {
            return None;
        }
        let x = reversed(&xy_le[..n]);
        let y = reversed(&xy_le[n..]);
        arith::point_from_be::<C>(&x, &y)
    }

    fn point<C: GostCurve>(&self) -> primeorder::AffinePoint<C> {
        // Validated at construction.
        Self::parse::<C>(self.params, &self.xy_le)
            .unwrap_or(primeorder::AffinePoint::<C>::GENERATOR)
    }

    /// The parameter set.
    pub fn params(&self) -> ParamSet {
        self.params
    }

    /// `X_le || Y_le` (the PKCS#11 public `CKA_VALUE`).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.xy_le.clone()
    }

    /// Verify `s || r` over a digest (RFC 7091 §6.2; digest read little-endian as in
    /// [`SigningKey::sign_digest`]). Rejects wrong lengths and `r`, `s` outside `(0, q)`.
    pub fn verify_digest(&self, digest: &[u8], signature: &[u8]) -> Result<()> {
        let n = self.params.key_len();
        if digest.len() != n {
            return Err(Error::InvalidDigestLength);
        }
        if signature.len() != 2 * n {
            return Err(Error::InvalidSignature);
        }
        let ok = with_curve!(self.params, C => {
            let s = Option::<Scalar<C>>::from(arith::scalar_from_be::<C>(&signature[..n]));
            let r = Option::<Scalar<C>>::from(arith::scalar_from_be::<C>(&signature[n..]));
            match (r, s) {
                (Some(r), Some(s)) if !bool::from(r.is_zero() | s.is_zero()) => {
                    arith::verify_rs::<C>(&self.point::<C>(), digest, &r, &s).ok
                }
                _ => false,
            }
        });
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidSignature)
        }
    }
}

/// The UKM as a scalar: little-endian bytes, 1..=key_len of them, non-zero mod q.
fn ukm_scalar<C: GostCurve>(ukm_le: &[u8]) -> Result<Scalar<C>> {
    let n = arith::byte_len::<C>();
    if ukm_le.is_empty() || ukm_le.len() > n {
        return Err(Error::InvalidUkm);
    }
    let mut be = elliptic_curve::FieldBytes::<C>::default();
    for (i, b) in ukm_le.iter().enumerate() {
        be[n - 1 - i] = *b;
    }
    let u = arith::scalar_reduce_be::<C>(&be);
    if bool::from(u.is_zero()) {
        return Err(Error::InvalidUkm);
    }
    Ok(u)
}

/// The shared point of VKO, encoded `X_le || Y_le` (R 50.1.113-2016 §4.3.1: `K(x, y, UKM) =
/// (m/q · UKM · x mod q) · (y · P)`, then serialised little-endian as for public keys).
fn vko_point_bytes(
    private: &SigningKey,
    public: &VerifyingKey,
    ukm_le: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    if !private.params.same_curve(public.params) {
        return Err(Error::CurveMismatch);
    }
    with_curve!(private.params, C => {
        let ukm = ukm_scalar::<C>(ukm_le)?;
        let d = private.scalar::<C>();
        let k = arith::vko_point::<C>(&d, &public.point::<C>(), &ukm)
            .ok_or(Error::KeyAgreementFailed)?;
        let mut out = Zeroizing::new(reversed(&k.x()));
        out.extend(k.y().iter().rev());
        Ok(out)
    })
}

/// VKO_GOSTR3410_2012_256 (R 50.1.113-2016 §4.3.1; RFC 7836 §4.3.1): Streebog-256 of the
/// little-endian encoded point `(m/q · UKM · d) · Q`. `ukm_le` is the UKM as a little-endian
/// integer (1 to key_len bytes, non-zero mod q); works with 256- and 512-bit keys.
pub fn vko_256(private: &SigningKey, public: &VerifyingKey, ukm_le: &[u8]) -> Result<[u8; 32]> {
    let k = vko_point_bytes(private, public, ukm_le)?;
    Ok(streebog256(&k))
}

/// VKO_GOSTR3410_2012_512 (R 50.1.113-2016 §4.3.2; RFC 7836 §4.3.2): Streebog-512 of the
/// little-endian encoded point `(m/q · UKM · d) · Q`. Same inputs as [`vko_256`].
pub fn vko_512(private: &SigningKey, public: &VerifyingKey, ukm_le: &[u8]) -> Result<[u8; 64]> {
    let k = vko_point_bytes(private, public, ukm_le)?;
    Ok(streebog512(&k))
}

#[cfg(test)]
mod kat;
