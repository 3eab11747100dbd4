//! The crypto worker: signatures, digests, random and GOST, Klyuch and SoftHSMv2 loaded side by
//! side in this process, with the raw aws-lc-rs primitives, OpenSSL's GOST engine and the
//! `streebog` crate next to them.

use super::measure::{Group, OpResult, Runner, note, progress, run_rounds};
use super::p11::{Call, Helper, Mech, Tok, USER_PIN, call, ck, mechanism};
use super::spec::{GostOp, MSG_LEN, Part, RowKind, RowSpec, SigMech, Who};
use super::{WorkerPlan, tool_or_reason};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey,
};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki_sys::{CKA_GOSTR3410_PARAMS, CKA_GOSTR3411_PARAMS};
use std::cell::RefCell;
use std::sync::Arc;

/// DER OIDs of the curves.
pub const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// The TC26 numbers (`0xD4321000` range).
const CKK_GOSTR3410_512: u64 = 0xD432_1003;
const CKM_GOSTR3410_512: u64 = 0xD432_1006;
const CKM_GOSTR3410_WITH_GOSTR3411_12_256: u64 = 0xD432_1008;
const CKM_GOSTR3410_WITH_GOSTR3411_12_512: u64 = 0xD432_1009;
const CKM_GOSTR3411_12_256: u64 = 0xD432_1012;
/// CKM_GOSTR3410 (0x1201): below CKM_VENDOR_DEFINED, and cryptoki 0.12 has no MechanismType for
/// it, so it is measured through `cli/bench/p11_mech_speed.c`.
const CKM_GOSTR3410: u64 = 0x1201;

fn mech_of(m: SigMech) -> Mech {
    match m {
        SigMech::RsaPkcs => Mech::Sha256RsaPkcs,
        SigMech::RsaPss => Mech::Sha256RsaPss,
        SigMech::EcdsaSha256 => Mech::EcdsaSha256,
        SigMech::Ecdsa => Mech::Ecdsa,
        SigMech::Eddsa => Mech::Eddsa,
    }
}

/// The message every hash-and-sign mechanism signs, and its SHA-256 (what CKM_ECDSA signs).
fn message() -> Vec<u8> {
    (0..MSG_LEN).map(|i| (i * 7 + 1) as u8).collect()
}

fn data_of(len: usize) -> Arc<Vec<u8>> {
    Arc::new((0..len).map(|i| (i * 31 + 7) as u8).collect())
}

type Pair = (ObjectHandle, ObjectHandle);

/// The key pairs on one token (or why one could not be made).
struct TokKeys {
    rsa: Result<Pair, String>,
    p256: Result<Pair, String>,
    ed25519: Result<Pair, String>,
}

fn gen_pair(
    tok: &Tok,
    mech: Mechanism<'_>,
    id: &[u8],
    public: Vec<Attribute>,
    private: Vec<Attribute>,
) -> Result<Pair, String> {
    let mut pubt = vec![
        Attribute::Token(true),
        Attribute::Id(id.to_vec()),
        Attribute::Verify(true),
    ];
    pubt.extend(public);
    let mut privt = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Id(id.to_vec()),
        Attribute::Sign(true),
    ];
    privt.extend(private);
    let (pubk, privk) = tok
        .s
        .generate_key_pair(&mech, &pubt, &privt)
        .map_err(|e| format!("key generation: {}", ck(e)))?;
    Ok((privk, pubk))
}

fn token_keys(tok: &Tok) -> TokKeys {
    TokKeys {
        rsa: gen_pair(
            tok,
            Mechanism::RsaPkcsKeyPairGen,
            b"rsa",
            vec![
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
            ],
            vec![Attribute::Decrypt(true)],
        ),
        p256: gen_pair(
            tok,
            Mechanism::EccKeyPairGen,
            b"p256",
            vec![Attribute::EcParams(P256_OID.to_vec())],
            vec![],
        ),
        ed25519: gen_pair(
            tok,
            Mechanism::EccEdwardsKeyPairGen,
            b"ed25519",
            vec![Attribute::EcParams(ED25519_OID.to_vec())],
            vec![],
        ),
    }
}

