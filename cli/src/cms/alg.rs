//! The algorithms of a CMS signature: the digest (hashed on the host, streamed), the token
//! mechanism that signs the signed attributes, and the AlgorithmIdentifiers that name them.

use crate::describe::CKK_GOSTR3410_512;
use crate::error::{CliError, Result};
use crate::tokenkey::{
    CKM_GOSTR3410_WITH_GOSTR3411_12_256, CKM_GOSTR3410_WITH_GOSTR3411_12_512, vendor,
};
use const_oid::ObjectIdentifier;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki_sys::*;
use der::{Any, Decode, Encode};
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef, SubjectPublicKeyInfoOwned};
use std::io::Read;
use std::path::Path;

/// sha256 / sha384 / sha512 (RFC 5754 §2; NIST CSOR 2.16.840.1.101.3.4.2.1/2/3).
pub const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
/// id-tc26-gost3411-12-256 / -512 (RFC 9215 §2, gost-pkcs11.md §2.3).
pub const STREEBOG256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.2.2");
pub const STREEBOG512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.2.3");
/// rsaEncryption (RFC 8017 A.1; RFC 3370 §3.2 names it as the CMS signature algorithm).
pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// sha256/384/512WithRSAEncryption (RFC 8017 A.2.4, RFC 5754 §3.2).
pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
pub const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
/// id-RSASSA-PSS and id-mgf1 (RFC 4055 §3.1, RFC 8017 A.2.3).
pub const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
pub const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// ecdsa-with-SHA256/384/512 (RFC 5758 §3.2, RFC 5753 §2.1.1).
pub const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
/// id-tc26-gost3410-12-256 / -512: the key OIDs, which OpenSSL's GOST engine puts in the
/// SignerInfo signatureAlgorithm (as RFC 4490 §3.2 does for 2001 keys) (RFC 9215 §2).
pub const GOST_KEY_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.1.1");
pub const GOST_KEY_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.1.2");
/// id-tc26-signwithdigest-gost3410-12-256 / -512 (RFC 9215 §3): X.509 signatures, and accepted
/// in CMS too.
pub const GOST_SIGN_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.3.2");
pub const GOST_SIGN_512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.643.7.1.1.3.3");
/// id-ecPublicKey (RFC 5480 §2.1.1).
pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// CKM_GOSTR3410_512 (TC26: the 64-byte Streebog-512 digest in; gost-pkcs11.md §1.2).
const CKM_GOSTR3410_512_RAW: CK_MECHANISM_TYPE = 0xD432_1006;

/// Read size for hashing files: large enough to be fast, small enough to stay constant memory.
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlg {
    Sha256,
    Sha384,
    Sha512,
    Streebog256,
    Streebog512,
}

pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Streebog256(streebog::Streebog256),
    Streebog512(streebog::Streebog512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
            Hasher::Streebog256(h) => h.update(data),
            Hasher::Streebog512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
            Hasher::Streebog256(h) => h.finalize().to_vec(),
            Hasher::Streebog512(h) => h.finalize().to_vec(),
        }
    }
}

