//! `klyuch register` and `klyuch unregister`: add the module to (remove it from) the places where
//! the user's applications look for PKCS#11 modules, as OpenSC's `pkcs11-register` does:
//!
//! * every Firefox profile listed in `~/.mozilla/firefox/profiles.ini`: the profile's NSS
//!   database (`pkcs11.txt`), through `modutil -add Klyuch -libfile PATH -force`, or by editing
//!   `pkcs11.txt` when modutil (Debian: libnss3-tools) is not installed. A profile that Firefox
//!   has open is left alone (NSS reads `pkcs11.txt` at start only, and Firefox writes it back);
//! * Chromium's NSS database `~/.pki/nssdb` (created with `certutil -N --empty-password` when
//!   missing, as Chromium itself would);
//! * p11-kit: `packaging/klyuch.module` with the module's absolute path, as
//!   `$XDG_CONFIG_HOME/pkcs11/modules/klyuch.module` (default `~/.config/...`), or with
//!   `--system` as `/etc/pkcs11/modules/klyuch.module`. p11-kit ignores user files in programs
//!   run by root, hence `--system` there.
//!
//! Both commands are idempotent and print one line per place: what changed, or that nothing
//! had to. An NSS database holds Klyuch when it has a module named `Klyuch`; `unregister`
//! removes exactly that module and the `klyuch.module` file.

