//! `klyuch slots`.

use crate::cmd::trim_label;
use crate::ctx::{Ctx, PinState, pin_state};
use crate::error::Result;
use clap::Args;
use cryptoki::slot::{Limit, SlotInfo, TokenInfo};
use serde::Serialize;
use std::path::Path;

#[derive(Args, Debug)]
pub struct SlotsArgs {
    /// Print JSON (one array of slots) instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SlotJson {
    id: u64,
    description: String,
    manufacturer: String,
    flags: Vec<&'static str>,
    token: Option<TokenJson>,
}

#[derive(Serialize)]
struct TokenJson {
    label: String,
    manufacturer: String,
    model: String,
    serial: String,
    initialized: bool,
    flags: Vec<&'static str>,
    user_pin: &'static str,
    so_pin: &'static str,
    min_pin_len: usize,
    max_pin_len: usize,
}

fn slot_flags(s: &SlotInfo) -> Vec<&'static str> {
    let mut v = Vec::new();
    if s.token_present() {
        v.push("token present");
    }
    if s.removable_device() {
        v.push("removable");
    }
    if s.hardware_slot() {
        v.push("hardware");
    }
    v
}

fn token_flags(t: &TokenInfo) -> Vec<&'static str> {
    let mut v = Vec::new();
    v.push(if t.token_initialized() {
        "initialised"
    } else {
        "not initialised"
    });
    if t.login_required() {
        v.push("login required");
    }
    if t.user_pin_initialized() {
        v.push("user PIN set");
    }
    if t.write_protected() {
        v.push("write-protected");
    }
    if t.protected_authentication_path() {
        v.push("PIN pad");
    }
    if t.rng() {
        v.push("RNG");
    }
    if t.clock_on_token() {
        v.push("clock");
    }
    if t.secondary_authentication() {
        v.push("secondary authentication");
    }
    if t.dual_crypto_operations() {
        v.push("dual crypto operations");
    }
    if t.error_state() {
        v.push("ERROR STATE");
    }
    v
}

fn pin_word(state: PinState, set: bool) -> &'static str {
    if !set { "not set" } else { state.short() }
}

fn limit(l: Limit) -> String {
    match l {
        Limit::Max(n) => n.to_string(),
        Limit::Unavailable => "unknown".into(),
        Limit::Infinite => "no limit".into(),
    }
}

pub fn run(module: Option<&Path>, args: &SlotsArgs) -> Result<()> {
    let ctx = Ctx::open(module)?;
    let slots = ctx.p11.get_all_slots()?;
    let mut out = Vec::new();
    for slot in &slots {
        let info = ctx.p11.get_slot_info(*slot)?;
        let token = if info.token_present() {
            ctx.p11.get_token_info(*slot).ok()
        } else {
            None
        };
        out.push((*slot, info, token));
    }
    if args.json {
        let v: Vec<SlotJson> = out
            .iter()
            .map(|(slot, info, token)| SlotJson {
                id: slot.id(),
                description: info.slot_description().trim_end().to_string(),
                manufacturer: info.manufacturer_id().trim_end().to_string(),
                flags: slot_flags(info),
                token: token.as_ref().map(|t| TokenJson {
                    label: trim_label(t.label()).to_string(),
                    manufacturer: t.manufacturer_id().trim_end().to_string(),
                    model: t.model().trim_end().to_string(),
                    serial: t.serial_number().trim_end().to_string(),
                    initialized: t.token_initialized(),
                    flags: token_flags(t),
                    user_pin: pin_word(pin_state(t, false), t.user_pin_initialized()),
                    so_pin: pin_word(pin_state(t, true), t.token_initialized()),
                    min_pin_len: t.min_pin_length(),
                    max_pin_len: t.max_pin_length(),
                }),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "[]".into())
        );
        return Ok(());
    }
    let lib = ctx.p11.get_library_info().ok();
    match lib {
        Some(l) => println!(
            "Module {} ({}, {} {})",
            ctx.path.display(),
            l.manufacturer_id().trim_end(),
            l.library_description().trim_end(),
            l.library_version()
        ),
        None => println!("Module {}", ctx.path.display()),
    }
    if out.is_empty() {
        println!("No slots.");
        return Ok(());
    }
    for (slot, info, token) in &out {
        println!();
        println!(
            "Slot {} ({:#x}): {}",
            slot.id(),
            slot.id(),
            info.slot_description().trim_end()
        );
        println!("  manufacturer:  {}", info.manufacturer_id().trim_end());
        println!("  slot flags:    {}", slot_flags(info).join(", "));
        let Some(t) = token else {
            println!("  token:         none");
            continue;
        };
        if !t.token_initialized() {
            println!(
                "  token:         not initialised (klyuch token init --slot {} --label NAME)",
                slot.id()
            );
        } else {
            println!("  token label:   {}", trim_label(t.label()));
        }
        println!("  manufacturer:  {}", t.manufacturer_id().trim_end());
        println!("  model:         {}", t.model().trim_end());
        if !t.serial_number().trim().is_empty() {
            println!("  serial:        {}", t.serial_number().trim_end());
        }
        println!("  token flags:   {}", token_flags(t).join(", "));
        if t.token_initialized() {
            println!(
                "  user PIN:      {}",
                pin_word(pin_state(t, false), t.user_pin_initialized())
            );
            println!("  SO PIN:        {}", pin_state(t, true).short());
        }
        println!(
            "  PIN length:    {} to {}",
            t.min_pin_length(),
            t.max_pin_length()
        );
        if let Some(n) = t.session_count() {
            println!(
                "  sessions:      {n} open (max {})",
                limit(t.max_session_count())
            );
        }
    }
    Ok(())
}
