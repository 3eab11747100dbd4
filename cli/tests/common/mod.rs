//! Test harness: run the built `klyuch` against a PKCS#11 module on a temporary token store.
//!
//! Backends (each test runs against every one available, and prints a note for the others):
//! * SoftHSMv2: `/usr/lib/softhsm/libsofthsm2.so` (or `$KLYUCH_TEST_SOFTHSM`), with its own
//!   `SOFTHSM2_CONF` and token folder.
//! * Klyuch: `$KLYUCH_TEST_MODULE`, else `libklyuch_pkcs11.so` from the workspace's
//!   `target/{release,debug}` or next to the `klyuch` binary, with its own `KLYUCH_TOKEN_DIR`
//!   and `KLYUCH_CONF`. Skipped (with a note) while the module shows no slot.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const SO_PIN: &str = "12345678";
pub const PIN: &str = "1234";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    SoftHsm,
    Klyuch,
}

/// One temporary token store behind one module.
pub struct Tok {
    pub backend: Backend,
    pub module: PathBuf,
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What one `klyuch` run did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Panics with both outputs unless the run succeeded.
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "klyuch failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// Panics unless the run failed with `code` and stderr contains `text`.
    pub fn fails(self, code: i32, text: &str) -> Out {
        assert_eq!(
            self.code, code,
            "expected exit {code}:\n{}\n{}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "a panic:\n{}",
            self.stderr
        );
        self
    }
}

pub fn klyuch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_klyuch")
}

fn softhsm_module() -> Option<PathBuf> {
    let p = std::env::var_os("KLYUCH_TEST_SOFTHSM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
    p.exists().then_some(p)
}

fn klyuch_module() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KLYUCH_TEST_MODULE") {
        return Some(PathBuf::from(p));
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates = vec![
        ws.join("target/release/libklyuch_pkcs11.so"),
        ws.join("target/debug/libklyuch_pkcs11.so"),
    ];
    if let Some(dir) = Path::new(klyuch_bin()).parent() {
        candidates.push(dir.join("libklyuch_pkcs11.so"));
    }
    candidates.into_iter().find(|p| p.exists())
}

