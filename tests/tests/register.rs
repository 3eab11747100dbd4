//! `klyuch register` / `klyuch unregister` (issue 5, item 6) with `HOME` pointing at a temporary
//! folder that holds what the applications would have made: a Firefox `profiles.ini` with two
//! profiles (one relative to `~/.mozilla/firefox`, one elsewhere), each with an NSS database made
//! by `certutil -N`, and no Chromium database yet (`register` creates `~/.pki/nssdb`).
//! Checked with the applications' own tools: `modutil -list` and `certutil -L -h all` (the
//! token's certificates, so NSS really loads the module) on every database, and
//! `p11-kit list-modules` with the same `HOME`/`XDG_CONFIG_HOME` (as `nobody` when the test runs
//! as root: p11-kit ignores user module files for root). Running either command twice changes
//! nothing the second time; `unregister` leaves the databases as they were before.
//!
//! Needs the `klyuch` binary next to the module (`cargo build --release -p klyuch`).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use klyuch_tests::interop::{is_root, skip, Pki, EC, RSA};
use klyuch_tests::{module_path, require, text, Fixture};

/// The `klyuch` tool next to the module (`target/<profile>/klyuch`).
fn klyuch_bin() -> Option<PathBuf> {
    let m = module_path();
    let dir = m.parent()?;
    [dir.join("klyuch"), dir.parent()?.join("klyuch")]
        .into_iter()
        .find(|p| p.exists())
}

/// A home folder with Firefox profiles (NSS databases by certutil) and a p11-kit config folder.
struct Home {
    home: PathBuf,
    xdg: PathBuf,
    profiles: Vec<PathBuf>,
    bin: PathBuf,
}

impl Home {
    fn new(pki: &Pki<'_>, bin: PathBuf) -> Home {
        let f = pki.f;
        let home = f.path("home");
        let root = home.join(".mozilla/firefox");
        let relative = root.join("k1y2ch3a.default-esr");
        let absolute = f.path("elsewhere/work-profile");
        for p in [&relative, &absolute] {
            std::fs::create_dir_all(p).unwrap();
            pki.run_for(
                60,
                "certutil",
                &[
                    "-N",
                    "-d",
                    &format!("sql:{}", p.display()),
                    "--empty-password",
                ],
            );
        }
        std::fs::write(
            root.join("profiles.ini"),
            format!(
                "[Install3B6073811A6ABF12]\nDefault=k1y2ch3a.default-esr\nLocked=1\n\n\
                 [Profile1]\nName=work\nIsRelative=0\nPath={}\n\n\
                 [Profile0]\nName=default-esr\nIsRelative=1\nPath=k1y2ch3a.default-esr\nDefault=1\n\n\
                 [General]\nStartWithLastProfile=1\nVersion=2\n",
                absolute.display()
            ),
        )
        .unwrap();
        let xdg = home.join("xdg-config");
        Home {
            home,
            xdg,
            profiles: vec![relative, absolute],
            bin,
        }
    }

    fn chromium_db(&self) -> PathBuf {
        self.home.join(".pki/nssdb")
    }

    fn module_file(&self) -> PathBuf {
        self.xdg.join("pkcs11/modules/klyuch.module")
    }

    /// `klyuch --module M ARGS` with this HOME and XDG_CONFIG_HOME (and `path` as PATH).
    fn klyuch(&self, f: &Fixture, args: &[&str], path: Option<&str>) -> Output {
        let mut c = Command::new(&self.bin);
        c.arg("--module").arg(module_path()).args(args);
        for (k, v) in f.env() {
            c.env(k, v);
        }
        c.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.xdg)
            .stdin(Stdio::null());
        if let Some(p) = path {
            c.env("PATH", p);
        }
        c.output().expect("klyuch")
    }

    fn klyuch_ok(&self, f: &Fixture, args: &[&str], path: Option<&str>) -> String {
        let out = self.klyuch(f, args, path);
        assert!(
            out.status.success(),
            "klyuch {args:?}: {}\n{}",
            out.status,
            text(&out)
        );
        let t = text(&out);
        println!("klyuch {}:\n{t}", args.join(" "));
        t
    }

    /// Every file `register` may touch, with its contents (None: absent).
    fn snapshot(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut files: Vec<PathBuf> = self
            .profiles
            .iter()
            .chain(std::iter::once(&self.chromium_db()))
            .map(|d| d.join("pkcs11.txt"))
            .collect();
        files.push(self.module_file());
        files
            .into_iter()
            .map(|p| {
                let c = std::fs::read(&p).ok();
                (p, c)
            })
            .collect()
    }
}

