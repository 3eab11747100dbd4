//! Slots, tokens, sessions, login and PINs, through cryptoki on a temporary soft token store.

use cryptoki::error::RvError;
use cryptoki::object::Attribute;
use cryptoki::session::{SessionState, UserType};
use cryptoki::slot::Slot;
use klyuch_tests::{pin, rv, Fixture, SO_PIN, USER_PIN};

fn slots(f: &Fixture) -> Vec<Slot> {
    f.p11().get_slots_with_token().unwrap()
}

#[test]
fn empty_store_shows_one_uninitialised_token_and_init_adds_a_slot() {
    let f = Fixture::new();
    let s = slots(&f);
    assert_eq!(s.len(), 1, "one slot with an uninitialised token");
    let info = f.p11().get_token_info(s[0]).unwrap();
    assert!(!info.token_initialized());
    let si = f.p11().get_slot_info(s[0]).unwrap();
    assert!(si.token_present());
    // No session on an uninitialised token.
    assert_eq!(
        rv(f.p11().open_rw_session(s[0])),
        RvError::TokenNotRecognized
    );

    f.init_token("first");
    let s = slots(&f);
    assert_eq!(s.len(), 2, "a new empty slot appears after C_InitToken");
    let labels: Vec<String> = s
        .iter()
        .map(|x| f.p11().get_token_info(*x).unwrap().label().to_string())
        .collect();
    assert!(labels.contains(&"first".to_string()), "{labels:?}");
    f.init_token("second");
    assert_eq!(slots(&f).len(), 3);
}

#[test]
fn slot_ids_are_stable_across_restarts() {
    let mut f = Fixture::new();
    let a = f.init_token("alpha");
    let b = f.init_token("beta");
    f.reload();
    let by_label = |f: &Fixture, l: &str| {
        slots(f)
            .into_iter()
            .find(|s| f.p11().get_token_info(*s).unwrap().label() == l)
            .expect(l)
    };
    assert_eq!(by_label(&f, "alpha").id(), a.id());
    assert_eq!(by_label(&f, "beta").id(), b.id());
}

#[test]
fn token_info_tells_the_pin_policy_and_flags() {
    let f = Fixture::new();
    let slot = f.init_token("info");
    let i = f.p11().get_token_info(slot).unwrap();
    assert!(i.token_initialized() && i.user_pin_initialized() && i.login_required() && i.rng());
    assert_eq!(i.min_pin_length(), 4);
    assert_eq!(i.max_pin_length(), 64);
    assert!(!i.user_pin_count_low() && !i.user_pin_locked());
    drop(f);
    let f = Fixture::with_config(
        "[softtoken]\nkdf_iterations = 1000\nmin_pin_len = 6\nmax_pin_len = 8\n",
    );
    let slot = f.empty_slot();
    f.p11().init_token(slot, &pin(SO_PIN), "policy").unwrap();
    let i = f.p11().get_token_info(slot).unwrap();
    assert_eq!((i.min_pin_length(), i.max_pin_length()), (6, 8));
    let s = f.p11().open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(rv(s.init_pin(&pin("12345"))), RvError::PinLenRange);
    assert_eq!(rv(s.init_pin(&pin("123456789"))), RvError::PinLenRange);
    s.init_pin(&pin("123456")).unwrap();
}

#[test]
fn session_states_follow_the_spec() {
    let f = Fixture::new();
    let slot = f.init_token("states");
    let ro = f.p11().open_ro_session(slot).unwrap();
    let rw = f.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        ro.get_session_info().unwrap().session_state(),
        SessionState::RoPublic
    );
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    // SO login is refused while a R/O session exists.
    assert_eq!(
        rv(rw.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::SessionReadOnlyExists
    );
    rw.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(
        ro.get_session_info().unwrap().session_state(),
        SessionState::RoUser
    );
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwUser
    );
    assert_eq!(
        rv(ro.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv(rw.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::UserAnotherAlreadyLoggedIn
    );
    ro.logout().unwrap();
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
    assert_eq!(rv(rw.logout()), RvError::UserNotLoggedIn);
    drop(ro);
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwSecurityOfficer
    );
    // No R/O session while the SO is logged in.
    assert_eq!(
        rv(f.p11().open_ro_session(slot)),
        RvError::SessionReadWriteSoExists
    );
    // Closing the last session ends the login.
    drop(rw);
    let rw = f.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        rw.get_session_info().unwrap().session_state(),
        SessionState::RwPublic
    );
}

