//! HMAC (RFC 2104) with SHA-1/SHA-2 through aws-lc-rs: `CKM_SHA*_HMAC` and
//! `CKM_SHA*_HMAC_GENERAL` (PKCS#11 3.0 mechanisms §2.20), and `CKM_GENERIC_SECRET_KEY_GEN`.

use std::sync::Arc;

use aws_lc_rs::hmac;
use token_api::ck::*;
use token_api::ops::{ContextLogin, SignOp, VerifyOp};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::digest::Hash;
use crate::key::Key;
use crate::registry::MechanismImpl;
use crate::util::{err, key_type_inconsistent, param_invalid, to_usize};

/// Largest generic secret / HMAC key, in bytes.
pub(crate) const MAX_SECRET_BYTES: usize = 4096;

pub(crate) struct HmacMech {
    pub ty: CK_MECHANISM_TYPE,
    pub hash: Hash,
    /// `_GENERAL`: the output length is the parameter.
    pub general: bool,
}

impl HmacMech {
    fn hmac_alg(&self) -> hmac::Algorithm {
        match self.hash {
            Hash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => hmac::HMAC_SHA224,
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha384 => hmac::HMAC_SHA384,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The key type named after this hash (`CKK_SHA256_HMAC`, ...), also accepted.
    fn own_key_type(&self) -> CK_KEY_TYPE {
        match self.hash {
            Hash::Sha1 => CKK_SHA_1_HMAC,
            Hash::Sha224 => CKK_SHA224_HMAC,
            Hash::Sha256 => CKK_SHA256_HMAC,
            Hash::Sha384 => CKK_SHA384_HMAC,
            Hash::Sha512 => CKK_SHA512_HMAC,
        }
    }

    fn init(&self, key: &Key, p: &MechParam) -> Result<HmacOp> {
        let out_len = match (self.general, p) {
            (false, MechParam::None) => self.hash.len(),
            (true, MechParam::Ulong(l)) if (1..=self.hash.len()).contains(&to_usize(*l)) => {
                to_usize(*l)
            }
            (true, _) => {
                return Err(param_invalid(
                    "HMAC_GENERAL needs a length from 1 to the hash length",
                ));
            }
            (false, _) => return Err(param_invalid("HMAC takes no parameter")),
        };
        let kt = key.key_type();
        if kt != CKK_GENERIC_SECRET && kt != self.own_key_type() {
            return Err(key_type_inconsistent(
                "HMAC needs a generic secret or matching HMAC key",
            ));
        }
        let v = key
            .secret()
            .ok_or_else(|| key_type_inconsistent("HMAC needs a secret key"))?;
        if v.len() > MAX_SECRET_BYTES {
            return Err(err(CKR_KEY_SIZE_RANGE, "HMAC key too long"));
        }
        Ok(HmacOp {
            ctx: Some(hmac::Context::with_key(&hmac::Key::new(self.hmac_alg(), v))),
            out_len,
        })
    }
}

impl MechanismImpl for HmacMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(1, MAX_SECRET_BYTES as CK_ULONG, CKF_SIGN | CKF_VERIFY)
    }
    fn sign_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn SignOp>> {
        Ok(Box::new(self.init(&key, p)?))
    }
    fn verify_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        Ok(Box::new(self.init(&key, p)?))
    }
}

struct HmacOp {
    ctx: Option<hmac::Context>,
    out_len: usize,
}

impl HmacOp {
    fn tag(&mut self) -> Result<Zeroizing<Vec<u8>>> {
        let c = self
            .ctx
            .take()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?;
        let t = c.sign();
        Ok(Zeroizing::new(t.as_ref()[..self.out_len].to_vec()))
    }
    fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.ctx
            .as_mut()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?
            .update(data);
        Ok(())
    }
}

impl ContextLogin for HmacOp {}

impl SignOp for HmacOp {
    fn signature_len(&self) -> usize {
        self.out_len
    }
    fn multipart(&self) -> bool {
        true
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(self.tag()?.to_vec())
    }
}

impl VerifyOp for HmacOp {
    fn signature_len(&self) -> usize {
        self.out_len
    }
    fn multipart(&self) -> bool {
        true
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.out_len {
            return Err(err(CKR_SIGNATURE_LEN_RANGE, "wrong MAC length"));
        }
        let t = self.tag()?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&t, signature)
            .map_err(|_| Error::new(CKR_SIGNATURE_INVALID))
    }
}

/// `CKM_GENERIC_SECRET_KEY_GEN`: `CKA_VALUE_LEN` bytes of random (PKCS#11 3.0 mechanisms
/// §2.26.x: the mechanism info gives the key size range in bits).
pub(crate) struct GenericKeyGen;

