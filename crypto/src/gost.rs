//! GOST R 34.10-2012 signatures and VKO, GOST R 34.11-2012 (Streebog) digests and HMAC, on the
//! `klyuch-gost` crate, with the byte formats of the PKCS#11 GOST tokens
//! (`shared/docs/gost-pkcs11.md`: TC26 PKCS#11 extension, PKCS#11 v2.30 GOST sections).
//!
//! Formats (gost-pkcs11.md "the three traps"): digests are read little-endian; a signature is
//! `s || r` with big-endian halves (64 or 128 bytes); public `CKA_VALUE` is `X_le || Y_le`
//! (64/128 bytes), private `CKA_VALUE` is `d` little-endian (32/64 bytes);
//! `CKA_GOSTR3410_PARAMS` / `CKA_GOSTR3411_PARAMS` are DER OIDs.
//!
//! | mechanism | what | key sizes (bits) |
//! |---|---|---|
//! | `CKM_GOSTR3410_KEY_PAIR_GEN` (0x1200) | `CKK_GOSTR3410` key pairs on any 256-bit TC26 / CryptoPro set | 256 |
//! | `CKM_GOSTR3410_512_KEY_PAIR_GEN` (0xD4321005) | `CKK_GOSTR3410_512` key pairs (tc26-512-A/B/C) | 512 |
//! | `CKM_GOSTR3410` (0x1201) / `_512` (0xD4321006) | sign/verify a 32 / 64-byte digest, single-part | 256 / 512 |
//! | `CKM_GOSTR3410_WITH_GOSTR3411_12_256` / `_512` (0xD4321008/9) | Streebog, then sign; multi-part; optional parameter: the DER digest OID | 256 / 512 |
//! | `CKM_GOSTR3411_12_256` / `_512` (0xD4321012/13) | Streebog digests, multi-part | |
//! | `CKM_GOSTR3411_12_256_HMAC` / `_512_HMAC` (0xD4321014/15) | HMAC-Streebog (R 50.1.113-2016 §4.1) with generic secret or GOST secret keys | 1-4096 bytes |
//! | `CKM_GOSTR3410_12_DERIVE` (0xD4321007) | VKO GOST R 34.10-2012 with 256-bit output (R 50.1.113-2016 §4.3.1), `CKD_NULL` only | 256-512 |
//!
//! `CKD_CPDIVERSIFY_KDF` is refused with `CKR_MECHANISM_PARAM_INVALID`: the TC26 extension names
//! it, but no public text we have says which VKO output it diversifies and how for 2012 keys.
//! The two test parameter sets (RFC 7091 examples) are refused: they exist for examples only.

use std::sync::Arc;

use der::asn1::{BitString, ObjectIdentifier, OctetStringRef, UintRef};
use der::{Any, Decode, Encode, Sequence};
use digest::{Digest, KeyInit, Mac};
use klyuch_gost::{
    HmacStreebog256, HmacStreebog512, ParamSet, SigningKey, Streebog256, Streebog512, VerifyingKey,
};
use token_api::ck::*;
use token_api::ops::{ContextLogin, DigestOp, SignOp, VerifyOp};
use token_api::{Error, MechInfo, MechParam, Result, Template};
use zeroize::Zeroizing;

use crate::key::{Key, KeyKind};
use crate::registry::MechanismImpl;
use crate::util::{err, key_type_inconsistent, param_invalid, required, value_invalid};

// ------------------------------------------------------------------ Streebog

/// The two Streebog variants (GOST R 34.11-2012, RFC 6986).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Streebog {
    S256,
    S512,
}

impl Streebog {
    /// The hash that goes with a key size (the usual `CKA_GOSTR3411_PARAMS`).
    fn for_bits(bits: usize) -> Streebog {
        if bits == 512 {
            Streebog::S512
        } else {
            Streebog::S256
        }
    }

    fn len(self) -> usize {
        match self {
            Streebog::S256 => 32,
            Streebog::S512 => 64,
        }
    }

    /// DER OID: id-tc26-gost3411-12-256 (1.2.643.7.1.1.2.2) / -512 (1.2.643.7.1.1.2.3),
    /// gost-pkcs11.md §2.3, RFC 9215 §3.
    fn oid_der(self) -> &'static [u8] {
        match self {
            Streebog::S256 => klyuch_gost::oid::GOST3411_12_256,
            Streebog::S512 => klyuch_gost::oid::GOST3411_12_512,
        }
    }

    fn from_oid_der(v: &[u8]) -> Option<Streebog> {
        [Streebog::S256, Streebog::S512]
            .into_iter()
            .find(|s| s.oid_der() == v)
    }

    fn hasher(self) -> Hasher {
        match self {
            Streebog::S256 => Hasher::S256(Streebog256::new()),
            Streebog::S512 => Hasher::S512(Streebog512::new()),
        }
    }
}

