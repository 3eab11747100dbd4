//! A separate process for the fault-injection tests (tests/faults.rs): it works on the first
//! initialised token of the module given as the first argument and reports each step on stdout
//! *before* it starts it and *after* the call returned `CKR_OK`, so that the parent, which kills
//! it with SIGKILL at a random moment, knows what must be in the store and what may be.
//!
//! usage:
//!   p11_faults churn  MODULE PREFIX SEED LEN
//!       creates data objects PREFIX-n (value `value-PREFIX-n`, repeated to LEN bytes unless
//!       LEN is 0; every third one private), deletes and updates (CKA_VALUE version v) earlier
//!       ones, forever: `created n`, `deleting n` / `deleted n`, `updating n v` / `updated n v`
//!   p11_faults pins   MODULE CURRENT OTHER
//!       C_SetPIN from CURRENT to OTHER and back, forever: `setting P` / `set P`
//!   p11_faults wrong  MODULE
//!       C_Login with a wrong user PIN, forever: `failed n` after each CKR_PIN_INCORRECT
//!   p11_faults hammer MODULE PREFIX SECONDS SEED
//!       for SECONDS: creates, deletes, updates and finds data objects and signs with the token
//!       key pair labelled `hammer-key`, checking every step; then prints `live LABEL` for each
//!       object it created and did not delete, and `stats ...`. Exits non-zero on any error.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use klyuch_tests::USER_PIN;

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators",
/// 2016): test randomness only.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("flush");
}

fn open(module: &str) -> (Pkcs11, Session) {
    let p = Pkcs11::new(module).expect("load");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("init");
    let slot = p.get_slots_with_initialized_token().expect("slots")[0];
    let s = p.open_rw_session(slot).expect("session");
    (p, s)
}

fn login(s: &Session) {
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .expect("login");
}

/// The value of the data object `label` in a version: `value-LABEL` (`valueV-LABEL` from
/// version 2), repeated to `len` bytes when `len` is not 0 (long values make the log compact
/// now and then: the hammer uses 1.5 KiB, the big churn rounds 64 KiB).
fn value(label: &str, version: u32, len: usize) -> Vec<u8> {
    let unit = if version == 1 {
        format!("value-{label}")
    } else {
        format!("value{version}-{label}")
    };
    if len == 0 {
        return unit.into_bytes();
    }
    unit.repeat(len / unit.len() + 1).into_bytes()[..len].to_vec()
}

/// The hammer's value length.
const HAMMER_LEN: usize = 1536;

fn create(s: &Session, label: &str, private: bool, len: usize) -> ObjectHandle {
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(private),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value(label, 1, len)),
    ])
    .unwrap_or_else(|e| panic!("C_CreateObject {label}: {e}"))
}

fn by_label(s: &Session, label: &str) -> Vec<ObjectHandle> {
    s.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
    .unwrap_or_else(|e| panic!("C_FindObjects {label}: {e}"))
}

fn value_of(s: &Session, h: ObjectHandle) -> Vec<u8> {
    match &s.get_attributes(h, &[AttributeType::Value]).expect("value")[..] {
        [Attribute::Value(v)] => v.clone(),
        other => panic!("no CKA_VALUE: {other:?}"),
    }
}

fn churn(module: &str, prefix: &str, seed: u64, len: usize) {
    let (_p, s) = open(module);
    login(&s);
    let mut rng = Rng::new(seed);
    // (n, handle, version) of the objects not deleted.
    let mut live: Vec<(usize, ObjectHandle, u32)> = Vec::new();
    // Long values: more updates than creations, so superseded records pile up and the log is
    // compacted every few steps (and the kill sometimes lands in a compaction).
    let updates = if len > 0 { 2 } else { 1 };
    for n in 0usize.. {
        let label = format!("{prefix}-{n}");
        let h = create(&s, &label, n.is_multiple_of(3), len);
        say(&format!("created {n}"));
        live.push((n, h, 1));
        if rng.below(4) == 0 && live.len() > 1 {
            let (k, h, _) = live.swap_remove(rng.below(live.len() - 1));
            say(&format!("deleting {k}"));
            s.destroy_object(h).expect("C_DestroyObject");
            say(&format!("deleted {k}"));
        }
        for _ in 0..updates {
            if rng.below(2) == 0 {
                continue;
            }
            let i = rng.below(live.len());
            let (k, h, v) = live[i];
            say(&format!("updating {k} {}", v + 1));
            let new = value(&format!("{prefix}-{k}"), v + 1, len);
            s.update_attributes(h, &[Attribute::Value(new)])
                .expect("C_SetAttributeValue");
            say(&format!("updated {k} {}", v + 1));
            live[i].2 = v + 1;
        }
    }
}

fn pins(module: &str, current: &str, other: &str) {
    let (_p, s) = open(module);
    let (mut old, mut new) = (current.to_string(), other.to_string());
    loop {
        say(&format!("setting {new}"));
        s.set_pin(
            &AuthPin::new(old.clone().into()),
            &AuthPin::new(new.clone().into()),
        )
        .expect("C_SetPIN");
        say(&format!("set {new}"));
        std::mem::swap(&mut old, &mut new);
    }
}

