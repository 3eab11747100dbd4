//! AES (FIPS 197) through aws-lc-rs: `CKM_AES_KEY_GEN`, ECB, CBC, CBC_PAD (PKCS#7 padding),
//! CTR (`CK_AES_CTR_PARAMS`, counter of `ulCounterBits` bits), GCM (`CK_GCM_PARAMS`), key wrap
//! (RFC 3394) and key wrap with padding (RFC 5649).
//!
//! Multi-part ECB/CBC/CBC_PAD process whole blocks as they come and keep the rest (CBC_PAD
//! decryption keeps the last full block until the final call, which removes the padding). CTR
//! streams byte-exact. GCM collects the data and seals or opens it in the final call (a
//! decryption must not release plaintext before the tag is checked).

use std::sync::Arc;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    self, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
use token_api::ck::*;
use token_api::ops::{CipherOp, ContextLogin};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::key::Key;
use crate::registry::MechanismImpl;
use crate::util::{err, key_type_inconsistent, param_invalid, to_usize, value_invalid};

const BLOCK: usize = 16;

/// The AES key of a secret key object (`CKK_AES`, 16/24/32 bytes).
fn aes_key(key: &Key) -> Result<&[u8]> {
    match key.secret() {
        Some(v) if key.key_type() == CKK_AES && [16, 24, 32].contains(&v.len()) => Ok(v),
        _ => Err(key_type_inconsistent("an AES key is needed")),
    }
}

fn alg(k: &[u8]) -> &'static cipher::Algorithm {
    match k.len() {
        16 => &cipher::AES_128,
        24 => &cipher::AES_192,
        _ => &cipher::AES_256,
    }
}

fn unbound(k: &[u8]) -> Result<UnboundCipherKey> {
    UnboundCipherKey::new(alg(k), k).map_err(|_| Error::general("AES key setup failed"))
}

fn failed(_: aws_lc_rs::error::Unspecified) -> Error {
    Error::general("AES operation failed")
}

const AES_INFO: MechInfo = MechInfo::new(16, 32, 0);

fn info(flags: CK_FLAGS) -> MechInfo {
    MechInfo::new(AES_INFO.min_key_size, AES_INFO.max_key_size, flags)
}

/// `CKM_AES_KEY_GEN`: `CKA_VALUE_LEN` of 16, 24 or 32.
pub(crate) struct AesKeyGen;

impl MechanismImpl for AesKeyGen {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_AES_KEY_GEN
    }
    fn info(&self) -> MechInfo {
        info(CKF_GENERATE)
    }
    fn generate_key(&self, p: &MechParam, t: &Template) -> Result<Template> {
        if *p != MechParam::None {
            return Err(param_invalid("CKM_AES_KEY_GEN takes no parameter"));
        }
        let len = t
            .get_ulong(CKA_VALUE_LEN)?
            .ok_or_else(|| err(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is missing"))?;
        let len = to_usize(len);
        if ![16, 24, 32].contains(&len) {
            return Err(value_invalid("an AES key is 16, 24 or 32 bytes"));
        }
        crate::hmac::secret_template(CKK_AES, len)
    }
}

/// The block modes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BlockMode {
    Ecb,
    Cbc,
    CbcPad,
}

pub(crate) struct AesBlockMech {
    pub ty: CK_MECHANISM_TYPE,
    pub mode: BlockMode,
}

