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
use std::sync::Arc;
use token_api::ck::CK_ATTRIBUTE_TYPE;
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
/// The last record of a log that was replaced (compaction) or left behind (re-initialisation):
/// written under the exclusive lock just before the rename, so a process that has the old file
/// open learns from the file itself that it must open the log again by its path. A marker left
/// by a crash before the rename is recognised as stale (the path still names the same file and
/// the metadata the same incarnation) and skipped.
pub const OP_SUPERSEDED: u8 = 3;

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

/// Bytes that live in a shared buffer: the ciphertexts of the records read from a log stay in
/// the one buffer the log was read into (no allocation and no copy per record).
#[derive(Clone)]
pub struct SharedBytes {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl SharedBytes {
    pub fn new(v: Vec<u8>) -> Self {
        let end = v.len();
        SharedBytes {
            buf: Arc::new(v),
            start: 0,
            end,
        }
    }

    /// `part`, which must lie inside `buf`, as a shared slice of it.
    pub fn slice_of(buf: &Arc<Vec<u8>>, part: &[u8]) -> Option<Self> {
        let base = buf.as_ptr() as usize;
        let start = (part.as_ptr() as usize).checked_sub(base)?;
        let end = start.checked_add(part.len())?;
        (end <= buf.len()).then(|| SharedBytes {
            buf: buf.clone(),
            start,
            end,
        })
    }
}

impl std::ops::Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl PartialEq for SharedBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SharedBytes {}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
}

/// A sealed object record: one version of one object, or its deletion.
#[derive(Clone, Serialize, PartialEq, Eq, Debug)]
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
    pub ct: SharedBytes,
}

/// [`SealedRecord`] as decoded, borrowing its ciphertext from the frame.
struct RecordRef<'a> {
    seq: u64,
    id: u64,
    op: u8,
    private: bool,
    nonce: [u8; 12],
    ct: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Decode one record of a frame body at `*p`: the `postcard` encoding of [`SealedRecord`]
    /// (varint seq and id, the op byte, a bool byte, the 12 nonce bytes, varint length and the
    /// ciphertext), read by hand because this runs once per record when a token opens.
    fn decode(b: &'a [u8], p: &mut usize) -> Option<Self> {
        let seq = varint(b, p)?;
        let id = varint(b, p)?;
        let op = *b.get(*p)?;
        let private = match *b.get(*p + 1)? {
            0 => false,
            1 => true,
            _ => return None,
        };
        *p += 2;
        let nonce: [u8; 12] = b.get(*p..*p + 12)?.try_into().ok()?;
        *p += 12;
        let len = usize::try_from(varint(b, p)?).ok()?;
        let ct = b.get(*p..p.checked_add(len)?)?;
        *p += len;
        Some(RecordRef {
            seq,
            id,
            op,
            private,
            nonce,
            ct,
        })
    }

    fn to_record(&self, ct: SharedBytes) -> SealedRecord {
        SealedRecord {
            seq: self.seq,
            id: self.id,
            op: self.op,
            private: self.private,
            nonce: self.nonce,
            ct,
        }
    }
}

/// Decode a record frame's body (a `postcard` list of records): all of them or none.
fn decode_list<'a>(body: &'a [u8]) -> Option<Vec<RecordRef<'a>>> {
    let mut p = 0;
    let n = usize::try_from(varint(body, &mut p)?).ok()?;
    // Every record takes at least 17 bytes: a damaged count cannot make us allocate much.
    let mut out = Vec::with_capacity(n.min(body.len() / 17));
    for _ in 0..n {
        out.push(RecordRef::decode(body, &mut p)?);
    }
    Some(out)
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
            ct: SharedBytes::new(ct),
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
            ct: SharedBytes::new(ct),
        })
    }

    /// Check the tag and decode. `None` when the record does not authenticate.
    pub fn open(&self, aead: &Aead, token: &[u8; 16]) -> Option<Opened> {
        match self.op {
            OP_PUT => self
                .open_plain(aead, token)
                .map(|p| Opened::Put(p.to_template())),
            _ => self.open_header(aead, token).then_some(Opened::Header),
        }
    }

    /// Check the tag of a PUT record and return its attribute encoding, checked but not
    /// decoded. `None` when the record does not authenticate or does not decode.
    pub fn open_plain(&self, aead: &Aead, token: &[u8; 16]) -> Option<Plain> {
        if self.op != OP_PUT {
            return None;
        }
        let aad = record_aad(token, self.seq, self.id, self.op, self.private);
        Plain::new(aead.open(&self.nonce, &aad, &self.ct)?)
    }

    /// Check the tag of a header-only record (deletion, mark, superseded marker).
    pub fn open_header(&self, aead: &Aead, token: &[u8; 16]) -> bool {
        if !matches!(self.op, OP_DELETE | OP_MARK | OP_SUPERSEDED) {
            return false;
        }
        let aad = record_aad(token, self.seq, self.id, self.op, self.private);
        aead.open(&self.nonce, &aad, &self.ct)
            .is_some_and(|p| p.is_empty())
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
    // Room for everything up front (a varint is at most 10 bytes): a growing Vec would leave
    // copies of the plaintext in freed memory at each reallocation.
    let cap = 10 + attrs.iter().map(|a| a.value.len() + 20).sum::<usize>();
    postcard::to_extend(&list, Vec::with_capacity(cap))
        .map(Zeroizing::new)
        .map_err(|e| Error::general(format!("encode: {e}")))
}

