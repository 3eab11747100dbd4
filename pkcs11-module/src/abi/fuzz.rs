//! A safe entry point for the fuzzer (`fuzz/fuzz_targets/abi_calls.rs`, cargo feature
//! `fuzzing`, never in the shipped module): the fuzzer's bytes are decoded into a sequence of
//! PKCS#11 calls with adversarial but well-formed arguments, made through the exported `C_*`
//! functions exactly as a C application would make them.
//!
//! "Well-formed" is the caller's side of the contract, which the module may rely on: every
//! non-NULL pointer points to memory of the stated length. Within that, everything varies: NULL
//! pointers with and without lengths, empty, short, exact and long output buffers, handles that
//! are valid, stale, of another kind or random, templates with any attribute types and value
//! lengths, every mechanism of the token (and random ones) with well-formed and malformed
//! parameters, calls out of order, `C_Finalize` in the middle, re-initialisation.
//!
//! Checked on every call, besides what the sanitizer sees: a panic anywhere (libFuzzer's panic
//! hook aborts even when `entry::run` catches it), output buffers are never written past their
//! stated length (guard bytes), and a `CKR_OK` never reports more bytes than the buffer holds.
//!
//! [`fuzz_setup`] makes, once per process, a store with an initialised token (SO PIN
//! [`SO_PIN`], user PIN [`USER_PIN`]) holding keys of every family; [`fuzz_calls`] copies it to
//! a fresh working store for every input, so an input always meets the same token.
// Lengths are CK_ULONG (u64) and usize on the 64-bit hosts the fuzzer runs on.
#![allow(clippy::cast_possible_truncation)]

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use token_api::ck::*;
use token_api::mech::{ParamLayout, param_layout};

use super::fns::*;
use super::funclist::{C_GetFunctionList, C_GetInterface, C_GetInterfaceList};

pub const SO_PIN: &[u8] = b"12345678";
pub const USER_PIN: &[u8] = b"1234";

/// Guard bytes after every output buffer.
const GUARD: usize = 16;
const GUARD_BYTE: u8 = 0xA5;

/// Calls per input at most (bounds the time of one input).
const MAX_CALLS: usize = 64;

