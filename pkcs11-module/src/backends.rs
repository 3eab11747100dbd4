//! The registry of slot sources. Each entry builds one `SlotSource` from the configuration, or
//! `None` when it is switched off. Order matters: it fixes the global slot numbering
//! (source index << 24), so soft tokens come first and keep their IDs across restarts.

use std::sync::Arc;

use token_api::config::Config;
use token_api::{Result, SlotSource};

type Factory = fn(&Config) -> Result<Option<Arc<dyn SlotSource>>>;

/// (name, factory) for every backend, in slot-numbering order.
const BACKENDS: &[(&str, Factory)] = &[
    ("softtoken", softtoken::SoftTokenSource::factory),
    ("pcsc", pcsc),
];

/// PC/SC readers (`KLYUCH_PCSC=0` or `[pcsc] enabled = false` switches them off). Starts without
/// error when pcscd is not running: then there are no reader slots.
fn pcsc(cfg: &Config) -> Result<Option<Arc<dyn SlotSource>>> {
    if !cfg.pcsc.enabled {
        return Ok(None);
    }
    Ok(Some(Arc::new(pcsc_backend::PcscSource::new(cfg)?)))
}

/// Build every enabled backend. A backend that fails to start is logged and left out, so that
/// one broken backend (say, a missing pcscd) never breaks the others.
pub fn sources(cfg: &Config) -> Vec<(u64, Arc<dyn SlotSource>)> {
    let mut out = Vec::new();
    for (i, (name, factory)) in (0u64..).zip(BACKENDS) {
        match factory(cfg) {
            Ok(Some(s)) => out.push((i, s)),
            Ok(None) => log::debug!("backend {name} is switched off"),
            Err(e) => log::warn!("backend {name} did not start: {e}"),
        }
    }
    out
}