impl AesBlockMech {
    fn op(&self, key: &Key, p: &MechParam, decrypt: bool) -> Result<AesBlockOp> {
        let k = aes_key(key)?;
        let iv = match (self.mode, p) {
            (BlockMode::Ecb, MechParam::None) => [0u8; BLOCK],
            (BlockMode::Ecb, _) => return Err(param_invalid("AES-ECB takes no parameter")),
            (_, MechParam::Bytes(iv)) if iv.len() == BLOCK => {
                let mut a = [0u8; BLOCK];
                a.copy_from_slice(iv);
                a
            }
            _ => return Err(param_invalid("AES-CBC needs a 16-byte IV")),
        };
        let (enc, dec) = match (self.mode, decrypt) {
            (BlockMode::Ecb, false) => (Some(EncryptingKey::ecb(unbound(k)?)), None),
            (BlockMode::Ecb, true) => (None, Some(DecryptingKey::ecb(unbound(k)?))),
            (_, false) => (Some(EncryptingKey::cbc(unbound(k)?)), None),
            (_, true) => (None, Some(DecryptingKey::cbc(unbound(k)?))),
        };
        Ok(AesBlockOp {
            mode: self.mode,
            enc: enc.transpose().map_err(failed)?,
            dec: dec.transpose().map_err(failed)?,
            iv,
            buf: Zeroizing::new(Vec::with_capacity(2 * BLOCK)),
        })
    }
}

impl MechanismImpl for AesBlockMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        info(CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP)
    }
    fn encrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p, false)?))
    }
    fn decrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p, true)?))
    }
    fn wrap(&self, wrapping: Arc<Key>, p: &MechParam, key_data: &[u8]) -> Result<Vec<u8>> {
        self.op(&wrapping, p, false)?
            .one_shot(key_data)
            .map_err(|e| match e.rv() {
                CKR_DATA_LEN_RANGE => Error::with(
                    CKR_KEY_SIZE_RANGE,
                    "the key is not a multiple of the block size (use CKM_AES_CBC_PAD)",
                ),
                _ => e,
            })
    }
    fn unwrap(
        &self,
        unwrapping: Arc<Key>,
        p: &MechParam,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.op(&unwrapping, p, true)?
            .one_shot(wrapped)
            .map(Zeroizing::new)
            .map_err(wrapped_err)
    }
}

/// Decryption errors as `C_UnwrapKey` reports them.
fn wrapped_err(e: Error) -> Error {
    match e.rv() {
        CKR_ENCRYPTED_DATA_LEN_RANGE => Error::new(CKR_WRAPPED_KEY_LEN_RANGE),
        CKR_ENCRYPTED_DATA_INVALID => Error::new(CKR_WRAPPED_KEY_INVALID),
        _ => e,
    }
}

struct AesBlockOp {
    mode: BlockMode,
    enc: Option<EncryptingKey>,
    dec: Option<DecryptingKey>,
    /// The chaining value: the IV, then the last ciphertext block.
    iv: [u8; BLOCK],
    /// Input not processed yet.
    buf: Zeroizing<Vec<u8>>,
}

impl AesBlockOp {
    fn decrypting(&self) -> bool {
        self.dec.is_some()
    }

