//! NSS with a Klyuch token: certutil/modutil list its certificates and keys, cmsutil signs with
//! its keys (OpenSSL verifies), pdfsig signs a PDF (a token-less NSS database verifies) and exits
//! cleanly — SoftHSMv2 crashes in `C_CloseAllSessions` when NSS shuts down at exit.

use klyuch_tests::interop::{Pki, EC, RSA};
use klyuch_tests::{require, Fixture};
use std::process::Output;

#[test]
fn certutil_and_modutil_list_the_token() {
    require!("certutil", "modutil", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "nsslist");
    let db = pki.nss_db(&f.path("nssdb"), true);
    let pin = pki.p("pin.txt");

    let list = pki.run_for(60, "modutil", &["-dbdir", &db, "-list"]);
    assert!(
        list.contains("klyuch") && list.contains(&pki.module()) && list.contains("nsslist"),
        "{list}"
    );

    // Certificates: the token's as TOKEN:LABEL, with user trust where NSS sees the key.
    let certs = pki.run_for(60, "certutil", &["-L", "-d", &db, "-h", "all", "-f", &pin]);
    for k in [RSA, EC] {
        let line = certs
            .lines()
            .find(|l| l.starts_with(&format!("nsslist:{} ", k.label)))
            .unwrap_or_else(|| panic!("no nsslist:{} in\n{certs}", k.label));
        assert!(line.trim_end().ends_with("u,u,u"), "{line}");
    }
    assert!(certs.contains("nsslist:Klyuch Test CA"), "{certs}");

    // Keys: type, CKA_ID and label.
    let keys = pki.run_for(
        60,
        "certutil",
        &["-K", "-d", &db, "-h", "nsslist", "-f", &pin],
    );
    let has = |kind: &str, k: klyuch_tests::interop::Key| {
        keys.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 4 && w[2] == kind && w[3] == k.id && w.last() == Some(&k.label)
        })
    };
    assert!(has("rsa", RSA) && has("ec", EC), "{keys}");

    // One certificate in detail, read from the token (without -h TOKEN, certutil -L -n does not
    // look into the token's slot: the same with SoftHSMv2).
    let one = pki.run_for(
        60,
        "certutil",
        &[
            "-L",
            "-d",
            &db,
            "-h",
            "nsslist",
            "-n",
            "nsslist:eckey",
            "-f",
            &pin,
        ],
    );
    assert!(one.contains("CN=Klyuch EC Signer"), "{one}");
    println!(
        "checked: modutil -add + -list shows Klyuch with its token; certutil -L -h all lists TOKEN:rsakey and TOKEN:eckey (u,u,u) and the CA certificate; certutil -K lists the RSA and EC keys by ID and label; certutil -L -n reads a certificate from the token"
    );
}

#[test]
fn cmsutil_signs_and_openssl_verifies() {
    require!("certutil", "modutil", "cmsutil", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "nsscms");
    let db = pki.nss_db(&f.path("nssdb"), true);
    for k in [RSA, EC] {
        let sig = pki.p(&format!("msg-{}.p7s", k.label));
        // -Y NONE: no S/MIME encryption-key preference attribute (it needs a key-encipherment
        // certificate); -G: a signing time.
        pki.run_for(
            60,
            "cmsutil",
            &[
                "-S",
                "-d",
                &db,
                "-N",
                &format!("nsscms:{}", k.label),
                "-Y",
                "NONE",
                "-G",
                "-f",
                &pki.p("pin.txt"),
                "-i",
                &pki.p("msg.txt"),
                "-o",
                &sig,
            ],
        );
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
        // And NSS's own decoder agrees.
        let dec = pki.run_for(60, "cmsutil", &["-D", "-d", &db, "-i", &sig, "-h", "1"]);
        assert!(
            dec.contains("signer0.status=GoodSignature") && dec.contains(k.cn),
            "{dec}"
        );
    }
    println!(
        "checked: cmsutil -S signed with the token RSA and EC keys; openssl cms -verify accepted both against the test CA (content unchanged) and cmsutil -D reports GoodSignature"
    );
}