use crate::ctx::resolve_module;
use crate::error::{CliError, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `klyuch register --help`, after the options.
pub const REGISTER_HELP: &str = "\
Without --firefox, --chromium or --p11-kit: all three. The module registered is --module, else
$KLYUCH_MODULE, else libklyuch_pkcs11.so next to klyuch, as an absolute path. NSS databases get
a module named Klyuch (modutil -add, or an entry in pkcs11.txt when modutil is not installed);
close Firefox first: a profile in use is left alone. Running it again changes nothing; klyuch
unregister removes exactly what it added.";

/// The name of the module in NSS databases (`modutil -list`, Firefox's "Security Devices").
pub const NSS_NAME: &str = "Klyuch";

/// The p11-kit module file as packaged; its `module:` line is replaced by the absolute path.
const MODULE_FILE: &str = include_str!("../../../packaging/klyuch.module");
const MODULE_FILE_NAME: &str = "klyuch.module";
/// p11-kit's folder for the administrator's module files (pkcs11.conf(5)).
const SYSTEM_MODULES: &str = "/etc/pkcs11/modules";

#[derive(Args, Debug, Clone)]
pub struct RegisterArgs {
    /// Every Firefox profile of this user (~/.mozilla/firefox/profiles.ini); Firefox must be closed
    #[arg(long)]
    pub firefox: bool,
    /// Chromium's (and Chrome's) NSS database ~/.pki/nssdb, created when missing
    #[arg(long)]
    pub chromium: bool,
    /// p11-kit (GnuTLS, p11-kit-proxy, the OpenSSL pkcs11 engine):
    /// ~/.config/pkcs11/modules/klyuch.module
    #[arg(long = "p11-kit")]
    pub p11_kit: bool,
    /// All of the above (the default when none is given)
    #[arg(long)]
    pub all: bool,
    /// p11-kit: the machine-wide file /etc/pkcs11/modules/klyuch.module instead of the user's
    /// (p11-kit ignores user files in programs run by root)
    #[arg(long)]
    pub system: bool,
}

impl RegisterArgs {
    fn targets(&self) -> (bool, bool, bool) {
        let none = !(self.firefox || self.chromium || self.p11_kit);
        let all = self.all || none;
        (
            all || self.firefox,
            all || self.chromium,
            all || self.p11_kit,
        )
    }
}

/// What happened at one place.
enum Outcome {
    Changed(String),
    Unchanged(String),
    Failed(String),
}

struct Report {
    lines: usize,
    changed: usize,
    failed: usize,
}

impl Report {
    fn new() -> Report {
        Report {
            lines: 0,
            changed: 0,
            failed: 0,
        }
    }

    fn print(&mut self, place: &str, o: Outcome) {
        self.lines += 1;
        let mut out = std::io::stdout().lock();
        let _ = match o {
            Outcome::Changed(m) => {
                self.changed += 1;
                writeln!(out, "{place}: {m}")
            }
            Outcome::Unchanged(m) => writeln!(out, "{place}: {m}"),
            Outcome::Failed(m) => {
                self.failed += 1;
                drop(out);
                eprintln!("{place}: not changed: {m}");
                Ok(())
            }
        };
    }

    fn finish(self, verb: &str) -> Result<()> {
        println!(
            "{} place(s) {verb}, {} already as wanted, {} failed",
            self.changed,
            self.lines - self.changed - self.failed,
            self.failed
        );
        if self.failed > 0 {
            Err(CliError::new(format!(
                "{} place(s) could not be changed (see above)",
                self.failed
            )))
        } else {
            Ok(())
        }
    }
}

pub fn run_register(module: Option<&Path>, a: &RegisterArgs) -> Result<()> {
    let lib = module_path(module)?;
    let home = home()?;
    let (firefox, chromium, p11kit) = a.targets();
    println!("module: {}", lib.display());
    let mut r = Report::new();
    if firefox {
        for (place, profile) in firefox_profiles(&home, &mut r) {
            let o = if let Some(pid) = firefox_running(&profile) {
                Outcome::Failed(format!(
                    "Firefox (process {pid}) has this profile open: close Firefox and run again"
                ))
            } else {
                nss_register(&profile, &lib)
            };
            r.print(&place, o);
        }
    }
    if chromium {
        let db = home.join(".pki/nssdb");
        let place = format!("Chromium NSS database {}", db.display());
        r.print(&place, nss_register(&db, &lib));
    }
    if p11kit {
        let file = p11kit_file(&home, a.system);
        let place = format!("p11-kit module file {}", file.display());
        r.print(&place, p11kit_register(&file, &lib));
        if !a.system && is_root() {
            println!(
                "note: p11-kit ignores user module files in programs run by root; \
                 for root use klyuch register --p11-kit --system"
            );
        }
    }
    r.finish("changed")
}

pub fn run_unregister(a: &RegisterArgs) -> Result<()> {
    let home = home()?;
    let (firefox, chromium, p11kit) = a.targets();
    let mut r = Report::new();
    if firefox {
        for (place, profile) in firefox_profiles(&home, &mut r) {
            let o = if let Some(pid) = firefox_running(&profile) {
                Outcome::Failed(format!(
                    "Firefox (process {pid}) has this profile open: close Firefox and run again"
                ))
            } else {
                nss_unregister(&profile)
            };
            r.print(&place, o);
        }
    }
    if chromium {
        let db = home.join(".pki/nssdb");
        let place = format!("Chromium NSS database {}", db.display());
        r.print(&place, nss_unregister(&db));
    }
    if p11kit {
        let file = p11kit_file(&home, a.system);
        let place = format!("p11-kit module file {}", file.display());
        r.print(&place, p11kit_unregister(&file));
    }
    r.finish("changed")
}

/// The module to register: `--module`, `KLYUCH_MODULE`, or the library next to `klyuch`, as an
/// absolute path without symbolic links (applications are started from anywhere).
fn module_path(option: Option<&Path>) -> Result<PathBuf> {
    let p = resolve_module(option)?;
    std::fs::canonicalize(&p)
        .map_err(|e| CliError::new(format!("the PKCS#11 module {}: {e}", p.display())))
}

fn home() -> Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => Err(CliError::new(
            "HOME is not set: cannot find the user's Firefox, Chromium and p11-kit settings",
        )),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

// ------------------------------------------------------------------------------ Firefox

/// The profile folders of `~/.mozilla/firefox/profiles.ini` (`[ProfileN]` sections, `Path=`
/// relative to that folder when `IsRelative=1`), with the place name to print.
fn firefox_profiles(home: &Path, r: &mut Report) -> Vec<(String, PathBuf)> {
    let root = home.join(".mozilla/firefox");
    let ini = root.join("profiles.ini");
    let text = match std::fs::read_to_string(&ini) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            r.print(
                "Firefox",
                Outcome::Unchanged(format!("no profiles ({} does not exist)", ini.display())),
            );
            return Vec::new();
        }
        Err(e) => {
            r.print(
                "Firefox",
                Outcome::Failed(format!("cannot read {}: {e}", ini.display())),
            );
            return Vec::new();
        }
    };
    let before = r.lines;
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for (path, relative) in parse_profiles_ini(&text) {
        let dir = if relative {
            root.join(&path)
        } else {
            PathBuf::from(&path)
        };
        let place = format!("Firefox profile {}", dir.display());
        if !dir.is_dir() {
            r.print(
                &place,
                Outcome::Unchanged("skipped: the folder does not exist".into()),
            );
            continue;
        }
        if !out.iter().any(|(_, d)| d == &dir) {
            out.push((place, dir));
        }
    }
    if out.is_empty() && r.lines == before {
        r.print(
            "Firefox",
            Outcome::Unchanged(format!("no profiles in {}", ini.display())),
        );
    }
    out
}

