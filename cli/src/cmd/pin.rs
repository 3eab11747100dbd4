//! `klyuch pin set` and `klyuch pin unblock`.

use crate::ctx::{Ctx, TokenSelector};
use crate::error::{CliError, Result};
use crate::pin::{NewPinArgs, SoPinArgs, UserPinArgs, check_length};
use clap::{Args, Subcommand};
use cryptoki::session::UserType;
use cryptoki_sys::CKR_USER_NOT_LOGGED_IN;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum PinCommand {
    /// Change the user PIN (or with --so the SO PIN): the old one, then the new one
    Set(SetArgs),
    /// Set a new user PIN as the SO (after the user PIN locked, or was never set)
    Unblock(UnblockArgs),
}

#[derive(Args, Debug)]
pub struct SetArgs {
    /// Change the SO PIN instead of the user PIN (the old one from --so-pin, --so-pin-file,
    /// KLYUCH_SO_PIN or a prompt)
    #[arg(long)]
    pub so: bool,
    #[command(flatten)]
    pub user: UserPinArgs,
    #[command(flatten)]
    pub so_pin: SoPinArgs,
    #[command(flatten)]
    pub new: NewPinArgs,
}

#[derive(Args, Debug)]
pub struct UnblockArgs {
    #[command(flatten)]
    pub so_pin: SoPinArgs,
    #[command(flatten)]
    pub new: NewPinArgs,
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, cmd: PinCommand) -> Result<()> {
    match cmd {
        PinCommand::Set(a) => set(module, sel, &a),
        PinCommand::Unblock(a) => unblock(module, sel, &a),
    }
}

fn set(module: Option<&Path>, sel: &TokenSelector, a: &SetArgs) -> Result<()> {
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let (min, max) = (info.min_pin_length(), info.max_pin_length());
    let session = ctx.open_session(slot, true)?;
    if a.so {
        let old = a.so_pin.source().get()?;
        let new = a.new.source("new SO PIN").get()?;
        check_length(&new, min, max, "new SO PIN")?;
        ctx.login(&session, slot, UserType::So, Some(&old))?;
        session
            .set_pin(&old, &new)
            .map_err(|e| ctx.explain_pin_error(e.into(), slot, UserType::So))
            .map_err(|e| e.context("changing the SO PIN"))?;
        let _ = session.logout();
        println!("SO PIN changed.");
        return Ok(());
    }
    let old = a.user.source().get()?;
    let new = a.new.source("new user PIN").get()?;
    check_length(&new, min, max, "new user PIN")?;
    // In a public R/W session C_SetPIN changes the user PIN; some modules want a login first.
    match session.set_pin(&old, &new) {
        Ok(()) => {}
        Err(e) => {
            let err = CliError::from(e);
            if !err.is_rv(CKR_USER_NOT_LOGGED_IN) {
                return Err(ctx
                    .explain_pin_error(err, slot, UserType::User)
                    .context("changing the user PIN"));
            }
            ctx.login(&session, slot, UserType::User, Some(&old))?;
            session
                .set_pin(&old, &new)
                .map_err(|e| ctx.explain_pin_error(e.into(), slot, UserType::User))
                .map_err(|e| e.context("changing the user PIN"))?;
            let _ = session.logout();
        }
    }
    println!("User PIN changed.");
    Ok(())
}

fn unblock(module: Option<&Path>, sel: &TokenSelector, a: &UnblockArgs) -> Result<()> {
    let ctx = Ctx::open(module)?;
    let (slot, info) = ctx.select(sel)?;
    let so = a.so_pin.source().get()?;
    let new = a.new.source("new user PIN").get()?;
    check_length(
        &new,
        info.min_pin_length(),
        info.max_pin_length(),
        "new user PIN",
    )?;
    let session = ctx.open_session(slot, true)?;
    ctx.login(&session, slot, UserType::So, Some(&so))?;
    session
        .init_pin(&new)
        .map_err(|e| CliError::from(e).context("setting the user PIN"))?;
    let _ = session.logout();
    println!("User PIN set by the SO; the user PIN is unblocked.");
    Ok(())
}
