//! `klyuch`: manage PKCS#11 tokens (Klyuch's own, SoftHSM, OpenSC, ...) through the standard
//! PKCS#11 interface.
#![forbid(unsafe_code)]

mod attrs;
mod cmd;
mod cms;
mod ctx;
mod describe;
mod error;
mod input;
mod p12;
mod pbe;
mod pin;
mod progress;
mod subject;
mod tokenkey;
mod uri;

use clap::{Args, Parser, Subcommand};
use ctx::TokenSelector;
use error::{CliError, EXIT_INTERNAL, EXIT_USAGE};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Module: --module, else $KLYUCH_MODULE, else libklyuch_pkcs11.so next to this program, else
/usr/lib/x86_64-linux-gnu/pkcs11/, /usr/local/lib/, /usr/lib/. Any PKCS#11 module works
(SoftHSM: --module /usr/lib/softhsm/libsofthsm2.so).

PINs: --pin / --pin-file FILE / $KLYUCH_PIN, else asked on the terminal without echo. The same
for the SO PIN (--so-pin, --so-pin-file, $KLYUCH_SO_PIN), a new PIN (--new-pin, --new-pin-file,
$KLYUCH_NEW_PIN) and passphrases (--passphrase, --passphrase-file, $KLYUCH_PASSPHRASE).

Exit status: 0 success, 1 failure (the message says why, with the CKR_ code from the token),
2 bad command line, 3 `status` found an expired certificate or a locked PIN, 70 internal error.";

/// Manage PKCS#11 tokens: slots, token and PIN set-up, objects, key and certificate import.
#[derive(Parser, Debug)]
#[command(name = "klyuch", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct GlobalArgs {
    /// The PKCS#11 module (.so) to load [default: $KLYUCH_MODULE, then libklyuch_pkcs11.so next
    /// to klyuch, then the system library folders]
    #[arg(
        long,
        global = true,
        help_heading = "Module and token",
        value_name = "PATH"
    )]
    module: Option<PathBuf>,
    /// Use the token in this slot (decimal or 0x-hex ID, as `klyuch slots` shows)
    #[arg(long, global = true, help_heading = "Module and token", value_name = "ID", value_parser = ctx::parse_slot_id)]
    slot: Option<u64>,
    /// Use the token with this label
    #[arg(
        long,
        global = true,
        help_heading = "Module and token",
        value_name = "LABEL"
    )]
    token: Option<String>,
    /// No progress bars (they are drawn only when standard error is a terminal anyway)
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
}

impl GlobalArgs {
    fn selector(&self) -> TokenSelector {
        TokenSelector {
            slot: self.slot,
            token: self.token.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the slots and their tokens, with PIN states
    Slots(cmd::slots::SlotsArgs),
    /// Token set-up
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
    /// Change or unblock PINs
    #[command(subcommand)]
    Pin(cmd::pin::PinCommand),
    /// List the objects on a token: keys, certificates, data
    Objects(cmd::objects::ObjectsArgs),
    /// Import keys and certificates (PEM, DER, PKCS#8, PKCS#12) into a token
    Import(cmd::import::ImportArgs),
    /// Delete objects from a token
    Delete(cmd::delete::DeleteArgs),
    /// Make a PKCS#10 certification request signed by a token key (RSA, EC, GOST)
    Csr(cmd::csr::CsrArgs),
    /// Generate a key pair on the token (GOST 2012, RSA, EC, Ed25519)
    Keygen(cmd::keygen::KeygenArgs),
    /// Token health: PIN states, certificates with days left and warnings
    Status(cmd::status::StatusArgs),
    /// Write an encrypted backup of a soft token (every object, under a password)
    Backup(cmd::backup::BackupArgs),
    /// Bring a soft token backup back as a new token
    Restore(cmd::backup::RestoreArgs),
    /// Sign files with a token key: detached (or --attached) CMS signatures, CAdES-BES
    Sign(cmd::sign::SignArgs),
    /// Check a CMS signature: content, signature, signer's certificate and its chain
    Verify(cmd::verify::VerifyArgs),
    /// Benchmark Klyuch's module against SoftHSMv2 (and raw aws-lc-rs, OpenSSL's GOST engine)
    Bench(cmd::bench::BenchArgs),
    /// Register the module with Firefox (every profile), Chromium (~/.pki/nssdb) and p11-kit
    #[command(after_help = cmd::register::REGISTER_HELP)]
    Register(cmd::register::RegisterArgs),
    /// Remove what `klyuch register` added
    Unregister(cmd::register::RegisterArgs),
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    progress::set_quiet(g.quiet);
    match cli.command {
        Command::Slots(a) => cmd::slots::run(g.module.as_deref(), &a),
        Command::Token(c) => cmd::token::run(g.module.as_deref(), &g.selector(), c),
        Command::Pin(c) => cmd::pin::run(g.module.as_deref(), &g.selector(), c),
        Command::Objects(a) => cmd::objects::run(g.module.as_deref(), &g.selector(), &a),
        Command::Import(a) => cmd::import::run(g.module.as_deref(), &g.selector(), &a),
        Command::Delete(a) => cmd::delete::run(g.module.as_deref(), &g.selector(), &a),
        Command::Csr(a) => cmd::csr::run(g.module.as_deref(), &g.selector(), &a),
        Command::Keygen(a) => cmd::keygen::run(g.module.as_deref(), &g.selector(), &a),
        Command::Status(a) => cmd::status::run(g.module.as_deref(), &g.selector(), &a),
        Command::Backup(a) => cmd::backup::run_backup(&g.selector(), &a),
        Command::Restore(a) => cmd::backup::run_restore(&a),
        Command::Sign(a) => cmd::sign::run(g.module.as_deref(), &g.selector(), &a),
        Command::Verify(a) => cmd::verify::run(&a),
        Command::Bench(a) => cmd::bench::run(g.module.as_deref(), &a),
        Command::Register(a) => cmd::register::run_register(g.module.as_deref(), &a),
        Command::Unregister(a) => cmd::register::run_unregister(&a),
    }
}

fn main() {
    // A bug must still end with one readable line, not a Rust panic dump.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        eprintln!("klyuch: internal error: {msg} (this is a bug in klyuch or a library it uses)");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(cli))) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("klyuch: {e}");
            e.code
        }
        Err(_) => EXIT_INTERNAL,
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
