//! `klyuch backup` / `klyuch restore` of a soft token, end to end: the restored keys sign and
//! OpenSSL verifies with the ORIGINAL public keys; a wrong password, a truncated file and an
//! altered byte each give their own error and leave the store exactly as it was; the file holds
//! neither the private key bytes nor the PINs nor any attribute in clear.

mod cli_common;
use cli_common::{fails, ok, tool};
use klyuch_tests::{require, Fixture, SO_PIN, USER_PIN};
use std::collections::BTreeMap;
use std::path::Path;

const PASSWORD: &str = "correct horse battery staple";

/// Every file of the store with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.insert(format!("{}/", p.display()), Vec::new());
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The private scalar of an EC key as `openssl pkey -text` prints it.
fn ec_private_bytes(f: &Fixture, pem: &str) -> Vec<u8> {
    let t = tool(f, "openssl", &["pkey", "-in", pem, "-text", "-noout"]);
    let hex: String = t
        .lines()
        .skip_while(|l| !l.starts_with("priv:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .flat_map(|l| l.trim().split(':'))
        .collect();
    let b = hex::decode(hex).expect("private key hex");
    // `-text` may print a leading 00 byte
    b.into_iter().skip_while(|x| *x == 0).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn pkcs11_sign(f: &Fixture, token: &str, pin: &str, id: &str, mech: &str, fmt: Option<&str>) {
    let m = klyuch_tests::module_path();
    let mut args = vec![
        "--module",
        m.to_str().unwrap(),
        "--token-label",
        token,
        "--login",
        "--pin",
        pin,
        "--sign",
        "--id",
        id,
        "-m",
        mech,
        "-i",
        "msg.txt",
        "-o",
        "sig.bin",
    ];
    if let Some(fmt) = fmt {
        args.extend(["--signature-format", fmt]);
    }
    f.run("pkcs11-tool", &args);
}

fn verifies(f: &Fixture, public_pem: &str) {
    let v = tool(
        f,
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            public_pem,
            "-signature",
            "sig.bin",
            "msg.txt",
        ],
    );
    assert!(v.contains("Verified OK"), "{v}");
}

#[test]
fn backup_and_restore_a_soft_token() {
    require!("openssl", "pkcs11-tool");
    let bin = require_klyuch!();
    let gost = cli_common::have_gost_engine();
    let f = Fixture::new();
    f.init_token("src");
    std::fs::write(f.path("msg.txt"), b"signed before and after the restore").unwrap();
    std::fs::write(f.path("pw"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(f.path("wrong-pw"), "not the password\n").unwrap();

    // keys made on the token, and one imported whose private bytes we know
    ok(
        &f,
        &bin,
        &[
            "--token",
            "src",
            "keygen",
            "--type",
            "rsa:2048",
            "--id",
            "01",
            "--label",
            "secret-rsa-label",
            "-o",
            "rsa.pub.pem",
            "--pin",
            USER_PIN,
        ],
    );
    if gost {
        ok(
            &f,
            &bin,
            &[
                "--token",
                "src",
                "keygen",
                "--type",
                "gost2012-256",
                "--id",
                "02",
                "-o",
                "gost.pub.pem",
                "--pin",
                USER_PIN,
            ],
        );
    }
    tool(
        &f,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
    );
    tool(
        &f,
        "openssl",
        &["pkey", "-in", "ec.pem", "-pubout", "-out", "ec.pub.pem"],
    );
    ok(
        &f,
        &bin,
        &[
            "--token", "src", "import", "ec.pem", "--id", "03", "--pin", USER_PIN,
        ],
    );
    let ec_secret = ec_private_bytes(&f, "ec.pem");
    assert_eq!(ec_secret.len(), 32);

    // backup: the user PIN is checked, the file is never overwritten
    fails(
        &f,
        &bin,
        &[
            "--token",
            "src",
            "backup",
            "-o",
            "b.kbk",
            "--password-file",
            "pw",
            "--pin",
            "9999",
        ],
        1,
        "CKR_PIN_INCORRECT",
    );
    assert!(!f.path("b.kbk").exists());
    let out = ok(
        &f,
        &bin,
        &[
            "--token",
            "src",
            "backup",
            "-o",
            "b.kbk",
            "--password-file",
            "pw",
            "--pin",
            USER_PIN,
        ],
    );
    // piped (not a terminal): no progress bar, no carriage returns or escape sequences
    assert!(!out.contains('\r') && !out.contains('\x1b'), "{out:?}");
    let n = if gost { 6 } else { 4 };
    assert!(
        out.contains(&format!("{n} objects ({} private)", n / 2)),
        "{out}"
    );
    fails(
        &f,
        &bin,
        &[
            "--token",
            "src",
            "backup",
            "-o",
            "b.kbk",
            "--password-file",
            "pw",
            "--pin",
            USER_PIN,
        ],
        1,
        "already exists",
    );
    let file = std::fs::read(f.path("b.kbk")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.path("b.kbk"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // nothing in clear: the key bytes, the PINs, the labels
    assert!(
        !contains(&file, &ec_secret),
        "the EC private key is in the file"
    );
    assert!(!contains(&file, &ec_secret[..8]));
    assert!(!contains(&file, USER_PIN.as_bytes()));
    assert!(!contains(&file, SO_PIN.as_bytes()));
    assert!(!contains(&file, b"secret-rsa-label"));
    assert!(!contains(&file, PASSWORD.as_bytes()));

    // damaged files and a wrong password: own message each, the store unchanged
    std::fs::write(f.path("trunc.kbk"), &file[..file.len() / 2]).unwrap();
    let mut altered = file.clone();
    altered[file.len() / 2] ^= 0x01;
    std::fs::write(f.path("altered.kbk"), &altered).unwrap();
    std::fs::write(f.path("empty.kbk"), b"").unwrap();
    std::fs::write(f.path("other.kbk"), b"-----BEGIN CERTIFICATE-----\n").unwrap();
    let before = snapshot(&f.store());
    let restore = |file: &str, pw: &str| -> Vec<String> {
        [
            "restore",
            file,
            "--label",
            "dst",
            "--password-file",
            pw,
            "--so-pin",
            "87654321",
            "--pin",
            "5678",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    for (file, pw, words) in [
        ("b.kbk", "wrong-pw", "wrong backup password"),
        ("trunc.kbk", "pw", "truncated"),
        ("altered.kbk", "pw", "damaged or was altered"),
        ("empty.kbk", "pw", "truncated"),
        ("other.kbk", "pw", "not a Klyuch token backup"),
    ] {
        let args = restore(file, pw);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = fails(&f, &bin, &refs, 1, words);
        assert!(t.contains("nothing was restored"), "{t}");
        assert_eq!(snapshot(&f.store()), before, "{file}: the store changed");
    }
    // a label that exists is refused before anything is written
    let t = fails(
        &f,
        &bin,
        &[
            "restore",
            "b.kbk",
            "--password-file",
            "pw",
            "--so-pin",
            "87654321",
            "--pin",
            "5678",
        ],
        1,
        "already has a token labelled \"src\"",
    );
    assert!(t.contains("nothing was restored"), "{t}");
    assert_eq!(snapshot(&f.store()), before);

    // the real restore: a new token with new PINs
    let args = restore("b.kbk", "pw");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&f, &bin, &refs);
    assert!(out.contains("as the new soft token \"dst\""), "{out}");
    let slots = ok(&f, &bin, &["slots"]);
    assert!(slots.contains("token label:   dst"), "{slots}");
    assert!(slots.contains("token label:   src"), "{slots}");
    fails(
        &f,
        &bin,
        &["--token", "dst", "objects", "--login", "--pin", USER_PIN],
        1,
        "CKR_PIN_INCORRECT",
    );
    let objs = ok(
        &f,
        &bin,
        &[
            "--token", "dst", "objects", "--login", "--json", "--pin", "5678",
        ],
    );
    for id in ["01", "03"] {
        assert_eq!(
            objs.matches(&format!("\"id\": \"{id}\"")).count(),
            2,
            "{objs}"
        );
    }
    assert!(objs.contains("secret-rsa-label"), "{objs}");

    // the restored keys sign; OpenSSL verifies with the original public keys
    pkcs11_sign(&f, "dst", "5678", "01", "SHA256-RSA-PKCS", None);
    verifies(&f, "rsa.pub.pem");
    pkcs11_sign(&f, "dst", "5678", "03", "ECDSA-SHA256", Some("openssl"));
    verifies(&f, "ec.pub.pem");
    if gost {
        ok(
            &f,
            &bin,
            &[
                "csr",
                "--key",
                "pkcs11:token=dst;id=%02",
                "--subject",
                "/CN=restored",
                "--pin",
                "5678",
                "-o",
                "g.csr",
            ],
        );
        let v = tool(
            &f,
            "openssl",
            &[
                "req", "-engine", "gost", "-in", "g.csr", "-verify", "-noout",
            ],
        );
        assert!(v.contains("verify OK"), "{v}");
        let k = tool(
            &f,
            "openssl",
            &[
                "req", "-engine", "gost", "-in", "g.csr", "-pubkey", "-noout",
            ],
        );
        let orig = std::fs::read_to_string(f.path("gost.pub.pem")).unwrap();
        assert!(k.contains(orig.trim()), "another GOST key:\n{k}\n{orig}");
    }
    // the original token still works
    pkcs11_sign(&f, "src", USER_PIN, "01", "SHA256-RSA-PKCS", None);
    verifies(&f, "rsa.pub.pem");
}
