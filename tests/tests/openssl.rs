//! OpenSSL 3 with the pkcs11 engine (libp11), `PKCS11_MODULE_PATH` pointing at Klyuch: CSRs and
//! self-signed certificates, CMS signatures, raw signatures with RSA (PKCS#1 v1.5 and PSS) and EC
//! keys addressed by `pkcs11:` URIs (PIN in the URI or in a file), and TLS client
//! authentication with token keys from `openssl s_client` and curl.

use klyuch_tests::interop::{Pki, TlsServer, EC, RSA};
use klyuch_tests::{require, Fixture, USER_PIN};

const ENGINE: [&str; 4] = ["-engine", "pkcs11", "-keyform", "engine"];

/// `SUBCOMMAND -engine pkcs11 -keyform engine ARGS…` (options must precede file arguments).
fn with_engine<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![args[0]];
    all.extend_from_slice(&ENGINE);
    all.extend_from_slice(&args[1..]);
    all
}

#[test]
fn engine_self_signed_certificate_and_cms() {
    require!("openssl", "pkcs11-tool");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    // Pki::new already made a CSR for each token key through the engine.
    let pki = Pki::new(&f, "osslcms");

    // A self-signed certificate from the RSA token key.
    let key = pki.engine_key(RSA.label);
    pki.openssl(&with_engine(&[
        "req",
        "-new",
        "-x509",
        "-days",
        "30",
        "-sha256",
        "-key",
        &key,
        "-subj",
        "/CN=Klyuch engine self-signed",
        "-out",
        &pki.p("ss.pem"),
    ]));
    let v = pki.openssl(&["verify", "-CAfile", &pki.p("ss.pem"), &pki.p("ss.pem")]);
    assert!(v.contains(": OK"), "{v}");
    let s = pki.openssl(&["x509", "-in", &pki.p("ss.pem"), "-noout", "-subject"]);
    assert!(s.contains("Klyuch engine self-signed"), "{s}");

    // CMS, attached and detached, with both keys.
    for k in [RSA, EC] {
        let key = pki.engine_key(k.label);
        let sig = pki.p(&format!("{}.p7s", k.label));
        pki.openssl(&with_engine(&[
            "cms",
            "-sign",
            "-nodetach",
            "-binary",
            "-md",
            "sha256",
            "-inkey",
            &key,
            "-signer",
            &pki.p(&format!("{}.pem", k.label)),
            "-in",
            &pki.p("msg.txt"),
            "-outform",
            "DER",
            "-out",
            &sig,
        ]));
        let out = pki.openssl(&[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            &sig,
            "-CAfile",
            &pki.p("ca.pem"),
            "-out",
            &pki.p("msg.out"),
        ]);
        assert!(out.contains("CMS Verification successful"), "{out}");
        assert_eq!(
            std::fs::read(f.path("msg.out")).unwrap(),
            std::fs::read(f.path("msg.txt")).unwrap()
        );

        let det = pki.p(&format!("{}.det.p7s", k.label));
        pki.openssl(&with_engine(&[
            "cms",
            "-sign",
            "-binary",
            "-inkey",
            &key,
            "-signer",
            &pki.p(&format!("{}.pem", k.label)),
            "-in",
            &pki.p("msg.txt"),
            "-outform",
            "DER",
            "-out",
            &det,
        ]));
        let out = pki.openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            &det,
            "-content",
            &pki.p("msg.txt"),
            "-CAfile",
            &pki.p("ca.pem"),
            "-out",
            "/dev/null",
        ]);
        assert!(out.contains("CMS Verification successful"), "{out}");
    }
    println!(
        "checked: openssl req -engine pkcs11 made CSRs for the RSA and EC token keys (pkcs11: URIs) and a self-signed certificate that openssl verify accepts; openssl cms -sign with the engine, attached and detached, RSA and EC, verified by openssl cms -verify against the test CA"
    );
}