/// Read a postcard varint (LEB128, at most 10 bytes for a u64) at `*p`.
#[inline]
fn varint(b: &[u8], p: &mut usize) -> Option<u64> {
    let byte = *b.get(*p)?;
    if byte < 0x80 {
        *p += 1;
        return Some(u64::from(byte));
    }
    // Two bytes: attribute types 0x80..0x3fff (CKA_ID, CKA_EC_POINT, ...) and most lengths.
    if let Some(&second) = b.get(*p + 1)
        && second < 0x80
    {
        *p += 2;
        return Some(u64::from(byte & 0x7f) | (u64::from(second) << 7));
    }
    varint_long(b, p)
}

fn varint_long(b: &[u8], p: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let byte = *b.get(*p)?;
        *p += 1;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return None; // more than 64 bits
        }
        v |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The decrypted attribute encoding of a PUT record (`postcard` of a list of (type, value)):
/// checked once when made, then read in place. Objects keep it instead of a parsed
/// [`Template`] (one allocation per object instead of one per attribute) until a caller needs
/// the template. Wiped on drop.
pub struct Plain {
    bytes: Zeroizing<Vec<u8>>,
    count: usize,
    /// Where the first attribute starts.
    first: usize,
}

/// The attributes of a [`Plain`], in order.
pub struct PlainIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for PlainIter<'a> {
    type Item = (CK_ATTRIBUTE_TYPE, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Checked when the Plain was made, so these cannot fail.
        let ty = varint(self.bytes, &mut self.pos)?;
        let len = usize::try_from(varint(self.bytes, &mut self.pos)?).ok()?;
        let v = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some((ty as CK_ATTRIBUTE_TYPE, v))
    }
}

impl Plain {
    /// Check an encoding: every entry whole, nothing after the last one.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Option<Plain> {
        let mut p = 0;
        let count = usize::try_from(varint(&bytes, &mut p)?).ok()?;
        let first = p;
        for _ in 0..count {
            varint(&bytes, &mut p)?;
            let len = usize::try_from(varint(&bytes, &mut p)?).ok()?;
            p = p.checked_add(len).filter(|&e| e <= bytes.len())?;
        }
        (p == bytes.len()).then_some(Plain {
            bytes,
            count,
            first,
        })
    }

    pub fn iter(&self) -> PlainIter<'_> {
        PlainIter {
            bytes: &self.bytes,
            pos: self.first,
            left: self.count,
        }
    }

    /// The value of the first attribute of type `ty`.
    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.iter().find(|(t, _)| *t == ty).map(|(_, v)| v)
    }

    /// `Template::matches_search` without building the template.
    pub fn matches_search(&self, search: &Template) -> bool {
        search
            .iter()
            .all(|s| self.get(s.ty) == Some(s.value.as_slice()))
    }

    pub fn to_template(&self) -> Template {
        let mut t = Vec::with_capacity(self.count);
        t.extend(self.iter().map(|(ty, v)| Attribute {
            ty,
            value: Zeroizing::new(v.to_vec()),
        }));
        Template(t)
    }

    /// Bytes held (for accounting).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A batch of records written together (one frame: all or nothing).
pub fn records_frame(records: &[SealedRecord]) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(records).map_err(|e| Error::general(format!("encode: {e}")))?;
    Ok(frame(KIND_RECORDS, &body))
}

/// Decode a record frame's body, copying the ciphertexts.
pub fn decode_records(body: &[u8]) -> Option<Vec<SealedRecord>> {
    Some(
        decode_list(body)?
            .iter()
            .map(|r| r.to_record(SharedBytes::new(r.ct.to_vec())))
            .collect(),
    )
}

