//! `klyuch keygen`, `klyuch csr` and `klyuch import` of the issued certificate, end to end through
//! the built module: every key type is generated on the soft token, signs a PKCS#10 request that
//! OpenSSL verifies (with the GOST engine for GOST keys), RSA and EC keys also sign through
//! pkcs11-tool with `openssl dgst -verify` against the public key keygen printed, and a
//! certificate issued by a test CA lands next to its key.

mod cli_common;
use cli_common::{fails, issue, make_ca, ok, tool, uri_id};
use klyuch_tests::{require, Fixture, USER_PIN};

/// A subject with every attribute of a Russian qualified certificate request.
const SUBJECT: &str = "/C=RU/ST=77 Москва/L=Москва/O=ООО Ромашка/OU=Отдел/T=Директор/SN=Петров\
                       /G=Иван Сергеевич/CN=Петров Иван Сергеевич/SNILS=12345678901\
                       /INN=123456789012/INNLE=1234567890/OGRN=1234567890123\
                       /OGRNIP=123456789012345/E=ivan@example.ru";

fn openssl_req(f: &Fixture, gost: bool, args: &[&str]) -> String {
    let mut all = vec!["req"];
    if gost {
        all.extend(["-engine", "gost"]);
    }
    all.extend_from_slice(args);
    tool(f, "openssl", &all)
}

/// The public key PEM without line-ending differences.
fn pem_lines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in s
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY"))
    {
        out.push(l.to_string());
        if l.starts_with("-----END PUBLIC KEY") {
            break;
        }
    }
    out
}