/// A tiny valid one-page PDF (catalog, pages, page, content stream, xref table).
fn tiny_pdf() -> Vec<u8> {
    let content = b"BT /F1 12 Tf 20 100 Td (Klyuch) Tj ET";
    let mut objs: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>".to_vec(),
    ];
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    objs.push(stream);
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// `pdfsig -add-signature` of a one-page PDF (`doc.pdf` → `doc-signed.pdf`) with the token key
/// `nick` through the NSS database `db`, with Klyuch's debug log on: pdfsig's output and the
/// module calls it made.
fn pdfsig_sign(f: &Fixture, pki: &Pki<'_>, db: &str, nick: &str) -> (Output, String) {
    std::fs::write(f.path("doc.pdf"), tiny_pdf()).unwrap();
    let log = f.path("klyuch.log");
    let out = pki
        .command(
            "timeout",
            &[
                "-k",
                "5",
                "60",
                "pdfsig",
                "-nssdir",
                db,
                "-nss-pwd",
                klyuch_tests::USER_PIN,
                "-add-signature",
                "-nick",
                nick,
                "-reason",
                "Klyuch test",
                &pki.p("doc.pdf"),
                &pki.p("doc-signed.pdf"),
            ],
        )
        .env("KLYUCH_LOG", "debug")
        .env("KLYUCH_LOG_FILE", &log)
        .output()
        .unwrap();
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

/// pdfsig (poppler, NSS) signs with the token's RSA key and must exit 0: poppler shuts NSS down
/// from an atexit handler, which closes every session of the module at process exit (SoftHSMv2
/// crashes there with SIGSEGV, exit 139). A database without the module verifies the result.
#[test]
fn pdfsig_signs_with_the_token_and_exits_cleanly() {
    require!("pdfsig", "certutil", "modutil", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "nsspdf");
    let db = pki.nss_db(&f.path("nssdb"), true);
    let (out, calls) = pdfsig_sign(&f, &pki, &db, "nsspdf:rsakey");
    assert!(
        out.status.success(),
        "pdfsig: {} (SoftHSM: 139 at exit)\n{}\nlast calls:\n{}",
        out.status,
        klyuch_tests::text(&out),
        calls.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    // The exit path really ran: NSS closed the module's sessions at exit, and Klyuch said OK.
    assert!(calls.contains("C_Sign -> CKR_OK"), "{calls}");
    let last = calls.lines().last().unwrap_or_default();
    assert!(
        last.contains("C_CloseAllSessions -> CKR_OK") || last.contains("C_Finalize -> CKR_OK"),
        "last call: {last}"
    );

    let verify_db = pki.nss_db(&f.path("verifydb"), false);
    let v = pki.run_for(
        60,
        "pdfsig",
        &["-nssdir", &verify_db, &pki.p("doc-signed.pdf")],
    );
    assert!(
        v.contains("Signer Certificate Common Name: Klyuch RSA Signer")
            && v.contains("Signature Validation: Signature is Valid.")
            && v.contains("Certificate Validation: Certificate is Trusted."),
        "{v}"
    );
    println!(
        "checked: pdfsig -add-signature signed a PDF with the token RSA key and exited 0 (NSS closed the sessions at exit: C_CloseAllSessions/C_Finalize -> CKR_OK); a token-less NSS database reports Signature is Valid and Certificate is Trusted"
    );
}

/// NSS as the token's manager: certutil generates keys on the token with NSS's own templates
/// (it sets CKA_ID to a hash of the public key afterwards) and stores the issued certificate
/// next to the key, pk12util imports a PKCS#12 file into the token, cmsutil signs with both
/// keys, modutil changes the PIN (C_SetPIN) and certutil deletes a certificate and a key.
#[test]
fn certutil_pk12util_and_modutil_manage_the_token() {
    require!(
        "certutil",
        "modutil",
        "cmsutil",
        "pk12util",
        "pkcs11-tool",
        "openssl"
    );
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "nssmgr");
    let db = pki.nss_db(&f.path("nssdb"), true);
    let pin = pki.p("pin.txt");
    std::fs::write(f.path("noise.bin"), [7u8; 64]).unwrap();

    // A P-256 key generated on the token by NSS, its CSR, the certificate stored by NSS.
    pki.run_for(
        60,
        "certutil",
        &[
            "-R",
            "-d",
            &db,
            "-h",
            "nssmgr",
            "-f",
            &pin,
            "-k",
            "ec",
            "-q",
            "nistp256",
            "-s",
            "O=Klyuch Test,CN=NSS Generated",
            "-z",
            &pki.p("noise.bin"),
            "-a",
            "-o",
            &pki.p("nssgen.csr"),
        ],
    );
    let v = pki.openssl(&["req", "-in", &pki.p("nssgen.csr"), "-verify", "-noout"]);
    assert!(v.contains("verify OK"), "{v}");
    pki.openssl(&[
        "x509",
        "-req",
        "-in",
        &pki.p("nssgen.csr"),
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
        &pki.p("nssgen.pem"),
    ]);
    pki.run_for(
        60,
        "certutil",
        &[
            "-A",
            "-d",
            &db,
            "-h",
            "nssmgr",
            "-f",
            &pin,
            "-n",
            "nssgen",
            "-t",
            ",,",
            "-a",
            "-i",
            &pki.p("nssgen.pem"),
        ],
    );

    // A PKCS#12 file (an EC key and its certificate) imported into the token.
    pki.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &pki.p("p12.key"),
        "-subj",
        "/O=Klyuch Test/CN=PKCS12 Imported",
        "-out",
        &pki.p("p12.csr"),
    ]);
    pki.openssl(&[
        "x509",
        "-req",
        "-in",
        &pki.p("p12.csr"),
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
        &pki.p("p12.pem"),
    ]);
    pki.openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        &pki.p("p12.key"),
        "-in",
        &pki.p("p12.pem"),
        "-name",
        "imported",
        "-passout",
        "pass:test",
        "-out",
        &pki.p("k.p12"),
    ]);
    let out = pki.run_for(
        60,
        "pk12util",
        &[
            "-i",
            &pki.p("k.p12"),
            "-d",
            &db,
            "-h",
            "nssmgr",
            "-k",
            &pin,
            "-W",
            "test",
        ],
    );
    assert!(out.contains("PKCS12 IMPORT SUCCESSFUL"), "{out}");

    let keys = pki.run_for(
        60,
        "certutil",
        &["-K", "-d", &db, "-h", "nssmgr", "-f", &pin],
    );
    assert!(
        keys.contains("nssmgr:nssgen") || keys.contains(" nssgen"),
        "{keys}"
    );
    assert!(keys.contains("imported"), "{keys}");

    // Both keys sign; OpenSSL verifies. (-G: with signed attributes. Without any, NSS 3.87's
    // ECDSA SignerInfo does not verify, not even with cmsutil -D, whatever the token: the same
    // with SoftHSMv2.)
    for (nick, cn) in [
        ("nssmgr:nssgen", "NSS Generated"),
        ("nssmgr:imported", "PKCS12 Imported"),
    ] {
        let sig = pki.p("m.p7s");
        pki.run_for(
            60,
            "cmsutil",
            &[
                "-S",
                "-d",
                &db,
                "-N",
                nick,
                "-Y",
                "NONE",
                "-G",
                "-f",
                &pin,
                "-i",
                &pki.p("msg.txt"),
                "-o",
                &sig,
            ],
        );
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
            "/dev/null",
            "-certsout",
            &pki.p("signer.pem"),
        ]);
        assert!(out.contains("CMS Verification successful"), "{nick}: {out}");
        let subject = pki.openssl(&["x509", "-in", &pki.p("signer.pem"), "-noout", "-subject"]);
        assert!(subject.contains(cn), "{nick}: {subject}");
    }

    // C_SetPIN through modutil, and back.
    std::fs::write(f.path("newpin.txt"), "98765432\n").unwrap();
    let out = pki.run_for(
        60,
        "modutil",
        &[
            "-dbdir",
            &db,
            "-changepw",
            "nssmgr",
            "-pwfile",
            &pin,
            "-newpwfile",
            &pki.p("newpin.txt"),
            "-force",
        ],
    );
    assert!(out.contains("password changed successfully"), "{out}");
    pki.run_for(
        60,
        "certutil",
        &["-K", "-d", &db, "-h", "nssmgr", "-f", &pki.p("newpin.txt")],
    );
    pki.run_for(
        60,
        "modutil",
        &[
            "-dbdir",
            &db,
            "-changepw",
            "nssmgr",
            "-pwfile",
            &pki.p("newpin.txt"),
            "-newpwfile",
            &pin,
            "-force",
        ],
    );

    // Delete the imported certificate, then its key (by the key ID certutil -K shows; pk12util
    // gave the key the nickname as its label too).
    pki.run_for(
        60,
        "certutil",
        &["-D", "-d", &db, "-n", "nssmgr:imported", "-f", &pin],
    );
    let certs = pki.run_for(
        60,
        "certutil",
        &["-L", "-d", &db, "-h", "nssmgr", "-f", &pin],
    );
    assert!(!certs.contains("nssmgr:imported"), "{certs}");
    let keys = pki.run_for(
        60,
        "certutil",
        &["-K", "-d", &db, "-h", "nssmgr", "-f", &pin],
    );
    let id = keys
        .lines()
        .find(|l| l.trim_end().ends_with("imported"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("the imported key:\n{keys}"))
        .to_string();
    pki.run_for(
        60,
        "certutil",
        &["-F", "-d", &db, "-h", "nssmgr", "-k", &id, "-f", &pin],
    );
    let keys = pki.run_for(
        60,
        "certutil",
        &["-K", "-d", &db, "-h", "nssmgr", "-f", &pin],
    );
    assert!(!keys.contains(&id), "{keys}");
    assert!(
        keys.contains("nssmgr:nssgen") && keys.contains("rsakey"),
        "{keys}"
    );
    println!(
        "checked: certutil -R generated an EC key on the token and its CSR verifies; certutil -A stored the certificate; pk12util imported a PKCS#12 into the token; cmsutil signed with both keys (OpenSSL verifies); modutil -changepw changed the PIN and back; certutil -D/-F deleted a certificate and a key"
    );
}

