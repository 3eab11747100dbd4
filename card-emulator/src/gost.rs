//! GOST R 34.10-2012 signatures for the emulated GOST token (RFC 7091 §§5-6 = GOST R
//! 34.10-2012 §6, with the byte conventions of shared/docs/gost-pkcs11.md: the digest read
//! little-endian, signature s || r big-endian, public key X_le || Y_le).
//!
//! The workspace's `klyuch-gost` crate had no API yet when this was written; this is a
//! small, self-contained implementation for the card: field arithmetic is crypto-bigint's
//! constant-time Montgomery form, but the point arithmetic (Jacobian coordinates with an
//! explicit point at infinity) branches, so it is fit for an emulator holding test keys,
//! not for production keys.

use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, NonZero, Odd, Resize};

use crate::crypto::random;

/// One curve `y² = x³ + ax + b (mod p)` with base point (x, y) of prime order q
/// (gost-pkcs11.md §3, from RFC 7836 / RFC 4357 / TC26 parameters).
#[derive(Debug)]
pub struct CurveParams {
    pub name: &'static str,
    /// Key length in bits: 256 or 512.
    pub bits: u32,
    pub p: &'static str,
    pub a: &'static str,
    pub b: &'static str,
    pub q: &'static str,
    pub x: &'static str,
    pub y: &'static str,
}