#[test]
fn keygen_each_type_signs_a_request_openssl_verifies() {
    require!("openssl", "pkcs11-tool");
    let bin = require_klyuch!();
    let gost = cli_common::have_gost_engine();
    if !gost {
        eprintln!("note: no OpenSSL GOST engine; the GOST key types are skipped");
    }
    let f = Fixture::new();
    f.init_token("kg");
    std::fs::write(f.path("msg.txt"), b"the document to sign").unwrap();
    let types = [
        ("rsa:2048", "01", false),
        ("ec:p256", "02", false),
        ("ec:p384", "03", false),
        ("ec:p521", "04", false),
        ("ed25519", "05", false),
        ("gost2012-256", "06", true),
        ("gost2012-256:TCB", "07", true),
        ("gost2012-256:XA", "08", true),
        ("gost2012-512", "09", true),
        ("gost2012-512:C", "0a", true),
    ];
    for (ty, id, is_gost) in types {
        if is_gost && !gost {
            continue;
        }
        let pub_pem = format!("pub-{id}.pem");
        let out = ok(
            &f,
            &bin,
            &[
                "--token", "kg", "keygen", "--type", ty, "--id", id, "--label", ty, "-o", &pub_pem,
                "--pin", USER_PIN,
            ],
        );
        assert!(out.contains(&format!("CKA_ID: {id}")), "{out}");
        assert!(out.contains("-----BEGIN PUBLIC KEY-----"), "{out}");
        let printed = pem_lines(&out);
        let written = std::fs::read_to_string(f.path(&pub_pem)).unwrap();
        assert_eq!(printed, pem_lines(&written), "{ty}");

        // a request signed by the new key; OpenSSL checks it and sees the same public key
        let uri = format!("pkcs11:token=kg;id={}", uri_id(id));
        ok(
            &f,
            &bin,
            &[
                "csr",
                "--key",
                &uri,
                "--subject",
                SUBJECT,
                "--pin",
                USER_PIN,
                "-o",
                "r.csr",
            ],
        );
        let v = openssl_req(&f, is_gost, &["-in", "r.csr", "-verify", "-noout"]);
        assert!(v.contains("verify OK"), "{ty}: {v}");
        let k = openssl_req(&f, is_gost, &["-in", "r.csr", "-pubkey", "-noout"]);
        assert_eq!(
            pem_lines(&k),
            printed,
            "{ty}: the request carries another key"
        );
    }

    // the last request: every attribute by its OID and string type, and the key usage
    let t = openssl_req(&f, gost, &["-in", "r.csr", "-text", "-noout"]);
    for want in [
        "SNILS = 12345678901",
        "INN = 123456789012",
        "1.2.643.100.4 = 1234567890",
        "OGRN = 1234567890123",
        "OGRNIP = 123456789012345",
        "C = RU",
        "Key Usage: critical",
        "Digital Signature, Non Repudiation",
    ] {
        assert!(t.contains(want), "no {want:?} in\n{t}");
    }
    let asn1 = tool(&f, "openssl", &["asn1parse", "-in", "r.csr"]);
    assert_eq!(asn1.matches("NUMERICSTRING").count(), 5, "{asn1}");
    let line_with = |a: &str, b: &str| asn1.lines().any(|l| l.contains(a) && l.contains(b));
    assert!(line_with("PRINTABLESTRING", ":RU"), "{asn1}");
    assert!(line_with("IA5STRING", ":ivan@example.ru"), "{asn1}");

    // RSA and EC keys sign through pkcs11-tool; OpenSSL verifies with keygen's public key
    for (id, mech, extra) in [
        ("01", "SHA256-RSA-PKCS", None),
        ("02", "ECDSA-SHA256", Some("openssl")),
    ] {
        let m = klyuch_tests::module_path();
        let mut args = vec![
            "--module",
            m.to_str().unwrap(),
            "--token-label",
            "kg",
            "--login",
            "--pin",
            USER_PIN,
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
        if let Some(fmt) = extra {
            args.extend(["--signature-format", fmt]);
        }
        f.run("pkcs11-tool", &args);
        let pub_pem = format!("pub-{id}.pem");
        let v = tool(
            &f,
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-verify",
                &pub_pem,
                "-signature",
                "sig.bin",
                "msg.txt",
            ],
        );
        assert!(v.contains("Verified OK"), "{mech}: {v}");
    }

    // without --id: the OpenSC-style ID (SHA-1 of the public key, 20 bytes)
    let out = ok(
        &f,
        &bin,
        &[
            "--token", "kg", "keygen", "--type", "ec:p256", "--pin", USER_PIN,
        ],
    );
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("CKA_ID: "))
        .expect("CKA_ID line")
        .to_string();
    assert_eq!(id.len(), 40, "{out}");
    let objs = ok(
        &f,
        &bin,
        &[
            "--token", "kg", "objects", "--login", "--json", "--pin", USER_PIN,
        ],
    );
    assert_eq!(
        objs.matches(&format!("\"id\": \"{id}\"")).count(),
        2,
        "{objs}"
    );

    // bad input: clear words, nothing made
    fails(
        &f,
        &bin,
        &[
            "--token", "kg", "keygen", "--type", "rsa:1024", "--pin", USER_PIN,
        ],
        2,
        "2048 to 4096",
    );
    fails(
        &f,
        &bin,
        &[
            "--token",
            "kg",
            "keygen",
            "--type",
            "gost2012-512:TCA",
            "--pin",
            USER_PIN,
        ],
        2,
        "parameter sets: A, B, C",
    );
    fails(
        &f,
        &bin,
        &[
            "--token", "kg", "keygen", "--type", "ec:p256", "--id", "01", "--pin", USER_PIN,
        ],
        1,
        "already has a key with ID 01",
    );
    fails(
        &f,
        &bin,
        &[
            "csr",
            "--key",
            "pkcs11:token=kg;id=%77",
            "--subject",
            "/CN=x",
            "--pin",
            USER_PIN,
        ],
        1,
        "no private key with ID 77",
    );
    fails(
        &f,
        &bin,
        &[
            "--token",
            "kg",
            "csr",
            "--id",
            "01",
            "--subject",
            "/SNILS=123-456",
            "--pin",
            USER_PIN,
        ],
        2,
        "SNILS is exactly 11 digits",
    );
}