/// pdfsig with the token's EC P-256 key, "where poppler supports it": poppler 22.12 (Debian 12)
/// cannot make ECDSA signatures with any token (with SoftHSMv2 too: "signDocument: unable
/// update signature", interop.md §2.3). When pdfsig signs, a token-less database must report the
/// signature valid; when this poppler refuses, the test checks that the refusal is poppler's
/// (Klyuch signed: `C_Sign -> CKR_OK`), that pdfsig still exits normally (no crash at NSS
/// shutdown) and says which poppler it was.
#[test]
fn pdfsig_with_an_ec_key_where_poppler_supports_it() {
    require!("pdfsig", "certutil", "modutil", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "nsspdfec");
    let db = pki.nss_db(&f.path("nssdb"), true);
    let (out, calls) = pdfsig_sign(&f, &pki, &db, "nsspdfec:eckey");
    let t = klyuch_tests::text(&out);
    // Killed by a signal (no exit code) or by timeout (124/137) is a failure either way.
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(1) | Some(2) | Some(3)),
        "pdfsig: {} \n{t}\nlast calls:\n{}",
        out.status,
        calls.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    assert!(
        calls.contains("C_Sign -> CKR_OK") || calls.contains("C_SignFinal -> CKR_OK"),
        "{calls}"
    );
    let version = pki.try_run_for(10, "pdfsig", &["-v"]);
    let version = klyuch_tests::text(&version)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if code == Some(0) {
        let verify_db = pki.nss_db(&f.path("verifydb"), false);
        let v = pki.run_for(
            60,
            "pdfsig",
            &["-nssdir", &verify_db, &pki.p("doc-signed.pdf")],
        );
        assert!(
            v.contains("Signer Certificate Common Name: Klyuch EC Signer")
                && v.contains("Signature Validation: Signature is Valid."),
            "{v}"
        );
        println!("checked: {version} signed a PDF with the token's EC key and exited 0; a token-less NSS database reports the signature valid");
    } else {
        assert!(
            t.contains("unable update signature"),
            "pdfsig failed otherwise than poppler's known EC limitation:\n{t}"
        );
        println!(
            "checked: {version} does not support EC signing (\"unable update signature\", the same with SoftHSMv2); Klyuch answered C_Sign with CKR_OK and pdfsig exited normally ({})",
            out.status
        );
    }
}
