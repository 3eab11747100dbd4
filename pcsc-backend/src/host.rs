//! Host-side cryptography around the card's raw primitives: hashing for hash-and-sign
//! mechanisms, PKCS#1 v1.5 / PSS encoding before PIV's raw RSA, ECDSA signature format
//! conversion, PKCS#1 v1.5 decryption unpadding, and certificates to PKCS#11 attributes.
//!
//! Everything here works on public data or on data the card already signed; no private key
//! ever exists on the host. Verification and encryption with the card's public keys go to
//! `klyuch-crypto` (see `token.rs`).

use crate::tlv;
use digest::Digest;
use token_api::ck::*;
use token_api::{Error, Result, Template};

/// A running hash of one of the algorithms the hash-and-sign mechanisms need.
#[derive(Clone)]
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Streebog256(streebog::Streebog256),
    Streebog512(streebog::Streebog512),
}

/// Hash algorithms by their PKCS#11 digest mechanism.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Streebog256,
    Streebog512,
}

impl HashAlg {
    pub fn from_digest_mech(m: CK_MECHANISM_TYPE) -> Option<HashAlg> {
        Some(match m {
            CKM_SHA_1 => HashAlg::Sha1,
            CKM_SHA224 => HashAlg::Sha224,
            CKM_SHA256 => HashAlg::Sha256,
            CKM_SHA384 => HashAlg::Sha384,
            CKM_SHA512 => HashAlg::Sha512,
            token_api::ck::CKM_GOSTR3411_12_256 => HashAlg::Streebog256,
            token_api::ck::CKM_GOSTR3411_12_512 => HashAlg::Streebog512,
            _ => return None,
        })
    }

    /// The MGF1 hash of a `CKG_MGF1_*` value (PKCS#11 3.0 mechanisms §2.1.7).
    pub fn from_mgf(m: CK_RSA_PKCS_MGF_TYPE) -> Option<HashAlg> {
        Some(match m {
            CKG_MGF1_SHA1 => HashAlg::Sha1,
            CKG_MGF1_SHA224 => HashAlg::Sha224,
            CKG_MGF1_SHA256 => HashAlg::Sha256,
            CKG_MGF1_SHA384 => HashAlg::Sha384,
            CKG_MGF1_SHA512 => HashAlg::Sha512,
            _ => return None,
        })
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 | HashAlg::Streebog256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 | HashAlg::Streebog512 => 64,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            HashAlg::Sha1 => Hasher::Sha1(Default::default()),
            HashAlg::Sha224 => Hasher::Sha224(Default::default()),
            HashAlg::Sha256 => Hasher::Sha256(Default::default()),
            HashAlg::Sha384 => Hasher::Sha384(Default::default()),
            HashAlg::Sha512 => Hasher::Sha512(Default::default()),
            HashAlg::Streebog256 => Hasher::Streebog256(Default::default()),
            HashAlg::Streebog512 => Hasher::Streebog512(Default::default()),
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }

    /// The DER `DigestInfo` prefix for PKCS#1 v1.5 signatures (RFC 8017 §9.2, Note 1).
    pub fn digest_info_prefix(self) -> Option<&'static [u8]> {
        Some(match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1c,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
            HashAlg::Streebog256 | HashAlg::Streebog512 => return None,
        })
    }
}

impl Hasher {
    pub fn update(&mut self, d: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(d),
            Hasher::Sha224(h) => h.update(d),
            Hasher::Sha256(h) => h.update(d),
            Hasher::Sha384(h) => h.update(d),
            Hasher::Sha512(h) => h.update(d),
            Hasher::Streebog256(h) => h.update(d),
            Hasher::Streebog512(h) => h.update(d),
        }
    }
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Streebog256(h) => h.finalize().to_vec(),
            Hasher::Streebog512(h) => h.finalize().to_vec(),
        }
    }
}

/// A `DigestOp` for the digest mechanisms a card token offers (hashing is always on the host).
pub struct HostDigest {
    alg: HashAlg,
    h: Option<Hasher>,
}

impl HostDigest {
    pub fn new(alg: HashAlg) -> Self {
        HostDigest {
            alg,
            h: Some(alg.hasher()),
        }
    }
}

