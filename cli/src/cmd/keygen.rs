//! `klyuch keygen`: a key pair generated on the token (`C_GenerateKeyPair`), so the private key
//! never exists outside it. Prints the `CKA_ID` and the public key (SubjectPublicKeyInfo, PEM).
//!
//! Key types and their PKCS#11 templates:
//! * `rsa:BITS` (2048..=4096, a multiple of 8): `CKM_RSA_PKCS_KEY_PAIR_GEN`, `CKA_MODULUS_BITS`,
//!   `CKA_PUBLIC_EXPONENT` 65537 (F4, the usual choice: RFC 8017 does not fix one).
//! * `ec:p256|p384|p521`: `CKM_EC_KEY_PAIR_GEN`, `CKA_EC_PARAMS` = the curve OID
//!   (secp256r1 1.2.840.10045.3.1.7, secp384r1 1.3.132.0.34, secp521r1 1.3.132.0.35: RFC 5480
//!   §2.1.1.1).
//! * `ed25519`: `CKM_EC_EDWARDS_KEY_PAIR_GEN`, `CKA_EC_PARAMS` = id-Ed25519 1.3.101.112
//!   (RFC 8410 §3; PKCS#11 3.0 §2.3.10 allows the OID).
//! * `gost2012-256[:SET]`: `CKM_GOSTR3410_KEY_PAIR_GEN` (0x1200), `CKA_GOSTR3410_PARAMS` = the
//!   set's OID, `CKA_GOSTR3411_PARAMS` = Streebog-256 1.2.643.7.1.1.2.2 (gost-pkcs11.md §2.2,
//!   §2.3). Sets, named as OpenSSL's GOST engine names them: A, B, C = CryptoPro-A/B/C
//!   1.2.643.2.2.35.1/2/3, XA, XB = CryptoPro-XchA/XchB 1.2.643.2.2.36.0/1, TCA..TCD =
//!   id-tc26-gost-3410-12-256-paramSetA..D 1.2.643.7.1.2.1.1.1..4 (RFC 7836 App. A, RFC 4357
//!   §10). Default A (what the engine's `paramset:A` and most Russian CAs use).
//!   The `cryptoki` crate cannot name 0x1200, so Klyuch's alias
//!   `CKM_KLYUCH_GOSTR3410_256_KEY_PAIR_GEN` is used (see token-api `ck.rs`).
//! * `gost2012-512[:SET]`: `CKM_GOSTR3410_512_KEY_PAIR_GEN` (0xD4321005, TC26), sets A, B, C =
//!   id-tc26-gost-3410-12-512-paramSetA..C 1.2.643.7.1.2.1.2.1..3, `CKA_GOSTR3411_PARAMS` =
//!   Streebog-512 1.2.643.7.1.1.2.3. Default A.
//!
//! Without `--id`, the token may choose one (a card picks a free key slot) and the key then gets
//! the ID OpenSC would give it (SHA-1 of the public key, as `klyuch import` computes it) where the
//! token lets it be changed; `klyuch import` finds a key by its public key either way.

use crate::attrs::{HexId, intrinsic_id, parse_hex_id};
use crate::ctx::{Ctx, TokenSelector};
use crate::error::{CliError, Result};
use crate::pin::UserPinArgs;
use clap::Args;
use const_oid::ObjectIdentifier;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use der::Encode;
use der::EncodePem;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Key type: gost2012-256[:A|B|C|XA|XB|TCA|TCB|TCC|TCD], gost2012-512[:A|B|C],
    /// rsa:2048..4096, ec:p256|p384|p521, ed25519
    #[arg(long = "type", value_name = "TYPE")]
    pub key_type: String,
    /// Label (CKA_LABEL) of both keys [default: the key type]
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// ID (CKA_ID, hex) of both keys [default: SHA-1 of the public key, as OpenSC does]
    #[arg(long, value_name = "HEX", value_parser = parse_hex_id)]
    pub id: Option<HexId>,
    /// Also write the public key (PEM) to this file
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

