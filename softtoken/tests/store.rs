//! The soft token store: slots, initialisation, persistence, encryption at rest, PINs and
//! lockout, the object rules seen through the `Token` trait, several instances of one store.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use token_api::ck::*;
use token_api::{AttrRead, SlotSource, Template, Token, UserType};

#[test]
fn empty_store_has_one_uninitialised_slot_and_init_adds_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let src = open(&dir);
    let slots = src.slots().unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].local, 0);
    assert!(!dir.exists(), "the store folder is made on demand");
    let t = src.token(0).unwrap();
    assert_eq!(t.info().flags & CKF_TOKEN_INITIALIZED, 0);
    assert_eq!(t.info().min_pin_len, 4);
    assert_eq!(t.info().max_pin_len, 64);
    assert!(t.find_objects(&RW, &Template::new()).unwrap().is_empty());
    assert_eq!(
        t.login(UserType::User, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_TOKEN_NOT_RECOGNIZED
    );
    // An SO PIN outside the bounds.
    assert_eq!(
        t.init_token(&pin(b"123"), "x").unwrap_err().rv(),
        CKR_PIN_LEN_RANGE
    );

    let t = init_token(&src);
    let info = t.info();
    assert_ne!(info.flags & CKF_TOKEN_INITIALIZED, 0);
    assert_ne!(info.flags & CKF_USER_PIN_INITIALIZED, 0);
    assert_eq!(info.label, "test token");
    assert_eq!(info.serial.len(), 16);
    let slots: Vec<u64> = src.slots().unwrap().iter().map(|s| s.local).collect();
    assert_eq!(slots, vec![0, 1]);
    assert_eq!(
        src.token(1).unwrap().info().flags & CKF_TOKEN_INITIALIZED,
        0
    );
    // Permissions: folders 0700, files 0600.
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in files(&dir) {
        let m = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o600, "{}", f.display());
        let parent = f.parent().unwrap();
        let pm = std::fs::metadata(parent).unwrap().permissions().mode() & 0o777;
        assert_eq!(pm, 0o700, "{}", parent.display());
    }

    // A second token in slot 1; slot numbers stay across restarts.
    let t1 = src.token(1).unwrap();
    t1.init_token(&pin(SO_PIN), "second").unwrap();
    let serial0 = info.serial.clone();
    let serial1 = t1.info().serial;
    drop((t, t1, src));
    let src = open(&dir);
    let slots: Vec<u64> = src.slots().unwrap().iter().map(|s| s.local).collect();
    assert_eq!(slots, vec![0, 1, 2]);
    assert_eq!(src.token(0).unwrap().info().serial, serial0);
    assert_eq!(src.token(1).unwrap().info().serial, serial1);
    assert_eq!(src.token(1).unwrap().info().label, "second");
    assert_eq!(src.slot_info(9).unwrap_err().rv(), CKR_SLOT_ID_INVALID);
}

#[test]
fn another_instance_sees_a_new_token_in_its_uninitialised_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let b = open(tmp.path());
    a.slots().unwrap();
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    assert_eq!(tb.info().flags & CKF_TOKEN_INITIALIZED, 0);
    init_token(&a);
    // Same Arc, now initialised; and a new empty slot appears in b.
    assert_ne!(tb.info().flags & CKF_TOKEN_INITIALIZED, 0);
    let slots: Vec<u64> = b.slots().unwrap().iter().map(|s| s.local).collect();
    assert_eq!(slots, vec![0, 1]);
    // Initialising slot 0 again through b's stale view re-initialises (SO PIN needed).
    assert_eq!(
        tb.init_token(&pin(b"wrong-so-pin"), "x").unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
}

