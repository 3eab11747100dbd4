//! The card's cryptography: RSA (key generation with aws-lc-rs, the raw private-key operation
//! in constant-time Montgomery arithmetic), ECDSA and ECDH on P-256/P-384 (aws-lc-rs), the
//! PIV management key block ciphers, and randomness.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, ConcatenatingMul, NonZero, Odd, Resize};

use crate::tlv;

/// Fills a buffer from the system CSPRNG.
pub fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    SystemRandom::new().fill(&mut v).expect("system random");
    v
}

#[derive(Debug)]
pub struct CryptoError;

/// An RSA private key as its CRT components (RFC 8017 §3.2, second representation), all
/// big-endian unsigned.
#[derive(Clone, Debug)]
pub struct RsaKey {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    pub dp: Vec<u8>,
    pub dq: Vec<u8>,
    pub qinv: Vec<u8>,
}

fn strip(b: &[u8]) -> Vec<u8> {
    let i = b.iter().take_while(|x| **x == 0).count();
    b[i..].to_vec()
}

fn limb_bits(len_bytes: usize) -> u32 {
    (len_bytes as u32 * 8).div_ceil(64) * 64
}

fn uint(bytes: &[u8], bits: u32) -> BoxedUint {
    BoxedUint::from_be_slice(bytes, bits).expect("integer fits its precision")
}

impl RsaKey {
    /// A fresh key with e = 65537 (aws-lc-rs `KeyPair::generate`).
    pub fn generate(bits: usize) -> Result<RsaKey, CryptoError> {
        let size = match bits {
            2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
            3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
            4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
            _ => return Err(CryptoError),
        };
        let kp = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| CryptoError)?;
        let pkcs8 = kp.as_der().map_err(|_| CryptoError)?;
        RsaKey::from_pkcs8(pkcs8.as_ref())
    }

    /// Reads a PKCS#8 PrivateKeyInfo (RFC 5208 §5) holding an RSAPrivateKey (RFC 8017 A.1.2).
    pub fn from_pkcs8(der: &[u8]) -> Result<RsaKey, CryptoError> {
        let (pki, _) = tlv::parse_one(der).map_err(|_| CryptoError)?;
        let parts = tlv::parse_all(pki.value).map_err(|_| CryptoError)?;
        let octets = parts.get(2).filter(|t| t.tag == 0x04).ok_or(CryptoError)?;
        let (rsa, _) = tlv::parse_one(octets.value).map_err(|_| CryptoError)?;
        let ints = tlv::parse_all(rsa.value).map_err(|_| CryptoError)?;
        if ints.len() < 9 || ints.iter().any(|t| t.tag != 0x02) {
            return Err(CryptoError);
        }
        let g = |i: usize| strip(ints[i].value);
        Ok(RsaKey {
            n: g(1),
            e: g(2),
            p: g(4),
            q: g(5),
            dp: g(6),
            dq: g(7),
            qinv: g(8),
        })
    }

    pub fn modulus_len(&self) -> usize {
        self.n.len()
    }

    pub fn bits(&self) -> usize {
        self.n.len() * 8 - self.n[0].leading_zeros() as usize
    }

    /// x^e mod n (public operation, variable time: public data only).
    pub fn public_op(&self, x: &[u8]) -> Vec<u8> {
        let bits = limb_bits(self.n.len());
        let n = Odd::new(uint(&self.n, bits)).expect("odd modulus");
        let params = BoxedMontyParams::new_vartime(n);
        let xm = BoxedMontyForm::new(uint(x, bits), &params);
        let e = uint(&self.e, limb_bits(self.e.len()));
        let r = xm.pow(&e).retrieve();
        left_pad(&r.to_be_bytes(), self.n.len())
    }

    /// The raw private operation c^d mod n with the CRT (RFC 8017 §5.1.2 RSADP, 2.b), checked
    /// with the public exponent before it is released. `c` must be below n.
    pub fn private_op(&self, c: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let k = self.n.len();
        if c.len() != k {
            return Err(CryptoError);
        }
        let nbits = limb_bits(k);
        let cn = uint(c, nbits);
        let n = uint(&self.n, nbits);
        if cn >= n {
            return Err(CryptoError);
        }
        let pbits = limb_bits(self.p.len().max(self.q.len()));
        let p = uint(&self.p, pbits);
        let q = uint(&self.q, pbits);
        let half = |m: &BoxedUint, d: &[u8]| -> (BoxedMontyParams, BoxedUint) {
            let params = BoxedMontyParams::new(Odd::new(m.clone()).expect("odd prime"));
            let nz = NonZero::new(m.clone().resize_unchecked(nbits)).expect("nonzero prime");
            let red = cn.rem(&nz).resize_unchecked(pbits);
            let x = BoxedMontyForm::new(red, &params);
            let r = x.pow(&uint(d, pbits)).retrieve();
            (params, r)
        };
        let (pp, m1) = half(&p, &self.dp);
        let (_, m2) = half(&q, &self.dq);
        // h = qinv * (m1 - m2) mod p
        let m2p = BoxedMontyForm::new(m2.rem(&NonZero::new(p.clone()).expect("nonzero")), &pp);
        let m1p = BoxedMontyForm::new(m1, &pp);
        let qinv = BoxedMontyForm::new(uint(&self.qinv, pbits), &pp);
        let h = ((m1p - m2p) * qinv).retrieve();
        // m = m2 + q*h
        let qh = q
            .resize_unchecked(nbits)
            .wrapping_mul(h.resize_unchecked(nbits));
        let m = qh.wrapping_add(m2.clone().resize_unchecked(nbits));
        let out = left_pad(&m.to_be_bytes(), k);
        if self.public_op(&out) != left_pad(c, k) {
            return Err(CryptoError);
        }
        Ok(out)
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.1, DigestInfo prefix from §9.2 note 1),
    /// for the certificates the emulator makes itself.
    pub fn sign_pkcs1_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        const PREFIX: [u8; 19] = [
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
        let k = self.n.len();
        let t_len = PREFIX.len() + 32;
        let mut em = vec![0xFF; k];
        em[0] = 0x00;
        em[1] = 0x01;
        em[k - t_len - 1] = 0x00;
        em[k - t_len..k - 32].copy_from_slice(&PREFIX);
        em[k - 32..].copy_from_slice(h.as_ref());
        self.private_op(&em)
    }

    /// SubjectPublicKeyInfo (RFC 3279 §2.3.1 rsaEncryption, RSAPublicKey).
    pub fn spki(&self) -> Vec<u8> {
        use tlv::der;
        let rsapub = der::seq(&[&der::uint(&self.n), &der::uint(&self.e)]);
        der::seq(&[
            &der::seq(&[&der::oid("1.2.840.113549.1.1.1"), &der::null()]),
            &der::bit_string(&rsapub),
        ])
    }
}