impl token_api::ops::DigestOp for HostDigest {
    fn digest_len(&self) -> usize {
        self.alg.output_len()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.h
            .as_mut()
            .ok_or(Error::new(CKR_OPERATION_NOT_INITIALIZED))?
            .update(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .h
            .take()
            .ok_or(Error::new(CKR_OPERATION_NOT_INITIALIZED))?
            .finish())
    }
}

/// EMSA-PKCS1-v1_5 block type 1 (RFC 8017 §9.2 steps 3-5): `00 01 FF.. 00 T`, where T is the
/// DigestInfo (or, for `CKM_RSA_PKCS`, whatever the caller gave).
pub fn pkcs1_v15_sign_pad(t: &[u8], k: usize) -> Result<Vec<u8>> {
    if t.len() + 11 > k {
        return Err(Error::with(CKR_DATA_LEN_RANGE, "too long for PKCS#1 v1.5"));
    }
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(k - t.len() - 1, 0xFF);
    em.push(0x00);
    em.extend_from_slice(t);
    Ok(em)
}

/// EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3) of a raw RSA decryption result. The checks
/// are done without early exit; the error does not say which check failed.
pub fn pkcs1_v15_unpad(em: &[u8]) -> Result<Vec<u8>> {
    let mut bad = u8::from(em.len() < 11);
    bad |= em.first().copied().unwrap_or(1);
    bad |= em.get(1).copied().unwrap_or(0) ^ 0x02;
    let mut sep = 0usize;
    for (i, &b) in em.iter().enumerate().skip(2) {
        let is_zero = u8::from(b == 0);
        let first = u8::from(sep == 0) & is_zero;
        sep |= usize::from(first) * i;
    }
    bad |= u8::from(sep < 10);
    if bad != 0 {
        return Err(Error::new(CKR_ENCRYPTED_DATA_INVALID));
    }
    Ok(em[sep + 1..].to_vec())
}

fn mgf1(alg: HashAlg, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + alg.output_len());
    let mut counter = 0u32;
    while out.len() < len {
        let mut h = alg.hasher();
        h.update(seed);
        h.update(&counter.to_be_bytes());
        out.extend(h.finish());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) of an already computed `m_hash`, for a modulus of
/// `mod_bits` bits.
pub fn pss_encode(
    m_hash: &[u8],
    hash: HashAlg,
    mgf: HashAlg,
    salt_len: usize,
    mod_bits: usize,
) -> Result<Vec<u8>> {
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let h_len = hash.output_len();
    if m_hash.len() != h_len {
        return Err(Error::with(CKR_DATA_LEN_RANGE, "PSS input is not a hash"));
    }
    if em_len < h_len + salt_len + 2 {
        return Err(Error::new(CKR_MECHANISM_PARAM_INVALID));
    }
    let mut salt = vec![0u8; salt_len];
    getrandom::fill(&mut salt).map_err(|_| Error::general("no system random"))?;
    let mut h = hash.hasher();
    h.update(&[0u8; 8]);
    h.update(m_hash);
    h.update(&salt);
    let hh = h.finish();
    let mut db = vec![0u8; em_len - salt_len - h_len - 2];
    db.push(0x01);
    db.extend_from_slice(&salt);
    let mask = mgf1(mgf, &hh, em_len - h_len - 1);
    for (d, m) in db.iter_mut().zip(mask) {
        *d ^= m;
    }
    db[0] &= 0xFFu8 >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&hh);
    em.push(0xBC);
    // A 2048-bit modulus has em_len 256; a modulus with mod_bits % 8 == 1 would need a
    // leading zero byte for the raw RSA block.
    let k = mod_bits.div_ceil(8);
    let mut block = vec![0u8; k - em.len()];
    block.extend(em);
    Ok(block)
}

/// ECDSA-Sig-Value (SEC 1 §C.5: `SEQUENCE { r INTEGER, s INTEGER }`) to PKCS#11's `r || s`,
/// each `n` bytes.
pub fn ecdsa_der_to_raw(der: &[u8], n: usize) -> Option<Vec<u8>> {
    let (seq, _) = tlv::read(der)?;
    if seq.tag != 0x30 {
        return None;
    }
    let ints = tlv::parse_all(seq.value);
    if ints.len() != 2 || ints.iter().any(|t| t.tag != 0x02) {
        return None;
    }
    let mut out = Vec::with_capacity(2 * n);
    for t in ints {
        let v = strip_zeros(t.value);
        if v.len() > n {
            return None;
        }
        out.extend(std::iter::repeat_n(0, n - v.len()));
        out.extend_from_slice(v);
    }
    Some(out)
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let i = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    &v[i..]
}

