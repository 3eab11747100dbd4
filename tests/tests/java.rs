//! Java 17 SunPKCS11 with Klyuch: `keytool -list` shows the token's keys as private key entries,
//! `jarsigner` signs a jar with the RSA and the EC token key, and `jarsigner -verify` accepts
//! both against the test CA. keytool also generates a key pair on the token with SunPKCS11's
//! templates, makes a CSR with it, and installs the CA's reply on the token. An XML signature
//! made by the JDK's XMLDSig API with the token keys (`tests/java/SignXml.java`) is accepted by
//! `xmlsec1 verify` (xmlsec1 cannot sign with a token key itself: interop.md §7).

use klyuch_tests::interop::{Pki, EC, RSA};
use klyuch_tests::{require, Fixture, USER_PIN};

/// A SunPKCS11 configuration for the token `label` (SunPKCS11 picks a slot by `slot`, the slot
/// ID, or `slotListIndex`, not by token label).
fn java_config(f: &Fixture, pki: &Pki<'_>, label: &str) -> String {
    let p11 = f.p11();
    let slot = p11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p11.get_token_info(*s).unwrap().label() == label)
        .expect("token slot");
    let cfg = f.path("pkcs11-java.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = Klyuch\nlibrary = {}\nslot = {}\n",
            pki.module(),
            slot.id()
        ),
    )
    .unwrap();
    cfg.display().to_string()
}