#[test]
fn objects_persist_and_private_ones_need_login() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    t.create_object(&RW, &data("pub", b"public value", true, false))
        .unwrap();
    assert_eq!(
        t.create_object(&RW, &data("priv", b"secret", true, true))
            .unwrap_err()
            .rv(),
        CKR_USER_NOT_LOGGED_IN
    );
    login_user(&t);
    let priv_id = t
        .create_object(&RW, &data("priv", b"secret value", true, true))
        .unwrap();
    assert_eq!(get(&t, priv_id, CKA_VALUE), b"secret value");
    assert_eq!(contents(&t).len(), 2);
    t.logout().unwrap();
    assert_eq!(
        contents(&t),
        vec![("pub".to_string(), b"public value".to_vec())]
    );
    assert_eq!(
        t.get_attributes(&RW, priv_id, &[CKA_LABEL])
            .unwrap_err()
            .rv(),
        CKR_OBJECT_HANDLE_INVALID
    );
    drop((t, src));

    // Another "process".
    let src = open(tmp.path());
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    assert_eq!(contents(&t).len(), 1);
    login_user(&t);
    assert_eq!(
        contents(&t),
        vec![
            ("priv".to_string(), b"secret value".to_vec()),
            ("pub".to_string(), b"public value".to_vec())
        ]
    );
    // The SO does not see private objects.
    t.logout().unwrap();
    t.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(contents(&t).len(), 1);
}

