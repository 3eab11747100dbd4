//! The module's logger: `KLYUCH_LOG=error|warn|info|debug|trace` (or `[log] level` in the
//! configuration), to stderr or to `KLYUCH_LOG_FILE`. Off by default except warnings and errors.
//!
//! Every PKCS#11 call is logged at debug level with its return value; no PIN or key value is ever
//! passed to the logger (the types that carry them print `***`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use token_api::config::{Config, level_from_str};

struct Logger {
    sink: Mutex<Option<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "klyuch[{}] {}.{:03} {:5} {}: {}\n",
            std::process::id(),
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            record.target(),
            record.args()
        );
        let mut sink = super::lock(&self.sink);
        match sink.as_mut() {
            Some(f) => {
                let _ = f.write_all(line.as_bytes());
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Some(f) = super::lock(&self.sink).as_mut() {
            let _ = f.flush();
        }
    }
}

/// Install the logger (once per process) and apply the configured level and file. Called by
/// `C_Initialize`; a later `C_Initialize` may change both.
pub fn init(cfg: &Config) {
    let logger = LOGGER.get_or_init(|| Logger {
        sink: Mutex::new(None),
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let level = cfg
        .log
        .level
        .as_deref()
        .and_then(level_from_str)
        .unwrap_or(log::LevelFilter::Warn);
    let file = cfg.log.file.as_ref().and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| eprintln!("klyuch: cannot open log file {}: {e}", p.display()))
            .ok()
    });
    *super::lock(&logger.sink) = file;
    log::set_max_level(level);
}