impl Tok {
    pub fn new(backend: Backend) -> Option<Tok> {
        let dir = tempfile::tempdir().unwrap();
        let (module, env) = match backend {
            Backend::SoftHsm => {
                let Some(m) = softhsm_module() else {
                    eprintln!("note: SoftHSMv2 not installed; SoftHSM case skipped");
                    return None;
                };
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).unwrap();
                let conf = dir.path().join("softhsm2.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                        tokens.display()
                    ),
                )
                .unwrap();
                (
                    m,
                    vec![("SOFTHSM2_CONF".into(), conf.display().to_string())],
                )
            }
            Backend::Klyuch => {
                let Some(m) = klyuch_module() else {
                    eprintln!(
                        "note: libklyuch_pkcs11.so not built (cargo build --release -p \
                         pkcs11-module) and KLYUCH_TEST_MODULE unset; Klyuch case skipped"
                    );
                    return None;
                };
                let tokens = dir.path().join("tokens");
                std::fs::create_dir(&tokens).unwrap();
                let conf = dir.path().join("klyuch.toml");
                std::fs::write(
                    &conf,
                    "[softtoken]\nmax_user_pin_failures = 3\nmax_so_pin_failures = 3\n\
                     kdf_iterations = 1000\n\n[pcsc]\nenabled = false\n",
                )
                .unwrap();
                let env = vec![
                    ("KLYUCH_TOKEN_DIR".into(), tokens.display().to_string()),
                    ("KLYUCH_CONF".into(), conf.display().to_string()),
                    ("KLYUCH_PCSC".into(), "0".into()),
                ];
                (m, env)
            }
        };
        let t = Tok {
            backend,
            module,
            dir,
            env,
        };
        if backend == Backend::Klyuch {
            let o = t.run(&["slots", "--json"]);
            let has_slot = o.code == 0 && o.stdout.contains("\"id\"");
            if !has_slot {
                eprintln!(
                    "note: the Klyuch module {} shows no slot yet (exit {}: {}); Klyuch case \
                     skipped",
                    t.module.display(),
                    o.code,
                    o.stderr.trim()
                );
                return None;
            }
        }
        Some(t)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(klyuch_bin());
        c.args(args)
            .env("KLYUCH_MODULE", &self.module)
            .env_remove("KLYUCH_PIN")
            .env_remove("KLYUCH_SO_PIN")
            .env_remove("KLYUCH_NEW_PIN")
            .env_remove("KLYUCH_PASSPHRASE")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .current_dir(self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.command(args).output().expect("run klyuch"))
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Out::from(c.output().expect("run klyuch"))
    }

    /// A token labelled `label` with the SO PIN and user PIN above.
    pub fn init(&self, label: &str) {
        self.run(&[
            "token",
            "init",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--pin",
            PIN,
        ])
        .ok();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `klyuch import`; `None` (with a note) while klyuch-crypto's parsers are still `todo!()`.
    pub fn import(&self, args: &[&str]) -> Option<Out> {
        let mut a = vec!["import"];
        a.extend_from_slice(args);
        let o = self.run(&a);
        if o.stderr.contains("not yet implemented") {
            eprintln!(
                "note: klyuch-crypto's key/certificate parsers are not written yet; import case skipped"
            );
            return None;
        }
        Some(o)
    }

    /// Sign `data` with the private key `id_hex` through `pkcs11-tool` (a standard consumer of
    /// the module), and verify the signature with `openssl` and the public key of `key_file`.
    /// Skipped with a note when pkcs11-tool is not installed.
    pub fn sign_with_pkcs11_tool_and_verify(&self, id_hex: &str, key_file: &str, ec: bool) {
        let dir = self.dir.path();
        std::fs::write(dir.join("data.txt"), b"klyuch import check\n").unwrap();
        let mut c = Command::new("pkcs11-tool");
        c.arg("--module").arg(&self.module);
        c.args([
            "--login", "--pin", PIN, "--id", id_hex, "--sign", "-o", "data.sig",
        ]);
        if ec {
            // Raw CKM_ECDSA over the SHA-256 hash (SoftHSM 2.6 has no CKM_ECDSA_SHA256).
            openssl(
                dir,
                &[
                    "dgst",
                    "-sha256",
                    "-binary",
                    "-out",
                    "data.hash",
                    "data.txt",
                ],
            );
            c.args([
                "-m",
                "ECDSA",
                "--signature-format",
                "openssl",
                "-i",
                "data.hash",
            ]);
        } else {
            c.args(["-m", "SHA256-RSA-PKCS", "-i", "data.txt"]);
        }
        c.current_dir(dir);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let o = match c.output() {
            Ok(o) => o,
            Err(_) => {
                eprintln!("note: pkcs11-tool not installed; signature check skipped");
                return;
            }
        };
        assert!(
            o.status.success(),
            "pkcs11-tool --sign: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        openssl(
            dir,
            &["pkey", "-in", key_file, "-pubout", "-out", "check.pub"],
        );
        let verify: &[&str] = if ec {
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "check.pub",
                "-sigfile",
                "data.sig",
                "-in",
                "data.hash",
            ]
        } else {
            &[
                "dgst",
                "-sha256",
                "-verify",
                "check.pub",
                "-signature",
                "data.sig",
                "data.txt",
            ]
        };
        openssl(dir, verify);
    }

    /// `klyuch objects --login --json`, parsed.
    pub fn objects_json(&self) -> Vec<serde_json::Value> {
        let o = self
            .run(&["objects", "--login", "--pin", PIN, "--json"])
            .ok();
        serde_json::from_str(&o.stdout).expect("objects --json is JSON")
    }
}

