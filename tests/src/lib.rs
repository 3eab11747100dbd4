//! Test harness: load the built `libklyuch_pkcs11.so` through the `cryptoki` crate (as any
//! application would), on a temporary soft token store, and run the standard tools against it.
//!
//! Each [`Fixture`] owns a fresh store folder and a configuration file, sets `KLYUCH_TOKEN_DIR`,
//! `KLYUCH_CONF` and `KLYUCH_PCSC=0` (`KLYUCH_PCSC=1` with [`Fixture::with_pcsc`], for the
//! PC/SC tests in `tests/pcsc.rs`), and initialises the module. The module is process-wide, so
//! fixtures are serialised by a lock (nextest runs every test in its own process anyway).
#![forbid(unsafe_code)]

pub mod interop;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "1234";

static LOCK: Mutex<()> = Mutex::new(());

/// The module under test: `KLYUCH_TEST_MODULE`, else the `libklyuch_pkcs11.so` that cargo built
/// next to this test binary (target/<profile>/deps), else target/<profile>/.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KLYUCH_TEST_MODULE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary folder");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        let p = dir.join("libklyuch_pkcs11.so");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "libklyuch_pkcs11.so not found next to {}; build it with cargo build -p pkcs11-module",
        exe.display()
    );
}

/// The workspace root (for scripts and data files).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Is a program on PATH?
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Skip a test (with a visible reason) when a tool is missing.
#[macro_export]
macro_rules! require {
    ($($prog:expr),+) => {
        $(if !$crate::have($prog) {
            eprintln!("SKIPPED: {} is not installed", $prog);
            return;
        })+
    };
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub pkcs11: Option<Pkcs11>,
    /// PC/SC reader slots on ([`Fixture::with_pcsc`]); off for the soft token fixtures.
    pcsc: bool,
    _guard: MutexGuard<'static, ()>,
}

impl Fixture {
    /// A fresh, empty store and a loaded, initialised module.
    pub fn new() -> Fixture {
        Self::with_config("")
    }

    /// As [`Fixture::new`] with extra configuration TOML (appended after the test defaults).
    pub fn with_config(extra: &str) -> Fixture {
        Self::build(extra, false)
    }

    /// As [`Fixture::with_config`], but with the PC/SC backend on (`KLYUCH_PCSC=1`): the
    /// module shows the readers of the running pcscd as slots (source 1, `0x1000000 + n`) next
    /// to the soft tokens of the fixture's store. `extra` is appended to the configuration
    /// (e.g. a `[pcsc]` section with `exclude_readers`).
    pub fn with_pcsc(extra: &str) -> Fixture {
        Self::build(extra, true)
    }

    fn build(extra: &str, pcsc: bool) -> Fixture {
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Fixture {
            dir,
            pkcs11: None,
            pcsc,
            _guard: guard,
        };
        f.write_config(extra);
        for (k, v) in f.env() {
            std::env::set_var(k, v);
        }
        let mut f = f;
        f.pkcs11 = Some(load());
        f
    }

    /// The configuration every test store uses: a fast KDF so logins do not dominate test time.
    fn write_config(&self, extra: &str) {
        let mut text = String::new();
        if !extra.contains("[softtoken]") {
            text.push_str("[softtoken]\nkdf_iterations = 1000\n");
        }
        text.push_str(extra);
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("klyuch.toml")
    }

    /// The environment that points the module at this fixture's store (for child processes).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KLYUCH_TOKEN_DIR", self.store().display().to_string()),
            ("KLYUCH_CONF", self.config_path().display().to_string()),
            ("KLYUCH_PCSC", if self.pcsc { "1" } else { "0" }.into()),
        ]
    }

    pub fn p11(&self) -> &Pkcs11 {
        self.pkcs11.as_ref().expect("module loaded")
    }

    /// Finalise and load again (a "restart" of the application).
    pub fn reload(&mut self) {
        if let Some(p) = self.pkcs11.take() {
            p.finalize().expect("C_Finalize");
        }
        self.pkcs11 = Some(load());
    }

    /// The slot of the first token that is not initialised yet.
    pub fn empty_slot(&self) -> Slot {
        let p = self.p11();
        for s in p.get_slots_with_token().expect("C_GetSlotList") {
            let info = p.get_token_info(s).expect("C_GetTokenInfo");
            if !info.token_initialized() {
                return s;
            }
        }
        panic!("no slot with an uninitialised token");
    }

    /// Initialise a token (SO PIN [`SO_PIN`]) and its user PIN ([`USER_PIN`]); returns its slot.
    pub fn init_token(&self, label: &str) -> Slot {
        let slot = self.empty_slot();
        let p = self.p11();
        p.init_token(slot, &AuthPin::new(SO_PIN.into()), label)
            .expect("C_InitToken");
        let s = p.open_rw_session(slot).expect("C_OpenSession");
        s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
            .expect("SO login");
        s.init_pin(&AuthPin::new(USER_PIN.into()))
            .expect("C_InitPIN");
        s.logout().expect("logout");
        slot
    }

    /// A R/W session logged in as the user.
    pub fn user_session(&self, slot: Slot) -> Session {
        let s = self.p11().open_rw_session(slot).expect("C_OpenSession");
        s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
            .expect("user login");
        s
    }

    /// Run a command with this fixture's environment; panics with its output when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        if !out.status.success() {
            panic!(
                "{program} {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).current_dir(self.dir.path());
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// `pkcs11-tool --module <klyuch> ARGS`.
    pub fn pkcs11_tool(&self, args: &[&str]) -> Output {
        let m = module_path();
        let mut all = vec!["--module", m.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.run("pkcs11-tool", &all)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(p) = self.pkcs11.take() {
            let _ = p.finalize();
        }
    }
}

fn load() -> Pkcs11 {
    let p = Pkcs11::new(module_path()).expect("load libklyuch_pkcs11.so");
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    p
}

/// Text of a process output (stdout then stderr).
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `CKR_*` of a failed call (panics on success or non-PKCS#11 errors).
pub fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> cryptoki::error::RvError {
    match r {
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

pub fn pin(p: &str) -> AuthPin {
    AuthPin::new(p.into())
}

/// `C_GetSlotList`/`C_GetSlotInfo` slot description without the blank padding.
pub fn slot_description(p: &Pkcs11, slot: Slot) -> String {
    p.get_slot_info(slot)
        .map(|i| i.slot_description().trim_end().to_string())
        .unwrap_or_default()
}

/// The slot whose description is `reader` (PC/SC reader slots carry the reader name).
pub fn reader_slot(p: &Pkcs11, reader: &str) -> Option<Slot> {
    p.get_all_slots()
        .ok()?
        .into_iter()
        .find(|s| slot_description(p, *s) == reader)
}