/// CKM_GOSTR3410_512_KEY_PAIR_GEN (TC26, gost-pkcs11.md §1.2).
const CKM_GOSTR3410_512_KEY_PAIR_GEN: CK_MECHANISM_TYPE = 0xD432_1005;
/// Streebog-256 / -512 (id-tc26-gost3411-12-256 / -512, gost-pkcs11.md §2.3).
const STREEBOG_256: &str = "1.2.643.7.1.1.2.2";
const STREEBOG_512: &str = "1.2.643.7.1.1.2.3";

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Rsa(u32),
    /// Curve OID, short name.
    Ec(&'static str, &'static str),
    Ed25519,
    /// Bits, parameter set OID, short name.
    Gost(usize, &'static str, &'static str),
}

const GOST_256_SETS: &[(&str, &str)] = &[
    ("A", "1.2.643.2.2.35.1"),
    ("B", "1.2.643.2.2.35.2"),
    ("C", "1.2.643.2.2.35.3"),
    ("XA", "1.2.643.2.2.36.0"),
    ("XB", "1.2.643.2.2.36.1"),
    ("TCA", "1.2.643.7.1.2.1.1.1"),
    ("TCB", "1.2.643.7.1.2.1.1.2"),
    ("TCC", "1.2.643.7.1.2.1.1.3"),
    ("TCD", "1.2.643.7.1.2.1.1.4"),
];
const GOST_512_SETS: &[(&str, &str)] = &[
    ("A", "1.2.643.7.1.2.1.2.1"),
    ("B", "1.2.643.7.1.2.1.2.2"),
    ("C", "1.2.643.7.1.2.1.2.3"),
];

pub fn parse_spec(s: &str) -> Result<Spec> {
    let lower = s.trim().to_ascii_lowercase();
    let (kind, arg) = match lower.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (lower.as_str(), None),
    };
    let bad = |why: &str| CliError::usage(format!("--type {s:?}: {why}"));
    Ok(match kind {
        "rsa" => {
            let bits: u32 = arg
                .unwrap_or("2048")
                .parse()
                .map_err(|_| bad("write rsa:BITS, e.g. rsa:2048"))?;
            if !(2048..=4096).contains(&bits) || !bits.is_multiple_of(8) {
                return Err(bad("RSA keys have 2048 to 4096 bits (a multiple of 8)"));
            }
            Spec::Rsa(bits)
        }
        "ec" => match arg.unwrap_or("") {
            "p256" | "p-256" | "prime256v1" | "secp256r1" => {
                Spec::Ec("1.2.840.10045.3.1.7", "P-256")
            }
            "p384" | "p-384" | "secp384r1" => Spec::Ec("1.3.132.0.34", "P-384"),
            "p521" | "p-521" | "secp521r1" => Spec::Ec("1.3.132.0.35", "P-521"),
            _ => return Err(bad("curves: ec:p256, ec:p384, ec:p521")),
        },
        "ed25519" => Spec::Ed25519,
        "gost2012-256" | "gost2012_256" | "gost2012-512" | "gost2012_512" => {
            let bits = if kind.ends_with("256") { 256 } else { 512 };
            let sets = if bits == 256 {
                GOST_256_SETS
            } else {
                GOST_512_SETS
            };
            let want = arg.unwrap_or("a").to_ascii_uppercase();
            let (name, oid) = sets.iter().find(|(n, _)| *n == want).ok_or_else(|| {
                let names: Vec<&str> = sets.iter().map(|(n, _)| *n).collect();
                bad(&format!(
                    "GOST R 34.10-2012 {bits} parameter sets: {}",
                    names.join(", ")
                ))
            })?;
            Spec::Gost(bits, oid, name)
        }
        _ => {
            return Err(bad(
                "key types: gost2012-256[:SET], gost2012-512[:SET], rsa:BITS, ec:p256|p384|p521, \
                 ed25519",
            ));
        }
    })
}

impl Spec {
    fn describe(&self) -> String {
        match self {
            Spec::Rsa(b) => format!("RSA {b}"),
            Spec::Ec(_, n) => format!("EC {n}"),
            Spec::Ed25519 => "Ed25519".into(),
            Spec::Gost(b, _, n) => format!("GOST R 34.10-2012 {b} (parameter set {n})"),
        }
    }
    fn default_label(&self) -> String {
        match self {
            Spec::Rsa(b) => format!("rsa{b}"),
            Spec::Ec(_, n) => format!("ec-{}", n.to_ascii_lowercase()),
            Spec::Ed25519 => "ed25519".into(),
            Spec::Gost(b, _, _) => format!("gost2012-{b}"),
        }
    }
}

