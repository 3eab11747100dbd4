//! Acceptance tests of the PIV card through the real stack: pcscd + vpcd + this emulator,
//! driven by tools not written here (OpenSC's pkcs11-tool/opensc-tool, yubico-piv-tool,
//! OpenSSL). Each test skips with a printed reason when the packages are missing.
//! The vpcd port comes from KLYUCH_VPCD_PORT (default 35963).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use klyuch_card_emulator::harness::{self, EmulatorBuilder, VirtualCard};

const EMULATOR: &str = env!("CARGO_BIN_EXE_klyuch-card-emulator");

fn opensc_module() -> Option<PathBuf> {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ];
    dirs.iter()
        .map(|d| Path::new(d).join("opensc-pkcs11.so"))
        .find(|p| p.exists())
}

fn need(progs: &[&str]) -> bool {
    for p in progs {
        if harness::which(p).is_none() {
            println!("SKIP: `{p}` is not installed");
            return false;
        }
    }
    true
}

fn start(extra: &[&str]) -> Option<VirtualCard> {
    let mut b = EmulatorBuilder::new("piv")
        .binary(EMULATOR)
        .provision(true)
        .arg("--log");
    for a in extra {
        b = b.arg(a);
    }
    harness::skip_unless_ready(b.start())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run tool");
    eprintln!(
        "$ {:?}\n{}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn pkcs11_tool(card: &VirtualCard, module: &Path) -> Command {
    let mut c = Command::new("pkcs11-tool");
    c.arg("--module")
        .arg(module)
        .arg("--slot-description")
        .arg(card.reader_name());
    c
}

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Signs with pkcs11-tool and verifies with openssl against the card's certificate.
fn sign_and_verify(card: &VirtualCard, module: &Path, id: &str, mech: &str, extra: &[&str]) {
    let d = tmpdir();
    let msg = d.path().join("msg.txt");
    std::fs::write(&msg, b"Klyuch signs this on the emulated card\n").unwrap();
    let sig = d.path().join("sig.bin");
    let cert = d.path().join("cert.der");
    let pubkey = d.path().join("pub.pem");
    let o = run(pkcs11_tool(card, module)
        .args([
            "--login", "--pin", "123456", "--sign", "--id", id, "-m", mech,
        ])
        .args(extra)
        .arg("-i")
        .arg(&msg)
        .arg("-o")
        .arg(&sig));
    assert!(o.status.success(), "sign failed: {}", text(&o));
    let o = run(pkcs11_tool(card, module)
        .args(["--read-object", "--type", "cert", "--id", id, "-o"])
        .arg(&cert));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
        .arg(&cert)
        .arg("-out")
        .arg(&pubkey));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(&sig)
        .arg(&msg));
    assert!(
        o.status.success() && text(&o).contains("Verified OK"),
        "{}",
        text(&o)
    );
}

#[test]
fn opensc_lists_piv_certificates_and_keys() {
    let Some(module) = opensc_module().filter(|_| need(&["pkcs11-tool", "opensc-tool"])) else {
        return;
    };
    let Some(card) = start(&["--extra-keys"]) else {
        return;
    };
    let o = run(Command::new("opensc-tool").args(["-r", card.reader_name(), "-n"]));
    assert!(text(&o).contains("Personal Identity Verification Card"));
    let o = run(pkcs11_tool(&card, &module).args(["-L"]));
    assert!(o.status.success());
    assert!(text(&o).contains("token label        : Klyuch PIV Authentication (9A)"));
    let o = run(pkcs11_tool(&card, &module).args(["-O"]));
    let t = text(&o);
    for needle in [
        "CN=Klyuch PIV Authentication (9A)",
        "CN=Klyuch Digital Signature (9C)",
        // 9D's certificate is stored gzip-compressed (CertInfo 01).
        "CN=Klyuch Key Management (9D)",
        "CN=Klyuch Card Authentication (9E)",
        "Public Key Object; RSA 2048 bits",
        "EC_PARAMS:  06082a8648ce3d030107",
        "EC_PARAMS:  06052b81040022",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    // After login the private keys show up, 9C with CKA_ALWAYS_AUTHENTICATE.
    let o = run(pkcs11_tool(&card, &module).args(["--login", "--pin", "123456", "-O"]));
    let t = text(&o);
    assert!(t.contains("Private Key Object; RSA"), "{t}");
    assert!(t.contains("always authenticate"), "{t}");
}

#[test]
fn rsa_9a_signature_verifies_with_openssl() {
    let Some(module) = opensc_module().filter(|_| need(&["pkcs11-tool", "openssl"])) else {
        return;
    };
    let Some(card) = start(&[]) else { return };
    sign_and_verify(&card, &module, "01", "SHA256-RSA-PKCS", &[]);
}

#[test]
fn ecdsa_9c_signature_verifies_with_openssl() {
    let Some(module) = opensc_module().filter(|_| need(&["pkcs11-tool", "openssl"])) else {
        return;
    };
    let Some(card) = start(&[]) else { return };
    sign_and_verify(
        &card,
        &module,
        "02",
        "ECDSA-SHA256",
        &["--signature-format", "openssl"],
    );
    // The 9C key needed a VERIFY right before the signature (PIN always): the trace shows
    // VERIFY (masked) immediately followed by GENERAL AUTHENTICATE on 9C.
    let log = card.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("piv >>")).collect();
    let ga = lines
        .iter()
        .position(|l| l.starts_with("piv >> 0087119C"))
        .expect("GENERAL AUTHENTICATE on 9C in the trace");
    assert!(lines[ga - 1].starts_with("piv >> 0020008008 <8 bytes masked>"));
    assert!(
        !log.contains("313233343536FFFF"),
        "PIN leaked into the trace"
    );
}

