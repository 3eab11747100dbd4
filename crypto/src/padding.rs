//! RSA encodings of RFC 8017 (PKCS #1 v2.2) in safe Rust, around a raw RSA operation: the soft
//! token applies them around `m^d mod n` / `s^e mod n`, and the PC/SC backend uses them for cards
//! that only do raw RSA.
//!
//! Every function takes or returns a block of exactly `k` bytes (the modulus length), ready for /
//! as produced by the raw RSA operation. Decoding of decrypted blocks ([`oaep_decode`],
//! [`pkcs1_v15_decrypt_unpad`]) runs without data-dependent branches until the final verdict.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use token_api::ck::*;
use token_api::{Error, Result};
use zeroize::Zeroizing;

use crate::digest::Hash;
use crate::util::err;

/// The largest modulus the encodings accept: 16384 bits (aws-lc's limit for RSA keys), so a bad
/// length can never ask for a huge allocation.
const MAX_K: usize = 16384 / 8;

fn check_k(k: usize) -> Result<()> {
    if k > MAX_K {
        return Err(err(CKR_KEY_SIZE_RANGE, "modulus too large"));
    }
    Ok(())
}

fn hash_of(mech: CK_MECHANISM_TYPE) -> Result<Hash> {
    Hash::from_mech(mech)
        .ok_or_else(|| Error::with(CKR_MECHANISM_PARAM_INVALID, "unsupported hash mechanism"))
}

fn mgf_of(mgf: CK_RSA_PKCS_MGF_TYPE) -> Result<Hash> {
    Hash::from_mgf(mgf).ok_or_else(|| Error::with(CKR_MECHANISM_PARAM_INVALID, "unsupported MGF"))
}

/// `DigestInfo` (RFC 8017 §9.2 step 2) for a digest mechanism and a digest of its length:
/// the DER prefix followed by the digest. `CKR_DATA_LEN_RANGE` if the digest length is wrong.
pub fn digest_info(hash_mech: CK_MECHANISM_TYPE, digest: &[u8]) -> Result<Vec<u8>> {
    let h = hash_of(hash_mech)?;
    if digest.len() != h.len() {
        return Err(err(
            CKR_DATA_LEN_RANGE,
            "digest length does not match the hash",
        ));
    }
    let mut out = Vec::with_capacity(h.digest_info_prefix().len() + digest.len());
    out.extend_from_slice(h.digest_info_prefix());
    out.extend_from_slice(digest);
    Ok(out)
}

/// EMSA-PKCS1-v1_5 encoding (RFC 8017 §9.2 steps 3-5, block type 1):
/// `00 01 FF..FF 00 || T`, `k` bytes. `T` (usually a DigestInfo) may be at most `k - 11` bytes,
/// else `CKR_DATA_LEN_RANGE`.
pub fn pkcs1_v15_sign_pad(t: &[u8], modulus_len: usize) -> Result<Vec<u8>> {
    check_k(modulus_len)?;
    if t.len() + 11 > modulus_len {
        return Err(err(
            CKR_DATA_LEN_RANGE,
            "input too long for PKCS#1 v1.5 padding",
        ));
    }
    let mut em = vec![0xffu8; modulus_len];
    em[0] = 0;
    em[1] = 1;
    let sep = modulus_len - t.len() - 1;
    em[sep] = 0;
    em[sep + 1..].copy_from_slice(t);
    Ok(em)
}

/// RSAES-PKCS1-v1_5 encryption encoding (RFC 8017 §7.2.1 step 2, block type 2):
/// `00 02 PS 00 M` with `PS` random non-zero bytes; `M` at most `k - 11` bytes.
pub fn pkcs1_v15_encrypt_pad(m: &[u8], modulus_len: usize) -> Result<Zeroizing<Vec<u8>>> {
    check_k(modulus_len)?;
    if m.len() + 11 > modulus_len {
        return Err(err(
            CKR_DATA_LEN_RANGE,
            "input too long for PKCS#1 v1.5 padding",
        ));
    }
    let mut em = Zeroizing::new(vec![0u8; modulus_len]);
    em[1] = 2;
    let ps_end = modulus_len - m.len() - 1;
    fill_nonzero(&mut em[2..ps_end])?;
    em[ps_end] = 0;
    em[ps_end + 1..].copy_from_slice(m);
    Ok(em)
}

