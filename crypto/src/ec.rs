//! Elliptic curves: `CKA_EC_PARAMS` / `CKA_EC_POINT` handling, `CKM_EC_KEY_PAIR_GEN`,
//! `CKM_ECDSA` and `CKM_ECDSA_SHA*` (raw ECDSA through `ffi.rs`, hashing through aws-lc-rs), and
//! `CKM_ECDH1_DERIVE` (aws-lc-rs `agreement`).

use std::sync::Arc;

use aws_lc_rs::agreement;
use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};
use token_api::ck::*;
use token_api::ops::{ContextLogin, SignOp, VerifyOp};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::digest::Hash;
use crate::ffi::{self, Nid};
use crate::key::{Key, KeyKind};
use crate::registry::MechanismImpl;
use crate::util::{
    err, key_type_inconsistent, octet_string, octet_string_content, param_invalid, required,
    to_usize, value_invalid,
};

/// The curves Klyuch supports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Curve {
    P256,
    P384,
    P521,
    Ed25519,
}

/// `CKF_*` flags of the ECDSA / ECDH / EC key generation mechanisms: prime-field curves, given by
/// OID or by name, points uncompressed.
pub(crate) const EC_FLAGS: CK_FLAGS =
    CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_CURVENAME | CKF_EC_UNCOMPRESS;

/// (DER of the OID, names accepted as a PrintableString, curve). OIDs: RFC 5480 §2.1.1.1
/// (secp256r1 1.2.840.10045.3.1.7, secp384r1 1.3.132.0.34, secp521r1 1.3.132.0.35) and RFC 8410
/// §3 (id-Ed25519 1.3.101.112). Names: PKCS#11 3.0 mechanisms §2.3.10 ("edwards25519") and the
/// SEC 2 / X9.62 / NIST names.
const CURVES: &[(&[u8], &[&str], Curve)] = &[
    (
        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        &["prime256v1", "secp256r1", "P-256"],
        Curve::P256,
    ),
    (
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
        &["secp384r1", "P-384"],
        Curve::P384,
    ),
    (
        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
        &["secp521r1", "P-521"],
        Curve::P521,
    ),
    (
        &[0x06, 0x03, 0x2b, 0x65, 0x70],
        &["edwards25519", "Ed25519"],
        Curve::Ed25519,
    ),
];

impl Curve {
    /// `CKA_EC_PARAMS` as Klyuch writes it: the DER OID.
    pub fn oid_der(self) -> &'static [u8] {
        CURVES
            .iter()
            .find(|c| c.2 == self)
            .map(|c| c.0)
            .unwrap_or_default()
    }

    /// The key size in bits, as `C_GetMechanismInfo` counts it.
    pub fn bits(self) -> usize {
        match self {
            Curve::P256 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
            Curve::Ed25519 => 255,
        }
    }

    pub(crate) fn nid(self) -> Option<Nid> {
        match self {
            Curve::P256 => Some(Nid::P256),
            Curve::P384 => Some(Nid::P384),
            Curve::P521 => Some(Nid::P521),
            Curve::Ed25519 => None,
        }
    }

    /// Bytes of a coordinate / scalar.
    fn width(self) -> usize {
        self.bits().div_ceil(8)
    }

    fn ecdh_alg(self) -> Option<&'static agreement::Algorithm> {
        match self {
            Curve::P256 => Some(&agreement::ECDH_P256),
            Curve::P384 => Some(&agreement::ECDH_P384),
            Curve::P521 => Some(&agreement::ECDH_P521),
            Curve::Ed25519 => None,
        }
    }
}

/// The curve of a `CKA_EC_PARAMS` value: a DER OID or a DER PrintableString curve name.
/// Malformed DER or explicit parameters: `CKR_DOMAIN_PARAMS_INVALID`; a well-formed curve
/// Klyuch does not implement: `CKR_CURVE_NOT_SUPPORTED`.
pub fn curve_from_params(params: &[u8]) -> Result<Curve> {
    let Ok(any) = <der::AnyRef<'_> as der::Decode>::from_der(params) else {
        return Err(err(CKR_DOMAIN_PARAMS_INVALID, "CKA_EC_PARAMS is not DER"));
    };
    let content = any.value();
    match der::Tagged::tag(&any) {
        der::Tag::ObjectIdentifier => CURVES
            .iter()
            .find(|c| c.0 == params)
            .map(|c| c.2)
            .ok_or_else(|| err(CKR_CURVE_NOT_SUPPORTED, "unsupported curve")),
        der::Tag::PrintableString => CURVES
            .iter()
            .find(|c| c.1.iter().any(|n| n.as_bytes() == content))
            .map(|c| c.2)
            .ok_or_else(|| err(CKR_CURVE_NOT_SUPPORTED, "unsupported curve name")),
        _ => Err(err(
            CKR_DOMAIN_PARAMS_INVALID,
            "explicit or unknown EC parameters (use a named curve)",
        )),
    }
}

