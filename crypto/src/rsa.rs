//! RSA (RFC 8017): key generation, PKCS#1 v1.5 / PSS signatures, PKCS#1 v1.5 / OAEP / raw
//! encryption, key wrapping. The raw RSA operation is aws-lc's (`ffi.rs`), the encodings are
//! [`crate::padding`], the hashes aws-lc-rs.
//!
//! aws-lc-rs' own RSA API is not used for private keys: it rejects keys under 2048 bits, fixes
//! the PSS salt length and MGF1 hash to the message hash, and takes no caller-supplied DigestInfo,
//! while PKCS#11 needs all three.

use std::sync::Arc;

use aws_lc_rs::digest;
use subtle::ConstantTimeEq;
use token_api::ck::*;
use token_api::ops::{CipherOp, ContextLogin, SignOp, VerifyOp};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::digest::Hash;
use crate::ffi;
use crate::key::Key;
use crate::padding;
use crate::registry::MechanismImpl;
use crate::util::{err, key_type_inconsistent, param_invalid, to_usize, value_invalid};

/// Modulus sizes Klyuch supports, in bits (`C_GetMechanismInfo`).
pub(crate) const MIN_BITS: usize = 1024;
pub(crate) const MAX_BITS: usize = 4096;

/// The default public exponent F4 = 65537 (RFC 8017 recommends a small odd e; 65537 is the
/// universal choice).
const F4: [u8; 3] = [0x01, 0x00, 0x01];

/// Which RSA scheme a mechanism uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Scheme {
    /// `CKM_RSA_PKCS` and `CKM_SHA*_RSA_PKCS`.
    Pkcs1,
    /// `CKM_RSA_X_509`.
    Raw,
    /// `CKM_RSA_PKCS_PSS` and `CKM_SHA*_RSA_PKCS_PSS`.
    Pss,
    /// `CKM_RSA_PKCS_OAEP`.
    Oaep,
}

pub(crate) struct RsaMech {
    pub ty: CK_MECHANISM_TYPE,
    pub scheme: Scheme,
    /// The message hash of hash-and-sign mechanisms.
    pub hash: Option<Hash>,
}

fn rsa_key(key: &Key, private: bool) -> Result<&ffi::Rsa> {
    let r = key
        .rsa()
        .ok_or_else(|| key_type_inconsistent("an RSA key is needed"))?;
    if private && !r.is_private() {
        return Err(key_type_inconsistent("an RSA private key is needed"));
    }
    if !(MIN_BITS..=MAX_BITS).contains(&r.bits()) {
        return Err(err(CKR_KEY_SIZE_RANGE, "RSA key size out of range"));
    }
    Ok(r)
}

/// PSS parameters, checked against the mechanism and the key.
#[derive(Clone, Copy)]
struct Pss {
    hash: Hash,
    mgf: Hash,
    salt: usize,
}

fn pss_params(p: &MechParam, mech_hash: Option<Hash>, bits: usize) -> Result<Pss> {
    let MechParam::RsaPss {
        hash,
        mgf,
        salt_len,
    } = p
    else {
        return Err(param_invalid("PSS needs CK_RSA_PKCS_PSS_PARAMS"));
    };
    let hash = Hash::from_mech(*hash).ok_or_else(|| param_invalid("unsupported PSS hash"))?;
    if mech_hash.is_some_and(|h| h != hash) {
        return Err(param_invalid("the PSS hash differs from the mechanism's"));
    }
    let mgf = Hash::from_mgf(*mgf).ok_or_else(|| param_invalid("unsupported MGF"))?;
    let salt = to_usize(*salt_len);
    let em_len = (bits - 1).div_ceil(8);
    if em_len < hash.len().saturating_add(salt).saturating_add(2) {
        return Err(param_invalid("PSS salt too long for the key"));
    }
    Ok(Pss { hash, mgf, salt })
}

/// OAEP parameters.
struct Oaep {
    hash: CK_MECHANISM_TYPE,
    mgf: CK_RSA_PKCS_MGF_TYPE,
    label: Vec<u8>,
}

fn oaep_params(p: &MechParam) -> Result<Oaep> {
    let MechParam::RsaOaep { hash, mgf, source } = p else {
        return Err(param_invalid("OAEP needs CK_RSA_PKCS_OAEP_PARAMS"));
    };
    if Hash::from_mech(*hash).is_none() || Hash::from_mgf(*mgf).is_none() {
        return Err(param_invalid("unsupported OAEP hash or MGF"));
    }
    Ok(Oaep {
        hash: *hash,
        mgf: *mgf,
        label: source.clone(),
    })
}

