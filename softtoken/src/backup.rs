//! Backup and restore of a whole soft token (`klyuch backup` / `klyuch restore`).
//!
//! [`export`] logs in with the user PIN (counted like any login), reads every token object with
//! all its attributes (key values included: the backup is the only way to move keys that are
//! sensitive and unextractable through PKCS#11) and returns a [`TokenImage`]. [`TokenImage::seal`]
//! encrypts it under a password into one file; [`TokenImage::open`] reads such a file back;
//! [`restore`] writes an image as a **new** token folder of a store: new serial, new slot, new
//! token key, new PINs, the same objects with the same attributes. The folder is built under a
//! temporary name and renamed into place (as `C_InitToken` does), so a failed restore leaves no
//! token folder behind.
//!
//! ## File format
//!
//! ```text
//! magic       8   "KLYBAK\0\x01" (format version 1)
//! kdf         1   1 = PBKDF2-HMAC-SHA-256
//! iterations  4   u32 LE
//! salt       16   random
//! nonce      12   random
//! check      32   HMAC-SHA-256(master, "klyuch-backup-check-v1")
//! ct_len      8   u64 LE
//! ct     ct_len   AES-256-GCM(key, nonce, aad = every byte above, plaintext)
//! sha256     32   SHA-256 of every byte above (damage and truncation, before any key)
//! ```
//!
//! `master` = PBKDF2-HMAC-SHA-256(password, salt, iterations, 32 bytes); the AES key is
//! HMAC-SHA-256(master, "klyuch-backup-key-v1"). The check value tells a wrong password from a
//! damaged file: SHA-256 first (damage, truncation: says so without needing the password), then
//! the check value (wrong password), then the AEAD tag (a deliberate change that also fixed the
//! checksum). Default iterations: 600,000 (the OWASP Password Storage Cheat Sheet's figure for
//! PBKDF2-HMAC-SHA-256, 2023). The plaintext is the `postcard` encoding of the label, the old
//! serial, the creation time and every object (private flag and attributes); it exists only in
//! zeroized buffers. Nothing PIN-derived is stored: the restored token gets new PINs.

use crate::format::{self, Meta, PinWrap, Role, SealedRecord};
use crate::seal::{self, Aead};
use crate::source::SoftTokenSource;
use crate::store::{self, FileLock};
use aws_lc_rs::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use token_api::ck::*;
use token_api::config::SoftTokenConfig;
use token_api::{Attribute, Error, Pin, Result, SlotSource, Template, Token, UserType};
use zeroize::Zeroizing;

/// File magic and format version.
pub const MAGIC: [u8; 8] = *b"KLYBAK\x00\x01";
/// KDF identifier: PBKDF2-HMAC-SHA-256.
const KDF_PBKDF2_SHA256: u8 = 1;
/// Default PBKDF2 iterations (OWASP Password Storage Cheat Sheet, PBKDF2-HMAC-SHA256, 2023).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Files asking for fewer or more iterations are refused (too weak / a denial of service).
const MIN_ITERATIONS: u32 = 1_000;
const MAX_ITERATIONS: u32 = 50_000_000;
const HEADER_LEN: usize = 8 + 1 + 4 + 16 + 12 + 32 + 8;
const SUM_LEN: usize = 32;
/// Version of the plaintext encoding.
const CONTENTS_VERSION: u32 = 1;

/// One object of a token image.
pub struct ImageObject {
    pub private: bool,
    pub attrs: Template,
}

/// A whole token: its label, its serial, and its objects with all attributes. Secret values
/// live in `Template` (zeroized on drop); `Debug` shows no values.
pub struct TokenImage {
    pub label: String,
    pub serial: String,
    /// Seconds since 1970 when the image was made.
    pub created: u64,
    pub objects: Vec<ImageObject>,
}

impl std::fmt::Debug for TokenImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenImage")
            .field("label", &self.label)
            .field("serial", &self.serial)
            .field("objects", &self.objects.len())
            .finish_non_exhaustive()
    }
}

/// The plaintext, borrowing attribute values (from the image when writing, from the decrypted
/// buffer when reading), so no unzeroized copies of them are made.
#[derive(Serialize, Deserialize)]
struct Contents<'a> {
    version: u32,
    label: String,
    serial: String,
    created: u64,
    #[serde(borrow)]
    objects: Vec<StoredObject<'a>>,
}

