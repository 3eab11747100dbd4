//! PINs and passphrases: from an option, a file (first line), an environment variable, or a
//! prompt on the terminal without echo. Values live in `SecretString` (zeroized on drop) and
//! are never printed.

use crate::error::{CliError, Result};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

fn secret(s: &str) -> std::result::Result<SecretString, String> {
    Ok(SecretString::from(s))
}

/// The user PIN.
#[derive(Args, Debug, Clone, Default)]
pub struct UserPinArgs {
    /// User PIN (visible to other users in the process list: prefer --pin-file, KLYUCH_PIN or
    /// the prompt)
    #[arg(long, value_name = "PIN", value_parser = secret, conflicts_with = "pin_file")]
    pub pin: Option<SecretString>,
    /// Read the user PIN from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// The SO (security officer) PIN.
#[derive(Args, Debug, Clone, Default)]
pub struct SoPinArgs {
    /// SO PIN (else --so-pin-file, env KLYUCH_SO_PIN, or a prompt)
    #[arg(long, value_name = "PIN", value_parser = secret, conflicts_with = "so_pin_file")]
    pub so_pin: Option<SecretString>,
    /// Read the SO PIN from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub so_pin_file: Option<PathBuf>,
}

/// A new PIN.
#[derive(Args, Debug, Clone, Default)]
pub struct NewPinArgs {
    /// The new PIN (else --new-pin-file, env KLYUCH_NEW_PIN, or a prompt, asked twice)
    #[arg(long, value_name = "PIN", value_parser = secret, conflicts_with = "new_pin_file")]
    pub new_pin: Option<SecretString>,
    /// Read the new PIN from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub new_pin_file: Option<PathBuf>,
}

/// A passphrase for encrypted key files.
#[derive(Args, Debug, Clone, Default)]
pub struct PassphraseArgs {
    /// Passphrase of an encrypted PKCS#8 key or PKCS#12 file (else --passphrase-file, env
    /// KLYUCH_PASSPHRASE, or a prompt)
    #[arg(long, value_name = "PASS", value_parser = secret, conflicts_with = "passphrase_file")]
    pub passphrase: Option<SecretString>,
    /// Read the passphrase from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Where one secret comes from, in order: option, file, environment, prompt.
pub struct SecretSource<'a> {
    pub value: Option<&'a SecretString>,
    pub file: Option<&'a Path>,
    pub env: &'static str,
    /// "user PIN", "SO PIN", "new user PIN", "passphrase".
    pub what: &'static str,
    /// The options that give it, for the error message when none did.
    pub options: &'static str,
    /// Ask twice when prompting (a new PIN).
    pub confirm: bool,
}

impl UserPinArgs {
    pub fn source(&self) -> SecretSource<'_> {
        SecretSource {
            value: self.pin.as_ref(),
            file: self.pin_file.as_deref(),
            env: "KLYUCH_PIN",
            what: "user PIN",
            options: "--pin, --pin-file",
            confirm: false,
        }
    }
    /// The user PIN as a PIN being set (token init --init-pin): asked twice.
    pub fn source_new(&self) -> SecretSource<'_> {
        SecretSource {
            what: "new user PIN",
            confirm: true,
            ..self.source()
        }
    }
}

impl SoPinArgs {
    pub fn source(&self) -> SecretSource<'_> {
        SecretSource {
            value: self.so_pin.as_ref(),
            file: self.so_pin_file.as_deref(),
            env: "KLYUCH_SO_PIN",
            what: "SO PIN",
            options: "--so-pin, --so-pin-file",
            confirm: false,
        }
    }
    /// The SO PIN of a token being initialised: asked twice.
    pub fn source_new(&self) -> SecretSource<'_> {
        SecretSource {
            what: "new SO PIN",
            confirm: true,
            ..self.source()
        }
    }
}

impl NewPinArgs {
    pub fn source(&self, what: &'static str) -> SecretSource<'_> {
        SecretSource {
            value: self.new_pin.as_ref(),
            file: self.new_pin_file.as_deref(),
            env: "KLYUCH_NEW_PIN",
            what,
            options: "--new-pin, --new-pin-file",
            confirm: true,
        }
    }
}

impl PassphraseArgs {
    pub fn source(&self) -> SecretSource<'_> {
        SecretSource {
            value: self.passphrase.as_ref(),
            file: self.passphrase_file.as_deref(),
            env: "KLYUCH_PASSPHRASE",
            what: "passphrase",
            options: "--passphrase, --passphrase-file",
            confirm: false,
        }
    }
}

/// The first line of a file (without its line ending).
pub fn read_first_line(path: &Path, what: &str) -> Result<SecretString> {
    let data = Zeroizing::new(std::fs::read(path).map_err(|e| {
        CliError::new(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })?);
    let text = std::str::from_utf8(&data).map_err(|_| {
        CliError::new(format!(
            "the {what} file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(SecretString::from(line))
}

impl SecretSource<'_> {
    /// Whether the secret comes from somewhere other than a prompt.
    pub fn given(&self) -> bool {
        self.value.is_some()
            || self.file.is_some()
            || std::env::var_os(self.env).is_some_and(|v| !v.is_empty())
    }

    /// Get the secret, prompting on the terminal as the last resort.
    pub fn get(&self) -> Result<SecretString> {
        if let Some(v) = self.value {
            return Ok(v.clone());
        }
        if let Some(f) = self.file {
            return read_first_line(f, self.what);
        }
        if let Ok(v) = std::env::var(self.env) {
            let v = Zeroizing::new(v);
            if !v.is_empty() {
                return Ok(SecretString::from(v.as_str()));
            }
        }
        self.prompt()
    }

    fn prompt(&self) -> Result<SecretString> {
        let no_tty = |_| {
            CliError::new(format!(
                "no {} given: use {} or the environment variable {} (there is no terminal to \
                 ask on)",
                self.what, self.options, self.env
            ))
        };
        let first = Zeroizing::new(
            rpassword::prompt_password(format!("Enter the {}: ", self.what)).map_err(no_tty)?,
        );
        if self.confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password(format!("Enter the {} again: ", self.what))
                    .map_err(no_tty)?,
            );
            if *first != *again {
                return Err(CliError::new(format!("the two {}s differ", self.what)));
            }
        }
        Ok(SecretString::from(first.as_str()))
    }
}

/// Length check of a PIN against a token's bounds, before the token sees it.
pub fn check_length(pin: &SecretString, min: usize, max: usize, what: &str) -> Result<()> {
    let len = pin.expose_secret().len();
    if max > 0 && (len < min || len > max) {
        return Err(CliError::new(format!(
            "the {what} must have {min} to {max} characters for this token (CKR_PIN_LEN_RANGE)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "1234\r\nsecond line\n").unwrap();
        assert_eq!(read_first_line(&p, "PIN").unwrap().expose_secret(), "1234");
        std::fs::write(&p, "5678").unwrap();
        assert_eq!(read_first_line(&p, "PIN").unwrap().expose_secret(), "5678");
        let e = read_first_line(&dir.path().join("none"), "user PIN").unwrap_err();
        assert!(e.message.contains("cannot read the user PIN file"));
    }

    #[test]
    fn option_wins() {
        let a = UserPinArgs {
            pin: Some(SecretString::from("1111")),
            pin_file: None,
        };
        assert_eq!(a.source().get().unwrap().expose_secret(), "1111");
        assert!(a.source().given());
    }
}