const P256_CP_A: CurveParams = CurveParams {
    name: "tc26-256-B / CryptoPro-A",
    bits: 256,
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD97",
    a: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD94",
    b: "A6",
    q: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF6C611070995AD10045841B09B761B893",
    x: "01",
    y: "8D91E471E0989CDA27DF505A453F2B7635294F2DDF23E3B122ACC99C9E9F1E14",
};
const P256_CP_B: CurveParams = CurveParams {
    name: "tc26-256-C / CryptoPro-B",
    bits: 256,
    p: "8000000000000000000000000000000000000000000000000000000000000C99",
    a: "8000000000000000000000000000000000000000000000000000000000000C96",
    b: "3E1AF419A269A5F866A7D3C25C3DF80AE979259373FF2B182F49D4CE7E1BBC8B",
    q: "800000000000000000000000000000015F700CFFF1A624E5E497161BCC8A198F",
    x: "01",
    y: "3FA8124359F96680B83D1C3EB2C070E5C545C9858D03ECFB744BF8D717717EFC",
};
const P256_CP_C: CurveParams = CurveParams {
    name: "tc26-256-D / CryptoPro-C",
    bits: 256,
    p: "9B9F605F5A858107AB1EC85E6B41C8AACF846E86789051D37998F7B9022D759B",
    a: "9B9F605F5A858107AB1EC85E6B41C8AACF846E86789051D37998F7B9022D7598",
    b: "805A",
    q: "9B9F605F5A858107AB1EC85E6B41C8AA582CA3511EDDFB74F02F3A6598980BB9",
    x: "00",
    y: "41ECE55743711A8C3CBF3783CD08C0EE4D4DC440D4641A8F366E550DFDB3BB67",
};
const P256_TC26_A: CurveParams = CurveParams {
    name: "tc26-256-A",
    bits: 256,
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD97",
    a: "C2173F1513981673AF4892C23035A27CE25E2013BF95AA33B22C656F277E7335",
    b: "295F9BAE7428ED9CCC20E7C359A9D41A22FCCD9108E17BF7BA9337A6F8AE9513",
    q: "400000000000000000000000000000000FD8CDDFC87B6635C115AF556C360C67",
    x: "91E38443A5E82C0D880923425712B2BB658B9196932E02C78B2582FE742DAA28",
    y: "32879423AB1A0375895786C4BB46E9565FDE0B5344766740AF268ADB32322E5C",
};
const P512_A: CurveParams = CurveParams {
    name: "tc26-512-A",
    bits: 512,
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDC7",
    a: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDC4",
    b: "E8C2505DEDFC86DDC1BD0B2B6667F1DA34B82574761CB0E879BD081CFD0B6265EE3CB090F30D27614CB4574010DA90DD862EF9D4EBEE4761503190785A71C760",
    q: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF27E69532F48D89116FF22B8D4E0560609B4B38ABFAD2B85DCACDB1411F10B275",
    x: "03",
    y: "7503CFE87A836AE3A61B8816E25450E6CE5E1C93ACF1ABC1778064FDCBEFA921DF1626BE4FD036E93D75E6A50E3A41E98028FE5FC235F5B889A589CB5215F2A4",
};
const P512_B: CurveParams = CurveParams {
    name: "tc26-512-B",
    bits: 512,
    p: "8000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000006F",
    a: "8000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000006C",
    b: "687D1B459DC841457E3E06CF6F5E2517B97C7D614AF138BCBF85DC806C4B289F3E965D2DB1416D217F8B276FAD1AB69C50F78BEE1FA3106EFB8CCBC7C5140116",
    q: "800000000000000000000000000000000000000000000000000000000000000149A1EC142565A545ACFDB77BD9D40CFA8B996712101BEA0EC6346C54374F25BD",
    x: "02",
    y: "1A8F7EDA389B094C2C071E3647A8940F3C123B697578C213BE6DD9E6C8EC7335DCB228FD1EDF4A39152CBCAAF8C0398828041055F94CEEEC7E21340780FE41BD",
};
const P512_C: CurveParams = CurveParams {
    name: "tc26-512-C",
    bits: 512,
    p: "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDC7",
    a: "DC9203E514A721875485A529D2C722FB187BC8980EB866644DE41C68E143064546E861C0E2C9EDD92ADE71F46FCF50FF2AD97F951FDA9F2A2EB6546F39689BD3",
    b: "B4C4EE28CEBC6C2C8AC12952CF37F16AC7EFB6A9F69F4B57FFDA2E4F0DE5ADE038CBC2FFF719D2C18DE0284B8BFEF3B52B8CC7A5F5BF0A3C8D2319A5312557E1",
    q: "3FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC98CDBA46506AB004C33A9FF5147502CC8EDA9E7A769A12694623CEF47F023ED",
    x: "E2E31EDFC23DE7BDEBE241CE593EF5DE2295B7A9CBAEF021D385F7074CEA043AA27272A7AE602BF2A7B9033DB9ED3610C6FB85487EAE97AAC5BC7928C1950148",
    y: "F5CE40D95B5EB899ABBCCFF5911CB8577939804D6527378B8C108C3D2090FF9BE18E2D33E3021ED2EF32D85822423B6304F726AA854BAE07D0396E9A9ADDC40F",
};
/// id-GostR3410-2001-TestParamSet (RFC 7091 §7.1), for the known-answer test only.
#[cfg(test)]
const P256_TEST: CurveParams = CurveParams {
    name: "test",
    bits: 256,
    p: "8000000000000000000000000000000000000000000000000000000000000431",
    a: "07",
    b: "5FBFF498AA938CE739B8E022FBAFEF40563F6E6A3472FC2A514C0CE9DAE23B7E",
    q: "8000000000000000000000000000000150FE8A1892976154C59CFC193ACCF5B3",
    x: "02",
    y: "08E2A8A0E65147D4BD6316030E16D19C85C97F0A9CA267122B96ABBCEA7E8FC8",
};

/// The curve of a paramset OID (dotted), per docs/gost-card.md "Key generation" and the
/// aliases of gost-pkcs11.md §2.3: tc26-256-B/C/D = CryptoPro-A/B/C, XchA = CryptoPro-A,
/// XchB = CryptoPro-C.
pub fn curve_for_oid(oid: &str) -> Option<&'static CurveParams> {
    Some(match oid {
        "1.2.643.7.1.2.1.1.1" => &P256_TC26_A,
        "1.2.643.7.1.2.1.1.2" | "1.2.643.2.2.35.1" | "1.2.643.2.2.36.0" => &P256_CP_A,
        "1.2.643.7.1.2.1.1.3" | "1.2.643.2.2.35.2" => &P256_CP_B,
        "1.2.643.7.1.2.1.1.4" | "1.2.643.2.2.35.3" | "1.2.643.2.2.36.1" => &P256_CP_C,
        "1.2.643.7.1.2.1.2.1" => &P512_A,
        "1.2.643.7.1.2.1.2.2" => &P512_B,
        "1.2.643.7.1.2.1.2.3" => &P512_C,
        _ => return None,
    })
}

