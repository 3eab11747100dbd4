//! The standard tools against Klyuch's soft token: OpenSC pkcs11-tool (its own test suites, key
//! generation, signing, decryption), OpenSSL (verifies everything Klyuch signs), GnuTLS p11tool.

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use klyuch_tests::{module_path, require, text, Fixture, SO_PIN, USER_PIN};

const DOC: &[u8] = b"Klyuch test document\n";

fn setup(f: &Fixture, label: &str) {
    f.pkcs11_tool(&["--init-token", "--label", label, "--so-pin", SO_PIN]);
    f.pkcs11_tool(&[
        "--token-label",
        label,
        "--init-pin",
        "--so-pin",
        SO_PIN,
        "--pin",
        USER_PIN,
    ]);
    std::fs::write(f.path("doc.txt"), DOC).unwrap();
}

fn p(f: &Fixture, name: &str) -> String {
    f.path(name).display().to_string()
}

/// `pkcs11-tool --token-label L --login --pin 1234 ARGS`.
fn tool(f: &Fixture, label: &str, args: &[&str]) -> String {
    let mut all = vec!["--token-label", label, "--login", "--pin", USER_PIN];
    all.extend_from_slice(args);
    text(&f.pkcs11_tool(&all))
}

/// The token's public key (its `CKA_PUBLIC_KEY_INFO`, read through cryptoki) as a PEM file made
/// by OpenSSL. (pkcs11-tool 0.23's `--read-object --type pubkey` fails on P-384 and writes
/// Ed25519 keys OpenSSL cannot read, with SoftHSM as with Klyuch.)
fn public_pem(f: &Fixture, label: &str, id: &str) -> String {
    let p11 = f.p11();
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label() == label)
        .expect("token");
    let s = p11.open_ro_session(slot).unwrap();
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(hex::decode(id).unwrap()),
        ])
        .unwrap();
    let spki = match &s
        .get_attributes(found[0], &[AttributeType::PublicKeyInfo])
        .unwrap()[..]
    {
        [Attribute::PublicKeyInfo(v)] if !v.is_empty() => v.clone(),
        other => panic!("no CKA_PUBLIC_KEY_INFO: {other:?}"),
    };
    std::fs::write(f.path("pub.der"), spki).unwrap();
    f.run(
        "openssl",
        &[
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            &p(f, "pub.der"),
            "-out",
            &p(f, "pub.pem"),
        ],
    );
    p(f, "pub.pem")
}

#[test]
fn pkcs11_tool_test_suite() {
    require!("pkcs11-tool");
    let f = Fixture::new();
    setup(&f, "suite");
    tool(
        &f,
        "suite",
        &[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--id",
            "01",
            "--label",
            "rsa",
        ],
    );
    tool(
        &f,
        "suite",
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "02",
            "--label",
            "ec",
        ],
    );
    // --allow-sw: pkcs11-tool skips mechanisms without CKF_HW otherwise, and a soft token
    // truthfully has none.
    let out = tool(&f, "suite", &["--test", "--allow-sw"]);
    assert!(
        out.contains("No errors") && out.contains("SHA256-RSA-PKCS: OK"),
        "{out}"
    );
    let out = tool(
        &f,
        "suite",
        &[
            "--test-ec",
            "--session-rw",
            "--allow-sw",
            "--id",
            "03",
            "--key-type",
            "EC:secp256r1",
        ],
    );
    // (It also tries C_SignUpdate with raw CKM_ECDSA, single-part by the spec: a warning.)
    assert!(out.contains("==> OK") && !out.contains("ERR"), "{out}");
}

