//! Integration tests through the real pcscd, the vsmartcard vpcd reader and
//! `klyuch-card-emulator`. Each test is skipped (with the reason printed) when pcscd, the vpcd
//! reader or the emulator binary is missing.
//!
//! * reader: `KLYUCH_PCSC_TEST_PORT` (default 35964 = "Virtual PCD 00 01"; 35963 belongs to the
//!   emulator's own tests);
//! * emulator: `KLYUCH_CARD_EMULATOR`, else `klyuch-card-emulator` next to this test's target
//!   directory (`cargo build -p klyuch-card-emulator` first).
//!
//! The tests share one reader, so they take a lock and run one at a time.

use pcsc_backend::PcscSource;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use token_api::ck::*;
use token_api::config::Config;
use token_api::{Mechanism, Pin, SessionCtx, SlotSource, Template, Token, UserType};

static ONE_READER: Mutex<()> = Mutex::new(());

fn port() -> u16 {
    std::env::var("KLYUCH_PCSC_TEST_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(35964)
}

fn reader_name() -> String {
    format!("Virtual PCD 00 {:02}", port() - 35963)
}

fn emulator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KLYUCH_CARD_EMULATOR") {
        return Some(PathBuf::from(p));
    }
    // target/<profile>/deps/pcscd-xxxx → target/<profile>/klyuch-card-emulator
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let p = dir.join("klyuch-card-emulator");
    p.exists().then_some(p)
}

/// The cross-process lock of a vpcd port, shared with the emulator's own test harness
/// (`/tmp/klyuch-vpcd-<port>.lock`, an exclusive `flock`): nextest runs tests in parallel
/// processes.
#[allow(clippy::incompatible_msrv)]
fn lock_port() -> Result<std::fs::File, String> {
    let path = std::env::temp_dir().join(format!("klyuch-vpcd-{}.lock", port()));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.lock()
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(f)
}

struct Env {
    _guard: MutexGuard<'static, ()>,
    _port_lock: std::fs::File,
    emu: PathBuf,
    state: tempfile::TempDir,
    child: Option<Child>,
}

macro_rules! skip {
    ($($t:tt)*) => {{
        eprintln!("SKIPPED: {}", format!($($t)*));
        return;
    }};
}

fn reader_has_card(present: bool) -> bool {
    let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
        return false;
    };
    let name = std::ffi::CString::new(reader_name()).unwrap();
    let mut st = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    if ctx.get_status_change(Duration::ZERO, &mut st).is_err() {
        return false;
    }
    st[0].event_state().contains(pcsc::State::PRESENT) == present
}

impl Env {
    /// Why the environment is not usable, if it is not.
    fn new() -> Result<Env, String> {
        let guard = ONE_READER.lock().unwrap_or_else(|p| p.into_inner());
        let port_lock = lock_port()?;
        let ctx =
            pcsc::Context::establish(pcsc::Scope::User).map_err(|e| format!("no pcscd ({e})"))?;
        let readers = ctx
            .list_readers_owned()
            .map_err(|e| format!("no readers ({e})"))?;
        if !readers.iter().any(|r| r.to_string_lossy() == reader_name()) {
            return Err(format!("no reader {:?} (vsmartcard-vpcd)", reader_name()));
        }
        let emu = emulator()
            .ok_or("no klyuch-card-emulator binary (cargo build -p klyuch-card-emulator)")?;
        if !reader_has_card(false) {
            return Err(format!(
                "{:?} already has a card (someone else's test?)",
                reader_name()
            ));
        }
        Ok(Env {
            _guard: guard,
            _port_lock: port_lock,
            emu,
            state: tempfile::tempdir().map_err(|e| e.to_string())?,
            child: None,
        })
    }

    fn insert(&mut self, profile: &str, extra: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new(&self.emu);
        cmd.args([
            "--profile",
            profile,
            "--port",
            &port().to_string(),
            "--state",
        ])
        .arg(self.state.path())
        .arg("--provision")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("emulator: {e}"))?;
        let t0 = Instant::now();
        while !reader_has_card(true) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("emulator exited: {status}"));
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                return Err("the card did not appear in the reader".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    fn remove(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let t0 = Instant::now();
        while !reader_has_card(false) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.remove();
    }
}

fn session() -> SessionCtx {
    SessionCtx {
        handle: 1,
        rw: true,
    }
}