/// Decode a record frame's body that lies inside `buf`: the ciphertexts stay in `buf`.
pub fn decode_records_in(buf: &Arc<Vec<u8>>, body: &[u8]) -> Option<Vec<SealedRecord>> {
    decode_list(body)?
        .iter()
        .map(|r| Some(r.to_record(SharedBytes::slice_of(buf, r.ct)?)))
        .collect()
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
    fn plain_reads_what_postcard_wrote() {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_DATA);
        t.set(CKA_LABEL, vec![b'x'; 300]);
        t.set(CKA_VALUE, Vec::new());
        t.set(0x8000_0000_1234_5678, b"vendor".to_vec());
        let enc = encode_attrs(&t).unwrap();
        let p = Plain::new(enc.clone()).unwrap();
        assert_eq!(p.to_template(), t);
        assert_eq!(p.get(CKA_LABEL), Some(&[b'x'; 300][..]));
        assert_eq!(p.get(CKA_VALUE), Some(&[][..]));
        assert_eq!(p.get(CKA_ID), None);
        assert!(p.matches_search(&t));
        let mut s = Template::new();
        s.set(CKA_VALUE, b"no".to_vec());
        assert!(!p.matches_search(&s));
        assert!(
            Plain::new(Zeroizing::new(
                encode_attrs(&Template::new()).unwrap().to_vec()
            ))
            .unwrap()
            .is_empty()
        );
        // Truncated or extended encodings are refused.
        for cut in 0..enc.len() {
            assert!(
                Plain::new(Zeroizing::new(enc[..cut].to_vec())).is_none(),
                "cut {cut}"
            );
        }
        let mut longer = enc.to_vec();
        longer.push(0);
        assert!(Plain::new(Zeroizing::new(longer)).is_none());
    }

    #[test]
    fn records_decode_in_place() {
        let k = seal::random_key().unwrap();
        let aead = Aead::new(&k);
        let tok = [3u8; 16];
        let mut t = Template::new();
        t.set(CKA_ID, b"id".to_vec());
        let a = SealedRecord::put(&aead, &tok, 10, 10, true, &t).unwrap();
        let b = SealedRecord::header_only(&aead, &tok, 11, 10, OP_DELETE).unwrap();
        let frame = records_frame(&[a.clone(), b.clone()]).unwrap();
        let buf = Arc::new(frame);
        let s = scan(&buf);
        let body = s.frames[0].body;
        let recs = decode_records_in(&buf, body).unwrap();
        assert_eq!(recs, vec![a.clone(), b.clone()]);
        assert_eq!(decode_records(body).unwrap(), recs);
        assert_eq!(recs[0].open_plain(&aead, &tok).unwrap().to_template(), t);
        assert!(recs[1].open_header(&aead, &tok));
        assert!(!recs[0].open_header(&aead, &tok));
        assert!(recs[1].open_plain(&aead, &tok).is_none());
        // The same as postcard reads (the writer's encoding), for many shapes of numbers.
        #[derive(Deserialize, PartialEq, Debug)]
        struct Postcard {
            seq: u64,
            id: u64,
            op: u8,
            private: bool,
            nonce: [u8; 12],
            #[serde(with = "serde_bytes")]
            ct: Vec<u8>,
        }
        for (i, seq) in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX]
            .into_iter()
            .enumerate()
        {
            let r = SealedRecord {
                seq,
                id: seq / 3,
                op: i as u8,
                private: i % 2 == 0,
                nonce: [i as u8; 12],
                ct: SharedBytes::new(vec![7; i * 100]),
            };
            let body = postcard::to_stdvec(&vec![r.clone(), r.clone()]).unwrap();
            let ours = decode_records(&body).unwrap();
            let theirs: Vec<Postcard> = postcard::from_bytes(&body).unwrap();
            assert_eq!(ours, vec![r.clone(), r.clone()]);
            assert_eq!(theirs[1].ct, ours[1].ct.to_vec());
            assert_eq!(
                (theirs[0].seq, theirs[0].id, theirs[0].op),
                (r.seq, r.id, r.op)
            );
            for cut in 0..body.len() {
                assert!(decode_records(&body[..cut]).is_none(), "cut {cut}");
            }
        }
        // A slice from another buffer is refused.
        assert!(decode_records_in(&Arc::new(Vec::new()), body).is_none());
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
