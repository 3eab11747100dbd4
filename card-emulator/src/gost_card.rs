//! The GOST token profile of docs/gost-card.md (work in progress).

use serde::{Deserialize, Serialize};

use crate::store::Store;

/// Persistent state of the GOST card.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct GostState {}

/// Command-line options that concern the GOST card.
#[derive(Debug, Clone)]
pub struct CliOptions {
    pub provision: bool,
    pub serial: Option<String>,
    pub atr: Vec<u8>,
    pub log: bool,
    pub init_only: bool,
    pub host: String,
    pub port: u16,
}

pub fn run_cli(_store: Store, _st: Option<GostState>, _o: CliOptions) -> Result<(), String> {
    Err("the gost profile is not implemented yet".into())
}