/// A running Streebog hash, fed in place (no buffering: `C_DigestUpdate` data goes straight
/// into the compression function).
enum Hasher {
    S256(Streebog256),
    S512(Streebog512),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::S256(h) => Digest::update(h, data),
            Hasher::S512(h) => Digest::update(h, data),
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::S256(h) => h.finalize().to_vec(),
            Hasher::S512(h) => h.finalize().to_vec(),
        }
    }
}

// ------------------------------------------------------------------ keys

/// A prepared GOST R 34.10-2012 key: the parameter set (the OID it was given with is kept: the
/// CryptoPro and TC26 names of one curve are distinct [`ParamSet`] values), the digest of
/// `CKA_GOSTR3411_PARAMS`, and the private or public key.
pub struct GostKey {
    params: ParamSet,
    digest: Streebog,
    kind: GostKind,
}

enum GostKind {
    Private(SigningKey),
    Public(VerifyingKey),
}

impl GostKey {
    fn verifying_key(&self) -> &VerifyingKey {
        match &self.kind {
            GostKind::Private(sk) => sk.verifying_key(),
            GostKind::Public(vk) => vk,
        }
    }
    fn key_type(&self) -> CK_KEY_TYPE {
        key_type_for_bits(self.params.bits())
    }
}

fn key_type_for_bits(bits: usize) -> CK_KEY_TYPE {
    if bits == 512 {
        CKK_GOSTR3410_512
    } else {
        CKK_GOSTR3410
    }
}

/// The asymmetric GOST key types handled here: `CKK_GOSTR3410` (256-bit keys) and
/// `CKK_GOSTR3410_512` (TC26). The GOST secret key types are plain secrets (`key.rs`).
pub(crate) fn is_gost_key_type(kt: CK_KEY_TYPE) -> bool {
    matches!(kt, CKK_GOSTR3410 | CKK_GOSTR3410_512)
}

/// The parameter set of a `CKA_GOSTR3410_PARAMS` value (a DER OBJECT IDENTIFIER). Not DER:
/// `CKR_ATTRIBUTE_VALUE_INVALID`; unknown OIDs and the test sets: `CKR_DOMAIN_PARAMS_INVALID`.
fn paramset_from_der(v: &[u8]) -> Result<ParamSet> {
    let oid: ObjectIdentifier = ObjectIdentifier::from_der(v)
        .map_err(|_| value_invalid("CKA_GOSTR3410_PARAMS is not a DER OBJECT IDENTIFIER"))?;
    let ps = ParamSet::from_oid(v).map_err(|_| {
        Error::with(
            CKR_DOMAIN_PARAMS_INVALID,
            format!("unknown GOST R 34.10 parameter set {oid}"),
        )
    })?;
    if matches!(ps, ParamSet::Test256 | ParamSet::Test512) {
        return Err(err(
            CKR_DOMAIN_PARAMS_INVALID,
            "the GOST test parameter sets (RFC 7091 examples) are not for real keys",
        ));
    }
    Ok(ps)
}

/// `CKA_GOSTR3411_PARAMS` from a template (absent or empty: the Streebog of the key size).
fn digest_from_attr(t: &Template, ps: ParamSet) -> Result<Streebog> {
    match t.get(CKA_GOSTR3411_PARAMS) {
        None | Some([]) => Ok(Streebog::for_bits(ps.bits())),
        Some(v) => Streebog::from_oid_der(v).ok_or_else(|| {
            value_invalid("CKA_GOSTR3411_PARAMS must be the DER OID of Streebog-256 or -512")
        }),
    }
}