// ------------------------------------------------------------------ X.509

/// rsaEncryption 1.2.840.113549.1.1.1 (RFC 8017 Appendix C), OID contents.
pub const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// id-ecPublicKey 1.2.840.10045.2.1 (RFC 5480 §2.1.1).
pub const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// secp256r1 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
pub const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// secp384r1 1.3.132.0.34 (RFC 5480 §2.1.1.1).
pub const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
/// id-tc26-gost3410-12-256 1.2.643.7.1.1.1.1 (RFC 9215 §3; TC26).
pub const OID_GOST_256: &[u8] = &[0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x01];
/// id-tc26-gost3410-12-512 1.2.643.7.1.1.1.2.
pub const OID_GOST_512: &[u8] = &[0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x01, 0x02];
/// id-tc26-gost3411-12-256 1.2.643.7.1.1.2.2 (RFC 6986 / RFC 9215 §3).
pub const OID_STREEBOG_256: &[u8] = &[0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02];
/// id-tc26-gost3411-12-512 1.2.643.7.1.1.2.3.
pub const OID_STREEBOG_512: &[u8] = &[0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x03];

/// DER of an OBJECT IDENTIFIER from its contents.
pub fn oid_der(contents: &[u8]) -> Vec<u8> {
    tlv::encode(0x06, contents)
}

/// The parts of a certificate PKCS#11 needs (RFC 5280 §4.1).
pub struct CertParts<'a> {
    pub serial: &'a [u8],
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    pub not_before: Option<[u8; 8]>,
    pub not_after: Option<[u8; 8]>,
    pub spki: &'a [u8],
}

fn bad_cert() -> Error {
    Error::with(CKR_ATTRIBUTE_VALUE_INVALID, "malformed X.509 certificate")
}

/// Split a DER certificate.
pub fn cert_parts(der: &[u8]) -> Result<CertParts<'_>> {
    let (cert, _) = tlv::read(der).ok_or_else(bad_cert)?;
    let (tbs, _) = tlv::read(cert.value).ok_or_else(bad_cert)?;
    let mut f = tlv::parse_all(tbs.value).into_iter().peekable();
    if f.peek().map(|t| t.tag) == Some(0xA0) {
        f.next();
    }
    let serial = f.next().filter(|t| t.tag == 0x02).ok_or_else(bad_cert)?;
    let _sig = f.next().ok_or_else(bad_cert)?;
    let issuer = f.next().filter(|t| t.tag == 0x30).ok_or_else(bad_cert)?;
    let validity = f.next().filter(|t| t.tag == 0x30).ok_or_else(bad_cert)?;
    let subject = f.next().filter(|t| t.tag == 0x30).ok_or_else(bad_cert)?;
    let spki = f.next().filter(|t| t.tag == 0x30).ok_or_else(bad_cert)?;
    let times = tlv::parse_all(validity.value);
    Ok(CertParts {
        serial: serial.raw,
        issuer: issuer.raw,
        subject: subject.raw,
        not_before: times.first().and_then(ck_date),
        not_after: times.get(1).and_then(ck_date),
        spki: spki.raw,
    })
}

/// UTCTime (`YYMMDD...`, RFC 5280 §4.1.2.5.1: YY < 50 is 20YY) or GeneralizedTime to `CK_DATE`.
fn ck_date(t: &tlv::Tlv<'_>) -> Option<[u8; 8]> {
    let v = t.value;
    let mut out = [0u8; 8];
    match t.tag {
        0x17 if v.len() >= 6 => {
            let century: &[u8] = if v[0] < b'5' { b"20" } else { b"19" };
            out[..2].copy_from_slice(century);
            out[2..].copy_from_slice(&v[..6]);
        }
        0x18 if v.len() >= 8 => out.copy_from_slice(&v[..8]),
        _ => return None,
    }
    out.iter().all(u8::is_ascii_digit).then_some(out)
}

