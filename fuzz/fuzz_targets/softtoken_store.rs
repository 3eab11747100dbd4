//! The soft token store reader: any bytes as a token's `meta` file and object log, opened the
//! way the module opens a store (`SoftTokenSource::with_dir`), then used: token info, finding
//! and reading objects before and after a login, writing (which cuts damaged tails) and
//! deleting.
//!
//! Input: `mode | rest`.
//! * mode 0: `len (u16 LE) | meta file | log file`, raw bytes.
//! * mode 1: `len | meta frame body | (len | record frame body)*`: the bodies are framed with a
//!   correct checksum, so the postcard decoding behind the checksums is reached.
//! * mode 2: the metadata of a real token (made at start-up) and `(len | record frame body)*`
//!   as its log: a token that opens, with records to decode and refuse.
//! * mode 3: the parsers alone (frame scan, metadata, record lists, attribute encodings).
//!
//! `KLYUCH_FUZZ_SEEDS=DIR` makes the target write seed inputs of every mode from the real token
//! into DIR at start-up (how fuzz/corpus/softtoken_store was made).
#![no_main]

use libfuzzer_sys::fuzz_target;
use softtoken::SoftTokenSource;
use softtoken::format::{self, KIND_META, KIND_RECORDS, Meta, Plain};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use token_api::ck::*;
use token_api::config::SoftTokenConfig;
use token_api::{Mechanism, Pin, SessionCtx, SlotSource, Template, Token, UserType};
use zeroize::Zeroizing;

const SO_PIN: &[u8] = b"so-pin-1234";
const USER_PIN: &[u8] = b"user-1234";
const RW: SessionCtx = SessionCtx {
    handle: 1,
    rw: true,
};

/// A PIN wrap with more iterations than this is not tried: PBKDF2 would run for minutes (a
/// store file can ask for any count; whoever can write it controls the token anyway).
const MAX_TRIED_ITERATIONS: u32 = 20_000;

struct Setup {
    dir: tempfile::TempDir,
    meta: Vec<u8>,
    log: Vec<u8>,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

fn cfg() -> SoftTokenConfig {
    SoftTokenConfig {
        kdf_iterations: 1000,
        max_user_pin_failures: 3,
        max_so_pin_failures: 3,
        ..SoftTokenConfig::default()
    }
}

fn data(label: &str, value: &[u8], private: bool) -> Template {
    let mut t = Template::new();
    t.set_ulong(CKA_CLASS, CKO_DATA);
    t.set_bool(CKA_TOKEN, true);
    t.set_bool(CKA_PRIVATE, private);
    t.set(CKA_LABEL, label.as_bytes().to_vec());
    t.set(CKA_VALUE, value.to_vec());
    t
}

/// A real token: public and private data objects, an AES key, an EC key pair, an updated and a
/// deleted object.
fn make_setup() -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("klyuch-fuzz-store-")
        .tempdir()
        .expect("temporary folder");
    let store = dir.path().join("template");
    let src = SoftTokenSource::with_dir(store.clone(), cfg()).expect("open store");
    src.slots().expect("slots");
    let t = src.token(0).expect("token");
    t.init_token(&Pin::new(SO_PIN), "fuzz").expect("init token");
    t.login(UserType::So, Some(&Pin::new(SO_PIN)))
        .expect("login SO");
    t.init_pin(Some(&Pin::new(USER_PIN))).expect("init PIN");
    t.logout().expect("logout");
    t.login(UserType::User, Some(&Pin::new(USER_PIN)))
        .expect("login");
    t.create_object(&RW, &data("public", b"public value", false))
        .expect("create");
    t.create_object(&RW, &data("private", b"private value", true))
        .expect("create");
    let gone = t
        .create_object(&RW, &data("gone", b"deleted", false))
        .expect("create");
    t.destroy_object(&RW, gone).expect("destroy");
    let renamed = t
        .create_object(&RW, &data("old", b"renamed", false))
        .expect("create");
    let mut ch = Template::new();
    ch.set(CKA_LABEL, b"new".to_vec());
    t.set_attributes(&RW, renamed, &ch).expect("set");
    let mut aes = Template::new();
    aes.set_bool(CKA_TOKEN, true);
    aes.set_ulong(CKA_VALUE_LEN, 32);
    aes.set(CKA_LABEL, b"aes".to_vec());
    t.generate_key(&RW, &Mechanism::new(CKM_AES_KEY_GEN), &aes)
        .expect("AES key");
    let mut public = Template::new();
    public.set_bool(CKA_TOKEN, true);
    // secp256r1, 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1), DER.
    public.set(
        CKA_EC_PARAMS,
        vec![0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
    );
    let mut private = Template::new();
    private.set_bool(CKA_TOKEN, true);
    t.generate_key_pair(&RW, &Mechanism::new(CKM_EC_KEY_PAIR_GEN), &public, &private)
        .expect("EC key pair");
    drop((t, src));
    let folder = token_folder(&store);
    let meta = std::fs::read(folder.join("meta")).expect("read meta");
    let decoded = Meta::decode(&meta).expect("decode meta");
    let log = std::fs::read(softtoken::store::TokenPaths::new(folder).log(&decoded.uuid))
        .expect("read log");
    let setup = Setup { dir, meta, log };
    if let Some(seeds) = std::env::var_os("KLYUCH_FUZZ_SEEDS") {
        write_seeds(&setup, Path::new(&seeds));
    }
    setup
}

fn token_folder(store: &Path) -> PathBuf {
    std::fs::read_dir(store)
        .expect("read store")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a token folder")
}

fn with_len(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u16).to_le_bytes());
    out.extend_from_slice(body);
}

