//! What is measured: the rows of the table, their contenders and their targets.
//!
//! The parent process and its workers build the same list from the same options, so a worker
//! only sends `(row id, contender, value)` and the parent knows the rest.

use serde::{Deserialize, Serialize};

/// Who performs an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Who {
    /// Klyuch's `libklyuch_pkcs11.so`, through `cryptoki` (always the first column).
    Klyuch,
    /// SoftHSMv2, through `cryptoki`.
    SoftHsm,
    /// The same primitive called on `aws-lc-rs` directly.
    Raw,
    /// OpenSSL 3 with its GOST engine (`cli/bench/gost_engine_speed.c`).
    Engine,
    /// The bare RustCrypto `streebog` crate.
    Crate,
}

impl Who {
    pub fn name(self) -> &'static str {
        match self {
            Who::Klyuch => "Klyuch",
            Who::SoftHsm => "SoftHSMv2",
            Who::Raw => "aws-lc-rs raw",
            Who::Engine => "OpenSSL gost engine",
            Who::Crate => "streebog crate",
        }
    }
}

/// How a row's values are shown. Every value is measured as operations per second; the ratio
/// is always "how many times faster Klyuch is" (Klyuch's rate / the other's rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    /// Operations per second.
    Ops,
    /// Operations on this many bytes: shown as MB/s.
    Bytes(usize),
    /// Slow one-off operations: shown as the time per operation.
    Time,
}

/// The parts of the benchmark (`--only`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Part {
    /// Signatures, verifications and RSA-OAEP decryption, 1 and 2 threads
    Sign,
    /// SHA-256 C_Digest of 64 B and 1 MiB
    Digest,
    /// C_GenerateRandom of 32 B and 1 MiB
    Random,
    /// GOST R 34.10-2012 signatures and Streebog digests (issue 3)
    Gost,
    /// Module start and C_FindObjects with many objects on the token
    Objects,
}

pub const ALL_PARTS: [Part; 5] = [
    Part::Sign,
    Part::Digest,
    Part::Random,
    Part::Gost,
    Part::Objects,
];

/// The signature mechanisms of the soft token compared with SoftHSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigMech {
    RsaPkcs,
    RsaPss,
    EcdsaSha256,
    Ecdsa,
    Eddsa,
}

impl SigMech {
    pub const ALL: [SigMech; 5] = [
        SigMech::RsaPkcs,
        SigMech::RsaPss,
        SigMech::EcdsaSha256,
        SigMech::Ecdsa,
        SigMech::Eddsa,
    ];

    fn id(self) -> &'static str {
        match self {
            SigMech::RsaPkcs => "rsa_pkcs",
            SigMech::RsaPss => "rsa_pss",
            SigMech::EcdsaSha256 => "ecdsa_sha256",
            SigMech::Ecdsa => "ecdsa",
            SigMech::Eddsa => "eddsa",
        }
    }

    fn label(self) -> &'static str {
        match self {
            SigMech::RsaPkcs => "RSA-2048 CKM_SHA256_RSA_PKCS",
            SigMech::RsaPss => "RSA-2048 CKM_SHA256_RSA_PKCS_PSS",
            SigMech::EcdsaSha256 => "P-256 CKM_ECDSA_SHA256",
            SigMech::Ecdsa => "P-256 CKM_ECDSA (32-byte hash)",
            SigMech::Eddsa => "Ed25519 CKM_EDDSA",
        }
    }

    /// Issue 2's signing target against SoftHSMv2.
    fn softhsm_target(self) -> f64 {
        match self {
            SigMech::Eddsa => 3.0,
            _ => 1.5,
        }
    }
}