struct Setup {
    template: PathBuf,
    work: PathBuf,
    mechanisms: Vec<CK_MECHANISM_TYPE>,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

// ---------------------------------------------------------------- set-up

/// Object identifiers of the key parameters used by the set-up and offered to the fuzzer.
mod oid {
    /// secp256r1, 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1), DER.
    pub const P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    /// id-Ed25519, 1.3.101.112 (RFC 8410 §3), DER.
    pub const ED25519: &[u8] = &[0x06, 0x03, 0x2B, 0x65, 0x70];
    /// id-tc26-gost-3410-12-256-paramSetB, 1.2.643.7.1.2.1.1.2 (RFC 9215 §5), DER.
    pub const GOST256_B: &[u8] = &[
        0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x01, 0x02,
    ];
    /// id-tc26-gost-3410-12-512-paramSetA, 1.2.643.7.1.2.1.2.1 (RFC 9215 §5), DER.
    pub const GOST512_A: &[u8] = &[
        0x06, 0x09, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x02, 0x01, 0x02, 0x01,
    ];
    /// id-tc26-gost3411-12-256, 1.2.643.7.1.1.2.2 (RFC 9215 §3), DER.
    pub const STREEBOG256: &[u8] = &[0x06, 0x08, 0x2A, 0x85, 0x03, 0x07, 0x01, 0x01, 0x02, 0x02];
}

fn ck(rv: CK_RV, what: &str) {
    assert_eq!(rv, CKR_OK, "fuzz set-up: {what} failed: {rv:#x}");
}

fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

fn flag(v: bool) -> Vec<u8> {
    vec![CK_BBOOL::from(v)]
}

/// A template as owned values plus the `CK_ATTRIBUTE` array pointing into them.
struct Tmpl {
    _values: Vec<Vec<u8>>,
    attrs: Vec<CK_ATTRIBUTE>,
}

impl Tmpl {
    fn new(items: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>) -> Tmpl {
        let mut values: Vec<Vec<u8>> = Vec::new();
        let mut attrs = Vec::new();
        for (ty, mut v) in items {
            attrs.push(CK_ATTRIBUTE {
                type_: ty,
                pValue: if v.is_empty() {
                    std::ptr::null_mut()
                } else {
                    v.as_mut_ptr().cast()
                },
                ulValueLen: v.len() as CK_ULONG,
            });
            // Moving the Vec keeps its heap buffer where it is.
            values.push(v);
        }
        Tmpl {
            _values: values,
            attrs,
        }
    }
    fn ptr(&mut self) -> *mut CK_ATTRIBUTE {
        if self.attrs.is_empty() {
            std::ptr::null_mut()
        } else {
            self.attrs.as_mut_ptr()
        }
    }
    fn count(&self) -> CK_ULONG {
        self.attrs.len() as CK_ULONG
    }
}

fn plain(m: CK_MECHANISM_TYPE) -> CK_MECHANISM {
    CK_MECHANISM {
        mechanism: m,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    }
}

fn key_pair(
    s: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_TYPE,
    public: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    label: &str,
) {
    let mut m = plain(mech);
    let mut pubt = public;
    pubt.push((CKA_TOKEN, flag(true)));
    pubt.push((CKA_LABEL, label.as_bytes().to_vec()));
    pubt.push((CKA_ID, label.as_bytes().to_vec()));
    let mut pubt = Tmpl::new(pubt);
    let mut privt = Tmpl::new(vec![
        (CKA_TOKEN, flag(true)),
        (CKA_LABEL, label.as_bytes().to_vec()),
        (CKA_ID, label.as_bytes().to_vec()),
        (CKA_SENSITIVE, flag(true)),
        (CKA_DERIVE, flag(true)),
    ]);
    let (mut hpub, mut hpriv) = (0, 0);
    // SAFETY: every pointer is to a live local of the stated size.
    let rv = unsafe {
        keys::C_GenerateKeyPair(
            s,
            &mut m,
            pubt.ptr(),
            pubt.count(),
            privt.ptr(),
            privt.count(),
            &mut hpub,
            &mut hpriv,
        )
    };
    ck(rv, label);
}

fn secret_key(
    s: CK_SESSION_HANDLE,
    mech: CK_MECHANISM_TYPE,
    mut t: Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>,
    label: &str,
) {
    let mut m = plain(mech);
    t.push((CKA_TOKEN, flag(true)));
    t.push((CKA_LABEL, label.as_bytes().to_vec()));
    let mut t = Tmpl::new(t);
    let mut h = 0;
    // SAFETY: every pointer is to a live local of the stated size.
    let rv = unsafe { keys::C_GenerateKey(s, &mut m, t.ptr(), t.count(), &mut h) };
    ck(rv, label);
}

/// Once per process: write the configuration, point the module at `dir`, and make the template
/// store there (one token in slot 0 with keys of every family, a data object). Call before
/// [`fuzz_calls`], from one thread, before anything else initialises the module.
pub fn fuzz_setup(dir: &Path) {
    SETUP.get_or_init(|| make_setup(dir));
}

fn make_setup(dir: &Path) -> Setup {
    let template = dir.join("template");
    let work = dir.join("work");
    let conf = dir.join("klyuch.toml");
    // The lowest iteration count the configuration accepts: logins cost ~1 ms, not ~200 ms.
    std::fs::write(&conf, "[softtoken]\nkdf_iterations = 1000\n").expect("write config");
    let env = [
        ("KLYUCH_CONF", conf.as_os_str()),
        ("KLYUCH_TOKEN_DIR", template.as_os_str()),
        ("KLYUCH_PCSC", "0".as_ref()),
        // Damaged input is logged at warn level: too much noise at fuzzing speed.
        ("KLYUCH_LOG", "error".as_ref()),
    ];
    for (k, v) in env {
        // SAFETY: called once, before the module is initialised, from the fuzzer's one thread
        // (the documented contract of `fuzz_setup`); nothing reads the environment meanwhile.
        unsafe { std::env::set_var(k, v) };
    }
    let mut mechanisms = Vec::new();
    let mut s = 0;
    // SAFETY: every call below passes pointers to live locals of the stated sizes.
    unsafe {
        ck(general::C_Initialize(std::ptr::null_mut()), "C_Initialize");
        let mut label = [b' '; 32];
        label[..4].copy_from_slice(b"fuzz");
        ck(
            slot_token::C_InitToken(
                0,
                SO_PIN.as_ptr().cast_mut(),
                SO_PIN.len() as CK_ULONG,
                label.as_mut_ptr(),
            ),
            "C_InitToken",
        );
        ck(
            session::C_OpenSession(
                0,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut s,
            ),
            "C_OpenSession",
        );
        ck(
            session::C_Login(
                s,
                CKU_SO,
                SO_PIN.as_ptr().cast_mut(),
                SO_PIN.len() as CK_ULONG,
            ),
            "C_Login(SO)",
        );
        ck(
            slot_token::C_InitPIN(s, USER_PIN.as_ptr().cast_mut(), USER_PIN.len() as CK_ULONG),
            "C_InitPIN",
        );
        ck(session::C_Logout(s), "C_Logout");
        ck(
            session::C_Login(
                s,
                CKU_USER,
                USER_PIN.as_ptr().cast_mut(),
                USER_PIN.len() as CK_ULONG,
            ),
            "C_Login(USER)",
        );
        let mut n: CK_ULONG = 0;
        ck(
            slot_token::C_GetMechanismList(0, std::ptr::null_mut(), &mut n),
            "C_GetMechanismList",
        );
        mechanisms.resize(n as usize, 0);
        ck(
            slot_token::C_GetMechanismList(0, mechanisms.as_mut_ptr(), &mut n),
            "C_GetMechanismList",
        );
        mechanisms.truncate(n as usize);
    }
    let has = |m| mechanisms.contains(&m);
    if has(CKM_RSA_PKCS_KEY_PAIR_GEN) {
        key_pair(
            s,
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            vec![
                (CKA_MODULUS_BITS, ulong(2048)),
                (CKA_PUBLIC_EXPONENT, vec![1, 0, 1]),
            ],
            "rsa",
        );
    }
    if has(CKM_EC_KEY_PAIR_GEN) {
        key_pair(
            s,
            CKM_EC_KEY_PAIR_GEN,
            vec![(CKA_EC_PARAMS, oid::P256.to_vec())],
            "ec",
        );
    }
    if has(CKM_EC_EDWARDS_KEY_PAIR_GEN) {
        key_pair(
            s,
            CKM_EC_EDWARDS_KEY_PAIR_GEN,
            vec![(CKA_EC_PARAMS, oid::ED25519.to_vec())],
            "ed",
        );
    }
    if has(CKM_GOSTR3410_KEY_PAIR_GEN) {
        key_pair(
            s,
            CKM_GOSTR3410_KEY_PAIR_GEN,
            vec![
                (CKA_GOSTR3410_PARAMS, oid::GOST256_B.to_vec()),
                (CKA_GOSTR3411_PARAMS, oid::STREEBOG256.to_vec()),
            ],
            "gost256",
        );
    }
    if has(CKM_AES_KEY_GEN) {
        secret_key(
            s,
            CKM_AES_KEY_GEN,
            vec![
                (CKA_VALUE_LEN, ulong(32)),
                (CKA_EXTRACTABLE, flag(true)),
                (CKA_SENSITIVE, flag(false)),
            ],
            "aes",
        );
    }
    if has(CKM_GENERIC_SECRET_KEY_GEN) {
        secret_key(
            s,
            CKM_GENERIC_SECRET_KEY_GEN,
            vec![
                (CKA_VALUE_LEN, ulong(32)),
                (CKA_SIGN, flag(true)),
                (CKA_VERIFY, flag(true)),
            ],
            "hmac",
        );
    }
    {
        let mut t = Tmpl::new(vec![
            (CKA_CLASS, ulong(CKO_DATA)),
            (CKA_TOKEN, flag(true)),
            (CKA_LABEL, b"data".to_vec()),
            (CKA_VALUE, b"fuzz data object".to_vec()),
        ]);
        let mut h = 0;
        // SAFETY: pointers to live locals of the stated sizes.
        ck(
            unsafe { object::C_CreateObject(s, t.ptr(), t.count(), &mut h) },
            "C_CreateObject",
        );
    }
    // SAFETY: no arguments to read.
    ck(
        unsafe { general::C_Finalize(std::ptr::null_mut()) },
        "C_Finalize",
    );
    // SAFETY: as above (once, one thread, module finalised).
    unsafe { std::env::set_var("KLYUCH_TOKEN_DIR", &work) };
    Setup {
        template,
        work,
        mechanisms,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create work store");
    for e in std::fs::read_dir(from).expect("read template store") {
        let e = e.expect("read template store");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy template store");
        }
    }
}

// ---------------------------------------------------------------- decoding

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
    /// `n` bytes (zero-padded when the input runs out).
    fn take(&mut self, n: usize) -> Vec<u8> {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        let mut v = a.to_vec();
        v.resize(n, 0);
        v
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.u8()) % from.len()]
    }
}

/// Interesting lengths: empty, one, block and key sizes, off by one, large.
const LENGTHS: &[usize] = &[
    0, 1, 2, 7, 8, 15, 16, 17, 20, 24, 28, 31, 32, 33, 48, 63, 64, 65, 96, 128, 255, 256, 257, 512,
    1024, 4096,
];

/// Interesting `CK_ULONG` attribute values.
const ULONGS: &[CK_ULONG] = &[
    0,
    1,
    2,
    3,
    4,
    8,
    16,
    24,
    32,
    64,
    128,
    255,
    256,
    384,
    512,
    1023,
    1024,
    2048,
    3072,
    4096,
    CKO_DATA,
    CKO_CERTIFICATE,
    CKO_PUBLIC_KEY,
    CKO_PRIVATE_KEY,
    CKO_SECRET_KEY,
    CKK_RSA,
    CKK_EC,
    CKK_EC_EDWARDS,
    CKK_GENERIC_SECRET,
    CKK_AES,
    CKK_GOSTR3410,
    CKK_GOSTR3410_512,
    CKK_KUZNYECHIK,
    CKK_MAGMA,
    CKK_GOST28147,
    CKC_X_509,
    CK_UNAVAILABLE_INFORMATION,
    CK_ULONG::MAX,
    0x8000_0000,
    CKO_VENDOR_DEFINED,
];