/// The same primitives called on aws-lc-rs directly.
struct RawKeys {
    rng: aws_lc_rs::rand::SystemRandom,
    rsa: RsaKeyPair,
    rsa_pkcs_pub: ParsedPublicKey,
    rsa_pss_pub: ParsedPublicKey,
    ec: EcdsaKeyPair,
    ec_pub: ParsedPublicKey,
    ed: Ed25519KeyPair,
    ed_pub: ParsedPublicKey,
    oaep: OaepPrivateDecryptingKey,
    oaep_ct: Vec<u8>,
}

fn raw_keys() -> Result<RawKeys, String> {
    let err = |what: &str| format!("aws-lc-rs: {what}");
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| err("RSA key generation"))?;
    let parse = |alg: &'static dyn signature::VerificationAlgorithm, der: &[u8]| {
        UnparsedPublicKey::new(alg, der.to_vec())
            .parse()
            .map_err(|_| err("public key"))
    };
    let rsa_pkcs_pub = parse(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref(),
    )?;
    let rsa_pss_pub = parse(
        &signature::RSA_PSS_2048_8192_SHA256,
        rsa.public_key().as_ref(),
    )?;
    let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| err("P-256 key generation"))?;
    let ec_pub = parse(
        &signature::ECDSA_P256_SHA256_FIXED,
        ec.public_key().as_ref(),
    )?;
    let ed = Ed25519KeyPair::generate().map_err(|_| err("Ed25519 key generation"))?;
    let ed_pub = parse(&signature::ED25519, ed.public_key().as_ref())?;
    let dk =
        PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(|_| err("RSA key generation"))?;
    let ek = OaepPublicEncryptingKey::new(dk.public_key()).map_err(|_| err("OAEP key"))?;
    let mut oaep_ct = vec![0u8; ek.ciphertext_size()];
    let n = ek
        .encrypt(&OAEP_SHA1_MGF1SHA1, &[7u8; 32], &mut oaep_ct, None)
        .map_err(|_| err("OAEP encryption"))?
        .len();
    oaep_ct.truncate(n);
    let oaep = OaepPrivateDecryptingKey::new(dk).map_err(|_| err("OAEP key"))?;
    Ok(RawKeys {
        rng: aws_lc_rs::rand::SystemRandom::new(),
        rsa,
        rsa_pkcs_pub,
        rsa_pss_pub,
        ec,
        ec_pub,
        ed,
        ed_pub,
        oaep,
        oaep_ct,
    })
}

fn raw_err<E>(_: E) -> String {
    "aws-lc-rs returned an error".into()
}