fn fill_nonzero(out: &mut [u8]) -> Result<()> {
    crate::random::fill(out)?;
    for b in out.iter_mut() {
        while *b == 0 {
            let mut one = [0u8; 1];
            crate::random::fill(&mut one)?;
            *b = one[0];
        }
    }
    Ok(())
}

/// RSAES-PKCS1-v1_5 decryption decoding (RFC 8017 §7.2.2 step 3) of the `k`-byte result of the
/// raw private operation. `CKR_ENCRYPTED_DATA_INVALID` for a bad block (at least 8 padding bytes
/// are required). The scan is constant-time in the block contents.
pub fn pkcs1_v15_decrypt_unpad(em: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let k = em.len();
    if k < 11 {
        return Err(err(CKR_ENCRYPTED_DATA_INVALID, "block too short"));
    }
    let mut good = em[0].ct_eq(&0) & em[1].ct_eq(&2);
    let mut looking = Choice::from(1u8);
    let mut zero_index = 0u64;
    for (i, b) in em.iter().enumerate().skip(2) {
        let is_zero = b.ct_eq(&0);
        zero_index.conditional_assign(&(i as u64), looking & is_zero);
        looking &= !is_zero;
    }
    // a separator was found, after at least 8 padding bytes (index >= 10)
    good &= !looking;
    good &= !(zero_index.ct_lt(10));
    if !bool::from(good) {
        return Err(err(CKR_ENCRYPTED_DATA_INVALID, "bad PKCS#1 v1.5 padding"));
    }
    Ok(Zeroizing::new(em[zero_index as usize + 1..].to_vec()))
}

trait CtLt {
    fn ct_lt(&self, other: u64) -> Choice;
}

impl CtLt for u64 {
    /// `self < other` without branches (both below 2^63).
    fn ct_lt(&self, other: u64) -> Choice {
        Choice::from((self.wrapping_sub(other) >> 63) as u8)
    }
}

