//! The GOST card through pcscd + vpcd: a small PC/SC client that follows docs/gost-card.md
//! (SELECT, READ BINARY of the certificate, VERIFY, MSE:SET, PSO: COMPUTE DIGITAL
//! SIGNATURE), and OpenSSL's GOST engine verifies the signature against the card's
//! certificate. Skips with a printed reason when pcscd/vpcd/opensc or the engine are missing.

use std::ffi::CString;
use std::process::{Command, Output};

use klyuch_card_emulator::harness::{self, EmulatorBuilder, VirtualCard};
use streebog::Digest;

const EMULATOR: &str = env!("CARGO_BIN_EXE_klyuch-card-emulator");
const AID: &str = "D64300004B4C59474F5354";

fn gost_engine_available() -> bool {
    let o = Command::new("openssl")
        .args(["engine", "-t", "gost"])
        .output();
    match o {
        Ok(o) if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("available") => {
            true
        }
        _ => {
            println!("SKIP: OpenSSL GOST engine not available (package libengine-gost-openssl)");
            false
        }
    }
}

struct Client {
    card: pcsc::Card,
}

impl Client {
    fn connect(vc: &VirtualCard) -> Client {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("pcsc context");
        let name = CString::new(vc.reader_name()).unwrap();
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("connect to the card");
        Client { card }
    }

    fn tx(&self, apdu: &[u8]) -> (Vec<u8>, u16) {
        let mut buf = vec![0u8; pcsc::MAX_BUFFER_SIZE_EXTENDED];
        let r = self.card.transmit(apdu, &mut buf).expect("transmit");
        let n = r.len();
        (
            r[..n - 2].to_vec(),
            u16::from_be_bytes([r[n - 2], r[n - 1]]),
        )
    }

    fn txh(&self, hex_apdu: &str) -> (Vec<u8>, u16) {
        self.tx(&hex::decode(hex_apdu).unwrap())
    }

    fn read_file(&self, fid: &str) -> Vec<u8> {
        let (fcp, sw) = self.txh(&format!("00A4020402{fid}00"));
        assert_eq!(sw, 0x9000, "SELECT EF {fid}");
        // FCP 62 0B 80 02 <size> ...
        assert_eq!(&fcp[..4], &[0x62, 0x0B, 0x80, 0x02]);
        let size = usize::from(u16::from_be_bytes([fcp[4], fcp[5]]));
        let mut out = Vec::new();
        while out.len() < size {
            let off = out.len() as u16;
            let (d, sw) = self.tx(&[0x00, 0xB0, (off >> 8) as u8, off as u8, 0x00]);
            assert_eq!(sw, 0x9000);
            out.extend(d);
        }
        out
    }
}