/// Build a GOST key from an object's attributes: (key, size in bits).
pub(crate) fn key_from_attributes(
    class: CK_OBJECT_CLASS,
    key_type: CK_KEY_TYPE,
    attrs: &Template,
) -> Result<(GostKey, usize)> {
    let ps = paramset_from_der(required(attrs, CKA_GOSTR3410_PARAMS)?)?;
    if key_type_for_bits(ps.bits()) != key_type {
        return Err(err(
            CKR_TEMPLATE_INCONSISTENT,
            "CKA_GOSTR3410_PARAMS names a parameter set of the other key size \
             (CKK_GOSTR3410: 256-bit sets, CKK_GOSTR3410_512: 512-bit sets)",
        ));
    }
    let digest = digest_from_attr(attrs, ps)?;
    let value = required(attrs, CKA_VALUE)?;
    let kind = match class {
        CKO_PUBLIC_KEY => {
            if value.len() != ps.signature_len() {
                return Err(value_invalid(
                    "a GOST public key CKA_VALUE is X || Y little-endian (64 or 128 bytes)",
                ));
            }
            GostKind::Public(VerifyingKey::from_le_bytes(ps, value).map_err(|_| {
                err(
                    CKR_PUBLIC_KEY_INVALID,
                    "the GOST public key is not a point of order q on the curve",
                )
            })?)
        }
        CKO_PRIVATE_KEY => {
            // d little-endian; a shorter value (leading zero bytes dropped) is zero-extended.
            if value.is_empty() || value.len() > ps.key_len() {
                return Err(value_invalid(
                    "a GOST private key CKA_VALUE is d little-endian (32 or 64 bytes)",
                ));
            }
            let mut d = Zeroizing::new(value.to_vec());
            d.resize(ps.key_len(), 0);
            GostKind::Private(
                SigningKey::from_le_bytes(ps, &d)
                    .map_err(|_| value_invalid("the GOST private key is not in 0 < d < q"))?,
            )
        }
        _ => {
            return Err(key_type_inconsistent(
                "a GOST R 34.10 key is a public or private key",
            ));
        }
    };
    Ok((
        GostKey {
            params: ps,
            digest,
            kind,
        },
        ps.bits(),
    ))
}

/// The public key object attributes of a GOST key.
pub(crate) fn public_attributes(k: &GostKey) -> Result<Template> {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY);
    t.set_ulong(CKA_KEY_TYPE, k.key_type());
    t.set(CKA_GOSTR3410_PARAMS, k.params.oid_der());
    t.set(CKA_GOSTR3411_PARAMS, k.digest.oid_der().to_vec());
    t.set(CKA_VALUE, k.verifying_key().to_le_bytes());
    Ok(t)
}

/// `GostR3410-2012-PublicKeyParameters ::= SEQUENCE { publicKeyParamSet OID, digestParamSet
/// OID OPTIONAL }` (RFC 9215 §4); the third OID of the 2001 structure (encryptionParamSet,
/// RFC 4491 §2.3.2) is accepted on input and never written.
#[derive(Sequence)]
struct GostKeyParams {
    public_key_param_set: ObjectIdentifier,
    digest_param_set: Option<ObjectIdentifier>,
    encryption_param_set: Option<ObjectIdentifier>,
}

/// The digestParamSet written into SPKI and PKCS#8, as OpenSSL's GOST engine (3.0.1) writes it
/// (observed with `openssl genpkey -engine gost` for every paramset): Streebog-256 for the
/// CryptoPro A/B/C and XchA/XchB OIDs (RFC 9215 §4: MUST be present there), Streebog-512 for
/// tc26-512-A/B, absent for tc26-256-A/B/C/D (RFC 9215: MUST / SHOULD be omitted) and
/// tc26-512-C.
fn spki_digest(ps: ParamSet) -> Option<Streebog> {
    use ParamSet::*;
    match ps {
        CryptoProA | CryptoProB | CryptoProC | CryptoProXchA | CryptoProXchB => {
            Some(Streebog::S256)
        }
        Tc26Gost512A | Tc26Gost512B => Some(Streebog::S512),
        _ => None,
    }
}

fn der_bug(_: der::Error) -> Error {
    Error::general("cannot encode the GOST key")
}

/// The `AlgorithmIdentifier` of a GOST key (RFC 9215 §4): (key algorithm OID, parameters).
fn algorithm(ps: ParamSet) -> Result<(ObjectIdentifier, Any)> {
    let oid = ObjectIdentifier::from_der(ps.key_algorithm_oid_der()).map_err(der_bug)?;
    let digest = spki_digest(ps)
        .map(|d| ObjectIdentifier::from_der(d.oid_der()))
        .transpose()
        .map_err(der_bug)?;
    let params = GostKeyParams {
        public_key_param_set: ObjectIdentifier::from_der(&ps.oid_der()).map_err(der_bug)?,
        digest_param_set: digest,
        encryption_param_set: None,
    };
    Ok((oid, Any::encode_from(&params).map_err(der_bug)?))
}

/// The DER SubjectPublicKeyInfo of a GOST key (RFC 9215 §4), byte for byte as OpenSSL's GOST
/// engine writes it: the subjectPublicKey BIT STRING holds a DER OCTET STRING of `X_le || Y_le`.
pub(crate) fn public_key_info(k: &GostKey) -> Result<Vec<u8>> {
    let (oid, parameters) = algorithm(k.params)?;
    let xy = k.verifying_key().to_le_bytes();
    let inner = OctetStringRef::new(&xy)
        .map_err(der_bug)?
        .to_der()
        .map_err(der_bug)?;
    spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid,
            parameters: Some(parameters),
        },
        subject_public_key: BitString::from_bytes(&inner).map_err(der_bug)?,
    }
    .to_der()
    .map_err(der_bug)
}