const ATTR_TYPES: &[CK_ATTRIBUTE_TYPE] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_SUBJECT,
    CKA_ID,
    CKA_KEY_TYPE,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DERIVE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_COEFFICIENT,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_GOSTR3410_PARAMS,
    CKA_GOSTR3411_PARAMS,
    CKA_GOST28147_PARAMS,
    CKA_KEY_GEN_MECHANISM,
    CKA_CHECK_VALUE,
    CKA_PUBLIC_KEY_INFO,
    CKA_UNIQUE_ID,
    CKA_VENDOR_DEFINED,
];

const BLOBS: &[&[u8]] = &[
    oid::P256,
    oid::ED25519,
    oid::GOST256_B,
    oid::GOST512_A,
    oid::STREEBOG256,
    // A printable string where an OID is expected.
    &[0x13, 0x04, b't', b'e', b's', b't'],
    // An uncompressed P-256 point header without the coordinates.
    &[0x04, 0x41, 0x04],
    // An empty SEQUENCE, an indefinite length, a length beyond the end.
    &[0x30, 0x00],
    &[0x30, 0x80, 0x00, 0x00],
    &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
];

const USER_TYPES: &[CK_USER_TYPE] = &[CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC, 3, CK_ULONG::MAX];

const HASHES: &[CK_MECHANISM_TYPE] = &[
    CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_MD5, 0,
];

const MGFS: &[CK_RSA_PKCS_MGF_TYPE] = &[
    CKG_MGF1_SHA1,
    CKG_MGF1_SHA224,
    CKG_MGF1_SHA256,
    CKG_MGF1_SHA384,
    CKG_MGF1_SHA512,
    0,
    99,
];

const KDFS: &[CK_EC_KDF_TYPE] = &[CKD_NULL, CKD_SHA1_KDF, CKD_SHA256_KDF, 1234];

/// Memory that must outlive one call (parameter structs, the buffers they point to).
#[derive(Default)]
struct Keep {
    bufs: Vec<Vec<u8>>,
    structs: Vec<Box<dyn std::any::Any>>,
}

impl Keep {
    /// A caller buffer: (pointer, length), NULL for an empty one or on request.
    fn buf(&mut self, mut v: Vec<u8>, null: bool) -> (*mut u8, CK_ULONG) {
        let len = v.len() as CK_ULONG;
        if null {
            return (std::ptr::null_mut(), len);
        }
        if v.is_empty() {
            return (std::ptr::null_mut(), 0);
        }
        let p = v.as_mut_ptr();
        self.bufs.push(v);
        (p, len)
    }
    fn boxed<T: 'static>(&mut self, v: T) -> (*mut c_void, CK_ULONG) {
        let mut b = Box::new(v);
        let p: *mut T = &mut *b;
        self.structs.push(b);
        (p.cast(), size_of::<T>() as CK_ULONG)
    }
}

/// An output buffer with guard bytes behind its stated length.
struct OutBuf {
    buf: Option<Vec<u8>>,
    cap: usize,
    len: CK_ULONG,
    null_len: bool,
}

impl OutBuf {
    fn new(b: &mut Bytes<'_>) -> OutBuf {
        let sel = b.u8();
        let cap = b.pick(LENGTHS);
        match sel % 8 {
            // NULL length pointer.
            0 => OutBuf {
                buf: None,
                cap: 0,
                len: 0,
                null_len: true,
            },
            // Size query (NULL buffer), with a random length in *pulLen.
            1 | 2 => OutBuf {
                buf: None,
                cap: 0,
                len: b.u64(),
                null_len: false,
            },
            _ => OutBuf {
                buf: Some(vec![GUARD_BYTE; cap + GUARD]),
                cap,
                len: cap as CK_ULONG,
                null_len: false,
            },
        }
    }
    fn ptr(&mut self) -> *mut u8 {
        self.buf
            .as_mut()
            .map_or(std::ptr::null_mut(), |b| b.as_mut_ptr())
    }
    fn len_ptr(&mut self) -> *mut CK_ULONG {
        if self.null_len {
            std::ptr::null_mut()
        } else {
            &mut self.len
        }
    }
    /// The output contract after a call.
    fn check(&self, what: &str, rv: CK_RV) {
        if let Some(b) = &self.buf {
            assert!(
                b[self.cap..].iter().all(|x| *x == GUARD_BYTE),
                "{what}: wrote past the caller's {}-byte buffer",
                self.cap
            );
            if rv == CKR_OK {
                assert!(
                    self.len as usize <= self.cap,
                    "{what}: CKR_OK with {} bytes in a {}-byte buffer",
                    self.len,
                    self.cap
                );
            }
        }
    }
}

/// Fuzzer state across the calls of one input.
struct Run<'a> {
    b: Bytes<'a>,
    mechanisms: &'a [CK_MECHANISM_TYPE],
    sessions: Vec<CK_SESSION_HANDLE>,
    objects: Vec<CK_OBJECT_HANDLE>,
    slots: Vec<CK_SLOT_ID>,
}

