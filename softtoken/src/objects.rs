//! The in-memory object table of a token: token objects (with their sealed record) and session
//! objects, plus hash indexes on the attributes applications search by (see [`INDEXED`]), so
//! that `C_FindObjects` with any of them does not walk every object. An index is built at the
//! first search that can use it and kept up to date from then on, so opening a token pays only
//! for the indexes that are used.

use crate::format::SealedRecord;
use klyuch_crypto::Key;
use std::collections::HashMap;
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

pub struct Obj {
    /// The attributes; `None` for a private token object not decrypted yet (no user login).
    pub attrs: Option<Template>,
    pub private: bool,
    /// The latest record of a token object.
    pub record: Option<SealedRecord>,
    /// The session that created a session object.
    pub owner: Option<CK_SESSION_HANDLE>,
    /// The prepared key (built on first use, dropped when the object changes).
    pub key: Option<Arc<Key>>,
}

impl Obj {
    pub fn is_token(&self) -> bool {
        self.record.is_some()
    }
    pub fn seq(&self) -> u64 {
        self.record.as_ref().map_or(0, |r| r.seq)
    }
}

/// Object ids by attribute value (unsorted; small per value).
type Index = HashMap<Vec<u8>, Vec<ObjectId>>;

#[derive(Default)]
pub struct Table {
    objs: HashMap<ObjectId, Obj>,
    /// The indexes built so far.
    index: HashMap<CK_ATTRIBUTE_TYPE, Index>,
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

    pub fn ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.objs.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ObjectId, &Obj)> {
        self.objs.iter()
    }

    fn index_add(&mut self, id: ObjectId, attrs: &Template) {
        for (ty, idx) in self.index.iter_mut() {
            if let Some(v) = attrs.get(*ty) {
                idx.entry(v.to_vec()).or_default().push(id);
            }
        }
    }

    fn index_remove(&mut self, id: ObjectId, attrs: &Template) {
        for (ty, idx) in self.index.iter_mut() {
            if let Some(v) = attrs.get(*ty)
                && let Some(ids) = idx.get_mut(v)
            {
                ids.retain(|&x| x != id);
                if ids.is_empty() {
                    idx.remove(v);
                }
            }
        }
    }

    /// Build the index of one attribute type if it is not there yet.
    fn build_index(&mut self, ty: CK_ATTRIBUTE_TYPE) {
        if self.index.contains_key(&ty) {
            return;
        }
        let mut idx = Index::new();
        for (id, o) in &self.objs {
            if let Some(v) = o.attrs.as_ref().and_then(|a| a.get(ty)) {
                idx.entry(v.to_vec()).or_default().push(*id);
            }
        }
        self.index.insert(ty, idx);
    }

    /// Insert or replace an object.
    pub fn put(&mut self, id: ObjectId, obj: Obj) {
        self.remove(id);
        if let Some(a) = &obj.attrs {
            self.index_add(id, a);
        }
        self.objs.insert(id, obj);
    }

    pub fn remove(&mut self, id: ObjectId) -> Option<Obj> {
        let old = self.objs.remove(&id)?;
        if let Some(a) = &old.attrs {
            self.index_remove(id, a);
        }
        Some(old)
    }

    /// Give a sealed object its attributes (after login) and index it.
    pub fn reveal(&mut self, id: ObjectId, attrs: Template) {
        let Some(o) = self.objs.get_mut(&id) else {
            return;
        };
        o.attrs = Some(attrs);
        o.key = None;
        let a = o.attrs.clone().unwrap_or_default();
        self.index_add(id, &a);
    }

    /// Drop the attributes of a private object (logout) and unindex it.
    pub fn conceal(&mut self, id: ObjectId) {
        let Some(o) = self.objs.get_mut(&id) else {
            return;
        };
        o.key = None;
        if let Some(a) = o.attrs.take() {
            self.index_remove(id, &a);
        }
    }

    /// Candidate objects for a search template: the smallest index set of the indexed
    /// attributes it names, or every object. (The caller still filters by the whole template.)
    pub fn candidates(&mut self, search: &Template) -> Vec<ObjectId> {
        let mut best: Option<&Vec<ObjectId>> = None;
        for ty in INDEXED {
            if search.contains(ty) {
                self.build_index(ty);
            }
        }
        for ty in INDEXED {
            let Some(v) = search.get(ty) else { continue };
            match self.index.get(&ty).and_then(|m| m.get(v)) {
                None => return Vec::new(),
                Some(ids) => {
                    if best.is_none_or(|b| ids.len() < b.len()) {
                        best = Some(ids);
                    }
                }
            }
        }
        let mut out = match best {
            Some(ids) => ids.clone(),
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
        Obj {
            attrs: Some(t),
            private: false,
            record: None,
            owner: None,
            key: None,
        }
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
        tab.reveal(1, obj(b"a", CKO_DATA).attrs.unwrap());
        assert_eq!(tab.candidates(&s), vec![1]);
        tab.remove(1);
        assert!(tab.candidates(&s).is_empty());
        assert_eq!(tab.candidates(&Template::new()), vec![2, 3]);
    }
}
