//! Test harness for suites that need a card in a real PC/SC stack: makes sure pcscd runs,
//! puts an emulated card into a vpcd reader, waits until PC/SC sees it, and removes it
//! again. Used by this crate's integration tests and meant for other suites
//! (`klyuch-card-emulator` as a dev-dependency):
//!
//! ```no_run
//! use klyuch_card_emulator::harness::{self, EmulatorBuilder};
//! let Some(card) = harness::skip_unless_ready(
//!     EmulatorBuilder::new("piv").provision(true).start(),
//! ) else {
//!     return; // environment without pcscd/vpcd/opensc: the reason was printed
//! };
//! println!("card in {}", card.reader_name());
//! ```
//!
//! Shared resources: one pcscd per machine (socket `/run/pcscd/pcscd.comm`, never stopped
//! here), and the vpcd ports. The port comes from `KLYUCH_VPCD_PORT` (default 35963 =
//! reader "Virtual PCD 00 00"); an exclusive `flock` on `/tmp/klyuch-vpcd-<port>.lock`
//! serialises every user of a port (threads, nextest processes, `with-virtual-card.sh`).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// vpcd's first port (reader "Virtual PCD 00 00"); reader n listens on this + n
/// (interop.md §1.1: `CHANNELID 0x8C7B` = 35963, two slots).
pub const VPCD_BASE_PORT: u16 = 35963;
/// Environment variable with the vpcd port a test suite uses.
pub const PORT_ENV: &str = "KLYUCH_VPCD_PORT";
/// Environment variable with the emulator binary to run.
pub const BINARY_ENV: &str = "KLYUCH_CARD_EMULATOR";
/// The pcscd socket (fixed in pcsc-lite 1.9, interop.md §1.2).
pub const PCSCD_SOCKET: &str = "/run/pcscd/pcscd.comm";
/// The vpcd reader driver of Debian's `vsmartcard-vpcd`.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

/// The port from `KLYUCH_VPCD_PORT`, else 35963.
pub fn port_from_env() -> u16 {
    std::env::var(PORT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(VPCD_BASE_PORT)
}

/// PC/SC name of the vpcd reader on `port` ("Virtual PCD 00 00" for 35963).
pub fn reader_name(port: u16) -> String {
    format!("Virtual PCD 00 {:02}", port.saturating_sub(VPCD_BASE_PORT))
}

/// Why a test cannot run here (a missing package), as opposed to a failure.
#[derive(Debug)]
pub enum StartError {
    Unavailable(String),
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Unavailable(s) => write!(f, "PC/SC test environment unavailable: {s}"),
            StartError::Failed(s) => write!(f, "virtual card failed: {s}"),
        }
    }
}