/// The GOST rows (issue 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GostOp {
    /// `CKM_GOSTR3410_WITH_GOSTR3411_12_256/512` on a 64-byte message.
    Sign {
        bits: usize,
    },
    Verify {
        bits: usize,
    },
    /// `CKM_GOSTR3410` / `CKM_GOSTR3410_512` on a 32/64-byte digest.
    RawSign {
        bits: usize,
    },
    RawVerify {
        bits: usize,
    },
    /// `CKM_GOSTR3411_12_256` of `len` bytes.
    Digest {
        len: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindBy {
    Id,
    Label,
    Class,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Sig {
        mech: SigMech,
        verify: bool,
        threads: usize,
    },
    OaepDecrypt {
        threads: usize,
    },
    Digest {
        len: usize,
    },
    Random {
        len: usize,
    },
    /// `C_GetSessionInfo`: what one call into the module costs, for scale.
    CallFloor,
    Gost(GostOp),
    /// A fresh process: load, initialise, find the token, open a session, (log in), first find.
    Start {
        login: bool,
        objects: usize,
    },
    Find {
        by: FindBy,
        objects: usize,
    },
}

pub struct RowSpec {
    pub id: String,
    pub label: String,
    pub unit: Unit,
    pub part: Part,
    pub kind: RowKind,
    /// The other contenders, each with the target ratio Klyuch should reach against it.
    pub refs: Vec<(Who, Option<f64>)>,
}

/// The message signed by every hash-and-sign mechanism, and hashed by the 64-byte digests.
pub const MSG_LEN: usize = 64;
pub const MIB: usize = 1 << 20;
/// The object count at which issue 2 sets the start and find targets.
pub const TARGET_OBJECTS: usize = 10_000;

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size_name(len: usize) -> String {
    if len == MIB {
        "1 MiB".into()
    } else {
        format!("{len} B")
    }
}

fn threads_name(t: usize) -> &'static str {
    if t == 1 { "1 thread" } else { "2 threads" }
}