fn oid_der(oid: &str) -> Result<Vec<u8>> {
    ObjectIdentifier::new(oid)
        .ok()
        .and_then(|o| o.to_der().ok())
        .ok_or_else(|| CliError::new(format!("bad built-in OID {oid}")))
}

fn vendor(ty: CK_MECHANISM_TYPE) -> Result<Mechanism<'static>> {
    let t = MechanismType::new_vendor_defined(ty)
        .map_err(|_| CliError::new("bad vendor mechanism number"))?;
    Ok(Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
        t, None,
    )))
}

fn raw(ty: CK_ATTRIBUTE_TYPE, v: Vec<u8>) -> Attribute {
    Attribute::VendorDefined((AttributeType::VendorDefined(ty), v))
}

/// (mechanism, public template, private template) without label and ID.
fn templates(spec: &Spec) -> Result<(Mechanism<'static>, Vec<Attribute>, Vec<Attribute>)> {
    let mut public = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
    ];
    let mut private = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ];
    // Every usage is set, so a token's defaults (decrypt on an EC key) do not apply.
    let rsa = matches!(spec, Spec::Rsa(_));
    let agree = matches!(spec, Spec::Ec(..) | Spec::Gost(..));
    public.extend([
        Attribute::Encrypt(rsa),
        Attribute::Wrap(rsa),
        Attribute::Derive(false),
    ]);
    private.extend([
        Attribute::Decrypt(rsa),
        Attribute::Unwrap(rsa),
        Attribute::Derive(agree),
    ]);
    let mech = match spec {
        Spec::Rsa(bits) => {
            public.push(Attribute::ModulusBits(CK_ULONG::from(*bits).into()));
            public.push(Attribute::PublicExponent(vec![1, 0, 1]));
            Mechanism::RsaPkcsKeyPairGen
        }
        Spec::Ec(oid, _) => {
            public.push(Attribute::EcParams(oid_der(oid)?));
            Mechanism::EccKeyPairGen
        }
        Spec::Ed25519 => {
            public.push(Attribute::EcParams(oid_der("1.3.101.112")?));
            Mechanism::EccEdwardsKeyPairGen
        }
        Spec::Gost(bits, set, _) => {
            let digest = if *bits == 256 {
                STREEBOG_256
            } else {
                STREEBOG_512
            };
            public.push(raw(CKA_GOSTR3410_PARAMS, oid_der(set)?));
            public.push(raw(CKA_GOSTR3411_PARAMS, oid_der(digest)?));
            if *bits == 256 {
                vendor(token_api::ck::CKM_KLYUCH_GOSTR3410_256_KEY_PAIR_GEN)?
            } else {
                vendor(CKM_GOSTR3410_512_KEY_PAIR_GEN)?
            }
        }
    };
    Ok((mech, public, private))
}

fn key_exists(session: &Session, id: &[u8]) -> Result<bool> {
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        if !session
            .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])?
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Percent-encode bytes for a PKCS#11 URI (every byte, as RFC 7512 §2.3 allows).
pub fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