/// An RSA key from its CRT components (the YubiKey import format), e = 65537.
pub fn rsa_from_crt(
    p: &[u8],
    q: &[u8],
    dp: &[u8],
    dq: &[u8],
    qinv: &[u8],
) -> Result<RsaKey, CryptoError> {
    if p.is_empty() || q.is_empty() || p.len() > 512 || q.len() > 512 {
        return Err(CryptoError);
    }
    let bits = limb_bits(p.len().max(q.len()));
    let n = uint(p, bits).concatenating_mul(&uint(q, bits));
    let k = RsaKey {
        n: strip(&n.to_be_bytes()),
        e: vec![0x01, 0x00, 0x01],
        p: strip(p),
        q: strip(q),
        dp: strip(dp),
        dq: strip(dq),
        qinv: strip(qinv),
    };
    // Consistency: a random value must survive the private and public operations.
    let mut probe = random(k.n.len());
    probe[0] = 0;
    k.private_op(&probe)?;
    Ok(k)
}

fn left_pad(b: &[u8], len: usize) -> Vec<u8> {
    let s = strip(b);
    let mut v = vec![0u8; len.saturating_sub(s.len())];
    v.extend_from_slice(&s);
    v
}

/// NIST curves of SP 800-78-4 Table 3-1 (PIV algorithm identifiers 11 and 14, Table 6-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    fn signing(self) -> &'static signature::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        }
    }
    fn digest(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Curve::P256 => &aws_lc_rs::digest::SHA256,
            Curve::P384 => &aws_lc_rs::digest::SHA384,
        }
    }
    fn ecdh(self) -> &'static aws_lc_rs::agreement::Algorithm {
        match self {
            Curve::P256 => &aws_lc_rs::agreement::ECDH_P256,
            Curve::P384 => &aws_lc_rs::agreement::ECDH_P384,
        }
    }
    /// Named-curve OIDs (RFC 5480 §2.1.1.1): secp256r1, secp384r1.
    pub fn oid(self) -> &'static str {
        match self {
            Curve::P256 => "1.2.840.10045.3.1.7",
            Curve::P384 => "1.3.132.0.34",
        }
    }
    /// ecdsa-with-SHA256 / -SHA384 (RFC 5758 §3.2).
    pub fn sig_oid(self) -> &'static str {
        match self {
            Curve::P256 => "1.2.840.10045.4.3.2",
            Curve::P384 => "1.2.840.10045.4.3.3",
        }
    }
}