impl DigestAlg {
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlg::Sha256 => SHA256,
            DigestAlg::Sha384 => SHA384,
            DigestAlg::Sha512 => SHA512,
            DigestAlg::Streebog256 => STREEBOG256,
            DigestAlg::Streebog512 => STREEBOG512,
        }
    }

    pub fn from_oid(oid: &ObjectIdentifier) -> Option<DigestAlg> {
        [
            DigestAlg::Sha256,
            DigestAlg::Sha384,
            DigestAlg::Sha512,
            DigestAlg::Streebog256,
            DigestAlg::Streebog512,
        ]
        .into_iter()
        .find(|d| d.oid() == *oid)
    }

    pub fn name(self) -> &'static str {
        match self {
            DigestAlg::Sha256 => "SHA-256",
            DigestAlg::Sha384 => "SHA-384",
            DigestAlg::Sha512 => "SHA-512",
            DigestAlg::Streebog256 => "Streebog-256 (GOST R 34.11-2012)",
            DigestAlg::Streebog512 => "Streebog-512 (GOST R 34.11-2012)",
        }
    }

    /// The DigestAlgorithmIdentifier: SHA-2 without parameters (RFC 5754 §2: "absent"); the
    /// Streebog OIDs with NULL, as OpenSSL's GOST engine writes them (RFC 4490 §2.1 asks the
    /// same for the older GOST hash).
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        let parameters = match self {
            DigestAlg::Streebog256 | DigestAlg::Streebog512 => Some(Any::null()),
            _ => None,
        };
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            DigestAlg::Sha256 => Hasher::Sha256(Default::default()),
            DigestAlg::Sha384 => Hasher::Sha384(Default::default()),
            DigestAlg::Sha512 => Hasher::Sha512(Default::default()),
            DigestAlg::Streebog256 => Hasher::Streebog256(Default::default()),
            DigestAlg::Streebog512 => Hasher::Streebog512(Default::default()),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }

    /// The digest of a file, read in chunks (constant memory whatever the size); also the
    /// number of bytes read.
    pub fn digest_file(self, path: &Path) -> Result<(Vec<u8>, u64)> {
        self.digest_file_range(path, 0, None)
    }

    /// The digest of `len` bytes (or all) of a file from `offset`, read in chunks; also the
    /// number of bytes read. A file shorter than `len` is an error.
    pub fn digest_file_range(
        self,
        path: &Path,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(Vec<u8>, u64)> {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::open(path)
            .map_err(|e| CliError::new(format!("cannot open {}: {e}", path.display())))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| CliError::new(format!("reading {}: {e}", path.display())))?;
        // the bar's length: the range, else what is left of the file
        let size = match len {
            Some(l) => l,
            None => f
                .metadata()
                .map(|m| m.len().saturating_sub(offset))
                .unwrap_or(0),
        };
        let pb = crate::progress::bytes(size, format!("hashing {}", path.display()));
        let mut f = f.take(len.unwrap_or(u64::MAX));
        let mut h = self.hasher();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CliError::new(format!("reading {}: {e}", path.display())));
                }
            };
            h.update(&buf[..n]);
            total += n as u64;
            pb.inc(n as u64);
        }
        pb.finish_and_clear();
        if len.is_some_and(|l| l != total) {
            return Err(CliError::new(format!(
                "{} is shorter than its content length says (truncated)",
                path.display()
            )));
        }
        Ok((h.finish(), total))
    }

    /// The PKCS#11 digest mechanism (for PSS parameters).
    fn mechanism_type(self) -> MechanismType {
        match self {
            DigestAlg::Sha384 => MechanismType::SHA384,
            DigestAlg::Sha512 => MechanismType::SHA512,
            _ => MechanismType::SHA256,
        }
    }
}

/// What signs: the key kind decides the signature format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigKind {
    RsaPkcs1,
    RsaPss,
    /// `half` = the byte length of r (and of s): the curve's order size.
    Ecdsa {
        half: usize,
    },
    Gost256,
    Gost512,
}

/// The algorithms of one signature.
#[derive(Clone, Copy, Debug)]
pub struct SignAlg {
    pub digest: DigestAlg,
    pub kind: SigKind,
}

/// The field size in bytes of the EC curve of an SPKI (from the point length: 65 → P-256).
fn ec_half(spki: &SubjectPublicKeyInfoOwned) -> usize {
    let n = spki.subject_public_key.raw_bytes().len();
    n.saturating_sub(1) / 2
}

