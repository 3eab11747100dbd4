//! GnuTLS with Klyuch (`--provider`): `p11tool` lists the token's objects and test-signs with
//! its RSA and EC keys; `gnutls-cli` authenticates to `openssl s_server` with `pkcs11:` URIs for
//! the key and the certificate (TLS 1.3 and 1.2).

use klyuch_tests::interop::{Pki, TlsServer, EC, RSA};
use klyuch_tests::{require, Fixture, USER_PIN};

#[test]
fn p11tool_lists_and_test_signs() {
    require!("p11tool", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "gnutlslist");
    let m = pki.module();

    let tokens = pki.run_for(60, "p11tool", &["--provider", &m, "--list-tokens"]);
    assert!(
        tokens.contains("token=gnutlslist") && tokens.contains("Manufacturer: Klyuch"),
        "{tokens}"
    );

    let all = pki
        .command(
            "p11tool",
            &[
                "--provider",
                &m,
                "--login",
                "--list-all",
                "pkcs11:token=gnutlslist",
            ],
        )
        .env("GNUTLS_PIN", USER_PIN)
        .output()
        .unwrap();
    let all = klyuch_tests::text(&all);
    for want in [
        "Type: Private key (RSA-2048)",
        "Type: Public key (RSA-2048)",
        "Type: X.509 Certificate (RSA-2048)",
        "Type: Private key (EC/ECDSA-SECP256R1)",
        "Type: Public key (EC/ECDSA-SECP256R1)",
        "Type: X.509 Certificate (EC/ECDSA-SECP256R1)",
        "Label: Klyuch Test CA",
    ] {
        assert!(all.contains(want), "{want} missing:\n{all}");
    }

    // Without login only public objects: certificates and public keys, no private key.
    let public = pki.run_for(
        60,
        "p11tool",
        &["--provider", &m, "--list-all", "pkcs11:token=gnutlslist"],
    );
    assert!(
        public.contains("X.509 Certificate") && !public.contains("Private key"),
        "{public}"
    );

    // The certificate as GnuTLS exports it is the one the CA issued.
    let exported = pki.run_for(
        60,
        "p11tool",
        &["--provider", &m, "--export", &pki.uri(EC.label, "cert", "")],
    );
    let issued = std::fs::read_to_string(f.path("eckey.pem")).unwrap();
    let body = |s: &str| -> String {
        s.lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .take_while(|l| !l.starts_with("-----END"))
            .collect()
    };
    assert_eq!(body(&exported), body(&issued));

    for k in [RSA, EC] {
        let out = pki
            .command(
                "p11tool",
                &[
                    "--provider",
                    &m,
                    "--login",
                    "--test-sign",
                    &pki.uri(k.label, "private", ""),
                ],
            )
            .env("GNUTLS_PIN", USER_PIN)
            .output()
            .unwrap();
        let t = klyuch_tests::text(&out);
        assert!(
            out.status.success()
                && t.contains("Verifying against private key parameters... ok")
                && t.contains("Verifying against public key in the token... ok"),
            "{}: {t}",
            k.label
        );
    }
    println!(
        "checked: p11tool --list-tokens shows the token (Manufacturer: Klyuch); --login --list-all shows private keys, public keys and certificates of RSA-2048 and EC P-256 and the CA certificate; without login no private key; --export gives the issued certificate; --test-sign passes for the RSA and EC keys"
    );
}

