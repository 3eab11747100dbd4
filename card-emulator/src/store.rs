//! The card's non-volatile memory: one TOML file `card.toml` in the state directory, written
//! atomically (temporary file, fsync, rename, fsync of the directory) on every change, so a
//! killed emulator never leaves a half-written card. An exclusive `flock` on `DIR/lock`
//! keeps two emulators from sharing one card.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gost_card::GostState;
use crate::piv::PivState;

/// What `card.toml` holds.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CardFile {
    /// `piv` or `gost`.
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub piv: Option<PivState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gost: Option<GostState>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

impl Store {
    /// Opens (creating if needed) a state directory and locks it.
    pub fn open(dir: &Path) -> Result<Store, String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("lock"))
            .map_err(|e| format!("cannot open {}/lock: {e}", dir.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                format!(
                    "state directory {} is in use by another emulator",
                    dir.display()
                )
            },
        )?;
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("card.toml")
    }

    /// The stored card, or `None` for a new (empty) directory.
    pub fn load(&self) -> Result<Option<CardFile>, String> {
        let p = self.path();
        match fs::read_to_string(&p) {
            Ok(s) => toml::from_str(&s)
                .map(Some)
                .map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    /// Writes the card atomically.
    pub fn save(&self, card: &CardFile) -> Result<(), String> {
        let text = toml::to_string(card).map_err(|e| e.to_string())?;
        let tmp = self.dir.join("card.toml.tmp");
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, self.path()).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

/// Serde helper: `Vec<u8>` as a hex string.
pub mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_of_a_locked_dir_fails_and_save_roundtrips() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        assert!(Store::open(d.path()).is_err());
        assert!(s.load().unwrap().is_none());
        let c = CardFile {
            profile: "piv".into(),
            ..Default::default()
        };
        s.save(&c).unwrap();
        assert_eq!(s.load().unwrap().unwrap().profile, "piv");
        drop(s);
        assert!(Store::open(d.path()).is_ok());
    }
}