impl SignAlg {
    /// For a token key: GOST keys sign with Streebog of their size; RSA with SHA-256 (PKCS#1
    /// v1.5, or PSS with `pss`); ECDSA with SHA-256/384/512 by curve size (RFC 5753 §2.1.1
    /// pairs the hash with the curve).
    pub fn for_key(
        key_type: CK_KEY_TYPE,
        spki: &SubjectPublicKeyInfoOwned,
        pss: bool,
    ) -> Result<SignAlg> {
        if pss && key_type != CKK_RSA {
            return Err(CliError::usage(
                "--pss is for RSA keys only; this key is not an RSA key",
            ));
        }
        Ok(match key_type {
            CKK_RSA => SignAlg {
                digest: DigestAlg::Sha256,
                kind: if pss {
                    SigKind::RsaPss
                } else {
                    SigKind::RsaPkcs1
                },
            },
            CKK_EC => {
                let half = ec_half(spki);
                let digest = match half {
                    0..=32 => DigestAlg::Sha256,
                    33..=48 => DigestAlg::Sha384,
                    _ => DigestAlg::Sha512,
                };
                SignAlg {
                    digest,
                    kind: SigKind::Ecdsa { half },
                }
            }
            CKK_GOSTR3410 => SignAlg {
                digest: DigestAlg::Streebog256,
                kind: SigKind::Gost256,
            },
            CKK_GOSTR3410_512 => SignAlg {
                digest: DigestAlg::Streebog512,
                kind: SigKind::Gost512,
            },
            other => {
                return Err(CliError::new(format!(
                    "cannot make a CMS signature with a {} key (RSA, EC and GOST R 34.10-2012 \
                     keys can)",
                    crate::describe::key_type_name(other)
                )));
            }
        })
    }

    /// PSS: salt as long as the hash, MGF1 with the same hash (RFC 4055 §3.1 recommends so;
    /// OpenSSL's `-keyopt rsa_padding_mode:pss` default "digest" salt length is the same).
    fn pss_params(self) -> PkcsPssParams {
        let (mgf, len) = match self.digest {
            DigestAlg::Sha384 => (PkcsMgfType::MGF1_SHA384, 48u64),
            DigestAlg::Sha512 => (PkcsMgfType::MGF1_SHA512, 64),
            _ => (PkcsMgfType::MGF1_SHA256, 32),
        };
        PkcsPssParams {
            hash_alg: self.digest.mechanism_type(),
            mgf,
            s_len: len.into(),
        }
    }

