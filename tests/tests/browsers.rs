//! Real browsers doing TLS client-certificate authentication with a key on a Klyuch token,
//! against `openssl s_server -Verify 1` (it refuses clients without a certificate from the test
//! CA and prints the subject of each client it accepts):
//!
//! * Chromium `--headless` with a key usable without login (`CKA_PRIVATE=false`, made through
//!   cryptoki), the slot marked "friendly" in NSS (`modutil -mechanisms FRIENDLY`) and the
//!   `AutoSelectCertificateForUrls` policy: no PIN is ever asked, nothing to type.
//! * Chromium and Firefox ESR under Xvfb with PIN-protected keys: the browser's own "enter PIN"
//!   dialog is typed into with xdotool, first a wrong PIN (the token counts it:
//!   `CKF_USER_PIN_COUNT_LOW`, seen from the test process), then the right one.
//! * Firefox ESR with Klyuch loaded by the `SecurityDevices` enterprise policy instead of
//!   modutil (/etc/firefox/policies/policies.json, written and removed by the test).
//!
//! Chromium reads policies only from the system folder /etc/chromium/policies/managed, Firefox
//! from /etc/firefox/policies: the tests write their policy file there and remove it afterwards
//! (with the folders they created), holding a machine-wide lock per browser so that no other
//! test sees it. Ports and X displays are picked free per test. Browsers
//! run under `timeout -k`, so a hang fails the test instead of blocking CI. A browser that
//! cannot start here at all (checked with an empty profile, without Klyuch) skips its test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use klyuch_card_emulator::harness::{self, EmulatorBuilder, StartError, VirtualCard};
use klyuch_tests::interop::{skip, wait_until, GlobalLock, Guard, Pki, TlsServer, EC, RSA};
use klyuch_tests::{reader_slot, require, Fixture, USER_PIN};

const CHROMIUM_FLAGS: [&str; 8] = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--password-store=basic",
];

const POLICY_DIR: &str = "/etc/chromium/policies/managed";

/// Can this browser start here at all? (An empty profile, no Klyuch, 30 s at most.)
fn browser_starts(f: &Fixture, browser: &str) -> Result<(), String> {
    let dir = f.path(&format!("probe-{browser}"));
    std::fs::create_dir_all(&dir).unwrap();
    let page = "data:text/html,<p>klyuch-probe</p>";
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "30", browser]).env("HOME", &dir);
    let shot = dir.join("shot.png");
    if browser == "chromium" {
        c.arg("--headless")
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(["--dump-dom", page]);
    } else {
        c.args(["--headless", "--no-remote", "--profile"])
            .arg(&dir)
            .arg("--screenshot")
            .arg(&shot)
            .arg(page);
    }
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{browser}: {e}"))?;
    let ok = if browser == "chromium" {
        String::from_utf8_lossy(&out.stdout).contains("klyuch-probe")
    } else {
        shot.exists()
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{browser} cannot start here ({}): {}",
            out.status,
            klyuch_tests::text(&out)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ))
    }
}

/// An NSS database with Klyuch for a browser (Chromium: `HOME/.pki/nssdb`; Firefox: the
/// profile folder), the test CA trusted for TLS.
fn nss_profile(pki: &Pki<'_>, dir: &Path, friendly: bool) -> String {
    let db = pki.nss_db(dir, true);
    if friendly {
        // "Publicly readable certs": NSS lists the slot's certificates without logging in.
        // Written to pkcs11.txt as slotParams keyed by slot ID (Klyuch's are stable).
        pki.run_for(
            60,
            "modutil",
            &[
                "-dbdir",
                &db,
                "-default",
                "klyuch",
                "-mechanisms",
                "FRIENDLY",
                "-force",
            ],
        );
    }
    db
}

/// A file in a system folder (a browser policy), for as long as this value lives, with a
/// machine-wide lock held; the folders it had to create are removed with it. A file already
/// there is replaced only if it contains `ours` (left by a test that was killed).
struct SystemFile {
    file: Option<PathBuf>,
    created: Vec<PathBuf>,
    _lock: GlobalLock,
}