impl Run<'_> {
    /// A handle from `pool` most of the time, else a stale, neighbouring or random one.
    fn handle(&mut self, pool: &[CK_ULONG]) -> CK_ULONG {
        let sel = self.b.u8();
        if !pool.is_empty() && sel < 200 {
            return pool[usize::from(sel) % pool.len()];
        }
        match sel % 6 {
            0 => CK_INVALID_HANDLE,
            1 => CK_ULONG::MAX,
            2 => pool.first().map_or(1, |h| h.wrapping_add(1)),
            3 => pool.last().map_or(2, |h| h.wrapping_sub(1)),
            4 => 1 << 24,
            _ => self.b.u64(),
        }
    }
    fn session(&mut self) -> CK_SESSION_HANDLE {
        let pool = self.sessions.clone();
        self.handle(&pool)
    }
    fn object(&mut self) -> CK_OBJECT_HANDLE {
        let pool = self.objects.clone();
        self.handle(&pool)
    }
    fn slot(&mut self) -> CK_SLOT_ID {
        let pool = self.slots.clone();
        self.handle(&pool)
    }

    /// Input bytes: empty, NULL with a length, random, or a known blob.
    fn input(&mut self, keep: &mut Keep) -> (*mut u8, CK_ULONG) {
        let sel = self.b.u8();
        match sel % 8 {
            0 => (std::ptr::null_mut(), 0),
            1 => (std::ptr::null_mut(), CK_ULONG::from(self.b.u8()) + 1),
            2 => {
                let v = self.b.pick(BLOBS).to_vec();
                keep.buf(v, false)
            }
            3 => {
                let n = self.b.pick(LENGTHS);
                keep.buf(vec![self.b.u8(); n], false)
            }
            _ => {
                let n = usize::from(self.b.u8() % 80);
                let v = self.b.take(n);
                keep.buf(v, false)
            }
        }
    }

    fn pin(&mut self, keep: &mut Keep) -> (*mut u8, CK_ULONG) {
        match self.b.u8() % 6 {
            0 => keep.buf(USER_PIN.to_vec(), false),
            1 => keep.buf(SO_PIN.to_vec(), false),
            2 => (std::ptr::null_mut(), 0),
            3 => (std::ptr::null_mut(), 4),
            _ => self.input(keep),
        }
    }

    /// An attribute value for a template read by the module.
    fn value(&mut self, keep: &mut Keep) -> (*mut c_void, CK_ULONG) {
        let (p, n) = match self.b.u8() % 8 {
            0 => {
                let v = self.b.pick(ULONGS);
                keep.buf(ulong(v), false)
            }
            1 => {
                let v = self.b.u8() % 3;
                keep.buf(vec![v], false)
            }
            2 => {
                // A CK_ULONG with a wrong length.
                let v = self.b.pick(ULONGS).to_ne_bytes();
                let n = usize::from(self.b.u8() % 8);
                keep.buf(v[..n].to_vec(), false)
            }
            3 => {
                let v = self.b.pick(BLOBS).to_vec();
                keep.buf(v, false)
            }
            _ => self.input(keep),
        };
        (p.cast(), n)
    }

    /// A template to be read by the module.
    fn template(&mut self, keep: &mut Keep) -> (*mut CK_ATTRIBUTE, CK_ULONG) {
        let sel = self.b.u8();
        if sel == 255 {
            return (std::ptr::null_mut(), CK_ULONG::from(self.b.u8()) + 1);
        }
        let n = usize::from(sel % 9);
        let mut attrs = Vec::with_capacity(n);
        for _ in 0..n {
            let ty = if self.b.u8() < 240 {
                self.b.pick(ATTR_TYPES)
            } else {
                self.b.u64()
            };
            let (p, len) = self.value(keep);
            attrs.push(CK_ATTRIBUTE {
                type_: ty,
                pValue: p,
                ulValueLen: len,
            });
        }
        self.attr_array(keep, attrs)
    }

    fn attr_array(
        &mut self,
        keep: &mut Keep,
        mut attrs: Vec<CK_ATTRIBUTE>,
    ) -> (*mut CK_ATTRIBUTE, CK_ULONG) {
        let n = attrs.len() as CK_ULONG;
        if attrs.is_empty() {
            return (std::ptr::null_mut(), 0);
        }
        let p = attrs.as_mut_ptr();
        keep.structs.push(Box::new(attrs));
        (p, n)
    }

    /// A mechanism with a parameter of its layout (well-formed, or malformed in a way the module
    /// must detect without reading through it: wrong length, NULL).
    fn mechanism(&mut self, keep: &mut Keep) -> *mut CK_MECHANISM {
        let sel = self.b.u8();
        if sel == 255 {
            return std::ptr::null_mut();
        }
        let ty = if sel < 230 && !self.mechanisms.is_empty() {
            self.b.pick(self.mechanisms)
        } else {
            self.b.u64()
        };
        let style = self.b.u8() % 8;
        let (p, len) = if style == 0 {
            (std::ptr::null_mut(), 0)
        } else if style == 1 {
            // Bytes whose length matches no parameter struct of this mechanism (the module must
            // reject them without reading them as a struct).
            let layout = param_layout(ty);
            let n = self.b.pick(LENGTHS);
            let n = if matches!(layout, ParamLayout::Bytes) || n != struct_size(layout) {
                n
            } else {
                n + 1
            };
            let v = self.b.take(n);
            let (p, l) = keep.buf(v, false);
            (p.cast(), l)
        } else {
            self.param(ty, keep)
        };
        let (p, _) = keep.boxed(CK_MECHANISM {
            mechanism: ty,
            pParameter: p,
            ulParameterLen: len,
        });
        p.cast()
    }

    fn param(&mut self, ty: CK_MECHANISM_TYPE, keep: &mut Keep) -> (*mut c_void, CK_ULONG) {
        match param_layout(ty) {
            ParamLayout::Bytes => {
                let (p, n) = self.input(keep);
                (p.cast(), n)
            }
            ParamLayout::Ulong => {
                let v = self.b.pick(ULONGS);
                keep.boxed(v)
            }
            ParamLayout::RsaPss => {
                let v = CK_RSA_PKCS_PSS_PARAMS {
                    hashAlg: self.b.pick(HASHES),
                    mgf: self.b.pick(MGFS),
                    sLen: self.b.pick(ULONGS),
                };
                keep.boxed(v)
            }
            ParamLayout::RsaOaep => {
                let (src, n) = self.input(keep);
                let v = CK_RSA_PKCS_OAEP_PARAMS {
                    hashAlg: self.b.pick(HASHES),
                    mgf: self.b.pick(MGFS),
                    source: self.b.pick(&[0, CKZ_DATA_SPECIFIED, 2]),
                    pSourceData: src.cast(),
                    ulSourceDataLen: n,
                };
                keep.boxed(v)
            }
            ParamLayout::Gcm => {
                let (iv, ivn) = self.input(keep);
                let (aad, aadn) = self.input(keep);
                let v = CK_GCM_PARAMS {
                    pIv: iv,
                    ulIvLen: ivn,
                    ulIvBits: ivn.wrapping_mul(8),
                    pAAD: aad,
                    ulAADLen: aadn,
                    ulTagBits: self.b.pick(ULONGS),
                };
                keep.boxed(v)
            }
            ParamLayout::Ctr => {
                let mut cb = [0u8; 16];
                cb.copy_from_slice(&self.b.take(16));
                let v = CK_AES_CTR_PARAMS {
                    ulCounterBits: self.b.pick(ULONGS),
                    cb,
                };
                keep.boxed(v)
            }
            ParamLayout::Ecdh1 => {
                let (shared, sn) = self.input(keep);
                let (public, pn) = self.input(keep);
                let v = CK_ECDH1_DERIVE_PARAMS {
                    kdf: self.b.pick(KDFS),
                    ulSharedDataLen: sn,
                    pSharedData: shared,
                    ulPublicDataLen: pn,
                    pPublicData: public,
                };
                keep.boxed(v)
            }
            ParamLayout::GostDerive => {
                let (public, pn) = self.input(keep);
                let (ukm, un) = self.input(keep);
                let v = CK_GOSTR3410_DERIVE_PARAMS {
                    kdf: self.b.pick(KDFS),
                    pPublicData: public,
                    ulPublicDataLen: pn,
                    pUKM: ukm,
                    ulUKMLen: un,
                };
                keep.boxed(v)
            }
            ParamLayout::Eddsa => {
                let (ctx, n) = self.input(keep);
                let v = CK_EDDSA_PARAMS {
                    phFlag: self.b.u8() % 3,
                    ulContextDataLen: n,
                    pContextData: ctx,
                };
                keep.boxed(v)
            }
            ParamLayout::DeriveData => {
                let (d, n) = self.input(keep);
                keep.boxed(CK_KEY_DERIVATION_STRING_DATA { pData: d, ulLen: n })
            }
            ParamLayout::CbcDeriveData => {
                let (d, n) = self.input(keep);
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&self.b.take(16));
                keep.boxed(CK_AES_CBC_ENCRYPT_DATA_PARAMS {
                    iv,
                    pData: d,
                    length: n,
                })
            }
        }
    }

    fn out_handle(&mut self, rv: CK_RV, h: CK_ULONG, objects: bool) {
        if rv == CKR_OK {
            if objects {
                self.objects.push(h);
            } else {
                self.sessions.push(h);
            }
        }
    }
}

