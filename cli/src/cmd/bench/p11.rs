//! The PKCS#11 side of the benchmark: a token on a temporary store, the calls that are timed,
//! and the helper processes (OpenSSL's GOST engine, the raw-mechanism harness).

use super::measure::OpResult;
use super::spec::Who;
use crate::error::CliError;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

pub const SO_PIN: &str = "12345678";
pub const USER_PIN: &str = "1234";

/// A PKCS#11 error as one line with its CKR_ name.
pub fn ck(e: cryptoki::error::Error) -> String {
    CliError::from(e).to_string()
}

/// A module loaded and initialised, with a fresh token and a logged-in R/W session.
pub struct Tok {
    pub who: Who,
    pub p11: Pkcs11,
    pub slot: Slot,
    pub s: Session,
}

impl Tok {
    /// Load the module, initialise the first uninitialised token as `label` with the bench PINs,
    /// and log the user in.
    pub fn open(path: &Path, who: Who, label: &str) -> Result<Tok, String> {
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        let p11 =
            Pkcs11::new(path).map_err(|e| format!("loading {}: {}", path.display(), ck(e)))?;
        p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(ck)?;
        let mut empty = None;
        for s in p11.get_slots_with_token().map_err(ck)? {
            let info = p11.get_token_info(s).map_err(ck)?;
            if !info.token_initialized() {
                empty = Some(s);
                break;
            }
        }
        let slot = empty.ok_or("the module shows no slot with an uninitialised token")?;
        p11.init_token(slot, &AuthPin::new(SO_PIN.into()), label)
            .map_err(|e| format!("C_InitToken: {}", ck(e)))?;
        // SoftHSM gives an initialised token a new slot number: find it by its label.
        let slot = Self::find_slot(&p11, label)?;
        {
            let s = p11.open_rw_session(slot).map_err(ck)?;
            s.login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
                .map_err(ck)?;
            s.init_pin(&AuthPin::new(USER_PIN.into())).map_err(ck)?;
            s.logout().map_err(ck)?;
        }
        let s = p11.open_rw_session(slot).map_err(ck)?;
        s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
            .map_err(|e| format!("C_Login: {}", ck(e)))?;
        Ok(Tok { who, p11, slot, s })
    }

    pub fn find_slot(p11: &Pkcs11, label: &str) -> Result<Slot, String> {
        for s in p11.get_slots_with_token().map_err(ck)? {
            let info = p11.get_token_info(s).map_err(ck)?;
            if info.token_initialized() && info.label().trim_end() == label {
                return Ok(s);
            }
        }
        Err(format!("no token labelled {label}"))
    }

    /// "Manufacturer library version".
    pub fn describe(&self) -> String {
        match self.p11.get_library_info() {
            Ok(i) => format!(
                "{} module: {} ({}), library version {}",
                self.who.name(),
                i.library_description().trim_end(),
                i.manufacturer_id().trim_end(),
                i.library_version()
            ),
            Err(e) => format!("{}: {}", self.who.name(), ck(e)),
        }
    }

    /// Another session of the same application (logged in already, as the spec says).
    pub fn session(&self) -> Result<Session, String> {
        self.p11.open_ro_session(self.slot).map_err(ck)
    }
}

/// The mechanisms used, built at each call (cryptoki's `Mechanism` holds raw pointers, so it
/// cannot move between threads).
#[derive(Clone, Copy, Debug)]
pub enum Mech {
    Sha256RsaPkcs,
    Sha256RsaPss,
    EcdsaSha256,
    Ecdsa,
    Eddsa,
    RsaOaepSha1,
    Sha256,
    /// Any number at or above CKM_VENDOR_DEFINED (the TC26 GOST range).
    Vendor(u64),
}

pub fn mechanism(m: Mech) -> Mechanism<'static> {
    match m {
        Mech::Sha256RsaPkcs => Mechanism::Sha256RsaPkcs,
        Mech::Sha256RsaPss => Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
            hash_alg: MechanismType::SHA256,
            mgf: PkcsMgfType::MGF1_SHA256,
            s_len: 32.into(),
        }),
        Mech::EcdsaSha256 => Mechanism::EcdsaSha256,
        Mech::Ecdsa => Mechanism::Ecdsa,
        Mech::Eddsa => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
        Mech::RsaOaepSha1 => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )),
        Mech::Sha256 => Mechanism::Sha256,
        Mech::Vendor(v) => Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
            MechanismType::new_vendor_defined(v).unwrap_or(MechanismType::SHA256),
            None,
        )),
    }
}