/// One raw operation (shared by all threads: the keys are `Sync`).
fn raw_op(
    k: &RawKeys,
    kind: RowKind,
    msg: &[u8],
    digest: &aws_lc_rs::digest::Digest,
    sig: &[u8],
    buf: &mut Vec<u8>,
) -> OpResult {
    use std::hint::black_box;
    match kind {
        RowKind::Sig { mech, verify, .. } => match (mech, verify) {
            (SigMech::RsaPkcs | SigMech::RsaPss, false) => {
                let alg: &'static dyn signature::RsaEncoding = if mech == SigMech::RsaPkcs {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                buf.resize(k.rsa.public_modulus_len(), 0);
                k.rsa.sign(alg, &k.rng, msg, buf).map_err(raw_err)?;
            }
            (SigMech::RsaPkcs, true) => k.rsa_pkcs_pub.verify_sig(msg, sig).map_err(raw_err)?,
            (SigMech::RsaPss, true) => k.rsa_pss_pub.verify_sig(msg, sig).map_err(raw_err)?,
            (SigMech::EcdsaSha256, false) => {
                black_box(k.ec.sign(&k.rng, msg).map_err(raw_err)?);
            }
            (SigMech::EcdsaSha256, true) => k.ec_pub.verify_sig(msg, sig).map_err(raw_err)?,
            // CKM_ECDSA signs a hash the caller made: the hash is made once, outside the loop.
            (SigMech::Ecdsa, false) => {
                black_box(k.ec.sign_digest(digest).map_err(raw_err)?);
            }
            (SigMech::Ecdsa, true) => k.ec_pub.verify_digest_sig(digest, sig).map_err(raw_err)?,
            (SigMech::Eddsa, false) => {
                black_box(k.ed.sign(msg));
            }
            (SigMech::Eddsa, true) => k.ed_pub.verify_sig(msg, sig).map_err(raw_err)?,
        },
        RowKind::OaepDecrypt { .. } => {
            buf.resize(k.oaep.min_output_size(), 0);
            black_box(
                k.oaep
                    .decrypt(&OAEP_SHA1_MGF1SHA1, &k.oaep_ct, buf, None)
                    .map_err(raw_err)?,
            );
        }
        RowKind::Digest { .. } => {
            black_box(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg));
        }
        RowKind::Random { len } => {
            buf.resize(len, 0);
            aws_lc_rs::rand::fill(buf).map_err(raw_err)?;
        }
        _ => return Err("no raw aws-lc-rs operation for this row".into()),
    }
    Ok(())
}

/// The raw contender of a row.
fn raw_runner<'a>(k: &'a RawKeys, kind: RowKind) -> Result<Runner<'a>, String> {
    let (threads, msg): (usize, Arc<Vec<u8>>) = match kind {
        RowKind::Sig { threads, .. } | RowKind::OaepDecrypt { threads } => {
            (threads, Arc::new(message()))
        }
        RowKind::Digest { len } => (1, data_of(len)),
        _ => (1, Arc::new(message())),
    };
    // Signatures for the verify rows, and the prehashed ECDSA rows.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &msg);
    let sig: Arc<Vec<u8>> = Arc::new(match kind {
        RowKind::Sig {
            mech, verify: true, ..
        } => match mech {
            SigMech::RsaPkcs | SigMech::RsaPss => {
                let alg: &'static dyn signature::RsaEncoding = if mech == SigMech::RsaPkcs {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let mut s = vec![0; k.rsa.public_modulus_len()];
                k.rsa.sign(alg, &k.rng, &msg, &mut s).map_err(raw_err)?;
                s
            }
            SigMech::EcdsaSha256 => k.ec.sign(&k.rng, &msg).map_err(raw_err)?.as_ref().to_vec(),
            SigMech::Ecdsa => {
                k.ec.sign_digest(&digest)
                    .map_err(raw_err)?
                    .as_ref()
                    .to_vec()
            }
            SigMech::Eddsa => k.ed.sign(&msg).as_ref().to_vec(),
        },
        _ => Vec::new(),
    });
    let make = move || -> Box<dyn FnMut() -> OpResult + Send + 'a> {
        let (msg, sig) = (msg.clone(), sig.clone());
        let mut buf = Vec::new();
        Box::new(move || raw_op(k, kind, &msg, &digest, &sig, &mut buf))
    };
    Ok(if threads == 1 {
        Runner::One(make())
    } else {
        Runner::Threads((0..threads).map(|_| make()).collect())
    })
}

/// A PKCS#11 contender of a row: the call made on the main session (1 thread) or on a session
/// per thread.
fn token_runner<'a>(tok: &'a Tok, c: Call, threads: usize) -> Result<Runner<'a>, String> {
    // One untimed call first: a failure (mechanism not supported, ...) is reported as such.
    call(&tok.s, &c, &mut Vec::new())?;
    if threads == 1 {
        let mut buf = Vec::new();
        return Ok(Runner::One(Box::new(move || call(&tok.s, &c, &mut buf))));
    }
    let mut fs: Vec<Box<dyn FnMut() -> OpResult + Send + 'a>> = Vec::new();
    for _ in 0..threads {
        let s = tok.session()?;
        let c = c.clone();
        let mut buf = Vec::new();
        fs.push(Box::new(move || call(&s, &c, &mut buf)));
    }
    Ok(Runner::Threads(fs))
}

