//! `klyuch token init`.

use crate::cmd::trim_label;
use crate::ctx::{Ctx, TokenSelector};
use crate::error::{CliError, Result};
use crate::pin::{SoPinArgs, UserPinArgs, check_length};
use clap::{Args, Subcommand};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use std::collections::HashSet;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Initialise a token (erases it) with a label and an SO PIN; with --init-pin, also set
    /// the user PIN. Default slot: the first one whose token is not initialised.
    Init(InitArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The token label (at most 32 bytes)
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// Also set the user PIN (from --pin, --pin-file, KLYUCH_PIN or a prompt)
    #[arg(long)]
    pub init_pin: bool,
    #[command(flatten)]
    pub so: SoPinArgs,
    #[command(flatten)]
    pub user: UserPinArgs,
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Init(a) => init(module, sel, &a),
    }
}

fn init(module: Option<&Path>, sel: &TokenSelector, a: &InitArgs) -> Result<()> {
    if a.label.len() > 32 {
        return Err(CliError::usage(format!(
            "the label has {} bytes; PKCS#11 labels have at most 32",
            a.label.len()
        )));
    }
    if !a.init_pin && (a.user.pin.is_some() || a.user.pin_file.is_some()) {
        return Err(CliError::usage(
            "--pin/--pin-file given without --init-pin: add --init-pin to set the user PIN",
        ));
    }
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select_for_init(sel)?;
    let min = info.min_pin_length();
    let max = info.max_pin_length();
    // The SO PIN of a token that exists already must be the current one; a new token's is new.
    let so_source = if info.token_initialized() {
        a.so.source()
    } else {
        a.so.source_new()
    };
    let so_pin = so_source.get()?;
    check_length(&so_pin, min, max, "SO PIN")?;
    let user_pin = if a.init_pin {
        let p = a.user.source_new().get()?;
        check_length(&p, min, max, "user PIN")?;
        Some(p)
    } else {
        None
    };

    // Tokens that exist now, to find the new one afterwards (SoftHSM moves a freshly
    // initialised token to a new slot ID).
    let before: HashSet<(u64, String)> = ctx
        .p11
        .get_slots_with_initialized_token()?
        .into_iter()
        .filter_map(|s| {
            let t = ctx.p11.get_token_info(s).ok()?;
            Some((s.id(), t.serial_number().to_string()))
        })
        .collect();
    ctx.p11
        .init_token(slot, &so_pin, &a.label)
        .map_err(|e| ctx.explain_pin_error(e.into(), slot, UserType::So))
        .map_err(|e| e.context("initialising the token"))?;
    let new_slot = find_new_token(&ctx, slot, &a.label, &before)?;
    let serial = ctx
        .p11
        .get_token_info(new_slot)
        .map(|t| t.serial_number().trim_end().to_string())
        .unwrap_or_default();
    println!(
        "Token \"{}\" initialised in slot {} ({:#x}), serial {serial}.",
        a.label,
        new_slot.id(),
        new_slot.id()
    );
    if let Some(user_pin) = user_pin {
        let session = ctx.open_session(new_slot, true)?;
        ctx.login(&session, new_slot, UserType::So, Some(&so_pin))
            .map_err(|e| e.context("logging in as SO to set the user PIN"))?;
        session
            .init_pin(&user_pin)
            .map_err(|e| CliError::from(e).context("setting the user PIN"))?;
        let _ = session.logout();
        println!("User PIN set.");
    }
    Ok(())
}

fn find_new_token(
    ctx: &Ctx,
    slot: Slot,
    label: &str,
    before: &HashSet<(u64, String)>,
) -> Result<Slot> {
    // Klyuch and most hardware keep the token in its slot.
    if let Ok(t) = ctx.p11.get_token_info(slot) {
        if t.token_initialized() && trim_label(t.label()) == label {
            return Ok(slot);
        }
    }
    for s in ctx.p11.get_slots_with_initialized_token()? {
        if let Ok(t) = ctx.p11.get_token_info(s) {
            if trim_label(t.label()) == label
                && !before.contains(&(s.id(), t.serial_number().to_string()))
            {
                return Ok(s);
            }
        }
    }
    Err(CliError::new(format!(
        "the module reported success, but no slot shows the token \"{label}\" afterwards"
    )))
}