#[test]
fn engine_dgst_sign_with_uris_and_pin_sources() {
    require!("openssl", "pkcs11-tool");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "ossldgst");
    let msg = pki.p("msg.txt");
    let pin_file = f.path("pin-only.txt");
    std::fs::write(&pin_file, USER_PIN).unwrap();

    // (URI, public key, extra signing options, name)
    let by_id = format!("pkcs11:token=ossldgst;id=%{};type=private", RSA.id);
    let cases: Vec<(String, &str, Vec<&str>, &str)> = vec![
        // RSA PKCS#1 v1.5 by ID, PIN in the URI.
        (
            format!("{by_id};pin-value={USER_PIN}"),
            RSA.label,
            vec![],
            "rsa-pkcs1",
        ),
        // RSA-PSS by label, PIN in the URI.
        (
            pki.engine_key(RSA.label),
            RSA.label,
            vec![
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
            "rsa-pss",
        ),
        // ECDSA by label, PIN from a file.
        (
            pki.uri(
                EC.label,
                "private",
                &format!(";pin-source=file:{}", pin_file.display()),
            ),
            EC.label,
            vec![],
            "ecdsa",
        ),
    ];
    for (uri, label, opts, name) in cases {
        let sig = pki.p(&format!("{name}.sig"));
        let mut args = vec!["dgst", "-sha256", "-sign", &uri];
        args.extend_from_slice(&opts);
        args.extend_from_slice(&["-out", &sig, &msg]);
        pki.openssl(&with_engine(&args));
        let public = pki.cert_pubkey(label);
        let mut args = vec!["dgst", "-sha256", "-verify", &public, "-signature", &sig];
        args.extend_from_slice(&opts);
        args.push(&msg);
        let out = pki.openssl(&args);
        assert!(out.contains("Verified OK"), "{name}: {out}");
    }

    // A wrong PIN is refused, counted by the token (CKF_USER_PIN_COUNT_LOW, seen from this
    // process), and the next good login resets the counter.
    let out = pki.try_run_for(
        60,
        "openssl",
        &with_engine(&[
            "dgst",
            "-sha256",
            "-sign",
            &pki.uri(EC.label, "private", ";pin-value=0000"),
            "-out",
            &pki.p("bad.sig"),
            &msg,
        ]),
    );
    assert!(!out.status.success(), "{}", klyuch_tests::text(&out));
    let count_low = || {
        let p11 = f.p11();
        let slot = p11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| p11.get_token_info(*s).unwrap().label() == "ossldgst")
            .expect("token");
        p11.get_token_info(slot).unwrap().user_pin_count_low()
    };
    assert!(count_low(), "the wrong PIN was not counted");
    pki.openssl(&with_engine(&[
        "dgst",
        "-sha256",
        "-sign",
        &pki.engine_key(EC.label),
        "-out",
        &pki.p("good.sig"),
        &msg,
    ]));
    assert!(!count_low(), "a good login did not reset the counter");
    println!(
        "checked: openssl dgst -sign through the engine: RSA PKCS#1 v1.5 by id=%01 (PIN in the URI), RSA-PSS by object= label, ECDSA with pin-source=file:, each verified with the certificate key; a wrong PIN fails and is counted (CKF_USER_PIN_COUNT_LOW), a good login resets it"
    );
}

#[test]
fn s_client_authenticates_with_token_keys() {
    require!("openssl", "pkcs11-tool");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "osslcli");
    let server = TlsServer::start(&pki, "s_server.log");
    let connect = format!("127.0.0.1:{}", server.port);
    for (k, tls) in [(RSA, "-tls1_3"), (RSA, "-tls1_2"), (EC, "-tls1_3")] {
        let key = pki.engine_key(k.label);
        let out = pki
            .command(
                "timeout",
                &[
                    "-k",
                    "5",
                    "30",
                    "openssl",
                    "s_client",
                    "-engine",
                    "pkcs11",
                    "-keyform",
                    "engine",
                    "-connect",
                    &connect,
                    tls,
                    "-CAfile",
                    &pki.p("ca.pem"),
                    "-verify_return_error",
                    "-key",
                    &key,
                    "-cert",
                    &pki.p(&format!("{}.pem", k.label)),
                    "-ign_eof",
                ],
            )
            .stdin(std::fs::File::open(write_request(&f)).unwrap())
            .output()
            .unwrap();
        let text = klyuch_tests::text(&out);
        assert!(
            out.status.success() && text.contains(&format!("Subject: O=Klyuch Test, CN={}", k.cn)),
            "{} {tls}: {}\n{text}\nserver:\n{}",
            k.label,
            out.status,
            server.log_text()
        );
    }
    assert!(server.saw_client(RSA.cn) && server.saw_client(EC.cn));
    println!(
        "checked: openssl s_client client authentication with engine keys (RSA TLS 1.3 and 1.2, EC TLS 1.3): s_server -Verify 1 saw both token certificates"
    );
}

fn write_request(f: &Fixture) -> std::path::PathBuf {
    let p = f.path("request.txt");
    std::fs::write(&p, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    p
}

#[test]
fn curl_authenticates_with_token_keys() {
    require!("openssl", "pkcs11-tool", "curl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "osslcurl");
    let server = TlsServer::start(&pki, "s_server.log");
    // RSA: key on the token, certificate from a file. EC: both from the token.
    let rsa_key = pki.engine_key(RSA.label);
    let rsa_cert = pki.p("rsakey.pem");
    let ec_key = pki.engine_key(EC.label);
    let ec_cert = pki.uri(EC.label, "cert", &format!(";pin-value={USER_PIN}"));
    let cases: [(&str, Vec<&str>); 2] = [
        (RSA.cn, vec!["--cert", &rsa_cert, "--key", &rsa_key]),
        (
            EC.cn,
            vec!["--cert-type", "ENG", "--cert", &ec_cert, "--key", &ec_key],
        ),
    ];
    let ca = pki.p("ca.pem");
    for (cn, opts) in cases {
        let page = pki.p("page.html");
        let mut args = vec![
            "-sS",
            "--cacert",
            &ca,
            "--engine",
            "pkcs11",
            "--key-type",
            "ENG",
        ];
        args.extend_from_slice(&opts);
        // Write the page to a file: curl fails with "(23) Failed writing body" into a closed pipe.
        let url = server.url("/");
        args.extend_from_slice(&["-o", &page, &url]);
        pki.run_for(30, "curl", &args);
        let html = String::from_utf8_lossy(&std::fs::read(&page).unwrap()).into_owned();
        assert!(
            html.contains(&format!("Subject: O=Klyuch Test, CN={cn}")),
            "{cn}: {html}"
        );
        assert!(server.saw_client(cn), "{}", server.log_text());
    }
    println!(
        "checked: curl --engine pkcs11 --key-type ENG: RSA key from a pkcs11: URI with a file certificate, EC key and certificate both from pkcs11: URIs; s_server -Verify 1 echoed both subjects"
    );
}