#[test]
fn issued_certificate_lands_next_to_its_key() {
    require!("openssl");
    let bin = require_klyuch!();
    let gost = cli_common::have_gost_engine();
    let f = Fixture::new();
    f.init_token("iss");
    make_ca(&f);
    // keys with IDs that are not the public key's SHA-1, as a vendor tool would give them
    let mut keys = vec![("ec:p256", "0a", false), ("rsa:2048", "0b", false)];
    if gost {
        keys.push(("gost2012-256", "0c", true));
        keys.push(("gost2012-512", "0d", true));
    }
    for (ty, id, is_gost) in &keys {
        ok(
            &f,
            &bin,
            &[
                "--token", "iss", "keygen", "--type", ty, "--id", id, "--label", "signer", "--pin",
                USER_PIN,
            ],
        );
        ok(
            &f,
            &bin,
            &[
                "--token",
                "iss",
                "csr",
                "--id",
                id,
                "--subject",
                &format!("/C=RU/CN=Key {id}/SNILS=12345678901"),
                "--pin",
                USER_PIN,
                "-o",
                "r.csr",
            ],
        );
        let cert = format!("cert-{id}.pem");
        issue(&f, "r.csr", &cert, "365", *is_gost);
        // no --id: the certificate finds its key by the public key
        let out = ok(
            &f,
            &bin,
            &["--token", "iss", "import", &cert, "--pin", USER_PIN],
        );
        assert!(
            out.contains(&format!("Imported cert \"signer\" id {id}")),
            "{ty}: {out}"
        );
    }
    let objs = ok(
        &f,
        &bin,
        &[
            "--token", "iss", "objects", "--login", "--json", "--pin", USER_PIN,
        ],
    );
    for (_, id, _) in &keys {
        let n = objs.matches(&format!("\"id\": \"{id}\"")).count();
        assert_eq!(
            n, 3,
            "key {id}: private, public and certificate share the ID\n{objs}"
        );
    }
    // the same certificate again is refused, in words
    fails(
        &f,
        &bin,
        &["--token", "iss", "import", "cert-0a.pem", "--pin", USER_PIN],
        1,
        "already has a cert with ID 0a",
    );
}

/// The same commands through another vendor's module: SoftHSMv2 (no GOST; ECDSA only as
/// CKM_ECDSA, so `csr` hashes on the host).
#[test]
fn keygen_csr_import_status_with_softhsm() {
    require!("openssl");
    let bin = require_klyuch!();
    let softhsm = "/usr/lib/softhsm/libsofthsm2.so";
    if !std::path::Path::new(softhsm).exists() {
        eprintln!("SKIPPED: SoftHSMv2 is not installed");
        return;
    }
    let f = Fixture::new();
    std::fs::create_dir(f.path("softhsm")).unwrap();
    let conf = f.path("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\n",
            f.path("softhsm").display()
        ),
    )
    .unwrap();
    let k = |args: &[&str]| -> std::process::Output {
        let mut all = vec!["--module", softhsm];
        all.extend_from_slice(args);
        f.command(bin.to_str().unwrap(), &all)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap()
    };
    let must = |args: &[&str]| -> String {
        let o = k(args);
        let t = klyuch_tests::text(&o);
        assert!(o.status.success(), "klyuch {args:?}:\n{t}");
        t
    };
    must(&[
        "token",
        "init",
        "--label",
        "hsm",
        "--so-pin",
        "12345678",
        "--init-pin",
        "--pin",
        "1234",
    ]);
    make_ca(&f);
    for (ty, label) in [("ec:p256", "e"), ("rsa:2048", "r"), ("ed25519", "d")] {
        must(&[
            "--token", "hsm", "keygen", "--type", ty, "--label", label, "--pin", "1234",
        ]);
        let uri = format!("pkcs11:token=hsm;object={label}");
        must(&[
            "csr",
            "--key",
            &uri,
            "--subject",
            SUBJECT,
            "--pin",
            "1234",
            "-o",
            "h.csr",
        ]);
        let v = tool(&f, "openssl", &["req", "-in", "h.csr", "-verify", "-noout"]);
        assert!(v.contains("verify OK"), "{ty}: {v}");
    }
    // GOST 2012-256 through another module: refused in words
    let o = k(&[
        "--token",
        "hsm",
        "keygen",
        "--type",
        "gost2012-256",
        "--pin",
        "1234",
    ]);
    let t = klyuch_tests::text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("CKR_MECHANISM_INVALID") && t.contains("pkcs11-tool"),
        "{t}"
    );
    // the issued certificate lands next to the (last) key, and status counts its days
    issue(&f, "h.csr", "h.pem", "20", false);
    let out = must(&["--token", "hsm", "import", "h.pem", "--pin", "1234"]);
    assert!(out.contains("Imported cert \"d\""), "{out}");
    let st = must(&["--token", "hsm", "status"]);
    assert!(st.contains("(20 days left)"), "{st}");
    assert!(st.contains("warning: expires in 20 days"), "{st}");
}