/// The size of the parameter struct of a layout (0 for plain bytes).
fn struct_size(l: ParamLayout) -> usize {
    match l {
        ParamLayout::Bytes => 0,
        ParamLayout::Ulong => size_of::<CK_ULONG>(),
        ParamLayout::RsaPss => size_of::<CK_RSA_PKCS_PSS_PARAMS>(),
        ParamLayout::RsaOaep => size_of::<CK_RSA_PKCS_OAEP_PARAMS>(),
        ParamLayout::Gcm => size_of::<CK_GCM_PARAMS>(),
        ParamLayout::Ctr => size_of::<CK_AES_CTR_PARAMS>(),
        ParamLayout::Ecdh1 => size_of::<CK_ECDH1_DERIVE_PARAMS>(),
        ParamLayout::GostDerive => size_of::<CK_GOSTR3410_DERIVE_PARAMS>(),
        ParamLayout::Eddsa => size_of::<CK_EDDSA_PARAMS>(),
        ParamLayout::DeriveData => size_of::<CK_KEY_DERIVATION_STRING_DATA>(),
        ParamLayout::CbcDeriveData => size_of::<CK_AES_CBC_ENCRYPT_DATA_PARAMS>(),
    }
}

// Application mutex callbacks for C_Initialize (a counter, not a lock: the fuzzer has one
// thread; what is checked is that the module pairs them up and never calls a destroyed one).
unsafe extern "C" fn create_mutex(out: *mut *mut c_void) -> CK_RV {
    if out.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let m = Box::into_raw(Box::new(0i64));
    // SAFETY: the module passes a writable pointer (checked non-NULL).
    unsafe { out.write(m.cast()) };
    CKR_OK
}
unsafe extern "C" fn destroy_mutex(m: *mut c_void) -> CK_RV {
    // SAFETY: `m` came from create_mutex and is destroyed once (a double destroy is a
    // use-after-free the sanitizer reports).
    let b = unsafe { Box::from_raw(m.cast::<i64>()) };
    assert_eq!(*b, 0, "mutex destroyed while locked");
    CKR_OK
}
unsafe extern "C" fn lock_mutex(m: *mut c_void) -> CK_RV {
    // SAFETY: `m` came from create_mutex and is alive.
    let c = unsafe { &mut *m.cast::<i64>() };
    assert_eq!(*c, 0, "application mutex locked twice by one thread");
    *c += 1;
    CKR_OK
}
unsafe extern "C" fn unlock_mutex(m: *mut c_void) -> CK_RV {
    // SAFETY: `m` came from create_mutex and is alive.
    let c = unsafe { &mut *m.cast::<i64>() };
    assert_eq!(*c, 1, "application mutex unlocked while not locked");
    *c -= 1;
    CKR_OK
}
unsafe extern "C" fn failing_create_mutex(_out: *mut *mut c_void) -> CK_RV {
    CKR_HOST_MEMORY
}

// ---------------------------------------------------------------- the calls

/// Decode `data` into PKCS#11 calls on a fresh copy of the template store and make them.
/// [`fuzz_setup`] must have run. Panics (the fuzzer's crash) when the module breaks the
/// output-buffer contract; the sanitizer and libFuzzer's panic hook catch the rest.
pub fn fuzz_calls(data: &[u8]) {
    let setup = SETUP.get().expect("fuzz_setup first");
    let _ = std::fs::remove_dir_all(&setup.work);
    copy_tree(&setup.template, &setup.work);

    let mut r = Run {
        b: Bytes(data),
        mechanisms: &setup.mechanisms,
        sessions: Vec::new(),
        objects: Vec::new(),
        slots: vec![0, 1],
    };
    initialize(&mut r);
    // A head start: a session, maybe logged in, and the handles of the token's objects.
    let head = r.b.u8();
    if head & 1 == 1 {
        let mut s = 0;
        // SAFETY: pointer to a live local.
        let rv = unsafe {
            session::C_OpenSession(
                0,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                std::ptr::null_mut(),
                None,
                &mut s,
            )
        };
        if rv == CKR_OK {
            r.sessions.push(s);
            if head & 2 == 2 {
                // SAFETY: the PIN constant is readable for its length.
                unsafe {
                    session::C_Login(
                        s,
                        CKU_USER,
                        USER_PIN.as_ptr().cast_mut(),
                        USER_PIN.len() as CK_ULONG,
                    )
                };
            }
            let mut found = [0 as CK_OBJECT_HANDLE; 32];
            let mut n: CK_ULONG = 0;
            // SAFETY: an empty template; `found` holds 32 handles.
            unsafe {
                object::C_FindObjectsInit(s, std::ptr::null_mut(), 0);
                object::C_FindObjects(s, found.as_mut_ptr(), 32, &mut n);
                object::C_FindObjectsFinal(s);
            }
            r.objects.extend_from_slice(&found[..(n as usize).min(32)]);
        }
    }
    let mut calls = 0;
    while !r.b.is_empty() && calls < MAX_CALLS {
        one_call(&mut r);
        calls += 1;
    }
    // SAFETY: no arguments to read.
    unsafe { general::C_Finalize(std::ptr::null_mut()) };
}

fn initialize(r: &mut Run<'_>) -> CK_RV {
    let sel = r.b.u8();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: 0,
        pReserved: std::ptr::null_mut(),
    };
    let p: *mut c_void = match sel % 8 {
        0..=3 => std::ptr::null_mut(),
        n => {
            args.flags = match n {
                4 => CKF_OS_LOCKING_OK,
                5 => 0,
                6 => CKF_LIBRARY_CANT_CREATE_OS_THREADS,
                _ => r.b.u64(),
            };
            let funcs = r.b.u8();
            if funcs & 1 == 1 {
                args.CreateMutex = Some(if funcs & 8 == 8 {
                    failing_create_mutex
                } else {
                    create_mutex
                });
                args.DestroyMutex = Some(destroy_mutex);
                args.LockMutex = Some(lock_mutex);
                args.UnlockMutex = Some(unlock_mutex);
                if funcs & 2 == 2 {
                    // An incomplete set: CKR_ARGUMENTS_BAD, and none of them may be called.
                    args.LockMutex = None;
                }
            }
            if funcs & 4 == 4 {
                // Must be rejected; never dereferenced.
                args.pReserved = 8 as *mut c_void;
            }
            (&mut args as *mut CK_C_INITIALIZE_ARGS).cast()
        }
    };
    // SAFETY: NULL or a pointer to a live CK_C_INITIALIZE_ARGS.
    let rv = unsafe { general::C_Initialize(p) };
    if rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED {
        // Keep fuzzing the initialised module: a plain initialisation.
        // SAFETY: NULL arguments.
        unsafe { general::C_Initialize(std::ptr::null_mut()) };
    }
    rv
}

