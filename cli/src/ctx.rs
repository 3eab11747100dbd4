//! The loaded PKCS#11 module, token selection, sessions and login.

use crate::error::{CliError, Result};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki_sys::*;
use secrecy::SecretString;
use std::path::{Path, PathBuf};

pub const MODULE_FILE: &str = "libklyuch_pkcs11.so";

/// Where the module is looked for when neither `--module` nor `KLYUCH_MODULE` names one.
pub const SYSTEM_MODULE_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11/libklyuch_pkcs11.so",
    "/usr/local/lib/libklyuch_pkcs11.so",
    "/usr/lib/libklyuch_pkcs11.so",
];

/// The module to load: `--module`, else `KLYUCH_MODULE`, else `libklyuch_pkcs11.so` next to
/// this executable, else the system paths.
pub fn resolve_module(option: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = option {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("KLYUCH_MODULE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut tried = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join(MODULE_FILE);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    for p in SYSTEM_MODULE_PATHS {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(CliError::new(format!(
        "no PKCS#11 module found: give one with --module PATH or the environment variable \
         KLYUCH_MODULE (looked for {})",
        list.join(", ")
    )))
}

/// How the user picked a token.
#[derive(Clone, Debug, Default)]
pub struct TokenSelector {
    pub slot: Option<u64>,
    pub token: Option<String>,
}

/// A loaded and initialised module.
pub struct Ctx {
    pub p11: Pkcs11,
    pub path: PathBuf,
}

impl Ctx {
    pub fn open(module: Option<&Path>) -> Result<Ctx> {
        let path = resolve_module(module)?;
        if !path.exists() {
            return Err(CliError::new(format!(
                "the PKCS#11 module {} does not exist",
                path.display()
            )));
        }
        let p11 = Pkcs11::new(&path).map_err(|e| match e {
            cryptoki::error::Error::LibraryLoading(le) => CliError::new(format!(
                "cannot load the PKCS#11 module {}: {le}",
                path.display()
            )),
            other => {
                CliError::from(other).context(format!("loading the module {}", path.display()))
            }
        })?;
        p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| {
                CliError::from(e).context(format!("initialising the module {}", path.display()))
            })?;
        Ok(Ctx { p11, path })
    }

    /// Slots with a token in them, with their token info.
    fn tokens(&self) -> Result<Vec<(Slot, TokenInfo)>> {
        let mut out = Vec::new();
        for slot in self.p11.get_slots_with_token()? {
            // A token pulled out between the two calls is simply skipped.
            if let Ok(info) = self.p11.get_token_info(slot) {
                out.push((slot, info));
            }
        }
        Ok(out)
    }

    fn by_slot_id(&self, id: u64) -> Result<(Slot, TokenInfo)> {
        let slot = self
            .p11
            .get_all_slots()?
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or_else(|| {
                CliError::new(format!(
                    "no slot {id} (CKR_SLOT_ID_INVALID); `klyuch slots` lists the slots"
                ))
            })?;
        let info = self.p11.get_token_info(slot).map_err(|e| {
            let e = CliError::from(e);
            if e.is_rv(CKR_TOKEN_NOT_PRESENT) {
                CliError::new(format!("no token in slot {id} (CKR_TOKEN_NOT_PRESENT)"))
            } else {
                e
            }
        })?;
        Ok((slot, info))
    }

    fn by_label(&self, label: &str, initialised: bool) -> Result<(Slot, TokenInfo)> {
        let mut found: Vec<(Slot, TokenInfo)> = self
            .tokens()?
            .into_iter()
            .filter(|(_, i)| i.label().trim_end() == label && i.token_initialized() == initialised)
            .collect();
        match found.len() {
            0 => Err(CliError::new(format!(
                "no {}token labelled \"{label}\"; `klyuch slots` lists the tokens",
                if initialised { "" } else { "uninitialised " }
            ))),
            1 => Ok(found.remove(0)),
            _ => {
                let ids: Vec<String> = found.iter().map(|(s, _)| s.id().to_string()).collect();
                Err(CliError::new(format!(
                    "several tokens are labelled \"{label}\" (slots {}); pick one with --slot",
                    ids.join(", ")
                )))
            }
        }
    }

    /// The token a command works on: `--slot`, `--token`, else the only (or first)
    /// initialised token.
    pub fn select(&self, sel: &TokenSelector) -> Result<(Slot, TokenInfo)> {
        let (slot, info) = if let Some(id) = sel.slot {
            let found = self.by_slot_id(id)?;
            if let Some(label) = &sel.token {
                if found.1.label().trim_end() != label {
                    return Err(CliError::new(format!(
                        "the token in slot {id} is labelled \"{}\", not \"{label}\"",
                        found.1.label().trim_end()
                    )));
                }
            }
            found
        } else if let Some(label) = &sel.token {
            self.by_label(label, true)?
        } else {
            self.tokens()?
                .into_iter()
                .find(|(_, i)| i.token_initialized())
                .ok_or_else(|| {
                    CliError::new(
                        "no initialised token found; `klyuch slots` lists the slots, and \
                         `klyuch token init --label NAME` initialises one",
                    )
                })?
        };
        if !info.token_initialized() {
            return Err(CliError::new(format!(
                "the token in slot {} is not initialised; `klyuch token init --slot {} --label \
                 NAME` initialises it",
                slot.id(),
                slot.id()
            )));
        }
        Ok((slot, info))
    }

    /// The slot `token init` works on: `--slot`/`--token`, else the first slot whose token is
    /// not initialised.
    pub fn select_for_init(&self, sel: &TokenSelector) -> Result<(Slot, TokenInfo)> {
        if let Some(id) = sel.slot {
            return self.by_slot_id(id);
        }
        if let Some(label) = &sel.token {
            return self
                .by_label(label, true)
                .or_else(|_| self.by_label(label, false));
        }
        self.tokens()?
            .into_iter()
            .find(|(_, i)| !i.token_initialized())
            .ok_or_else(|| {
                CliError::new(
                    "no slot with an uninitialised token; to initialise (and so erase) an \
                     existing token, name it with --slot or --token",
                )
            })
    }

    pub fn open_session(&self, slot: Slot, rw: bool) -> Result<Session> {
        let s = if rw {
            self.p11.open_rw_session(slot)
        } else {
            self.p11.open_ro_session(slot)
        };
        s.map_err(|e| CliError::from(e).context("opening a session"))
    }

    /// Log in; on a wrong PIN, say how the PIN stands now (final try, locked).
    pub fn login(
        &self,
        session: &Session,
        slot: Slot,
        user: UserType,
        pin: Option<&SecretString>,
    ) -> Result<()> {
        match session.login(user, pin) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = CliError::from(e);
                if err.is_rv(CKR_USER_ALREADY_LOGGED_IN) {
                    return Ok(());
                }
                Err(self.explain_pin_error(err, slot, user))
            }
        }
    }

    /// Add the PIN state to a PIN error (`...; 1 try left before the user PIN locks`).
    pub fn explain_pin_error(&self, err: CliError, slot: Slot, user: UserType) -> CliError {
        if !(err.is_rv(CKR_PIN_INCORRECT) || err.is_rv(CKR_PIN_LOCKED)) {
            return err;
        }
        let so = matches!(user, UserType::So);
        match self.p11.get_token_info(slot) {
            Ok(info) => match pin_state(&info, so) {
                // COUNT_LOW only says that a wrong PIN was entered: this one.
                PinState::Ok | PinState::NotSet | PinState::CountLow
                    if err.is_rv(CKR_PIN_INCORRECT) =>
                {
                    err
                }
                state => err.append(state.words(so)),
            },
            Err(_) => err,
        }
    }

    /// The user PIN of `info`'s token, unless it has a PIN pad (then `None`: the module asks).
    pub fn user_pin_for(
        &self,
        info: &TokenInfo,
        source: &crate::pin::SecretSource<'_>,
    ) -> Result<Option<SecretString>> {
        if info.protected_authentication_path() && !source.given() {
            eprintln!("Enter the {} on the PIN pad of the reader.", source.what);
            return Ok(None);
        }
        source.get().map(Some)
    }
}