fn pin_block(pin: &str) -> String {
    let mut b = pin.as_bytes().to_vec();
    b.resize(16, 0xFF);
    hex::encode_upper(b)
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

fn start_gost() -> Option<VirtualCard> {
    harness::skip_unless_ready(
        EmulatorBuilder::new("gost")
            .binary(EMULATOR)
            .provision(true)
            .arg("--log")
            .start(),
    )
}

#[test]
fn gost_signature_verifies_with_openssl_gost_engine() {
    if !gost_engine_available() {
        return;
    }
    let Some(vc) = start_gost() else { return };
    let mut c = Client::connect(&vc);
    assert_eq!(c.txh(&format!("00A4040C0B{AID}")).1, 0x9000);
    let (serial, sw) = c.txh("00CA018100");
    assert_eq!((serial.len(), sw), (8, 0x9000));
    let dir = c.read_file("4B01");
    assert_eq!(dir[0], 0xA0, "one key record");
    let cert = c.read_file("CE01");

    let d = tempfile::tempdir().unwrap();
    let msg = d.path().join("msg.txt");
    let sig_path = d.path().join("sig.bin");
    let cert_path = d.path().join("cert.der");
    let pem = d.path().join("cert.pem");
    let pubkey = d.path().join("pub.pem");
    std::fs::write(&msg, b"Klyuch GOST card signs this\n").unwrap();
    std::fs::write(&cert_path, &cert).unwrap();

    // The host hashes (Streebog-256), the card signs the digest.
    let digest = streebog::Streebog256::digest(std::fs::read(&msg).unwrap());
    let o = run(Command::new("openssl")
        .args(["dgst", "-engine", "gost", "-md_gost12_256", "-binary"])
        .arg(&msg));
    assert_eq!(
        o.stdout,
        digest.to_vec(),
        "streebog crate vs OpenSSL engine"
    );

    assert_eq!(
        c.txh(&format!("0020000110{}", pin_block("12345678"))).1,
        0x9000
    );
    assert_eq!(c.txh("002241B603840101").1, 0x9000);
    let (sig, sw) = c.tx(&[&[0x00, 0x2A, 0x9E, 0x9A, 0x20][..], &digest, &[0x00]].concat());
    assert_eq!((sw, sig.len()), (0x9000, 64));
    std::fs::write(&sig_path, &sig).unwrap();

    let o = run(Command::new("openssl")
        .args(["x509", "-engine", "gost", "-inform", "DER", "-in"])
        .arg(&cert_path)
        .arg("-out")
        .arg(&pem));
    assert!(o.status.success());
    let o = run(Command::new("openssl")
        .args([
            "x509", "-engine", "gost", "-noout", "-subject", "-pubkey", "-in",
        ])
        .arg(&pem));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("CN = Klyuch GOST Test Card"), "{text}");
    std::fs::write(
        &pubkey,
        &text[text.find("-----BEGIN PUBLIC KEY-----").expect("public key")..],
    )
    .unwrap();
    let o = run(Command::new("openssl")
        .args(["dgst", "-engine", "gost", "-md_gost12_256", "-verify"])
        .arg(&pubkey)
        .arg("-signature")
        .arg(&sig_path)
        .arg(&msg));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Verified OK"),
        "OpenSSL did not verify the card's signature"
    );
    // The certificate's own signature (Streebog-256 + GOST R 34.10-2012 over the TBS).
    let o = run(Command::new("openssl")
        .args(["verify", "-engine", "gost", "-CAfile"])
        .arg(&pem)
        .arg(&pem));
    assert!(
        o.status.success(),
        "self-signed certificate does not verify"
    );

    // A signature after a reset needs the PIN again (the card forgets it).
    c.card
        .reconnect(
            pcsc::ShareMode::Shared,
            pcsc::Protocols::ANY,
            pcsc::Disposition::ResetCard,
        )
        .unwrap();
    assert_eq!(c.txh(&format!("00A4040C0B{AID}")).1, 0x9000);
    assert_eq!(c.txh("002241B603840101").1, 0x9000);
    let (_, sw) = c.tx(&[&[0x00, 0x2A, 0x9E, 0x9A, 0x20][..], &digest, &[0x00]].concat());
    assert_eq!(sw, 0x6982);
    // PINs never reach the trace.
    let log = vc.log();
    assert!(
        log.contains("gost >> 0020000110 <16 bytes masked>"),
        "{log}"
    );
    assert!(
        !log.contains("3132333435363738"),
        "PIN leaked into the trace"
    );
}

#[test]
fn gost_state_survives_removal_and_wrong_pins_count() {
    let Some(mut vc) = start_gost() else { return };
    let public_before = {
        let c = Client::connect(&vc);
        assert_eq!(c.txh(&format!("00A4040C0B{AID}")).1, 0x9000);
        assert_eq!(c.txh(&format!("0020000110{}", pin_block("0000"))).1, 0x63C9);
        c.read_file("4B01")
    };
    vc.remove().unwrap();
    vc.insert().unwrap();
    let c = Client::connect(&vc);
    assert_eq!(c.txh(&format!("00A4040C0B{AID}")).1, 0x9000);
    assert_eq!(
        c.txh("0020000100").1,
        0x63C9,
        "counter kept in the card's memory"
    );
    assert_eq!(c.read_file("4B01"), public_before);
    assert_eq!(
        c.txh(&format!("0020000110{}", pin_block("12345678"))).1,
        0x9000
    );
    assert_eq!(c.txh("0020000100").1, 0x9000);
}