/// One timed PKCS#11 operation, as an application makes it through cryptoki: e.g. a signature
/// is C_SignInit + C_Sign (length) + C_Sign.
#[derive(Clone)]
pub enum Call {
    Sign {
        mech: Mech,
        key: ObjectHandle,
        data: Arc<Vec<u8>>,
    },
    Verify {
        mech: Mech,
        key: ObjectHandle,
        data: Arc<Vec<u8>>,
        sig: Arc<Vec<u8>>,
    },
    Decrypt {
        mech: Mech,
        key: ObjectHandle,
        data: Arc<Vec<u8>>,
    },
    Digest {
        mech: Mech,
        data: Arc<Vec<u8>>,
    },
    Random {
        len: usize,
    },
    Find {
        template: Arc<Vec<Attribute>>,
    },
    SessionInfo,
}

pub fn call(s: &Session, c: &Call, buf: &mut Vec<u8>) -> OpResult {
    match c {
        Call::Sign { mech, key, data } => {
            std::hint::black_box(s.sign(&mechanism(*mech), *key, data).map_err(ck)?);
        }
        Call::Verify {
            mech,
            key,
            data,
            sig,
        } => s.verify(&mechanism(*mech), *key, data, sig).map_err(ck)?,
        Call::Decrypt { mech, key, data } => {
            std::hint::black_box(s.decrypt(&mechanism(*mech), *key, data).map_err(ck)?);
        }
        Call::Digest { mech, data } => {
            std::hint::black_box(s.digest(&mechanism(*mech), data).map_err(ck)?);
        }
        Call::Random { len } => {
            buf.resize(*len, 0);
            s.generate_random_slice(buf).map_err(ck)?;
        }
        Call::Find { template } => {
            std::hint::black_box(s.find_objects(template).map_err(ck)?);
        }
        Call::SessionInfo => {
            std::hint::black_box(s.get_session_info().map_err(ck)?);
        }
    }
    Ok(())
}

/// A helper program answering one line per command line ("rate 1234.5" or "error ...").
pub struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    name: String,
}

impl Helper {
    /// Start `program` and wait for its "ready" line.
    pub fn start(program: &Path, args: &[&str]) -> Result<Helper, String> {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{name}: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!("{name}: no pipes"));
        };
        let mut h = Helper {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            name,
        };
        let first = h.line()?;
        if first != "ready" {
            return Err(first.strip_prefix("error ").unwrap_or(&first).to_string());
        }
        Ok(h)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        match self.stdout.read_line(&mut l) {
            Ok(0) | Err(_) => Err(format!("{} stopped", self.name)),
            Ok(_) => Ok(l.trim_end().to_string()),
        }
    }

    /// Send a command; the answer lines up to and including the first that `last` accepts.
    pub fn ask(&mut self, cmd: &str, last: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
        writeln!(self.stdin, "{cmd}").map_err(|e| format!("{}: {e}", self.name))?;
        let mut lines = Vec::new();
        loop {
            let l = self.line()?;
            if let Some(e) = l.strip_prefix("error ") {
                return Err(ckr_names(e));
            }
            let done = last(&l);
            lines.push(l);
            if done {
                return Ok(lines);
            }
        }
    }

    /// "rate ..." commands: (operations, seconds) from the answer "rate OPS_PER_S COUNT SECONDS".
    pub fn rate(&mut self, cmd: &str) -> Result<(f64, f64), String> {
        let lines = self.ask(cmd, |l| l.starts_with("rate "))?;
        let last = lines.last().map(String::as_str).unwrap_or("");
        let f: Vec<f64> = last
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        match f[..] {
            [_, count, secs] if secs > 0.0 => Ok((count, secs)),
            _ => Err(format!("{}: unexpected answer {last:?}", self.name)),
        }
    }
}

/// "C_Sign: CKR 0x70" → "C_Sign: CKR_MECHANISM_INVALID" (the harness prints numbers).
fn ckr_names(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("CKR 0x") {
        out.push_str(&rest[..i]);
        let hex = &rest[i + 6..];
        let n = hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        match u64::from_str_radix(&hex[..n], 16) {
            Ok(rv) => out.push_str(&crate::error::ckr_name(rv)),
            Err(_) => out.push_str(&rest[i..i + 6 + n]),
        }
        rest = &hex[n..];
    }
    out.push_str(rest);
    out
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn harness_errors_get_names() {
        assert_eq!(
            super::ckr_names("C_Sign: CKR 0x70"),
            "C_Sign: CKR_MECHANISM_INVALID"
        );
        assert_eq!(
            super::ckr_names("key not found (CKR 0x60)"),
            "key not found (CKR_KEY_HANDLE_INVALID)"
        );
        assert_eq!(super::ckr_names("bad command"), "bad command");
    }
}