#[test]
fn yubico_piv_tool_status_reads_the_card() {
    if !need(&["yubico-piv-tool"]) {
        return;
    }
    let Some(card) = start(&[]) else { return };
    let o = run(Command::new("yubico-piv-tool").args(["-r", card.reader_name(), "-a", "status"]));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for needle in [
        "Version:\t5.4.3",
        "CHUID:\t3019d4e739da739ced39ce739d836858",
        "Slot 9a:",
        "RSA2048",
        "Slot 9c:",
        "ECCP256",
        "PIN tries left:\t3",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[test]
fn wrong_pins_block_and_puk_unblocks() {
    let Some(module) = opensc_module().filter(|_| need(&["pkcs11-tool", "yubico-piv-tool"])) else {
        return;
    };
    let Some(card) = start(&[]) else { return };
    let login = |pin: &str| {
        text(&run(
            pkcs11_tool(&card, &module).args(["--login", "--pin", pin, "--test"])
        ))
    };
    let flags = || text(&run(pkcs11_tool(&card, &module).args(["-T"])));
    assert!(login("999999").contains("CKR_PIN_INCORRECT"));
    assert!(login("999999").contains("CKR_PIN_INCORRECT"));
    assert!(flags().contains("final user PIN try"));
    // Third wrong PIN: the card answers 63C0 and the PIN is blocked.
    let t = login("999999");
    assert!(
        t.contains("CKR_PIN_INCORRECT") || t.contains("CKR_PIN_LOCKED"),
        "{t}"
    );
    assert!(flags().contains("user PIN locked"));
    assert!(login("123456").contains("CKR_PIN_LOCKED"));
    // The counter is in the card's memory: a removed and re-inserted card is still blocked.
    let mut card = card;
    card.remove().unwrap();
    card.insert().unwrap();
    let o = run(Command::new("yubico-piv-tool").args([
        "-r",
        card.reader_name(),
        "-a",
        "verify-pin",
        "-P",
        "123456",
    ]));
    assert!(text(&o).contains("blocked"), "{}", text(&o));
    // RESET RETRY COUNTER with the PUK.
    let o = run(Command::new("yubico-piv-tool").args([
        "-r",
        card.reader_name(),
        "-a",
        "unblock-pin",
        "-P",
        "12345678",
        "-N",
        "123456",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&run(
        pkcs11_tool(&card, &module).args(["--login", "--pin", "123456", "-O"])
    ));
    assert!(t.contains("Private Key Object"), "{t}");
}

#[test]
fn empty_verify_reports_tries_without_spending_one() {
    if !need(&["opensc-tool"]) {
        return;
    }
    let Some(card) = start(&[]) else { return };
    // SELECT, empty VERIFY twice: 63C3 both times; a wrong PIN; 63C2.
    let o = run(Command::new("opensc-tool").args([
        "-r",
        card.reader_name(),
        "-s",
        "00A4040009A00000030800001000",
        "-s",
        "0020008000",
        "-s",
        "0020008000",
        "-s",
        "00200080083939393939393939",
        "-s",
        "0020008000",
    ]));
    let t = text(&o);
    let sws: Vec<&str> = t.lines().filter(|l| l.starts_with("Received")).collect();
    assert_eq!(sws.len(), 5, "{t}");
    assert!(sws[0].contains("SW1=0x90"), "{t}");
    assert!(sws[1].contains("SW1=0x63, SW2=0xC3"), "{t}");
    assert!(sws[2].contains("SW1=0x63, SW2=0xC3"), "{t}");
    assert!(sws[3].contains("SW1=0x63, SW2=0xC2"), "{t}");
    assert!(sws[4].contains("SW1=0x63, SW2=0xC2"), "{t}");
}

#[test]
fn key_generation_needs_the_management_key_and_survives_restart() {
    if !need(&["yubico-piv-tool"]) {
        return;
    }
    let Some(mut card) = start(&[]) else { return };
    let d = tmpdir();
    let pem = d.path().join("pub.pem");
    let o = run(Command::new("yubico-piv-tool")
        .args([
            "-r",
            card.reader_name(),
            "--key=000000000000000000000000000000000000000000000000",
        ])
        .args(["-a", "generate", "-s", "9d", "-A", "ECCP256", "-o"])
        .arg(&pem));
    assert!(!o.status.success(), "{}", text(&o));
    let o = run(Command::new("yubico-piv-tool")
        .args([
            "-r",
            card.reader_name(),
            "-a",
            "generate",
            "-s",
            "9d",
            "-A",
            "ECCP384",
            "-o",
        ])
        .arg(&pem));
    assert!(o.status.success(), "{}", text(&o));
    let generated = std::fs::read_to_string(&pem).unwrap();
    assert!(generated.contains("BEGIN PUBLIC KEY"));
    // Same state directory after a removal: the key is still there (GET METADATA).
    card.remove().unwrap();
    card.insert().unwrap();
    let o = run(Command::new("opensc-tool").args([
        "-r",
        card.reader_name(),
        "-s",
        "00A4040009A00000030800001000",
        "-s",
        "00F7009D00",
    ]));
    let t = text(&o);
    assert!(
        t.contains("01 01 14"),
        "metadata of 9D should say ECC P-384:\n{t}"
    );
}

#[test]
fn harness_script_runs_a_command_with_the_card() {
    if !need(&["opensc-tool", "flock"]) {
        return;
    }
    if let Err(e) = harness::check_environment() {
        println!("SKIP: {e}");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/with-virtual-card.sh");
    let state = tmpdir();
    let o = run(Command::new("bash")
        .arg(&script)
        .args(["--profile", "piv", "--provision", "--state"])
        .arg(state.path())
        .env("KLYUCH_CARD_EMULATOR", EMULATOR)
        .args(["--", "sh", "-c", "opensc-tool -r \"$KLYUCH_READER\" -n"]));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("Personal Identity Verification Card"), "{t}");
    assert!(state.path().join("card.toml").exists());
}

#[test]
fn ecdh_on_9d_and_p384_signature_on_9e() {
    let Some(module) = opensc_module().filter(|_| need(&["pkcs11-tool", "openssl"])) else {
        return;
    };
    let Some(card) = start(&["--extra-keys"]) else {
        return;
    };
    let d = tmpdir();
    let p = |n: &str| d.path().join(n);
    // ECDH: the card's 9D key with a fresh OpenSSL key; both sides get the same secret.
    let o = run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(p("peer.pem")));
    assert!(o.status.success());
    let o = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(p("peer.pem"))
        .arg("-out")
        .arg(p("peer.der")));
    assert!(o.status.success());
    let o = run(pkcs11_tool(&card, &module)
        .args([
            "--login",
            "--pin",
            "123456",
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--id",
            "03",
        ])
        .arg("--input-file")
        .arg(p("peer.der"))
        .arg("--output-file")
        .arg(p("z-card.bin")));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(pkcs11_tool(&card, &module)
        .args(["--read-object", "--type", "cert", "--id", "03", "-o"])
        .arg(p("c3.der")));
    assert!(o.status.success());
    let o = run(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
        .arg(p("c3.der"))
        .arg("-out")
        .arg(p("p3.pem")));
    assert!(o.status.success());
    let o = run(Command::new("openssl")
        .args(["pkeyutl", "-derive", "-inkey"])
        .arg(p("peer.pem"))
        .arg("-peerkey")
        .arg(p("p3.pem"))
        .arg("-out")
        .arg(p("z-host.bin")));
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(p("z-card.bin")).unwrap(),
        std::fs::read(p("z-host.bin")).unwrap()
    );
    // P-384 signature with 9E (card authentication key: no PIN policy on the card).
    let msg = p("msg.txt");
    std::fs::write(&msg, b"P-384 on the card authentication key\n").unwrap();
    let o = run(pkcs11_tool(&card, &module)
        .args([
            "--login",
            "--pin",
            "123456",
            "--sign",
            "--id",
            "04",
            "-m",
            "ECDSA-SHA384",
        ])
        .args(["--signature-format", "openssl", "-i"])
        .arg(&msg)
        .arg("-o")
        .arg(p("s4.bin")));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(pkcs11_tool(&card, &module)
        .args(["--read-object", "--type", "cert", "--id", "04", "-o"])
        .arg(p("c4.der")));
    assert!(o.status.success());
    let o = run(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-pubkey", "-noout", "-in"])
        .arg(p("c4.der"))
        .arg("-out")
        .arg(p("p4.pem")));
    assert!(o.status.success());
    let o = run(Command::new("openssl")
        .args(["dgst", "-sha384", "-verify"])
        .arg(p("p4.pem"))
        .arg("-signature")
        .arg(p("s4.bin"))
        .arg(&msg));
    assert!(text(&o).contains("Verified OK"), "{}", text(&o));
}
