//! The on-disk format: frames, sealed records, and the token metadata.
//!
//! A *frame* is the unit that reaches the disk in one write:
//!
//! ```text
//! "KLY1" | kind: u8 | 0 0 0 | body_len: u32 LE | body | SHA-256(all before)[..16]
//! ```
//!
//! The checksum needs no key, so the frames of a file can be told apart from damage (a flipped
//! byte, a torn tail) before anyone has logged in. Bodies are `postcard` (serde) encodings of
//! the types below. Inside, every object is sealed with AES-256-GCM and bound to its token and
//! place by the additional data, so a frame that passes its checksum can still be refused.

use crate::seal::{self, Aead};
use serde::{Deserialize, Serialize};
use token_api::{Attribute, Error, Result, Template};
use zeroize::Zeroizing;

pub const MAGIC: [u8; 4] = *b"KLY1";
pub const HEADER_LEN: usize = 12;
pub const CHECK_LEN: usize = 16;
pub const OVERHEAD: usize = HEADER_LEN + CHECK_LEN;
/// No frame body is larger than this (a damaged length field cannot make us allocate more).
pub const MAX_BODY: usize = 64 << 20;

/// Frame kinds.
pub const KIND_RECORDS: u8 = 1;
pub const KIND_META: u8 = 2;

/// Record operations.
pub const OP_PUT: u8 = 0;
pub const OP_DELETE: u8 = 1;
/// A watermark that keeps the highest sequence number across a compaction.
pub const OP_MARK: u8 = 2;

/// The current metadata version.
pub const META_VERSION: u32 = 1;

/// Build a frame around `body`.
pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + OVERHEAD);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let c = seal::checksum(&out);
    out.extend_from_slice(&c);
    out
}

/// One intact frame found by [`scan`].
#[derive(Debug)]
pub struct FoundFrame<'a> {
    /// Offset of the frame in the scanned buffer.
    pub offset: usize,
    pub kind: u8,
    pub body: &'a [u8],
}

/// The result of scanning a buffer of frames.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    pub frames: Vec<FoundFrame<'a>>,
    /// Damaged regions followed by an intact frame (skipped, never returned as data).
    pub damaged: Vec<(usize, usize)>,
    /// Start of trailing bytes that hold no intact frame (a torn write or a damaged last frame).
    pub tail: Option<usize>,
}

impl Scan<'_> {
    /// Where the intact part of the buffer ends (the start of the tail, if any).
    pub fn valid_end(&self, len: usize) -> usize {
        self.tail.unwrap_or(len)
    }
}

/// The frame starting at `p`, if it is intact. Returns (kind, body, end).
fn frame_at(buf: &[u8], p: usize) -> Option<(u8, &[u8], usize)> {
    let rest = buf.get(p..)?;
    if rest.len() < OVERHEAD || rest[..4] != MAGIC || rest[5..8] != [0, 0, 0] {
        return None;
    }
    let len = u32::from_le_bytes(rest[8..12].try_into().ok()?) as usize;
    if len > MAX_BODY || rest.len() < OVERHEAD + len {
        return None;
    }
    let end = HEADER_LEN + len;
    if seal::checksum(&rest[..end])[..] != rest[end..end + CHECK_LEN] {
        return None;
    }
    Some((rest[4], &rest[HEADER_LEN..end], p + end + CHECK_LEN))
}

/// Split a buffer into intact frames, damaged regions and a trailing tail.
pub fn scan(buf: &[u8]) -> Scan<'_> {
    let mut s = Scan::default();
    let mut p = 0;
    while p < buf.len() {
        if let Some((kind, body, end)) = frame_at(buf, p) {
            s.frames.push(FoundFrame {
                offset: p,
                kind,
                body,
            });
            p = end;
            continue;
        }
        // Resynchronise: the next position holding an intact frame.
        let next = (p + 1..buf.len().saturating_sub(OVERHEAD - 1))
            .filter(|&q| buf[q..].starts_with(&MAGIC))
            .find(|&q| frame_at(buf, q).is_some());
        match next {
            Some(q) => {
                s.damaged.push((p, q));
                p = q;
            }
            None => {
                s.tail = Some(p);
                break;
            }
        }
    }
    s
}

