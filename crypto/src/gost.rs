//! The GOST seam: everything `klyuch-crypto` knows about GOST R 34.10-2012 / 34.11-2012 lives
//! here, so that adding the GOST mechanisms (from the `klyuch-gost` crate) touches this file only
//! (plus `klyuch-gost` in `Cargo.toml`).
//!
//! What to fill in:
//! * [`GostKey`]: the prepared GOST key (public point and/or private scalar, parameter set). It is
//!   uninhabited today, so every `match` on it in the crate compiles to nothing.
//! * [`key_from_attributes`]: `CKK_GOSTR3410` / `CKK_GOSTR3410_512` (and the GOST secret key
//!   types) from `CKA_GOSTR3410_PARAMS`, `CKA_GOSTR3411_PARAMS`, `CKA_VALUE`; `key.rs` calls it
//!   for every type [`is_gost_key_type`] accepts, and stores the result as `KeyKind::Gost`.
//!   Mechanisms reach it with `match &key.kind { KeyKind::Gost(g) => .., _ => .. }`.
//! * [`public_attributes`], [`to_pkcs8`]: the public half and PKCS#8 export of a [`GostKey`].
//! * [`spki_attributes`] (called by `x509.rs`) and [`pkcs8_attributes`] (called by `pkcs8.rs`)
//!   for every algorithm OID under 1.2.643 ([`is_gost_oid`]).
//! * [`MECHANISMS`]: the GOST mechanism objects; `registry.rs` appends them to the standard list.
//! * [`hash_then_sign`]: e.g. `CKM_GOSTR3410_WITH_GOSTR3411_12_256` → (`CKM_GOSTR3411_12_256`,
//!   `CKM_GOSTR3410`) for the PC/SC backend.

use token_api::ck::*;
use token_api::{Error, Result, Template};
use zeroize::Zeroizing;

use crate::registry::MechanismImpl;

/// The GOST mechanisms (none yet).
pub(crate) static MECHANISMS: &[&dyn MechanismImpl] = &[];

/// A prepared GOST key. No values exist until GOST support lands.
pub enum GostKey {}

fn not_yet() -> Error {
    Error::with(
        CKR_KEY_TYPE_INCONSISTENT,
        "GOST keys are not supported by this build yet",
    )
}

/// The key types handled here (TC26 and PKCS#11 GOST types).
pub(crate) fn is_gost_key_type(kt: CK_KEY_TYPE) -> bool {
    matches!(
        kt,
        CKK_GOSTR3410
            | CKK_GOSTR3410_512
            | CKK_GOSTR3411
            | CKK_GOST28147
            | CKK_KUZNYECHIK
            | CKK_MAGMA
    )
}

/// Build a GOST key from an object's attributes: (key, size in bits).
pub(crate) fn key_from_attributes(
    _class: CK_OBJECT_CLASS,
    _key_type: CK_KEY_TYPE,
    _attrs: &Template,
) -> Result<(GostKey, usize)> {
    Err(not_yet())
}

/// The public key object attributes of a GOST key.
pub(crate) fn public_attributes(k: &GostKey) -> Result<Template> {
    match *k {}
}

/// The DER SubjectPublicKeyInfo of a GOST key (RFC 9215 §3).
pub(crate) fn public_key_info(k: &GostKey) -> Result<Vec<u8>> {
    match *k {}
}

/// PKCS#8 DER of a GOST private key.
pub(crate) fn to_pkcs8(k: &GostKey) -> Result<Zeroizing<Vec<u8>>> {
    match *k {}
}

/// True for algorithm OIDs in the Russian national arc 1.2.643 (CryptoPro 1.2.643.2.2.*, TC26
/// 1.2.643.7.1.*; RFC 4357, RFC 9215).
pub(crate) fn is_gost_oid(oid: &str) -> bool {
    oid.starts_with("1.2.643.")
}

/// Public key object attributes from a GOST SubjectPublicKeyInfo (algorithm OID in dotted form,
/// DER of the algorithm parameters, the subjectPublicKey bits).
pub(crate) fn spki_attributes(_oid: &str, _params: &[u8], _key: &[u8]) -> Result<Template> {
    Err(not_yet())
}

/// Private key object attributes from a GOST PKCS#8 PrivateKeyInfo (algorithm OID, parameter
/// DER, privateKey octets).
pub(crate) fn pkcs8_attributes(_oid: &str, _params: &[u8], _key: &[u8]) -> Result<Template> {
    Err(not_yet())
}

/// GOST hash-and-sign mechanisms as (digest mechanism, raw signature mechanism).
pub(crate) fn hash_then_sign(
    _mech: CK_MECHANISM_TYPE,
) -> Option<(CK_MECHANISM_TYPE, CK_MECHANISM_TYPE)> {
    None
}