fn one_call(r: &mut Run<'_>) {
    let mut keep = Keep::default();
    let op = r.b.u8();
    // SAFETY: every pointer passed below is NULL or points to live memory of the length passed
    // with it (`keep`, `OutBuf` and locals outlive the call); this is the whole point.
    unsafe {
        match op % 64 {
            0 => {
                let mut info = std::mem::zeroed::<CK_INFO>();
                let p = if r.b.u8() & 1 == 0 {
                    &mut info as *mut _
                } else {
                    std::ptr::null_mut()
                };
                general::C_GetInfo(p);
            }
            1 => {
                let present = r.b.u8() % 3;
                let mut o = OutList::new(&mut r.b);
                let rv = slot_token::C_GetSlotList(present, o.ptr(), o.len_ptr());
                o.check("C_GetSlotList", rv);
                if rv == CKR_OK {
                    for s in o.items() {
                        if !r.slots.contains(&s) {
                            r.slots.push(s);
                        }
                    }
                }
            }
            2 => {
                let s = r.slot();
                let mut info = std::mem::zeroed::<CK_SLOT_INFO>();
                let p = if r.b.u8() & 1 == 0 {
                    &mut info as *mut _
                } else {
                    std::ptr::null_mut()
                };
                slot_token::C_GetSlotInfo(s, p);
            }
            3 => {
                let s = r.slot();
                let mut info = std::mem::zeroed::<CK_TOKEN_INFO>();
                let p = if r.b.u8() & 1 == 0 {
                    &mut info as *mut _
                } else {
                    std::ptr::null_mut()
                };
                slot_token::C_GetTokenInfo(s, p);
            }
            4 => {
                let s = r.slot();
                let mut o = OutList::new(&mut r.b);
                let rv = slot_token::C_GetMechanismList(s, o.ptr(), o.len_ptr());
                o.check("C_GetMechanismList", rv);
            }
            5 => {
                let s = r.slot();
                let m = if r.b.u8() < 200 && !r.mechanisms.is_empty() {
                    r.b.pick(r.mechanisms)
                } else {
                    r.b.u64()
                };
                let mut info = std::mem::zeroed::<CK_MECHANISM_INFO>();
                let p = if r.b.u8() & 1 == 0 {
                    &mut info as *mut _
                } else {
                    std::ptr::null_mut()
                };
                slot_token::C_GetMechanismInfo(s, m, p);
            }
            6 => {
                let s = r.slot();
                let (pin, n) = r.pin(&mut keep);
                let mut label = [b' '; 32];
                let ln = usize::from(r.b.u8() % 33);
                let l = r.b.take(ln);
                label[..l.len()].copy_from_slice(&l);
                let lp = if r.b.u8().is_multiple_of(8) {
                    std::ptr::null_mut()
                } else {
                    label.as_mut_ptr()
                };
                slot_token::C_InitToken(s, pin, n, lp);
            }
            7 => {
                let s = r.session();
                let (pin, n) = r.pin(&mut keep);
                slot_token::C_InitPIN(s, pin, n);
            }
            8 => {
                let s = r.session();
                let (old, on) = r.pin(&mut keep);
                let (new, nn) = r.pin(&mut keep);
                slot_token::C_SetPIN(s, old, on, new, nn);
            }
            9 => {
                let slot = r.slot();
                let flags = match r.b.u8() % 4 {
                    0 => CKF_SERIAL_SESSION,
                    1 => CKF_SERIAL_SESSION | CKF_RW_SESSION,
                    2 => CKF_RW_SESSION,
                    _ => r.b.u64(),
                };
                let mut h = 0;
                let p = if r.b.u8().is_multiple_of(16) {
                    std::ptr::null_mut()
                } else {
                    &mut h as *mut _
                };
                let rv = session::C_OpenSession(slot, flags, std::ptr::null_mut(), None, p);
                r.out_handle(rv, h, false);
            }
            10 => {
                let s = r.session();
                session::C_CloseSession(s);
            }
            11 => {
                let s = r.slot();
                session::C_CloseAllSessions(s);
            }
            12 => {
                let s = r.session();
                let mut info = std::mem::zeroed::<CK_SESSION_INFO>();
                let p = if r.b.u8() & 1 == 0 {
                    &mut info as *mut _
                } else {
                    std::ptr::null_mut()
                };
                session::C_GetSessionInfo(s, p);
            }
            13 => {
                let s = r.session();
                let u = r.b.pick(USER_TYPES);
                let (pin, n) = r.pin(&mut keep);
                session::C_Login(s, u, pin, n);
            }
            14 => {
                let s = r.session();
                session::C_Logout(s);
            }
            15 => {
                let s = r.session();
                let (t, n) = r.template(&mut keep);
                let mut h = 0;
                let p = if r.b.u8().is_multiple_of(16) {
                    std::ptr::null_mut()
                } else {
                    &mut h as *mut _
                };
                let rv = object::C_CreateObject(s, t, n, p);
                r.out_handle(rv, h, true);
            }
            16 => {
                let s = r.session();
                let o = r.object();
                let (t, n) = r.template(&mut keep);
                let mut h = 0;
                let rv = object::C_CopyObject(s, o, t, n, &mut h);
                r.out_handle(rv, h, true);
            }
            17 => {
                let s = r.session();
                let o = r.object();
                object::C_DestroyObject(s, o);
            }
            18 => {
                let s = r.session();
                let o = r.object();
                let mut n: CK_ULONG = 0;
                let p = if r.b.u8() & 1 == 0 {
                    &mut n as *mut _
                } else {
                    std::ptr::null_mut()
                };
                object::C_GetObjectSize(s, o, p);
            }
            19 => get_attributes(r),
            20 => {
                let s = r.session();
                let o = r.object();
                let (t, n) = r.template(&mut keep);
                object::C_SetAttributeValue(s, o, t, n);
            }
            21 => {
                let s = r.session();
                let (t, n) = r.template(&mut keep);
                object::C_FindObjectsInit(s, t, n);
            }
            22 => {
                let s = r.session();
                let max = usize::from(r.b.u8() % 40);
                let mut found = vec![0 as CK_OBJECT_HANDLE; max + 1];
                let mut n: CK_ULONG = 0;
                let (p, cnt) = match r.b.u8() % 8 {
                    0 => (std::ptr::null_mut(), max as CK_ULONG),
                    1 => (found.as_mut_ptr(), 0),
                    _ => (found.as_mut_ptr(), max as CK_ULONG),
                };
                let rv = object::C_FindObjects(s, p, cnt, &mut n);
                if rv == CKR_OK {
                    assert!(n <= cnt, "C_FindObjects returned {n} of at most {cnt}");
                    for h in &found[..n as usize] {
                        if !r.objects.contains(h) {
                            r.objects.push(*h);
                        }
                    }
                }
                assert_eq!(found[max], 0, "C_FindObjects wrote past ulMaxObjectCount");
            }
            23 => {
                let s = r.session();
                object::C_FindObjectsFinal(s);
            }
            24 | 28 | 32 | 37 | 41 => {
                let s = r.session();
                let m = r.mechanism(&mut keep);
                let k = r.object();
                match op % 64 {
                    24 => encrypt_decrypt::C_EncryptInit(s, m, k),
                    28 => encrypt_decrypt::C_DecryptInit(s, m, k),
                    32 => digest::C_DigestInit(s, m),
                    37 => sign_verify::C_SignInit(s, m, k),
                    _ => sign_verify::C_VerifyInit(s, m, k),
                };
            }
            25 | 26 | 29 | 30 | 33 | 38 => {
                // One input, one output buffer.
                let s = r.session();
                let (d, dn) = r.input(&mut keep);
                let mut o = OutBuf::new(&mut r.b);
                let (name, rv) = match op % 64 {
                    25 => (
                        "C_Encrypt",
                        encrypt_decrypt::C_Encrypt(s, d, dn, o.ptr(), o.len_ptr()),
                    ),
                    26 => (
                        "C_EncryptUpdate",
                        encrypt_decrypt::C_EncryptUpdate(s, d, dn, o.ptr(), o.len_ptr()),
                    ),
                    29 => (
                        "C_Decrypt",
                        encrypt_decrypt::C_Decrypt(s, d, dn, o.ptr(), o.len_ptr()),
                    ),
                    30 => (
                        "C_DecryptUpdate",
                        encrypt_decrypt::C_DecryptUpdate(s, d, dn, o.ptr(), o.len_ptr()),
                    ),
                    33 => ("C_Digest", digest::C_Digest(s, d, dn, o.ptr(), o.len_ptr())),
                    _ => (
                        "C_Sign",
                        sign_verify::C_Sign(s, d, dn, o.ptr(), o.len_ptr()),
                    ),
                };
                o.check(name, rv);
            }
            27 | 31 | 36 | 40 => {
                // Output only.
                let s = r.session();
                let mut o = OutBuf::new(&mut r.b);
                let (name, rv) = match op % 64 {
                    27 => (
                        "C_EncryptFinal",
                        encrypt_decrypt::C_EncryptFinal(s, o.ptr(), o.len_ptr()),
                    ),
                    31 => (
                        "C_DecryptFinal",
                        encrypt_decrypt::C_DecryptFinal(s, o.ptr(), o.len_ptr()),
                    ),
                    36 => (
                        "C_DigestFinal",
                        digest::C_DigestFinal(s, o.ptr(), o.len_ptr()),
                    ),
                    _ => (
                        "C_SignFinal",
                        sign_verify::C_SignFinal(s, o.ptr(), o.len_ptr()),
                    ),
                };
                o.check(name, rv);
            }
            34 | 39 | 43 | 44 | 50 => {
                // Input only.
                let s = r.session();
                let (d, dn) = r.input(&mut keep);
                match op % 64 {
                    34 => digest::C_DigestUpdate(s, d, dn),
                    39 => sign_verify::C_SignUpdate(s, d, dn),
                    43 => sign_verify::C_VerifyUpdate(s, d, dn),
                    44 => sign_verify::C_VerifyFinal(s, d, dn),
                    _ => random::C_SeedRandom(s, d, dn),
                };
            }
            35 => {
                let s = r.session();
                let k = r.object();
                digest::C_DigestKey(s, k);
            }
            42 => {
                let s = r.session();
                let (d, dn) = r.input(&mut keep);
                let (sig, sn) = r.input(&mut keep);
                sign_verify::C_Verify(s, d, dn, sig, sn);
            }
            45 => {
                let s = r.session();
                let m = r.mechanism(&mut keep);
                let (t, n) = r.template(&mut keep);
                let mut h = 0;
                let rv = keys::C_GenerateKey(s, m, t, n, &mut h);
                r.out_handle(rv, h, true);
            }
            46 => {
                let s = r.session();
                let m = r.mechanism(&mut keep);
                // RSA key generation takes ~0.1-1 s: only when the fuzzer insists.
                if !m.is_null() && (*m).mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN && r.b.u8() != 0x5A {
                    return;
                }
                let (t1, n1) = r.template(&mut keep);
                let (t2, n2) = r.template(&mut keep);
                let (mut h1, mut h2) = (0, 0);
                let rv = keys::C_GenerateKeyPair(s, m, t1, n1, t2, n2, &mut h1, &mut h2);
                if rv == CKR_OK {
                    r.objects.push(h1);
                    r.objects.push(h2);
                }
            }
            47 => {
                let s = r.session();
                let m = r.mechanism(&mut keep);
                let w = r.object();
                let k = r.object();
                let mut o = OutBuf::new(&mut r.b);
                let rv = keys::C_WrapKey(s, m, w, k, o.ptr(), o.len_ptr());
                o.check("C_WrapKey", rv);
            }
            48 => {
                let s = r.session();
                let m = r.mechanism(&mut keep);
                let u = r.object();
                let (d, dn) = r.input(&mut keep);
                let (t, n) = r.template(&mut keep);
                let mut h = 0;
                let rv = keys::C_UnwrapKey(s, m, u, d, dn, t, n, &mut h);
                r.out_handle(rv, h, true);
            }
            49 => {
                let s = r.session();
                let m = r.mechanism(&mut keep);
                let base = r.object();
                let (t, n) = r.template(&mut keep);
                let mut h = 0;
                let rv = keys::C_DeriveKey(s, m, base, t, n, &mut h);
                r.out_handle(rv, h, true);
            }
            51 => {
                let s = r.session();
                let n = r.b.pick(LENGTHS);
                let mut buf = vec![GUARD_BYTE; n + GUARD];
                let p = if r.b.u8().is_multiple_of(8) {
                    std::ptr::null_mut()
                } else {
                    buf.as_mut_ptr()
                };
                random::C_GenerateRandom(s, p, n as CK_ULONG);
                assert!(
                    buf[n..].iter().all(|x| *x == GUARD_BYTE),
                    "C_GenerateRandom overran"
                );
            }
            52 => {
                let s = r.session();
                general::C_GetFunctionStatus(s);
                general::C_CancelFunction(s);
                session::C_SessionCancel(s, r.b.u64());
            }
            53 => {
                let s = r.session();
                let mut o = OutBuf::new(&mut r.b);
                let rv = session::C_GetOperationState(s, o.ptr(), o.len_ptr());
                o.check("C_GetOperationState", rv);
                let (d, dn) = r.input(&mut keep);
                session::C_SetOperationState(s, d, dn, 0, 0);
            }
            54 => {
                let s = r.session();
                let u = r.b.pick(USER_TYPES);
                let (pin, n) = r.pin(&mut keep);
                let (name, nn) = r.input(&mut keep);
                session::C_LoginUser(s, u, pin, n, name, nn);
            }
            55 => {
                let mut fl: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
                C_GetFunctionList(if r.b.u8() & 1 == 0 {
                    &mut fl
                } else {
                    std::ptr::null_mut()
                });
                let mut o = OutList::new(&mut r.b);
                let mut ifaces = vec![std::mem::zeroed::<CK_INTERFACE>(); o.cap + 1];
                let p = if o.null_list {
                    std::ptr::null_mut()
                } else {
                    ifaces.as_mut_ptr()
                };
                let rv = C_GetInterfaceList(p, o.len_ptr());
                if rv == CKR_OK && !o.null_list {
                    assert!(o.len as usize <= o.cap, "C_GetInterfaceList: too many");
                }
                assert!(
                    ifaces[o.cap].pInterfaceName.is_null(),
                    "C_GetInterfaceList overran"
                );
                let mut name = match r.b.u8() % 3 {
                    0 => b"PKCS 11\0".to_vec(),
                    1 => b"Vendor\0".to_vec(),
                    _ => {
                        let n = usize::from(r.b.u8() % 16);
                        let mut v = r.b.take(n);
                        v.retain(|b| *b != 0);
                        v.push(0);
                        v
                    }
                };
                let np = if r.b.u8() & 1 == 0 {
                    name.as_mut_ptr()
                } else {
                    std::ptr::null_mut()
                };
                let mut ver = CK_VERSION {
                    major: r.b.u8() % 4,
                    minor: r.b.u8() % 41,
                };
                let vp = if r.b.u8() & 1 == 0 {
                    &mut ver as *mut _
                } else {
                    std::ptr::null_mut()
                };
                let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
                C_GetInterface(np, vp, &mut iface, r.b.u64() & 1);
            }
            56 => {
                let mut slot: CK_SLOT_ID = 0;
                // Always CKF_DONT_BLOCK: a blocking wait would wait for a real reader event.
                slot_token::C_WaitForSlotEvent(CKF_DONT_BLOCK, &mut slot, std::ptr::null_mut());
            }
            57 => {
                // Finalize in the middle: every handle goes stale.
                let reserved = if r.b.u8().is_multiple_of(8) {
                    8 as *mut c_void
                } else {
                    std::ptr::null_mut()
                };
                general::C_Finalize(reserved);
                if r.b.u8() & 1 == 0 {
                    initialize(r);
                }
            }
            58 => {
                initialize(r);
            }
            59 => {
                // The functions Klyuch does not implement: argument-free errors.
                let s = r.session();
                let m = r.mechanism(&mut keep);
                let k = r.object();
                let mut o = OutBuf::new(&mut r.b);
                sign_verify::C_SignRecoverInit(s, m, k);
                sign_verify::C_VerifyRecoverInit(s, m, k);
                dual::C_DigestEncryptUpdate(s, std::ptr::null_mut(), 0, o.ptr(), o.len_ptr());
                message::C_MessageSignInit(s, m, k);
                message::C_SignMessage(
                    s,
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null_mut(),
                    0,
                    o.ptr(),
                    o.len_ptr(),
                );
                o.check("unsupported", CKR_FUNCTION_NOT_SUPPORTED);
            }
            _ => {
                // A find-all to learn the handles (cheap, and makes the next calls meaningful).
                let s = r.session();
                let mut found = [0 as CK_OBJECT_HANDLE; 16];
                let mut n: CK_ULONG = 0;
                object::C_FindObjectsInit(s, std::ptr::null_mut(), 0);
                if object::C_FindObjects(s, found.as_mut_ptr(), 16, &mut n) == CKR_OK {
                    for h in &found[..(n as usize).min(16)] {
                        if !r.objects.contains(h) {
                            r.objects.push(*h);
                        }
                    }
                }
                object::C_FindObjectsFinal(s);
            }
        }
    }
}