/// A sealed object record: one version of one object, or its deletion.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct SealedRecord {
    /// Token-wide sequence number (strictly increasing in the log; the higher one wins).
    pub seq: u64,
    /// The object (the sequence number of the record that created it).
    pub id: u64,
    pub op: u8,
    /// Sealed with the token key (true) or the public-object key (false).
    pub private: bool,
    pub nonce: [u8; 12],
    /// AES-256-GCM ciphertext and tag of the encoded attributes (empty plaintext for deletions
    /// and marks: then only the tag, which authenticates the header).
    #[serde(with = "serde_bytes")]
    pub ct: Vec<u8>,
}

/// The additional authenticated data of a record: binds it to its token, object, version,
/// operation and key, so a record cannot be moved to another token or object or replayed as
/// another version.
pub fn record_aad(token: &[u8; 16], seq: u64, id: u64, op: u8, private: bool) -> Vec<u8> {
    let mut aad = Vec::with_capacity(48);
    aad.extend_from_slice(b"klyuch-softtoken-record-v1");
    aad.extend_from_slice(token);
    aad.extend_from_slice(&seq.to_le_bytes());
    aad.extend_from_slice(&id.to_le_bytes());
    aad.push(op);
    aad.push(private as u8);
    aad
}

/// The plaintext of a PUT record, as written (values borrowed, so no extra copies of secrets).
#[derive(Serialize)]
struct StoredAttrsRef<'a>(Vec<(u64, &'a serde_bytes::Bytes)>);

/// The plaintext of a PUT record, as read.
#[derive(Deserialize)]
struct StoredAttrs(Vec<(u64, serde_bytes::ByteBuf)>);

impl SealedRecord {
    /// Seal a PUT of `attrs`.
    pub fn put(
        aead: &Aead,
        token: &[u8; 16],
        seq: u64,
        id: u64,
        private: bool,
        attrs: &Template,
    ) -> Result<Self> {
        let plain = encode_attrs(attrs)?;
        let (nonce, ct) = aead.seal(&record_aad(token, seq, id, OP_PUT, private), &plain)?;
        Ok(SealedRecord {
            seq,
            id,
            op: OP_PUT,
            private,
            nonce,
            ct,
        })
    }

    /// Seal a header-only record (a deletion or a mark), with the public-object key.
    pub fn header_only(aead: &Aead, token: &[u8; 16], seq: u64, id: u64, op: u8) -> Result<Self> {
        let (nonce, ct) = aead.seal(&record_aad(token, seq, id, op, false), &[])?;
        Ok(SealedRecord {
            seq,
            id,
            op,
            private: false,
            nonce,
            ct,
        })
    }

    /// Check the tag and decode. `None` when the record does not authenticate.
    pub fn open(&self, aead: &Aead, token: &[u8; 16]) -> Option<Opened> {
        let aad = record_aad(token, self.seq, self.id, self.op, self.private);
        let plain = aead.open(&self.nonce, &aad, &self.ct)?;
        match self.op {
            OP_PUT => decode_attrs(&plain).map(Opened::Put),
            OP_DELETE | OP_MARK if plain.is_empty() => Some(Opened::Header),
            _ => None,
        }
    }

    /// Approximate encoded size (for compaction accounting).
    pub fn size(&self) -> usize {
        self.ct.len() + OVERHEAD + 40
    }
}

/// A record that authenticated.
pub enum Opened {
    Put(Template),
    Header,
}

fn encode_attrs(attrs: &Template) -> Result<Zeroizing<Vec<u8>>> {
    let list = StoredAttrsRef(
        attrs
            .iter()
            .map(|a| (a.ty, serde_bytes::Bytes::new(&a.value)))
            .collect(),
    );
    postcard::to_stdvec(&list)
        .map(Zeroizing::new)
        .map_err(|e| Error::general(format!("encode: {e}")))
}