/// PKCS#8 DER of a GOST private key, as OpenSSL's GOST engine writes it (`gost_ameth.c`
/// `priv_encode_gost`): the algorithm as in the SPKI, privateKey = the raw `d` little-endian.
pub(crate) fn to_pkcs8(k: &GostKey) -> Result<Zeroizing<Vec<u8>>> {
    let GostKind::Private(sk) = &k.kind else {
        return Err(Error::with(CKR_KEY_NOT_WRAPPABLE, "not a private key"));
    };
    let (oid, parameters) = algorithm(k.params)?;
    let d = sk.to_le_bytes();
    let pki = pkcs8::PrivateKeyInfoRef::new(
        spki::AlgorithmIdentifier {
            oid,
            parameters: Some((&parameters).into()),
        },
        OctetStringRef::new(&d).map_err(der_bug)?,
    );
    Ok(Zeroizing::new(pki.to_der().map_err(der_bug)?))
}

/// True for algorithm OIDs in the Russian national arc 1.2.643 (CryptoPro 1.2.643.2.2.*, TC26
/// 1.2.643.7.1.*; RFC 4357, RFC 9215).
pub(crate) fn is_gost_oid(oid: &str) -> bool {
    oid.starts_with("1.2.643.")
}

/// (key type, parameter set, digest) from an SPKI / PKCS#8 algorithm: id-tc26-gost3410-12-256
/// (1.2.643.7.1.1.1.1) or -512 (1.2.643.7.1.1.1.2), RFC 9215 §4.
fn algorithm_attributes(oid: &str, params: &[u8]) -> Result<(CK_KEY_TYPE, ParamSet, Streebog)> {
    let kt = match oid {
        "1.2.643.7.1.1.1.1" => CKK_GOSTR3410,
        "1.2.643.7.1.1.1.2" => CKK_GOSTR3410_512,
        _ => {
            return Err(Error::with(
                CKR_KEY_TYPE_INCONSISTENT,
                format!(
                    "unsupported GOST key algorithm {oid} (GOST R 34.10-2012 keys only, \
                     not 2001 or 94)"
                ),
            ));
        }
    };
    let p = GostKeyParams::from_der(params)
        .map_err(|_| value_invalid("malformed GOST R 34.10-2012 key parameters"))?;
    let ps = paramset_from_der(&p.public_key_param_set.to_der().map_err(der_bug)?)?;
    if key_type_for_bits(ps.bits()) != kt {
        return Err(value_invalid(
            "the GOST parameter set does not fit the key algorithm's size",
        ));
    }
    let digest = match p.digest_param_set {
        None => Streebog::for_bits(ps.bits()),
        Some(d) => Streebog::from_oid_der(&d.to_der().map_err(der_bug)?)
            .ok_or_else(|| value_invalid("the GOST digestParamSet is not Streebog"))?,
    };
    Ok((kt, ps, digest))
}

fn key_template(
    class: CK_OBJECT_CLASS,
    kt: CK_KEY_TYPE,
    ps: ParamSet,
    digest: Streebog,
) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, class);
    t.set_ulong(CKA_KEY_TYPE, kt);
    t.set(CKA_GOSTR3410_PARAMS, ps.oid_der());
    t.set(CKA_GOSTR3411_PARAMS, digest.oid_der().to_vec());
    t
}

/// Public key object attributes from a GOST SubjectPublicKeyInfo (algorithm OID in dotted form,
/// DER of the algorithm parameters, the subjectPublicKey bits: a DER OCTET STRING of
/// `X_le || Y_le`). The digestParamSet may be present or absent.
pub(crate) fn spki_attributes(oid: &str, params: &[u8], key: &[u8]) -> Result<Template> {
    let (kt, ps, digest) = algorithm_attributes(oid, params)?;
    let xy = <&OctetStringRef>::from_der(key)
        .map_err(|_| value_invalid("a GOST public key is a DER OCTET STRING of X || Y"))?;
    let mut t = key_template(CKO_PUBLIC_KEY, kt, ps, digest);
    t.set(CKA_VALUE, xy.as_bytes().to_vec());
    key_from_attributes(CKO_PUBLIC_KEY, kt, &t)?;
    Ok(t)
}

