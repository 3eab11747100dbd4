//! Configuration: environment variables and the TOML file.
//!
//! Lookup order (a contract: scripts rely on these names):
//! * `KLYUCH_TOKEN_DIR=DIR`: the soft token store (each token a subfolder); overrides the file.
//! * `KLYUCH_CONF=FILE`: the configuration file; else `$XDG_CONFIG_HOME/klyuch/klyuch.toml`
//!   (default `~/.config/klyuch/klyuch.toml`). A missing file means defaults.
//! * default store: `$XDG_DATA_HOME/klyuch/tokens` (default `~/.local/share/klyuch/tokens`).
//! * `KLYUCH_PCSC=0` switches the PC/SC backend off.
//! * `KLYUCH_LOG=error|warn|info|debug|trace` and `KLYUCH_LOG_FILE=FILE`: logging (stderr by default).

use crate::ck::*;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration file.
///
/// ```toml
/// [softtoken]
/// enabled = true
/// dir = "/var/lib/klyuch/tokens"
/// min_pin_len = 4
/// max_pin_len = 64
/// max_user_pin_failures = 10
/// max_so_pin_failures = 10
/// kdf_iterations = 200000
///
/// [pcsc]
/// enabled = true
/// pinpad = true
/// exclude_readers = ["Yubico"]
///
/// [log]
/// level = "info"
/// file = "/tmp/klyuch.log"
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub softtoken: SoftTokenConfig,
    pub pcsc: PcscConfig,
    pub log: LogConfig,
    /// Where the configuration was read from (not a file key).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SoftTokenConfig {
    /// Offer the soft token slots at all.
    pub enabled: bool,
    /// The store folder (`KLYUCH_TOKEN_DIR` wins over this).
    pub dir: Option<PathBuf>,
    /// PIN length bounds, reported as `ulMinPinLen`/`ulMaxPinLen`.
    pub min_pin_len: u32,
    pub max_pin_len: u32,
    /// Wrong user PINs in a row before the user PIN locks.
    pub max_user_pin_failures: u32,
    /// Wrong SO PINs in a row before the SO PIN locks.
    pub max_so_pin_failures: u32,
    /// PBKDF2-HMAC-SHA-256 iterations for new PIN wraps (existing tokens upgrade at the next
    /// successful login when this is raised).
    pub kdf_iterations: u32,
}