    /// Encrypt or decrypt whole blocks in place, carrying the CBC chaining value.
    fn process(&mut self, data: &mut [u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let cbc = self.mode != BlockMode::Ecb;
        if let Some(enc) = &self.enc {
            if cbc {
                enc.less_safe_encrypt(data, EncryptionContext::Iv128(self.iv.into()))
                    .map_err(failed)?;
                self.iv.copy_from_slice(&data[data.len() - BLOCK..]);
            } else {
                enc.less_safe_encrypt(data, EncryptionContext::None)
                    .map_err(failed)?;
            }
        } else if let Some(dec) = &self.dec {
            if cbc {
                let mut next = [0u8; BLOCK];
                next.copy_from_slice(&data[data.len() - BLOCK..]);
                dec.decrypt(data, DecryptionContext::Iv128(self.iv.into()))
                    .map_err(failed)?;
                self.iv = next;
            } else {
                dec.decrypt(data, DecryptionContext::None).map_err(failed)?;
            }
        }
        Ok(())
    }

    /// How many buffered bytes an update may process now.
    fn ready(&self, total: usize) -> usize {
        if self.mode == BlockMode::CbcPad && self.decrypting() {
            // keep the last full block for the final call (it holds the padding)
            total.saturating_sub(1) / BLOCK * BLOCK
        } else {
            total / BLOCK * BLOCK
        }
    }
}

impl ContextLogin for AesBlockOp {}

impl CipherOp for AesBlockOp {
    fn multipart(&self) -> bool {
        true
    }
    fn output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len().saturating_add(input_len);
        if self.mode == BlockMode::CbcPad && !self.decrypting() {
            total / BLOCK * BLOCK + BLOCK
        } else {
            total / BLOCK * BLOCK
        }
    }
    fn final_len(&self) -> usize {
        if self.mode == BlockMode::CbcPad {
            BLOCK
        } else {
            0
        }
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut all = Zeroizing::new(Vec::with_capacity(self.buf.len() + input.len()));
        all.extend_from_slice(&self.buf);
        all.extend_from_slice(input);
        let n = self.ready(all.len());
        let mut out = all[..n].to_vec();
        self.buf = Zeroizing::new(all[n..].to_vec());
        self.process(&mut out)?;
        Ok(out)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let decrypting = self.decrypting();
        let buf = std::mem::take(&mut self.buf);
        match (self.mode, decrypting) {
            (BlockMode::CbcPad, false) => {
                // PKCS#7 (RFC 5652 §6.3): 1..16 bytes, each the pad length.
                let pad = BLOCK - buf.len() % BLOCK;
                let mut out = buf.to_vec();
                out.resize(out.len() + pad, pad as u8);
                self.process(&mut out)?;
                Ok(out)
            }
            (BlockMode::CbcPad, true) => {
                if buf.len() != BLOCK {
                    return Err(err(
                        CKR_ENCRYPTED_DATA_LEN_RANGE,
                        "the ciphertext is not a whole number of blocks",
                    ));
                }
                let mut out = Zeroizing::new(buf.to_vec());
                self.process(&mut out)?;
                let pad = out[BLOCK - 1] as usize;
                let bad = pad == 0
                    || pad > BLOCK
                    || out[BLOCK - pad..].iter().any(|&b| b as usize != pad);
                if bad {
                    return Err(err(CKR_ENCRYPTED_DATA_INVALID, "bad CBC padding"));
                }
                Ok(out[..BLOCK - pad].to_vec())
            }
            (_, _) if !buf.is_empty() => Err(if decrypting {
                err(
                    CKR_ENCRYPTED_DATA_LEN_RANGE,
                    "the ciphertext is not a whole number of blocks",
                )
            } else {
                err(
                    CKR_DATA_LEN_RANGE,
                    "the data is not a whole number of blocks",
                )
            }),
            _ => Ok(Vec::new()),
        }
    }
}

/// `CKM_AES_CTR` (NIST SP 800-38A §6.5): the counter is the low `ulCounterBits` bits of the
/// counter block, and running out of counter values is `CKR_DATA_LEN_RANGE`.
pub(crate) struct AesCtrMech;
pub(crate) static AES_CTR: AesCtrMech = AesCtrMech;

impl AesCtrMech {
    fn op(&self, key: &Key, p: &MechParam) -> Result<AesCtrOp> {
        let k = aes_key(key)?;
        let MechParam::Ctr {
            counter_bits,
            block,
        } = p
        else {
            return Err(param_invalid("AES-CTR needs CK_AES_CTR_PARAMS"));
        };
        let bits = to_usize(*counter_bits);
        if !(1..=128).contains(&bits) {
            return Err(param_invalid("ulCounterBits must be 1..128"));
        }
        let mask = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let v = u128::from_be_bytes(*block);
        Ok(AesCtrOp {
            ecb: EncryptingKey::ecb(unbound(k)?).map_err(failed)?,
            counter: v,
            mask,
            // counter values left, including the current one (None: 2^128)
            left: (mask - (v & mask)).checked_add(1),
            ks: Zeroizing::new([0u8; BLOCK]),
            ks_pos: BLOCK,
        })
    }
}

impl MechanismImpl for AesCtrMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_AES_CTR
    }
    fn info(&self) -> MechInfo {
        info(CKF_ENCRYPT | CKF_DECRYPT)
    }
    fn encrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p)?))
    }
    fn decrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p)?))
    }
}

struct AesCtrOp {
    ecb: EncryptingKey,
    counter: u128,
    mask: u128,
    left: Option<u128>,
    /// The current keystream block and how much of it is used.
    ks: Zeroizing<[u8; BLOCK]>,
    ks_pos: usize,
}