/// The PKCS#11 call of a standard (non-GOST) row on one token.
fn standard_call(tok: &Tok, keys: &TokKeys, kind: RowKind) -> Result<(Call, usize), String> {
    let msg = Arc::new(message());
    let pair = |m: SigMech| -> Result<Pair, String> {
        match m {
            SigMech::RsaPkcs | SigMech::RsaPss => keys.rsa.clone(),
            SigMech::EcdsaSha256 | SigMech::Ecdsa => keys.p256.clone(),
            SigMech::Eddsa => keys.ed25519.clone(),
        }
    };
    Ok(match kind {
        RowKind::Sig {
            mech,
            verify,
            threads,
        } => {
            let (privk, pubk) = pair(mech)?;
            let data = if mech == SigMech::Ecdsa {
                Arc::new(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &msg)
                        .as_ref()
                        .to_vec(),
                )
            } else {
                msg
            };
            let m = mech_of(mech);
            if verify {
                let sig = tok
                    .s
                    .sign(&mechanism(m), privk, &data)
                    .map_err(|e| format!("C_Sign: {}", ck(e)))?;
                (
                    Call::Verify {
                        mech: m,
                        key: pubk,
                        data,
                        sig: Arc::new(sig),
                    },
                    threads,
                )
            } else {
                (
                    Call::Sign {
                        mech: m,
                        key: privk,
                        data,
                    },
                    threads,
                )
            }
        }
        RowKind::OaepDecrypt { threads } => {
            let (privk, pubk) = keys.rsa.clone()?;
            let ct = tok
                .s
                .encrypt(&mechanism(Mech::RsaOaepSha1), pubk, &[7u8; 32])
                .map_err(|e| format!("C_Encrypt: {}", ck(e)))?;
            (
                Call::Decrypt {
                    mech: Mech::RsaOaepSha1,
                    key: privk,
                    data: Arc::new(ct),
                },
                threads,
            )
        }
        RowKind::Digest { len } => (
            Call::Digest {
                mech: Mech::Sha256,
                data: data_of(len),
            },
            1,
        ),
        RowKind::Random { len } => (Call::Random { len }, 1),
        RowKind::CallFloor => (Call::SessionInfo, 1),
        _ => return Err("not a standard row".into()),
    })
}

/// OpenSSL's GOST engine and the keys it generated (the same keys are imported into Klyuch).
struct GostSide {
    engine: Result<RefCell<Helper>, String>,
    /// bits → (curve OID text, private d LE, public X||Y LE)
    keys: Vec<(usize, String, Vec<u8>, Vec<u8>)>,
}

fn start_engine(plan: &WorkerPlan) -> GostSide {
    let mut keys = Vec::new();
    let engine = tool_or_reason(&plan.tools, "gost_engine_speed")
        .and_then(|p| Helper::start(&p, &[]))
        .and_then(|mut h| {
            for l in h.ask("keys", |l| l == "ok")? {
                let f: Vec<&str> = l.split(' ').collect();
                if let ["key", bits, oid, d, public] = f[..] {
                    let bits: usize = bits.parse().map_err(|_| "bad key line".to_string())?;
                    let d = hex::decode(d).map_err(|_| "bad key line".to_string())?;
                    let public = hex::decode(public).map_err(|_| "bad key line".to_string())?;
                    keys.push((bits, oid.to_string(), d, public));
                }
            }
            Ok(RefCell::new(h))
        });
    GostSide { engine, keys }
}

