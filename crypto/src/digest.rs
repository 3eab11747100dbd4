//! SHA-1 and SHA-2 (FIPS 180-4) through aws-lc-rs: the `CKM_SHA*` digest mechanisms, the hash
//! half of every hash-and-sign mechanism, and [`hash`] for the PC/SC backend's host-side hashing.

use aws_lc_rs::digest;
use token_api::ck::*;
use token_api::ops::DigestOp;
use token_api::{Error, MechInfo, MechParam, Result};

use crate::registry::MechanismImpl;
use crate::util::param_invalid;

/// The hash functions of the SHA mechanisms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub const ALL: [Hash; 5] = [
        Hash::Sha1,
        Hash::Sha224,
        Hash::Sha256,
        Hash::Sha384,
        Hash::Sha512,
    ];

    /// The hash of a digest mechanism (`CKM_SHA_1`, `CKM_SHA224`, ... `CKM_SHA512`).
    pub fn from_mech(m: CK_MECHANISM_TYPE) -> Option<Hash> {
        Hash::ALL.into_iter().find(|h| h.mech() == m)
    }

    /// The hash of an MGF1 type (`CKG_MGF1_SHA1` ... `CKG_MGF1_SHA512`, PKCS#11 3.0 mechanisms
    /// §2.1.7).
    pub fn from_mgf(m: CK_RSA_PKCS_MGF_TYPE) -> Option<Hash> {
        Hash::ALL.into_iter().find(|h| h.mgf() == m)
    }

    /// The digest mechanism.
    pub fn mech(self) -> CK_MECHANISM_TYPE {
        match self {
            Hash::Sha1 => CKM_SHA_1,
            Hash::Sha224 => CKM_SHA224,
            Hash::Sha256 => CKM_SHA256,
            Hash::Sha384 => CKM_SHA384,
            Hash::Sha512 => CKM_SHA512,
        }
    }

    /// The MGF1 type with this hash.
    pub fn mgf(self) -> CK_RSA_PKCS_MGF_TYPE {
        match self {
            Hash::Sha1 => CKG_MGF1_SHA1,
            Hash::Sha224 => CKG_MGF1_SHA224,
            Hash::Sha256 => CKG_MGF1_SHA256,
            Hash::Sha384 => CKG_MGF1_SHA384,
            Hash::Sha512 => CKG_MGF1_SHA512,
        }
    }

    /// The output length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        self.alg().output_len()
    }

    pub(crate) fn alg(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha224 => &digest::SHA224,
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        }
    }

    /// One-shot hash.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.alg(), data).as_ref().to_vec()
    }

    pub(crate) fn context(self) -> digest::Context {
        digest::Context::new(self.alg())
    }

    /// The DER prefix of the `DigestInfo` for this hash (RFC 8017 §9.2, note 1): the encoding of
    /// `SEQUENCE { AlgorithmIdentifier { oid, NULL }, OCTET STRING (len) }` up to the digest.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            // id-sha1 1.3.14.3.2.26
            Hash::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            // id-sha224 2.16.840.1.101.3.4.2.4
            Hash::Sha224 => &[
                0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x04, 0x05, 0x00, 0x04, 0x1c,
            ],
            // id-sha256 2.16.840.1.101.3.4.2.1
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            // id-sha384 2.16.840.1.101.3.4.2.2
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            // id-sha512 2.16.840.1.101.3.4.2.3
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// Hash `data` with a digest mechanism (`CKM_SHA_1` ... `CKM_SHA512`); `CKR_MECHANISM_INVALID`
/// for anything else.
pub fn hash(mech: CK_MECHANISM_TYPE, data: &[u8]) -> Result<Vec<u8>> {
    Hash::from_mech(mech)
        .map(|h| h.digest(data))
        .ok_or_else(Error::mechanism_invalid)
}

/// `CKM_SHA_1`, `CKM_SHA224` .. `CKM_SHA512`.
pub(crate) struct DigestMech(pub Hash);

impl MechanismImpl for DigestMech {
    fn ty(&self) -> CK_MECHANISM_TYPE {
        self.0.mech()
    }
    fn info(&self) -> MechInfo {
        MechInfo::new(0, 0, CKF_DIGEST)
    }
    fn digest_init(&self, p: &MechParam) -> Result<Box<dyn DigestOp>> {
        if *p != MechParam::None {
            return Err(param_invalid("digest mechanisms take no parameter"));
        }
        Ok(Box::new(DigestCtx {
            hash: self.0,
            state: State::Small {
                buf: [0; SMALL],
                len: 0,
            },
        }))
    }
}