#[derive(Serialize, Deserialize)]
struct StoredObject<'a> {
    private: bool,
    #[serde(borrow)]
    attrs: Vec<(u64, &'a serde_bytes::Bytes)>,
}

fn bad_file(msg: impl Into<String>) -> Error {
    Error::with(CKR_DATA_INVALID, msg.into())
}

impl TokenImage {
    /// Number of private objects.
    pub fn private_count(&self) -> usize {
        self.objects.iter().filter(|o| o.private).count()
    }

    /// Encrypt the image under `password` (see the module docs for the format).
    pub fn seal(&self, password: &[u8], iterations: u32) -> Result<Vec<u8>> {
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(Error::with(
                CKR_ARGUMENTS_BAD,
                format!("KDF iterations {iterations} out of {MIN_ITERATIONS}..{MAX_ITERATIONS}"),
            ));
        }
        let contents = Contents {
            version: CONTENTS_VERSION,
            label: self.label.clone(),
            serial: self.serial.clone(),
            created: self.created,
            objects: self
                .objects
                .iter()
                .map(|o| StoredObject {
                    private: o.private,
                    attrs: o
                        .attrs
                        .iter()
                        .map(|a| (a.ty, serde_bytes::Bytes::new(&a.value)))
                        .collect(),
                })
                .collect(),
        };
        let plain = Zeroizing::new(
            postcard::to_stdvec(&contents).map_err(|e| Error::general(format!("encode: {e}")))?,
        );
        let salt: [u8; 16] = seal::random()?;
        let (key, check) = derive(password, &salt, iterations);
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + seal::TAG_LEN + SUM_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(KDF_PBKDF2_SHA256);
        out.extend_from_slice(&iterations.to_le_bytes());
        out.extend_from_slice(&salt);
        // The AAD is the whole header, nonce included: draw the nonce first and seal with it
        // (Aead::seal draws its own nonce after the AAD is fixed).
        let nonce: [u8; 12] = seal::random()?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&check);
        let ct_len = (plain.len() + seal::TAG_LEN) as u64;
        out.extend_from_slice(&ct_len.to_le_bytes());
        let ct = seal_with_nonce(&key, &nonce, &out, &plain)?;
        out.extend_from_slice(&ct);
        let sum = digest::digest(&digest::SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        Ok(out)
    }

    /// Decrypt a backup file. Each failure says which: not a backup, truncated, damaged or
    /// altered, wrong password.
    pub fn open(file: &[u8], password: &[u8]) -> Result<TokenImage> {
        if file.len() < MAGIC.len() || file[..MAGIC.len()] != MAGIC {
            if file.len() >= 6 && file[..6] == MAGIC[..6] {
                return Err(bad_file(
                    "the backup was written by a newer klyuch (unknown format version)",
                ));
            }
            if MAGIC.starts_with(file) {
                return Err(bad_file(format!(
                    "the backup is truncated ({} bytes)",
                    file.len()
                )));
            }
            return Err(bad_file("this is not a Klyuch token backup"));
        }
        if file.len() < HEADER_LEN + SUM_LEN {
            return Err(bad_file(format!(
                "the backup is truncated ({} bytes; even an empty one has {})",
                file.len(),
                HEADER_LEN + SUM_LEN
            )));
        }
        let ct_len = u64::from_le_bytes(
            file[HEADER_LEN - 8..HEADER_LEN]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let announced = (HEADER_LEN as u64)
            .checked_add(ct_len)
            .and_then(|n| n.checked_add(SUM_LEN as u64))
            .unwrap_or(u64::MAX);
        let body_end = file.len() - SUM_LEN;
        let sum = digest::digest(&digest::SHA256, &file[..body_end]);
        if sum.as_ref() != &file[body_end..] {
            return Err(bad_file(if announced > file.len() as u64 {
                format!(
                    "the backup is truncated or damaged ({} of the {announced} bytes it announces)",
                    file.len()
                )
            } else {
                "the backup is damaged or was altered (its checksum does not match)".to_string()
            }));
        }
        if announced != file.len() as u64 {
            return Err(bad_file(
                "the backup is damaged (its length field is wrong)",
            ));
        }
        let kdf = file[8];
        let iterations = u32::from_le_bytes(file[9..13].try_into().unwrap_or([0; 4]));
        if kdf != KDF_PBKDF2_SHA256 {
            return Err(bad_file(format!(
                "the backup uses an unknown key derivation ({kdf})"
            )));
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(bad_file(format!(
                "the backup asks for {iterations} KDF iterations (accepted: {MIN_ITERATIONS} to \
                 {MAX_ITERATIONS})"
            )));
        }
        let salt: [u8; 16] = file[13..29].try_into().unwrap_or([0; 16]);
        let nonce: [u8; 12] = file[29..41].try_into().unwrap_or([0; 12]);
        let check = &file[41..73];
        let (key, want_check) = derive(password, &salt, iterations);
        if !constant_eq(check, &want_check) {
            return Err(Error::with(CKR_PIN_INCORRECT, "wrong backup password"));
        }
        let aead = Aead::new(&key);
        let plain = aead
            .open(&nonce, &file[..HEADER_LEN], &file[HEADER_LEN..body_end])
            .ok_or_else(|| {
                bad_file("the backup was altered (its authentication tag does not match)")
            })?;
        let c: Contents<'_> = postcard::from_bytes(&plain)
            .map_err(|_| bad_file("the backup's contents do not decode (damaged)"))?;
        if c.version != CONTENTS_VERSION {
            return Err(bad_file(format!(
                "the backup's contents have version {} (this klyuch reads {CONTENTS_VERSION})",
                c.version
            )));
        }
        let objects = c
            .objects
            .iter()
            .map(|o| ImageObject {
                private: o.private,
                attrs: Template(
                    o.attrs
                        .iter()
                        .map(|(ty, v)| Attribute {
                            ty: *ty,
                            value: Zeroizing::new(v.to_vec()),
                        })
                        .collect(),
                ),
            })
            .collect();
        Ok(TokenImage {
            label: c.label.clone(),
            serial: c.serial.clone(),
            created: c.created,
            objects,
        })
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// (AES key, check value) from the password.
fn derive(password: &[u8], salt: &[u8; 16], iterations: u32) -> (seal::SecretKey, [u8; 32]) {
    let mut master = Zeroizing::new([0u8; 32]);
    let n = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        salt,
        password,
        &mut master[..],
    );
    let mac = hmac::Key::new(hmac::HMAC_SHA256, &master[..]);
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(hmac::sign(&mac, b"klyuch-backup-key-v1").as_ref());
    let mut check = [0u8; 32];
    check.copy_from_slice(hmac::sign(&mac, b"klyuch-backup-check-v1").as_ref());
    (key, check)
}

fn seal_with_nonce(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::general("AES-256-GCM key"))?,
    );
    let mut buf = Zeroizing::new(plain.to_vec());
    let tag = k
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            &mut buf[..],
        )
        .map_err(|_| Error::general("AES-GCM seal failed"))?;
    let mut out = Vec::with_capacity(buf.len() + tag.as_ref().len());
    out.extend_from_slice(&buf);
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// The initialised soft token labelled `label` in the store: (local slot, token).
fn find_token(
    src: &SoftTokenSource,
    label: &str,
) -> Result<(u64, std::sync::Arc<crate::SoftToken>)> {
    let mut found = Vec::new();
    for d in src.slots()? {
        let t = src.soft_token(d.local)?;
        let info = t.info();
        if info.flags & CKF_TOKEN_INITIALIZED != 0 && info.label.trim_end() == label {
            found.push((d.local, t));
        }
    }
    match found.len() {
        0 => Err(Error::with(
            CKR_TOKEN_NOT_PRESENT,
            format!(
                "no soft token labelled \"{label}\" in the store {}",
                src.dir().display()
            ),
        )),
        1 => Ok(found.remove(0)),
        n => Err(Error::with(
            CKR_ARGUMENTS_BAD,
            format!("{n} soft tokens are labelled \"{label}\"; relabel one first"),
        )),
    }
}