impl RsaMech {
    fn sign_op(&self, key: Arc<Key>, p: &MechParam, private: bool) -> Result<RsaSig> {
        let r = rsa_key(&key, private)?;
        let (k, bits) = (r.size(), r.bits());
        let pss = match self.scheme {
            Scheme::Pss => Some(pss_params(p, self.hash, bits)?),
            Scheme::Pkcs1 | Scheme::Raw if *p == MechParam::None => None,
            Scheme::Pkcs1 | Scheme::Raw => return Err(param_invalid("takes no parameter")),
            Scheme::Oaep => return Err(Error::mechanism_invalid()),
        };
        Ok(RsaSig {
            key,
            k,
            bits,
            scheme: self.scheme,
            hash: self.hash,
            pss,
            ctx: self.hash.map(Hash::context),
            buf: Zeroizing::new(Vec::new()),
        })
    }

    fn cipher_op(&self, key: Arc<Key>, p: &MechParam, decrypt: bool) -> Result<RsaCipher> {
        if self.hash.is_some() || self.scheme == Scheme::Pss {
            return Err(Error::mechanism_invalid());
        }
        let r = rsa_key(&key, decrypt)?;
        let oaep = match self.scheme {
            Scheme::Oaep => Some(oaep_params(p)?),
            _ if *p == MechParam::None => None,
            _ => return Err(param_invalid("takes no parameter")),
        };
        Ok(RsaCipher {
            k: r.size(),
            key,
            scheme: self.scheme,
            oaep,
            decrypt,
            buf: Zeroizing::new(Vec::new()),
        })
    }
}

impl MechanismImpl for RsaMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        let flags = match (self.scheme, self.hash) {
            (Scheme::Pkcs1, None) => {
                CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP
            }
            (Scheme::Raw, _) => CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT,
            (Scheme::Oaep, _) => CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP,
            _ => CKF_SIGN | CKF_VERIFY,
        };
        MechInfo::new(MIN_BITS as CK_ULONG, MAX_BITS as CK_ULONG, flags)
    }
    fn sign_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn SignOp>> {
        if self.scheme == Scheme::Oaep {
            return Err(Error::mechanism_invalid());
        }
        Ok(Box::new(self.sign_op(key, p, true)?))
    }
    fn verify_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        if self.scheme == Scheme::Oaep {
            return Err(Error::mechanism_invalid());
        }
        Ok(Box::new(self.sign_op(key, p, false)?))
    }
    fn encrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.cipher_op(key, p, false)?))
    }
    fn decrypt_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn CipherOp>> {
        Ok(Box::new(self.cipher_op(key, p, true)?))
    }
    fn wrap(&self, wrapping: Arc<Key>, p: &MechParam, key_data: &[u8]) -> Result<Vec<u8>> {
        if !matches!(self.scheme, Scheme::Pkcs1 | Scheme::Oaep) || self.hash.is_some() {
            return Err(Error::mechanism_invalid());
        }
        let mut op = self.cipher_op(wrapping, p, false)?;
        op.one_shot(key_data).map_err(|e| {
            if e.rv() == CKR_DATA_LEN_RANGE {
                Error::with(
                    CKR_KEY_SIZE_RANGE,
                    "the key is too long to wrap with this RSA key",
                )
            } else {
                e
            }
        })
    }
    fn unwrap(
        &self,
        unwrapping: Arc<Key>,
        p: &MechParam,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        if !matches!(self.scheme, Scheme::Pkcs1 | Scheme::Oaep) || self.hash.is_some() {
            return Err(Error::mechanism_invalid());
        }
        let mut op = self.cipher_op(unwrapping, p, true)?;
        op.one_shot(wrapped)
            .map(Zeroizing::new)
            .map_err(|e| match e.rv() {
                CKR_ENCRYPTED_DATA_LEN_RANGE => Error::new(CKR_WRAPPED_KEY_LEN_RANGE),
                CKR_ENCRYPTED_DATA_INVALID => Error::new(CKR_WRAPPED_KEY_INVALID),
                _ => e,
            })
    }
}

/// A signature or verification with an RSA key.
struct RsaSig {
    key: Arc<Key>,
    k: usize,
    bits: usize,
    scheme: Scheme,
    hash: Option<Hash>,
    pss: Option<Pss>,
    /// The running message hash (hash-and-sign mechanisms).
    ctx: Option<digest::Context>,
    /// The input of single-part mechanisms.
    buf: Zeroizing<Vec<u8>>,
}

