//! p11-kit: Klyuch registered by the packaging file `packaging/klyuch.module` (as a user's
//! `~/.config/pkcs11/modules/klyuch.module`, so the test needs no system file), then found by
//! `p11-kit list-modules`, by GnuTLS's p11tool without `--provider`, and by the OpenSSL pkcs11
//! engine through p11-kit-proxy; and the token exported by `p11-kit server` and used through
//! `p11-kit-client.so`.
//!
//! p11-kit reads no user configuration in programs running as root, and has no variable that
//! moves its configuration folders. As root the registration test therefore runs the tools as
//! `nobody` (with `setpriv`), with the store and the home folder handed over to that user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use klyuch_tests::interop::{is_root, skip, wait_until, Guard, Pki, EC, RSA};
use klyuch_tests::{module_path, require, text, workspace_root, Fixture, USER_PIN};

const NOBODY: &str = "65534";

/// The packaging file with its `module:` line pointing at the module under test.
fn module_file() -> String {
    let packaged = std::fs::read_to_string(workspace_root().join("packaging/klyuch.module"))
        .expect("packaging/klyuch.module");
    assert!(
        packaged
            .lines()
            .any(|l| l.trim() == "module: libklyuch_pkcs11.so"),
        "the packaged file names the library relative to p11-kit's module folder"
    );
    packaged
        .lines()
        .map(|l| {
            if l.starts_with("module:") {
                format!("module: {}", module_path().display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Runs programs as a user for whom p11-kit reads `HOME/.config/pkcs11/modules`.
struct User<'a> {
    pki: &'a Pki<'a>,
    home: PathBuf,
    as_nobody: bool,
}

impl User<'_> {
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                NOBODY,
                "--regid",
                NOBODY,
                "--clear-groups",
                "--",
                program,
            ]);
            c
        } else {
            Command::new(program)
        };
        c.args(args).current_dir(&self.home).stdin(Stdio::null());
        for (k, v) in self.pki.f.env() {
            c.env(k, v);
        }
        // No PKCS11_MODULE_PATH: libp11 must find Klyuch through p11-kit-proxy.
        c.env_remove("PKCS11_MODULE_PATH").env("HOME", &self.home);
        c
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command("timeout", &[&["-k", "5", "60", program], args].concat())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }
}

fn chown_nobody(path: &Path) {
    let st = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(path)
        .status()
        .expect("chown");
    assert!(st.success());
}

#[test]
fn module_file_registers_klyuch_with_p11_kit() {
    require!("p11-kit", "p11tool", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let as_nobody = is_root();
    if as_nobody && !klyuch_tests::have("setpriv") {
        skip("running as root, where p11-kit ignores user module files, and setpriv is missing");
        return;
    }
    let f = Fixture::new();
    let pki = Pki::new(&f, "p11kitreg");
    let home = f.path("home");
    let modules = home.join(".config/pkcs11/modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(modules.join("klyuch.module"), module_file()).unwrap();
    // Switch the other system modules off for this user (a blank `module:` in a user file of
    // the same name, pkcs11.conf(5)): OpenSC would talk to pcscd and any card in it on every
    // call, which made this test take 10 s instead of 2 and depend on the machine.
    for dir in ["/etc/pkcs11/modules", "/usr/share/p11-kit/modules"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".module")
                && name != "klyuch.module"
                && name != "p11-kit-trust.module"
            {
                std::fs::write(modules.join(&name), "module:\n").unwrap();
            }
        }
    }
    std::fs::write(home.join("msg.txt"), b"signed through p11-kit-proxy\n").unwrap();
    if as_nobody {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_nobody(&f.store());
        chown_nobody(&home);
    }
    let user = User {
        pki: &pki,
        home: home.clone(),
        as_nobody,
    };

    let out = user.run("p11-kit", &["list-modules"]);
    let t = text(&out);
    let module_line = format!("klyuch: {}", module_path().display());
    assert!(
        t.contains(&module_line)
            && t.contains("library-manufacturer: Klyuch")
            && t.contains("token: p11kitreg"),
        "{t}"
    );

    // pkcs11-tool through p11-kit-proxy.so: Klyuch's token among the proxied slots, and a
    // signature made through the proxy (verified below with the EC certificate's key).
    let proxy = Command::new("pkg-config")
        .args(["--variable=proxy_module", "p11-kit-1"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| !p.is_empty() && Path::new(p).exists())
        .unwrap_or_else(|| "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so".into());
    let out = user.run("pkcs11-tool", &["--module", &proxy, "-L"]);
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("token label        : p11kitreg"),
        "pkcs11-tool --module {proxy} -L:\n{t}"
    );
    let out = user.run(
        "pkcs11-tool",
        &[
            "--module",
            &proxy,
            "--token-label",
            "p11kitreg",
            "--login",
            "--pin",
            USER_PIN,
            "--id",
            RSA.id,
            "-s",
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            "msg.txt",
            "-o",
            "proxy.sig",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v = pki.openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &pki.cert_pubkey(RSA.label),
        "-signature",
        &home.join("proxy.sig").display().to_string(),
        &home.join("msg.txt").display().to_string(),
    ]);
    assert!(v.contains("Verified OK"), "{v}");

    // GnuTLS without --provider: the registered modules.
    let out = user.run("p11tool", &["--list-tokens"]);
    assert!(text(&out).contains("token=p11kitreg"), "{}", text(&out));
    for k in [RSA, EC] {
        let out = user
            .command(
                "timeout",
                &[
                    "-k",
                    "5",
                    "60",
                    "p11tool",
                    "--login",
                    "--test-sign",
                    &pki.uri(k.label, "private", ""),
                ],
            )
            .env("GNUTLS_PIN", USER_PIN)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && t.contains("Verifying against public key in the token... ok"),
            "{}: {t}",
            k.label
        );
    }

    // The OpenSSL pkcs11 engine without PKCS11_MODULE_PATH loads p11-kit-proxy.so.
    let out = user.run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-sign",
            &pki.engine_key(EC.label),
            "-out",
            "msg.sig",
            "msg.txt",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let public = pki.cert_pubkey(EC.label);
    let v = pki.openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &public,
        "-signature",
        &home.join("msg.sig").display().to_string(),
        &home.join("msg.txt").display().to_string(),
    ]);
    assert!(v.contains("Verified OK"), "{v}");
    println!(
        "checked: packaging/klyuch.module as a user module file: p11-kit list-modules shows klyuch with its token; pkcs11-tool --module p11-kit-proxy.so lists the token and signs (OpenSSL verified); p11tool without --provider lists the token and --test-sign passes for RSA and EC; the OpenSSL pkcs11 engine without PKCS11_MODULE_PATH (p11-kit-proxy) signed, OpenSSL verified"
    );
}