/// Private key object attributes from a GOST PKCS#8 PrivateKeyInfo (algorithm OID, parameter
/// DER, privateKey octets). The privateKey forms OpenSSL's GOST engine reads
/// (`gost_ameth.c` `priv_decode_gost`): the raw `d` little-endian (what it writes), a DER OCTET
/// STRING of `d` little-endian, or a DER INTEGER (big-endian). Masked CryptoPro keys (the key
/// followed by masks) are refused.
pub(crate) fn pkcs8_attributes(oid: &str, params: &[u8], key: &[u8]) -> Result<Template> {
    let (kt, ps, digest) = algorithm_attributes(oid, params)?;
    let n = ps.key_len();
    let d_le: Zeroizing<Vec<u8>> = if key.len() == n {
        Zeroizing::new(key.to_vec())
    } else if key.len().is_multiple_of(n) {
        return Err(value_invalid(
            "masked GOST private keys (CryptoPro key with masks) are not supported",
        ));
    } else if let Ok(s) = <&OctetStringRef>::from_der(key) {
        Zeroizing::new(s.as_bytes().to_vec())
    } else if let Ok(i) = UintRef::from_der(key) {
        Zeroizing::new(i.as_bytes().iter().rev().copied().collect())
    } else {
        return Err(value_invalid("unrecognised GOST private key encoding"));
    };
    let mut t = key_template(CKO_PRIVATE_KEY, kt, ps, digest);
    t.set(CKA_VALUE, d_le.to_vec());
    key_from_attributes(CKO_PRIVATE_KEY, kt, &t)?;
    Ok(t)
}

/// GOST hash-and-sign mechanisms as (digest mechanism, raw signature mechanism).
pub(crate) fn hash_then_sign(
    mech: CK_MECHANISM_TYPE,
) -> Option<(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)> {
    match mech {
        CKM_GOSTR3410_WITH_GOSTR3411_12_256 => Some((CKM_GOSTR3411_12_256, CKM_GOSTR3410)),
        CKM_GOSTR3410_WITH_GOSTR3411_12_512 => Some((CKM_GOSTR3411_12_512, CKM_GOSTR3410_512)),
        _ => None,
    }
}

// ------------------------------------------------------------------ key pair generation

/// `CKM_GOSTR3410_KEY_PAIR_GEN` (256-bit) and `CKM_GOSTR3410_512_KEY_PAIR_GEN`.
struct GostKeyGen {
    ty: CK_MECHANISM_TYPE,
    bits: usize,
}

impl MechanismImpl for GostKeyGen {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        let b = self.bits as CK_ULONG;
        MechInfo::new(b, b, CKF_GENERATE_KEY_PAIR)
    }
    fn generate_key_pair(
        &self,
        p: &MechParam,
        public: &Template,
        private: &Template,
    ) -> Result<(Template, Template)> {
        if *p != MechParam::None {
            return Err(param_invalid("GOST key pair generation takes no parameter"));
        }
        // The public template must name the set (PKCS#11 v2.30 GOST key pair generation);
        // applications that put it on the private template only are accepted too.
        let params = match public.get(CKA_GOSTR3410_PARAMS) {
            Some(v) => v,
            None => required(private, CKA_GOSTR3410_PARAMS)?,
        };
        let ps = paramset_from_der(params)?;
        if ps.bits() != self.bits {
            return Err(err(
                CKR_DOMAIN_PARAMS_INVALID,
                "the parameter set is not of this mechanism's key size",
            ));
        }
        let digest = match public.get(CKA_GOSTR3411_PARAMS) {
            Some(_) => digest_from_attr(public, ps)?,
            None => digest_from_attr(private, ps)?,
        };
        let sk = SigningKey::generate(ps).map_err(|_| Error::general("GOST keygen failed"))?;
        let kt = key_type_for_bits(self.bits);
        let mut pubt = key_template(CKO_PUBLIC_KEY, kt, ps, digest);
        pubt.remove(CKA_CLASS);
        pubt.set(CKA_VALUE, sk.verifying_key().to_le_bytes());
        let mut privt = key_template(CKO_PRIVATE_KEY, kt, ps, digest);
        privt.remove(CKA_CLASS);
        privt.set(CKA_VALUE, sk.to_le_bytes().to_vec());
        Ok((pubt, privt))
    }
}

// ------------------------------------------------------------------ signatures

/// `CKM_GOSTR3410` / `CKM_GOSTR3410_512` (digest in, single-part) and
/// `CKM_GOSTR3410_WITH_GOSTR3411_12_256` / `_512` (message in, multi-part).
struct GostSign {
    ty: CK_MECHANISM_TYPE,
    bits: usize,
    hash: Option<Streebog>,
}

fn gost_key(key: &Key, bits: usize) -> Result<&GostKey> {
    match &key.kind {
        KeyKind::Gost(g) if g.params.bits() == bits => Ok(g),
        KeyKind::Gost(_) => Err(key_type_inconsistent(if bits == 512 {
            "this mechanism needs a 512-bit GOST key (CKK_GOSTR3410_512)"
        } else {
            "this mechanism needs a 256-bit GOST key (CKK_GOSTR3410)"
        })),
        _ => Err(key_type_inconsistent(
            "a GOST R 34.10-2012 key (CKK_GOSTR3410 / CKK_GOSTR3410_512) is needed",
        )),
    }
}