#[test]
fn pkcs11_tool_fork_and_threads() {
    require!("pkcs11-tool");
    let f = Fixture::new();
    setup(&f, "forks");
    // The child calls C_Initialize after fork() and must get a working library of its own
    // (SoftHSMv2 2.6 fails this test).
    let out = text(&f.pkcs11_tool(&["--test-fork"]));
    assert!(
        out.contains("Calling C_Initialize in forked child")
            && !out.to_lowercase().contains("error"),
        "{out}"
    );
    // A thread initialising while the main thread does: CKR_OK or, when the main thread won,
    // CKR_CRYPTOKI_ALREADY_INITIALIZED (PKCS#11 §5.4); the other steps must all succeed.
    let out = text(&f.pkcs11_tool(&["--test-threads", "ILGISLT0", "-L"]));
    assert!(out.contains("all threads have ended with CKR_OK"), "{out}");
    let out = text(&f.pkcs11_tool(&["--test-threads", "IN", "-L"]));
    assert!(
        out.contains("rv:CKR_OK") || out.contains("rv:CKR_CRYPTOKI_ALREADY_INITIALIZED"),
        "{out}"
    );
}

#[test]
fn rsa_signatures_verify_with_openssl() {
    require!("pkcs11-tool", "openssl");
    let f = Fixture::new();
    setup(&f, "rsa");
    tool(
        &f,
        "rsa",
        &[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--id",
            "01",
            "--label",
            "rsa",
        ],
    );
    let pem = public_pem(&f, "rsa", "01");
    for (mech, md) in [
        ("SHA256-RSA-PKCS", "sha256"),
        ("SHA384-RSA-PKCS", "sha384"),
        ("SHA512-RSA-PKCS", "sha512"),
        ("SHA1-RSA-PKCS", "sha1"),
    ] {
        tool(
            &f,
            "rsa",
            &[
                "--sign",
                "--id",
                "01",
                "-m",
                mech,
                "-i",
                &p(&f, "doc.txt"),
                "-o",
                &p(&f, "sig"),
            ],
        );
        let out = f.run(
            "openssl",
            &[
                "dgst",
                &format!("-{md}"),
                "-verify",
                &pem,
                "-signature",
                &p(&f, "sig"),
                &p(&f, "doc.txt"),
            ],
        );
        assert!(text(&out).contains("Verified OK"), "{mech}: {}", text(&out));
    }
    tool(
        &f,
        "rsa",
        &[
            "--sign",
            "--id",
            "01",
            "-m",
            "SHA256-RSA-PKCS-PSS",
            "--mgf",
            "MGF1-SHA256",
            "--salt-len",
            "32",
            "-i",
            &p(&f, "doc.txt"),
            "-o",
            &p(&f, "sig"),
        ],
    );
    let out = f.run(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-verify",
            &pem,
            "-signature",
            &p(&f, "sig"),
            &p(&f, "doc.txt"),
        ],
    );
    assert!(text(&out).contains("Verified OK"), "PSS: {}", text(&out));
    // OAEP: OpenSSL encrypts to the token's public key, the token decrypts.
    f.run(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &pem,
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            &p(&f, "doc.txt"),
            "-out",
            &p(&f, "enc"),
        ],
    );
    tool(
        &f,
        "rsa",
        &[
            "--decrypt",
            "--id",
            "01",
            "-m",
            "RSA-PKCS-OAEP",
            "--hash-algorithm",
            "SHA256",
            "--mgf",
            "MGF1-SHA256",
            "-i",
            &p(&f, "enc"),
            "-o",
            &p(&f, "dec"),
        ],
    );
    assert_eq!(std::fs::read(f.path("dec")).unwrap(), DOC);
    // PKCS#1 v1.5 decryption.
    f.run(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            &pem,
            "-in",
            &p(&f, "doc.txt"),
            "-out",
            &p(&f, "enc1"),
        ],
    );
    tool(
        &f,
        "rsa",
        &[
            "--decrypt",
            "--id",
            "01",
            "-m",
            "RSA-PKCS",
            "-i",
            &p(&f, "enc1"),
            "-o",
            &p(&f, "dec1"),
        ],
    );
    assert_eq!(std::fs::read(f.path("dec1")).unwrap(), DOC);
}