impl RsaSig {
    fn rsa(&self) -> Result<&ffi::Rsa> {
        self.key
            .rsa()
            .ok_or_else(|| key_type_inconsistent("an RSA key is needed"))
    }

    /// The input of the encoding: the message hash (hash-and-sign) or the caller's data.
    fn take_input(&mut self) -> Zeroizing<Vec<u8>> {
        match self.ctx.take() {
            Some(c) => Zeroizing::new(c.finish().as_ref().to_vec()),
            None => std::mem::take(&mut self.buf),
        }
    }

    /// The `k`-byte block for the private operation.
    fn encode(&self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(match (self.scheme, self.hash, self.pss) {
            (Scheme::Pkcs1, Some(h), _) => {
                padding::pkcs1_v15_sign_pad(&padding::digest_info(h.mech(), input)?, self.k)?
            }
            (Scheme::Pkcs1, None, _) => padding::pkcs1_v15_sign_pad(input, self.k)?,
            (Scheme::Raw, _, _) => {
                if input.len() > self.k {
                    return Err(err(CKR_DATA_LEN_RANGE, "input longer than the modulus"));
                }
                let mut b = vec![0u8; self.k - input.len()];
                b.extend_from_slice(input);
                b
            }
            (Scheme::Pss, _, Some(p)) => {
                if input.len() != p.hash.len() {
                    return Err(err(CKR_DATA_LEN_RANGE, "PSS input must be one hash long"));
                }
                let mut salt = Zeroizing::new(vec![0u8; p.salt]);
                crate::random::fill(&mut salt)?;
                padding::pss_encode_with_salt(p.hash, p.mgf, &salt, input, self.bits)?
            }
            _ => return Err(Error::mechanism_invalid()),
        }))
    }
}

impl ContextLogin for RsaSig {}