#[test]
fn nothing_secret_is_readable_from_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let secret = b"TOP-SECRET-VALUE-0123456789";
    t.create_object(&RW, &data("private label text", secret, true, true))
        .unwrap();
    for f in files(tmp.path()) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [
            &secret[..],
            b"private label text",
            SO_PIN,
            USER_PIN,
            b"klyuch-tests",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains {:?}",
                f.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn reinitialisation_clears_objects_and_user_pin_keeps_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    t.create_object(&RW, &data("a", b"1", true, false)).unwrap();
    let serial = t.info().serial;
    assert_eq!(
        t.init_token(&pin(b"wrong-so-pin"), "new").unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
    t.init_token(&pin(SO_PIN), "new label").unwrap();
    let info = t.info();
    assert_eq!(info.label, "new label");
    assert_eq!(info.serial, serial);
    assert_eq!(info.flags & CKF_USER_PIN_INITIALIZED, 0);
    // The failed attempt above was forgotten by the successful SO PIN check.
    assert_eq!(info.flags & CKF_SO_PIN_COUNT_LOW, 0);
    assert!(t.find_objects(&RW, &Template::new()).unwrap().is_empty());
    assert_eq!(
        t.login(UserType::User, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_USER_PIN_NOT_INITIALIZED
    );
    let slots: Vec<u64> = src.slots().unwrap().iter().map(|s| s.local).collect();
    assert_eq!(slots, vec![0, 1]);
    // Only one object log is left.
    let logs = files(tmp.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .count();
    assert_eq!(logs, 1);
    // A new instance agrees.
    let src2 = open(tmp.path());
    src2.slots().unwrap();
    let t2 = src2.token(0).unwrap();
    assert!(t2.find_objects(&RW, &Template::new()).unwrap().is_empty());
    assert_eq!(t2.info().label, "new label");
}

#[test]
fn user_pin_lockout_persists_and_so_unblocks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    let wrong = pin(b"wrong-pin");
    let flags = |t: &std::sync::Arc<dyn Token>| t.info().flags;
    assert_eq!(
        t.login(UserType::User, Some(&wrong)).unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
    assert_ne!(flags(&t) & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(flags(&t) & CKF_USER_PIN_FINAL_TRY, 0);
    // A right PIN resets the count.
    login_user(&t);
    t.logout().unwrap();
    assert_eq!(flags(&t) & CKF_USER_PIN_COUNT_LOW, 0);

    assert_eq!(
        t.login(UserType::User, Some(&wrong)).unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
    assert_eq!(
        t.login(UserType::User, Some(&wrong)).unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
    assert_ne!(flags(&t) & CKF_USER_PIN_FINAL_TRY, 0);
    // A new "process" cannot reset the counter.
    drop((t, src));
    let src = open(tmp.path());
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    assert_ne!(flags(&t) & CKF_USER_PIN_FINAL_TRY, 0);
    assert_eq!(
        t.login(UserType::User, Some(&wrong)).unwrap_err().rv(),
        CKR_PIN_INCORRECT
    );
    assert_ne!(flags(&t) & CKF_USER_PIN_LOCKED, 0);
    assert_eq!(
        t.login(UserType::User, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_PIN_LOCKED
    );
    let src2 = open(tmp.path());
    src2.slots().unwrap();
    let t2 = src2.token(0).unwrap();
    assert_eq!(
        t2.login(UserType::User, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_PIN_LOCKED
    );
    assert_eq!(
        t2.set_pin(Some(&pin(USER_PIN)), Some(&pin(b"newpin12")))
            .unwrap_err()
            .rv(),
        CKR_PIN_LOCKED
    );
    // The SO unblocks by setting a new user PIN.
    t2.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    t2.init_pin(Some(&pin(b"fresh-pin"))).unwrap();
    t2.logout().unwrap();
    assert_eq!(
        flags(&t) & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_COUNT_LOW),
        0
    );
    t.login(UserType::User, Some(&pin(b"fresh-pin"))).unwrap();
}

#[test]
fn so_pin_lockout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    let wrong = pin(b"wrong-pin");
    for i in 0..3 {
        assert_eq!(
            t.login(UserType::So, Some(&wrong)).unwrap_err().rv(),
            CKR_PIN_INCORRECT
        );
        let f = t.info().flags;
        if i == 0 {
            assert_ne!(f & CKF_SO_PIN_COUNT_LOW, 0);
        }
        if i == 1 {
            assert_ne!(f & CKF_SO_PIN_FINAL_TRY, 0);
        }
    }
    assert_ne!(t.info().flags & CKF_SO_PIN_LOCKED, 0);
    assert_eq!(
        t.login(UserType::So, Some(&pin(SO_PIN))).unwrap_err().rv(),
        CKR_PIN_LOCKED
    );
    assert_eq!(
        t.init_token(&pin(SO_PIN), "again").unwrap_err().rv(),
        CKR_PIN_LOCKED
    );
    // The user is not affected.
    login_user(&t);
}

#[test]
fn set_pin_and_length_bounds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    // Not logged in: C_SetPIN changes the user PIN.
    assert_eq!(
        t.set_pin(Some(&pin(USER_PIN)), Some(&pin(b"abc")))
            .unwrap_err()
            .rv(),
        CKR_PIN_LEN_RANGE
    );
    assert_eq!(
        t.set_pin(Some(&pin(USER_PIN)), Some(&pin(&[b'1'; 65])))
            .unwrap_err()
            .rv(),
        CKR_PIN_LEN_RANGE
    );
    assert_eq!(
        t.set_pin(Some(&pin(b"not-the-pin")), Some(&pin(b"abcd")))
            .unwrap_err()
            .rv(),
        CKR_PIN_INCORRECT
    );
    t.set_pin(Some(&pin(USER_PIN)), Some(&pin(b"abcd")))
        .unwrap();
    assert_eq!(
        t.login(UserType::User, Some(&pin(USER_PIN)))
            .unwrap_err()
            .rv(),
        CKR_PIN_INCORRECT
    );
    t.login(UserType::User, Some(&pin(b"abcd"))).unwrap();
    // Logged in as the user: still the user PIN.
    t.set_pin(Some(&pin(b"abcd")), Some(&pin(b"efgh"))).unwrap();
    t.logout().unwrap();
    // The SO changes the SO PIN.
    t.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(
        t.init_pin(Some(&pin(b"12"))).unwrap_err().rv(),
        CKR_PIN_LEN_RANGE
    );
    t.set_pin(Some(&pin(SO_PIN)), Some(&pin(b"new-so-pin")))
        .unwrap();
    t.logout().unwrap();
    t.login(UserType::So, Some(&pin(b"new-so-pin"))).unwrap();
    t.logout().unwrap();
    t.login(UserType::User, Some(&pin(b"efgh"))).unwrap();
    assert_eq!(
        t.login(UserType::User, Some(&pin(b"efgh")))
            .unwrap_err()
            .rv(),
        CKR_USER_ALREADY_LOGGED_IN
    );
    assert_eq!(
        t.login(UserType::So, Some(&pin(b"new-so-pin")))
            .unwrap_err()
            .rv(),
        CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    );
    assert_eq!(
        t.login(UserType::User, None).unwrap_err().rv(),
        CKR_ARGUMENTS_BAD
    );
}

#[test]
fn kdf_iterations_are_raised_at_the_next_login() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    init_token(&src);
    let meta_path = files(tmp.path())
        .into_iter()
        .find(|p| p.ends_with("meta"))
        .unwrap();
    let paths = softtoken::store::TokenPaths::new(meta_path.parent().unwrap().to_path_buf());
    assert_eq!(paths.read_meta().unwrap().0.user.unwrap().iterations, 1000);
    let mut c = cfg();
    c.kdf_iterations = 3000;
    let src = open_with(tmp.path(), c);
    src.slots().unwrap();
    let t = src.token(0).unwrap();
    login_user(&t);
    let m = paths.read_meta().unwrap().0;
    assert_eq!(m.user.unwrap().iterations, 3000);
    assert_eq!(m.so.iterations, 1000);
    t.logout().unwrap();
    login_user(&t);
}

#[test]
fn session_objects_live_with_their_session() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    // R/O sessions may make session objects but not token objects.
    let s = t
        .create_object(&RO, &data("sess", b"v", false, false))
        .unwrap();
    assert_eq!(
        t.create_object(&RO, &data("tok", b"v", true, false))
            .unwrap_err()
            .rv(),
        CKR_SESSION_READ_ONLY
    );
    // Visible from another session of the process.
    assert_eq!(t.find_objects(&RW, &by_label("sess")).unwrap(), vec![s]);
    assert_eq!(get(&t, s, CKA_TOKEN), vec![0]);
    // Not seen by another instance.
    let other = open(tmp.path());
    other.slots().unwrap();
    assert!(
        other
            .token(0)
            .unwrap()
            .find_objects(&RW, &by_label("sess"))
            .unwrap()
            .is_empty()
    );
    t.session_closed(RW.handle);
    assert_eq!(t.find_objects(&RW, &by_label("sess")).unwrap(), vec![s]);
    t.session_closed(RO.handle);
    assert!(t.find_objects(&RW, &by_label("sess")).unwrap().is_empty());

    // Private session objects go at logout.
    login_user(&t);
    let p = t
        .create_object(&RW, &data("psess", b"v", false, true))
        .unwrap();
    assert_eq!(t.find_objects(&RW, &by_label("psess")).unwrap(), vec![p]);
    t.logout().unwrap();
    login_user(&t);
    assert!(t.find_objects(&RW, &by_label("psess")).unwrap().is_empty());
}

#[test]
fn attribute_rules_through_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    let id = t
        .create_object(&RW, &data("obj", b"v", true, false))
        .unwrap();
    let rv = |r: token_api::Result<()>| r.unwrap_err().rv();
    let mut ch = Template::new();
    ch.set(CKA_LABEL, b"renamed".to_vec());
    assert_eq!(rv(t.set_attributes(&RO, id, &ch)), CKR_SESSION_READ_ONLY);
    t.set_attributes(&RW, id, &ch).unwrap();
    assert_eq!(label_of(&t, id), "renamed");
    let mut ch = Template::new();
    ch.set_bool(CKA_TOKEN, false);
    assert_eq!(rv(t.set_attributes(&RW, id, &ch)), CKR_ATTRIBUTE_READ_ONLY);
    let mut ch = Template::new();
    ch.set(CKA_MODULUS, vec![1]);
    assert_eq!(
        rv(t.set_attributes(&RW, id, &ch)),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    let mut ch = Template::new();
    ch.set(CKA_UNIQUE_ID, b"x".to_vec());
    assert_eq!(rv(t.set_attributes(&RW, id, &ch)), CKR_ATTRIBUTE_READ_ONLY);
    assert_eq!(
        t.get_attributes(&RW, id, &[CKA_MODULUS, CKA_LABEL])
            .unwrap(),
        vec![
            AttrRead::Invalid,
            AttrRead::Value(b"renamed".to_vec().into())
        ]
    );
    assert_eq!(get(&t, id, CKA_UNIQUE_ID).len(), 32);

    // Copies: to a session object, changing the label; not-modifiable, not-destroyable.
    let mut ct = Template::new();
    ct.set_bool(CKA_TOKEN, false);
    ct.set(CKA_LABEL, b"copy".to_vec());
    ct.set_bool(CKA_MODIFIABLE, false);
    ct.set_bool(CKA_DESTROYABLE, false);
    let c = t.copy_object(&RO, id, &ct).unwrap();
    assert_eq!(label_of(&t, c), "copy");
    assert_eq!(get(&t, c, CKA_VALUE), b"v");
    assert_ne!(get(&t, c, CKA_UNIQUE_ID), get(&t, id, CKA_UNIQUE_ID));
    let mut ch = Template::new();
    ch.set(CKA_LABEL, b"x".to_vec());
    assert_eq!(rv(t.set_attributes(&RW, c, &ch)), CKR_ACTION_PROHIBITED);
    assert_eq!(rv(t.destroy_object(&RW, c)), CKR_ACTION_PROHIBITED);
    let mut ct = Template::new();
    ct.set_bool(CKA_TOKEN, true);
    assert_eq!(
        t.copy_object(&RO, id, &ct).unwrap_err().rv(),
        CKR_SESSION_READ_ONLY
    );
    ct.set_bool(CKA_PRIVATE, true);
    assert_eq!(
        t.copy_object(&RW, id, &ct).unwrap_err().rv(),
        CKR_USER_NOT_LOGGED_IN
    );
    let mut nocopy = data("nocopy", b"v", false, false);
    nocopy.set_bool(CKA_COPYABLE, false);
    let nc = t.create_object(&RW, &nocopy).unwrap();
    assert_eq!(
        t.copy_object(&RW, nc, &Template::new()).unwrap_err().rv(),
        CKR_ACTION_PROHIBITED
    );

    // Template errors at creation.
    let mut bad = data("bad", b"v", true, false);
    bad.set(CKA_ID, b"x".to_vec());
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_ATTRIBUTE_TYPE_INVALID
    );
    let mut bad = Template::new();
    bad.set(CKA_LABEL, b"x".to_vec());
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_TEMPLATE_INCOMPLETE
    );
    let mut bad = data("bad", b"v", true, false);
    bad.0.push(token_api::Attribute::bool(CKA_TOKEN, false));
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_TEMPLATE_INCONSISTENT
    );
    let mut bad = data("bad", b"v", true, false);
    bad.set(CKA_PRIVATE, vec![1, 2]);
    assert_eq!(
        t.create_object(&RW, &bad).unwrap_err().rv(),
        CKR_ATTRIBUTE_VALUE_INVALID
    );

    // Destroy.
    assert_eq!(rv(t.destroy_object(&RO, id)), CKR_SESSION_READ_ONLY);
    t.destroy_object(&RW, id).unwrap();
    assert_eq!(rv(t.destroy_object(&RW, id)), CKR_OBJECT_HANDLE_INVALID);
    assert_eq!(
        t.object_size(&RW, id).unwrap_err().rv(),
        CKR_OBJECT_HANDLE_INVALID
    );
    assert!(t.object_size(&RW, c).unwrap() > 0);
}