#[test]
fn gnutls_cli_authenticates_with_pkcs11_uris() {
    require!("gnutls-cli", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "gnutlscli");
    let server = TlsServer::start(&pki, "s_server.log");
    let port = server.port.to_string();
    let request = f.path("request.txt");
    std::fs::write(&request, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    for (k, prio) in [
        (RSA, "NORMAL"),
        (RSA, "NORMAL:-VERS-TLS1.3"),
        (EC, "NORMAL"),
    ] {
        let out = pki
            .command(
                "timeout",
                &[
                    "-k",
                    "5",
                    "30",
                    "gnutls-cli",
                    "--provider",
                    &pki.module(),
                    "--x509cafile",
                    &pki.p("ca.pem"),
                    "--x509keyfile",
                    &pki.uri(k.label, "private", ""),
                    "--x509certfile",
                    &pki.uri(k.label, "cert", ""),
                    "--priority",
                    prio,
                    "-p",
                    &port,
                    "127.0.0.1",
                ],
            )
            .env("GNUTLS_PIN", USER_PIN)
            .stdin(std::fs::File::open(&request).unwrap())
            .output()
            .unwrap();
        let t = klyuch_tests::text(&out);
        assert!(
            t.contains("- Handshake was completed")
                && t.contains(&format!("Subject: O=Klyuch Test, CN={}", k.cn)),
            "{} {prio}: {}\n{t}\nserver:\n{}",
            k.label,
            out.status,
            server.log_text()
        );
    }
    assert!(server.saw_client(RSA.cn) && server.saw_client(EC.cn));
    println!(
        "checked: gnutls-cli --x509keyfile/--x509certfile pkcs11: URIs completed the handshake with RSA (TLS 1.3, TLS 1.2) and EC (TLS 1.3) and s_server -Verify 1 saw both client subjects"
    );
}

/// GnuTLS as the token's manager: p11tool generates key pairs on the token with GnuTLS's
/// templates, certtool makes a CSR with the token key, p11tool stores the issued certificate,
/// signs with the key, and deletes a key pair.
#[test]
fn p11tool_and_certtool_generate_write_and_delete() {
    require!("p11tool", "certtool", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "gnutlsgen");
    let m = pki.module();
    let gnutls = |program: &str, args: &[&str]| -> String {
        let out = pki
            .command(program, &[&["--provider", m.as_str()], args].concat())
            .env("GNUTLS_PIN", USER_PIN)
            .output()
            .unwrap();
        let t = klyuch_tests::text(&out);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{t}",
            out.status
        );
        t
    };
    gnutls(
        "p11tool",
        &[
            "--login",
            "--generate-privkey",
            "ECDSA",
            "--curve",
            "secp256r1",
            "--label",
            "gtkey",
            "--id",
            "0a0b",
            "pkcs11:token=gnutlsgen",
        ],
    );
    gnutls(
        "p11tool",
        &[
            "--login",
            "--generate-privkey",
            "RSA",
            "--bits",
            "2048",
            "--label",
            "gtrsa",
            "pkcs11:token=gnutlsgen",
        ],
    );
    std::fs::write(
        f.path("req.tmpl"),
        "organization = \"Klyuch Test\"\ncn = \"GnuTLS Generated\"\n",
    )
    .unwrap();
    gnutls(
        "certtool",
        &[
            "--generate-request",
            "--load-privkey",
            &pki.uri("gtkey", "private", ""),
            "--template",
            &pki.p("req.tmpl"),
            "--outfile",
            &pki.p("gt.csr"),
        ],
    );
    let v = pki.openssl(&["req", "-in", &pki.p("gt.csr"), "-verify", "-noout"]);
    assert!(v.contains("verify OK"), "{v}");
    pki.openssl(&[
        "x509",
        "-req",
        "-in",
        &pki.p("gt.csr"),
        "-CA",
        &pki.p("ca.pem"),
        "-CAkey",
        &pki.p("ca.key"),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &pki.p("ee.ext"),
        "-out",
        &pki.p("gt.pem"),
    ]);
    gnutls(
        "p11tool",
        &[
            "--login",
            "--write",
            "--load-certificate",
            &pki.p("gt.pem"),
            "--label",
            "gtkey",
            "--id",
            "0a0b",
            "pkcs11:token=gnutlsgen",
        ],
    );
    let t = gnutls(
        "p11tool",
        &["--login", "--test-sign", &pki.uri("gtkey", "private", "")],
    );
    assert!(
        t.contains("Verifying against public key in the token... ok"),
        "{t}"
    );
    // The certificate and the key belong together (same CKA_ID) for GnuTLS.
    let t = gnutls(
        "p11tool",
        &["--login", "--list-all", "pkcs11:token=gnutlsgen;id=%0a%0b"],
    );
    assert!(
        t.contains("Type: Private key (EC/ECDSA-SECP256R1)")
            && t.contains("Type: X.509 Certificate (EC/ECDSA-SECP256R1)"),
        "{t}"
    );
    let t = gnutls(
        "p11tool",
        &[
            "--login",
            "--delete",
            "--batch",
            "pkcs11:token=gnutlsgen;object=gtrsa",
        ],
    );
    assert!(t.contains("2 objects deleted"), "{t}");
    let t = gnutls(
        "p11tool",
        &["--login", "--list-all", "pkcs11:token=gnutlsgen"],
    );
    assert!(!t.contains("gtrsa") && t.contains("gtkey"), "{t}");
    println!(
        "checked: p11tool --generate-privkey made RSA and EC key pairs on the token; certtool made a CSR with the token key, p11tool --write stored the issued certificate under the key ID, --test-sign passed, --delete removed a key pair (2 objects)"
    );
}