/// Read every object of the soft token labelled `label` (logging in with the user PIN).
pub fn export(
    store: &Path,
    cfg: &SoftTokenConfig,
    label: &str,
    user_pin: &Pin,
) -> Result<TokenImage> {
    let src = SoftTokenSource::with_dir(store.to_path_buf(), cfg.clone())?;
    let (_, tok) = find_token(&src, label)?;
    let info = tok.info();
    tok.login(UserType::User, Some(user_pin))?;
    let r = tok.with_objects(|r| {
        let mut objects = Vec::new();
        let mut ids: Vec<_> = r
            .objects
            .iter()
            .filter(|(_, o)| o.is_token())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(o) = r.objects.get(id) else { continue };
            let attrs = o.attrs().ok_or_else(|| {
                Error::with(
                    CKR_GENERAL_ERROR,
                    format!("object {id} could not be decrypted; nothing was written"),
                )
            })?;
            objects.push(ImageObject {
                private: o.private,
                attrs: attrs.clone(),
            });
        }
        Ok(objects)
    });
    let _ = tok.logout();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(TokenImage {
        label: info.label.trim_end().to_string(),
        serial: info.serial,
        created,
        objects: r?,
    })
}

/// Where a restored token went.
#[derive(Debug, Clone)]
pub struct Restored {
    pub dir: PathBuf,
    pub slot: u64,
    pub serial: String,
    pub label: String,
}