impl Default for SoftTokenConfig {
    fn default() -> Self {
        SoftTokenConfig {
            enabled: true,
            dir: None,
            min_pin_len: 4,
            max_pin_len: 64,
            max_user_pin_failures: 10,
            max_so_pin_failures: 10,
            kdf_iterations: 200_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PcscConfig {
    /// Offer PC/SC reader slots (`KLYUCH_PCSC=0` wins over this).
    pub enabled: bool,
    /// Use PIN-pad readers' pads when the application passes a NULL PIN.
    pub pinpad: bool,
    /// Readers whose name contains one of these strings are ignored.
    pub exclude_readers: Vec<String>,
}

impl Default for PcscConfig {
    fn default() -> Self {
        PcscConfig {
            enabled: true,
            pinpad: true,
            exclude_readers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace` (`KLYUCH_LOG` wins).
    pub level: Option<String>,
    /// Log file (`KLYUCH_LOG_FILE` wins); stderr when unset.
    pub file: Option<PathBuf>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() && Path::new(&v).is_absolute() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// The configuration file path this process uses.
    pub fn path() -> PathBuf {
        match env_nonempty("KLYUCH_CONF") {
            Some(p) => PathBuf::from(p),
            None => xdg("XDG_CONFIG_HOME", ".config")
                .join("klyuch")
                .join("klyuch.toml"),
        }
    }

    /// Read the file (if any) and apply the environment. A file that exists but does not parse
    /// is an error with the line and the reason; an explicitly named `KLYUCH_CONF` that does not
    /// exist is an error too.
    pub fn load() -> Result<Config> {
        let path = Self::path();
        let explicit = env_nonempty("KLYUCH_CONF").is_some();
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut c = Self::parse(&text).map_err(|e| {
                    let d = format!("{}: {}", path.display(), e.detail());
                    e.context(d)
                })?;
                c.source = Some(path);
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::default(),
            Err(e) => {
                return Err(Error::with(
                    CKR_GENERAL_ERROR,
                    format!("cannot read configuration {}: {e}", path.display()),
                ));
            }
        };
        cfg.apply_env();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parse TOML text (no environment).
    pub fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text)
            .map_err(|e| Error::with(CKR_GENERAL_ERROR, format!("bad configuration: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    fn apply_env(&mut self) {
        if let Some(dir) = env_nonempty("KLYUCH_TOKEN_DIR") {
            self.softtoken.dir = Some(PathBuf::from(dir));
        }
        if let Some(v) = env_nonempty("KLYUCH_PCSC") {
            self.pcsc.enabled = !matches!(v.as_str(), "0" | "false" | "no" | "off");
        }
        if let Some(v) = env_nonempty("KLYUCH_LOG") {
            self.log.level = Some(v);
        }
        if let Some(v) = env_nonempty("KLYUCH_LOG_FILE") {
            self.log.file = Some(PathBuf::from(v));
        }
    }

    fn validate(&self) -> Result<()> {
        let s = &self.softtoken;
        let bad = |m: String| {
            Err(Error::with(
                CKR_GENERAL_ERROR,
                format!("bad configuration: {m}"),
            ))
        };
        if s.min_pin_len == 0 || s.min_pin_len > s.max_pin_len || s.max_pin_len > 255 {
            return bad(format!(
                "softtoken PIN length bounds {}..{} (need 1 <= min <= max <= 255)",
                s.min_pin_len, s.max_pin_len
            ));
        }
        if s.max_user_pin_failures == 0 || s.max_so_pin_failures == 0 {
            return bad("softtoken max_*_pin_failures must be at least 1".into());
        }
        if s.kdf_iterations < 1000 {
            return bad(format!(
                "softtoken kdf_iterations {} is below 1000",
                s.kdf_iterations
            ));
        }
        if let Some(l) = &self.log.level {
            if level_from_str(l).is_none() {
                return bad(format!(
                    "log level {l:?} (use error, warn, info, debug or trace)"
                ));
            }
        }
        Ok(())
    }

    /// The soft token store folder.
    pub fn token_dir(&self) -> PathBuf {
        match &self.softtoken.dir {
            Some(d) => d.clone(),
            None => xdg("XDG_DATA_HOME", ".local/share")
                .join("klyuch")
                .join("tokens"),
        }
    }
}

/// Parse a log level name.
pub fn level_from_str(s: &str) -> Option<log::LevelFilter> {
    Some(match s.to_ascii_lowercase().as_str() {
        "off" | "0" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parse() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.softtoken.min_pin_len, 4);
        assert_eq!(c.softtoken.max_pin_len, 64);
        assert_eq!(c.softtoken.max_user_pin_failures, 10);
        assert!(c.pcsc.enabled);
        let c = Config::parse("[softtoken]\nmin_pin_len = 6\nmax_user_pin_failures = 3\n").unwrap();
        assert_eq!(c.softtoken.min_pin_len, 6);
        assert_eq!(c.softtoken.max_user_pin_failures, 3);
    }

    #[test]
    fn bad_files_say_why() {
        let e = Config::parse("[softtoken]\nmin_pin_len = 9\nmax_pin_len = 5\n").unwrap_err();
        assert!(e.detail().contains("PIN length"), "{e}");
        let e = Config::parse("[softtoken]\nbogus = 1\n").unwrap_err();
        assert!(e.detail().contains("bogus"), "{e}");
        let e = Config::parse("[log]\nlevel = \"loud\"\n").unwrap_err();
        assert!(e.detail().contains("loud"), "{e}");
    }
}
