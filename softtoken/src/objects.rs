//! The in-memory object table of a token: token objects (with their sealed record) and session
//! objects, plus hash indexes on the attributes applications search by (see [`INDEXED`]), so
//! that `C_FindObjects` with any of them does not walk every object. An index is built at the
//! first search that can use it and kept up to date from then on, so opening a token pays only
//! for the indexes that are used.
//!
//! A token object read from the log keeps its decrypted attribute encoding ([`Plain`]: one
//! buffer, checked when the record was opened) and is parsed into a [`Template`] only when a
//! caller needs the template; searches and indexes read the encoding in place. So opening a
//! token with many objects makes one allocation per object, not one per attribute.

use crate::format::{Plain, SealedRecord};
use crate::schema::{flag, ulong};
use klyuch_crypto::Key;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use token_api::ck::*;
use token_api::{ObjectId, Template};

/// Attributes with an index: what applications search by (keys and certificates by
/// `CKA_ID`, `CKA_LABEL`, `CKA_CLASS`, `CKA_KEY_TYPE`; NSS certificates by `CKA_SUBJECT` and
/// `CKA_SERIAL_NUMBER`; data objects by `CKA_APPLICATION` and `CKA_OBJECT_ID`).
pub const INDEXED: [CK_ATTRIBUTE_TYPE; 8] = [
    CKA_ID,
    CKA_LABEL,
    CKA_CLASS,
    CKA_KEY_TYPE,
    CKA_SUBJECT,
    CKA_SERIAL_NUMBER,
    CKA_APPLICATION,
    CKA_OBJECT_ID,
];

/// Session object ids live above this bit; token object ids (record sequence numbers) below.
pub const SESSION_ID_BASE: ObjectId = 1 << 62;

pub use token_api::hash::{IdHasher, IdMap};

/// What the attributes of an object are, as far as this process knows them.
enum Attrs {
    /// A private token object while the user is not logged in: only its sealed record.
    Sealed,
    /// Decrypted; parsed into a template at the first call that needs one.
    Plain(Plain, OnceCell<Template>),
    /// A template (session objects, and token objects this process wrote).
    Parsed(Template),
}

/// What an operation needs to know about a key, read from its attributes once (and dropped with
/// them when the object changes), so that `C_SignInit` does not scan the template each time.
pub struct KeyFacts {
    pub class: CK_OBJECT_CLASS,
    /// The usage attributes that are true (`CKA_SIGN`, `CKA_VERIFY`, ...), as bits of [`use_bit`].
    uses: u32,
    /// `CKA_ALLOWED_MECHANISMS`, when given and not empty.
    pub allowed: Option<Box<[CK_MECHANISM_TYPE]>>,
    pub always_authenticate: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
    pub trusted: bool,
}

const USES: [CK_ATTRIBUTE_TYPE; 7] = [
    CKA_SIGN,
    CKA_VERIFY,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
];

fn use_bit(attr: CK_ATTRIBUTE_TYPE) -> u32 {
    USES.iter().position(|&a| a == attr).map_or(0, |i| 1 << i)
}

impl KeyFacts {
    pub fn of(a: &Template) -> KeyFacts {
        let class = ulong(a, CKA_CLASS).unwrap_or(CKO_DATA);
        let uses = USES
            .iter()
            .filter(|&&u| flag(a, u, false))
            .fold(0, |m, &u| m | use_bit(u));
        let allowed = a.get(CKA_ALLOWED_MECHANISMS).and_then(|list| {
            let v: Box<[CK_MECHANISM_TYPE]> = list
                .chunks_exact(size_of::<CK_ULONG>())
                .filter_map(|c| c.try_into().ok().map(CK_ULONG::from_ne_bytes))
                .collect();
            (!v.is_empty()).then_some(v)
        });
        KeyFacts {
            class,
            uses,
            allowed,
            always_authenticate: class == CKO_PRIVATE_KEY
                && flag(a, CKA_ALWAYS_AUTHENTICATE, false),
            always_sensitive: flag(a, CKA_ALWAYS_SENSITIVE, false),
            never_extractable: flag(a, CKA_NEVER_EXTRACTABLE, false),
            trusted: flag(a, CKA_TRUSTED, false),
        }
    }