fn decode_attrs(plain: &[u8]) -> Option<Template> {
    let list: StoredAttrs = postcard::from_bytes(plain).ok()?;
    Some(
        list.0
            .into_iter()
            .map(|(ty, v)| Attribute {
                ty,
                value: Zeroizing::new(v.into_vec()),
            })
            .collect(),
    )
}

/// A batch of records written together (one frame: all or nothing).
pub fn records_frame(records: &[SealedRecord]) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(records).map_err(|e| Error::general(format!("encode: {e}")))?;
    Ok(frame(KIND_RECORDS, &body))
}

pub fn decode_records(body: &[u8]) -> Option<Vec<SealedRecord>> {
    postcard::from_bytes(body).ok()
}

/// A PIN-derived wrap of the token key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Debug)]
pub struct PinWrap {
    pub salt: [u8; 16],
    pub iterations: u32,
    pub nonce: [u8; 12],
    /// AES-256-GCM of the token key under PBKDF2(PIN, salt, iterations).
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
}

/// Roles of a PIN wrap (part of its additional data).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    So = 0,
    User = 1,
}

fn wrap_aad(token: &[u8; 16], role: Role, salt: &[u8; 16], iterations: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(b"klyuch-softtoken-pin-wrap-v1");
    aad.extend_from_slice(token);
    aad.push(role as u8);
    aad.extend_from_slice(salt);
    aad.extend_from_slice(&iterations.to_le_bytes());
    aad
}

impl PinWrap {
    /// Wrap `token_key` under a PIN (slow: runs the KDF).
    pub fn new(
        token: &[u8; 16],
        role: Role,
        pin: &[u8],
        iterations: u32,
        token_key: &[u8; seal::KEY_LEN],
    ) -> Result<Self> {
        let salt: [u8; 16] = seal::random()?;
        let kek = seal::derive_kek(pin, &salt, iterations);
        Self::with_kek(token, role, &kek, salt, iterations, token_key)
    }

    fn with_kek(
        token: &[u8; 16],
        role: Role,
        kek: &[u8; seal::KEY_LEN],
        salt: [u8; 16],
        iterations: u32,
        token_key: &[u8; seal::KEY_LEN],
    ) -> Result<Self> {
        let (nonce, wrapped) =
            Aead::new(kek).seal(&wrap_aad(token, role, &salt, iterations), token_key)?;
        Ok(PinWrap {
            salt,
            iterations,
            nonce,
            wrapped,
        })
    }

    /// Unwrap with a key-encryption key already derived from a PIN. `None`: wrong PIN.
    pub fn unwrap_with(
        &self,
        token: &[u8; 16],
        role: Role,
        kek: &[u8; seal::KEY_LEN],
    ) -> Option<seal::SecretKey> {
        let aad = wrap_aad(token, role, &self.salt, self.iterations);
        let plain = Aead::new(kek).open(&self.nonce, &aad, &self.wrapped)?;
        let key: [u8; seal::KEY_LEN] = plain.as_slice().try_into().ok()?;
        Some(Zeroizing::new(key))
    }
}

/// The token metadata (the `meta` file, two identical frames).
///
/// `k_pub` is the public-object key in the clear: public objects must be readable before login,
/// so anyone who can read this file can read (and forge) public objects. See the crate docs.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub version: u32,
    /// Random per initialisation: binds every record and wrap to this incarnation of the token.
    pub uuid: [u8; 16],
    pub serial: String,
    pub label: String,
    /// The source-local slot number, stable across restarts.
    pub slot: u64,
    pub k_pub: [u8; seal::KEY_LEN],
    pub so: PinWrap,
    pub user: Option<PinWrap>,
    pub so_failures: u32,
    pub user_failures: u32,
    /// First sequence number of this incarnation (random, so that object ids of a re-initialised
    /// token do not repeat the old ones).
    pub seq_base: u64,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("serial", &self.serial)
            .field("label", &self.label)
            .field("slot", &self.slot)
            .field("user_pin", &self.user.is_some())
            .field("so_failures", &self.so_failures)
            .field("user_failures", &self.user_failures)
            .finish_non_exhaustive()
    }
}