/// Percent-encode text for a PKCS#11 URI (unreserved characters stay).
pub fn pct_text(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &KeygenArgs) -> Result<()> {
    let spec = parse_spec(&a.key_type)?;
    let label = a.label.clone().unwrap_or_else(|| spec.default_label());
    let (mech, mut public, mut private) = templates(&spec)?;
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let session = ctx.open_session(slot, true)?;
    let pin = ctx.user_pin_for(&info, &a.pin.source())?;
    ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    if let Some(id) = &a.id
        && key_exists(&session, &id.0)?
    {
        return Err(CliError::new(format!(
            "the token already has a key with ID {}; choose another --id (or leave it out)",
            hex::encode(&id.0)
        )));
    }
    // Without --id the token may choose (a card picks a free key slot); the public key's
    // SHA-1 is set afterwards where the token allows it.
    for t in [&mut public, &mut private] {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
        if let Some(id) = &a.id {
            t.push(Attribute::Id(id.0.clone()));
        }
    }
    eprintln!(
        "Generating the {} key pair on the token...",
        spec.describe()
    );
    let (pub_h, priv_h) = session
        .generate_key_pair(&mech, &public, &private)
        .map_err(|e| {
            let err = CliError::from(e);
            let gost256 = matches!(spec, Spec::Gost(256, ..));
            if gost256 && err.is_rv(CKR_MECHANISM_INVALID) {
                err.append(
                    "this module does not take Klyuch's alias of CKM_GOSTR3410_KEY_PAIR_GEN, and \
                     the cryptoki library klyuch uses cannot name 0x1200 itself; generate the key \
                     with the vendor's tool or `pkcs11-tool --keypairgen --key-type \
                     GOSTR3410-2012-256:A`",
                )
            } else {
                err.context(format!("generating the {} key pair", spec.describe()))
            }
        })?;
    let spki = crate::cmd::csr::key_spki(&session, priv_h, Some(pub_h))?;
    let mut id = read_id(&session, priv_h)?;
    if a.id.is_none() {
        let intrinsic = klyuch_crypto::x509::public_key_attributes(&spki)
            .ok()
            .and_then(|t| intrinsic_id(&t));
        let keep = |why: String, id: &[u8]| {
            if id.is_empty() {
                eprintln!("note: {why}; the keys have no CKA_ID (set one with --id)");
            } else {
                eprintln!("note: {why}; the keys keep the ID {}", hex::encode(id));
            }
        };
        if let Some(want) = intrinsic
            && want != id
        {
            if key_exists(&session, &want)? {
                keep(
                    format!("another key already has the ID {}", hex::encode(&want)),
                    &id,
                );
            } else {
                match set_id(&session, &[pub_h, priv_h], &want) {
                    Ok(()) => id = want,
                    Err(e) => keep(
                        format!("the token did not take the ID {} ({e})", hex::encode(&want)),
                        &id,
                    ),
                }
            }
        }
    }
    let _ = session.logout();
    let pem = spki_pem(&spki)?;
    if let Some(p) = &a.out {
        std::fs::write(p, &pem)
            .map_err(|e| CliError::new(format!("writing {}: {e}", p.display())))?;
    }
    let token_label = crate::cmd::trim_label(info.label());
    println!(
        "Generated the {} key pair \"{label}\" on token \"{token_label}\" (slot {}).",
        spec.describe(),
        slot.id()
    );
    println!("CKA_ID: {}", hex::encode(&id));
    println!(
        "URI:    pkcs11:token={};id={};type=private",
        pct_text(token_label),
        pct(&id)
    );
    print!("{pem}");
    if let Some(p) = &a.out {
        eprintln!("Wrote the public key to {}", p.display());
    }
    Ok(())
}

fn read_id(session: &Session, h: ObjectHandle) -> Result<Vec<u8>> {
    Ok(session
        .get_attributes(h, &[AttributeType::Id])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(v) => Some(v),
            _ => None,
        })
        .unwrap_or_default())
}

fn set_id(session: &Session, handles: &[ObjectHandle], id: &[u8]) -> Result<()> {
    for h in handles {
        session.update_attributes(*h, &[Attribute::Id(id.to_vec())])?;
    }
    Ok(())
}

fn spki_pem(spki: &[u8]) -> Result<String> {
    let info = <spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(spki)
        .map_err(|e| CliError::new(format!("the token's public key is malformed: {e}")))?;
    info.to_pem(der::pem::LineEnding::LF)
        .map_err(|e| CliError::new(format!("cannot encode the public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types() {
        assert_eq!(parse_spec("rsa:3072").unwrap(), Spec::Rsa(3072));
        assert!(parse_spec("rsa:1024").is_err());
        assert!(parse_spec("rsa:4100").is_err());
        assert_eq!(
            parse_spec("ec:p384").unwrap(),
            Spec::Ec("1.3.132.0.34", "P-384")
        );
        assert_eq!(parse_spec("ED25519").unwrap(), Spec::Ed25519);
        assert_eq!(
            parse_spec("gost2012-256").unwrap(),
            Spec::Gost(256, "1.2.643.2.2.35.1", "A")
        );
        assert_eq!(
            parse_spec("gost2012-256:tcd").unwrap(),
            Spec::Gost(256, "1.2.643.7.1.2.1.1.4", "TCD")
        );
        assert_eq!(
            parse_spec("gost2012-512:C").unwrap(),
            Spec::Gost(512, "1.2.643.7.1.2.1.2.3", "C")
        );
        assert!(parse_spec("gost2012-512:TCA").is_err());
        assert!(parse_spec("dsa").is_err());
        assert_eq!(pct(&[1, 0xab]), "%01%ab");
        assert_eq!(pct_text("my token"), "my%20token");
    }
}