#[test]
fn keytool_lists_and_jarsigner_signs_with_token_keys() {
    require!("keytool", "jarsigner", "jar", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "javatoken");
    let cfg = java_config(&f, &pki, "javatoken");
    let p11_opts = [
        "-keystore",
        "NONE",
        "-storetype",
        "PKCS11",
        "-providerClass",
        "sun.security.pkcs11.SunPKCS11",
        "-providerArg",
        &cfg,
        "-storepass",
        USER_PIN,
    ];

    let list = pki.run_for(120, "keytool", &[&["-list"], &p11_opts[..]].concat());
    assert!(
        list.contains("Keystore provider: SunPKCS11-Klyuch"),
        "{list}"
    );
    for k in [RSA, EC] {
        assert!(
            list.contains(&format!("{}, PrivateKeyEntry", k.label)),
            "{list}"
        );
    }

    std::fs::create_dir_all(f.path("jarsrc")).unwrap();
    std::fs::write(f.path("jarsrc/hello.txt"), b"hello from a signed jar\n").unwrap();
    pki.run_for(
        120,
        "jar",
        &[
            "cf",
            &pki.p("test.jar"),
            "-C",
            &pki.p("jarsrc"),
            "hello.txt",
        ],
    );
    pki.run_for(
        120,
        "keytool",
        &[
            "-importcert",
            "-keystore",
            &pki.p("trust.p12"),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
            "-alias",
            "klyuch-test-ca",
            "-file",
            &pki.p("ca.pem"),
            "-noprompt",
        ],
    );
    // A key pair generated on the token by keytool, its CSR, the CA's reply installed.
    let out = pki.run_for(
        120,
        "keytool",
        &[
            &["-genkeypair"],
            &p11_opts[..],
            &[
                "-alias",
                "javagen",
                "-keyalg",
                "EC",
                "-groupname",
                "secp256r1",
                "-sigalg",
                "SHA256withECDSA",
                "-dname",
                "O=Klyuch Test,CN=Java Generated",
            ],
        ]
        .concat(),
    );
    assert!(out.contains("Generating 256 bit EC key pair"), "{out}");
    pki.run_for(
        120,
        "keytool",
        &[
            &["-certreq"],
            &p11_opts[..],
            &["-alias", "javagen", "-file", &pki.p("javagen.csr")],
        ]
        .concat(),
    );
    let v = pki.openssl(&["req", "-in", &pki.p("javagen.csr"), "-verify", "-noout"]);
    assert!(v.contains("verify OK"), "{v}");
    pki.openssl(&[
        "x509",
        "-req",
        "-in",
        &pki.p("javagen.csr"),
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
        &pki.p("javagen.pem"),
    ]);
    let chain = [
        std::fs::read_to_string(f.path("javagen.pem")).unwrap(),
        std::fs::read_to_string(f.path("ca.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(f.path("javagen-chain.pem"), chain).unwrap();
    let out = pki.run_for(
        120,
        "keytool",
        &[
            &["-importcert"],
            &p11_opts[..],
            &[
                "-alias",
                "javagen",
                "-file",
                &pki.p("javagen-chain.pem"),
                "-noprompt",
            ],
        ]
        .concat(),
    );
    assert!(out.contains("Certificate reply was installed"), "{out}");

    let generated = klyuch_tests::interop::Key {
        label: "javagen",
        id: "",
        cn: "Java Generated",
    };
    for k in [RSA, EC, generated] {
        let signed = pki.p(&format!("signed-{}.jar", k.label));
        let out = pki.run_for(
            120,
            "jarsigner",
            &[
                &p11_opts[..],
                &["-signedjar", &signed, &pki.p("test.jar"), k.label],
            ]
            .concat(),
        );
        assert!(out.contains("jar signed."), "{out}");
        let out = pki.run_for(
            120,
            "jarsigner",
            &[
                "-verify",
                "-strict",
                "-verbose",
                "-certs",
                "-keystore",
                &pki.p("trust.p12"),
                "-storepass",
                "changeit",
                &signed,
            ],
        );
        assert!(
            out.contains("jar verified.") && out.contains(&format!("CN={}", k.cn)),
            "{out}"
        );
    }
    println!(
        "checked: keytool -list shows {} and {} as PrivateKeyEntry (SunPKCS11-Klyuch); keytool generated an EC key on the token, its CSR verified, the CA reply installed; jarsigner signed with {}, {} and javagen and jarsigner -verify -strict accepted each against the test CA",
        RSA.label, EC.label, RSA.label, EC.label
    );
}

/// XMLDSig from the JDK (`javax.xml.crypto.dsig`) with the token's RSA and EC keys through
/// SunPKCS11, verified by `xmlsec1 verify` against the test CA; a changed document fails.
#[test]
fn jdk_xmldsig_with_token_keys_verified_by_xmlsec1() {
    require!("java", "xmlsec1", "pkcs11-tool", "openssl");
    klyuch_tests::require_pki!();
    let f = Fixture::new();
    let pki = Pki::new(&f, "javaxml");
    let cfg = java_config(&f, &pki, "javaxml");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("java/SignXml.java");
    std::fs::write(
        f.path("doc.xml"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<invoice id=\"42\"><item>Klyuch</item><total>100.00</total></invoice>\n",
    )
    .unwrap();
    for k in [RSA, EC] {
        let signed = pki.p(&format!("doc-{}.xml", k.label));
        let out = pki.run_for(
            120,
            "java",
            &[
                &source.display().to_string(),
                &cfg,
                USER_PIN,
                k.label,
                &pki.p("doc.xml"),
                &signed,
            ],
        );
        assert!(out.contains(&format!("CN={}", k.cn)), "{out}");
        let xml = std::fs::read_to_string(&signed).unwrap();
        let method = if k.label == EC.label {
            "xmldsig-more#ecdsa-sha256"
        } else {
            "xmldsig-more#rsa-sha256"
        };
        assert!(
            xml.contains(method) && xml.contains("X509Certificate>"),
            "{xml}"
        );
        let v = pki.run_for(
            60,
            "xmlsec1",
            &[
                "verify",
                "--crypto",
                "openssl",
                "--trusted-pem",
                &pki.p("ca.pem"),
                &signed,
            ],
        );
        assert!(
            v.contains("OK") && v.contains("References (ok/all): 1/1"),
            "{v}"
        );
        // One changed character: xmlsec1 must refuse it.
        let bad = pki.p(&format!("bad-{}.xml", k.label));
        std::fs::write(&bad, xml.replace("100.00", "900.00")).unwrap();
        let out = pki.try_run_for(
            60,
            "xmlsec1",
            &[
                "verify",
                "--crypto",
                "openssl",
                "--trusted-pem",
                &pki.p("ca.pem"),
                &bad,
            ],
        );
        assert!(
            !out.status.success(),
            "a changed document verified:\n{}",
            klyuch_tests::text(&out)
        );
        println!(
            "checked: the JDK's XMLDSig signed doc.xml with the token's {} key ({method}) through SunPKCS11; xmlsec1 verify --trusted-pem ca.pem accepted it (1/1 references) and refused a copy with one changed value",
            k.label
        );
    }
}