/// Run `openssl` in `dir`; panics when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Keys and certificates made with openssl in `dir`:
/// rsa.key (PKCS#8 PEM, 2048), rsa1.key (PKCS#1 PEM), rsa.crt (PEM), rsa.der (cert DER),
/// ec.key (PKCS#8 PEM, P-256), ec1.key (SEC1 PEM), ec.crt (PEM), ec.der (cert DER),
/// ec8.der (PKCS#8 DER), ec-enc.key (encrypted PKCS#8 PEM, AES-256, passphrase "pass"),
/// rsa.p12 (OpenSSL 3 default PBES2/AES, "pass", friendly name "rsa-p12"),
/// ec-legacy.p12 (RC2/3DES/SHA-1, "pass"),
/// ca.key/ca.crt (RSA CA "Test CA"), leaf.key/leaf.crt (P-384, issued by the CA),
/// chain.p12 (leaf key, leaf and CA certificates, "pass"), chain.pem (leaf key + both certs).
pub fn make_fixtures(dir: &Path) {
    let o = |args: &[&str]| openssl(dir, args);
    o(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "rsa.key",
        "-out",
        "rsa.crt",
        "-subj",
        "/O=Klyuch Test/CN=RSA Signer",
        "-days",
        "30",
    ]);
    o(&["pkey", "-in", "rsa.key", "-traditional", "-out", "rsa1.key"]);
    o(&[
        "x509", "-in", "rsa.crt", "-outform", "DER", "-out", "rsa.der",
    ]);
    o(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ec.key",
        "-out",
        "ec.crt",
        "-subj",
        "/O=Klyuch Test/CN=EC Signer",
        "-days",
        "30",
    ]);
    o(&["ec", "-in", "ec.key", "-out", "ec1.key"]);
    o(&["x509", "-in", "ec.crt", "-outform", "DER", "-out", "ec.der"]);
    o(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "ec.key", "-outform", "DER", "-out", "ec8.der",
    ]);
    o(&[
        "pkcs8",
        "-topk8",
        "-in",
        "ec.key",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:pass",
        "-out",
        "ec-enc.key",
    ]);
    o(&[
        "pkcs12",
        "-export",
        "-inkey",
        "rsa.key",
        "-in",
        "rsa.crt",
        "-name",
        "rsa-p12",
        "-passout",
        "pass:pass",
        "-out",
        "rsa.p12",
    ]);
    o(&[
        "pkcs12",
        "-export",
        "-legacy",
        "-inkey",
        "ec.key",
        "-in",
        "ec.crt",
        "-passout",
        "pass:pass",
        "-out",
        "ec-legacy.p12",
    ]);
    o(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=Test CA",
        "-days",
        "30",
    ]);
    o(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=Leaf",
    ]);
    o(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.crt",
        "-days",
        "30",
    ]);
    o(&[
        "pkcs12",
        "-export",
        "-inkey",
        "leaf.key",
        "-in",
        "leaf.crt",
        "-certfile",
        "ca.crt",
        "-passout",
        "pass:pass",
        "-out",
        "chain.p12",
    ]);
    let pem: String = ["leaf.key", "leaf.crt", "ca.crt"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
        .collect();
    std::fs::write(dir.join("chain.pem"), pem).unwrap();
}

/// SHA-1 (hex) of the RSA modulus / EC point X of a key, as OpenSC computes CKA_ID.
pub fn openssl_key_id(dir: &Path, key: &str, ec: bool) -> String {
    use sha1::{Digest, Sha1};
    let out = Command::new("openssl")
        .args(if ec {
            vec!["ec", "-in", key, "-pubout", "-outform", "DER"]
        } else {
            vec!["rsa", "-in", key, "-modulus", "-noout"]
        })
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let data = if ec {
        // SPKI of P-256: the point is the last 65 bytes, 04 || X || Y.
        let der = out.stdout;
        let point = &der[der.len() - 65..];
        point[1..33].to_vec()
    } else {
        let text = String::from_utf8(out.stdout).unwrap();
        hex::decode(text.trim().trim_start_matches("Modulus=")).unwrap()
    };
    hex::encode(Sha1::digest(&data))
}

/// Define `mod $name { fn softhsm(); fn klyuch(); }` running `$body(&Tok)` on each backend.
#[macro_export]
macro_rules! on_each_backend {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn softhsm() {
                if let Some(t) = Tok::new(Backend::SoftHsm) {
                    ($body)(&t);
                }
            }
            #[test]
            fn klyuch() {
                if let Some(t) = Tok::new(Backend::Klyuch) {
                    ($body)(&t);
                }
            }
        }
    };
}