/// Every row of the selected parts, in table order.
pub fn rows(parts: &[Part], objects: &[usize]) -> Vec<RowSpec> {
    let mut v = Vec::new();
    let mut push = |part: Part, kind: RowKind, id: String, label: String, unit, refs| {
        if parts.contains(&part) {
            v.push(RowSpec {
                id,
                label,
                unit,
                part,
                kind,
                refs,
            });
        }
    };
    for mech in SigMech::ALL {
        for verify in [false, true] {
            for threads in [1, 2] {
                let what = if verify { "verify" } else { "sign" };
                let refs = if verify {
                    vec![(Who::SoftHsm, None), (Who::Raw, None)]
                } else {
                    vec![
                        (Who::SoftHsm, Some(mech.softhsm_target())),
                        (Who::Raw, Some(0.9)),
                    ]
                };
                push(
                    Part::Sign,
                    RowKind::Sig {
                        mech,
                        verify,
                        threads,
                    },
                    format!("{what}/{}/{threads}", mech.id()),
                    format!("{} {what}, {}", mech.label(), threads_name(threads)),
                    Unit::Ops,
                    refs,
                );
            }
        }
    }
    for threads in [1, 2] {
        push(
            Part::Sign,
            RowKind::OaepDecrypt { threads },
            format!("decrypt/rsa_oaep/{threads}"),
            format!(
                "RSA-2048 CKM_RSA_PKCS_OAEP (SHA-1, as SoftHSM requires) decrypt, {}",
                threads_name(threads)
            ),
            Unit::Ops,
            vec![(Who::SoftHsm, None), (Who::Raw, None)],
        );
    }
    for len in [MSG_LEN, MIB] {
        let soft = if len == MSG_LEN { Some(3.0) } else { None };
        push(
            Part::Digest,
            RowKind::Digest { len },
            format!("digest/sha256/{len}"),
            format!("SHA-256 C_DigestInit + C_Digest, {}", size_name(len)),
            if len == MIB {
                Unit::Bytes(len)
            } else {
                Unit::Ops
            },
            vec![(Who::SoftHsm, soft), (Who::Raw, Some(0.9))],
        );
    }
    push(
        Part::Digest,
        RowKind::CallFloor,
        "call/session_info".into(),
        "C_GetSessionInfo (the cost of one call, for scale)".into(),
        Unit::Ops,
        vec![(Who::SoftHsm, None)],
    );
    for len in [32, MIB] {
        push(
            Part::Random,
            RowKind::Random { len },
            format!("random/{len}"),
            format!("C_GenerateRandom, {}", size_name(len)),
            if len == MIB {
                Unit::Bytes(len)
            } else {
                Unit::Ops
            },
            vec![(Who::SoftHsm, None), (Who::Raw, None)],
        );
    }
    for bits in [256, 512] {
        let engine_target = vec![(Who::Engine, Some(1.0))];
        push(
            Part::Gost,
            RowKind::Gost(GostOp::Sign { bits }),
            format!("gost/sign/{bits}"),
            format!("GOST 2012-{bits} CKM_GOSTR3410_WITH_GOSTR3411_12_{bits} sign, 64 B"),
            Unit::Ops,
            engine_target.clone(),
        );
        push(
            Part::Gost,
            RowKind::Gost(GostOp::Verify { bits }),
            format!("gost/verify/{bits}"),
            format!("GOST 2012-{bits} CKM_GOSTR3410_WITH_GOSTR3411_12_{bits} verify, 64 B"),
            Unit::Ops,
            vec![(Who::Engine, None)],
        );
        let raw = if bits == 256 {
            "CKM_GOSTR3410"
        } else {
            "CKM_GOSTR3410_512"
        };
        push(
            Part::Gost,
            RowKind::Gost(GostOp::RawSign { bits }),
            format!("gost/rawsign/{bits}"),
            format!("GOST 2012-{bits} {raw} sign, {}-byte digest", bits / 8),
            Unit::Ops,
            engine_target,
        );
        push(
            Part::Gost,
            RowKind::Gost(GostOp::RawVerify { bits }),
            format!("gost/rawverify/{bits}"),
            format!("GOST 2012-{bits} {raw} verify, {}-byte digest", bits / 8),
            Unit::Ops,
            vec![(Who::Engine, None)],
        );
    }
    for len in [MSG_LEN, MIB] {
        push(
            Part::Gost,
            RowKind::Gost(GostOp::Digest { len }),
            format!("gost/digest/{len}"),
            format!(
                "Streebog-256 CKM_GOSTR3411_12_256 C_Digest, {}",
                size_name(len)
            ),
            if len == MIB {
                Unit::Bytes(len)
            } else {
                Unit::Ops
            },
            vec![(Who::Engine, None), (Who::Crate, Some(0.9))],
        );
    }
    for login in [true, false] {
        for &n in objects {
            let target = (n == TARGET_OBJECTS && login).then_some(10.0);
            push(
                Part::Objects,
                RowKind::Start { login, objects: n },
                format!("start/{}/{n}", if login { "login" } else { "public" }),
                format!(
                    "module start{}, {} objects",
                    if login {
                        " + C_Login + first C_FindObjects"
                    } else {
                        " + first C_FindObjects (no login)"
                    },
                    thousands(n)
                ),
                Unit::Time,
                vec![(Who::SoftHsm, target)],
            );
        }
    }
    for (by, name) in [
        (FindBy::Id, "CKA_ID"),
        (FindBy::Label, "CKA_LABEL"),
        (FindBy::Class, "CKA_CLASS"),
    ] {
        for &n in objects {
            let target = (n == TARGET_OBJECTS).then_some(100.0);
            push(
                Part::Objects,
                RowKind::Find { by, objects: n },
                format!("find/{name}/{n}"),
                format!("C_FindObjects by {name}, {} objects", thousands(n)),
                Unit::Time,
                vec![(Who::SoftHsm, target)],
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_targets_are_where_the_issues_put_them() {
        let rows = rows(&ALL_PARTS, &[0, 100, 1000, 10_000]);
        let mut ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n);
        let target = |id: &str, who: Who| {
            rows.iter()
                .find(|r| r.id == id)
                .and_then(|r| r.refs.iter().find(|(w, _)| *w == who))
                .and_then(|(_, t)| *t)
        };
        assert_eq!(target("sign/rsa_pkcs/1", Who::SoftHsm), Some(1.5));
        assert_eq!(target("sign/eddsa/1", Who::SoftHsm), Some(3.0));
        assert_eq!(target("sign/eddsa/1", Who::Raw), Some(0.9));
        assert_eq!(target("digest/sha256/64", Who::SoftHsm), Some(3.0));
        assert_eq!(target("find/CKA_ID/10000", Who::SoftHsm), Some(100.0));
        assert_eq!(target("find/CKA_ID/1000", Who::SoftHsm), None);
        assert_eq!(target("start/login/10000", Who::SoftHsm), Some(10.0));
        assert_eq!(target("gost/sign/512", Who::Engine), Some(1.0));
        assert_eq!(target("gost/digest/1048576", Who::Crate), Some(0.9));
    }

    #[test]
    fn only_selected_parts() {
        let rows = rows(&[Part::Digest], &[0]);
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.part == Part::Digest));
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(100), "100");
    }
}
