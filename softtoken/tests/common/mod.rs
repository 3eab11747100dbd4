//! Shared helpers of the soft token's integration tests.
#![allow(dead_code)]

use softtoken::SoftTokenSource;
use std::path::Path;
use std::sync::Arc;
use token_api::ck::*;
use token_api::config::SoftTokenConfig;
use token_api::{AttrRead, Pin, SessionCtx, SlotSource, Template, Token, UserType};

pub const SO_PIN: &[u8] = b"so-pin-1234";
pub const USER_PIN: &[u8] = b"user-1234";

pub const RW: SessionCtx = SessionCtx {
    handle: 1,
    rw: true,
};
pub const RO: SessionCtx = SessionCtx {
    handle: 2,
    rw: false,
};

pub fn cfg() -> SoftTokenConfig {
    SoftTokenConfig {
        kdf_iterations: 1000,
        max_user_pin_failures: 3,
        max_so_pin_failures: 3,
        ..SoftTokenConfig::default()
    }
}

pub fn open(dir: &Path) -> SoftTokenSource {
    open_with(dir, cfg())
}

pub fn open_with(dir: &Path, cfg: SoftTokenConfig) -> SoftTokenSource {
    SoftTokenSource::with_dir(dir.to_path_buf(), cfg).expect("open store")
}

pub fn pin(p: &[u8]) -> Pin {
    Pin::new(p)
}

/// Initialise the token in slot 0 with the SO and user PINs; returns it (logged out).
pub fn init_token(src: &SoftTokenSource) -> Arc<dyn Token> {
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    t.init_token(&pin(SO_PIN), "test token").unwrap();
    t.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    t.init_pin(Some(&pin(USER_PIN))).unwrap();
    t.logout().unwrap();
    t
}

pub fn login_user(t: &Arc<dyn Token>) {
    t.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

/// A data object template.
pub fn data(label: &str, value: &[u8], token: bool, private: bool) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_DATA);
    t.set_bool(CKA_TOKEN, token);
    t.set_bool(CKA_PRIVATE, private);
    t.set(CKA_LABEL, label.as_bytes().to_vec());
    t.set(CKA_VALUE, value.to_vec());
    t.set(CKA_APPLICATION, b"klyuch-tests".to_vec());
    t
}

pub fn by_label(label: &str) -> Template {
    let mut t = Template::new();
    t.set(CKA_LABEL, label.as_bytes().to_vec());
    t
}

/// The value of one attribute (panics when it is not readable).
pub fn get(t: &Arc<dyn Token>, id: u64, ty: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    match t.get_attributes(&RW, id, &[ty]).unwrap().remove(0) {
        AttrRead::Value(v) => v.to_vec(),
        other => panic!("attribute {ty:#x}: {other:?}"),
    }
}

pub fn label_of(t: &Arc<dyn Token>, id: u64) -> String {
    String::from_utf8(get(t, id, CKA_LABEL)).unwrap()
}

/// Every visible object's (label, value), sorted.
pub fn contents(t: &Arc<dyn Token>) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = t
        .find_objects(&RW, &Template::new())
        .unwrap()
        .into_iter()
        .map(|id| (label_of(t, id), get(t, id, CKA_VALUE)))
        .collect();
    out.sort();
    out
}

/// Copy a folder tree (for corrupting a copy of a store).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The files of a store, recursively.
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