/// The encoded point inside a `CKA_EC_POINT` (or ECDH public data): the DER OCTET STRING the
/// spec asks for, or the raw point some applications pass. NIST curves: uncompressed
/// (`04||X||Y`) or compressed (`02/03||X`); Ed25519: 32 bytes.
pub(crate) fn point_from_attr(curve: Curve, v: &[u8]) -> Result<&[u8]> {
    let w = curve.width();
    let is_raw = |p: &[u8]| match curve {
        Curve::Ed25519 => p.len() == 32,
        _ => (p.len() == 1 + 2 * w && p[0] == 4) || (p.len() == 1 + w && matches!(p[0], 2 | 3)),
    };
    if is_raw(v) {
        return Ok(v);
    }
    match octet_string_content(v) {
        Some(p) if is_raw(p) => Ok(p),
        _ => Err(value_invalid(
            "CKA_EC_POINT is not a point of the key's curve",
        )),
    }
}

fn ec_key(key: &Key) -> Result<&ffi::EcKey> {
    match &key.kind {
        KeyKind::Ec { key, .. } => Ok(key),
        _ => Err(key_type_inconsistent("an EC (CKK_EC) key is needed")),
    }
}

fn check_size(key: &Key, info: MechInfo) -> Result<()> {
    let s = key.size() as CK_ULONG;
    if s < info.min_key_size || s > info.max_key_size {
        return Err(err(
            CKR_KEY_SIZE_RANGE,
            "key size out of the mechanism's range",
        ));
    }
    Ok(())
}

/// `CKM_ECDSA` (raw hash in, single-part) and `CKM_ECDSA_SHA*` (message in, multi-part).
pub(crate) struct Ecdsa {
    pub ty: CK_MECHANISM_TYPE,
    pub hash: Option<Hash>,
}

impl Ecdsa {
    fn init(&self, key: &Arc<Key>, p: &MechParam, private: bool) -> Result<EcdsaOp> {
        if *p != MechParam::None {
            return Err(param_invalid("ECDSA takes no parameter"));
        }
        let k = ec_key(key)?;
        if private && !k.is_private() {
            return Err(key_type_inconsistent("signing needs an EC private key"));
        }
        check_size(key, self.info())?;
        Ok(EcdsaOp {
            key: key.clone(),
            width: k.width(),
            ctx: self.hash.map(Hash::context),
            raw: Zeroizing::new(Vec::new()),
        })
    }
}

impl MechanismImpl for Ecdsa {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(256, 521, CKF_SIGN | CKF_VERIFY | EC_FLAGS)
    }
    fn sign_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn SignOp>> {
        Ok(Box::new(self.init(&key, p, true)?))
    }
    fn verify_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        Ok(Box::new(self.init(&key, p, false)?))
    }
}

struct EcdsaOp {
    key: Arc<Key>,
    width: usize,
    /// The running hash (`CKM_ECDSA_SHA*`), `None` for raw `CKM_ECDSA`.
    ctx: Option<digest::Context>,
    /// Raw `CKM_ECDSA` input collected by `update` (single-part use only).
    raw: Zeroizing<Vec<u8>>,
}

impl EcdsaOp {
    fn update_inner(&mut self, data: &[u8]) {
        match &mut self.ctx {
            Some(c) => c.update(data),
            None => self.raw.extend_from_slice(data),
        }
    }
    /// The hash to sign: the finished running hash, or the raw input (any non-empty length).
    fn prehash(&mut self) -> Result<Zeroizing<Vec<u8>>> {
        match self.ctx.take() {
            Some(c) => Ok(Zeroizing::new(c.finish().as_ref().to_vec())),
            None => {
                let h = std::mem::take(&mut self.raw);
                if h.is_empty() {
                    return Err(err(CKR_DATA_LEN_RANGE, "ECDSA input is empty"));
                }
                Ok(h)
            }
        }
    }
    fn ec(&self) -> Result<&ffi::EcKey> {
        ec_key(&self.key)
    }
}

impl ContextLogin for EcdsaOp {}