/// How a PIN stands, from the token flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinState {
    Ok,
    NotSet,
    CountLow,
    FinalTry,
    Locked,
    ToBeChanged,
}

pub fn pin_state(info: &TokenInfo, so: bool) -> PinState {
    let (locked, final_try, low, change) = if so {
        (
            info.so_pin_locked(),
            info.so_pin_final_try(),
            info.so_pin_count_low(),
            info.so_pin_to_be_changed(),
        )
    } else {
        (
            info.user_pin_locked(),
            info.user_pin_final_try(),
            info.user_pin_count_low(),
            info.user_pin_to_be_changed(),
        )
    };
    if locked {
        PinState::Locked
    } else if final_try {
        PinState::FinalTry
    } else if low {
        PinState::CountLow
    } else if !so && !info.user_pin_initialized() {
        PinState::NotSet
    } else if change {
        PinState::ToBeChanged
    } else {
        PinState::Ok
    }
}

impl PinState {
    pub fn words(self, so: bool) -> String {
        let who = if so { "SO PIN" } else { "user PIN" };
        match self {
            PinState::Ok => format!("the {who} is fine"),
            PinState::NotSet => format!("the {who} is not set"),
            PinState::CountLow => format!(
                "wrong {who}s were entered since the last login; the {who} locks after too many"
            ),
            PinState::FinalTry => format!("1 try left before the {who} locks"),
            PinState::Locked => {
                if so {
                    "the SO PIN is now locked: only re-initialising the token helps".to_string()
                } else {
                    "the user PIN is now locked: the SO can unblock it with `klyuch pin unblock`"
                        .to_string()
                }
            }
            PinState::ToBeChanged => format!("the {who} must be changed"),
        }
    }

    /// Short form for the `slots` listing.
    pub fn short(self) -> &'static str {
        match self {
            PinState::Ok => "ok",
            PinState::NotSet => "not set",
            PinState::CountLow => "ok, but wrong tries since the last login",
            PinState::FinalTry => "1 try left",
            PinState::Locked => "locked",
            PinState::ToBeChanged => "must be changed",
        }
    }
}

/// Parse a slot ID: decimal, or hex with 0x.
pub fn parse_slot_id(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let r = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        s.parse()
    };
    r.map_err(|_| format!("\"{s}\" is not a slot ID (a number, decimal or 0x-hex)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids() {
        assert_eq!(parse_slot_id("12"), Ok(12));
        assert_eq!(parse_slot_id("0x1f"), Ok(31));
        assert!(parse_slot_id("slot").is_err());
    }

    #[test]
    fn module_option_wins() {
        let p = resolve_module(Some(Path::new("/x/y.so"))).unwrap();
        assert_eq!(p, PathBuf::from("/x/y.so"));
    }
}
