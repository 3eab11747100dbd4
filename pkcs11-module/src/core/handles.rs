//! Object handles: the module-wide `CK_OBJECT_HANDLE` ↔ (slot, token object id) map.
//! Handles are never reused while the library is initialised, and are never 0.

use token_api::ObjectId;
use token_api::ck::*;
use token_api::hash::IdMap;

#[derive(Default)]
pub struct Handles {
    next: CK_OBJECT_HANDLE,
    by_handle: IdMap<CK_OBJECT_HANDLE, (CK_SLOT_ID, ObjectId)>,
    by_object: IdMap<(CK_SLOT_ID, ObjectId), CK_OBJECT_HANDLE>,
}

impl Handles {
    /// The handle of an object, allocating one the first time.
    pub fn handle(&mut self, slot: CK_SLOT_ID, obj: ObjectId) -> CK_OBJECT_HANDLE {
        if let Some(h) = self.by_object.get(&(slot, obj)) {
            return *h;
        }
        self.next += 1;
        let h = self.next;
        self.by_handle.insert(h, (slot, obj));
        self.by_object.insert((slot, obj), h);
        h
    }

    pub fn resolve(&self, h: CK_OBJECT_HANDLE) -> Option<(CK_SLOT_ID, ObjectId)> {
        self.by_handle.get(&h).copied()
    }

    pub fn forget(&mut self, h: CK_OBJECT_HANDLE) {
        if let Some(k) = self.by_handle.remove(&h) {
            self.by_object.remove(&k);
        }
    }

    /// Drop every handle of a slot (its token went away).
    pub fn forget_slot(&mut self, slot: CK_SLOT_ID) {
        self.by_handle.retain(|_, (s, _)| *s != slot);
        self.by_object.retain(|(s, _), _| *s != slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_unique_nonzero() {
        let mut h = Handles::default();
        let a = h.handle(0, 5);
        let b = h.handle(1, 5);
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(h.handle(0, 5), a);
        assert_eq!(h.resolve(b), Some((1, 5)));
        h.forget(a);
        assert_eq!(h.resolve(a), None);
        let c = h.handle(0, 5);
        assert_ne!(c, a, "handles are not reused");
        h.forget_slot(1);
        assert_eq!(h.resolve(b), None);
    }
}