impl SignOp for EcdsaOp {
    fn signature_len(&self) -> usize {
        2 * self.width
    }
    fn multipart(&self) -> bool {
        self.ctx.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.update_inner(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let h = self.prehash()?;
        self.ec()?
            .sign_prehash(&h)
            .map_err(|_| Error::general("ECDSA signing failed"))
    }
}

impl VerifyOp for EcdsaOp {
    fn signature_len(&self) -> usize {
        2 * self.width
    }
    fn multipart(&self) -> bool {
        self.ctx.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.update_inner(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != 2 * self.width {
            return Err(err(CKR_SIGNATURE_LEN_RANGE, "wrong ECDSA signature length"));
        }
        let h = self.prehash()?;
        if self.ec()?.verify_prehash(&h, signature) {
            Ok(())
        } else {
            Err(Error::new(CKR_SIGNATURE_INVALID))
        }
    }
}

/// `CKM_EC_KEY_PAIR_GEN` (key generation by aws-lc-rs).
pub(crate) struct EcKeyGen;

impl MechanismImpl for EcKeyGen {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_EC_KEY_PAIR_GEN
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(256, 521, CKF_GENERATE_KEY_PAIR | EC_FLAGS)
    }
    fn generate_key_pair(
        &self,
        p: &MechParam,
        public: &Template,
        _private: &Template,
    ) -> Result<(Template, Template)> {
        if *p != MechParam::None {
            return Err(param_invalid("CKM_EC_KEY_PAIR_GEN takes no parameter"));
        }
        let params = required(public, CKA_EC_PARAMS)?;
        let curve = curve_from_params(params)?;
        let alg = match curve {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            Curve::Ed25519 => {
                return Err(err(
                    CKR_CURVE_NOT_SUPPORTED,
                    "use CKM_EC_EDWARDS_KEY_PAIR_GEN for edwards25519",
                ));
            }
        };
        let kp = EcdsaKeyPair::generate(alg).map_err(|_| Error::general("EC keygen failed"))?;
        let d = kp
            .private_key()
            .as_be_bytes()
            .map_err(|_| Error::general("EC keygen failed"))?;
        let mut pubt = Template::new();
        pubt.set_ulong(CKA_KEY_TYPE, CKK_EC);
        pubt.set(CKA_EC_PARAMS, params.to_vec());
        pubt.set(CKA_EC_POINT, octet_string(kp.public_key().as_ref())?);
        let mut privt = Template::new();
        privt.set_ulong(CKA_KEY_TYPE, CKK_EC);
        privt.set(CKA_EC_PARAMS, params.to_vec());
        privt.set(CKA_VALUE, d.as_ref().to_vec());
        Ok((pubt, privt))
    }
}

/// `CKM_ECDH1_DERIVE` (PKCS#11 3.0 mechanisms §2.3.15): `CKD_NULL`, or the ANSI X9.63 KDF with
/// SHA-1/SHA-2 (`CKD_SHA*_KDF`, SEC 1 §3.6.1).
pub(crate) struct Ecdh1Derive;

/// The X9.63 KDF hash of a `CKD_*` value, `None` for `CKD_NULL`.
fn kdf_hash(kdf: CK_EC_KDF_TYPE) -> Result<Option<Hash>> {
    Ok(match kdf {
        CKD_NULL => None,
        CKD_SHA1_KDF => Some(Hash::Sha1),
        CKD_SHA224_KDF => Some(Hash::Sha224),
        CKD_SHA256_KDF => Some(Hash::Sha256),
        CKD_SHA384_KDF => Some(Hash::Sha384),
        CKD_SHA512_KDF => Some(Hash::Sha512),
        _ => return Err(param_invalid("unsupported ECDH KDF")),
    })
}

/// ANSI X9.63 KDF (SEC 1 §3.6.1): `Hash(Z || counter32 || SharedInfo)` for counter = 1, 2, ...
fn x963_kdf(h: Hash, z: &[u8], shared: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + h.len()));
    let mut counter = 1u32;
    while out.len() < len {
        let mut c = h.context();
        c.update(z);
        c.update(&counter.to_be_bytes());
        c.update(shared);
        out.extend_from_slice(c.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

impl MechanismImpl for Ecdh1Derive {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_ECDH1_DERIVE
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(256, 521, CKF_DERIVE | EC_FLAGS)
    }
    fn derive(&self, base: Arc<Key>, p: &MechParam, t: &Template) -> Result<Template> {
        let MechParam::Ecdh1 {
            kdf,
            shared_data,
            public_data,
        } = p
        else {
            return Err(param_invalid(
                "CKM_ECDH1_DERIVE needs CK_ECDH1_DERIVE_PARAMS",
            ));
        };
        let kdf = kdf_hash(*kdf)?;
        if kdf.is_none() && !shared_data.is_empty() {
            return Err(param_invalid("CKD_NULL takes no shared data"));
        }
        let KeyKind::Ec { curve, key } = &base.kind else {
            return Err(key_type_inconsistent("ECDH needs an EC private key"));
        };
        if !key.is_private() {
            return Err(key_type_inconsistent("ECDH needs an EC private key"));
        }
        let alg = curve
            .ecdh_alg()
            .ok_or_else(|| key_type_inconsistent("ECDH needs a NIST curve key"))?;
        let peer = point_from_attr(*curve, public_data)
            .map_err(|_| param_invalid("the public data is not a point of the key's curve"))?;
        let scalar = key.private_scalar();
        let me = agreement::PrivateKey::from_private_key(alg, &scalar)
            .map_err(|_| Error::general("ECDH key import failed"))?;
        let z = agreement::agree(
            &me,
            agreement::UnparsedPublicKey::new(alg, peer),
            param_invalid("invalid peer public key"),
            |z| Ok(Zeroizing::new(z.to_vec())),
        )?;
        let max = if kdf.is_some() {
            crate::hmac::MAX_SECRET_BYTES
        } else {
            z.len()
        };
        derived_secret(t, z.len(), max, |len| match kdf {
            None => Zeroizing::new(z[z.len() - len..].to_vec()),
            Some(h) => x963_kdf(h, &z, shared_data, len),
        })
    }
}

/// The attributes of a derived secret key: `CKA_KEY_TYPE` (the template's, default
/// `CKK_GENERIC_SECRET`), `CKA_VALUE_LEN` (the template's, else `natural_len` where the key type
/// allows it; at most `max_len`) and `CKA_VALUE` from `make(len)`. With `CKD_NULL` a shorter key keeps the
/// trailing bytes of the shared secret (as SoftHSM and NSS do).
pub(crate) fn derived_secret(
    t: &Template,
    natural_len: usize,
    max_len: usize,
    make: impl FnOnce(usize) -> Zeroizing<Vec<u8>>,
) -> Result<Template> {
    let kt = t.get_ulong(CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
    let len = match t.get_ulong(CKA_VALUE_LEN)? {
        Some(l) => to_usize(l),
        None if kt == CKK_AES && ![16, 24, 32].contains(&natural_len) => {
            return Err(err(
                CKR_TEMPLATE_INCOMPLETE,
                "CKA_VALUE_LEN is needed for this AES key",
            ));
        }
        None => natural_len,
    };
    if len == 0 || len > max_len {
        return Err(err(
            CKR_TEMPLATE_INCONSISTENT,
            "CKA_VALUE_LEN is longer than the derived secret",
        ));
    }
    if kt == CKK_AES && ![16, 24, 32].contains(&len) {
        return Err(value_invalid("an AES key is 16, 24 or 32 bytes"));
    }
    let mut out = Template::new();
    out.set_ulong(CKA_KEY_TYPE, kt);
    out.set_ulong(CKA_VALUE_LEN, len as CK_ULONG);
    out.set(CKA_VALUE, make(len).to_vec());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parsing() {
        assert_eq!(
            curve_from_params(Curve::P256.oid_der()).unwrap(),
            Curve::P256
        );
        assert_eq!(
            curve_from_params(Curve::P521.oid_der()).unwrap(),
            Curve::P521
        );
        let mut name = vec![0x13, 12];
        name.extend_from_slice(b"edwards25519");
        assert_eq!(curve_from_params(&name).unwrap(), Curve::Ed25519);
        let mut name = vec![0x13, 10];
        name.extend_from_slice(b"prime256v1");
        assert_eq!(curve_from_params(&name).unwrap(), Curve::P256);
        // secp256k1 1.3.132.0.10: well-formed, unsupported
        assert_eq!(
            curve_from_params(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a])
                .unwrap_err()
                .rv(),
            CKR_CURVE_NOT_SUPPORTED
        );
        // Ed448 1.3.101.113
        assert_eq!(
            curve_from_params(&[0x06, 0x03, 0x2b, 0x65, 0x71])
                .unwrap_err()
                .rv(),
            CKR_CURVE_NOT_SUPPORTED
        );
        for bad in [&[][..], &[0x06], &[0x06, 0x03, 0x2b, 0x65], &[0x30, 0x00]] {
            assert_eq!(
                curve_from_params(bad).unwrap_err().rv(),
                CKR_DOMAIN_PARAMS_INVALID
            );
        }
    }

    #[test]
    fn x963_kdf_counter_starts_at_one() {
        let z = [1u8; 32];
        let out = x963_kdf(Hash::Sha256, &z, b"info", 40);
        let mut c = Hash::Sha256.context();
        c.update(&z);
        c.update(&1u32.to_be_bytes());
        c.update(b"info");
        assert_eq!(&out[..32], c.finish().as_ref());
    }
}