    /// Is the usage attribute `attr` (`CKA_SIGN`, ...) true?
    pub fn allows(&self, attr: CK_ATTRIBUTE_TYPE) -> bool {
        self.uses & use_bit(attr) != 0
    }

    /// Does `CKA_ALLOWED_MECHANISMS` permit `mech`?
    pub fn mechanism_allowed(&self, mech: CK_MECHANISM_TYPE) -> bool {
        self.allowed.as_ref().is_none_or(|l| l.contains(&mech))
    }
}

pub struct Obj {
    attrs: Attrs,
    pub private: bool,
    /// The latest record of a token object.
    pub record: Option<SealedRecord>,
    /// The session that created a session object.
    pub owner: Option<CK_SESSION_HANDLE>,
    /// The prepared key (built on first use, dropped when the object changes).
    pub key: Option<Arc<Key>>,
    /// What operations need to know (read from the attributes on first use; boxed, as most
    /// objects never need it).
    facts: OnceCell<Box<KeyFacts>>,
}

impl Obj {
    /// A session object.
    pub fn session(
        attrs: Template,
        private: bool,
        owner: Option<CK_SESSION_HANDLE>,
        key: Option<Arc<Key>>,
    ) -> Obj {
        Obj {
            attrs: Attrs::Parsed(attrs),
            private,
            record: None,
            owner,
            key,
            facts: OnceCell::new(),
        }
    }

    /// A token object read from the log: decrypted (`Some`) or still sealed (`None`).
    pub fn read(record: SealedRecord, plain: Option<Plain>) -> Obj {
        Obj {
            attrs: plain.map_or(Attrs::Sealed, |p| Attrs::Plain(p, OnceCell::new())),
            private: record.private,
            record: Some(record),
            owner: None,
            key: None,
            facts: OnceCell::new(),
        }
    }

    /// A token object this process wrote, with the attributes it wrote.
    pub fn written(record: SealedRecord, attrs: Template) -> Obj {
        Obj {
            attrs: Attrs::Parsed(attrs),
            private: record.private,
            record: Some(record),
            owner: None,
            key: None,
            facts: OnceCell::new(),
        }
    }

    pub fn is_token(&self) -> bool {
        self.record.is_some()
    }

    pub fn seq(&self) -> u64 {
        self.record.as_ref().map_or(0, |r| r.seq)
    }

    /// Are the attributes known (false for a private token object before login)?
    pub fn has_attrs(&self) -> bool {
        !matches!(self.attrs, Attrs::Sealed)
    }

    /// The attributes as a template (parsed on first use).
    pub fn attrs(&self) -> Option<&Template> {
        match &self.attrs {
            Attrs::Sealed => None,
            Attrs::Plain(p, t) => Some(t.get_or_init(|| p.to_template())),
            Attrs::Parsed(t) => Some(t),
        }
    }

    /// The value of one attribute, without parsing the whole template.
    pub fn value(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        match &self.attrs {
            Attrs::Sealed => None,
            Attrs::Plain(p, t) => match t.get() {
                Some(t) => t.get(ty),
                None => p.get(ty),
            },
            Attrs::Parsed(t) => t.get(ty),
        }
    }

    /// `Template::matches_search` on the attributes (false while sealed).
    pub fn matches_search(&self, search: &Template) -> bool {
        match &self.attrs {
            Attrs::Sealed => false,
            Attrs::Plain(p, t) => match t.get() {
                Some(t) => t.matches_search(search),
                None => p.matches_search(search),
            },
            Attrs::Parsed(t) => t.matches_search(search),
        }
    }

    /// What operations need to know about this key (`None` while sealed).
    pub fn facts(&self) -> Option<&KeyFacts> {
        if let Some(f) = self.facts.get() {
            return Some(f);
        }
        let a = self.attrs()?;
        Some(self.facts.get_or_init(|| Box::new(KeyFacts::of(a))))
    }
}

/// Object ids of one attribute value (one, mostly).
enum Ids {
    One(ObjectId),
    Many(Vec<ObjectId>),
}

impl Ids {
    fn as_slice(&self) -> &[ObjectId] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(v) => v,
        }
    }
}

/// Object ids by the hash of an attribute value. Different values may share a hash, so the
/// ids are candidates: the caller filters them by the whole search template.
type Index = IdMap<u64, Ids>;

