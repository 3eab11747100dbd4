//! Ed25519 (RFC 8032) through aws-lc-rs: `CKM_EC_EDWARDS_KEY_PAIR_GEN` and `CKM_EDDSA`.
//!
//! PKCS#11 3.0 mechanisms §2.3.14: without a parameter, or with `CK_EDDSA_PARAMS` with
//! `phFlag = false` and no context, `CKM_EDDSA` is pure Ed25519. Ed25519ph and Ed25519ctx are
//! not implemented (`CKR_MECHANISM_PARAM_INVALID`). Single-part only: pure EdDSA hashes the
//! message twice, so it cannot stream.

use std::sync::Arc;

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use token_api::ck::*;
use token_api::ops::{ContextLogin, SignOp, VerifyOp};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::ec::{Curve, curve_from_params};
use crate::key::{Key, KeyKind};
use crate::registry::MechanismImpl;
use crate::util::{err, key_type_inconsistent, octet_string, param_invalid, required};

/// Flags shared by the Edwards mechanisms: the curve by OID or by name.
const ED_FLAGS: CK_FLAGS = CKF_EC_NAMEDCURVE | CKF_EC_CURVENAME;

pub(crate) struct EdKeyGen;

impl MechanismImpl for EdKeyGen {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_EC_EDWARDS_KEY_PAIR_GEN
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(255, 255, CKF_GENERATE_KEY_PAIR | ED_FLAGS)
    }
    fn generate_key_pair(
        &self,
        p: &MechParam,
        public: &Template,
        _private: &Template,
    ) -> Result<(Template, Template)> {
        if *p != MechParam::None {
            return Err(param_invalid(
                "CKM_EC_EDWARDS_KEY_PAIR_GEN takes no parameter",
            ));
        }
        let params = required(public, CKA_EC_PARAMS)?;
        if curve_from_params(params)? != Curve::Ed25519 {
            return Err(err(
                CKR_CURVE_NOT_SUPPORTED,
                "only edwards25519 is supported",
            ));
        }
        let kp = Ed25519KeyPair::generate().map_err(|_| Error::general("Ed25519 keygen failed"))?;
        let seed = kp
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map_err(|_| Error::general("Ed25519 keygen failed"))?;
        let mut pubt = Template::new();
        pubt.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
        pubt.set(CKA_EC_PARAMS, params.to_vec());
        pubt.set(CKA_EC_POINT, octet_string(kp.public_key().as_ref())?);
        let mut privt = Template::new();
        privt.set_ulong(CKA_KEY_TYPE, CKK_EC_EDWARDS);
        privt.set(CKA_EC_PARAMS, params.to_vec());
        privt.set(CKA_VALUE, seed.as_ref().to_vec());
        Ok((pubt, privt))
    }
}

pub(crate) struct Eddsa;

fn check_params(p: &MechParam) -> Result<()> {
    match p {
        MechParam::None => Ok(()),
        MechParam::Eddsa {
            prehash: false,
            context,
        } if context.is_empty() => Ok(()),
        _ => Err(param_invalid(
            "only pure Ed25519 (no prehash, no context) is supported",
        )),
    }
}

impl MechanismImpl for Eddsa {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_EDDSA
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(255, 255, CKF_SIGN | CKF_VERIFY | ED_FLAGS)
    }
    fn sign_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn SignOp>> {
        check_params(p)?;
        if !matches!(key.kind, KeyKind::Ed25519Private(_)) {
            return Err(key_type_inconsistent("an Ed25519 private key is needed"));
        }
        Ok(Box::new(EddsaOp {
            key,
            msg: Zeroizing::new(Vec::new()),
        }))
    }
    fn verify_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        check_params(p)?;
        if !matches!(
            key.kind,
            KeyKind::Ed25519Private(_) | KeyKind::Ed25519Public { .. }
        ) {
            return Err(key_type_inconsistent("an Ed25519 key is needed"));
        }
        Ok(Box::new(EddsaOp {
            key,
            msg: Zeroizing::new(Vec::new()),
        }))
    }
}

struct EddsaOp {
    key: Arc<Key>,
    msg: Zeroizing<Vec<u8>>,
}

impl EddsaOp {
    fn sign_now(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match &self.key.kind {
            KeyKind::Ed25519Private(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
            _ => Err(key_type_inconsistent("an Ed25519 private key is needed")),
        }
    }
    fn verify_now(&self, msg: &[u8], sig: &[u8]) -> Result<()> {
        if sig.len() != 64 {
            return Err(err(
                CKR_SIGNATURE_LEN_RANGE,
                "an Ed25519 signature is 64 bytes",
            ));
        }
        let ok = match &self.key.kind {
            KeyKind::Ed25519Public { key, .. } => key.verify_sig(msg, sig).is_ok(),
            KeyKind::Ed25519Private(kp) => aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::ED25519,
                kp.public_key().as_ref(),
            )
            .verify(msg, sig)
            .is_ok(),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::new(CKR_SIGNATURE_INVALID))
        }
    }
}

impl ContextLogin for EddsaOp {}

impl SignOp for EddsaOp {
    fn signature_len(&self) -> usize {
        64
    }
    fn multipart(&self) -> bool {
        false
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.msg.extend_from_slice(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let msg = std::mem::take(&mut self.msg);
        self.sign_now(&msg)
    }
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.sign_now(data)
    }
}

impl VerifyOp for EddsaOp {
    fn signature_len(&self) -> usize {
        64
    }
    fn multipart(&self) -> bool {
        false
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.msg.extend_from_slice(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let msg = std::mem::take(&mut self.msg);
        self.verify_now(&msg, signature)
    }
    fn verify(&mut self, data: &[u8], signature: &[u8]) -> Result<()> {
        self.verify_now(data, signature)
    }
}