fn wrong(module: &str) {
    let (_p, s) = open(module);
    for n in 1.. {
        match s.login(UserType::User, Some(&AuthPin::new("not-the-pin".into()))) {
            Err(Error::Pkcs11(RvError::PinIncorrect, _)) => say(&format!("failed {n}")),
            Err(Error::Pkcs11(RvError::PinLocked, _)) => {
                say("locked");
                return;
            }
            other => panic!("a wrong PIN gave {other:?}"),
        }
    }
}

fn hammer(module: &str, prefix: &str, seconds: u64, seed: u64) {
    let (_p, s) = open(module);
    login(&s);
    let key = |class| {
        s.find_objects(&[
            Attribute::Class(class),
            Attribute::Label(b"hammer-key".to_vec()),
        ])
        .expect("find key")
        .first()
        .copied()
        .expect("the hammer-key pair")
    };
    let (private_key, public_key) = (key(ObjectClass::PRIVATE_KEY), key(ObjectClass::PUBLIC_KEY));
    let mut rng = Rng::new(seed);
    let mut live: BTreeMap<String, (ObjectHandle, u32)> = BTreeMap::new();
    let mut next = 0usize;
    let mut stats = [0usize; 5];
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        match rng.below(10) {
            0..=3 => {
                let label = format!("{prefix}-{next}");
                next += 1;
                let h = create(&s, &label, next.is_multiple_of(2), HAMMER_LEN);
                let found = by_label(&s, &label);
                assert_eq!(found, vec![h], "{label} right after C_CreateObject");
                assert_eq!(value_of(&s, h), value(&label, 1, HAMMER_LEN), "{label}");
                live.insert(label, (h, 1));
                stats[0] += 1;
            }
            4 | 5 if !live.is_empty() => {
                let label = live.keys().nth(rng.below(live.len())).cloned().unwrap();
                let (h, _) = live.remove(&label).unwrap();
                s.destroy_object(h)
                    .unwrap_or_else(|e| panic!("C_DestroyObject {label}: {e}"));
                assert!(
                    by_label(&s, &label).is_empty(),
                    "{label} after C_DestroyObject"
                );
                stats[1] += 1;
            }
            6 => {
                let mut seen = std::collections::BTreeSet::new();
                for h in s
                    .find_objects(&[Attribute::Class(ObjectClass::DATA)])
                    .expect("C_FindObjects")
                {
                    // The other process may delete its objects between the search and the
                    // read: that is CKR_OBJECT_HANDLE_INVALID, not a loss.
                    match s.get_attributes(h, &[AttributeType::Label]).as_deref() {
                        Ok([Attribute::Label(l)]) => {
                            seen.insert(String::from_utf8_lossy(l).into_owned());
                        }
                        Err(Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                        other => panic!("CKA_LABEL of a found object: {other:?}"),
                    }
                }
                for label in live.keys() {
                    assert!(seen.contains(label), "{label} is missing from a search");
                }
                stats[2] += 1;
            }
            7 | 8 => {
                let data = format!("{prefix} {next} {}", rng.next());
                let sig = s
                    .sign(&Mechanism::EcdsaSha256, private_key, data.as_bytes())
                    .expect("C_Sign");
                s.verify(&Mechanism::EcdsaSha256, public_key, data.as_bytes(), &sig)
                    .expect("C_Verify");
                stats[3] += 1;
            }
            _ if !live.is_empty() => {
                let label = live.keys().nth(rng.below(live.len())).cloned().unwrap();
                let (h, v) = live[&label];
                s.update_attributes(h, &[Attribute::Value(value(&label, v + 1, HAMMER_LEN))])
                    .unwrap_or_else(|e| panic!("C_SetAttributeValue {label}: {e}"));
                assert_eq!(value_of(&s, h), value(&label, v + 1, HAMMER_LEN), "{label}");
                live.insert(label, (h, v + 1));
                stats[4] += 1;
            }
            _ => {}
        }
    }
    for (label, (_, v)) in &live {
        say(&format!("live {label} {v}"));
    }
    say(&format!(
        "stats created={} deleted={} searches={} signatures={} updates={}",
        stats[0], stats[1], stats[2], stats[3], stats[4]
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).expect("missing argument");
    match arg(1) {
        "churn" => churn(
            arg(2),
            arg(3),
            arg(4).parse().expect("seed"),
            arg(5).parse().expect("value length"),
        ),
        "pins" => pins(arg(2), arg(3), arg(4)),
        "wrong" => wrong(arg(2)),
        "hammer" => hammer(
            arg(2),
            arg(3),
            arg(4).parse().expect("seconds"),
            arg(5).parse().expect("seed"),
        ),
        other => panic!("unknown mode {other}"),
    }
}