impl GostSign {
    fn init(&self, key: &Arc<Key>, p: &MechParam, private: bool) -> Result<GostSignOp> {
        match (self.hash, p) {
            (_, MechParam::None) => {}
            // The TC26 extension lets the caller name the hash by its DER OID (gost-pkcs11.md
            // §2.1); it must be this mechanism's.
            (Some(h), MechParam::Bytes(oid)) if oid.as_slice() == h.oid_der() => {}
            (Some(_), _) => {
                return Err(param_invalid(
                    "the parameter must be the DER OID of this mechanism's Streebog",
                ));
            }
            (None, _) => return Err(param_invalid("CKM_GOSTR3410 takes no parameter")),
        }
        let g = gost_key(key, self.bits)?;
        if private && !matches!(g.kind, GostKind::Private(_)) {
            return Err(key_type_inconsistent("signing needs a GOST private key"));
        }
        Ok(GostSignOp {
            key: key.clone(),
            n: self.bits / 8,
            hasher: self.hash.map(Streebog::hasher),
            raw: Vec::new(),
            too_long: false,
        })
    }
}

impl MechanismImpl for GostSign {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.ty
    }
    fn info(&self) -> MechInfo {
        let b = self.bits as CK_ULONG;
        MechInfo::new(b, b, CKF_SIGN | CKF_VERIFY)
    }
    fn sign_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn SignOp>> {
        Ok(Box::new(self.init(&key, p, true)?))
    }
    fn verify_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        Ok(Box::new(self.init(&key, p, false)?))
    }
}

struct GostSignOp {
    key: Arc<Key>,
    /// Digest / signature-half length: 32 or 64.
    n: usize,
    /// The running Streebog of a hash-and-sign mechanism; `None` for the raw ones.
    hasher: Option<Hasher>,
    /// Raw mechanisms: the digest given (public data).
    raw: Vec<u8>,
    too_long: bool,
}

impl GostSignOp {
    fn feed(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Some(h) => h.update(data),
            None if self.raw.len() + data.len() <= self.n => self.raw.extend_from_slice(data),
            None => self.too_long = true,
        }
    }
    /// The digest to sign or verify: the finished hash, or the raw input of exactly `n` bytes.
    fn digest(&mut self) -> Result<Vec<u8>> {
        match self.hasher.take() {
            Some(h) => Ok(h.finish()),
            None => {
                let d = std::mem::take(&mut self.raw);
                if self.too_long || d.len() != self.n {
                    return Err(err(
                        CKR_DATA_LEN_RANGE,
                        "raw GOST R 34.10 takes exactly a 32-byte (512-bit keys: 64-byte) digest",
                    ));
                }
                Ok(d)
            }
        }
    }
    fn gost(&self) -> Result<&GostKey> {
        gost_key(&self.key, self.n * 8)
    }
}

impl ContextLogin for GostSignOp {}

impl SignOp for GostSignOp {
    fn signature_len(&self) -> usize {
        2 * self.n
    }
    fn multipart(&self) -> bool {
        self.hasher.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let d = self.digest()?;
        match &self.gost()?.kind {
            GostKind::Private(sk) => sk
                .sign_digest(&d)
                .map_err(|_| Error::general("GOST signing failed")),
            GostKind::Public(_) => Err(key_type_inconsistent("signing needs a private key")),
        }
    }
}

impl VerifyOp for GostSignOp {
    fn signature_len(&self) -> usize {
        2 * self.n
    }
    fn multipart(&self) -> bool {
        self.hasher.is_some()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data);
        Ok(())
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        let d = self.digest()?;
        if signature.len() != 2 * self.n {
            return Err(err(
                CKR_SIGNATURE_LEN_RANGE,
                "a GOST signature is s || r, 64 (512-bit keys: 128) bytes",
            ));
        }
        self.gost()?
            .verifying_key()
            .verify_digest(&d, signature)
            .map_err(|_| Error::new(CKR_SIGNATURE_INVALID))
    }
}

// ------------------------------------------------------------------ digests

/// `CKM_GOSTR3411_12_256` / `CKM_GOSTR3411_12_512`.
struct GostDigest(Streebog);

impl MechanismImpl for GostDigest {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        match self.0 {
            Streebog::S256 => CKM_GOSTR3411_12_256,
            Streebog::S512 => CKM_GOSTR3411_12_512,
        }
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(0, 0, CKF_DIGEST)
    }
    fn digest_init(&self, p: &MechParam) -> Result<Box<dyn DigestOp>> {
        match p {
            MechParam::None => {}
            MechParam::Bytes(oid) if oid.as_slice() == self.0.oid_der() => {}
            _ => {
                return Err(param_invalid(
                    "the parameter may only be the DER OID of this Streebog",
                ));
            }
        }
        Ok(Box::new(StreebogOp {
            len: self.0.len(),
            h: Some(self.0.hasher()),
        }))
    }
}