/// `modutil -list` of a database has Klyuch (with its library and the token) or not.
fn assert_nss_has_klyuch(pki: &Pki<'_>, db: &Path, yes: bool) {
    let dbarg = format!("sql:{}", db.display());
    let list = pki.run_for(60, "modutil", &["-dbdir", &dbarg, "-list"]);
    let has = list.contains("Klyuch") && list.contains(&pki.module());
    assert_eq!(has, yes, "modutil -list -dbdir {dbarg}:\n{list}");
    if yes {
        assert!(list.contains(&pki.token), "{list}");
        let certs = pki.run_for(
            60,
            "certutil",
            &["-L", "-d", &dbarg, "-h", "all", "-f", &pki.p("pin.txt")],
        );
        for k in [RSA, EC] {
            assert!(
                certs.contains(&format!("{}:{}", pki.token, k.label)),
                "certutil -L -h all -d {dbarg}:\n{certs}"
            );
        }
        println!(
            "checked: {dbarg}: modutil -list shows Klyuch ({}), certutil -L -h all lists {t}:{} and {t}:{}",
            pki.module(),
            RSA.label,
            EC.label,
            t = pki.token
        );
    } else {
        println!("checked: {dbarg}: modutil -list shows no Klyuch");
    }
}

/// `p11-kit list-modules` for this HOME/XDG_CONFIG_HOME (as nobody when we are root). Other
/// system modules are switched off for that user by blank files of the same name
/// (pkcs11.conf(5)), so that OpenSC does not talk to pcscd here.
fn p11kit_list(pki: &Pki<'_>, h: &Home) -> String {
    let dir = h.xdg.join("pkcs11/modules");
    std::fs::create_dir_all(&dir).unwrap();
    for sys in ["/etc/pkcs11/modules", "/usr/share/p11-kit/modules"] {
        for e in std::fs::read_dir(sys).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".module")
                && name != "klyuch.module"
                && name != "p11-kit-trust.module"
            {
                std::fs::write(dir.join(&name), "module:\n").unwrap();
            }
        }
    }
    let mut c = if is_root() {
        std::fs::set_permissions(pki.f.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for p in [&pki.f.store(), &h.home] {
            let st = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(p)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
            "timeout",
        ]);
        c
    } else {
        Command::new("timeout")
    };
    c.args(["-k", "5", "60", "p11-kit", "list-modules"])
        .current_dir(&h.home)
        .env("HOME", &h.home)
        .env("XDG_CONFIG_HOME", &h.xdg)
        .stdin(Stdio::null());
    for (k, v) in pki.f.env() {
        c.env(k, v);
    }
    let out = c.output().expect("p11-kit list-modules");
    text(&out)
}