/// `p11-kit-client.so` (p11-kit's module directory).
fn client_module() -> Option<PathBuf> {
    let dir = Command::new("pkg-config")
        .args(["--variable=p11_module_path", "p11-kit-1"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/usr/lib/x86_64-linux-gnu/pkcs11".into());
    let p = Path::new(&dir).join("p11-kit-client.so");
    p.exists().then_some(p)
}

#[test]
fn p11_kit_server_exports_the_token() {
    require!("p11-kit", "pkcs11-tool", "p11tool", "openssl");
    klyuch_tests::require_pki!();
    let Some(client) = client_module() else {
        skip("p11-kit-client.so not found");
        return;
    };
    let client = client.display().to_string();
    let f = Fixture::new();
    let pki = Pki::new(&f, "p11kitsrv");
    let sock = f.path("p11kit.sock");
    let child = pki
        .command(
            "p11-kit",
            &[
                "server",
                "-f",
                "--provider",
                &pki.module(),
                "-n",
                &sock.display().to_string(),
                "pkcs11:token=p11kitsrv",
            ],
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(f.path("server.log")).unwrap())
        .stderr(std::fs::File::create(f.path("server.err")).unwrap())
        .spawn()
        .expect("p11-kit server");
    let _server = Guard::new("p11-kit server", child);
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "p11-kit server did not listen"
    );
    let address = format!("unix:path={}", sock.display());
    let via_client = |program: &str, args: &[&str]| -> Output {
        let mut c = pki.command("timeout", &[&["-k", "5", "60", program], args].concat());
        c.env("P11_KIT_SERVER_ADDRESS", &address)
            .env("GNUTLS_PIN", USER_PIN)
            .output()
            .unwrap()
    };

    let out = via_client("pkcs11-tool", &["--module", &client, "-L"]);
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("token label        : p11kitsrv"),
        "{t}"
    );

    // Sign through the socket (the server process holds the module), verify with OpenSSL.
    let out = via_client(
        "pkcs11-tool",
        &[
            "--module",
            &client,
            "--token-label",
            "p11kitsrv",
            "--login",
            "--pin",
            USER_PIN,
            "--id",
            RSA.id,
            "-s",
            "-m",
            "SHA256-RSA-PKCS",
            "-i",
            &pki.p("msg.txt"),
            "-o",
            &pki.p("msg.sig"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let public = pki.cert_pubkey(RSA.label);
    let v = pki.openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        &public,
        "-signature",
        &pki.p("msg.sig"),
        &pki.p("msg.txt"),
    ]);
    assert!(v.contains("Verified OK"), "{v}");

    // GnuTLS through the client module, both keys. (p11-kit 0.24's RPC forwards CKM_ECDSA but
    // not CKM_ECDSA_SHA256, so p11tool hashes and uses CKM_ECDSA.)
    for k in [RSA, EC] {
        let out = via_client(
            "p11tool",
            &[
                "--provider",
                &client,
                "--login",
                "--test-sign",
                &pki.uri(k.label, "private", ""),
            ],
        );
        let t = text(&out);
        assert!(
            out.status.success() && t.contains("Verifying against public key in the token... ok"),
            "{}: {t}",
            k.label
        );
    }
    println!(
        "checked: p11-kit server exported the token on a Unix socket; pkcs11-tool through p11-kit-client.so lists it and signs with SHA256-RSA-PKCS (OpenSSL verified); p11tool through p11-kit-client.so --test-sign passes for RSA and EC"
    );
}