fn der_oid(text: &str) -> Result<Vec<u8>, String> {
    use der::Encode;
    let oid = const_oid::ObjectIdentifier::new(text).map_err(|e| format!("OID {text}: {e}"))?;
    oid.to_der().map_err(|e| format!("OID {text}: {e}"))
}

/// Import the engine's GOST key pair into Klyuch: (private, public) handles.
fn import_gost(tok: &Tok, bits: usize, oid: &str, d: &[u8], public: &[u8]) -> Result<Pair, String> {
    let key_type = if bits == 256 {
        KeyType::GOSTR3410
    } else {
        KeyType::new_vendor_defined(CKK_GOSTR3410_512).map_err(ck)?
    };
    let digest_oid = if bits == 256 {
        "1.2.643.7.1.1.2.2"
    } else {
        "1.2.643.7.1.1.2.3"
    };
    let params = |ty| Attribute::VendorDefined((AttributeType::VendorDefined(ty), Vec::new()));
    let with = |a: Attribute, v: Vec<u8>| match a {
        Attribute::VendorDefined((t, _)) => Attribute::VendorDefined((t, v)),
        other => other,
    };
    let id = format!("gost{bits}").into_bytes();
    let common = |class| -> Result<Vec<Attribute>, String> {
        Ok(vec![
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Token(true),
            Attribute::Id(id.clone()),
            with(params(CKA_GOSTR3410_PARAMS), der_oid(oid)?),
            with(params(CKA_GOSTR3411_PARAMS), der_oid(digest_oid)?),
        ])
    };
    let mut privt = common(ObjectClass::PRIVATE_KEY)?;
    privt.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Value(d.to_vec()),
    ]);
    let mut pubt = common(ObjectClass::PUBLIC_KEY)?;
    pubt.extend([Attribute::Verify(true), Attribute::Value(public.to_vec())]);
    let privk = tok
        .s
        .create_object(&privt)
        .map_err(|e| format!("importing a GOST {bits} private key: {}", ck(e)))?;
    let pubk = tok
        .s
        .create_object(&pubt)
        .map_err(|e| format!("importing a GOST {bits} public key: {}", ck(e)))?;
    Ok((privk, pubk))
}