fn write_seeds(s: &Setup, dir: &Path) {
    std::fs::create_dir_all(dir).expect("seed folder");
    let bodies = |buf: &[u8]| -> Vec<Vec<u8>> {
        format::scan(buf)
            .frames
            .iter()
            .map(|f| f.body.to_vec())
            .collect()
    };
    let meta_body = bodies(&s.meta).remove(0);
    let log_bodies = bodies(&s.log);
    let mut raw = vec![0u8];
    with_len(&mut raw, &s.meta);
    raw.extend_from_slice(&s.log);
    let mut framed = vec![1u8];
    with_len(&mut framed, &meta_body);
    let mut real_meta = vec![2u8];
    for b in &log_bodies {
        with_len(&mut framed, b);
        with_len(&mut real_meta, b);
    }
    let mut parsers_meta = vec![3u8];
    parsers_meta.extend_from_slice(&s.meta);
    let mut parsers_log = vec![3u8];
    parsers_log.extend_from_slice(&s.log);
    for (name, bytes) in [
        ("raw-files", raw),
        ("framed-bodies", framed),
        ("real-meta", real_meta),
        ("parse-meta", parsers_meta),
        ("parse-log", parsers_log),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}

/// The input, read front to back.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    /// A length-prefixed piece (what is left when the prefix runs past the end).
    fn piece(&mut self) -> &'a [u8] {
        let n = usize::from(u16::from_le_bytes([self.u8(), self.u8()]));
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn frames(&mut self, kind: u8) -> Vec<u8> {
        let mut out = Vec::new();
        while !self.0.is_empty() {
            out.extend_from_slice(&format::frame(kind, self.piece()));
        }
        out
    }
}

fn parsers(bytes: &[u8]) {
    let s = format::scan(bytes);
    assert!(s.valid_end(bytes.len()) <= bytes.len());
    for f in &s.frames {
        assert!(f.offset + format::OVERHEAD + f.body.len() <= bytes.len());
        if let Some(records) = format::decode_records(f.body) {
            let _ = records.iter().map(|r| r.size()).sum::<usize>();
        }
        let shared = Arc::new(bytes.to_vec());
        let _ = format::decode_records_in(
            &shared,
            &shared[f.offset + format::HEADER_LEN..][..f.body.len()],
        );
    }
    let _ = Meta::decode(bytes);
    let _ = format::decode_records(bytes);
    if let Some(p) = Plain::new(Zeroizing::new(bytes.to_vec())) {
        // Every entry was checked when the Plain was made: iterating yields them all.
        let n = p.iter().count();
        assert_eq!(n == 0, p.is_empty());
        assert!(p.iter().map(|(_, v)| v.len()).sum::<usize>() <= p.len());
        let _ = p.to_template();
    }
}

