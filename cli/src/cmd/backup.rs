//! `klyuch backup` and `klyuch restore`: a soft token to one password-encrypted file and back.
//!
//! The only place where `klyuch` works on the soft token's files rather than through PKCS#11:
//! keys are sensitive and unextractable, so no PKCS#11 call can read them out. Both commands
//! use the `softtoken` crate (`softtoken::backup`, where the file format is described) on the
//! store the module uses, found exactly as the module finds it (`token_api::config::Config`:
//! `KLYUCH_TOKEN_DIR`, else `softtoken.dir` of `KLYUCH_CONF` / `~/.config/klyuch/klyuch.toml`,
//! else `~/.local/share/klyuch/tokens`). `--module` plays no part.
//!
//! PINs of a restored token: new ones, given at restore time (`--so-pin`/`--so-pin-file`/
//! `KLYUCH_SO_PIN` and `--pin`/`--pin-file`/`KLYUCH_PIN`, else asked twice). The backup holds
//! nothing derived from the old PINs.

use crate::ctx::TokenSelector;
use crate::error::{CliError, Result};
use crate::pin::{SecretSource, SoPinArgs, UserPinArgs};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use token_api::Pin;
use token_api::config::Config;

/// Backup passwords shorter than this are refused: the password is all that protects the keys.
const MIN_PASSWORD_LEN: usize = 8;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Write the backup to this file (must not exist yet)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Read the backup password from the first line of FILE [default: $KLYUCH_BACKUP_PASSWORD,
    /// else asked twice on the terminal]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// PBKDF2-HMAC-SHA-256 iterations for the password [default: 600000]
    #[arg(long, value_name = "N", hide = true)]
    pub kdf_iterations: Option<u32>,
    #[command(flatten)]
    pub pin: UserPinArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file written by `klyuch backup`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Label of the new token [default: the label in the backup]
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Read the backup password from the first line of FILE [default: $KLYUCH_BACKUP_PASSWORD,
    /// else asked on the terminal]
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    // The new token's SO PIN (else --so-pin-file, KLYUCH_SO_PIN, or asked twice).
    #[command(flatten)]
    pub so_pin: SoPinArgs,
    // The new token's user PIN (else --pin-file, KLYUCH_PIN, or asked twice).
    #[command(flatten)]
    pub pin: UserPinArgs,
}

fn password_source(file: Option<&Path>, confirm: bool) -> SecretSource<'_> {
    SecretSource {
        value: None,
        file,
        env: "KLYUCH_BACKUP_PASSWORD",
        what: "backup password",
        options: "--password-file",
        confirm,
    }
}

fn pin_of(s: &SecretString) -> Pin {
    Pin::new(s.expose_secret().as_bytes())
}

fn config() -> Result<Config> {
    Config::load().map_err(|e| CliError::new(format!("the Klyuch configuration: {}", e.detail())))
}

fn soft_err(what: &str) -> impl Fn(token_api::Error) -> CliError + '_ {
    move |e| {
        let rv = e.rv();
        let detail = e.detail().to_string();
        let name = crate::error::ckr_name(rv);
        CliError::new(if detail.is_empty() {
            format!("{what}: {} ({name})", crate::error::plain_words(rv))
        } else if rv == token_api::ck::CKR_PIN_INCORRECT
            || rv == token_api::ck::CKR_PIN_LOCKED
            || rv == token_api::ck::CKR_USER_PIN_NOT_INITIALIZED
            || rv == token_api::ck::CKR_PIN_LEN_RANGE
        {
            format!("{what}: {detail} ({name})")
        } else {
            format!("{what}: {detail}")
        })
    }
}