pub fn run(plan: &WorkerPlan, specs: &[RowSpec]) {
    progress("loading the modules and making keys");
    let klyuch = Tok::open(&plan.klyuch, Who::Klyuch, "bench");
    let softhsm = Tok::open(&plan.softhsm, Who::SoftHsm, "bench");
    for t in [&klyuch, &softhsm].into_iter().flatten() {
        note(t.describe());
    }
    type Keys<'t> = Result<(&'t Tok, TokKeys), String>;
    let keys: Vec<(Who, Keys<'_>)> = [
        (Who::Klyuch, klyuch.as_ref()),
        (Who::SoftHsm, softhsm.as_ref()),
    ]
    .into_iter()
    .map(|(w, t)| (w, t.map(|t| (t, token_keys(t))).map_err(|e| e.clone())))
    .collect();
    let raw = raw_keys();

    let wants_gost = specs.iter().any(|s| s.part == Part::Gost);
    let gost = if wants_gost {
        Some(start_engine(plan))
    } else {
        None
    };
    // Klyuch's GOST keys: the engine's, imported (cryptoki 0.12 cannot name
    // CKM_GOSTR3410_KEY_PAIR_GEN = 0x1200; importing also gives both sides the same keys).
    let gost_keys: Vec<(usize, Result<Pair, String>)> = match (&gost, &klyuch) {
        (Some(g), Ok(k)) => g
            .keys
            .iter()
            .map(|(bits, oid, d, public)| (*bits, import_gost(k, *bits, oid, d, public)))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(g) = &gost {
        for (bits, oid, ..) in &g.keys {
            note(format!(
                "GOST {bits}: keys generated by the OpenSSL gost engine (curve {oid}) and \
                 imported into Klyuch with C_CreateObject"
            ));
        }
    }
    let gost_pair = |bits: usize| -> Result<Pair, String> {
        match gost_keys.iter().find(|(b, _)| *b == bits) {
            Some((_, r)) => r.clone(),
            None => Err(match (&gost, &klyuch) {
                (_, Err(e)) => e.clone(),
                (Some(GostSide { engine: Err(e), .. }), _) => {
                    format!("no GOST key to import (the engine: {e})")
                }
                _ => "no GOST key".into(),
            }),
        }
    };
    // The harness for CKM_GOSTR3410 (0x1201), started only when Klyuch has the GOST key.
    let harness: Result<RefCell<Helper>, String> = gost_pair(256).and_then(|_| {
        let path = tool_or_reason(&plan.tools, "p11_mech_speed")?;
        let module = plan.klyuch.to_string_lossy().into_owned();
        Helper::start(&path, &[&module, "bench", USER_PIN]).map(RefCell::new)
    });

    let mut groups: Vec<Group<'_>> = Vec::new();
    for spec in specs {
        let mut g = Group::new(&spec.id);
        let whos: Vec<Who> = std::iter::once(Who::Klyuch)
            .chain(spec.refs.iter().map(|(w, _)| *w))
            .collect();
        for who in whos {
            let runner: Result<Runner<'_>, String> = match (who, spec.kind) {
                (Who::Klyuch | Who::SoftHsm, RowKind::Gost(op)) => gost_runner(
                    klyuch.as_ref().map_err(Clone::clone),
                    &gost_pair,
                    &harness,
                    op,
                ),
                (Who::Klyuch | Who::SoftHsm, kind) => match keys.iter().find(|(w, _)| *w == who) {
                    Some((_, Ok((tok, k)))) => standard_call(tok, k, kind)
                        .and_then(|(c, threads)| token_runner(tok, c, threads)),
                    Some((_, Err(e))) => Err(e.clone()),
                    None => Err("not loaded".into()),
                },
                (Who::Raw, kind) => match &raw {
                    Ok(k) => raw_runner(k, kind),
                    Err(e) => Err(e.clone()),
                },
                (Who::Engine, RowKind::Gost(op)) => match gost.as_ref().map(|g| &g.engine) {
                    Some(Ok(e)) => Ok(engine_runner(e, op)),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("not started".into()),
                },
                (Who::Crate, RowKind::Gost(GostOp::Digest { len })) => {
                    let data = data_of(len);
                    Ok(Runner::One(Box::new(move || {
                        use streebog::Digest;
                        std::hint::black_box(streebog::Streebog256::digest(data.as_slice()));
                        Ok(())
                    })))
                }
                _ => Err("no such contender for this row".into()),
            };
            match runner {
                Ok(r) => g.add(who, r),
                Err(e) => g.na(who, e),
            }
        }
        groups.push(g);
    }
    run_rounds(&mut groups, plan.rounds, plan.seconds, "crypto");
}

fn engine_runner<'a>(engine: &'a RefCell<Helper>, op: GostOp) -> Runner<'a> {
    let cmd = move |secs: f64| match op {
        GostOp::Sign { bits } => format!("rate dsign {bits} {secs} {MSG_LEN}"),
        GostOp::Verify { bits } => format!("rate dverify {bits} {secs} {MSG_LEN}"),
        GostOp::RawSign { bits } => format!("rate sign {bits} {secs}"),
        GostOp::RawVerify { bits } => format!("rate verify {bits} {secs}"),
        GostOp::Digest { len } => format!("rate digest 256 {secs} {len}"),
    };
    Runner::Rate(Box::new(move |secs| engine.borrow_mut().rate(&cmd(secs))))
}