/// Write `image` into the store as a new token labelled `label`, with new PINs. Nothing is
/// written unless the whole token folder is.
pub fn restore(
    store: &Path,
    cfg: &SoftTokenConfig,
    image: &TokenImage,
    label: &str,
    so_pin: &Pin,
    user_pin: &Pin,
) -> Result<Restored> {
    for (pin, who) in [(so_pin, "SO PIN"), (user_pin, "user PIN")] {
        crate::token::check_pin_len(cfg, pin, &format!("the new {who}"))?;
    }
    let label = label.trim_end();
    if label.is_empty() || label.len() > 32 {
        return Err(Error::with(
            CKR_ARGUMENTS_BAD,
            "a token label has 1 to 32 bytes",
        ));
    }
    // Keys and sealed records first (slow KDFs outside the store lock).
    let token_key = seal::random_key()?;
    let uuid: [u8; 16] = seal::random()?;
    let k_pub = seal::random_key()?;
    let so = PinWrap::new(
        &uuid,
        Role::So,
        so_pin.expose(),
        cfg.kdf_iterations,
        &token_key,
    )?;
    let user = PinWrap::new(
        &uuid,
        Role::User,
        user_pin.expose(),
        cfg.kdf_iterations,
        &token_key,
    )?;
    let seq_base = (u64::from_le_bytes(seal::random()?) >> 24) + 1;
    let priv_aead = Aead::new(&token_key);
    let pub_aead = Aead::new(&k_pub);
    let mut log = Vec::new();
    for (i, o) in image.objects.iter().enumerate() {
        let seq = seq_base + 1 + i as u64;
        let aead = if o.private { &priv_aead } else { &pub_aead };
        let rec = SealedRecord::put(aead, &uuid, seq, seq, o.private, &o.attrs)?;
        log.extend_from_slice(&format::records_frame(std::slice::from_ref(&rec))?);
    }
    store::create_dir_0700(store)?;
    let store_lock = store::open_lock_file(&store.join(".lock"))?;
    let _g = FileLock::exclusive(&store_lock)?;
    let existing = store::list_tokens(store)?;
    if existing.iter().any(|(_, m)| m.label == label) {
        return Err(Error::with(
            CKR_ARGUMENTS_BAD,
            format!(
                "the store already has a token labelled \"{label}\"; restore under another label"
            ),
        ));
    }
    let slot = existing.iter().map(|(_, m)| m.slot + 1).max().unwrap_or(0);
    let serial = store::hex(&seal::random::<8>()?).to_uppercase();
    let meta = Meta {
        version: format::META_VERSION,
        uuid,
        serial: serial.clone(),
        label: label.to_owned(),
        slot,
        k_pub: *k_pub,
        so,
        user: Some(user),
        so_failures: 0,
        user_failures: 0,
        seq_base,
    };
    let dir = store::create_token_folder_with(store, &meta, &log)?;
    log::info!(
        "restored soft token {serial} \"{label}\" in slot {slot} ({} objects)",
        image.objects.len()
    );
    Ok(Restored {
        dir,
        slot,
        serial,
        label: label.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> TokenImage {
        let mut t = Template::new();
        t.set_ulong(CKA_CLASS, CKO_DATA);
        t.set(CKA_LABEL, b"d".to_vec());
        t.set(CKA_VALUE, b"secret value 0123456789".to_vec());
        TokenImage {
            label: "src".into(),
            serial: "0011".into(),
            created: 1,
            objects: vec![ImageObject {
                private: true,
                attrs: t,
            }],
        }
    }

    #[test]
    fn seal_open_and_every_failure() {
        let img = image();
        let f = img.seal(b"password one", 1000).unwrap();
        // no plaintext in the file
        assert!(!f.windows(12).any(|w| w == b"secret value"));
        let back = TokenImage::open(&f, b"password one").unwrap();
        assert_eq!(back.label, "src");
        assert_eq!(back.objects.len(), 1);
        assert_eq!(back.objects[0].attrs, img.objects[0].attrs);
        assert!(back.objects[0].private);
        let e = TokenImage::open(&f, b"password two").unwrap_err();
        assert!(e.detail().contains("wrong backup password"), "{e}");
        for cut in [0, 5, 8, 40, HEADER_LEN, f.len() - 1] {
            let e = TokenImage::open(&f[..cut], b"password one").unwrap_err();
            assert!(
                e.detail().contains("truncated") || e.detail().contains("not a Klyuch"),
                "cut {cut}: {e}"
            );
        }
        for i in (0..f.len()).step_by(7) {
            let mut g = f.clone();
            g[i] ^= 0x10;
            assert!(TokenImage::open(&g, b"password one").is_err(), "byte {i}");
        }
        // A change that also fixes the checksum is caught by the tag (or the check value).
        let mut g = f.clone();
        let body_end = g.len() - SUM_LEN;
        g[HEADER_LEN + 3] ^= 1;
        let sum = digest::digest(&digest::SHA256, &g[..body_end]);
        g[body_end..].copy_from_slice(sum.as_ref());
        let e = TokenImage::open(&g, b"password one").unwrap_err();
        assert!(e.detail().contains("altered"), "{e}");
        assert!(TokenImage::open(b"hello world, not a backup", b"x").is_err());
    }

    #[test]
    fn restore_makes_a_working_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SoftTokenConfig {
            kdf_iterations: 1000,
            ..SoftTokenConfig::default()
        };
        let src = SoftTokenSource::with_dir(dir.path().to_path_buf(), cfg.clone()).unwrap();
        let slot = src.slots().unwrap()[0].local;
        let tok = src.soft_token(slot).unwrap();
        tok.init_token(&Pin::new(b"87654321"), "orig").unwrap();
        tok.login(UserType::So, Some(&Pin::new(b"87654321")))
            .unwrap();
        tok.init_pin(Some(&Pin::new(b"1234"))).unwrap();
        tok.logout().unwrap();
        drop(tok);
        drop(src);
        // restore an image with one private object
        let r = restore(
            dir.path(),
            &cfg,
            &image(),
            "copy",
            &Pin::new(b"99999999"),
            &Pin::new(b"5678"),
        )
        .unwrap();
        assert!(r.dir.starts_with(dir.path()));
        // same label again is refused, and nothing is left behind
        let before = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(
            restore(
                dir.path(),
                &cfg,
                &image(),
                "copy",
                &Pin::new(b"99999999"),
                &Pin::new(b"5678")
            )
            .is_err()
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
        // the new token exports what was restored, with the new user PIN
        let img = export(dir.path(), &cfg, "copy", &Pin::new(b"5678")).unwrap();
        assert_eq!(img.objects.len(), 1);
        assert_eq!(img.objects[0].attrs, image().objects[0].attrs);
        assert!(export(dir.path(), &cfg, "copy", &Pin::new(b"0000")).is_err());
        assert!(export(dir.path(), &cfg, "none", &Pin::new(b"5678")).is_err());
        let empty = export(dir.path(), &cfg, "orig", &Pin::new(b"1234")).unwrap();
        assert!(empty.objects.is_empty());
    }
}