/// `(Path, IsRelative)` of each `[Profile…]` section (IsRelative defaults to 1, as Firefox
/// writes it).
fn parse_profiles_ini(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut in_profile = false;
    let mut path: Option<String> = None;
    let mut relative = true;
    let mut flush = |path: &mut Option<String>, relative: &mut bool, in_profile: bool| {
        if in_profile {
            if let Some(p) = path.take() {
                out.push((p, *relative));
            }
        }
        *path = None;
        *relative = true;
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            flush(&mut path, &mut relative, in_profile);
            in_profile = line[1..line.len() - 1].starts_with("Profile");
        } else if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "Path" => path = Some(v.trim().to_string()),
                "IsRelative" => relative = v.trim() != "0",
                _ => {}
            }
        }
    }
    flush(&mut path, &mut relative, in_profile);
    out
}

/// The process that has the profile open: Firefox on Linux keeps a symbolic link `lock` to
/// `HOST:+PID` in the profile while it runs (a stale one, from a crash, names a dead process).
fn firefox_running(profile: &Path) -> Option<u32> {
    let target = std::fs::read_link(profile.join("lock")).ok()?;
    let pid: u32 = target.to_str()?.rsplit_once(":+")?.1.parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

// ------------------------------------------------------------------------------ NSS

/// The entries of an NSS `pkcs11.txt` (blocks of `key=value` lines separated by blank lines).
fn nss_entries(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if let Some((k, v)) = line.split_once('=') {
            cur.push((k.to_string(), v.to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn entry_value<'a>(e: &'a [(String, String)], key: &str) -> Option<&'a str> {
    e.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The library of the database's module named [`NSS_NAME`], if it has one.
fn nss_klyuch(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(db.join("pkcs11.txt")).ok()?;
    nss_entries(&text)
        .iter()
        .find(|e| entry_value(e, "name") == Some(NSS_NAME))
        .map(|e| entry_value(e, "library").unwrap_or_default().to_string())
}

fn run_tool(program: &str, args: &[&str]) -> std::result::Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Err(format!(
            "{program} {} failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ))
    }
}

/// Add Klyuch to the NSS database `db` (created first when it has none: a Firefox profile that
/// never ran, a missing `~/.pki/nssdb`).
fn nss_register(db: &Path, lib: &Path) -> Outcome {
    let lib_text = lib.display().to_string();
    let dbarg = format!("sql:{}", db.display());
    let mut did = Vec::new();
    if !db.join("cert9.db").exists() {
        if !have("certutil") {
            return Outcome::Failed(
                "certutil (Debian package libnss3-tools) is needed to create the NSS database"
                    .into(),
            );
        }
        if let Err(e) = std::fs::create_dir_all(db) {
            return Outcome::Failed(format!("cannot create {}: {e}", db.display()));
        }
        if let Err(e) = run_tool("certutil", &["-N", "-d", &dbarg, "--empty-password"]) {
            return Outcome::Failed(e);
        }
        did.push("created the NSS database (no password)".to_string());
    }
    match nss_klyuch(db) {
        Some(l) if l == lib_text => {
            if did.is_empty() {
                return Outcome::Unchanged(format!("already registered ({NSS_NAME})"));
            }
        }
        Some(other) => {
            if let Err(e) = nss_remove(db) {
                return Outcome::Failed(e);
            }
            did.push(format!("removed {NSS_NAME} with the old library {other}"));
            if let Err(e) = nss_add(db, lib) {
                return Outcome::Failed(format!("{}; {e}", did.join("; ")));
            }
            did.push(format!("added {NSS_NAME}"));
        }
        None => {
            if let Err(e) = nss_add(db, lib) {
                return Outcome::Failed(e);
            }
            did.push(format!("added {NSS_NAME}"));
        }
    }
    Outcome::Changed(did.join("; "))
}

fn nss_unregister(db: &Path) -> Outcome {
    if nss_klyuch(db).is_none() {
        return Outcome::Unchanged(format!("not registered (no module {NSS_NAME})"));
    }
    match nss_remove(db) {
        Ok(()) => Outcome::Changed(format!("removed {NSS_NAME}")),
        Err(e) => Outcome::Failed(e),
    }
}

/// `modutil -add`, else an entry appended to `pkcs11.txt`; then checks that it is there.
fn nss_add(db: &Path, lib: &Path) -> std::result::Result<(), String> {
    let lib_text = lib.display().to_string();
    if have("modutil") {
        let dbarg = format!("sql:{}", db.display());
        run_tool(
            "modutil",
            &[
                "-dbdir", &dbarg, "-add", NSS_NAME, "-libfile", &lib_text, "-force",
            ],
        )?;
    } else {
        let file = db.join("pkcs11.txt");
        let mut text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if !text.is_empty() && !text.ends_with("\n\n") {
            text.push_str(if text.ends_with('\n') { "\n" } else { "\n\n" });
        }
        text.push_str(&format!("library={lib_text}\nname={NSS_NAME}\n"));
        replace_file(&file, &text)?;
    }
    match nss_klyuch(db) {
        Some(l) if l == lib_text => Ok(()),
        _ => Err(format!(
            "{NSS_NAME} is not in {} after adding it",
            db.join("pkcs11.txt").display()
        )),
    }
}

/// `modutil -delete`, else the entry removed from `pkcs11.txt`; then checks that it is gone.
fn nss_remove(db: &Path) -> std::result::Result<(), String> {
    if have("modutil") {
        let dbarg = format!("sql:{}", db.display());
        run_tool(
            "modutil",
            &["-dbdir", &dbarg, "-delete", NSS_NAME, "-force"],
        )?;
    } else {
        let file = db.join("pkcs11.txt");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut out = String::new();
        for e in nss_entries(&text) {
            if entry_value(&e, "name") == Some(NSS_NAME) {
                continue;
            }
            for (k, v) in &e {
                out.push_str(&format!("{k}={v}\n"));
            }
            out.push('\n');
        }
        replace_file(&file, &out)?;
    }
    if nss_klyuch(db).is_some() {
        return Err(format!(
            "{NSS_NAME} is still in {} after removing it",
            db.join("pkcs11.txt").display()
        ));
    }
    Ok(())
}

/// Write a file through a temporary file in the same folder and a rename (never half-written).
fn replace_file(path: &Path, text: &str) -> std::result::Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path)
        .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    Ok(())
}

// ------------------------------------------------------------------------------ p11-kit

/// Where the module file goes: p11-kit's user folder `~/.config/pkcs11/modules` (p11-kit puts
/// `$XDG_CONFIG_HOME` in place of `~/.config` when it is set), or the administrator's.
fn p11kit_file(home: &Path, system: bool) -> PathBuf {
    if system {
        return Path::new(SYSTEM_MODULES).join(MODULE_FILE_NAME);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    config.join("pkcs11/modules").join(MODULE_FILE_NAME)
}

/// `packaging/klyuch.module` with `module: ABSOLUTE-PATH`.
fn module_file_text(lib: &Path) -> String {
    let mut out = String::new();
    for line in MODULE_FILE.lines() {
        if line.starts_with("module:") {
            out.push_str(&format!("module: {}\n", lib.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn p11kit_register(file: &Path, lib: &Path) -> Outcome {
    let want = module_file_text(lib);
    let old = std::fs::read_to_string(file).ok();
    if old.as_deref() == Some(want.as_str()) {
        return Outcome::Unchanged("already registered".into());
    }
    let dir = file.parent().expect("a folder");
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Outcome::Failed(format!("cannot create {}: {e}", dir.display()));
    }
    if let Err(e) = replace_file(file, &want) {
        return Outcome::Failed(e);
    }
    let _ = std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    Outcome::Changed(if old.is_some() {
        "replaced (it named another library or had other settings)".into()
    } else {
        "installed".into()
    })
}

fn p11kit_unregister(file: &Path) -> Outcome {
    match std::fs::remove_file(file) {
        Ok(()) => Outcome::Changed("removed".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Outcome::Unchanged("not registered (no such file)".into())
        }
        Err(e) => Outcome::Failed(format!("cannot remove it: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_ini_sections() {
        let ini = "[Install4F96D1932A9F858E]\nDefault=abc.default-esr\nLocked=1\n\n\
                   [Profile1]\nName=work\nIsRelative=0\nPath=/srv/ff/work\n\n\
                   [Profile0]\nName=default-esr\nIsRelative=1\nPath=abc.default-esr\nDefault=1\n\n\
                   [General]\nStartWithLastProfile=1\nVersion=2\n";
        assert_eq!(
            parse_profiles_ini(ini),
            vec![
                ("/srv/ff/work".to_string(), false),
                ("abc.default-esr".to_string(), true)
            ]
        );
    }

    #[test]
    fn pkcs11_txt_entries() {
        let t = "library=\nname=NSS Internal PKCS #11 Module\nparameters=configdir='sql:/x' a=b\n\n\
                 library=/opt/k/libklyuch_pkcs11.so\nname=Klyuch\n\n";
        let e = nss_entries(t);
        assert_eq!(e.len(), 2);
        assert_eq!(
            entry_value(&e[0], "parameters"),
            Some("configdir='sql:/x' a=b")
        );
        assert_eq!(
            entry_value(&e[1], "library"),
            Some("/opt/k/libklyuch_pkcs11.so")
        );
    }

    #[test]
    fn module_file_gets_the_absolute_path() {
        let t = module_file_text(Path::new("/opt/k/libklyuch_pkcs11.so"));
        assert!(t.lines().any(|l| l == "module: /opt/k/libklyuch_pkcs11.so"));
        assert!(!t.contains("module: libklyuch_pkcs11.so"));
        assert!(t.contains("critical: no"));
    }
}