fn from_hex(h: &str, bits: u32) -> BoxedUint {
    let h = if h.len() % 2 == 1 {
        format!("0{h}")
    } else {
        h.to_string()
    };
    BoxedUint::from_be_slice(&hex::decode(h).expect("curve constant"), bits).expect("fits")
}

type Fe = BoxedMontyForm;

/// A curve ready for arithmetic.
pub struct Curve {
    pub params: &'static CurveParams,
    bits: u32,
    fp: BoxedMontyParams,
    fq: BoxedMontyParams,
    q: BoxedUint,
    a: Fe,
    gx: Fe,
    gy: Fe,
}

/// Jacobian point (X, Y, Z) = affine (X/Z², Y/Z³); `None` is the point at infinity.
type Point = Option<(Fe, Fe, Fe)>;

impl Curve {
    pub fn new(params: &'static CurveParams) -> Curve {
        let bits = params.bits;
        let fp = BoxedMontyParams::new_vartime(Odd::new(from_hex(params.p, bits)).expect("odd p"));
        let q = from_hex(params.q, bits);
        let fq = BoxedMontyParams::new_vartime(Odd::new(q.clone()).expect("odd q"));
        let fe = |h: &str| Fe::new(from_hex(h, bits), &fp);
        Curve {
            params,
            bits,
            a: fe(params.a),
            gx: fe(params.x),
            gy: fe(params.y),
            fp: fp.clone(),
            fq,
            q,
        }
    }

    /// Byte length of coordinates, scalars and signature halves.
    pub fn byte_len(&self) -> usize {
        self.bits as usize / 8
    }

    fn is_zero(x: &Fe) -> bool {
        x.retrieve().is_zero().into()
    }

    fn double(&self, p: &Point) -> Point {
        let (x, y, z) = p.as_ref()?;
        if Self::is_zero(y) {
            return None;
        }
        let xx = x.square();
        let yy = y.square();
        let yyyy = yy.square();
        let zz = z.square();
        let s = (x * &yy).double().double();
        let m = &(&xx.double() + &xx) + &(&self.a * &zz.square());
        let x3 = &m.square() - &s.double();
        let y3 = &(&m * &(&s - &x3)) - &yyyy.double().double().double();
        let z3 = (y * z).double();
        Some((x3, y3, z3))
    }

    fn add(&self, p: &Point, q: &Point) -> Point {
        let Some((x1, y1, z1)) = p else {
            return q.clone();
        };
        let Some((x2, y2, z2)) = q else {
            return p.clone();
        };
        let z1z1 = z1.square();
        let z2z2 = z2.square();
        let u1 = x1 * &z2z2;
        let u2 = x2 * &z1z1;
        let s1 = &(y1 * z2) * &z2z2;
        let s2 = &(y2 * z1) * &z1z1;
        let h = &u2 - &u1;
        let r = &s2 - &s1;
        if Self::is_zero(&h) {
            return if Self::is_zero(&r) {
                self.double(p)
            } else {
                None
            };
        }
        let hh = h.square();
        let hhh = &hh * &h;
        let v = &u1 * &hh;
        let x3 = &(&r.square() - &hhh) - &v.double();
        let y3 = &(&r * &(&v - &x3)) - &(&s1 * &hhh);
        let z3 = &(z1 * z2) * &h;
        Some((x3, y3, z3))
    }

    /// k·P by a Montgomery ladder over all `bits` bits of k.
    fn mul(&self, k: &BoxedUint, p: &Point) -> Point {
        let mut r0: Point = None;
        let mut r1 = p.clone();
        for i in (0..self.bits).rev() {
            let bit: bool = k.bit(i).into();
            if bit {
                r0 = self.add(&r0, &r1);
                r1 = self.double(&r1);
            } else {
                r1 = self.add(&r0, &r1);
                r0 = self.double(&r0);
            }
        }
        r0
    }