    /// The token mechanism that hashes the signed attributes and signs them.
    pub fn mechanism(self) -> Result<Mechanism<'static>> {
        Ok(match (self.kind, self.digest) {
            (SigKind::RsaPkcs1, DigestAlg::Sha384) => Mechanism::Sha384RsaPkcs,
            (SigKind::RsaPkcs1, DigestAlg::Sha512) => Mechanism::Sha512RsaPkcs,
            (SigKind::RsaPkcs1, _) => Mechanism::Sha256RsaPkcs,
            (SigKind::RsaPss, DigestAlg::Sha384) => Mechanism::Sha384RsaPkcsPss(self.pss_params()),
            (SigKind::RsaPss, DigestAlg::Sha512) => Mechanism::Sha512RsaPkcsPss(self.pss_params()),
            (SigKind::RsaPss, _) => Mechanism::Sha256RsaPkcsPss(self.pss_params()),
            (SigKind::Ecdsa { .. }, DigestAlg::Sha384) => Mechanism::EcdsaSha384,
            (SigKind::Ecdsa { .. }, DigestAlg::Sha512) => Mechanism::EcdsaSha512,
            (SigKind::Ecdsa { .. }, _) => Mechanism::EcdsaSha256,
            (SigKind::Gost256, _) => vendor(CKM_GOSTR3410_WITH_GOSTR3411_12_256)?,
            (SigKind::Gost512, _) => vendor(CKM_GOSTR3410_WITH_GOSTR3411_12_512)?,
        })
    }

    /// The mechanism that signs a digest computed on the host, for modules without the
    /// hash-and-sign one: CKM_ECDSA, CKM_GOSTR3410_512 (0xD4321006, TC26; gost-pkcs11.md §1.2).
    /// `None` for RSA (modules have CKM_SHA256_RSA_PKCS[_PSS]) and for GOST-256: its raw
    /// CKM_GOSTR3410 (0x1201) lies below the vendor range and cryptoki 0.12 has no way to name
    /// it.
    pub fn raw_mechanism(self) -> Result<Option<Mechanism<'static>>> {
        Ok(match self.kind {
            SigKind::Ecdsa { .. } => Some(Mechanism::Ecdsa),
            SigKind::Gost512 => Some(vendor(CKM_GOSTR3410_512_RAW)?),
            SigKind::Gost256 | SigKind::RsaPkcs1 | SigKind::RsaPss => None,
        })
    }

    /// The SignerInfo signatureAlgorithm: rsaEncryption with NULL (RFC 3370 §3.2, as OpenSSL
    /// writes it), id-RSASSA-PSS with its parameters (RFC 4056 §2), ecdsa-with-SHAx without
    /// parameters (RFC 5753 §2.1.1), the GOST key OID with NULL (as OpenSSL's GOST engine).
    pub fn signature_identifier(self) -> Result<AlgorithmIdentifierOwned> {
        let der_err = |e: der::Error| CliError::new(format!("cannot encode the algorithm: {e}"));
        let alg = |oid, parameters| AlgorithmIdentifierOwned { oid, parameters };
        Ok(match self.kind {
            SigKind::RsaPkcs1 => alg(RSA_ENCRYPTION, Some(Any::null())),
            SigKind::RsaPss => {
                let hash = AlgorithmIdentifierRef {
                    oid: self.digest.oid(),
                    parameters: Some(der::AnyRef::NULL),
                };
                let p = pkcs1::RsaPssParams {
                    hash,
                    mask_gen: spki::AlgorithmIdentifier {
                        oid: MGF1,
                        parameters: Some(hash),
                    },
                    salt_len: self.digest_len() as u8,
                    trailer_field: Default::default(),
                };
                let params = Any::from_der(&p.to_der().map_err(der_err)?).map_err(der_err)?;
                alg(RSASSA_PSS, Some(params))
            }
            SigKind::Ecdsa { .. } => alg(
                match self.digest {
                    DigestAlg::Sha384 => ECDSA_SHA384,
                    DigestAlg::Sha512 => ECDSA_SHA512,
                    _ => ECDSA_SHA256,
                },
                None,
            ),
            SigKind::Gost256 => alg(GOST_KEY_256, Some(Any::null())),
            SigKind::Gost512 => alg(GOST_KEY_512, Some(Any::null())),
        })
    }

    fn digest_len(self) -> usize {
        match self.digest {
            DigestAlg::Sha384 => 48,
            DigestAlg::Sha512 | DigestAlg::Streebog512 => 64,
            _ => 32,
        }
    }

    /// Plain words for the user.
    pub fn describe(self) -> String {
        let sig = match self.kind {
            SigKind::RsaPkcs1 => "RSA PKCS#1 v1.5",
            SigKind::RsaPss => "RSA-PSS",
            SigKind::Ecdsa { .. } => "ECDSA",
            SigKind::Gost256 => "GOST R 34.10-2012 (256-bit key)",
            SigKind::Gost512 => "GOST R 34.10-2012 (512-bit key)",
        };
        format!("{sig} with {}", self.digest.name())
    }

    /// The PKCS#11 mechanism number and parameter that verify this on the host
    /// (`klyuch-crypto`), given the signature bytes as CMS carries them; returns the bytes as
    /// PKCS#11 takes them.
    pub fn host_verifier(
        self,
        signature: &[u8],
    ) -> Option<(CK_MECHANISM_TYPE, token_api::MechParam, Vec<u8>)> {
        use token_api::MechParam;
        let d = self.digest;
        let sha = |a, b, c| match d {
            DigestAlg::Sha384 => b,
            DigestAlg::Sha512 => c,
            _ => a,
        };
        Some(match self.kind {
            SigKind::RsaPkcs1 => (
                sha(
                    CKM_SHA256_RSA_PKCS,
                    CKM_SHA384_RSA_PKCS,
                    CKM_SHA512_RSA_PKCS,
                ),
                MechParam::None,
                signature.to_vec(),
            ),
            SigKind::RsaPss => (
                sha(
                    CKM_SHA256_RSA_PKCS_PSS,
                    CKM_SHA384_RSA_PKCS_PSS,
                    CKM_SHA512_RSA_PKCS_PSS,
                ),
                MechParam::RsaPss {
                    hash: sha(CKM_SHA256, CKM_SHA384, CKM_SHA512),
                    mgf: sha(CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512),
                    salt_len: self.digest_len() as CK_ULONG,
                },
                signature.to_vec(),
            ),
            SigKind::Ecdsa { half } => (
                sha(CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512),
                MechParam::None,
                crate::tokenkey::ecdsa_raw(signature, half)?,
            ),
            SigKind::Gost256 => (
                CKM_GOSTR3410_WITH_GOSTR3411_12_256,
                MechParam::None,
                signature.to_vec(),
            ),
            SigKind::Gost512 => (
                CKM_GOSTR3410_WITH_GOSTR3411_12_512,
                MechParam::None,
                signature.to_vec(),
            ),
        })
    }
}