#[test]
fn ecdsa_and_eddsa_signatures_verify_with_openssl() {
    require!("pkcs11-tool", "openssl");
    let f = Fixture::new();
    setup(&f, "ec");
    for (curve, id, mech, md) in [
        ("EC:prime256v1", "02", "ECDSA-SHA256", "sha256"),
        ("EC:secp384r1", "03", "ECDSA-SHA384", "sha384"),
        ("EC:secp521r1", "04", "ECDSA-SHA512", "sha512"),
    ] {
        tool(
            &f,
            "ec",
            &[
                "--keypairgen",
                "--key-type",
                curve,
                "--id",
                id,
                "--label",
                curve,
            ],
        );
        let pem = public_pem(&f, "ec", id);
        tool(
            &f,
            "ec",
            &[
                "--sign",
                "--id",
                id,
                "-m",
                mech,
                "--signature-format",
                "openssl",
                "-i",
                &p(&f, "doc.txt"),
                "-o",
                &p(&f, "sig"),
            ],
        );
        let out = f.run(
            "openssl",
            &[
                "dgst",
                &format!("-{md}"),
                "-verify",
                &pem,
                "-signature",
                &p(&f, "sig"),
                &p(&f, "doc.txt"),
            ],
        );
        assert!(
            text(&out).contains("Verified OK"),
            "{curve}: {}",
            text(&out)
        );
        // Raw CKM_ECDSA over a digest computed outside.
        f.run(
            "openssl",
            &[
                "dgst",
                &format!("-{md}"),
                "-binary",
                "-out",
                &p(&f, "hash"),
                &p(&f, "doc.txt"),
            ],
        );
        tool(
            &f,
            "ec",
            &[
                "--sign",
                "--id",
                id,
                "-m",
                "ECDSA",
                "--signature-format",
                "openssl",
                "-i",
                &p(&f, "hash"),
                "-o",
                &p(&f, "sig2"),
            ],
        );
        let out = f.run(
            "openssl",
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                &pem,
                "-in",
                &p(&f, "hash"),
                "-sigfile",
                &p(&f, "sig2"),
            ],
        );
        assert!(
            text(&out).contains("Signature Verified Successfully"),
            "{curve} raw: {}",
            text(&out)
        );
    }
    tool(
        &f,
        "ec",
        &[
            "--keypairgen",
            "--key-type",
            "EC:edwards25519",
            "--id",
            "05",
            "--label",
            "ed",
        ],
    );
    let pem = public_pem(&f, "ec", "05");
    tool(
        &f,
        "ec",
        &[
            "--sign",
            "--id",
            "05",
            "-m",
            "EDDSA",
            "-i",
            &p(&f, "doc.txt"),
            "-o",
            &p(&f, "sig"),
        ],
    );
    let out = f.run(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            &pem,
            "-rawin",
            "-in",
            &p(&f, "doc.txt"),
            "-sigfile",
            &p(&f, "sig"),
        ],
    );
    assert!(
        text(&out).contains("Signature Verified Successfully"),
        "Ed25519: {}",
        text(&out)
    );
}

#[test]
fn gnutls_p11tool_test_sign() {
    require!("p11tool", "pkcs11-tool");
    let f = Fixture::new();
    setup(&f, "gnutls");
    tool(
        &f,
        "gnutls",
        &[
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--id",
            "01",
            "--label",
            "rsa",
        ],
    );
    tool(
        &f,
        "gnutls",
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "02",
            "--label",
            "ecc",
        ],
    );
    let m = module_path();
    for label in ["rsa", "ecc"] {
        let uri = format!("pkcs11:token=gnutls;object={label};type=private");
        let mut c = f.command(
            "p11tool",
            &[
                "--provider",
                m.to_str().unwrap(),
                "--login",
                "--test-sign",
                &uri,
            ],
        );
        c.env("GNUTLS_PIN", USER_PIN);
        let out = c.output().unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && t.contains("ok"),
            "p11tool --test-sign {label}: {t}"
        );
    }
}