fn find(t: &dyn Token, class: CK_OBJECT_CLASS) -> Vec<u64> {
    let mut tmpl = Template::new();
    tmpl.set_ulong(CKA_CLASS, class);
    t.find_objects(&session(), &tmpl).unwrap()
}

fn attr(t: &dyn Token, o: u64, ty: CK_ATTRIBUTE_TYPE) -> Vec<u8> {
    match t.get_attributes(&session(), o, &[ty]).unwrap().remove(0) {
        token_api::AttrRead::Value(v) => v.to_vec(),
        other => panic!("attribute {ty:#x}: {other:?}"),
    }
}

fn by_id(t: &dyn Token, class: CK_OBJECT_CLASS, id: u8) -> u64 {
    let mut tmpl = Template::new();
    tmpl.set_ulong(CKA_CLASS, class);
    tmpl.set(CKA_ID, vec![id]);
    let v = t.find_objects(&session(), &tmpl).unwrap();
    assert_eq!(v.len(), 1, "class {class} id {id:02x}");
    v[0]
}

fn openssl_verify(cert_der: &[u8], sig_der: &[u8], data: &[u8], digest: &str, dir: &Path) {
    std::fs::write(dir.join("cert.der"), cert_der).unwrap();
    std::fs::write(dir.join("sig.bin"), sig_der).unwrap();
    std::fs::write(dir.join("data.bin"), data).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(dir.join("cert.der"))
        .args(["-pubkey", "-noout", "-out"])
        .arg(dir.join("pub.pem"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .args(["dgst", digest, "-verify"])
        .arg(dir.join("pub.pem"))
        .arg("-signature")
        .arg(dir.join("sig.bin"))
        .arg(dir.join("data.bin"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// r || s to ECDSA-Sig-Value DER (for OpenSSL).
fn ecdsa_der(raw: &[u8]) -> Vec<u8> {
    let int = |v: &[u8]| {
        let i = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
        let mut v = v[i..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut o = vec![0x02, v.len() as u8];
        o.extend(v);
        o
    };
    let (r, s) = raw.split_at(raw.len() / 2);
    let body = [int(r), int(s)].concat();
    let mut o = vec![0x30, body.len() as u8];
    o.extend(body);
    o
}

/// Wait for an event on `slot`, ignoring events of other readers (other tests may be using
/// "Virtual PCD 00 00" at the same time).
fn wait_for(src: &PcscSource, slot: u64, timeout: Duration) -> Option<u64> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        match src
            .wait_event(timeout.saturating_sub(t0.elapsed()))
            .unwrap()
        {
            Some(s) if s == slot => return Some(s),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

fn open_token(src: &PcscSource) -> (u64, Arc<dyn Token>) {
    let slot = src.slot_of(&reader_name()).expect("reader slot");
    (slot, src.token(slot).expect("token"))
}

#[test]
fn piv_list_login_sign_verify_and_apdu_counts() {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    if let Err(why) = env.insert("piv", &[]) {
        skip!("{why}");
    }
    let src = PcscSource::new(&Config::default()).unwrap();
    let before = src.apdu_count();
    let slots = src.slots().unwrap();
    assert!(slots.iter().any(|s| s.info.description == reader_name()
        && s.info.flags & CKF_TOKEN_PRESENT != 0
        && s.info.flags & CKF_HW_SLOT != 0
        && s.info.flags & CKF_REMOVABLE_DEVICE != 0));
    assert_eq!(
        src.apdu_count(),
        before,
        "slots() must not talk to the card"
    );
    let (slot, tok) = open_token(&src);
    let start = src.apdu_count() - before;
    // One token, one Arc: the module recognises a token's sessions by Arc identity.
    assert!(Arc::ptr_eq(&tok, &src.token(slot).unwrap()));
    let ct = src.card_token(slot).unwrap();
    assert_eq!(ct.profile_name(), "piv");
    let info = tok.info();
    assert_eq!(info.label, "PIV card");
    assert!(info.flags & CKF_LOGIN_REQUIRED != 0);

    // enumeration: certificates and public keys, no private keys before login; no APDUs
    let n0 = src.apdu_count();
    let certs = find(tok.as_ref(), CKO_CERTIFICATE);
    let pubs = find(tok.as_ref(), CKO_PUBLIC_KEY);
    assert_eq!(certs.len(), 2, "9A and 9C certificates");
    assert_eq!(pubs.len(), 2);
    assert!(find(tok.as_ref(), CKO_PRIVATE_KEY).is_empty());
    let all = tok.find_objects(&session(), &Template::new()).unwrap();
    for _ in 0..10 {
        tok.find_objects(&session(), &Template::new()).unwrap();
        tok.info();
        src.slot_info(slot).unwrap();
    }
    let find_apdus = src.apdu_count() - n0;
    assert_eq!(
        find_apdus, 0,
        "repeated enumeration must not touch the card"
    );

    // wrong PIN: counted down, flag
    let e = tok
        .login(UserType::User, Some(&Pin::new(b"000000")))
        .unwrap_err();
    assert_eq!(e.rv(), CKR_PIN_INCORRECT);
    assert!(tok.info().flags & CKF_USER_PIN_COUNT_LOW != 0);
    let n0 = src.apdu_count();
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let login_apdus = src.apdu_count() - n0;
    assert_eq!(tok.info().flags & CKF_USER_PIN_COUNT_LOW, 0);
    assert_eq!(find(tok.as_ref(), CKO_PRIVATE_KEY).len(), 2);

    // RSA-2048 on 9A (ID 01), SHA256-RSA-PKCS
    let key = by_id(tok.as_ref(), CKO_PRIVATE_KEY, 1);
    let cert = attr(
        tok.as_ref(),
        by_id(tok.as_ref(), CKO_CERTIFICATE, 1),
        CKA_VALUE,
    );
    let data = b"klyuch signs on the card".to_vec();
    let n0 = src.apdu_count();
    let mut op = tok
        .sign_init(&session(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
        .unwrap();
    assert!(!op.needs_context_login());
    let sig = op.sign(&data).unwrap();
    let one_sig = src.apdu_count() - n0;
    assert_eq!(sig.len(), 256);
    let dir = tempfile::tempdir().unwrap();
    openssl_verify(&cert, &sig, &data, "-sha256", dir.path());
    let n0 = src.apdu_count();
    for i in 0..10u8 {
        let mut op = tok
            .sign_init(&session(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
            .unwrap();
        op.update(&[i]).unwrap();
        op.finish().unwrap();
    }
    let ten_sigs = src.apdu_count() - n0;

    // ECDSA P-256 on 9C (ID 02): always-authenticate
    let key = by_id(tok.as_ref(), CKO_PRIVATE_KEY, 2);
    assert_eq!(attr(tok.as_ref(), key, CKA_ALWAYS_AUTHENTICATE), vec![1]);
    let cert = attr(
        tok.as_ref(),
        by_id(tok.as_ref(), CKO_CERTIFICATE, 2),
        CKA_VALUE,
    );
    let mut op = tok
        .sign_init(&session(), &Mechanism::new(CKM_ECDSA_SHA256), key)
        .unwrap();
    assert!(op.needs_context_login());
    op.context_login(Some(&Pin::new(b"123456"))).unwrap();
    let n0 = src.apdu_count();
    let sig = op.sign(&data).unwrap();
    let ec_sig = src.apdu_count() - n0;
    assert_eq!(sig.len(), 64);
    openssl_verify(&cert, &ecdsa_der(&sig), &data, "-sha256", dir.path());
    // without the context login the card refuses and we say so
    let mut op = tok
        .sign_init(&session(), &Mechanism::new(CKM_ECDSA_SHA256), key)
        .unwrap();
    assert_eq!(op.sign(&data).unwrap_err().rv(), CKR_USER_NOT_LOGGED_IN);

    eprintln!(
        "APDU counts (Klyuch, emulated PIV): module start with a card present = {start}, \
         C_FindObjects of all {} objects = {find_apdus}, login = {login_apdus}, \
         one signature = {one_sig}, ten signatures = {ten_sigs}, \
         ECDSA on 9C with its context login = {ec_sig}",
        all.len()
    );
    tok.logout().unwrap();
    assert!(find(tok.as_ref(), CKO_PRIVATE_KEY).is_empty());
}

#[test]
fn piv_lockout_and_unblock_with_the_puk() {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    if let Err(why) = env.insert("piv", &[]) {
        skip!("{why}");
    }
    let src = PcscSource::new(&Config::default()).unwrap();
    let (_, tok) = open_token(&src);
    let wrong = Pin::new(b"999999");
    let mut last = 0;
    for _ in 0..10 {
        let e = tok.login(UserType::User, Some(&wrong)).unwrap_err();
        last = e.rv();
        if tok.info().flags & CKF_USER_PIN_LOCKED != 0 {
            break;
        }
        if e.rv() == CKR_PIN_INCORRECT && tok.info().flags & CKF_USER_PIN_FINAL_TRY != 0 {
            continue;
        }
    }
    assert_eq!(last, CKR_PIN_INCORRECT);
    assert!(tok.info().flags & CKF_USER_PIN_LOCKED != 0);
    assert_eq!(
        tok.login(UserType::User, Some(&Pin::new(b"123456")))
            .unwrap_err()
            .rv(),
        CKR_PIN_LOCKED
    );
    // SO = PUK: a wrong PUK is refused at login
    assert_eq!(
        tok.login(UserType::So, Some(&Pin::new(b"00000000")))
            .unwrap_err()
            .rv(),
        CKR_PIN_INCORRECT
    );
    tok.login(UserType::So, Some(&Pin::new(b"12345678")))
        .unwrap();
    tok.init_pin(Some(&Pin::new(b"654321"))).unwrap();
    tok.logout().unwrap();
    assert_eq!(tok.info().flags & CKF_USER_PIN_LOCKED, 0);
    tok.login(UserType::User, Some(&Pin::new(b"654321")))
        .unwrap();
    tok.set_pin(Some(&Pin::new(b"654321")), Some(&Pin::new(b"123456")))
        .unwrap();
    tok.logout().unwrap();
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
}

#[test]
fn removal_mid_session_events_and_reinsertion() {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    let src = PcscSource::new(&Config::default()).unwrap();
    let slot = src.slot_of(&reader_name()).expect("slot");
    assert_eq!(wait_for(&src, slot, Duration::ZERO), None);
    if let Err(why) = env.insert("piv", &[]) {
        skip!("{why}");
    }
    assert_eq!(
        wait_for(&src, slot, Duration::from_secs(5)),
        Some(slot),
        "insertion event"
    );
    let tok = src.token(slot).unwrap();
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let key = by_id(tok.as_ref(), CKO_PRIVATE_KEY, 1);
    let mut op = tok
        .sign_init(&session(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
        .unwrap();
    env.remove();
    let t0 = Instant::now();
    let e = op.sign(b"x").unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "no hang on a dead card"
    );
    assert!(
        matches!(e.rv(), CKR_DEVICE_REMOVED | CKR_TOKEN_NOT_PRESENT),
        "{e}"
    );
    assert!(!tok.alive());
    assert_eq!(
        wait_for(&src, slot, Duration::from_secs(5)),
        Some(slot),
        "removal event"
    );
    assert_eq!(
        src.token(slot).err().map(|e| e.rv()),
        Some(CKR_TOKEN_NOT_PRESENT)
    );
    let info = src.slot_info(slot).unwrap();
    assert_eq!(info.flags & CKF_TOKEN_PRESENT, 0);
    assert!(
        src.slots().unwrap().iter().any(|s| s.local == slot),
        "slot stays"
    );
    // re-insertion: a new, working token
    env.insert("piv", &[]).unwrap();
    assert_eq!(wait_for(&src, slot, Duration::from_secs(5)), Some(slot));
    let tok2 = src.token(slot).unwrap();
    assert!(tok2.alive());
    assert_eq!(tok2.login_state(), None);
    tok2.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let key = by_id(tok2.as_ref(), CKO_PRIVATE_KEY, 1);
    let mut op = tok2
        .sign_init(&session(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
        .unwrap();
    assert_eq!(op.sign(b"x").unwrap().len(), 256);
}

#[test]
fn reset_by_another_program_drops_the_login() {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    if let Err(why) = env.insert("piv", &[]) {
        skip!("{why}");
    }
    let src = PcscSource::new(&Config::default()).unwrap();
    let (_, tok) = open_token(&src);
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let key = by_id(tok.as_ref(), CKO_PRIVATE_KEY, 1);
    // another program connects and resets the card
    {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
        let name = std::ffi::CString::new(reader_name()).unwrap();
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .unwrap();
        card.disconnect(pcsc::Disposition::ResetCard)
            .map_err(|(_, e)| e)
            .unwrap();
    }
    let mut op = tok
        .sign_init(&session(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
        .unwrap();
    assert_eq!(op.sign(b"x").unwrap_err().rv(), CKR_USER_NOT_LOGGED_IN);
    assert_eq!(tok.login_state(), None);
    assert!(tok.alive());
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let mut op = tok
        .sign_init(&session(), &Mechanism::new(CKM_SHA256_RSA_PKCS), key)
        .unwrap();
    assert_eq!(op.sign(b"x").unwrap().len(), 256);
}

#[test]
fn cancel_unblocks_a_waiting_thread_within_a_second() {
    let env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    let src = Arc::new(PcscSource::new(&Config::default()).unwrap());
    let s2 = src.clone();
    // Other tests may insert or remove cards in the other readers meanwhile: those events are
    // real and are passed over; only the end of the wait through `cancel` counts.
    let waiter = std::thread::spawn(move || {
        let mut events = 0;
        while let Some(_slot) = s2.wait_event(Duration::from_secs(60)).unwrap() {
            events += 1;
        }
        events
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    src.cancel();
    let events = waiter.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    eprintln!(
        "cancel ended the wait after {:?} ({events} other events passed over)",
        t0.elapsed()
    );
    drop(env);
}

#[test]
fn piv_key_generation_and_certificate_write() {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    if let Err(why) = env.insert("piv", &[]) {
        skip!("{why}");
    }
    let src = PcscSource::new(&Config::default()).unwrap();
    let (_, tok) = open_token(&src);
    tok.login(UserType::User, Some(&Pin::new(b"123456")))
        .unwrap();
    let mut public = Template::new();
    public.set(
        CKA_EC_PARAMS,
        vec![0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
    );
    let mut private = Template::new();
    private.set(CKA_ID, vec![3]);
    let (pubk, privk) = tok
        .generate_key_pair(
            &session(),
            &Mechanism::new(CKM_EC_KEY_PAIR_GEN),
            &public,
            &private,
        )
        .unwrap();
    let point = attr(tok.as_ref(), pubk, CKA_EC_POINT);
    assert_eq!(point.len(), 67);
    assert_eq!(attr(tok.as_ref(), privk, CKA_DERIVE), vec![1]);
    assert_eq!(attr(tok.as_ref(), privk, CKA_LOCAL), vec![1]);
    // ECDH with our own public point: the card answers a 32-byte secret
    let mut t = Template::new();
    t.set_bool(CKA_TOKEN, false);
    t.set_bool(CKA_SENSITIVE, false);
    let m = Mechanism::with(
        CKM_ECDH1_DERIVE,
        token_api::MechParam::Ecdh1 {
            kdf: CKD_NULL,
            shared_data: vec![],
            public_data: point[2..].to_vec(),
        },
    );
    let k = tok.derive_key(&session(), &m, privk, &t).unwrap();
    assert_eq!(attr(tok.as_ref(), k, CKA_VALUE).len(), 32);
    tok.session_closed(1);
}

#[test]
fn gost_token_list_login_sign() {
    let mut env = match Env::new() {
        Ok(e) => e,
        Err(why) => skip!("{why}"),
    };
    if let Err(why) = env.insert("gost", &[]) {
        skip!("the emulator has no working gost profile yet: {why}");
    }
    let src = PcscSource::new(&Config::default()).unwrap();
    let (slot, tok) = open_token(&src);
    assert_eq!(src.card_token(slot).unwrap().profile_name(), "gost");
    assert_eq!(find(tok.as_ref(), CKO_CERTIFICATE).len(), 1);
    assert_eq!(find(tok.as_ref(), CKO_PUBLIC_KEY).len(), 1);
    assert_eq!(
        tok.login(UserType::User, Some(&Pin::new(b"00000000")))
            .unwrap_err()
            .rv(),
        CKR_PIN_INCORRECT
    );
    tok.login(UserType::User, Some(&Pin::new(b"12345678")))
        .unwrap();
    let key = by_id(tok.as_ref(), CKO_PRIVATE_KEY, 1);
    let mut op = tok
        .sign_init(
            &session(),
            &Mechanism::new(token_api::ck::CKM_GOSTR3410_WITH_GOSTR3411_12_256),
            key,
        )
        .unwrap();
    op.update(b"klyuch ").unwrap();
    op.update(b"GOST").unwrap();
    assert_eq!(op.finish().unwrap().len(), 64);
}