/// `C_GetAttributeValue` with output buffers of every kind.
fn get_attributes(r: &mut Run<'_>) {
    let s = r.session();
    let o = r.object();
    let n = usize::from(r.b.u8() % 9);
    let mut bufs: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut caps = Vec::with_capacity(n);
    let mut attrs = Vec::with_capacity(n);
    for _ in 0..n {
        let ty = if r.b.u8() < 240 {
            r.b.pick(ATTR_TYPES)
        } else {
            r.b.u64()
        };
        let sel = r.b.u8();
        let cap = r.b.pick(LENGTHS);
        let mut b = vec![GUARD_BYTE; cap + GUARD];
        let (p, len) = match sel % 4 {
            0 => (std::ptr::null_mut(), r.b.u64()),
            _ => (b.as_mut_ptr().cast::<c_void>(), cap as CK_ULONG),
        };
        attrs.push(CK_ATTRIBUTE {
            type_: ty,
            pValue: p,
            ulValueLen: len,
        });
        caps.push(if p.is_null() { None } else { Some(cap) });
        bufs.push(b);
    }
    let p = if attrs.is_empty() || r.b.u8() == 255 {
        std::ptr::null_mut()
    } else {
        attrs.as_mut_ptr()
    };
    // SAFETY: `attrs` holds `n` attributes whose pValues are NULL or writable for ulValueLen
    // bytes (the buffers in `bufs`).
    let rv = unsafe { object::C_GetAttributeValue(s, o, p, attrs.len() as CK_ULONG) };
    for (i, b) in bufs.iter().enumerate() {
        if let Some(cap) = caps[i] {
            assert!(
                b[cap..].iter().all(|x| *x == GUARD_BYTE),
                "C_GetAttributeValue wrote past a {cap}-byte value buffer (rv {rv:#x})"
            );
            let got = attrs[i].ulValueLen;
            assert!(
                got == CK_UNAVAILABLE_INFORMATION || got as usize <= cap,
                "C_GetAttributeValue: {got} bytes in a {cap}-byte buffer"
            );
        }
    }
}