impl ContextLogin for AesCtrOp {}

impl CipherOp for AesCtrOp {
    fn multipart(&self) -> bool {
        true
    }
    fn output_len(&self, input_len: usize) -> usize {
        input_len
    }
    fn final_len(&self) -> usize {
        0
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let mut out = input.to_vec();
        let from_ks = (BLOCK - self.ks_pos).min(out.len());
        for (o, k) in out[..from_ks]
            .iter_mut()
            .zip(&self.ks[self.ks_pos..self.ks_pos + from_ks])
        {
            *o ^= k;
        }
        self.ks_pos += from_ks;
        let rest = &mut out[from_ks..];
        if rest.is_empty() {
            return Ok(out);
        }
        let blocks = rest.len().div_ceil(BLOCK);
        if self.left.is_some_and(|l| l < blocks as u128) {
            return Err(err(CKR_DATA_LEN_RANGE, "the CTR counter would wrap"));
        }
        // keystream = AES(counter blocks), computed in one ECB call
        let mut ks = Zeroizing::new(Vec::with_capacity(blocks * BLOCK));
        for _ in 0..blocks {
            ks.extend_from_slice(&self.counter.to_be_bytes());
            let low = (self.counter & self.mask).wrapping_add(1) & self.mask;
            self.counter = (self.counter & !self.mask) | low;
        }
        self.left = self.left.map(|l| l - blocks as u128);
        self.ecb
            .less_safe_encrypt(&mut ks, EncryptionContext::None)
            .map_err(failed)?;
        for (o, k) in rest.iter_mut().zip(ks.iter()) {
            *o ^= k;
        }
        let used = rest.len() - (blocks - 1) * BLOCK;
        self.ks.copy_from_slice(&ks[(blocks - 1) * BLOCK..]);
        self.ks_pos = used;
        Ok(out)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }
}

/// `CKM_AES_GCM` (NIST SP 800-38D): IVs of 1 to 256 bytes, tags of 32, 64 or 96..128 bits
/// (SP 800-38D §5.2.1.2). The common case (96-bit IV, 128-bit tag) runs through aws-lc-rs, the
/// others through aws-lc's `EVP_AEAD` in `ffi.rs`.
pub(crate) struct AesGcmMech;
pub(crate) static AES_GCM: AesGcmMech = AesGcmMech;

/// The longest IV accepted (PKCS#11 allows up to 2^32-1 bytes; nobody needs more than this).
const GCM_MAX_IV: usize = 256;

enum GcmKey {
    /// 96-bit IV, 128-bit tag.
    Standard(LessSafeKey),
    Other(crate::ffi::AesGcm),
}

impl AesGcmMech {
    fn op(&self, key: &Key, p: &MechParam, decrypt: bool) -> Result<AesGcmOp> {
        let k = aes_key(key)?;
        let MechParam::Gcm { iv, aad, tag_bits } = p else {
            return Err(param_invalid("AES-GCM needs CK_GCM_PARAMS"));
        };
        if iv.is_empty() || iv.len() > GCM_MAX_IV {
            return Err(param_invalid("AES-GCM IV must be 1..256 bytes"));
        }
        let tag_len = match *tag_bits {
            32 | 64 | 96 | 104 | 112 | 120 | 128 => to_usize(*tag_bits) / 8,
            _ => return Err(param_invalid("AES-GCM tag must be 32, 64 or 96..128 bits")),
        };
        let gkey = if iv.len() == 12 && tag_len == GCM_TAG {
            let a = match k.len() {
                16 => &aead::AES_128_GCM,
                24 => &aead::AES_192_GCM,
                _ => &aead::AES_256_GCM,
            };
            GcmKey::Standard(LessSafeKey::new(
                UnboundKey::new(a, k).map_err(|_| Error::general("AES-GCM key setup failed"))?,
            ))
        } else {
            GcmKey::Other(
                crate::ffi::AesGcm::new(k, tag_len)
                    .map_err(|_| Error::general("AES-GCM key setup failed"))?,
            )
        };
        Ok(AesGcmOp {
            key: gkey,
            iv: iv.clone(),
            tag_len,
            aad: aad.clone(),
            buf: Zeroizing::new(Vec::new()),
            decrypt,
        })
    }
}