    fn generator(&self) -> Point {
        Some((self.gx.clone(), self.gy.clone(), Fe::one(&self.fp)))
    }

    fn affine(&self, p: &Point) -> Option<(BoxedUint, BoxedUint)> {
        let (x, y, z) = p.as_ref()?;
        let zi = Option::<Fe>::from(z.invert())?;
        let zi2 = zi.square();
        let zi3 = &zi2 * &zi;
        Some(((x * &zi2).retrieve(), (y * &zi3).retrieve()))
    }

    fn be(&self, x: &BoxedUint) -> Vec<u8> {
        let b = x.to_be_bytes();
        b[b.len() - self.byte_len()..].to_vec()
    }

    fn le(&self, x: &BoxedUint) -> Vec<u8> {
        let mut v = self.be(x);
        v.reverse();
        v
    }

    /// A uniformly random scalar in [1, q-1].
    fn random_scalar(&self) -> BoxedUint {
        let qw = NonZero::new(self.q.clone().resize_unchecked(self.bits + 128)).expect("q > 0");
        loop {
            let wide = BoxedUint::from_be_slice(&random(self.byte_len() + 16), self.bits + 128)
                .expect("fits");
            let k = wide.rem(&qw);
            let k = k.resize_unchecked(self.bits);
            if !bool::from(k.is_zero()) {
                return k;
            }
        }
    }

    /// Public key for private scalar d: `X_le || Y_le` (gost-pkcs11.md trap 3).
    pub fn public_key(&self, d_be: &[u8]) -> Option<Vec<u8>> {
        let d = BoxedUint::from_be_slice(d_be, self.bits).ok()?;
        let (x, y) = self.affine(&self.mul(&d, &self.generator()))?;
        Some([self.le(&x), self.le(&y)].concat())
    }

    /// A new key pair: (d big-endian, public X_le || Y_le).
    pub fn generate(&self) -> (Vec<u8>, Vec<u8>) {
        loop {
            let d = self.random_scalar();
            let d_be = self.be(&d);
            if let Some(public) = self.public_key(&d_be) {
                return (d_be, public);
            }
        }
    }

    /// e = (digest read little-endian) mod q, 1 if 0 (gost-pkcs11.md §4.1 step 2).
    fn e_from_digest(&self, digest: &[u8]) -> Fe {
        let mut be = digest.to_vec();
        be.reverse();
        let wide = BoxedUint::from_be_slice(&be, self.bits).expect("digest length checked");
        let qn = NonZero::new(self.q.clone()).expect("q");
        let e = wide.rem(&qn);
        let e = if bool::from(e.is_zero()) {
            BoxedUint::one_with_precision(self.bits)
        } else {
            e
        };
        Fe::new(e, &self.fq)
    }

    fn sign_with_k(&self, d_be: &[u8], digest: &[u8], k: &BoxedUint) -> Option<Vec<u8>> {
        let (cx, _) = self.affine(&self.mul(k, &self.generator()))?;
        let qn = NonZero::new(self.q.clone()).expect("q");
        let r = cx.rem(&qn);
        if bool::from(r.is_zero()) {
            return None;
        }
        let d = Fe::new(BoxedUint::from_be_slice(d_be, self.bits).ok()?, &self.fq);
        let e = self.e_from_digest(digest);
        let rf = Fe::new(r.clone(), &self.fq);
        let kf = Fe::new(k.clone(), &self.fq);
        let s = (&(&rf * &d) + &(&kf * &e)).retrieve();
        if bool::from(s.is_zero()) {
            return None;
        }
        Some([self.be(&s), self.be(&r)].concat())
    }

    /// Signature `s || r` over a digest of `len()` bytes (gost-pkcs11.md §4.1).
    pub fn sign(&self, d_be: &[u8], digest: &[u8]) -> Option<Vec<u8>> {
        if digest.len() != self.byte_len() {
            return None;
        }
        loop {
            let k = self.random_scalar();
            if let Some(sig) = self.sign_with_k(d_be, digest, &k) {
                return Some(sig);
            }
        }
    }