/// Certificate object attributes (without class/label/id/token flags).
pub fn certificate_attributes(der: &[u8]) -> Result<Template> {
    let p = cert_parts(der)?;
    let mut t = Template::new();
    t.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    t.set(CKA_SUBJECT, p.subject.to_vec());
    t.set(CKA_ISSUER, p.issuer.to_vec());
    t.set(CKA_SERIAL_NUMBER, p.serial.to_vec());
    t.set(CKA_VALUE, der.to_vec());
    t.set(CKA_PUBLIC_KEY_INFO, p.spki.to_vec());
    t.set_ulong(
        CKA_CERTIFICATE_CATEGORY,
        CK_CERTIFICATE_CATEGORY_UNSPECIFIED,
    );
    t.set_bool(CKA_TRUSTED, false);
    t.set(
        CKA_START_DATE,
        p.not_before.map(|d| d.to_vec()).unwrap_or_default(),
    );
    t.set(
        CKA_END_DATE,
        p.not_after.map(|d| d.to_vec()).unwrap_or_default(),
    );
    t.set(CKA_URL, Vec::new());
    t.set(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new());
    t.set(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new());
    t.set_ulong(
        CKA_JAVA_MIDP_SECURITY_DOMAIN,
        CK_SECURITY_DOMAIN_UNSPECIFIED,
    );
    Ok(t)
}

/// What kind of key a public key is, with its size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyKind {
    Rsa { bits: usize },
    EcP256,
    EcP384,
    Gost256,
    Gost512,
}

impl KeyKind {
    pub fn key_type(self) -> CK_KEY_TYPE {
        match self {
            KeyKind::Rsa { .. } => CKK_RSA,
            KeyKind::EcP256 | KeyKind::EcP384 => CKK_EC,
            KeyKind::Gost256 => CKK_GOSTR3410,
            KeyKind::Gost512 => token_api::ck::CKK_GOSTR3410_512,
        }
    }
    /// Signature length in bytes.
    pub fn sig_len(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits.div_ceil(8),
            KeyKind::EcP256 | KeyKind::Gost256 => 64,
            KeyKind::EcP384 => 96,
            KeyKind::Gost512 => 128,
        }
    }
    /// Key size as `C_GetMechanismInfo` counts it (bits).
    pub fn bits(self) -> usize {
        match self {
            KeyKind::Rsa { bits } => bits,
            KeyKind::EcP256 | KeyKind::Gost256 => 256,
            KeyKind::EcP384 => 384,
            KeyKind::Gost512 => 512,
        }
    }
}