/// Open the store in `store` and use every token in it.
fn exercise(store: &Path, meta: &[u8]) {
    let Ok(src) = SoftTokenSource::with_dir(store.to_path_buf(), cfg()) else {
        return;
    };
    let Ok(slots) = src.slots() else {
        return;
    };
    // Logins only when every PIN wrap is cheap to try.
    let cheap = Meta::decode(meta).is_some_and(|m| {
        m.so.iterations <= MAX_TRIED_ITERATIONS
            && m.user
                .as_ref()
                .is_none_or(|u| u.iterations <= MAX_TRIED_ITERATIONS)
    });
    for slot in slots {
        let Ok(t) = src.token(slot.local) else {
            continue;
        };
        let _ = t.info();
        use_objects(&t);
        if cheap && t.login(UserType::User, Some(&Pin::new(USER_PIN))).is_ok() {
            use_objects(&t);
            let _ = t.create_object(&RW, &data("written", b"after fuzzing", true));
            if let Ok(ids) = t.find_objects(&RW, &Template::new()) {
                if let Some(id) = ids.first() {
                    let _ = t.destroy_object(&RW, *id);
                }
            }
            let _ = t.logout();
            // Everything written is read back by a fresh instance.
            if let Ok(src2) = SoftTokenSource::with_dir(store.to_path_buf(), cfg()) {
                if src2.slots().is_ok() {
                    if let Ok(t2) = src2.token(slot.local) {
                        use_objects(&t2);
                    }
                }
            }
        } else if cheap {
            let _ = t.login(UserType::So, Some(&Pin::new(SO_PIN)));
        }
    }
}

fn use_objects(t: &Arc<dyn Token>) {
    let Ok(ids) = t.find_objects(&RW, &Template::new()) else {
        return;
    };
    for id in ids {
        let _ = t.object_size(&RW, id);
        let _ = t.get_attributes(
            &RW,
            id,
            &[
                CKA_CLASS,
                CKA_LABEL,
                CKA_VALUE,
                CKA_ID,
                CKA_KEY_TYPE,
                CKA_EC_POINT,
                CKA_PRIVATE,
            ],
        );
    }
    let mut by_label = Template::new();
    by_label.set(CKA_LABEL, b"public".to_vec());
    let _ = t.find_objects(&RW, &by_label);
}

fuzz_target!(|input: &[u8]| {
    let setup = SETUP.get_or_init(make_setup);
    let mut inp = Input(input);
    let mode = inp.u8() % 4;
    let (meta, log) = match mode {
        0 => {
            let meta = inp.piece().to_vec();
            (meta, inp.0.to_vec())
        }
        1 => {
            let body = inp.piece();
            let f = format::frame(KIND_META, body);
            ([f.clone(), f].concat(), inp.frames(KIND_RECORDS))
        }
        2 => (setup.meta.clone(), inp.frames(KIND_RECORDS)),
        _ => {
            parsers(inp.0);
            return;
        }
    };
    let store = setup.dir.path().join("work");
    let _ = std::fs::remove_dir_all(&store);
    let folder = store.join("0000000000000001");
    std::fs::create_dir_all(&folder).expect("token folder");
    std::fs::write(folder.join("meta"), &meta).expect("write meta");
    let uuid = Meta::decode(&meta).map_or([0u8; 16], |m| m.uuid);
    let paths = softtoken::store::TokenPaths::new(folder);
    std::fs::write(paths.log(&uuid), &log).expect("write log");
    exercise(&store, &meta);
});