impl MechanismImpl for GenericKeyGen {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_GENERIC_SECRET_KEY_GEN
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(8, (MAX_SECRET_BYTES * 8) as CK_ULONG, CKF_GENERATE)
    }
    fn generate_key(&self, p: &MechParam, t: &Template) -> Result<Template> {
        if *p != MechParam::None {
            return Err(param_invalid(
                "CKM_GENERIC_SECRET_KEY_GEN takes no parameter",
            ));
        }
        let len = t
            .get_ulong(CKA_VALUE_LEN)?
            .ok_or_else(|| err(CKR_TEMPLATE_INCOMPLETE, "CKA_VALUE_LEN is missing"))?;
        let len = to_usize(len);
        if !(1..=MAX_SECRET_BYTES).contains(&len) {
            return Err(err(
                CKR_KEY_SIZE_RANGE,
                "generic secret length out of range",
            ));
        }
        let kt = t.get_ulong(CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
        secret_template(kt, len)
    }
}

/// A fresh random secret key's attributes.
pub(crate) fn secret_template(kt: CK_KEY_TYPE, len: usize) -> Result<Template> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    crate::random::fill(&mut v)?;
    let mut out = Template::new();
    out.set_ulong(CKA_KEY_TYPE, kt);
    out.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
    out.set(CKA_VALUE, v.to_vec());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &[u8]) -> Arc<Key> {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
        t.set(CKA_VALUE, v.to_vec());
        Arc::new(Key::from_attributes(&t).unwrap())
    }

    /// RFC 4231 test cases 1 and 2 (HMAC-SHA-224/256/384/512) and RFC 2202 case 1 (SHA-1).
    #[test]
    fn rfc4231_vectors() {
        let k1 = key(&[0x0b; 20]);
        let cases = [
            (
                CKM_SHA224_HMAC,
                Hash::Sha224,
                "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
            ),
            (
                CKM_SHA256_HMAC,
                Hash::Sha256,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                CKM_SHA384_HMAC,
                Hash::Sha384,
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
            ),
            (
                CKM_SHA512_HMAC,
                Hash::Sha512,
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ),
            (
                CKM_SHA_1_HMAC,
                Hash::Sha1,
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
        ];
        for (ty, hash, want) in cases {
            let m = HmacMech {
                ty,
                hash,
                general: false,
            };
            let mut op = m.sign_init(k1.clone(), &MechParam::None).unwrap();
            op.update(b"Hi ").unwrap();
            op.update(b"There").unwrap();
            assert_eq!(hex::encode(op.finish().unwrap()), want);
            let mut v = m.verify_init(k1.clone(), &MechParam::None).unwrap();
            v.verify(b"Hi There", &hex::decode(want).unwrap()).unwrap();
            let mut v = m.verify_init(k1.clone(), &MechParam::None).unwrap();
            let mut bad = hex::decode(want).unwrap();
            bad[0] ^= 1;
            assert_eq!(
                v.verify(b"Hi There", &bad).unwrap_err().rv(),
                CKR_SIGNATURE_INVALID
            );
            let mut v = m.verify_init(k1.clone(), &MechParam::None).unwrap();
            assert_eq!(
                v.verify(b"Hi There", &bad[1..]).unwrap_err().rv(),
                CKR_SIGNATURE_LEN_RANGE
            );
        }
        // RFC 4231 case 2: key "Jefe"
        let m = HmacMech {
            ty: CKM_SHA256_HMAC_GENERAL,
            hash: Hash::Sha256,
            general: true,
        };
        let mut op = m.sign_init(key(b"Jefe"), &MechParam::Ulong(16)).unwrap();
        assert_eq!(op.signature_len(), 16);
        assert_eq!(
            hex::encode(op.sign(b"what do ya want for nothing?").unwrap()),
            "5bdcc146bf60754e6a042426089575c7"
        );
        for bad in [MechParam::Ulong(0), MechParam::Ulong(33), MechParam::None] {
            assert_eq!(
                m.sign_init(key(b"Jefe"), &bad).err().unwrap().rv(),
                CKR_MECHANISM_PARAM_INVALID
            );
        }
    }

    #[test]
    fn wrong_key_type() {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_SECRET_KEY);
        t.set_ulong(CKA_KEY_TYPE, CKK_AES);
        t.set(CKA_VALUE, vec![1u8; 16]);
        let aes = Arc::new(Key::from_attributes(&t).unwrap());
        let m = HmacMech {
            ty: CKM_SHA256_HMAC,
            hash: Hash::Sha256,
            general: false,
        };
        assert_eq!(
            m.sign_init(aes, &MechParam::None).err().unwrap().rv(),
            CKR_KEY_TYPE_INCONSISTENT
        );
    }
}
