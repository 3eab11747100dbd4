//! Helpers for the interoperability tests (NSS, OpenSSL, GnuTLS, p11-kit, Java, browsers): a
//! token with keys generated on it and certificates from a small test CA, TLS servers on free
//! ports, commands with time limits, and process-wide locks for what is machine-global.
//!
//! [`Pki::new`] makes, on a fresh token of the fixture's store:
//! * an RSA-2048 key pair (ID 01, label `rsakey`) and an EC P-256 key pair (ID 02, `eckey`),
//!   generated on the token by `pkcs11-tool --keypairgen`;
//! * a test CA (`ca.pem`/`ca.key`, made by `openssl`), which issues each token key a certificate
//!   from a CSR the token signed through OpenSSL's pkcs11 engine (libp11);
//! * the two certificates and the CA certificate written to the token (`--write-object`);
//! * a TLS server certificate for 127.0.0.1 (`server.pem`/`server.key`, a file key).
//!
//! Everything lives in the fixture's temporary folder.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::slot::Slot;

use crate::{module_path, text, Fixture, SO_PIN, USER_PIN};

/// The two token keys every [`Pki`] has: (label, CKA_ID hex, certificate subject CN).
pub const RSA: Key = Key {
    label: "rsakey",
    id: "01",
    cn: "Klyuch RSA Signer",
};
pub const EC: Key = Key {
    label: "eckey",
    id: "02",
    cn: "Klyuch EC Signer",
};

/// A key pair on the token and its certificate (same label and ID).
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub label: &'static str,
    pub id: &'static str,
    pub cn: &'static str,
}

/// Extensions of the end-entity certificates: signing, TLS client, S/MIME, code signing.
const EE_EXT: &str = "basicConstraints=CA:FALSE\n\
keyUsage=critical,digitalSignature,nonRepudiation\n\
extendedKeyUsage=clientAuth,emailProtection,codeSigning\n\
subjectKeyIdentifier=hash\n\
authorityKeyIdentifier=keyid\n";

const SERVER_EXT: &str = "basicConstraints=CA:FALSE\n\
keyUsage=critical,digitalSignature\n\
extendedKeyUsage=serverAuth\n\
subjectAltName=IP:127.0.0.1,DNS:localhost\n";

/// A token with keys, certificates and a test CA (see the module documentation).
pub struct Pki<'a> {
    pub f: &'a Fixture,
    /// The token label.
    pub token: String,
}