/// Public key object attributes (`CKA_KEY_TYPE` + components + `CKA_PUBLIC_KEY_INFO`) of a DER
/// SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), and the key kind.
pub fn public_key_attributes(spki: &[u8]) -> Result<(Template, KeyKind)> {
    let bad = || Error::with(CKR_ATTRIBUTE_VALUE_INVALID, "unsupported public key");
    let (seq, _) = tlv::read(spki).ok_or_else(bad)?;
    let parts = tlv::parse_all(seq.value);
    let (alg, bits) = match parts.as_slice() {
        [a, b] if a.tag == 0x30 && b.tag == 0x03 => (a, b),
        _ => return Err(bad()),
    };
    let alg_parts = tlv::parse_all(alg.value);
    let oid = alg_parts
        .first()
        .filter(|t| t.tag == 0x06)
        .ok_or_else(bad)?;
    let key_bits = bits.value.get(1..).ok_or_else(bad)?; // skip "unused bits" byte
    let mut t = Template::new();
    t.set(CKA_PUBLIC_KEY_INFO, spki.to_vec());
    let kind = if oid.value == OID_RSA {
        let (rsa, _) = tlv::read(key_bits).ok_or_else(bad)?;
        let ints = tlv::parse_all(rsa.value);
        let (n, e) = match ints.as_slice() {
            [n, e] if n.tag == 2 && e.tag == 2 => (strip_zeros(n.value), strip_zeros(e.value)),
            _ => return Err(bad()),
        };
        let nbits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        t.set(CKA_MODULUS, n.to_vec());
        t.set(CKA_PUBLIC_EXPONENT, e.to_vec());
        t.set_ulong(CKA_MODULUS_BITS, nbits as CK_ULONG);
        KeyKind::Rsa { bits: nbits }
    } else if oid.value == OID_EC {
        let curve = alg_parts.get(1).filter(|t| t.tag == 0x06).ok_or_else(bad)?;
        let kind = if curve.value == OID_P256 {
            KeyKind::EcP256
        } else if curve.value == OID_P384 {
            KeyKind::EcP384
        } else {
            return Err(bad());
        };
        t.set(CKA_EC_PARAMS, curve.raw.to_vec());
        t.set(CKA_EC_POINT, tlv::encode(0x04, key_bits));
        kind
    } else if oid.value == OID_GOST_256 || oid.value == OID_GOST_512 {
        let is512 = oid.value == OID_GOST_512;
        let params = alg_parts.get(1).filter(|t| t.tag == 0x30).ok_or_else(bad)?;
        let p = tlv::parse_all(params.value);
        let paramset = p.first().filter(|t| t.tag == 0x06).ok_or_else(bad)?;
        let digest = match p.get(1).filter(|t| t.tag == 0x06) {
            Some(d) => d.raw.to_vec(),
            None => oid_der(if is512 {
                OID_STREEBOG_512
            } else {
                OID_STREEBOG_256
            }),
        };
        // subjectPublicKey holds an OCTET STRING of X_le || Y_le (RFC 9215 §4.3).
        let (os, _) = tlv::read(key_bits).ok_or_else(bad)?;
        let want = if is512 { 128 } else { 64 };
        if os.tag != 0x04 || os.value.len() != want {
            return Err(bad());
        }
        t.set(CKA_GOSTR3410_PARAMS, paramset.raw.to_vec());
        t.set(CKA_GOSTR3411_PARAMS, digest);
        t.set(CKA_VALUE, os.value.to_vec());
        if is512 {
            KeyKind::Gost512
        } else {
            KeyKind::Gost256
        }
    } else {
        return Err(bad());
    };
    t.set_ulong(CKA_KEY_TYPE, kind.key_type());
    Ok((t, kind))
}

/// Strip leading zero bytes of a big-endian number (for `CKA_MODULUS` from a card).
pub fn unsigned(v: &[u8]) -> Vec<u8> {
    strip_zeros(v).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_streebog_known_answers() {
        // FIPS 180-2 Appendix B.1 ("abc").
        assert_eq!(
            crate::apdu::hex_upper(&HashAlg::Sha256.hash(b"abc")),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
        // GOST R 34.11-2012 Appendix A example 1 (M1, 256-bit), as RFC 6986 §10.1 prints the
        // hash output bytes.
        let m1 = b"012345678901234567890123456789012345678901234567890123456789012";
        assert_eq!(
            crate::apdu::hex_upper(&HashAlg::Streebog256.hash(m1)),
            "9D151EEFD8590B89DAA6BA6CB74AF9275DD051026BB149A452FD84E5E57B5500"
        );
    }

    #[test]
    fn pkcs1_padding_and_unpadding() {
        let em = pkcs1_v15_sign_pad(b"abc", 16).unwrap();
        assert_eq!(&em[..2], &[0, 1]);
        assert_eq!(&em[12..], &[0, b'a', b'b', b'c']);
        assert!(pkcs1_v15_sign_pad(&[0; 6], 16).is_err());
        let mut enc = vec![0, 2];
        enc.extend([0x55u8; 10]);
        enc.push(0);
        enc.extend(b"secret");
        assert_eq!(pkcs1_v15_unpad(&enc).unwrap(), b"secret");
        enc[1] = 1;
        assert!(pkcs1_v15_unpad(&enc).is_err());
    }

    #[test]
    fn pss_shape() {
        let h = HashAlg::Sha256.hash(b"x");
        let em = pss_encode(&h, HashAlg::Sha256, HashAlg::Sha256, 32, 2048).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(em[255], 0xBC);
        assert_eq!(em[0] & 0x80, 0);
    }

    #[test]
    fn ecdsa_conversion() {
        let der = [0x30, 0x08, 0x02, 0x02, 0x00, 0x81, 0x02, 0x02, 0x01, 0x02];
        assert_eq!(
            ecdsa_der_to_raw(&der, 3).unwrap(),
            vec![0, 0, 0x81, 0, 1, 2]
        );
        assert!(ecdsa_der_to_raw(&der[..5], 3).is_none());
    }
}