/// Turns "environment unavailable" into `None` with a printed SKIP line; panics on a real
/// failure.
pub fn skip_unless_ready(r: Result<VirtualCard, StartError>) -> Option<VirtualCard> {
    match r {
        Ok(c) => Some(c),
        Err(StartError::Unavailable(why)) => {
            eprintln!("SKIP: {why}");
            println!("SKIP: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Looks a program up in PATH.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// pcscd, the vpcd driver and opensc-tool (used to watch the reader) must be installed.
pub fn check_environment() -> Result<(), StartError> {
    for prog in ["pcscd", "opensc-tool"] {
        if which(prog).is_none() && !Path::new("/usr/sbin").join(prog).exists() {
            return Err(StartError::Unavailable(format!(
                "`{prog}` is not installed"
            )));
        }
    }
    if !Path::new(VPCD_DRIVER).exists() {
        return Err(StartError::Unavailable(format!(
            "vpcd reader driver {VPCD_DRIVER} missing (Debian package vsmartcard-vpcd)"
        )));
    }
    Ok(())
}

/// True when a pcscd answers on its socket. pcscd listens with a backlog of one, so a busy
/// daemon can refuse a connection now and then: a refusal counts only when it persists (a second
/// pcscd started by mistake rebinds the socket path while the first keeps the vpcd ports).
pub fn pcscd_running() -> bool {
    for _ in 0..10 {
        if UnixStream::connect(PCSCD_SOCKET).is_ok() {
            return true;
        }
        if !Path::new(PCSCD_SOCKET).exists() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Starts pcscd when none runs (as root directly; as a normal user after `sudo -n` made
/// /run/pcscd ours, interop.md §1.2). A pcscd started here is left running for the other
/// tests of the machine; its output goes to `$TMPDIR/klyuch-pcscd.log`.
pub fn ensure_pcscd() -> Result<(), StartError> {
    if pcscd_running() {
        return Ok(());
    }
    // The same lock as scripts/pcscd.sh: tests in parallel processes must not start two.
    let _start = lock_file("klyuch-pcscd.lock")?;
    if pcscd_running() {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false);
    if is_root {
        std::fs::create_dir_all("/run/pcscd")
            .map_err(|e| StartError::Failed(format!("mkdir /run/pcscd: {e}")))?;
    } else {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let ok = Command::new("sudo")
            .args(["-n", "sh", "-c"])
            .arg(format!("mkdir -p /run/pcscd && chown {uid} /run/pcscd"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(StartError::Unavailable(
                "pcscd is not running and /run/pcscd cannot be prepared (no root, no sudo -n)"
                    .into(),
            ));
        }
    }
    let log = std::env::temp_dir().join("klyuch-pcscd.log");
    let out = File::create(&log).map_err(|e| StartError::Failed(e.to_string()))?;
    let err = out
        .try_clone()
        .map_err(|e| StartError::Failed(e.to_string()))?;
    let pcscd = which("pcscd").unwrap_or_else(|| PathBuf::from("/usr/sbin/pcscd"));
    let child = Command::new(pcscd)
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| StartError::Failed(format!("cannot start pcscd: {e}")))?;
    eprintln!(
        "harness: started pcscd (pid {}), left running; log {}",
        child.id(),
        log.display()
    );
    // The child is deliberately not waited for: pcscd outlives this process.
    std::mem::forget(child);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if pcscd_running() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(StartError::Failed(format!(
        "pcscd did not come up; see {}",
        log.display()
    )))
}

/// Card presence in a reader as `opensc-tool -l` reports it (`Nr. Card Features Name`).
pub fn card_present(reader: &str) -> Option<bool> {
    let out = Command::new("opensc-tool").arg("-l").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.trim_end().ends_with(reader))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|c| c == "Yes")
}

/// Waits until the reader shows (`true`) or no longer shows (`false`) a card.
pub fn wait_for_card(reader: &str, present: bool, timeout: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if card_present(reader) == Some(present) {
            return true;
        }
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Takes the exclusive lock of a vpcd port (blocks while another user holds it).
pub fn lock_port(port: u16) -> Result<File, StartError> {
    lock_file(&format!("klyuch-vpcd-{port}.lock"))
}

/// An exclusive `flock` on `$TMPDIR/<name>`, held while the returned file is open.
fn lock_file(name: &str) -> Result<File, StartError> {
    let path = std::env::temp_dir().join(name);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StartError::Failed(format!("{}: {e}", path.display())))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| StartError::Failed(format!("flock {}: {e}", path.display())))?;
    Ok(f)
}

/// Finds the emulator binary: `KLYUCH_CARD_EMULATOR`, else next to the running test
/// executable (`target/<profile>/deps/..` -> `target/<profile>/klyuch-card-emulator`).
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BINARY_ENV) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    for _ in 0..2 {
        let cand = dir.join("klyuch-card-emulator");
        if cand.is_file() {
            return Some(cand);
        }
        dir = dir.parent()?;
    }
    None
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Configures an emulator run.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    profile: String,
    port: u16,
    state: Option<PathBuf>,
    provision: bool,
    args: Vec<String>,
    binary: Option<PathBuf>,
    timeout: Duration,
}

impl EmulatorBuilder {
    /// `piv` or `gost`; port from `KLYUCH_VPCD_PORT`; a fresh temporary state directory.
    pub fn new(profile: &str) -> EmulatorBuilder {
        EmulatorBuilder {
            profile: profile.into(),
            port: port_from_env(),
            state: None,
            provision: false,
            args: Vec::new(),
            binary: None,
            timeout: Duration::from_secs(15),
        }
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Use (and keep) this state directory instead of a temporary one.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state = Some(dir.into());
        self
    }
    pub fn provision(mut self, yes: bool) -> Self {
        self.provision = yes;
        self
    }
    /// An extra command-line argument (`--extra-keys`, `--log`, `--serial`, `--atr` ...).
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Checks the environment, locks the port, starts the emulator and waits until PC/SC
    /// shows the card.
    pub fn start(self) -> Result<VirtualCard, StartError> {
        check_environment()?;
        ensure_pcscd()?;
        let binary = self.binary.clone().or_else(find_binary).ok_or_else(|| {
            StartError::Failed(format!(
                "emulator binary not found: build it (cargo build -p klyuch-card-emulator) or set {BINARY_ENV}"
            ))
        })?;
        let lock = lock_port(self.port)?;
        let (state, temp) = match &self.state {
            Some(d) => (d.clone(), false),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "klyuch-card-{}-{}-{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_nanos())
                        .unwrap_or(0)
                ));
                (d, true)
            }
        };
        let reader = reader_name(self.port);
        // A card left in the reader by a crashed run would hide ours.
        if card_present(&reader) == Some(true) && !wait_for_card(&reader, false, self.timeout) {
            return Err(StartError::Failed(format!(
                "{reader} already holds a card that is not ours"
            )));
        }
        let mut card = VirtualCard {
            builder: self,
            binary,
            state,
            temp_state: temp,
            reader,
            child: None,
            log_path: PathBuf::new(),
            _lock: lock,
        };
        card.insert()?;
        Ok(card)
    }
}