#[derive(Default)]
pub struct Table {
    objs: IdMap<ObjectId, Obj>,
    /// The indexes built so far.
    index: HashMap<CK_ATTRIBUTE_TYPE, Index, BuildHasherDefault<IdHasher>>,
    /// Hashes attribute values for the indexes (keyed per process).
    values: RandomState,
}

fn index_add(idx: &mut Index, key: u64, id: ObjectId) {
    match idx.entry(key) {
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Ids::One(id));
        }
        std::collections::hash_map::Entry::Occupied(mut e) => {
            let ids = e.get_mut();
            match ids {
                Ids::One(first) => *ids = Ids::Many(vec![*first, id]),
                Ids::Many(v) => v.push(id),
            }
        }
    }
}

fn index_remove(idx: &mut Index, key: u64, id: ObjectId) {
    let Some(ids) = idx.get_mut(&key) else { return };
    let empty = match ids {
        Ids::One(x) => *x == id,
        Ids::Many(v) => {
            v.retain(|&x| x != id);
            v.is_empty()
        }
    };
    if empty {
        idx.remove(&key);
    }
}

impl Table {
    pub fn get(&self, id: ObjectId) -> Option<&Obj> {
        self.objs.get(&id)
    }

    pub fn get_mut(&mut self, id: ObjectId) -> Option<&mut Obj> {
        self.objs.get_mut(&id)
    }

    pub fn len(&self) -> usize {
        self.objs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objs.is_empty()
    }

    /// Make room for `n` more objects (before loading a log).
    pub fn reserve(&mut self, n: usize) {
        self.objs.reserve(n);
    }