#[test]
fn set_pin_and_init_pin() {
    let f = Fixture::new();
    let slot = f.init_token("pins");
    let s = f.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        rv(s.set_pin(&pin("0000"), &pin("5678"))),
        RvError::PinIncorrect
    );
    s.set_pin(&pin(USER_PIN), &pin("5678")).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinIncorrect
    );
    s.login(UserType::User, Some(&pin("5678"))).unwrap();
    s.set_pin(&pin("5678"), &pin("98765")).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin("98765"))).unwrap();
    s.logout().unwrap();
    // C_InitPIN needs the SO.
    assert_eq!(rv(s.init_pin(&pin("1111"))), RvError::UserNotLoggedIn);
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin("1111")).unwrap();
    // The SO changes the SO PIN.
    s.set_pin(&pin(SO_PIN), &pin("87654321")).unwrap();
    s.logout().unwrap();
    s.login(UserType::So, Some(&pin("87654321"))).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&pin("1111"))).unwrap();
    // A R/O session cannot change PINs.
    let ro = f.p11().open_ro_session(slot).unwrap();
    assert_eq!(
        rv(ro.set_pin(&pin("1111"), &pin("2222"))),
        RvError::SessionReadOnly
    );
}

fn flags(f: &Fixture, slot: Slot) -> (bool, bool, bool) {
    let i = f.p11().get_token_info(slot).unwrap();
    (
        i.user_pin_count_low(),
        i.user_pin_final_try(),
        i.user_pin_locked(),
    )
}

#[test]
fn user_pin_locks_after_ten_wrong_tries_and_the_so_unblocks() {
    let mut f = Fixture::new();
    let slot = f.init_token("lockout");
    {
        let s = f.p11().open_rw_session(slot).unwrap();
        for i in 1..=10 {
            assert_eq!(
                rv(s.login(UserType::User, Some(&pin("9999")))),
                RvError::PinIncorrect,
                "try {i}"
            );
            let (low, last, locked) = flags(&f, slot);
            assert!(low || locked, "COUNT_LOW after {i} failures");
            assert_eq!(last, i == 9, "FINAL_TRY after {i} failures");
            assert_eq!(locked, i == 10, "LOCKED after {i} failures");
        }
        // Locked: even the right PIN is refused.
        assert_eq!(
            rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
            RvError::PinLocked
        );
    }
    // A new "process" cannot reset the counter.
    f.reload();
    let slot = klyuch_tests_slot(&f, "lockout");
    assert!(flags(&f, slot).2, "still locked after a restart");
    let s = f.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin(USER_PIN)))),
        RvError::PinLocked
    );
    s.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    s.init_pin(&pin("4321")).unwrap();
    s.logout().unwrap();
    assert_eq!(flags(&f, slot), (false, false, false));
    s.login(UserType::User, Some(&pin("4321"))).unwrap();
}

#[test]
fn a_right_pin_resets_the_counter_and_the_limit_is_configurable() {
    let f = Fixture::with_config("[softtoken]\nkdf_iterations = 1000\nmax_user_pin_failures = 3\n");
    let slot = f.init_token("three");
    let s = f.p11().open_rw_session(slot).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("0000")))),
        RvError::PinIncorrect
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&pin("0000")))),
        RvError::PinIncorrect
    );
    assert_eq!(flags(&f, slot), (true, true, false));
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    s.logout().unwrap();
    assert_eq!(flags(&f, slot), (false, false, false));
    for _ in 0..3 {
        let _ = s.login(UserType::User, Some(&pin("0000")));
    }
    assert!(flags(&f, slot).2);
}