/// MGF1 (RFC 8017 §B.2.1): `len` bytes of mask from `seed`.
pub fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.len()));
    let mut counter = 0u32;
    while out.len() < len {
        let mut c = hash.context();
        c.update(seed);
        c.update(&counter.to_be_bytes());
        out.extend_from_slice(c.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// The number of bytes of the modulus of `bits` bits (`k`).
fn k_of(bits: usize) -> usize {
    bits.div_ceil(8)
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) of a message hash `digest`, with hash `hash_mech` (a digest
/// mechanism, `CKM_SHA256`), MGF1 with `mgf` (the `CKG_MGF1_*` value of `CK_RSA_PKCS_PSS_PARAMS`,
/// as `MechParam::RsaPss` carries it), a random salt of `salt_len` bytes, for a modulus of `modulus_bits`.
/// Returns the `k`-byte block for the raw private operation (the encoded message `EM` of
/// `emLen = ceil((modBits-1)/8)` bytes, left-padded with a zero byte when `emLen < k`).
pub fn pss_encode(
    hash_mech: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    salt_len: usize,
    digest: &[u8],
    modulus_bits: usize,
) -> Result<Vec<u8>> {
    let h = hash_of(hash_mech)?;
    let mh = mgf_of(mgf)?;
    check_k(modulus_bits.div_ceil(8))?;
    if modulus_bits.saturating_sub(1).div_ceil(8)
        < h.len().saturating_add(salt_len).saturating_add(2)
    {
        return Err(err(
            CKR_MECHANISM_PARAM_INVALID,
            "PSS salt too long for the modulus",
        ));
    }
    let mut salt = Zeroizing::new(vec![0u8; salt_len]);
    crate::random::fill(&mut salt)?;
    pss_encode_with_salt(h, mh, &salt, digest, modulus_bits)
}

pub(crate) fn pss_encode_with_salt(
    h: Hash,
    mh: Hash,
    salt: &[u8],
    digest: &[u8],
    modulus_bits: usize,
) -> Result<Vec<u8>> {
    if digest.len() != h.len() {
        return Err(err(CKR_DATA_LEN_RANGE, "PSS input must be one hash long"));
    }
    check_k(modulus_bits.div_ceil(8))?;
    if modulus_bits < 2 {
        return Err(err(CKR_KEY_SIZE_RANGE, "modulus too small"));
    }
    let em_bits = modulus_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let hlen = h.len();
    if em_len < hlen + salt.len() + 2 {
        return Err(err(
            CKR_MECHANISM_PARAM_INVALID,
            "PSS salt too long for the modulus",
        ));
    }
    // M' = 0x00*8 || mHash || salt ; H = Hash(M')
    let mut c = h.context();
    c.update(&[0u8; 8]);
    c.update(digest);
    c.update(salt);
    let hh = c.finish();
    // DB = PS || 0x01 || salt
    let db_len = em_len - hlen - 1;
    let mut db = vec![0u8; db_len];
    db[db_len - salt.len() - 1] = 1;
    db[db_len - salt.len()..].copy_from_slice(salt);
    let mask = mgf1(mh, hh.as_ref(), db_len);
    for (d, m) in db.iter_mut().zip(mask.iter()) {
        *d ^= m;
    }
    // clear the leftmost 8*emLen - emBits bits
    db[0] &= 0xffu8 >> (8 * em_len - em_bits);
    let k = k_of(modulus_bits);
    let mut out = Vec::with_capacity(k);
    out.resize(k - em_len, 0);
    out.extend_from_slice(&db);
    out.extend_from_slice(hh.as_ref());
    out.push(0xbc);
    Ok(out)
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) of the `k`-byte result of the raw public operation against
/// a message hash. `salt_len` must match exactly (as PKCS#11 requires).
pub fn pss_verify(
    hash_mech: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    salt_len: usize,
    digest: &[u8],
    block: &[u8],
    modulus_bits: usize,
) -> Result<bool> {
    let h = hash_of(hash_mech)?;
    let mh = mgf_of(mgf)?;
    Ok(pss_verify_inner(
        h,
        mh,
        salt_len,
        digest,
        block,
        modulus_bits,
    ))
}

pub(crate) fn pss_verify_inner(
    h: Hash,
    mh: Hash,
    salt_len: usize,
    digest: &[u8],
    block: &[u8],
    modulus_bits: usize,
) -> bool {
    let k = k_of(modulus_bits);
    if modulus_bits < 2 || k > MAX_K || block.len() != k || digest.len() != h.len() {
        return false;
    }
    let em_bits = modulus_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let hlen = h.len();
    // a leading zero byte when emLen < k
    if block[..k - em_len].iter().any(|&b| b != 0) {
        return false;
    }
    let em = &block[k - em_len..];
    if em_len < hlen.saturating_add(salt_len).saturating_add(2) || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at(em_len - hlen - 1);
    let hh = &rest[..hlen];
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    let mask = mgf1(mh, hh, masked_db.len());
    let mut db: Vec<u8> = masked_db
        .iter()
        .zip(mask.iter())
        .map(|(a, b)| a ^ b)
        .collect();
    db[0] &= top_mask;
    let ps_len = em_len - hlen - salt_len - 2;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 1 {
        return false;
    }
    let salt = &db[ps_len + 1..];
    let mut c = h.context();
    c.update(&[0u8; 8]);
    c.update(digest);
    c.update(salt);
    bool::from(c.finish().as_ref().ct_eq(hh))
}

/// EME-OAEP encoding (RFC 8017 §7.1.1 step 2) of `m` for a modulus of `k` bytes, with hash
/// `hash_mech`, MGF1 `mgf` and `label`. `m` may be at most `k - 2 hLen - 2` bytes.
pub fn oaep_encode(
    hash_mech: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    label: &[u8],
    m: &[u8],
    k: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash_of(hash_mech)?;
    let mh = mgf_of(mgf)?;
    let hlen = h.len();
    check_k(k)?;
    if k < 2 * hlen + 2 || m.len() > k - 2 * hlen - 2 {
        return Err(err(CKR_DATA_LEN_RANGE, "input too long for OAEP"));
    }
    let db_len = k - hlen - 1;
    let mut db = Zeroizing::new(vec![0u8; db_len]);
    db[..hlen].copy_from_slice(h.digest(label).as_ref());
    db[db_len - m.len() - 1] = 1;
    db[db_len - m.len()..].copy_from_slice(m);
    let mut seed = Zeroizing::new(vec![0u8; hlen]);
    crate::random::fill(&mut seed)?;
    let db_mask = mgf1(mh, &seed, db_len);
    for (d, x) in db.iter_mut().zip(db_mask.iter()) {
        *d ^= x;
    }
    let seed_mask = mgf1(mh, &db, hlen);
    for (s, x) in seed.iter_mut().zip(seed_mask.iter()) {
        *s ^= x;
    }
    let mut em = Zeroizing::new(Vec::with_capacity(k));
    em.push(0);
    em.extend_from_slice(&seed);
    em.extend_from_slice(&db);
    Ok(em)
}

/// EME-OAEP decoding (RFC 8017 §7.1.2 step 3) of the `k`-byte result of the raw private
/// operation. `CKR_ENCRYPTED_DATA_INVALID` for any decoding error, without saying which (the
/// checks run in constant time).
pub fn oaep_decode(
    hash_mech: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    label: &[u8],
    em: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash_of(hash_mech)?;
    let mh = mgf_of(mgf)?;
    let hlen = h.len();
    let k = em.len();
    if k < 2 * hlen + 2 {
        return Err(err(CKR_ENCRYPTED_DATA_INVALID, "block too short for OAEP"));
    }
    let l_hash = h.digest(label);
    let (masked_seed, masked_db) = em[1..].split_at(hlen);
    let seed_mask = mgf1(mh, masked_db, hlen);
    let seed: Zeroizing<Vec<u8>> = Zeroizing::new(
        masked_seed
            .iter()
            .zip(seed_mask.iter())
            .map(|(a, b)| a ^ b)
            .collect(),
    );
    let db_mask = mgf1(mh, &seed, masked_db.len());
    let db: Zeroizing<Vec<u8>> = Zeroizing::new(
        masked_db
            .iter()
            .zip(db_mask.iter())
            .map(|(a, b)| a ^ b)
            .collect(),
    );
    let mut good = em[0].ct_eq(&0) & db[..hlen].ct_eq(&l_hash[..]);
    let mut looking = Choice::from(1u8);
    let mut one_index = 0u64;
    let mut invalid = Choice::from(0u8);
    for (i, b) in db.iter().enumerate().skip(hlen) {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        one_index.conditional_assign(&(i as u64), looking & is_one);
        invalid |= looking & !is_one & !is_zero;
        looking &= !is_one;
    }
    good &= !looking & !invalid;
    if !bool::from(good) {
        return Err(err(CKR_ENCRYPTED_DATA_INVALID, "OAEP decoding error"));
    }
    Ok(Zeroizing::new(db[one_index as usize + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_sign_pad_layout() {
        let di = digest_info(CKM_SHA256, &[0xab; 32]).unwrap();
        let em = pkcs1_v15_sign_pad(&di, 256).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(&em[..2], &[0, 1]);
        assert!(em[2..256 - di.len() - 1].iter().all(|&b| b == 0xff));
        assert_eq!(em[256 - di.len() - 1], 0);
        assert_eq!(&em[256 - di.len()..], &di[..]);
        assert_eq!(
            pkcs1_v15_sign_pad(&[0; 246], 256).unwrap_err().rv(),
            CKR_DATA_LEN_RANGE
        );
        assert!(pkcs1_v15_sign_pad(&[0; 245], 256).is_ok());
        assert_eq!(
            digest_info(CKM_SHA256, &[0; 31]).unwrap_err().rv(),
            CKR_DATA_LEN_RANGE
        );
    }

    #[test]
    fn pkcs1_encrypt_round_trip_and_bad_blocks() {
        for len in [0usize, 1, 50, 117] {
            let m = vec![0x5a; len];
            let em = pkcs1_v15_encrypt_pad(&m, 128).unwrap();
            assert!(em[2..128 - len - 1].iter().all(|&b| b != 0));
            assert_eq!(&pkcs1_v15_decrypt_unpad(&em).unwrap()[..], &m[..]);
        }
        assert_eq!(
            pkcs1_v15_encrypt_pad(&[0; 118], 128).unwrap_err().rv(),
            CKR_DATA_LEN_RANGE
        );
        let good = pkcs1_v15_encrypt_pad(b"hi", 64).unwrap();
        let mut bad = good.clone();
        bad[0] = 1;
        assert!(pkcs1_v15_decrypt_unpad(&bad).is_err());
        let mut bad = good.clone();
        bad[1] = 1;
        assert!(pkcs1_v15_decrypt_unpad(&bad).is_err());
        // no separator
        let mut bad = vec![0x11u8; 64];
        bad[0] = 0;
        bad[1] = 2;
        assert!(pkcs1_v15_decrypt_unpad(&bad).is_err());
        // separator too early (PS shorter than 8 bytes)
        let mut bad = vec![0x11u8; 64];
        bad[0] = 0;
        bad[1] = 2;
        bad[9] = 0;
        assert!(pkcs1_v15_decrypt_unpad(&bad).is_err());
        bad[9] = 1;
        bad[10] = 0;
        assert_eq!(pkcs1_v15_decrypt_unpad(&bad).unwrap().len(), 53);
        assert!(pkcs1_v15_decrypt_unpad(&[0, 2, 0]).is_err());
    }

    #[test]
    fn oaep_round_trip_and_tamper() {
        for (h, mgf) in [
            (CKM_SHA_1, CKG_MGF1_SHA1),
            (CKM_SHA256, CKG_MGF1_SHA1),
            (CKM_SHA512, CKG_MGF1_SHA256),
        ] {
            let k = 256;
            let hl = Hash::from_mech(h).unwrap().len();
            for len in [0, 1, k - 2 * hl - 2] {
                let m = vec![7u8; len];
                let em = oaep_encode(h, mgf, b"label", &m, k).unwrap();
                assert_eq!(em.len(), k);
                assert_eq!(&oaep_decode(h, mgf, b"label", &em).unwrap()[..], &m[..]);
                assert!(oaep_decode(h, mgf, b"other", &em).is_err());
                let mut t = em.clone();
                t[k - 1] ^= 1;
                assert!(oaep_decode(h, mgf, b"label", &t).is_err());
                let mut t = em.clone();
                t[0] = 1;
                assert!(oaep_decode(h, mgf, b"label", &t).is_err());
            }
            assert_eq!(
                oaep_encode(h, mgf, b"", &vec![0; k - 2 * hl - 1], k)
                    .unwrap_err()
                    .rv(),
                CKR_DATA_LEN_RANGE
            );
        }
        assert_eq!(
            oaep_encode(CKM_MD5, CKG_MGF1_SHA1, b"", b"", 256)
                .unwrap_err()
                .rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn pss_round_trip_odd_sizes() {
        for bits in [1024usize, 1025, 1031, 2048, 2047] {
            let d = Hash::Sha256.digest(b"m");
            for salt in [0usize, 20, 32] {
                let block = pss_encode(CKM_SHA256, CKG_MGF1_SHA1, salt, &d, bits).unwrap();
                assert_eq!(block.len(), bits.div_ceil(8));
                assert!(pss_verify(CKM_SHA256, CKG_MGF1_SHA1, salt, &d, &block, bits).unwrap());
                assert!(!pss_verify(CKM_SHA256, CKG_MGF1_SHA256, salt, &d, &block, bits).unwrap());
                assert!(
                    !pss_verify(CKM_SHA256, CKG_MGF1_SHA1, salt + 1, &d, &block, bits).unwrap()
                );
                let mut t = block.clone();
                t[10] ^= 0x40;
                assert!(!pss_verify(CKM_SHA256, CKG_MGF1_SHA1, salt, &d, &t, bits).unwrap());
            }
        }
        let d = Hash::Sha512.digest(b"m");
        assert_eq!(
            pss_encode(CKM_SHA512, CKG_MGF1_SHA512, 64, &d, 1024)
                .unwrap_err()
                .rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    /// MGF1-SHA1 of "foo" (a widely reproduced example, e.g. the Wikipedia MGF1 article).
    #[test]
    fn mgf1_known_value() {
        assert_eq!(hex::encode(&mgf1(Hash::Sha1, b"foo", 3)[..]), "1ac907");
        assert_eq!(
            hex::encode(&mgf1(Hash::Sha256, b"bar", 5)[..]),
            "382576a7841021cc28fc4c0948753fb8312090cea942ea4c4e735d10dc724b155f9f6069f289d61daca0cb814502ef04eae1"
                [..10]
        );
    }
}
