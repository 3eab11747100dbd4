//! GnuTLS with Klyuch (`--provider`): `p11tool` lists the token's objects and test-signs with
//! its RSA and EC keys; `gnutls-cli` authenticates to `openssl s_server` with `pkcs11:` URIs for
//! the key and the certificate (TLS 1.3 and 1.2).

use klyuch_tests::interop::{Pki, TlsServer, EC, RSA};
use klyuch_tests::{require, Fixture, USER_PIN};

#[test]
fn p11tool_lists_and_test_signs() {
    require!("p11tool", "pkcs11-tool", "openssl");
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
}

#[test]
fn gnutls_cli_authenticates_with_pkcs11_uris() {
    require!("gnutls-cli", "pkcs11-tool", "openssl");
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
}