    /// Verification (gost-pkcs11.md §4.2); used by the tests.
    pub fn verify(&self, public: &[u8], digest: &[u8], sig: &[u8]) -> bool {
        let n = self.byte_len();
        if public.len() != 2 * n || sig.len() != 2 * n || digest.len() != n {
            return false;
        }
        let rev = |b: &[u8]| {
            let mut v = b.to_vec();
            v.reverse();
            BoxedUint::from_be_slice(&v, self.bits).expect("fits")
        };
        let (qx, qy) = (rev(&public[..n]), rev(&public[n..]));
        let s = BoxedUint::from_be_slice(&sig[..n], self.bits).expect("fits");
        let r = BoxedUint::from_be_slice(&sig[n..], self.bits).expect("fits");
        if bool::from(s.is_zero()) || bool::from(r.is_zero()) || s >= self.q || r >= self.q {
            return false;
        }
        let e = self.e_from_digest(digest);
        let Some(v) = Option::<Fe>::from(e.invert()) else {
            return false;
        };
        let z1 = (&Fe::new(s, &self.fq) * &v).retrieve();
        let z2 = (-(&Fe::new(r.clone(), &self.fq) * &v)).retrieve();
        let qp = Some((
            Fe::new(qx, &self.fp),
            Fe::new(qy, &self.fp),
            Fe::one(&self.fp),
        ));
        let c = self.add(&self.mul(&z1, &self.generator()), &self.mul(&z2, &qp));
        let Some((cx, _)) = self.affine(&c) else {
            return false;
        };
        cx.rem(&NonZero::new(self.q.clone()).expect("q")) == r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7091 §7.1 (GOST R 34.10-2012 Appendix A.1), in the byte views of
    /// gost-pkcs11.md §4.3.
    #[test]
    fn rfc7091_a1_known_answer() {
        static TEST: CurveParams = P256_TEST;
        let c = Curve::new(&TEST);
        let d = hex::decode("7A929ADE789BB9BE10ED359DD39A72C11B60961F49397EEE1D19CE9891EC3B28")
            .unwrap();
        let public = c.public_key(&d).unwrap();
        assert_eq!(
            hex::encode_upper(&public),
            "0BD86FE5D8DB89668F789B4E1DBA8585C5508B45EC5B59D8906DDB70E2492B7F\
             DA77FF871A10FBDF2766D293C5D164AFBB3C7B973A41C885D11D70D689B4F126"
        );
        let digest =
            hex::decode("E53E042B67E6EC678E2E02B12A0352CE1FC6EEE0529CC088119AD872B3C1FB2D")
                .unwrap();
        let k = from_hex(
            "77105C9B20BCD3122823C8CF6FCC7B956DE33814E95B7FE64FED924594DCEAB3",
            256,
        );
        let sig = c.sign_with_k(&d, &digest, &k).unwrap();
        assert_eq!(
            hex::encode_upper(&sig),
            "01456C64BA4642A1653C235A98A60249BCD6D3F746B631DF928014F6C5BF9C40\
             41AA28D2F1AB148280CD9ED56FEDA41974053554A42767B83AD043FD39DC0493"
        );
        assert!(c.verify(&public, &digest, &sig));
    }

    #[test]
    fn every_paramset_signs_and_verifies() {
        for oid in [
            "1.2.643.7.1.2.1.1.1",
            "1.2.643.7.1.2.1.1.2",
            "1.2.643.7.1.2.1.1.3",
            "1.2.643.7.1.2.1.1.4",
            "1.2.643.7.1.2.1.2.1",
            "1.2.643.7.1.2.1.2.2",
            "1.2.643.7.1.2.1.2.3",
        ] {
            let c = Curve::new(curve_for_oid(oid).unwrap());
            let (d, public) = c.generate();
            let digest = random(c.byte_len());
            let sig = c.sign(&d, &digest).unwrap();
            assert!(c.verify(&public, &digest, &sig), "{oid}");
            let mut bad = digest.clone();
            bad[0] ^= 1;
            assert!(!c.verify(&public, &bad, &sig), "{oid}");
        }
    }
}