#[test]
fn so_pin_lockout() {
    let f = Fixture::with_config("[softtoken]\nkdf_iterations = 1000\nmax_so_pin_failures = 3\n");
    let slot = f.init_token("so");
    let s = f.p11().open_rw_session(slot).unwrap();
    for _ in 0..3 {
        assert_eq!(
            rv(s.login(UserType::So, Some(&pin("00000000")))),
            RvError::PinIncorrect
        );
    }
    let i = f.p11().get_token_info(slot).unwrap();
    assert!(i.so_pin_locked());
    assert_eq!(
        rv(s.login(UserType::So, Some(&pin(SO_PIN)))),
        RvError::PinLocked
    );
    // The user is unaffected.
    s.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn reinitialising_a_token_wipes_it() {
    let f = Fixture::new();
    let slot = f.init_token("wipe");
    {
        let s = f.user_session(slot);
        s.create_object(&[
            Attribute::Class(cryptoki::object::ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Label(b"keep?".to_vec()),
        ])
        .unwrap();
    }
    assert_eq!(
        rv(f.p11().init_token(slot, &pin("wrong-so"), "wipe")),
        RvError::PinIncorrect
    );
    f.p11().init_token(slot, &pin(SO_PIN), "wiped").unwrap();
    let i = f.p11().get_token_info(slot).unwrap();
    assert_eq!(i.label(), "wiped");
    assert!(!i.user_pin_initialized());
    let s = f.p11().open_rw_session(slot).unwrap();
    assert!(s.find_objects(&[]).unwrap().is_empty());
    // Not while a session is open.
    assert_eq!(
        rv(f.p11().init_token(slot, &pin(SO_PIN), "busy")),
        RvError::SessionExists
    );
}

fn klyuch_tests_slot(f: &Fixture, label: &str) -> Slot {
    slots(f)
        .into_iter()
        .find(|s| f.p11().get_token_info(*s).unwrap().label() == label)
        .expect(label)
}

#[test]
fn always_authenticate_keys_need_a_context_specific_login() {
    use cryptoki::mechanism::Mechanism;
    let f = Fixture::new();
    let slot = f.init_token("ctx");
    let s = f.user_session(slot);
    // RFC 5480 §2.1.1.1: secp256r1.
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (pubk, privk) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(p256), Attribute::Verify(true)],
            &[Attribute::Sign(true), Attribute::AlwaysAuthenticate(true)],
        )
        .unwrap();
    // (cryptoki's one-call sign() runs C_SignInit itself, so the tests use the multi-part calls
    // to put C_Login(CKU_CONTEXT_SPECIFIC) between C_SignInit and the signature.)
    // Without the context login the signature is refused (and the operation ends).
    s.sign_init(&Mechanism::EcdsaSha256, privk).unwrap();
    assert_eq!(rv(s.sign_update(b"m")), RvError::UserNotLoggedIn);
    assert_eq!(rv(s.sign_final()), RvError::OperationNotInitialized);
    // No operation waiting: a context login has nothing to authenticate.
    assert_eq!(
        rv(s.login(UserType::ContextSpecific, Some(&pin(USER_PIN)))),
        RvError::OperationNotInitialized
    );
    // With it, the signature is made; a wrong context PIN counts against the lockout.
    s.sign_init(&Mechanism::EcdsaSha256, privk).unwrap();
    assert_eq!(
        rv(s.login(UserType::ContextSpecific, Some(&pin("0000")))),
        RvError::PinIncorrect
    );
    assert!(f.p11().get_token_info(slot).unwrap().user_pin_count_low());
    s.login(UserType::ContextSpecific, Some(&pin(USER_PIN)))
        .unwrap();
    s.sign_update(b"m").unwrap();
    let sig = s.sign_final().unwrap();
    s.verify(&Mechanism::EcdsaSha256, pubk, b"m", &sig).unwrap();
    // Every new signature needs its own context login.
    s.sign_init(&Mechanism::EcdsaSha256, privk).unwrap();
    assert_eq!(rv(s.sign_update(b"m")), RvError::UserNotLoggedIn);
}