impl SystemFile {
    fn install(lock: GlobalLock, path: &str, contents: &str, ours: &str) -> Result<Self, String> {
        let path = Path::new(path);
        let mut guard = SystemFile {
            file: None,
            created: Vec::new(),
            _lock: lock,
        };
        if let Ok(old) = std::fs::read_to_string(path) {
            if !old.contains(ours) {
                return Err(format!("{} exists and is not ours", path.display()));
            }
        }
        let mut dir = PathBuf::new();
        for part in path.parent().expect("a folder").components() {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                guard.created.push(dir.clone());
            }
        }
        guard.file = Some(path.to_path_buf());
        std::fs::write(path, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(guard)
    }
}

impl Drop for SystemFile {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
        for d in self.created.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Chromium's `AutoSelectCertificateForUrls` policy for one server (Chromium reads every file
/// in the folder: the lock keeps it to one test at a time).
fn chromium_policy(url: &str, cn: &str) -> Result<SystemFile, String> {
    let lock = GlobalLock::acquire("chromium-policy", Duration::from_secs(300));
    let entry = format!(r#"{{"pattern": "{url}", "filter": {{"SUBJECT": {{"CN": "{cn}"}}}}}}"#);
    let json = format!(
        "{{\"AutoSelectCertificateForUrls\": [{}]}}\n",
        json_string(&entry)
    );
    let file = format!("{POLICY_DIR}/klyuch-tests-autoselect.json");
    SystemFile::install(lock, &file, &json, "AutoSelectCertificateForUrls")
}

/// A JSON string literal (the policy's list entries are JSON objects inside JSON strings).
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A headless Chromium fetches a page with a key that needs no login: the policy picks the
/// certificate, NSS finds the key without C_Login (friendly slot, CKA_PRIVATE=false key), and
/// the module signs the TLS 1.3 CertificateVerify (RSA-PSS).
#[test]
fn chromium_headless_client_auth_with_a_key_usable_without_login() {
    require!("chromium", "certutil", "modutil", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    if let Err(e) = browser_starts(&f, "chromium") {
        skip(&e);
        return;
    }
    let pki = Pki::new(&f, "chromehl");
    const CN: &str = "Klyuch NoLogin Browser Client";
    pki.generate_rsa_usable_without_login("03", "nologin");
    pki.certify_with("ca", "nologin", "03", &format!("/O=Klyuch Test/CN={CN}"));
    // The key really signs in a session that never logged in.
    {
        let s = f.p11().open_ro_session(pki.slot()).unwrap();
        let key = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(vec![3]),
            ])
            .unwrap();
        assert_eq!(key.len(), 1, "the key is visible without login");
        let sig = s
            .sign(&Mechanism::Sha256RsaPkcs, key[0], b"no login")
            .expect("C_Sign without login");
        assert_eq!(sig.len(), 256);
    }

    let home = f.path("chrome-home");
    nss_profile(&pki, &home.join(".pki/nssdb"), true);
    let server = TlsServer::start(&pki, "s_server.log");
    let policy = match chromium_policy(&server.url(""), CN) {
        Ok(p) => p,
        Err(e) => {
            skip(&format!("the Chromium policy folder is not writable: {e}"));
            return;
        }
    };
    let log = f.path("klyuch-chromium.log");
    let start = Instant::now();
    let out = pki
        .command("timeout", &["-k", "5", "30", "chromium", "--headless"])
        .args(CHROMIUM_FLAGS)
        .arg(format!(
            "--user-data-dir={}",
            home.join("profile").display()
        ))
        .args(["--dump-dom", &server.url("/chromium-headless")])
        .env("HOME", &home)
        .env("KLYUCH_LOG", "debug")
        .env("KLYUCH_LOG_FILE", &log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    drop(policy);
    let page = String::from_utf8_lossy(&out.stdout);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        server.saw_client(CN) && page.contains(&format!("CN={CN}")),
        "chromium {} after {:?}\npage: {page}\nstderr: {}\nserver:\n{}",
        out.status,
        start.elapsed(),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert!(calls.contains("C_Sign -> CKR_OK"), "{calls}");
    assert!(!calls.contains("C_Login"), "no login expected:\n{calls}");
    // And it exits cleanly with the module loaded.
    assert!(out.status.success(), "chromium: {}", out.status);
    println!(
        "checked: headless Chromium (AutoSelectCertificateForUrls, friendly slot) authenticated to s_server -Verify 1 with a CKA_PRIVATE=false token key, no C_Login; the server saw {CN}; Chromium exited 0"
    );
}

/// A virtual X display (`Xvfb :N`), on a display number nobody uses.
struct Xvfb {
    display: String,
    _guard: Guard,
}

impl Xvfb {
    fn start() -> Option<Xvfb> {
        let first = 100 + std::process::id() % 400;
        for n in (first..first + 40).map(|n| n % 500 + 100) {
            if Path::new(&format!("/tmp/.X{n}-lock")).exists()
                || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([
                    &format!(":{n}"),
                    "-screen",
                    "0",
                    "1280x1024x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let mut guard = Guard::new("Xvfb", child);
            let socket = format!("/tmp/.X11-unix/X{n}");
            let up = wait_until(Duration::from_secs(10), || {
                Path::new(&socket).exists() || guard.exited().is_some()
            });
            if up && guard.exited().is_none() {
                return Some(Xvfb {
                    display: format!(":{n}"),
                    _guard: guard,
                });
            }
        }
        None
    }

    fn xdotool(&self, args: &[&str]) -> String {
        Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The visible windows whose title contains `name`.
    fn windows(&self, name: &str) -> Vec<String> {
        self.xdotool(&["search", "--onlyvisible", "--name", name])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Wait for a dialog titled `name` (other than `not`), focus it, type `text` and Enter.
    /// Returns the window typed into. (Xvfb has no window manager: `windowfocus`, not
    /// `windowactivate`; a single `search --sync` can die with BadWindow while windows come and
    /// go, so poll.)
    fn type_into(
        &self,
        name: &str,
        not: Option<&str>,
        text: &str,
        limit: Duration,
    ) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(w) = self
                .windows(name)
                .into_iter()
                .find(|w| Some(w.as_str()) != not)
            {
                std::thread::sleep(Duration::from_millis(500));
                self.xdotool(&["windowfocus", "--sync", &w]);
                self.xdotool(&["type", "--delay", "30", text]);
                self.xdotool(&["key", "Return"]);
                return Some(w);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

/// What a browser under Xvfb is expected to do in [`wrong_then_right_pin`].
struct PinFlow<'a> {
    /// The PIN dialog's window title (a part of it).
    dialog: &'a str,
    /// The subject CN of the client certificate the server must see.
    cn: &'a str,
    /// Klyuch's log of the browser process (`KLYUCH_LOG_FILE`).
    log: PathBuf,
    /// The browser's stderr.
    stderr: PathBuf,
    /// The wrong PIN typed first and the right one.
    wrong: &'a str,
    right: &'a str,
    /// Check the soft token's wrong-PIN counter (`CKF_USER_PIN_COUNT_LOW` of `pki`'s token).
    counted: bool,
}

/// The real PIN flow of a browser under Xvfb: wait for its PIN dialog, type a wrong PIN, check
/// that the token counted it, type the right PIN into the dialog the browser shows again, and
/// wait until the server has accepted the client certificate `cn`.
fn wrong_then_right_pin(
    pki: &Pki<'_>,
    x: &Xvfb,
    browser: &mut Guard,
    server: &TlsServer,
    flow: PinFlow<'_>,
) {
    let PinFlow {
        dialog,
        cn,
        log,
        stderr,
        wrong,
        right,
        counted,
    } = flow;
    let (log, stderr) = (log.as_path(), stderr.as_path());
    let calls = || std::fs::read_to_string(log).unwrap_or_default();
    let limit = Duration::from_secs(20);
    assert!(!counted || !pki.user_pin_count_low());
    let first = x.type_into(dialog, None, wrong, limit);
    assert!(
        first.is_some(),
        "no \"{dialog}\" window within {limit:?} ({:?}); windows: {:?}; calls:\n{}",
        browser.exited(),
        x.windows("."),
        calls()
    );
    assert!(
        wait_until(limit, || calls().contains("C_Login -> CKR_PIN_INCORRECT")),
        "the wrong PIN never reached the token:\n{}",
        calls()
    );
    assert!(
        !counted || pki.user_pin_count_low(),
        "the wrong PIN was not counted"
    );

    // The browser asks again; the right PIN this time (retyped if the dialog comes back).
    let mut typed = x.type_into(dialog, first.as_deref(), right, Duration::from_secs(5));
    if typed.is_none() {
        typed = x.type_into(dialog, None, right, limit);
    }
    assert!(
        typed.is_some(),
        "no second \"{dialog}\" window:\n{}",
        calls()
    );
    let start = Instant::now();
    while !server.saw_client(cn) && start.elapsed() < limit {
        if calls().contains("C_Login -> CKR_OK") {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // The Enter may have gone to a window that was closing: type again if it is back.
        x.type_into(dialog, None, right, Duration::from_millis(500));
    }
    let calls = calls();
    assert!(
        server.saw_client(cn),
        "the server never saw {cn} (browser {:?})\nserver:\n{}\nbrowser stderr:\n{}\ncalls:\n{}",
        browser.exited(),
        server.log_text(),
        tail(stderr, 40),
        calls
            .lines()
            .filter(|l| !l.contains("C_FindObjects") && !l.contains("C_GetAttributeValue"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let logins: Vec<&str> = calls
        .lines()
        .filter(|l| l.contains("C_Login ->"))
        .map(|l| l.split("C_Login ->").nth(1).unwrap_or_default().trim())
        .collect();
    assert!(
        logins.len() == 2 && logins[0].starts_with("CKR_PIN_INCORRECT") && logins[1] == "CKR_OK",
        "logins: {logins:?}"
    );
    // (NSS signs in one part, C_Sign, or in several, C_SignUpdate…C_SignFinal.)
    assert!(
        calls.contains("C_Sign -> CKR_OK") || calls.contains("C_SignFinal -> CKR_OK"),
        "{calls}"
    );
    assert!(
        !counted || !pki.user_pin_count_low(),
        "the good login did not reset the counter"
    );
    println!(
        "checked: {dialog}: typed a wrong PIN (C_Login -> CKR_PIN_INCORRECT{}), then the right one (CKR_OK); the module signed; the server saw the client certificate {cn}",
        if counted { ", counted by the token and reset by the good login" } else { "" }
    );
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let t = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Chromium (not headless) under Xvfb asks for the PIN in its "Unlock Security Device" dialog;
/// the policy picks the RSA certificate.
#[test]
fn chromium_pin_dialog_wrong_then_right_pin() {
    require!(
        "chromium",
        "Xvfb",
        "xdotool",
        "certutil",
        "modutil",
        "pkcs11-tool",
        "openssl"
    );
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    if let Err(e) = browser_starts(&f, "chromium") {
        skip(&e);
        return;
    }
    let Some(x) = Xvfb::start() else {
        skip("Xvfb does not start here");
        return;
    };
    let pki = Pki::new(&f, "chromepin");
    let home = f.path("chrome-home");
    nss_profile(&pki, &home.join(".pki/nssdb"), false);
    let server = TlsServer::start(&pki, "s_server.log");
    let policy = match chromium_policy(&server.url(""), RSA.cn) {
        Ok(p) => p,
        Err(e) => {
            skip(&format!("the Chromium policy folder is not writable: {e}"));
            return;
        }
    };
    let log = f.path("klyuch-chromium.log");
    let child = pki
        .command("timeout", &["-k", "5", "60", "chromium"])
        .args(CHROMIUM_FLAGS)
        .arg(format!(
            "--user-data-dir={}",
            home.join("profile").display()
        ))
        .arg(server.url("/chromium-xvfb-pin"))
        .env("HOME", &home)
        .env("DISPLAY", &x.display)
        .env("KLYUCH_LOG", "debug")
        .env("KLYUCH_LOG_FILE", &log)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(f.path("chromium.out")).unwrap())
        .stderr(std::fs::File::create(f.path("chromium.err")).unwrap())
        .spawn()
        .expect("chromium");
    let mut browser = Guard::new("chromium", child);
    let flow = PinFlow {
        dialog: "Unlock Security Device",
        cn: RSA.cn,
        log,
        stderr: f.path("chromium.err"),
        wrong: "9999",
        right: USER_PIN,
        counted: true,
    };
    wrong_then_right_pin(&pki, &x, &mut browser, &server, flow);
    drop(browser);
    drop(policy);
}

/// Firefox ESR on the Xvfb display with `profile`, opening `url`, Klyuch logging to `LOG`.
fn start_firefox(pki: &Pki<'_>, x: &Xvfb, profile: &Path, url: &str, log: &Path) -> Guard {
    let f = pki.f;
    std::fs::write(profile.join("user.js"), FIREFOX_PREFS).unwrap();
    let home = f.path("ff-home");
    std::fs::create_dir_all(&home).unwrap();
    let child = pki
        .command(
            "timeout",
            &["-k", "5", "60", "firefox-esr", "--no-remote", "--profile"],
        )
        .arg(profile)
        .arg(url)
        .env("HOME", &home)
        .env("DISPLAY", &x.display)
        .env("KLYUCH_LOG", "debug")
        .env("KLYUCH_LOG_FILE", log)
        .env("MOZ_CRASHREPORTER_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(f.path("firefox.out")).unwrap())
        .stderr(std::fs::File::create(f.path("firefox.err")).unwrap())
        .spawn()
        .expect("firefox-esr");
    Guard::new("firefox", child)
}

/// Firefox ESR's system policy file on Debian (read at every start, by every profile).
const FIREFOX_POLICY: &str = "/etc/firefox/policies/policies.json";

/// Firefox ESR under Xvfb asks for the PIN in "Password Required"; "Select Automatically" picks
/// the only certificate from the CA the server asks for: an EC key (ECDSA CertificateVerify).
/// Klyuch is added to the profile with modutil.
#[test]
fn firefox_pin_dialog_wrong_then_right_pin() {
    require!(
        "firefox-esr",
        "Xvfb",
        "xdotool",
        "certutil",
        "modutil",
        "pkcs11-tool",
        "openssl"
    );
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    // No policy test may run meanwhile: its SecurityDevices policy would load Klyuch twice.
    let _lock = GlobalLock::acquire("firefox-policy", Duration::from_secs(300));
    if let Err(e) = browser_starts(&f, "firefox-esr") {
        skip(&e);
        return;
    }
    let Some(x) = Xvfb::start() else {
        skip("Xvfb does not start here");
        return;
    };
    let pki = Pki::new(&f, "firefoxpin");
    const CN: &str = "Klyuch Firefox EC Client";
    pki.make_ca("ca2", "Klyuch Test CA 2");
    pki.generate_ec("04", "ffkey");
    pki.certify_with("ca2", "ffkey", "04", &format!("/O=Klyuch Test/CN={CN}"));
    // Only certificates from CA 2 are acceptable to this server.
    let server = TlsServer::start_with_ca(&pki, "s_server.log", "ca2.pem");

    let profile = f.path("ff-profile");
    nss_profile(&pki, &profile, false);
    let log = f.path("klyuch-firefox.log");
    let url = server.url("/firefox-xvfb-pin");
    let mut browser = start_firefox(&pki, &x, &profile, &url, &log);
    let flow = PinFlow {
        dialog: "Password Required",
        cn: CN,
        log,
        stderr: f.path("firefox.err"),
        wrong: "9999",
        right: USER_PIN,
        counted: true,
    };
    wrong_then_right_pin(&pki, &x, &mut browser, &server, flow);
}

/// The `SecurityDevices` enterprise policy (in /etc/firefox/policies/policies.json) loads Klyuch
/// into a profile that does not have it; client authentication then works with the PIN typed
/// into Firefox's dialog.
#[test]
fn firefox_security_devices_policy_loads_klyuch() {
    require!(
        "firefox-esr",
        "Xvfb",
        "xdotool",
        "certutil",
        "pkcs11-tool",
        "openssl"
    );
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let lock = GlobalLock::acquire("firefox-policy", Duration::from_secs(300));
    if let Err(e) = browser_starts(&f, "firefox-esr") {
        skip(&e);
        return;
    }
    let Some(x) = Xvfb::start() else {
        skip("Xvfb does not start here");
        return;
    };
    let pki = Pki::new(&f, "firefoxpolicy");
    let server = TlsServer::start(&pki, "s_server.log");
    // A profile with the test CA only: no modutil.
    let profile = f.path("ff-profile");
    pki.nss_db(&profile, false);
    const DEVICE: &str = "Klyuch (klyuch-tests)";
    let json = format!(
        "{{\"policies\": {{\"SecurityDevices\": {{{}: {}}}}}}}\n",
        json_string(DEVICE),
        json_string(&pki.module())
    );
    let _policy = match SystemFile::install(lock, FIREFOX_POLICY, &json, "klyuch-tests") {
        Ok(p) => p,
        Err(e) => {
            skip(&format!("cannot install the Firefox policy: {e}"));
            return;
        }
    };
    let log = f.path("klyuch-firefox.log");
    let url = server.url("/firefox-policy");
    let mut browser = start_firefox(&pki, &x, &profile, &url, &log);
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    let limit = Duration::from_secs(20);
    let typed = x.type_into("Password Required", None, USER_PIN, limit);
    assert!(
        typed.is_some(),
        "no PIN dialog ({:?}); windows: {:?}\nbrowser stderr:\n{}\ncalls:\n{}",
        browser.exited(),
        x.windows("."),
        tail(&f.path("firefox.err"), 20),
        calls()
    );
    let seen = |s: &TlsServer| s.saw_client(RSA.cn) || s.saw_client(EC.cn);
    let start = Instant::now();
    while !seen(&server) && start.elapsed() < limit {
        if !calls().contains("C_Login -> CKR_OK") {
            x.type_into(
                "Password Required",
                None,
                USER_PIN,
                Duration::from_millis(500),
            );
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        seen(&server),
        "the server saw no token certificate\nserver:\n{}\ncalls:\n{}",
        server.log_text(),
        calls()
    );
    let modules = std::fs::read_to_string(profile.join("pkcs11.txt")).unwrap_or_default();
    assert!(
        modules.contains(&format!("name=\"{DEVICE}\""))
            || modules.contains(&format!("name={DEVICE}")),
        "the policy did not add the module to the profile:\n{modules}"
    );
    drop(browser);
    println!(
        "checked: the Firefox SecurityDevices policy added Klyuch to a profile without it (pkcs11.txt), the PIN was typed into Password Required, and the server saw a token certificate"
    );
}

/// A quiet test profile: the client certificate chosen automatically, no OS certificates, no
/// first-run pages, updates, telemetry or background connections.
const FIREFOX_PREFS: &str = r#"user_pref("security.default_personal_cert", "Select Automatically");
user_pref("security.osclientcerts.autoload", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("trailhead.firstrun.didSeeAboutWelcome", true);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
"#;

// ------------------------------------------------------------------ the emulated PIV card

/// The PIV card's PIN (the emulator's provisioned card, card-emulator/src/piv.rs) and the
/// subject CN of its 9A (PIV Authentication, RSA-2048) self-signed certificate.
const PIV_PIN: &str = "123456";
const PIV_CN: &str = "Klyuch PIV Authentication (9A)";

/// A provisioned PIV card from `klyuch-card-emulator` in a vpcd reader of the running pcscd
/// (the harness starts pcscd when none runs and takes the reader's lock), a fixture with PC/SC on
/// that ignores the other vpcd reader, and the card's 9A certificate as `piv9a.pem` in the
/// fixture folder (the TLS server's only trusted CA). `Err`: why this machine cannot do it.
fn piv_card_fixture() -> Result<(VirtualCard, Fixture), String> {
    let card = match EmulatorBuilder::new("piv").provision(true).start() {
        Ok(c) => c,
        Err(StartError::Unavailable(why)) => return Err(why),
        Err(e) => panic!("{e}"),
    };
    let other = harness::reader_name(if card.port() == harness::VPCD_BASE_PORT {
        harness::VPCD_BASE_PORT + 1
    } else {
        harness::VPCD_BASE_PORT
    });
    let f = Fixture::with_pcsc(&format!("[pcsc]\nexclude_readers = [{other:?}]\n"));
    let slot = reader_slot(f.p11(), card.reader_name())
        .unwrap_or_else(|| panic!("no slot for {}", card.reader_name()));
    {
        let s = f
            .p11()
            .open_ro_session(slot)
            .expect("C_OpenSession on the card");
        let certs = s
            .find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Id(vec![1]),
            ])
            .unwrap();
        assert_eq!(certs.len(), 1, "the 9A certificate (CKA_ID 01)");
        let der = match s
            .get_attributes(certs[0], &[AttributeType::Value])
            .unwrap()
            .pop()
        {
            Some(Attribute::Value(v)) => v,
            other => panic!("{other:?}"),
        };
        std::fs::write(f.path("piv9a.der"), der).unwrap();
    }
    f.run(
        "openssl",
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "piv9a.der",
            "-out",
            "piv9a.pem",
        ],
    );
    let out = f.run(
        "openssl",
        &["x509", "-in", "piv9a.pem", "-noout", "-subject"],
    );
    assert!(
        klyuch_tests::text(&out).contains(PIV_CN),
        "{}",
        klyuch_tests::text(&out)
    );
    Ok((card, f))
}

/// The PIV card with its fixture (see [`piv_card_fixture`]) and an X display for `browser`, or
/// `None` after saying why this machine cannot run the test.
fn piv_browser_setup(browser: &str) -> Option<(VirtualCard, Fixture, Xvfb)> {
    let (card, f) = piv_card_fixture().map_err(|why| skip(&why)).ok()?;
    if let Err(e) = browser_starts(&f, browser) {
        skip(&e);
        return None;
    }
    let Some(x) = Xvfb::start() else {
        skip("Xvfb does not start here");
        return None;
    };
    Some((card, f, x))
}

/// The token label of the card's slot (for the printed report).
fn token_label(f: &Fixture, card: &VirtualCard) -> String {
    reader_slot(f.p11(), card.reader_name())
        .and_then(|s| f.p11().get_token_info(s).ok())
        .map(|i| i.label().trim().to_string())
        .unwrap_or_default()
}

/// Firefox ESR under Xvfb with the emulated PIV card in the virtual reader: Klyuch (added with
/// modutil, PC/SC on) shows the card as a token, "Select Automatically" picks its 9A
/// certificate (the server trusts only that one), Firefox's "Password Required" dialog gets a
/// wrong PIN (the card answers 63Cx: CKR_PIN_INCORRECT) and then the card's PIN; the card signs
/// the TLS CertificateVerify.
#[test]
fn firefox_with_the_emulated_piv_card() {
    require!(
        "firefox-esr",
        "Xvfb",
        "xdotool",
        "certutil",
        "modutil",
        "openssl"
    );
    // No policy test may run meanwhile: its SecurityDevices policy would load Klyuch twice.
    let _lock = GlobalLock::acquire("firefox-policy", Duration::from_secs(300));
    let Some((card, f, x)) = piv_browser_setup("firefox-esr") else {
        return;
    };
    let pki = Pki::files_only(&f, "piv");
    let server = TlsServer::start_with_ca(&pki, "s_server.log", "piv9a.pem");
    let profile = f.path("ff-profile");
    nss_profile(&pki, &profile, false);
    let log = f.path("klyuch-firefox.log");
    let url = server.url("/firefox-piv");
    let mut browser = start_firefox(&pki, &x, &profile, &url, &log);
    let flow = PinFlow {
        dialog: "Password Required",
        cn: PIV_CN,
        log,
        stderr: f.path("firefox.err"),
        wrong: "999999",
        right: PIV_PIN,
        counted: false,
    };
    wrong_then_right_pin(&pki, &x, &mut browser, &server, flow);
    drop(browser);
    println!(
        "checked: Firefox with the emulated PIV card (token {:?} in {}): client authentication with the card's 9A key, wrong PIN then right PIN typed into Password Required; the server saw {PIV_CN}",
        token_label(&f, &card),
        card.reader_name()
    );
}

/// Chromium under Xvfb starts with Klyuch loaded and the virtual reader empty; the PIV card is
/// inserted afterwards, then the running browser is sent to the server (a second `chromium`
/// with the same profile hands the URL over and exits). NSS finds the new token, the policy
/// picks the card's 9A certificate, the PIN goes into "Unlock Security Device" (wrong, then
/// right), and the card signs.
#[test]
fn chromium_with_the_piv_card_inserted_after_the_browser_started() {
    require!("chromium", "Xvfb", "xdotool", "certutil", "modutil", "openssl");
    let Some((mut card, f, x)) = piv_browser_setup("chromium") else {
        return;
    };
    let label = token_label(&f, &card);
    card.remove().expect("remove the card");
    let pki = Pki::files_only(&f, "piv");
    let server = TlsServer::start_with_ca(&pki, "s_server.log", "piv9a.pem");
    let home = f.path("chrome-home");
    nss_profile(&pki, &home.join(".pki/nssdb"), false);
    let policy = match chromium_policy(&server.url(""), PIV_CN) {
        Ok(p) => p,
        Err(e) => {
            skip(&format!("the Chromium policy folder is not writable: {e}"));
            return;
        }
    };
    let log = f.path("klyuch-chromium.log");
    let chromium = |url: &str, out: &str| {
        pki.command("timeout", &["-k", "5", "60", "chromium"])
            .args(CHROMIUM_FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                home.join("profile").display()
            ))
            .arg(url)
            .env("HOME", &home)
            .env("DISPLAY", &x.display)
            .env("KLYUCH_LOG", "debug")
            .env("KLYUCH_LOG_FILE", &log)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(f.path(&format!("{out}.out"))).unwrap())
            .stderr(std::fs::File::create(f.path(&format!("{out}.err"))).unwrap())
            .spawn()
            .expect("chromium")
    };
    // Chromium loads the NSS modules when it first needs a client certificate: a first page
    // from a server that wants one no token has (certified by the file CA) makes it load Klyuch
    // while the reader is empty.
    let before = TlsServer::start_with_ca(&pki, "s_server0.log", "ca.pem");
    let mut browser = Guard::new(
        "chromium",
        chromium(&before.url("/before-the-card"), "chromium"),
    );
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || calls()
            .contains("C_GetSlotList")),
        "Chromium did not load Klyuch ({:?}):\n{}",
        browser.exited(),
        tail(&f.path("chromium.err"), 20)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !calls().contains("C_Login"),
        "nothing to log in to before the card"
    );
    card.insert().expect("insert the card");
    // The running browser opens the page (the second process hands the URL over and exits).
    let mut second = Guard::new(
        "chromium (2)",
        chromium(&server.url("/chromium-piv-late"), "chromium2"),
    );
    let flow = PinFlow {
        dialog: "Unlock Security Device",
        cn: PIV_CN,
        log: log.clone(),
        stderr: f.path("chromium.err"),
        wrong: "999999",
        right: PIV_PIN,
        counted: false,
    };
    wrong_then_right_pin(&pki, &x, &mut browser, &server, flow);
    let handed_over = second.exited();
    drop(second);
    drop(browser);
    drop(policy);
    println!(
        "checked: Chromium started, loaded Klyuch (a first page asked for a client certificate) with the reader empty; the PIV card (token {label:?}) was inserted afterwards and the running browser opened the page (URL handed over: {handed_over:?}); wrong then right PIN in Unlock Security Device; the server saw {PIV_CN}"
    );
}

/// Firefox ESR under Xvfb starts with Klyuch loaded (PC/SC on) and the reader empty, showing a
/// local page that moves on to the server after a few seconds; the PIV card is inserted
/// meanwhile. NSS notices the new token (slot information from Klyuch's cached PC/SC state),
/// the page asks for a client certificate, "Select Automatically" takes the card's, and the PIN goes into
/// "Password Required" (wrong, then right).
#[test]
fn firefox_with_the_piv_card_inserted_after_the_browser_started() {
    require!(
        "firefox-esr",
        "Xvfb",
        "xdotool",
        "certutil",
        "modutil",
        "openssl"
    );
    let _lock = GlobalLock::acquire("firefox-policy", Duration::from_secs(300));
    let Some((mut card, f, x)) = piv_browser_setup("firefox-esr") else {
        return;
    };
    let label = token_label(&f, &card);
    card.remove().expect("remove the card");
    let pki = Pki::files_only(&f, "piv");
    let server = TlsServer::start_with_ca(&pki, "s_server.log", "piv9a.pem");
    let profile = f.path("ff-profile");
    nss_profile(&pki, &profile, false);
    // The first page waits 8 s, then opens the server's.
    let first = f.path("wait.html");
    std::fs::write(
        &first,
        format!(
            "<!DOCTYPE html><title>waiting for the card</title>\
             <meta http-equiv=\"refresh\" content=\"8;url={}\">",
            server.url("/firefox-piv-late")
        ),
    )
    .unwrap();
    let log = f.path("klyuch-firefox.log");
    let mut browser = start_firefox(
        &pki,
        &x,
        &profile,
        &format!("file://{}", first.display()),
        &log,
    );
    let calls = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || calls()
            .contains("C_GetSlotList")),
        "Firefox did not load Klyuch ({:?}):\n{}",
        browser.exited(),
        tail(&f.path("firefox.err"), 20)
    );
    let loaded = Instant::now();
    card.insert().expect("insert the card");
    let inserted_after = loaded.elapsed();
    let flow = PinFlow {
        dialog: "Password Required",
        cn: PIV_CN,
        log: log.clone(),
        stderr: f.path("firefox.err"),
        wrong: "999999",
        right: PIV_PIN,
        counted: false,
    };
    wrong_then_right_pin(&pki, &x, &mut browser, &server, flow);
    drop(browser);
    println!(
        "checked: Firefox started with Klyuch and an empty reader; the PIV card (token {label:?}) was inserted (in {inserted_after:?}) after Firefox had loaded Klyuch and before the page asked for a client certificate; wrong then right PIN in Password Required; the server saw {PIV_CN}"
    );
}