#[test]
fn register_and_unregister_firefox_chromium_and_p11_kit() {
    require!("certutil", "modutil", "p11-kit", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let Some(bin) = klyuch_bin() else {
        skip("the klyuch binary is not built (cargo build --release -p klyuch)");
        return;
    };
    if is_root() && !klyuch_tests::have("setpriv") {
        skip("running as root, where p11-kit ignores user module files, and setpriv is missing");
        return;
    }
    let f = Fixture::new();
    let pki = Pki::new(&f, "register");
    let h = Home::new(&pki, bin);
    let before = h.snapshot();
    let module = std::fs::canonicalize(module_path()).unwrap();

    let out = h.klyuch_ok(&f, &["register", "--all"], None);
    for p in &h.profiles {
        assert!(
            out.contains(&format!("Firefox profile {}: added Klyuch", p.display())),
            "{out}"
        );
    }
    assert!(
        out.contains(&format!(
            "Chromium NSS database {}: created the NSS database (no password); added Klyuch",
            h.chromium_db().display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "p11-kit module file {}: installed",
            h.module_file().display()
        )),
        "{out}"
    );
    assert!(
        out.contains("4 place(s) changed, 0 already as wanted, 0 failed"),
        "{out}"
    );
    for db in h.profiles.iter().chain([&h.chromium_db()]) {
        assert_nss_has_klyuch(&pki, db, true);
    }
    let file = std::fs::read_to_string(h.module_file()).unwrap();
    assert!(
        file.lines()
            .any(|l| l == format!("module: {}", module.display())),
        "{file}"
    );
    println!(
        "checked: {} names the module by its absolute path",
        h.module_file().display()
    );

    // Idempotent: the second run reports it and touches nothing.
    let registered = h.snapshot();
    let out = h.klyuch_ok(&f, &["register"], None);
    assert_eq!(out.matches("already registered").count(), 4, "{out}");
    assert!(
        out.contains("0 place(s) changed, 4 already as wanted"),
        "{out}"
    );
    assert!(
        registered == h.snapshot(),
        "the second register changed files"
    );
    println!("checked: a second klyuch register reports \"already registered\" 4 times and changes no file");

    let list = p11kit_list(&pki, &h);
    assert!(
        list.contains(&format!("klyuch: {}", module.display())) && list.contains("token: register"),
        "p11-kit list-modules:\n{list}"
    );
    println!("checked: p11-kit list-modules (HOME, XDG_CONFIG_HOME of the test) shows klyuch and its token");

    let out = h.klyuch_ok(&f, &["unregister", "--all"], None);
    for db in h.profiles.iter().chain([&h.chromium_db()]) {
        assert!(
            out.contains(&format!("{}: removed Klyuch", db.display())),
            "{out}"
        );
        assert_nss_has_klyuch(&pki, db, false);
    }
    assert!(
        out.contains(&format!("{}: removed", h.module_file().display())),
        "{out}"
    );
    assert!(!h.module_file().exists());
    // The Firefox databases are as before (the Chromium database register created stays).
    let after = h.snapshot();
    for p in &h.profiles {
        let k = p.join("pkcs11.txt");
        assert!(before[&k] == after[&k], "{} differs", k.display());
    }
    let list = p11kit_list(&pki, &h);
    assert!(!list.contains("klyuch:"), "p11-kit list-modules:\n{list}");
    println!("checked: klyuch unregister removed Klyuch from 3 NSS databases (the Firefox pkcs11.txt files are byte-identical to before) and the p11-kit file; p11-kit no longer lists it");

    let out = h.klyuch_ok(&f, &["unregister"], None);
    assert_eq!(out.matches(": not registered").count(), 4, "{out}");
    assert!(
        out.contains("0 place(s) changed, 4 already as wanted"),
        "{out}"
    );
    assert!(after == h.snapshot());
    println!("checked: a second klyuch unregister reports \"not registered\" 4 times and changes nothing");
}

/// Without modutil on PATH, `register` edits `pkcs11.txt` itself (NSS then loads the module:
/// modutil and certutil see it); a profile with a live Firefox `lock` is refused and left
/// unchanged, a stale lock (dead process) is not in the way.
#[test]
fn register_edits_pkcs11_txt_without_modutil_and_refuses_a_running_firefox() {
    require!("certutil", "modutil", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let Some(bin) = klyuch_bin() else {
        skip("the klyuch binary is not built (cargo build --release -p klyuch)");
        return;
    };
    let f = Fixture::new();
    let pki = Pki::new(&f, "regtext");
    let h = Home::new(&pki, bin);
    let no_tools = f.path("empty-bin");
    std::fs::create_dir_all(&no_tools).unwrap();
    let path = Some(no_tools.to_str().unwrap());

    // A running Firefox (this test process stands in for it) holds the first profile.
    let lock = h.profiles[0].join("lock");
    std::os::unix::fs::symlink(format!("127.0.1.1:+{}", std::process::id()), &lock).unwrap();
    let before = h.snapshot();
    let out = h.klyuch(&f, &["register", "--firefox"], path);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "Firefox profile {}: not changed: Firefox (process {}) has this profile open",
            h.profiles[0].display(),
            std::process::id()
        )),
        "{t}"
    );
    let k0 = h.profiles[0].join("pkcs11.txt");
    assert!(
        before[&k0] == std::fs::read(&k0).ok(),
        "the open profile was changed"
    );
    assert_nss_has_klyuch(&pki, &h.profiles[0], false);
    assert_nss_has_klyuch(&pki, &h.profiles[1], true);
    println!("checked: a profile with a live Firefox lock is refused (exit 1) and unchanged; the other profile was registered by editing pkcs11.txt (no modutil on PATH)");

    // A stale lock (a process that no longer exists) does not block.
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("127.0.1.1:+999999999", &lock).unwrap();
    let out = h.klyuch_ok(&f, &["register", "--firefox"], path);
    assert!(
        out.contains("1 place(s) changed, 1 already as wanted"),
        "{out}"
    );
    assert_nss_has_klyuch(&pki, &h.profiles[0], true);

    let out = h.klyuch_ok(&f, &["unregister", "--firefox"], path);
    assert!(out.contains("2 place(s) changed"), "{out}");
    for p in &h.profiles {
        assert_nss_has_klyuch(&pki, p, false);
    }
    println!("checked: a stale lock does not block; unregister without modutil removes the pkcs11.txt entries");
}