/// A running emulated card. Dropping it removes the card (and a temporary state directory).
#[derive(Debug)]
pub struct VirtualCard {
    builder: EmulatorBuilder,
    binary: PathBuf,
    state: PathBuf,
    temp_state: bool,
    reader: String,
    child: Option<Child>,
    log_path: PathBuf,
    _lock: File,
}

impl VirtualCard {
    /// PC/SC reader name, e.g. "Virtual PCD 00 00".
    pub fn reader_name(&self) -> &str {
        &self.reader
    }
    pub fn port(&self) -> u16 {
        self.builder.port
    }
    pub fn state_dir(&self) -> &Path {
        &self.state
    }
    pub fn is_inserted(&self) -> bool {
        self.child.is_some()
    }
    /// What the emulator printed (with `--log`: the APDU trace, secrets masked).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Starts the emulator (a card insertion) and waits until PC/SC sees the card.
    pub fn insert(&mut self) -> Result<(), StartError> {
        if self.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.state)
            .map_err(|e| StartError::Failed(format!("{}: {e}", self.state.display())))?;
        self.log_path = self.state.join("emulator.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| StartError::Failed(e.to_string()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--profile")
            .arg(&self.builder.profile)
            .arg("--port")
            .arg(self.builder.port.to_string())
            .arg("--state")
            .arg(&self.state);
        if self.builder.provision {
            cmd.arg("--provision");
        }
        cmd.args(&self.builder.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Failed(format!("{}: {e}", self.binary.display())))?;
        self.child = Some(child);
        if !wait_for_card(&self.reader, true, self.builder.timeout) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            self.kill();
            return Err(StartError::Failed(format!(
                "no card in {} after {:?} (emulator exit: {exited:?}); log:\n{}",
                self.reader,
                self.builder.timeout,
                self.log()
            )));
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the emulator (a card removal) and waits until PC/SC sees the reader empty.
    pub fn remove(&mut self) -> Result<(), StartError> {
        self.kill();
        if wait_for_card(&self.reader, false, self.builder.timeout) {
            Ok(())
        } else {
            Err(StartError::Failed(format!(
                "{} still shows a card",
                self.reader
            )))
        }
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        let _ = self.remove();
        if self.temp_state {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}