impl Meta {
    /// The metadata file contents: the same frame twice, so one damaged copy leaves the other.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let body = postcard::to_stdvec(self).map_err(|e| Error::general(format!("encode: {e}")))?;
        let f = frame(KIND_META, &body);
        let mut out = f.clone();
        out.extend_from_slice(&f);
        Ok(out)
    }

    /// Parse a metadata file: the first intact copy of a supported version.
    pub fn decode(buf: &[u8]) -> Option<Meta> {
        let s = scan(buf);
        s.frames
            .iter()
            .filter(|f| f.kind == KIND_META)
            .filter_map(|f| postcard::from_bytes::<Meta>(f.body).ok())
            .find(|m| m.version == META_VERSION)
    }

    pub fn wrap(&self, role: Role) -> Option<&PinWrap> {
        match role {
            Role::So => Some(&self.so),
            Role::User => self.user.as_ref(),
        }
    }

    pub fn failures(&self, role: Role) -> u32 {
        match role {
            Role::So => self.so_failures,
            Role::User => self.user_failures,
        }
    }

    pub fn failures_mut(&mut self, role: Role) -> &mut u32 {
        match role {
            Role::So => &mut self.so_failures,
            Role::User => &mut self.user_failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_api::ck::*;

    #[test]
    fn frames_scan_and_resync() {
        let a = frame(KIND_RECORDS, b"first");
        let b = frame(KIND_RECORDS, b"second");
        let c = frame(KIND_RECORDS, b"third");
        let mut buf = [a.clone(), b.clone(), c.clone()].concat();
        let s = scan(&buf);
        assert_eq!(s.frames.len(), 3);
        assert!(s.damaged.is_empty() && s.tail.is_none());
        // Damage the middle frame: the other two survive.
        buf[a.len() + 14] ^= 0x40;
        let s = scan(&buf);
        let bodies: Vec<&[u8]> = s.frames.iter().map(|f| f.body).collect();
        assert_eq!(bodies, vec![&b"first"[..], &b"third"[..]]);
        assert_eq!(s.damaged, vec![(a.len(), a.len() + b.len())]);
        // A torn tail.
        let mut buf = [a.clone(), b.clone()].concat();
        buf.extend_from_slice(&c[..c.len() - 3]);
        let s = scan(&buf);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.tail, Some(a.len() + b.len()));
        assert_eq!(s.valid_end(buf.len()), a.len() + b.len());
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let f = frame(KIND_META, b"payload");
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                let s = scan(&g);
                assert!(s.frames.is_empty(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn records_bind_token_and_id() {
        let k = seal::random_key().unwrap();
        let aead = Aead::new(&k);
        let tok = [7u8; 16];
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_DATA);
        t.set(CKA_VALUE, b"v".to_vec());
        let r = SealedRecord::put(&aead, &tok, 5, 5, false, &t).unwrap();
        match r.open(&aead, &tok) {
            Some(Opened::Put(back)) => assert_eq!(back, t),
            _ => panic!("did not open"),
        }
        assert!(r.open(&aead, &[8u8; 16]).is_none());
        let mut moved = r.clone();
        moved.id = 6;
        assert!(moved.open(&aead, &tok).is_none());
        let mut replayed = r.clone();
        replayed.seq = 9;
        assert!(replayed.open(&aead, &tok).is_none());
        let d = SealedRecord::header_only(&aead, &tok, 6, 5, OP_DELETE).unwrap();
        assert!(matches!(d.open(&aead, &tok), Some(Opened::Header)));
    }

    #[test]
    fn pin_wrap() {
        let tok = [1u8; 16];
        let key = seal::random_key().unwrap();
        let w = PinWrap::new(&tok, Role::User, b"1234", 1000, &key).unwrap();
        let kek = seal::derive_kek(b"1234", &w.salt, w.iterations);
        assert_eq!(w.unwrap_with(&tok, Role::User, &kek).unwrap(), key);
        assert!(w.unwrap_with(&tok, Role::So, &kek).is_none());
        let bad = seal::derive_kek(b"1235", &w.salt, w.iterations);
        assert!(w.unwrap_with(&tok, Role::User, &bad).is_none());
    }
}