/// An ECC private key, kept as PKCS#8 (what aws-lc-rs reads and writes).
#[derive(Clone, Debug)]
pub struct EcKey {
    pub curve: Curve,
    pub pkcs8: Vec<u8>,
    /// Uncompressed point 04 || X || Y (SEC 1 §2.3.3).
    pub public: Vec<u8>,
}

impl EcKey {
    pub fn generate(curve: Curve) -> Result<EcKey, CryptoError> {
        let kp = EcdsaKeyPair::generate(curve.signing()).map_err(|_| CryptoError)?;
        let pkcs8 = kp.to_pkcs8v1().map_err(|_| CryptoError)?;
        Ok(EcKey {
            curve,
            pkcs8: pkcs8.as_ref().to_vec(),
            public: kp.public_key().as_ref().to_vec(),
        })
    }

    pub fn from_pkcs8(curve: Curve, pkcs8: &[u8]) -> Result<EcKey, CryptoError> {
        let kp = EcdsaKeyPair::from_pkcs8(curve.signing(), pkcs8).map_err(|_| CryptoError)?;
        Ok(EcKey {
            curve,
            pkcs8: pkcs8.to_vec(),
            public: kp.public_key().as_ref().to_vec(),
        })
    }

    /// From a raw private scalar (big-endian), via an RFC 5915 ECPrivateKey.
    pub fn from_scalar(curve: Curve, d: &[u8]) -> Result<EcKey, CryptoError> {
        use tlv::der;
        let n = curve.field_len();
        if d.is_empty() || d.len() > n {
            return Err(CryptoError);
        }
        let d = left_pad(d, n);
        let ecpk = der::seq(&[
            &der::uint(&[1]),
            &der::octet_string(&d),
            &der::explicit(0, &der::oid(curve.oid())),
        ]);
        let kp =
            EcdsaKeyPair::from_private_key_der(curve.signing(), &ecpk).map_err(|_| CryptoError)?;
        let pkcs8 = kp.to_pkcs8v1().map_err(|_| CryptoError)?;
        Ok(EcKey {
            curve,
            pkcs8: pkcs8.as_ref().to_vec(),
            public: kp.public_key().as_ref().to_vec(),
        })
    }

    fn pair(&self) -> Result<EcdsaKeyPair, CryptoError> {
        EcdsaKeyPair::from_pkcs8(self.curve.signing(), &self.pkcs8).map_err(|_| CryptoError)
    }

    /// ECDSA over a hash the host computed (SP 800-73-4 Part 2 §3.2.4 with SP 800-78-4 §3.2:
    /// the host sends the hash, left-padded or truncated to the field length). DER signature.
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let d = aws_lc_rs::digest::Digest::import_less_safe(digest, self.curve.digest())
            .map_err(|_| CryptoError)?;
        let sig = self.pair()?.sign_digest(&d).map_err(|_| CryptoError)?;
        Ok(sig.as_ref().to_vec())
    }

    /// ECDSA with SHA-256/384 over a message (for the emulator's own certificates).
    pub fn sign_message(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig = self
            .pair()?
            .sign(&SystemRandom::new(), msg)
            .map_err(|_| CryptoError)?;
        Ok(sig.as_ref().to_vec())
    }

    /// ECDH (SP 800-56A §5.7.1.2): the x-coordinate of d·Q for the peer's uncompressed point.
    pub fn ecdh(&self, peer: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let priv_key =
            aws_lc_rs::agreement::PrivateKey::from_private_key_der(self.curve.ecdh(), &self.pkcs8)
                .map_err(|_| CryptoError)?;
        let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(self.curve.ecdh(), peer);
        aws_lc_rs::agreement::agree(&priv_key, peer, CryptoError, |z| Ok(z.to_vec()))
    }

    /// SubjectPublicKeyInfo (RFC 5480 §2).
    pub fn spki(&self) -> Vec<u8> {
        use tlv::der;
        der::seq(&[
            &der::seq(&[&der::oid("1.2.840.10045.2.1"), &der::oid(self.curve.oid())]),
            &der::bit_string(&self.public),
        ])
    }
}