#[test]
fn finds_use_any_template() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    login_user(&t);
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut d = data(&format!("obj{}", i % 5), &[i as u8], true, i % 2 == 0);
        d.set(CKA_OBJECT_ID, vec![i as u8]);
        ids.push(t.create_object(&RW, &d).unwrap());
    }
    assert_eq!(t.find_objects(&RW, &Template::new()).unwrap().len(), 20);
    assert_eq!(t.find_objects(&RW, &by_label("obj3")).unwrap().len(), 4);
    let mut s = Template::new();
    s.set_ulong(CKA_CLASS, CKO_DATA);
    assert_eq!(t.find_objects(&RW, &s).unwrap().len(), 20);
    s.set_bool(CKA_PRIVATE, true);
    assert_eq!(t.find_objects(&RW, &s).unwrap().len(), 10);
    let mut s = by_label("obj3");
    s.set(CKA_OBJECT_ID, vec![8]);
    assert_eq!(t.find_objects(&RW, &s).unwrap(), vec![ids[8]]);
    let mut s = Template::new();
    s.set_ulong(CKA_CLASS, CKO_CERTIFICATE);
    assert!(t.find_objects(&RW, &s).unwrap().is_empty());
    let mut s = Template::new();
    s.set_bool(CKA_TOKEN, true);
    s.set(CKA_VALUE, vec![7]);
    assert_eq!(t.find_objects(&RW, &s).unwrap(), vec![ids[7]]);
    t.logout().unwrap();
    assert_eq!(t.find_objects(&RW, &Template::new()).unwrap().len(), 10);
}