impl MechanismImpl for AesGcmMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_AES_GCM
    }
    fn info(&self) -> MechInfo {
        info(CKF_ENCRYPT | CKF_DECRYPT)
    }
    fn encrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p, false)?))
    }
    fn decrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p, true)?))
    }
}

const GCM_TAG: usize = 16;

struct AesGcmOp {
    key: GcmKey,
    iv: Vec<u8>,
    tag_len: usize,
    aad: Vec<u8>,
    buf: Zeroizing<Vec<u8>>,
    decrypt: bool,
}

impl ContextLogin for AesGcmOp {}

impl CipherOp for AesGcmOp {
    fn multipart(&self) -> bool {
        true
    }
    fn output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len().saturating_add(input_len);
        if self.decrypt {
            total.saturating_sub(self.tag_len)
        } else {
            total.saturating_add(self.tag_len)
        }
    }
    fn final_len(&self) -> usize {
        self.output_len(0)
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(input);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let mut data = std::mem::take(&mut self.buf);
        if self.decrypt {
            if data.len() < self.tag_len {
                return Err(err(
                    CKR_ENCRYPTED_DATA_LEN_RANGE,
                    "shorter than the GCM tag",
                ));
            }
            let bad = |_| err(CKR_ENCRYPTED_DATA_INVALID, "GCM tag mismatch");
            match &self.key {
                GcmKey::Standard(k) => {
                    let nonce = Nonce::try_assume_unique_for_key(&self.iv)
                        .map_err(|_| Error::general("bad GCM nonce"))?;
                    let plain = k
                        .open_in_place(nonce, Aad::from(&self.aad), &mut data)
                        .map_err(|_| err(CKR_ENCRYPTED_DATA_INVALID, "GCM tag mismatch"))?;
                    Ok(plain.to_vec())
                }
                GcmKey::Other(k) => Ok(k.open(&self.iv, &self.aad, &data).map_err(bad)?.to_vec()),
            }
        } else {
            match &self.key {
                GcmKey::Standard(k) => {
                    let nonce = Nonce::try_assume_unique_for_key(&self.iv)
                        .map_err(|_| Error::general("bad GCM nonce"))?;
                    let mut out = data.to_vec();
                    k.seal_in_place_append_tag(nonce, Aad::from(&self.aad), &mut out)
                        .map_err(failed)?;
                    Ok(out)
                }
                GcmKey::Other(k) => k
                    .seal(&self.iv, &self.aad, &data)
                    .map_err(|_| Error::general("AES-GCM failed")),
            }
        }
    }
}

/// `CKM_AES_KEY_WRAP` (RFC 3394) and `CKM_AES_KEY_WRAP_PAD` (RFC 5649), single-part.
pub(crate) struct AesKwMech {
    pub ty: CK_MECHANISM_TYPE,
    pub pad: bool,
}

/// The default initial values: RFC 3394 §2.2.3.1 and RFC 5649 §3 (the "alternative IV" prefix).
const KW_IV: [u8; 8] = [0xa6; 8];
const KWP_IV: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];

impl AesKwMech {
    fn op(&self, key: &Key, p: &MechParam, decrypt: bool) -> Result<AesKwOp> {
        let k = aes_key(key)?;
        if k.len() == 24 {
            // aws-lc-rs offers AES-128 and AES-256 key encryption keys only
            return Err(err(
                CKR_KEY_SIZE_RANGE,
                "AES key wrap needs a 128- or 256-bit key",
            ));
        }
        match p {
            MechParam::None => {}
            MechParam::Bytes(b) if b.is_empty() => {}
            MechParam::Bytes(b) if !self.pad && b[..] == KW_IV => {}
            MechParam::Bytes(b) if self.pad && b[..] == KWP_IV => {}
            _ => return Err(param_invalid("only the default key wrap IV is supported")),
        }
        Ok(AesKwOp {
            key: Zeroizing::new(k.to_vec()),
            pad: self.pad,
            decrypt,
            buf: Zeroizing::new(Vec::new()),
        })
    }
}