    pub fn ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.objs.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectId, &Obj)> {
        self.objs.iter()
    }

    fn hash(values: &RandomState, v: &[u8]) -> u64 {
        values.hash_one(v)
    }

    fn add_to_indexes(&mut self, id: ObjectId, o: &Obj) {
        for (ty, idx) in self.index.iter_mut() {
            if let Some(v) = o.value(*ty) {
                index_add(idx, Self::hash(&self.values, v), id);
            }
        }
    }

    fn remove_from_indexes(&mut self, id: ObjectId, o: &Obj) {
        for (ty, idx) in self.index.iter_mut() {
            if let Some(v) = o.value(*ty) {
                index_remove(idx, Self::hash(&self.values, v), id);
            }
        }
    }

    /// Build the index of one attribute type if it is not there yet.
    fn build_index(&mut self, ty: CK_ATTRIBUTE_TYPE) {
        if self.index.contains_key(&ty) {
            return;
        }
        let mut idx = Index::default();
        if !matches!(ty, CKA_CLASS | CKA_KEY_TYPE | CKA_APPLICATION) {
            idx.reserve(self.objs.len());
        }
        for (id, o) in &self.objs {
            if let Some(v) = o.value(ty) {
                index_add(&mut idx, Self::hash(&self.values, v), *id);
            }
        }
        self.index.insert(ty, idx);
    }

    /// Insert or replace an object.
    pub fn put(&mut self, id: ObjectId, obj: Obj) {
        self.remove(id);
        if !self.index.is_empty() {
            self.add_to_indexes(id, &obj);
        }
        self.objs.insert(id, obj);
    }

    pub fn remove(&mut self, id: ObjectId) -> Option<Obj> {
        let old = self.objs.remove(&id)?;
        if !self.index.is_empty() {
            self.remove_from_indexes(id, &old);
        }
        Some(old)
    }

    /// Give a sealed object its decrypted attributes (after login) and index it.
    pub fn reveal(&mut self, id: ObjectId, plain: Plain) {
        let Some(mut o) = self.objs.remove(&id) else {
            return;
        };
        o.attrs = Attrs::Plain(plain, OnceCell::new());
        o.key = None;
        o.facts = OnceCell::new();
        self.put(id, o);
    }

    /// Drop the attributes of a private object (logout) and unindex it.
    pub fn conceal(&mut self, id: ObjectId) {
        let Some(mut o) = self.remove(id) else {
            return;
        };
        o.attrs = Attrs::Sealed;
        o.key = None;
        o.facts = OnceCell::new();
        self.objs.insert(id, o);
    }

    /// Candidate objects for a search template: the smallest index set of the indexed
    /// attributes it names, or every object. (The caller still filters by the whole template.)
    pub fn candidates(&mut self, search: &Template) -> Vec<ObjectId> {
        for ty in INDEXED {
            if search.contains(ty) {
                self.build_index(ty);
            }
        }
        let mut best: Option<&[ObjectId]> = None;
        for ty in INDEXED {
            let Some(v) = search.get(ty) else { continue };
            let key = Self::hash(&self.values, v);
            match self.index.get(&ty).and_then(|m| m.get(&key)) {
                None => return Vec::new(),
                Some(ids) => {
                    let ids = ids.as_slice();
                    if best.is_none_or(|b| ids.len() < b.len()) {
                        best = Some(ids);
                    }
                }
            }
        }
        let mut out = match best {
            Some(ids) => ids.to_vec(),
            None => self.objs.keys().copied().collect(),
        };
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(label: &[u8], class: CK_OBJECT_CLASS) -> Obj {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, class);
        t.set(CKA_LABEL, label.to_vec());
        Obj::session(t, false, None, None)
    }

    #[test]
    fn index_follows_changes() {
        let mut tab = Table::default();
        tab.put(1, obj(b"a", CKO_DATA));
        tab.put(2, obj(b"b", CKO_DATA));
        tab.put(3, obj(b"a", CKO_CERTIFICATE));
        let mut s = Template::new();
        s.set(CKA_LABEL, b"a".to_vec());
        assert_eq!(tab.candidates(&s), vec![1, 3]);
        s.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
        assert_eq!(tab.candidates(&s), vec![3]);
        tab.put(3, obj(b"c", CKO_CERTIFICATE));
        // Candidates are the smallest index set (label "a"); the caller filters the rest.
        assert_eq!(tab.candidates(&s), vec![1]);
        s.set(CKA_LABEL, b"zzz".to_vec());
        assert_eq!(tab.candidates(&s), Vec::<u64>::new());
        tab.conceal(1);
        let mut s = Template::new();
        s.set(CKA_LABEL, b"a".to_vec());
        assert!(tab.candidates(&s).is_empty());
        let plain = |label: &[u8]| {
            let mut t = Template::new();
            t.set_ulong(CKA_CLASS, CKO_DATA);
            t.set(CKA_LABEL, label.to_vec());
            let k = crate::seal::random_key().unwrap();
            let aead = crate::seal::Aead::new(&k);
            let r = SealedRecord::put(&aead, &[0; 16], 1, 1, true, &t).unwrap();
            r.open_plain(&aead, &[0; 16]).unwrap()
        };
        tab.reveal(1, plain(b"a"));
        assert_eq!(tab.candidates(&s), vec![1]);
        assert!(tab.get(1).unwrap().matches_search(&s));
        assert_eq!(tab.get(1).unwrap().value(CKA_LABEL), Some(&b"a"[..]));
        tab.remove(1);
        assert!(tab.candidates(&s).is_empty());
        assert_eq!(tab.candidates(&Template::new()), vec![2, 3]);
    }

    #[test]
    fn key_facts() {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY);
        t.set(CKA_SIGN, vec![1]);
        t.set(CKA_DECRYPT, vec![0]);
        t.set(CKA_ALWAYS_AUTHENTICATE, vec![1]);
        let o = Obj::session(t.clone(), true, None, None);
        let f = o.facts().unwrap();
        assert!(f.allows(CKA_SIGN) && !f.allows(CKA_DECRYPT) && !f.allows(CKA_DERIVE));
        assert!(f.always_authenticate && !f.trusted);
        assert!(f.mechanism_allowed(CKM_ECDSA));
        let mut list = Vec::new();
        list.extend_from_slice(&CKM_EDDSA.to_ne_bytes());
        t.set(CKA_ALLOWED_MECHANISMS, list);
        let o = Obj::session(t.clone(), true, None, None);
        let f = o.facts().unwrap();
        assert!(f.mechanism_allowed(CKM_EDDSA) && !f.mechanism_allowed(CKM_ECDSA));
        // An empty list allows every mechanism (as before).
        t.set(CKA_ALLOWED_MECHANISMS, Vec::new());
        assert!(
            Obj::session(t, true, None, None)
                .facts()
                .unwrap()
                .mechanism_allowed(CKM_ECDSA)
        );
    }
}