/// Symmetric algorithms of the PIV Card Application Administration Key (SP 800-78-4
/// Table 6-2; AES-192 is the YubiKey 5.7 default, 3DES the earlier one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymAlg {
    Tdes,
    Aes128,
    Aes192,
    Aes256,
}

impl SymAlg {
    /// PIV cryptographic algorithm identifier (SP 800-78-4 Table 6-2): 03 = 3DES-ECB,
    /// 08 = AES-128, 0A = AES-192, 0C = AES-256.
    pub fn id(self) -> u8 {
        match self {
            SymAlg::Tdes => 0x03,
            SymAlg::Aes128 => 0x08,
            SymAlg::Aes192 => 0x0A,
            SymAlg::Aes256 => 0x0C,
        }
    }
    pub fn from_id(id: u8) -> Option<SymAlg> {
        match id {
            // 00 is the deprecated alias of 3DES (SP 800-78-4 Table 6-2 note).
            0x00 | 0x03 => Some(SymAlg::Tdes),
            0x08 => Some(SymAlg::Aes128),
            0x0A => Some(SymAlg::Aes192),
            0x0C => Some(SymAlg::Aes256),
            _ => None,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            SymAlg::Tdes => 24,
            SymAlg::Aes128 => 16,
            SymAlg::Aes192 => 24,
            SymAlg::Aes256 => 32,
        }
    }
    pub fn block_len(self) -> usize {
        match self {
            SymAlg::Tdes => 8,
            _ => 16,
        }
    }

    /// Encrypts (or decrypts) one block in ECB mode.
    pub fn crypt_block(self, key: &[u8], block: &[u8], encrypt: bool) -> Vec<u8> {
        use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
        fn run<C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt>(
            key: &[u8],
            block: &[u8],
            encrypt: bool,
        ) -> Vec<u8> {
            let c = C::new_from_slice(key).expect("key length checked");
            let mut b = aes::cipher::Block::<C>::try_from(block).expect("block length checked");
            if encrypt {
                c.encrypt_block(&mut b);
            } else {
                c.decrypt_block(&mut b);
            }
            b.to_vec()
        }
        match self {
            SymAlg::Tdes => run::<des::TdesEde3>(key, block, encrypt),
            SymAlg::Aes128 => run::<aes::Aes128>(key, block, encrypt),
            SymAlg::Aes192 => run::<aes::Aes192>(key, block, encrypt),
            SymAlg::Aes256 => run::<aes::Aes256>(key, block, encrypt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_raw_roundtrip() {
        let k = RsaKey::generate(2048).unwrap();
        assert_eq!(k.bits(), 2048);
        let mut m = random(256);
        m[0] = 0;
        let s = k.private_op(&m).unwrap();
        assert_eq!(k.public_op(&s), m);
        assert!(k.private_op(&vec![0xFF; 256]).is_err());
    }

    #[test]
    fn rsa_signature_verifies_with_aws_lc() {
        let k = RsaKey::generate(2048).unwrap();
        let sig = k.sign_pkcs1_sha256(b"hello").unwrap();
        let pubkey = tlv::der::seq(&[&tlv::der::uint(&k.n), &tlv::der::uint(&k.e)]);
        signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &pubkey)
            .verify(b"hello", &sig)
            .unwrap();
    }

    #[test]
    fn ecdsa_digest_and_ecdh() {
        for curve in [Curve::P256, Curve::P384] {
            let k = EcKey::generate(curve).unwrap();
            let h = aws_lc_rs::digest::digest(curve.digest(), b"msg");
            let sig = k.sign_digest(h.as_ref()).unwrap();
            let alg = match curve {
                Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1,
                Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1,
            };
            signature::UnparsedPublicKey::new(alg, &k.public)
                .verify(b"msg", &sig)
                .unwrap();
            let other = EcKey::generate(curve).unwrap();
            assert_eq!(
                k.ecdh(&other.public).unwrap(),
                other.ecdh(&k.public).unwrap()
            );
        }
    }

    #[test]
    fn tdes_known_answer() {
        // 3DES with K1=K2=K3 degenerates to single DES: FIPS 81 / classic vector
        // key 0123456789ABCDEF, "Now is t" -> 3FA40E8A984D4815.
        let k1 = hex::decode("0123456789ABCDEF").unwrap();
        let key = [k1.clone(), k1.clone(), k1].concat();
        let ct = SymAlg::Tdes.crypt_block(&key, b"Now is t", true);
        assert_eq!(hex::encode_upper(&ct), "3FA40E8A984D4815");
        assert_eq!(SymAlg::Tdes.crypt_block(&key, &ct, false), b"Now is t");
    }
}