/// Klyuch's side of a GOST row.
fn gost_runner<'a>(
    tok: Result<&'a Tok, String>,
    pair: &dyn Fn(usize) -> Result<Pair, String>,
    harness: &'a Result<RefCell<Helper>, String>,
    op: GostOp,
) -> Result<Runner<'a>, String> {
    let tok = tok?;
    let na = |e: String| format!("not available: {e}");
    let msg = Arc::new(message());
    let call = match op {
        GostOp::Digest { len } => Call::Digest {
            mech: Mech::Vendor(CKM_GOSTR3411_12_256),
            data: data_of(len),
        },
        GostOp::Sign { bits } | GostOp::Verify { bits } => {
            let (privk, pubk) = pair(bits).map_err(na)?;
            let mech = Mech::Vendor(if bits == 256 {
                CKM_GOSTR3410_WITH_GOSTR3411_12_256
            } else {
                CKM_GOSTR3410_WITH_GOSTR3411_12_512
            });
            if let GostOp::Verify { .. } = op {
                let sig = tok
                    .s
                    .sign(&mechanism(mech), privk, &msg)
                    .map_err(|e| na(format!("C_Sign: {}", ck(e))))?;
                Call::Verify {
                    mech,
                    key: pubk,
                    data: msg,
                    sig: Arc::new(sig),
                }
            } else {
                Call::Sign {
                    mech,
                    key: privk,
                    data: msg,
                }
            }
        }
        GostOp::RawSign { bits: 256 } | GostOp::RawVerify { bits: 256 } => {
            pair(256).map_err(na)?;
            let h = harness.as_ref().map_err(|e| na(e.clone()))?;
            let what = if let GostOp::RawSign { .. } = op {
                "sign"
            } else {
                "verify"
            };
            let id = hex::encode(b"gost256");
            // A first call: a mechanism that is missing shows as "not available".
            h.borrow_mut()
                .rate(&format!("rate {what} {CKM_GOSTR3410:x} {id} 32 0"))
                .map_err(|e| na(format!("C_Sign(CKM_GOSTR3410): {e}")))?;
            return Ok(Runner::Rate(Box::new(move |secs| {
                h.borrow_mut()
                    .rate(&format!("rate {what} {CKM_GOSTR3410:x} {id} 32 {secs}"))
            })));
        }
        GostOp::RawSign { bits } | GostOp::RawVerify { bits } => {
            let (privk, pubk) = pair(bits).map_err(na)?;
            let mech = Mech::Vendor(CKM_GOSTR3410_512);
            let digest = Arc::new(vec![0x5a; bits / 8]);
            if let GostOp::RawVerify { .. } = op {
                let sig = tok
                    .s
                    .sign(&mechanism(mech), privk, &digest)
                    .map_err(|e| na(format!("C_Sign: {}", ck(e))))?;
                Call::Verify {
                    mech,
                    key: pubk,
                    data: digest,
                    sig: Arc::new(sig),
                }
            } else {
                Call::Sign {
                    mech,
                    key: privk,
                    data: digest,
                }
            }
        }
    };
    token_runner(tok, call, 1).map_err(na)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_encode() {
        assert_eq!(
            der_oid("1.2.643.7.1.1.2.2").unwrap(),
            [6, 8, 0x2a, 0x85, 3, 7, 1, 1, 2, 2]
        );
        assert_eq!(der_oid("1.2.840.10045.3.1.7").unwrap(), P256_OID);
    }

    #[test]
    fn raw_primitives_run() {
        let k = raw_keys().unwrap();
        for mech in SigMech::ALL {
            for verify in [false, true] {
                let mut r = raw_runner(
                    &k,
                    RowKind::Sig {
                        mech,
                        verify,
                        threads: 1,
                    },
                )
                .unwrap();
                let super::super::measure::Runner::One(f) = &mut r else {
                    panic!("one thread")
                };
                f().unwrap();
            }
        }
        let mut r = raw_runner(&k, RowKind::OaepDecrypt { threads: 2 }).unwrap();
        assert!(super::super::measure::measure_once(&mut r, 0.01).unwrap() > 0.0);
    }
}