pub fn run_backup(sel: &TokenSelector, a: &BackupArgs) -> Result<()> {
    let label = sel
        .token
        .as_deref()
        .ok_or_else(|| CliError::usage("name the soft token to back up with --token LABEL"))?;
    if sel.slot.is_some() {
        return Err(CliError::usage(
            "backup picks the soft token by its label (--token LABEL), not by --slot",
        ));
    }
    if a.out.exists() {
        return Err(CliError::new(format!(
            "{} already exists; remove it or choose another file (a backup is never \
             overwritten)",
            a.out.display()
        )));
    }
    let cfg = config()?;
    let store = cfg.token_dir();
    let user_pin = a.pin.source().get()?;
    let password = password_source(a.password_file.as_deref(), true).get()?;
    if password.expose_secret().chars().count() < MIN_PASSWORD_LEN {
        return Err(CliError::new(format!(
            "the backup password must have at least {MIN_PASSWORD_LEN} characters: it is all \
             that protects the keys in the file"
        )));
    }
    // three steps (the soft token crate reads and seals all objects in one call each)
    let pb = crate::progress::steps(3, format!("backup of \"{label}\": reading the objects"));
    let image = softtoken::backup::export(&store, &cfg.softtoken, label, &pin_of(&user_pin))
        .map_err(soft_err(&format!("reading the soft token \"{label}\"")))?;
    pb.inc(1);
    let iterations = a
        .kdf_iterations
        .unwrap_or(softtoken::backup::DEFAULT_ITERATIONS);
    pb.set_message(format!(
        "backup of \"{label}\": deriving the key, encrypting {} objects",
        image.objects.len()
    ));
    let sealed = image
        .seal(password.expose_secret().as_bytes(), iterations)
        .map_err(soft_err("encrypting the backup"))?;
    pb.inc(1);
    pb.set_message(format!(
        "backup of \"{label}\": writing {}",
        a.out.display()
    ));
    write_new_file(&a.out, &sealed)?;
    pb.inc(1);
    pb.finish_and_clear();
    println!(
        "Backed up soft token \"{}\" (serial {}): {} objects ({} private) to {}.",
        image.label,
        image.serial,
        image.objects.len(),
        image.private_count(),
        a.out.display()
    );
    println!("Keep the file and its password apart: together they give the keys.");
    Ok(())
}

/// Write a new file (never replacing one) with mode 0600: a temporary file in the same
/// folder, synced, then linked under the final name.
fn write_new_file(path: &Path, data: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let err = |e: std::io::Error| CliError::new(format!("writing {}: {e}", path.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".klyuch-backup-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(err)?;
    tmp.write_all(data).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist_noclobber(path).map_err(|e| err(e.error))?;
    Ok(())
}

pub fn run_restore(a: &RestoreArgs) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&a.file)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", a.file.display())))?,
    );
    let password = password_source(a.password_file.as_deref(), false).get()?;
    let pb = crate::progress::steps(
        1,
        format!("{}: deriving the key, decrypting", a.file.display()),
    );
    let image = softtoken::backup::TokenImage::open(&bytes, password.expose_secret().as_bytes())
        .map_err(|e| {
            CliError::new(format!(
                "{}: {}; nothing was restored",
                a.file.display(),
                e.detail()
            ))
        })?;
    pb.inc(1);
    pb.finish_and_clear();
    let label = a.label.clone().unwrap_or_else(|| image.label.clone());
    let cfg = config()?;
    let store = cfg.token_dir();
    let so_pin = a.so_pin.source_new().get()?;
    let user_pin = a.pin.source_new().get()?;
    let pb = crate::progress::steps(
        1,
        format!("restoring {} objects as \"{label}\"", image.objects.len()),
    );
    let r = softtoken::backup::restore(
        &store,
        &cfg.softtoken,
        &image,
        &label,
        &pin_of(&so_pin),
        &pin_of(&user_pin),
    )
    .map_err(|e| soft_err("restoring")(e).append("nothing was restored"))?;
    pb.inc(1);
    pb.finish_and_clear();
    println!(
        "Restored {} objects ({} private) from {} as the new soft token \"{}\" (serial {}, slot \
         {}) in {}.",
        image.objects.len(),
        image.private_count(),
        a.file.display(),
        r.label,
        r.serial,
        r.slot,
        store.display()
    );
    Ok(())
}