impl MechanismImpl for AesKwMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        info(CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP)
    }
    fn encrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p, false)?))
    }
    fn decrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.op(&key, p, true)?))
    }
    fn wrap(&self, wrapping: Arc<Key>, p: &MechParam, key_data: &[u8]) -> Result<Vec<u8>> {
        self.op(&wrapping, p, false)?
            .run(key_data)
            .map_err(|e| match e.rv() {
                CKR_DATA_LEN_RANGE => Error::with(
                    CKR_KEY_SIZE_RANGE,
                    "RFC 3394 wraps multiples of 8 bytes, at least 16 (use KEY_WRAP_PAD)",
                ),
                _ => e,
            })
    }
    fn unwrap(
        &self,
        unwrapping: Arc<Key>,
        p: &MechParam,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.op(&unwrapping, p, true)?
            .run(wrapped)
            .map(Zeroizing::new)
            .map_err(wrapped_err)
    }
}

struct AesKwOp {
    key: Zeroizing<Vec<u8>>,
    pad: bool,
    decrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl AesKwOp {
    fn kek(&self) -> Result<AesKek> {
        let a = match self.key.len() {
            16 => &key_wrap::AES_128,
            32 => &key_wrap::AES_256,
            _ => {
                return Err(err(
                    CKR_KEY_SIZE_RANGE,
                    "AES key wrap needs a 128- or 256-bit key",
                ));
            }
        };
        AesKek::new(a, &self.key).map_err(failed)
    }

    fn run(&self, input: &[u8]) -> Result<Vec<u8>> {
        let n = input.len();
        if self.decrypt {
            let min = if self.pad { 16 } else { 24 };
            if n < min || !n.is_multiple_of(8) {
                return Err(err(
                    CKR_ENCRYPTED_DATA_LEN_RANGE,
                    "wrapped data must be a multiple of 8 bytes",
                ));
            }
            let mut out = Zeroizing::new(vec![0u8; n]);
            let len = if self.pad {
                self.kek()?
                    .unwrap_with_padding(input, &mut out)
                    .map(|o| o.len())
            } else {
                self.kek()?.unwrap(input, &mut out).map(|o| o.len())
            }
            .map_err(|_| {
                err(
                    CKR_ENCRYPTED_DATA_INVALID,
                    "key wrap integrity check failed",
                )
            })?;
            Ok(out[..len].to_vec())
        } else {
            if self.pad {
                if n == 0 {
                    return Err(err(CKR_DATA_LEN_RANGE, "nothing to wrap"));
                }
            } else if n < 16 || !n.is_multiple_of(8) {
                return Err(err(
                    CKR_DATA_LEN_RANGE,
                    "RFC 3394 wraps multiples of 8 bytes, at least 16",
                ));
            }
            let mut out = vec![0u8; n.div_ceil(8) * 8 + 8];
            let len = if self.pad {
                self.kek()?
                    .wrap_with_padding(input, &mut out)
                    .map(|o| o.len())
            } else {
                self.kek()?.wrap(input, &mut out).map(|o| o.len())
            }
            .map_err(failed)?;
            out.truncate(len);
            Ok(out)
        }
    }
}

impl ContextLogin for AesKwOp {}

impl CipherOp for AesKwOp {
    fn multipart(&self) -> bool {
        false
    }
    fn output_len(&self, input_len: usize) -> usize {
        let total = self.buf.len().saturating_add(input_len);
        if self.decrypt {
            total.saturating_sub(8)
        } else {
            total.div_ceil(8).saturating_mul(8).saturating_add(8)
        }
    }
    fn final_len(&self) -> usize {
        self.output_len(0)
    }
    fn update(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.buf.extend_from_slice(input);
        Ok(Vec::new())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = std::mem::take(&mut self.buf);
        self.run(&input)
    }
    fn one_shot(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.run(input)
    }
}