/// Inputs up to this size are hashed with aws-lc's one-shot function at the end, which is much
/// cheaper than setting up a streaming context (a `C_Digest` of a short message).
const SMALL: usize = 256;

enum State {
    Small { buf: [u8; SMALL], len: usize },
    Streaming(digest::Context),
    Done,
}

struct DigestCtx {
    hash: Hash,
    state: State,
}

impl Drop for DigestCtx {
    fn drop(&mut self) {
        // the input may be key material (C_DigestKey)
        // (only the used part: zeroize writes byte by byte)
        if let State::Small { buf, len } = &mut self.state {
            zeroize::Zeroize::zeroize(&mut buf[..*len]);
        }
    }
}

impl DigestOp for DigestCtx {
    fn digest_len(&self) -> usize {
        self.hash.len()
    }
    fn update(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.state {
            State::Small { buf, len } if *len + data.len() <= SMALL => {
                buf[*len..*len + data.len()].copy_from_slice(data);
                *len += data.len();
            }
            State::Small { buf, len } => {
                let mut c = self.hash.context();
                c.update(&buf[..*len]);
                c.update(data);
                zeroize::Zeroize::zeroize(&mut buf[..*len]);
                self.state = State::Streaming(c);
            }
            State::Streaming(c) => c.update(data),
            State::Done => return Err(Error::new(CKR_OPERATION_NOT_INITIALIZED)),
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        let out = match &mut self.state {
            State::Small { buf, len } => {
                let d = digest::digest(self.hash.alg(), &buf[..*len]);
                zeroize::Zeroize::zeroize(&mut buf[..*len]);
                *len = 0;
                d.as_ref().to_vec()
            }
            State::Streaming(_) => match std::mem::replace(&mut self.state, State::Done) {
                State::Streaming(c) => c.finish().as_ref().to_vec(),
                _ => return Err(Error::new(CKR_OPERATION_NOT_INITIALIZED)),
            },
            State::Done => return Err(Error::new(CKR_OPERATION_NOT_INITIALIZED)),
        };
        self.state = State::Done;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-4 examples, "abc" (NIST CSRC "Example Algorithms", SHA_All.pdf).
    #[test]
    fn nist_abc_vectors() {
        let cases: [(CK_MECHANISM_TYPE, &str); 5] = [
            (CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                CKM_SHA224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                CKM_SHA256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                CKM_SHA384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                CKM_SHA512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(hex::encode(hash(m, b"abc").unwrap()), want);
            // multi-part, split at every position
            let imp = DigestMech(Hash::from_mech(m).unwrap());
            let mut op = imp.digest_init(&MechParam::None).unwrap();
            op.update(b"a").unwrap();
            op.update(b"").unwrap();
            op.update(b"bc").unwrap();
            assert_eq!(op.digest_len(), want.len() / 2);
            assert_eq!(hex::encode(op.finish().unwrap()), want);
            assert_eq!(op.finish().unwrap_err().rv(), CKR_OPERATION_NOT_INITIALIZED);
        }
        assert_eq!(hash(CKM_MD5, b"").unwrap_err().rv(), CKR_MECHANISM_INVALID);
        // long inputs switch from the one-shot buffer to a streaming context
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        for h in Hash::ALL {
            for split in [0usize, 1, 255, 256, 257, 4999] {
                let mut op = DigestMech(h).digest_init(&MechParam::None).unwrap();
                op.update(&data[..split]).unwrap();
                op.update(&data[split..]).unwrap();
                assert_eq!(op.finish().unwrap(), h.digest(&data));
            }
        }
        assert_eq!(
            DigestMech(Hash::Sha256)
                .digest_init(&MechParam::Ulong(1))
                .err()
                .unwrap()
                .rv(),
            CKR_MECHANISM_PARAM_INVALID
        );
    }

    #[test]
    fn digest_info_prefixes_are_consistent() {
        for h in Hash::ALL {
            let p = h.digest_info_prefix();
            // outer SEQUENCE length covers the rest of the prefix and the digest
            assert_eq!(p[1] as usize, p.len() - 2 + h.len());
            assert_eq!(*p.last().unwrap() as usize, h.len());
        }
    }
}