struct StreebogOp {
    len: usize,
    h: Option<Hasher>,
}

impl DigestOp for StreebogOp {
    fn digest_len(&self) -> usize {
        self.len
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.h
            .as_mut()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?
            .update(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .h
            .take()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?
            .finish())
    }
}

// ------------------------------------------------------------------ HMAC

/// `CKM_GOSTR3411_12_256_HMAC` / `CKM_GOSTR3411_12_512_HMAC`: HMAC_GOSTR3411_2012_256/512
/// (R 50.1.113-2016 §4.1.1-4.1.2, RFC 7836 §4.1), full-length output.
struct GostHmac(Streebog);

/// Secret key types HMAC-Streebog takes: generic secrets and the GOST secret key types.
const HMAC_KEY_TYPES: &[CK_KEY_TYPE] = &[
    CKK_GENERIC_SECRET,
    CKK_GOSTR3411,
    CKK_GOST28147,
    CKK_KUZNYECHIK,
    CKK_MAGMA,
];

impl GostHmac {
    fn init(&self, key: &Key, p: &MechParam) -> Result<HmacOp> {
        if *p != MechParam::None {
            return Err(param_invalid("HMAC-Streebog takes no parameter"));
        }
        if !HMAC_KEY_TYPES.contains(&key.key_type()) {
            return Err(key_type_inconsistent(
                "HMAC-Streebog needs a generic secret or GOST secret key",
            ));
        }
        let v = key
            .secret()
            .ok_or_else(|| key_type_inconsistent("HMAC-Streebog needs a secret key"))?;
        if v.len() > crate::hmac::MAX_SECRET_BYTES {
            return Err(err(CKR_KEY_SIZE_RANGE, "HMAC key too long"));
        }
        let bad = |_| Error::general("HMAC key setup failed");
        let mac = match self.0 {
            Streebog::S256 => {
                HmacState::S256(<HmacStreebog256 as KeyInit>::new_from_slice(v).map_err(bad)?)
            }
            Streebog::S512 => {
                HmacState::S512(<HmacStreebog512 as KeyInit>::new_from_slice(v).map_err(bad)?)
            }
        };
        Ok(HmacOp {
            len: self.0.len(),
            mac: Some(mac),
        })
    }
}

impl MechanismImpl for GostHmac {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        match self.0 {
            Streebog::S256 => CKM_GOSTR3411_12_256_HMAC,
            Streebog::S512 => CKM_GOSTR3411_12_512_HMAC,
        }
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(
            1,
            crate::hmac::MAX_SECRET_BYTES as CK_ULONG,
            CKF_SIGN | CKF_VERIFY,
        )
    }
    fn sign_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn SignOp>> {
        Ok(Box::new(self.init(&key, p)?))
    }
    fn verify_init(&self, key: Arc<Key>, p: &MechParam) -> Result<Box<dyn VerifyOp>> {
        Ok(Box::new(self.init(&key, p)?))
    }
}

enum HmacState {
    S256(HmacStreebog256),
    S512(HmacStreebog512),
}

struct HmacOp {
    len: usize,
    mac: Option<HmacState>,
}

impl HmacOp {
    fn feed(&mut self, data: &[u8]) -> Result<()> {
        match self
            .mac
            .as_mut()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))?
        {
            HmacState::S256(m) => Mac::update(m, data),
            HmacState::S512(m) => Mac::update(m, data),
        }
        Ok(())
    }
    fn take(&mut self) -> Result<HmacState> {
        self.mac
            .take()
            .ok_or_else(|| Error::new(CKR_OPERATION_NOT_INITIALIZED))
    }
}

impl ContextLogin for HmacOp {}

impl SignOp for HmacOp {
    fn signature_len(&self) -> usize {
        self.len
    }
    fn multipart(&self) -> bool {
        true
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(match self.take()? {
            HmacState::S256(m) => m.finalize().into_bytes().to_vec(),
            HmacState::S512(m) => m.finalize().into_bytes().to_vec(),
        })
    }
}

impl VerifyOp for HmacOp {
    fn signature_len(&self) -> usize {
        self.len
    }
    fn multipart(&self) -> bool {
        true
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.feed(data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.len {
            return Err(err(CKR_SIGNATURE_LEN_RANGE, "wrong MAC length"));
        }
        // Constant-time comparison (digest's `verify_slice`).
        let ok = match self.take()? {
            HmacState::S256(m) => m.verify_slice(signature).is_ok(),
            HmacState::S512(m) => m.verify_slice(signature).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::new(CKR_SIGNATURE_INVALID))
        }
    }
}

