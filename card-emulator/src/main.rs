//! `klyuch-card-emulator --profile piv|gost --port N --state DIR [--provision]`
//!
//! Puts an emulated smart card into the vsmartcard vpcd virtual reader listening on
//! 127.0.0.1:N (35963 = "Virtual PCD 00 00", 35964 = "Virtual PCD 00 01"). The card's
//! memory lives in DIR; stopping the process (SIGTERM, SIGINT, exit) removes the card.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use klyuch_card_emulator::store::{CardFile, Store};
use klyuch_card_emulator::{crypto, gost_card, piv, vpcd};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Profile {
    /// PIV card application (SP 800-73-4) with YubiKey 5 extensions.
    Piv,
    /// Klyuch GOST token (docs/gost-card.md).
    Gost,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Piv => "piv",
            Profile::Gost => "gost",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Smart card emulator for the vsmartcard vpcd virtual reader"
)]
struct Args {
    /// Card profile.
    #[arg(long, value_enum)]
    profile: Profile,
    /// TCP port of the vpcd reader (35963 = reader 0, 35964 = reader 1).
    #[arg(long, default_value_t = 35963)]
    port: u16,
    /// Host where vpcd listens.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// State directory: keys, certificates, PIN counters (created if missing).
    #[arg(long)]
    state: PathBuf,
    /// On a new state directory: create the test card (keys, certificates, default PINs).
    /// On an existing card it changes nothing.
    #[arg(long)]
    provision: bool,
    /// PIV with --provision: also a 9D ECC P-256 key with a gzip-compressed certificate and
    /// a 9E ECC P-384 key.
    #[arg(long)]
    extra_keys: bool,
    /// Answer to reset to present instead of the profile's (hex).
    #[arg(long)]
    atr: Option<String>,
    /// Serial number for a new card (PIV: decimal, as GET SERIAL reports it; GOST: up to
    /// 16 hex digits).
    #[arg(long)]
    serial: Option<String>,
    /// Trace every APDU to stderr (PIN, PUK and key material masked).
    #[arg(long)]
    log: bool,
    /// Create/open the card and exit without connecting to vpcd (for scripts).
    #[arg(long)]
    init_only: bool,
}

fn run(args: Args) -> Result<(), String> {
    let store = Store::open(&args.state)?;
    let existing = store.load()?;
    if let Some(f) = &existing {
        if f.profile != args.profile.name() {
            return Err(format!(
                "{} holds a {} card, not {}",
                args.state.display(),
                f.profile,
                args.profile.name()
            ));
        }
    }
    let atr = match &args.atr {
        Some(h) => hex::decode(h.replace([' ', ':'], "")).map_err(|e| format!("--atr: {e}"))?,
        None => Vec::new(),
    };
    match args.profile {
        Profile::Piv => {
            let st = match existing.and_then(|f| f.piv) {
                Some(st) => st,
                None => {
                    let serial = match &args.serial {
                        Some(s) => s.parse::<u32>().map_err(|e| format!("--serial: {e}"))?,
                        None => {
                            let r = crypto::random(4);
                            10_000_000 + u32::from_be_bytes([r[0], r[1], r[2], r[3]]) % 90_000_000
                        }
                    };
                    let st = if args.provision {
                        piv::provision(
                            serial,
                            piv::ProvisionOptions {
                                extra_keys: args.extra_keys,
                            },
                        )?
                    } else {
                        piv::PivState::empty(serial)
                    };
                    store.save(&CardFile {
                        profile: "piv".into(),
                        piv: Some(st.clone()),
                        gost: None,
                    })?;
                    st
                }
            };
            if args.init_only {
                return Ok(());
            }
            let atr = if atr.is_empty() {
                piv::YUBIKEY5_NFC_ATR.to_vec()
            } else {
                atr
            };
            let mut card = piv::Piv::new(st, Some(store), atr, args.log);
            vpcd::run(&args.host, args.port, &mut card, args.log, false).map_err(|e| e.to_string())
        }
        Profile::Gost => gost_card::run_cli(
            store,
            existing.and_then(|f| f.gost),
            gost_card::CliOptions {
                provision: args.provision,
                serial: args.serial.clone(),
                atr,
                log: args.log,
                init_only: args.init_only,
                host: args.host.clone(),
                port: args.port,
            },
        ),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("klyuch-card-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}