/// An output list (`CK_ULONG`-sized items) with a guard element.
struct OutList {
    items: Vec<CK_ULONG>,
    cap: usize,
    len: CK_ULONG,
    null_list: bool,
    null_len: bool,
}

impl OutList {
    fn new(b: &mut Bytes<'_>) -> OutList {
        let sel = b.u8();
        let cap = usize::from(b.u8() % 80);
        OutList {
            items: vec![0xA5A5_A5A5; cap + 1],
            cap,
            len: if sel.is_multiple_of(4) {
                b.u64()
            } else {
                cap as CK_ULONG
            },
            null_list: sel.is_multiple_of(4),
            null_len: sel % 16 == 15,
        }
    }
    fn ptr(&mut self) -> *mut CK_ULONG {
        if self.null_list {
            std::ptr::null_mut()
        } else {
            self.items.as_mut_ptr()
        }
    }
    fn len_ptr(&mut self) -> *mut CK_ULONG {
        if self.null_len {
            std::ptr::null_mut()
        } else {
            &mut self.len
        }
    }
    fn check(&self, what: &str, rv: CK_RV) {
        assert_eq!(
            self.items[self.cap], 0xA5A5_A5A5,
            "{what} wrote past the list"
        );
        if rv == CKR_OK && !self.null_list {
            assert!(
                self.len as usize <= self.cap,
                "{what}: CKR_OK with too many items"
            );
        }
    }
    fn items(&self) -> Vec<CK_ULONG> {
        if self.null_list {
            Vec::new()
        } else {
            self.items[..(self.len as usize).min(self.cap)].to_vec()
        }
    }
}