/// Which signature a (signatureAlgorithm, digestAlgorithm, signer key) triple is, for
/// verification: of a CMS SignerInfo, or of a certificate (then `digest` is `None` and the
/// signature algorithm names the hash). PSS parameters other than "MGF1 with the same hash,
/// salt as long as the hash" are refused.
pub fn sign_alg_of(
    sig: &AlgorithmIdentifierOwned,
    digest: Option<DigestAlg>,
    key: &spki::SubjectPublicKeyInfoOwned,
) -> Result<SignAlg> {
    let unsupported = || {
        CliError::new(format!(
            "the signature algorithm {} is not supported",
            sig.oid
        ))
    };
    let key_oid = key.algorithm.oid;
    let by_sig_oid = [
        (SHA256_WITH_RSA, DigestAlg::Sha256, SigKind::RsaPkcs1),
        (SHA384_WITH_RSA, DigestAlg::Sha384, SigKind::RsaPkcs1),
        (SHA512_WITH_RSA, DigestAlg::Sha512, SigKind::RsaPkcs1),
        (ECDSA_SHA256, DigestAlg::Sha256, SigKind::Ecdsa { half: 0 }),
        (ECDSA_SHA384, DigestAlg::Sha384, SigKind::Ecdsa { half: 0 }),
        (ECDSA_SHA512, DigestAlg::Sha512, SigKind::Ecdsa { half: 0 }),
        (GOST_SIGN_256, DigestAlg::Streebog256, SigKind::Gost256),
        (GOST_SIGN_512, DigestAlg::Streebog512, SigKind::Gost512),
        (GOST_KEY_256, DigestAlg::Streebog256, SigKind::Gost256),
        (GOST_KEY_512, DigestAlg::Streebog512, SigKind::Gost512),
    ];
    let mut out = if sig.oid == RSA_ENCRYPTION {
        SignAlg {
            digest: digest.ok_or_else(unsupported)?,
            kind: SigKind::RsaPkcs1,
        }
    } else if sig.oid == RSASSA_PSS {
        let params = sig.parameters.as_ref().ok_or_else(unsupported)?;
        let params_der = params.to_der().map_err(|_| unsupported())?;
        let p = pkcs1::RsaPssParams::<Any>::from_der(&params_der).map_err(|_| unsupported())?;
        let d = DigestAlg::from_oid(&p.hash.oid).ok_or_else(unsupported)?;
        let mgf_hash = p.mask_gen.parameters.as_ref().map(|h| h.oid);
        let a = SignAlg {
            digest: d,
            kind: SigKind::RsaPss,
        };
        if p.mask_gen.oid != MGF1
            || mgf_hash != Some(d.oid())
            || usize::from(p.salt_len) != a.digest_len()
        {
            return Err(CliError::new(
                "RSA-PSS parameters other than MGF1 with the same hash and a salt as long as the \
                 hash are not supported",
            ));
        }
        a
    } else if let Some((_, d, kind)) = by_sig_oid.iter().find(|(o, _, _)| *o == sig.oid) {
        SignAlg {
            digest: digest.unwrap_or(*d),
            kind: *kind,
        }
    } else {
        return Err(unsupported());
    };
    // the key must be of the kind the algorithm says
    let key_ok = match out.kind {
        SigKind::RsaPkcs1 | SigKind::RsaPss => key_oid == RSA_ENCRYPTION,
        SigKind::Ecdsa { .. } => key_oid == EC_PUBLIC_KEY,
        SigKind::Gost256 => key_oid == GOST_KEY_256,
        SigKind::Gost512 => key_oid == GOST_KEY_512,
    };
    if !key_ok {
        return Err(CliError::new(format!(
            "the signature algorithm {} does not fit the signer's {} key",
            sig.oid, key_oid
        )));
    }
    if let SigKind::Ecdsa { .. } = out.kind {
        out.kind = SigKind::Ecdsa { half: ec_half(key) };
    }
    Ok(out)
}
