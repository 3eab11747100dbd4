//! `klyuch status`: what needs the user's attention, token by token: the PIN states (from the
//! token flags: wrong tries since the last login, final try, locked, must be changed) and every
//! certificate with its days left, warned about when under 30 days (`--warn-days`) or expired.
//!
//! Exit status: 0 when nothing has run out (warnings about certificates that expire soon are
//! printed but do not fail); 3 when something needs action now: a certificate has expired or
//! is not valid yet, or a user PIN is locked; 1 when the command itself failed.

use crate::cmd::objects::{ObjectInfo, describe_object};
use crate::cmd::trim_label;
use crate::ctx::{Ctx, PinState, TokenSelector, pin_state};
use crate::describe::validity_warning;
use crate::error::{CliError, Result};
use crate::pin::UserPinArgs;
use clap::Args;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::slot::{Slot, TokenInfo};
use serde::Serialize;
use std::path::Path;

/// The exit status when something needs action now.
pub const EXIT_ATTENTION: i32 = 3;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Warn about certificates with fewer days left than this
    #[arg(long, value_name = "DAYS", default_value_t = crate::describe::WARN_DAYS)]
    pub warn_days: i64,
    /// Log in with the user PIN to include private certificates (rare; only with --token/--slot)
    #[arg(long)]
    pub login: bool,
    /// Print JSON (one array of tokens) instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

#[derive(Serialize)]
struct CertStatus {
    label: String,
    id: String,
    subject: String,
    not_after: String,
    days_left: i64,
    expired: bool,
    not_yet_valid: bool,
    warning: Option<String>,
}

#[derive(Serialize)]
struct TokenStatus {
    slot: u64,
    label: String,
    serial: String,
    model: String,
    user_pin: &'static str,
    so_pin: &'static str,
    /// Sentences about the PINs that need attention.
    pin_warnings: Vec<String>,
    certificates: Vec<CertStatus>,
    /// Set when the certificates could not be read.
    error: Option<String>,
}

fn certificates(
    ctx: &Ctx,
    slot: Slot,
    info: &TokenInfo,
    a: &StatusArgs,
    warn_days: i64,
) -> Result<Vec<CertStatus>> {
    let session = ctx.open_session(slot, false)?;
    if a.login {
        let pin = ctx.user_pin_for(info, &a.pin.source())?;
        ctx.login(&session, slot, UserType::User, pin.as_ref())?;
    }
    let mut out = Vec::new();
    for h in session.find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])? {
        let o: ObjectInfo = describe_object(&session, h)?;
        let Some(c) = o.certificate else { continue };
        out.push(CertStatus {
            label: o.label,
            id: o.id,
            subject: c.subject.clone(),
            not_after: c.not_after.clone(),
            days_left: c.days_left,
            expired: c.expired,
            not_yet_valid: c.not_yet_valid,
            warning: validity_warning(&c, warn_days),
        });
    }
    if a.login {
        let _ = session.logout();
    }
    out.sort_by(|x, y| (x.days_left, &x.label).cmp(&(y.days_left, &y.label)));
    Ok(out)
}

fn pin_warnings(info: &TokenInfo) -> Vec<String> {
    let mut v = Vec::new();
    for so in [false, true] {
        let st = pin_state(info, so);
        if !matches!(st, PinState::Ok) {
            v.push(st.words(so));
        }
    }
    v
}

pub fn run(module: Option<&Path>, sel: &TokenSelector, a: &StatusArgs) -> Result<()> {
    let ctx = Ctx::open(module)?;
    let chosen: Vec<(Slot, TokenInfo)> = if sel.slot.is_some() || sel.token.is_some() {
        vec![ctx.select(sel)?]
    } else {
        if a.login {
            return Err(CliError::usage(
                "--login needs one token: name it with --token or --slot",
            ));
        }
        let mut v = Vec::new();
        for slot in ctx.p11.get_slots_with_token()? {
            if let Ok(info) = ctx.p11.get_token_info(slot)
                && info.token_initialized()
            {
                v.push((slot, info));
            }
        }
        v
    };
    let mut report = Vec::new();
    for (slot, info) in &chosen {
        let (certs, error) = match certificates(&ctx, *slot, info, a, a.warn_days) {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e.message)),
        };
        report.push(TokenStatus {
            slot: slot.id(),
            label: trim_label(info.label()).to_string(),
            serial: trim_label(info.serial_number()).to_string(),
            model: trim_label(info.model()).to_string(),
            user_pin: pin_state(info, false).short(),
            so_pin: pin_state(info, true).short(),
            pin_warnings: pin_warnings(info),
            certificates: certs,
            error,
        });
    }
    let expired: usize = report
        .iter()
        .flat_map(|t| &t.certificates)
        .filter(|c| c.expired || c.not_yet_valid)
        .count();
    let locked: usize = chosen
        .iter()
        .filter(|(_, i)| pin_state(i, false) == PinState::Locked)
        .count();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_else(|_| "[]".into())
        );
    } else {
        print_text(&report);
    }
    if expired + locked > 0 {
        let mut parts = Vec::new();
        if expired > 0 {
            parts.push(format!(
                "{expired} certificate{} expired or not yet valid",
                if expired == 1 { " is" } else { "s are" }
            ));
        }
        if locked > 0 {
            parts.push(format!(
                "{locked} token{} a locked user PIN",
                if locked == 1 { " has" } else { "s have" }
            ));
        }
        let mut e = CliError::new(format!("attention: {}", parts.join("; ")));
        e.code = EXIT_ATTENTION;
        return Err(e);
    }
    Ok(())
}

fn print_text(report: &[TokenStatus]) {
    if report.is_empty() {
        println!("No initialised token found; `klyuch slots` lists the slots.");
        return;
    }
    for (i, t) in report.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!(
            "Token \"{}\" (slot {}, serial {})",
            t.label, t.slot, t.serial
        );
        println!("  user PIN: {}", t.user_pin);
        println!("  SO PIN:   {}", t.so_pin);
        for w in &t.pin_warnings {
            println!("  warning: {w}");
        }
        if let Some(e) = &t.error {
            println!("  certificates: cannot be read: {e}");
            continue;
        }
        if t.certificates.is_empty() {
            println!("  certificates: none");
        }
        for c in &t.certificates {
            let left = if c.expired {
                "expired".to_string()
            } else {
                format!("{} days left", c.days_left)
            };
            println!(
                "  certificate \"{}\" id {}: {}; valid until {} ({left})",
                c.label, c.id, c.subject, c.not_after
            );
            if let Some(w) = &c.warning {
                println!("    warning: {w}");
            }
        }
    }
}