impl SignOp for RsaSig {
    fn signature_len(&self) -> usize {
        self.k
    }
    fn multipart(&self) -> bool {
        self.hash.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.ctx {
            Some(c) => c.update(data),
            None => self.buf.extend_from_slice(data),
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let input = self.take_input();
        let block = self.encode(&input)?;
        self.rsa()?
            .private_raw(&block)
            .map(|s| s.to_vec())
            .map_err(|_| {
                if self.scheme == Scheme::Raw {
                    err(CKR_DATA_INVALID, "input not below the modulus")
                } else {
                    Error::general("RSA private operation failed")
                }
            })
    }
}

impl VerifyOp for RsaSig {
    fn signature_len(&self) -> usize {
        self.k
    }
    fn multipart(&self) -> bool {
        self.hash.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        SignOp::update(self, data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.k {
            return Err(err(CKR_SIGNATURE_LEN_RANGE, "wrong RSA signature length"));
        }
        let input = self.take_input();
        let Ok(block) = self.rsa()?.public_raw(signature) else {
            return Err(Error::new(CKR_SIGNATURE_INVALID));
        };
        let ok = match (self.scheme, self.pss) {
            (Scheme::Pss, Some(p)) => {
                if input.len() != p.hash.len() {
                    return Err(err(CKR_DATA_LEN_RANGE, "PSS input must be one hash long"));
                }
                padding::pss_verify_inner(p.hash, p.mgf, p.salt, &input, &block, self.bits)
            }
            _ => {
                let expected = self.encode(&input)?;
                bool::from(expected.ct_eq(&block[..]))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::new(CKR_SIGNATURE_INVALID))
        }
    }
}

/// Encryption or decryption with an RSA key (single-part).
struct RsaCipher {
    key: Arc<Key>,
    k: usize,
    scheme: Scheme,
    oaep: Option<Oaep>,
    decrypt: bool,
    buf: Zeroizing<Vec<u8>>,
}

impl RsaCipher {
    fn run(&self, input: &[u8]) -> Result<Vec<u8>> {
        let rsa = self
            .key
            .rsa()
            .ok_or_else(|| key_type_inconsistent("an RSA key is needed"))?;
        if self.decrypt {
            if input.len() != self.k {
                return Err(err(
                    CKR_ENCRYPTED_DATA_LEN_RANGE,
                    "the ciphertext must be as long as the modulus",
                ));
            }
            let block = rsa.private_raw(input).map_err(|_| {
                err(
                    CKR_ENCRYPTED_DATA_INVALID,
                    "ciphertext not below the modulus",
                )
            })?;
            let out = match (&self.scheme, &self.oaep) {
                (Scheme::Oaep, Some(o)) => padding::oaep_decode(o.hash, o.mgf, &o.label, &block)?,
                (Scheme::Pkcs1, _) => padding::pkcs1_v15_decrypt_unpad(&block)?,
                _ => block,
            };
            Ok(out.to_vec())
        } else {
            let block = match (&self.scheme, &self.oaep) {
                (Scheme::Oaep, Some(o)) => {
                    padding::oaep_encode(o.hash, o.mgf, &o.label, input, self.k)?
                }
                (Scheme::Pkcs1, _) => padding::pkcs1_v15_encrypt_pad(input, self.k)?,
                _ => {
                    if input.len() > self.k {
                        return Err(err(CKR_DATA_LEN_RANGE, "input longer than the modulus"));
                    }
                    let mut b = Zeroizing::new(vec![0u8; self.k - input.len()]);
                    b.extend_from_slice(input);
                    b
                }
            };
            rsa.public_raw(&block)
                .map_err(|_| err(CKR_DATA_INVALID, "input not below the modulus"))
        }
    }
}

impl ContextLogin for RsaCipher {}

impl CipherOp for RsaCipher {
    fn multipart(&self) -> bool {
        false
    }
    fn output_len(&self, _input_len: usize) -> usize {
        self.k
    }
    fn final_len(&self) -> usize {
        self.k
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

/// `CKM_RSA_PKCS_KEY_PAIR_GEN`.
pub(crate) struct RsaKeyGen;

impl MechanismImpl for RsaKeyGen {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_RSA_PKCS_KEY_PAIR_GEN
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(
            MIN_BITS as CK_ULONG,
            MAX_BITS as CK_ULONG,
            CKF_GENERATE_KEY_PAIR,
        )
    }
    fn generate_key_pair(
        &self,
        p: &MechParam,
        public: &Template,
        _private: &Template,
    ) -> Result<(Template, Template)> {
        if *p != MechParam::None {
            return Err(param_invalid(
                "CKM_RSA_PKCS_KEY_PAIR_GEN takes no parameter",
            ));
        }
        let bits = public
            .get_ulong(CKA_MODULUS_BITS)?
            .ok_or_else(|| err(CKR_TEMPLATE_INCOMPLETE, "CKA_MODULUS_BITS is missing"))?;
        let bits = to_usize(bits);
        // aws-lc generates moduli of a multiple of 128 bits only (rsa.h, RSA_generate_key_ex).
        if !(MIN_BITS..=MAX_BITS).contains(&bits) || !bits.is_multiple_of(128) {
            return Err(err(
                CKR_KEY_SIZE_RANGE,
                "RSA modulus must be 1024..4096 bits, a multiple of 128",
            ));
        }
        let e_attr = public.get(CKA_PUBLIC_EXPONENT);
        let e = e_attr.unwrap_or(&F4);
        let e_min = crate::util::strip_zeros(e);
        if crate::util::bit_len(e_min) < 2
            || crate::util::bit_len(e_min) > 32
            || e_min.last().is_none_or(|b| b & 1 == 0)
        {
            return Err(value_invalid(
                "CKA_PUBLIC_EXPONENT must be odd, at least 3 and at most 32 bits",
            ));
        }
        let rsa = ffi::Rsa::generate(bits, e_min)
            .map_err(|_| Error::general("RSA key generation failed"))?;
        if rsa.bits() != bits {
            return Err(Error::general("RSA key generation gave a wrong size"));
        }
        let parts = rsa.parts();
        let mut pubt = Template::new();
        pubt.set_ulong(CKA_KEY_TYPE, CKK_RSA);
        pubt.set(CKA_MODULUS, parts.n.clone());
        pubt.set(CKA_PUBLIC_EXPONENT, e.to_vec());
        let mut privt = Template::new();
        privt.set_ulong(CKA_KEY_TYPE, CKK_RSA);
        privt.set(CKA_MODULUS, parts.n.clone());
        privt.set(CKA_PUBLIC_EXPONENT, e.to_vec());
        privt.set(CKA_PRIVATE_EXPONENT, parts.d.to_vec());
        privt.set(CKA_PRIME_1, parts.p.to_vec());
        privt.set(CKA_PRIME_2, parts.q.to_vec());
        privt.set(CKA_EXPONENT_1, parts.dp.to_vec());
        privt.set(CKA_EXPONENT_2, parts.dq.to_vec());
        privt.set(CKA_COEFFICIENT, parts.qinv.to_vec());
        Ok((pubt, privt))
    }
}