// ------------------------------------------------------------------ VKO

/// `CKM_GOSTR3410_12_DERIVE` with `CK_GOSTR3410_DERIVE_PARAMS`: VKO_GOSTR3410_2012_256
/// (R 50.1.113-2016 §4.3.1) of the base private key, the peer's public key (`pPublicData`:
/// `X_le || Y_le`, or a DER OCTET STRING of it) and the UKM (`pUKM`, little-endian), for 256- and
/// 512-bit keys. `CKD_NULL` only: the 32-byte VKO output is the new secret key's value.
struct GostDerive;

impl MechanismImpl for GostDerive {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        CKM_GOSTR3410_12_DERIVE
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(256, 512, CKF_DERIVE)
    }
    fn derive(&self, base: Arc<Key>, p: &MechParam, t: &Template) -> Result<Template> {
        let MechParam::GostDerive {
            kdf,
            public_data,
            ukm,
        } = p
        else {
            return Err(param_invalid(
                "CKM_GOSTR3410_12_DERIVE needs CK_GOSTR3410_DERIVE_PARAMS",
            ));
        };
        match *kdf {
            CKD_NULL => {}
            CKD_CPDIVERSIFY_KDF => {
                return Err(param_invalid(
                    "CKD_CPDIVERSIFY_KDF is not implemented (use CKD_NULL)",
                ));
            }
            _ => return Err(param_invalid("unsupported KDF for VKO (use CKD_NULL)")),
        }
        let KeyKind::Gost(g) = &base.kind else {
            return Err(key_type_inconsistent("VKO needs a GOST private key"));
        };
        let GostKind::Private(sk) = &g.kind else {
            return Err(key_type_inconsistent("VKO needs a GOST private key"));
        };
        let n = g.params.signature_len();
        let xy: &[u8] = if public_data.len() == n {
            public_data
        } else {
            <&OctetStringRef>::from_der(public_data)
                .ok()
                .map(|s| s.as_bytes())
                .filter(|s| s.len() == n)
                .ok_or_else(|| {
                    param_invalid("the public data is not X || Y (little-endian) of the key's size")
                })?
        };
        let peer = VerifyingKey::from_le_bytes(g.params, xy).map_err(|_| {
            err(
                CKR_PUBLIC_KEY_INVALID,
                "the peer's public key is not a point of order q on the key's curve",
            )
        })?;
        let z = Zeroizing::new(klyuch_gost::vko_256(sk, &peer, ukm).map_err(|e| match e {
            klyuch_gost::Error::InvalidUkm => {
                param_invalid("the UKM must be 1 to key-length bytes and non-zero mod q")
            }
            _ => Error::general("VKO failed"),
        })?);
        crate::ec::derived_secret(t, z.len(), z.len(), |len| Zeroizing::new(z[..len].to_vec()))
    }
}

// ------------------------------------------------------------------ the list

static KEYGEN_256: GostKeyGen = GostKeyGen {
    ty: CKM_GOSTR3410_KEY_PAIR_GEN,
    bits: 256,
};
static KEYGEN_512: GostKeyGen = GostKeyGen {
    ty: CKM_GOSTR3410_512_KEY_PAIR_GEN,
    bits: 512,
};
static SIGN_256: GostSign = GostSign {
    ty: CKM_GOSTR3410,
    bits: 256,
    hash: None,
};
static SIGN_512: GostSign = GostSign {
    ty: CKM_GOSTR3410_512,
    bits: 512,
    hash: None,
};
static SIGN_HASH_256: GostSign = GostSign {
    ty: CKM_GOSTR3410_WITH_GOSTR3411_12_256,
    bits: 256,
    hash: Some(Streebog::S256),
};
static SIGN_HASH_512: GostSign = GostSign {
    ty: CKM_GOSTR3410_WITH_GOSTR3411_12_512,
    bits: 512,
    hash: Some(Streebog::S512),
};
static DIGEST_256: GostDigest = GostDigest(Streebog::S256);
static DIGEST_512: GostDigest = GostDigest(Streebog::S512);
static HMAC_256: GostHmac = GostHmac(Streebog::S256);
static HMAC_512: GostHmac = GostHmac(Streebog::S512);

/// The GOST mechanisms, in `C_GetMechanismList` order.
pub(crate) static MECHANISMS: &[&dyn MechanismImpl] = &[
    &KEYGEN_256,
    &KEYGEN_512,
    &SIGN_256,
    &SIGN_512,
    &SIGN_HASH_256,
    &SIGN_HASH_512,
    &DIGEST_256,
    &DIGEST_512,
    &HMAC_256,
    &HMAC_512,
    &GostDerive,
];

#[cfg(test)]
mod tests;