#[test]
fn two_instances_see_each_others_changes_without_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    login_user(&ta);
    login_user(&tb);
    // b has read the (empty) store.
    assert!(tb.find_objects(&RW, &Template::new()).unwrap().is_empty());
    let id = ta
        .create_object(&RW, &data("from-a", b"1", true, false))
        .unwrap();
    let pid = ta
        .create_object(&RW, &data("private-from-a", b"2", true, true))
        .unwrap();
    assert_eq!(tb.find_objects(&RW, &by_label("from-a")).unwrap(), vec![id]);
    assert_eq!(
        tb.find_objects(&RW, &by_label("private-from-a")).unwrap(),
        vec![pid]
    );
    assert_eq!(get(&tb, pid, CKA_VALUE), b"2");

    // Concurrent changes of one object through both: neither is lost.
    let mut ch = Template::new();
    ch.set(CKA_LABEL, b"renamed-by-a".to_vec());
    ta.set_attributes(&RW, id, &ch).unwrap();
    let mut ch = Template::new();
    ch.set(CKA_APPLICATION, b"app-by-b".to_vec());
    tb.set_attributes(&RW, id, &ch).unwrap();
    for t in [&ta, &tb] {
        assert_eq!(label_of(t, id), "renamed-by-a");
        assert_eq!(get(t, id, CKA_APPLICATION), b"app-by-b");
    }
    // Deletion by b is seen by a.
    tb.destroy_object(&RW, id).unwrap();
    assert!(
        ta.find_objects(&RW, &by_label("renamed-by-a"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ta.destroy_object(&RW, id).unwrap_err().rv(),
        CKR_OBJECT_HANDLE_INVALID
    );
    // Objects made by both, interleaved, are all there for a third instance.
    for i in 0..10 {
        let t = if i % 2 == 0 { &ta } else { &tb };
        t.create_object(&RW, &data(&format!("n{i}"), b"x", true, false))
            .unwrap();
    }
    let c = open(tmp.path());
    c.slots().unwrap();
    let tc = c.token(0).unwrap();
    assert_eq!(tc.find_objects(&RW, &Template::new()).unwrap().len(), 10);
    login_user(&tc);
    assert_eq!(tc.find_objects(&RW, &Template::new()).unwrap().len(), 11);
}

#[test]
fn compaction_keeps_everything_and_others_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open(tmp.path());
    let ta = init_token(&a);
    login_user(&ta);
    let b = open(tmp.path());
    b.slots().unwrap();
    let tb = b.token(0).unwrap();
    login_user(&tb);
    let sa = a.soft_token(0).unwrap();
    sa.set_compact_threshold(4096).unwrap();
    let keep = ta
        .create_object(&RW, &data("keep", b"k", true, true))
        .unwrap();
    let gone = ta
        .create_object(&RW, &data("gone", b"g", true, false))
        .unwrap();
    let id = ta
        .create_object(&RW, &data("changing", &[0; 100], true, false))
        .unwrap();
    assert_eq!(tb.find_objects(&RW, &Template::new()).unwrap().len(), 3);
    let before = sa.stats().unwrap();
    for i in 0..100u32 {
        let mut ch = Template::new();
        ch.set(CKA_VALUE, i.to_le_bytes().repeat(25));
        ta.set_attributes(&RW, id, &ch).unwrap();
    }
    ta.destroy_object(&RW, gone).unwrap();
    let after = sa.stats().unwrap();
    assert!(
        after.log_bytes < before.log_bytes + 100 * 150,
        "{before:?} {after:?}"
    );
    // b follows the compacted log.
    assert_eq!(get(&tb, id, CKA_VALUE), 99u32.to_le_bytes().repeat(25));
    assert_eq!(get(&tb, keep, CKA_VALUE), b"k");
    assert_eq!(tb.find_objects(&RW, &Template::new()).unwrap().len(), 2);
    // New objects after compaction get fresh ids, also in b.
    let n = tb
        .create_object(&RW, &data("new", b"n", true, false))
        .unwrap();
    assert!(n > id);
    assert_eq!(ta.find_objects(&RW, &by_label("new")).unwrap(), vec![n]);
    sa.compact().unwrap();
    let c = open(tmp.path());
    c.slots().unwrap();
    let tc = c.token(0).unwrap();
    login_user(&tc);
    assert_eq!(contents(&tc), contents(&ta));
    let n2 = tc
        .create_object(&RW, &data("newer", b"n", true, false))
        .unwrap();
    assert!(n2 > n);
}

#[test]
fn init_pin_needs_the_so() {
    let tmp = tempfile::tempdir().unwrap();
    let src = open(tmp.path());
    let t = init_token(&src);
    assert_eq!(
        t.init_pin(Some(&pin(USER_PIN))).unwrap_err().rv(),
        CKR_USER_NOT_LOGGED_IN
    );
    t.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(t.init_pin(None).unwrap_err().rv(), CKR_ARGUMENTS_BAD);
}
