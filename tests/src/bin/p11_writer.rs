//! A separate process for multi-process and crash tests: opens the first initialised token of
//! the module given as the first argument, logs in, and creates token data objects labelled
//! `<prefix>-<n>` with the value `value-<prefix>-<n>`, printing `created <n>` after each
//! `C_CreateObject` returned `CKR_OK`.
//!
//! usage: p11_writer MODULE PREFIX COUNT [private]
#![forbid(unsafe_code)]

use std::io::Write;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (module, prefix, count) = (&args[1], &args[2], args[3].parse::<usize>().expect("count"));
    let private = args.get(4).is_some_and(|a| a == "private");
    let p = Pkcs11::new(module).expect("load");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("init");
    let slot = p.get_slots_with_initialized_token().expect("slots")[0];
    let s = p.open_rw_session(slot).expect("session");
    s.login(
        UserType::User,
        Some(&AuthPin::new(klyuch_tests::USER_PIN.into())),
    )
    .expect("login");
    let mut out = std::io::stdout().lock();
    for n in 0..count {
        let label = format!("{prefix}-{n}");
        s.create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(private),
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Value(format!("value-{label}").into_bytes()),
        ])
        .expect("C_CreateObject");
        writeln!(out, "created {n}").expect("stdout");
        out.flush().expect("flush");
    }
}