impl<'a> Pki<'a> {
    /// Initialise a token `token` (SO PIN [`SO_PIN`], user PIN [`USER_PIN`]) with
    /// `pkcs11-tool`, generate [`RSA`] and [`EC`] on it, make the CA and the certificates.
    pub fn new(f: &'a Fixture, token: &str) -> Pki<'a> {
        let pki = Pki {
            f,
            token: token.to_string(),
        };
        f.pkcs11_tool(&["--init-token", "--label", token, "--so-pin", SO_PIN]);
        f.pkcs11_tool(&[
            "--token-label",
            token,
            "--init-pin",
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ]);
        pki.tool(&[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--id",
            RSA.id,
            "--label",
            RSA.label,
        ]);
        pki.tool(&[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            EC.id,
            "--label",
            EC.label,
        ]);
        pki.make_ca("ca", "Klyuch Test CA");
        for k in [RSA, EC] {
            pki.certify(k.label, k.id, &format!("/O=Klyuch Test/CN={}", k.cn));
        }
        // The CA certificate on the token too (jarsigner and NSS build the chain from it).
        pki.openssl(&[
            "x509",
            "-in",
            &pki.p("ca.pem"),
            "-outform",
            "DER",
            "-out",
            &pki.p("ca.der"),
        ]);
        pki.tool(&[
            "--write-object",
            &pki.p("ca.der"),
            "--type",
            "cert",
            "--id",
            "c0",
            "--label",
            "Klyuch Test CA",
        ]);
        pki.server_cert();
        std::fs::write(f.path("msg.txt"), b"Klyuch interoperability test message\n").unwrap();
        std::fs::write(f.path("pin.txt"), format!("{USER_PIN}\n")).unwrap();
        pki
    }

    /// The files only: the test CA (`ca.pem`), the TLS server certificate, `msg.txt`,
    /// `pin.txt`; no soft token is initialised (for tests whose keys are on an emulated card;
    /// `token` names the card's token in URIs).
    pub fn files_only(f: &'a Fixture, token: &str) -> Pki<'a> {
        let pki = Pki {
            f,
            token: token.to_string(),
        };
        pki.make_ca("ca", "Klyuch Test CA");
        pki.server_cert();
        std::fs::write(f.path("msg.txt"), b"Klyuch interoperability test message\n").unwrap();
        std::fs::write(f.path("pin.txt"), format!("{USER_PIN}\n")).unwrap();
        pki
    }

    /// The slot of this token.
    pub fn slot(&self) -> Slot {
        let p11 = self.f.p11();
        p11.get_slots_with_token()
            .expect("C_GetSlotList")
            .into_iter()
            .find(|s| {
                p11.get_token_info(*s)
                    .is_ok_and(|i| i.label() == self.token)
            })
            .expect("the token's slot")
    }

    /// `CKF_USER_PIN_COUNT_LOW` of the token, read now (the wrong-PIN counter lives in the
    /// store, so this process sees what another process's logins did).
    pub fn user_pin_count_low(&self) -> bool {
        self.f
            .p11()
            .get_token_info(self.slot())
            .expect("C_GetTokenInfo")
            .user_pin_count_low()
    }

    /// Generate on the token, through cryptoki, an RSA-2048 key pair whose private key has
    /// `CKA_PRIVATE=false`: it is found and used without `C_Login` (pkcs11-tool always makes
    /// private keys private). For clients that cannot ask for a PIN, such as headless Chromium.
    pub fn generate_rsa_usable_without_login(&self, id: &str, label: &str) {
        let s = self.f.user_session(self.slot());
        let id = hex::decode(id).expect("hex id");
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Id(id.clone()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Id(id),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
            .expect("C_GenerateKeyPair");
    }

    /// Generate another EC P-256 key pair on the token with pkcs11-tool.
    pub fn generate_ec(&self, id: &str, label: &str) {
        self.tool(&[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            id,
            "--label",
            label,
        ]);
    }

    /// A path in the fixture folder, as a string.
    pub fn p(&self, name: &str) -> String {
        self.f.path(name).display().to_string()
    }

    /// The module path as a string.
    pub fn module(&self) -> String {
        module_path().display().to_string()
    }

    /// `pkcs11-tool --module M --token-label T --login --pin 1234 ARGS`.
    pub fn tool(&self, args: &[&str]) -> String {
        let mut all = vec!["--token-label", &self.token, "--login", "--pin", USER_PIN];
        all.extend_from_slice(args);
        text(&self.f.pkcs11_tool(&all))
    }

    /// A command with the fixture's environment and `PKCS11_MODULE_PATH` (which makes libp11,
    /// the OpenSSL pkcs11 engine, load Klyuch instead of p11-kit-proxy).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = self.f.command(program, args);
        c.env("PKCS11_MODULE_PATH", module_path());
        c
    }

    /// Run a command (as [`Pki::command`]) that must succeed within `secs` seconds (it is
    /// wrapped in `timeout -k 5 SECS`); returns stdout then stderr.
    pub fn run_for(&self, secs: u32, program: &str, args: &[&str]) -> String {
        let out = self.try_run_for(secs, program, args);
        if !out.status.success() {
            panic!("{program} {args:?} failed: {}\n{}", out.status, text(&out));
        }
        text(&out)
    }

    /// As [`Pki::run_for`] without the check.
    pub fn try_run_for(&self, secs: u32, program: &str, args: &[&str]) -> Output {
        let secs = secs.to_string();
        let mut all = vec!["-k", "5", secs.as_str(), program];
        all.extend_from_slice(args);
        self.command("timeout", &all)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("timeout {program}: {e}"))
    }

    /// `openssl ARGS` (60 s at most).
    pub fn openssl(&self, args: &[&str]) -> String {
        self.run_for(60, "openssl", args)
    }

    /// A `pkcs11:` URI of an object on this token: `kind` is `private`, `cert` or `public`;
    /// `extra` is appended (`;pin-value=1234`, ...).
    pub fn uri(&self, label: &str, kind: &str, extra: &str) -> String {
        format!(
            "pkcs11:token={};object={label};type={kind}{extra}",
            self.token
        )
    }

    /// The key URI for the engine, with the PIN in it.
    pub fn engine_key(&self, label: &str) -> String {
        self.uri(label, "private", &format!(";pin-value={USER_PIN}"))
    }

    /// A file CA (`NAME.pem`, `NAME.key`): RSA-2048, CA:TRUE, keyCertSign.
    pub fn make_ca(&self, name: &str, cn: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &self.p(&format!("{name}.key")),
            "-out",
            &self.p(&format!("{name}.pem")),
            "-days",
            "30",
            "-subj",
            &format!("/O=Klyuch Test/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    /// Certify the token key `label`/`id` with the CA `ca`: a CSR signed on the token through
    /// the pkcs11 engine, a certificate `LABEL.pem` (and `.der`) written to the token with the
    /// key's label and ID.
    pub fn certify_with(&self, ca: &str, label: &str, id: &str, subject: &str) {
        let csr = self.p(&format!("{label}.csr"));
        self.openssl(&[
            "req",
            "-new",
            "-sha256",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            &format!(
                "pkcs11:token={};id=%{id};type=private;pin-value={USER_PIN}",
                self.token
            ),
            "-subj",
            subject,
            "-out",
            &csr,
        ]);
        std::fs::write(self.f.path("ee.ext"), EE_EXT).unwrap();
        let pem = self.p(&format!("{label}.pem"));
        let der = self.p(&format!("{label}.der"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.p(&format!("{ca}.pem")),
            "-CAkey",
            &self.p(&format!("{ca}.key")),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &self.p("ee.ext"),
            "-out",
            &pem,
        ]);
        self.openssl(&["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
        self.tool(&[
            "--write-object",
            &der,
            "--type",
            "cert",
            "--id",
            id,
            "--label",
            label,
        ]);
    }

    fn certify(&self, label: &str, id: &str, subject: &str) {
        self.certify_with("ca", label, id, subject)
    }

    /// `server.pem`/`server.key`: an EC P-256 TLS server certificate for 127.0.0.1 from the CA.
    fn server_cert(&self) {
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &self.p("server.key"),
            "-subj",
            "/O=Klyuch Test/CN=127.0.0.1",
            "-out",
            &self.p("server.csr"),
        ]);
        std::fs::write(self.f.path("server.ext"), SERVER_EXT).unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &self.p("server.csr"),
            "-CA",
            &self.p("ca.pem"),
            "-CAkey",
            &self.p("ca.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &self.p("server.ext"),
            "-out",
            &self.p("server.pem"),
        ]);
    }

    /// The public key of a certificate file `LABEL.pem` as `LABEL.pub.pem`.
    pub fn cert_pubkey(&self, label: &str) -> String {
        let out = self.p(&format!("{label}.pub.pem"));
        self.openssl(&[
            "x509",
            "-in",
            &self.p(&format!("{label}.pem")),
            "-pubkey",
            "-noout",
            "-out",
            &out,
        ]);
        out
    }

    /// A new NSS database `DIR` (empty password). With `module`, Klyuch is added to it as
    /// `klyuch` (`modutil -add … -force`). The test CA is trusted for TLS, e-mail and code.
    pub fn nss_db(&self, dir: &Path, module: bool) -> String {
        std::fs::create_dir_all(dir).unwrap();
        let db = format!("sql:{}", dir.display());
        self.run_for(60, "certutil", &["-N", "-d", &db, "--empty-password"]);
        if module {
            self.run_for(
                60,
                "modutil",
                &[
                    "-dbdir",
                    &db,
                    "-add",
                    "klyuch",
                    "-libfile",
                    &self.module(),
                    "-force",
                ],
            );
        }
        self.run_for(
            60,
            "certutil",
            &[
                "-A",
                "-d",
                &db,
                "-n",
                "Klyuch Test CA (file)",
                "-t",
                "CT,C,C",
                "-i",
                &self.p("ca.pem"),
            ],
        );
        db
    }
}

/// A child process that is killed (and reaped) when dropped.
pub struct Guard {
    pub child: Child,
    pub name: String,
}

impl Guard {
    pub fn new(name: &str, child: Child) -> Guard {
        Guard {
            child,
            name: name.to_string(),
        }
    }

    /// Has it exited already?
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Guard {
    /// SIGTERM (so that Xvfb removes its lock file and socket, and `timeout` passes the signal
    /// on to the program it runs), then SIGKILL if it is still there after 5 s.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        if !wait_until(Duration::from_secs(5), || self.exited().is_some()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// An `openssl s_server` on a free 127.0.0.1 port that **requires** a client certificate from
/// the test CA (`-Verify 1`) and answers HTTP requests with a status page (`-www`) that shows
/// the client certificate. Its stdout and stderr go to `LOG` (the verify callback prints the
/// client's subject there as `depth=0 … CN = …`).
pub struct TlsServer {
    pub port: u16,
    pub log: PathBuf,
    _guard: Guard,
}

impl TlsServer {
    pub fn start(pki: &Pki<'_>, log_name: &str) -> TlsServer {
        Self::start_with_ca(pki, log_name, "ca.pem")
    }

    /// As [`TlsServer::start`], accepting clients certified by `ca_file` (in the fixture folder).
    pub fn start_with_ca(pki: &Pki<'_>, log_name: &str, ca_file: &str) -> TlsServer {
        let log = pki.f.path(log_name);
        for _ in 0..5 {
            let port = free_port();
            let out = std::fs::File::create(&log).unwrap();
            let err = out.try_clone().unwrap();
            let child = Command::new("openssl")
                .args([
                    "s_server",
                    "-accept",
                    &format!("127.0.0.1:{port}"),
                    "-cert",
                    &pki.p("server.pem"),
                    "-key",
                    &pki.p("server.key"),
                    "-CAfile",
                    &pki.p(ca_file),
                    "-Verify",
                    "1",
                    "-www",
                ])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("openssl s_server");
            let mut guard = Guard::new("s_server", child);
            if wait_port(port, Duration::from_secs(10)) && guard.exited().is_none() {
                return TlsServer {
                    port,
                    log,
                    _guard: guard,
                };
            }
        }
        panic!("openssl s_server did not start (log {})", log.display());
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Did a client present a certificate with this CN (as the verify callback prints it)?
    pub fn saw_client(&self, cn: &str) -> bool {
        self.log_text()
            .lines()
            .any(|l| l.starts_with("depth=0") && l.contains(&format!("CN = {cn}")))
    }
}

/// A machine-wide named lock: an abstract Unix socket name that only one process can bind. The
/// kernel releases it when the holder exits, even after a crash, so a lock is never stale.
pub struct GlobalLock {
    _l: UnixListener,
}

impl GlobalLock {
    /// Wait (up to `limit`) for the lock `name`.
    pub fn acquire(name: &str, limit: Duration) -> GlobalLock {
        let addr = SocketAddr::from_abstract_name(format!("klyuch-tests-{name}").as_bytes())
            .expect("abstract socket name");
        let start = Instant::now();
        loop {
            match UnixListener::bind_addr(&addr) {
                Ok(l) => return GlobalLock { _l: l },
                Err(_) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("lock {name} still held after {limit:?}: {e}"),
            }
        }
    }
}

/// Poll `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Is the effective user root? (Read from /proc, no libc call.)
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Why a [`Pki`] cannot be made here (`None`: it can): `pkcs11-tool` and `openssl` with the
/// pkcs11 engine (libp11, Debian package libengine-pkcs11-openssl) are needed.
pub fn pki_missing() -> Option<String> {
    for tool in ["pkcs11-tool", "openssl"] {
        if !crate::have(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    let engine = Command::new("openssl")
        .args(["engine", "-t", "pkcs11"])
        .stdin(Stdio::null())
        .output();
    match engine {
        Ok(o) if o.status.success() => None,
        _ => Some("the OpenSSL pkcs11 engine (libengine-pkcs11-openssl) is not installed".into()),
    }
}

/// Skip the test (printing `SKIPPED: <reason>`) when a [`Pki`] cannot be made here.
#[macro_export]
macro_rules! require_pki {
    () => {
        if let Some(reason) = $crate::interop::pki_missing() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// Print a skip notice (the interop tests' convention).
pub fn skip(reason: &str) {
    eprintln!("SKIPPED: {reason}");
}
