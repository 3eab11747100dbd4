//! `klyuch sign` / `klyuch verify` (issue 6 items 1, 2 and the signing part of 4): CMS
//! SignedData with CAdES-BES attributes made with keys on a soft token, checked by OpenSSL
//! (`openssl cms -verify`, with its GOST engine for GOST), and OpenSSL's own signatures checked
//! by `klyuch verify`. Keys are generated on the token with pkcs11-tool, certified by test CAs
//! made with OpenSSL from requests `klyuch csr` signs, and written next to their keys with
//! `klyuch import`. Tests skip (`SKIPPED:`) without openssl, pkcs11-tool, the GOST engine or the
//! `klyuch` binary (`cargo build --release -p klyuch`).

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use klyuch_tests::{module_path, require, text, Fixture, SO_PIN, USER_PIN};

const LABEL: &str = "cms";
const DOC: &[u8] = "Заявление: прошу выдать справку.\nKlyuch CMS test document\n".as_bytes();

/// End-entity certificate extensions (a signing certificate).
const EE_EXT: &str = "basicConstraints=CA:FALSE\n\
keyUsage=critical,digitalSignature,nonRepudiation\n\
subjectKeyIdentifier=hash\n\
authorityKeyIdentifier=keyid\n";

/// The `klyuch` tool next to the module (`target/<profile>/klyuch`), if built.
fn klyuch_bin() -> Option<PathBuf> {
    let m = module_path();
    let dir = m.parent()?;
    [dir.join("klyuch"), dir.parent()?.join("klyuch")]
        .into_iter()
        .find(|p| p.exists())
}

/// Is OpenSSL's GOST engine usable?
fn gost_engine() -> bool {
    std::process::Command::new("openssl")
        .args(["engine", "-t", "gost"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("available")
        })
}

macro_rules! setup {
    ($gost:expr) => {{
        require!("openssl", "pkcs11-tool");
        if $gost && !gost_engine() {
            eprintln!("SKIPPED: OpenSSL's GOST engine is not installed (libengine-gost-openssl)");
            return;
        }
        let Some(bin) = klyuch_bin() else {
            eprintln!("SKIPPED: the klyuch tool is not built (cargo build --release -p klyuch)");
            return;
        };
        let f = Fixture::new();
        T::new(f, bin)
    }};
}

struct T {
    f: Fixture,
    bin: PathBuf,
}

impl T {
    fn new(f: Fixture, bin: PathBuf) -> T {
        let t = T { f, bin };
        t.klyuch_ok(&[
            "token",
            "init",
            "--label",
            LABEL,
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--pin",
            USER_PIN,
        ]);
        std::fs::write(t.f.path("doc.txt"), DOC).unwrap();
        t
    }

    fn klyuch(&self, args: &[&str]) -> Output {
        let m = module_path();
        let mut all = vec!["--module", m.to_str().unwrap()];
        all.extend_from_slice(args);
        self.f
            .command(self.bin.to_str().unwrap(), &all)
            .output()
            .expect("klyuch")
    }

    fn klyuch_ok(&self, args: &[&str]) -> String {
        let o = self.klyuch(args);
        assert!(o.status.success(), "klyuch {args:?}: {}", text(&o));
        text(&o)
    }

    /// `klyuch ARGS` that must fail with exit status `code`; its output.
    fn klyuch_fails(&self, code: i32, args: &[&str]) -> String {
        let o = self.klyuch(args);
        assert_eq!(o.status.code(), Some(code), "klyuch {args:?}: {}", text(&o));
        text(&o)
    }

    fn openssl(&self, args: &[&str]) -> String {
        text(&self.f.run("openssl", args))
    }

    fn openssl_fails(&self, args: &[&str]) -> String {
        let o = self.f.command("openssl", args).output().unwrap();
        assert!(!o.status.success(), "openssl {args:?} succeeded");
        text(&o)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.f.path(name)
    }

    /// A key pair on the token (pkcs11-tool), e.g. `GOSTR3410-2012-256:B`, `rsa:2048`.
    fn keygen(&self, key_type: &str, id: &str) {
        self.f.pkcs11_tool(&[
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            key_type,
            "--id",
            id,
            "--label",
            &format!("key{id}"),
        ]);
    }

    /// A CA `NAME.pem`/`NAME.key`: GOST 2012-256 (engine) or RSA-2048.
    fn make_ca(&self, name: &str, gost: bool) {
        let mut args = vec!["req", "-x509", "-new", "-nodes"];
        if gost {
            args.extend(["-engine", "gost", "-newkey", "gost2012_256"]);
            args.extend(["-pkeyopt", "paramset:A"]);
        } else {
            args.extend(["-newkey", "rsa:2048"]);
        }
        let key = format!("{name}.key");
        let pem = format!("{name}.pem");
        let subj = format!("/O=Klyuch Test/CN=CMS test CA {name}");
        args.extend([
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "30",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        self.openssl(&args);
    }

    /// `klyuch csr` for key `id`: `ID.csr`.
    fn csr(&self, id: &str, cn: &str) -> String {
        let csr = format!("{id}.csr");
        self.klyuch_ok(&[
            "--token",
            LABEL,
            "csr",
            "--id",
            id,
            "--subject",
            &format!("/C=RU/O=Klyuch Test/CN={cn}"),
            "--pin",
            USER_PIN,
            "--out",
            &csr,
        ]);
        csr
    }

    /// Certify token key `id` with CA `ca` (valid for 30 days) and write the certificate to
    /// the token with the key's ID.
    fn certify(&self, id: &str, ca: &str, gost: bool) {
        let csr = self.csr(id, &format!("Signer {id}"));
        std::fs::write(self.path("ee.ext"), EE_EXT).unwrap();
        let pem = format!("{id}.pem");
        let mut args = vec!["x509", "-req"];
        if gost {
            args.extend(["-engine", "gost"]);
        }
        let ca_pem = format!("{ca}.pem");
        let ca_key = format!("{ca}.key");
        args.extend([
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ee.ext",
            "-out",
            &pem,
        ]);
        self.openssl(&args);
        self.import(id, &pem);
    }

    fn import(&self, id: &str, pem: &str) {
        self.klyuch_ok(&[
            "--token", LABEL, "import", pem, "--id", id, "--pin", USER_PIN,
        ]);
    }

    /// Certify key `id` with the RSA CA `ca` for a fixed period (`openssl ca -startdate
    /// -enddate`: OpenSSL 3.0's `x509 -req` cannot set dates).
    fn certify_dated(&self, id: &str, ca: &str, start: &str, end: &str) {
        let csr = self.csr(id, &format!("Dated {id}"));
        std::fs::create_dir_all(self.path("newcerts")).unwrap();
        std::fs::write(self.path("index.txt"), "").unwrap();
        std::fs::write(self.path("serial"), "1000\n").unwrap();
        let cnf = format!(
            "[ca]\ndefault_ca = test\n[test]\ndir = .\ndatabase = index.txt\n\
             new_certs_dir = newcerts\nserial = serial\ncertificate = {ca}.pem\n\
             private_key = {ca}.key\ndefault_md = sha256\npolicy = any\n\
             x509_extensions = ee\nunique_subject = no\n\
             [any]\ncommonName = supplied\n[ee]\n{EE_EXT}"
        );
        std::fs::write(self.path("ca.cnf"), cnf).unwrap();
        let pem = format!("{id}.pem");
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-in",
            &csr,
            "-startdate",
            start,
            "-enddate",
            end,
            "-out",
            &pem,
        ]);
        self.import(id, &pem);
    }

    fn key_uri(id: &str) -> String {
        format!("pkcs11:token={LABEL};id=%{id}")
    }

    fn sign(&self, id: &str, extra: &[&str]) -> String {
        self.klyuch_ok(&Self::sign_args(&Self::key_uri(id), extra))
    }

    /// `klyuch sign` with the key `id` that must exit with `code`; its output.
    fn sign_fails(&self, code: i32, id: &str, extra: &[&str]) -> String {
        self.klyuch_fails(code, &Self::sign_args(&Self::key_uri(id), extra))
    }

    fn sign_args<'a>(uri: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["sign", "--key", uri, "--pin", USER_PIN];
        args.extend_from_slice(extra);
        args
    }

    /// `openssl cms -verify` of a detached DER signature over doc.txt.
    fn openssl_verifies(&self, sig: &str, ca: &str, gost: bool, form: &str, attached: bool) {
        let mut args = vec!["cms", "-verify", "-binary", "-inform", form, "-in", sig];
        if !attached {
            args.extend(["-content", "doc.txt"]);
        }
        args.extend(["-CAfile", ca, "-out", "verified.txt"]);
        if gost {
            args.extend(["-engine", "gost"]);
        }
        let out = self.openssl(&args);
        assert!(out.contains("Verification successful"), "{out}");
        assert_eq!(std::fs::read(self.path("verified.txt")).unwrap(), DOC);
    }

    /// `openssl cms -cmsout -print` shows the four CAdES-BES attributes and the algorithm.
    fn openssl_shows_attributes(&self, sig: &str, gost: bool, alg: &str) {
        let mut args = vec!["cms", "-cmsout", "-print", "-inform", "DER", "-in", sig];
        if gost {
            args.extend(["-engine", "gost"]);
        }
        let out = self.openssl(&args);
        for a in [
            "contentType (1.2.840.113549.1.9.3)",
            "messageDigest (1.2.840.113549.1.9.4)",
            "signingTime (1.2.840.113549.1.9.5)",
            "signingCertificateV2 (1.2.840.113549.1.9.16.2.47)",
            "d.certificate:",
            alg,
        ] {
            assert!(out.contains(a), "no {a:?} in\n{out}");
        }
    }

    /// `klyuch verify` succeeds and says what it checked.
    fn klyuch_verifies(&self, sig: &str, ca: &str, content: Option<&str>, signer: &str) -> String {
        let mut args = vec!["verify", sig, "--ca", ca];
        if let Some(c) = content {
            args.extend(["--content", c]);
        }
        let out = self.klyuch_ok(&args);
        for w in [
            "Signature:    VALID",
            signer,
            "Signed at:",
            "valid now",
            "(trusted, ",
        ] {
            assert!(out.contains(w), "no {w:?} in\n{out}");
        }
        out
    }

    /// `klyuch verify` fails (exit 1) and says `why`.
    fn klyuch_rejects(&self, sig: &str, ca: &str, content: &str, why: &str) {
        let out = self.klyuch_fails(1, &["verify", sig, "--ca", ca, "--content", content]);
        assert!(out.contains("NOT VALID"), "{out}");
        assert!(out.contains(why), "no {why:?} in\n{out}");
    }

    /// doc.txt with one byte changed, as `changed.txt`.
    fn changed_doc(&self) -> &'static str {
        let mut d = DOC.to_vec();
        d[5] ^= 0x01;
        std::fs::write(self.path("changed.txt"), d).unwrap();
        "changed.txt"
    }
}

const CHANGED: &str = "the content was CHANGED after signing";
const OTHER_KEY: &str = "made by another key";

#[test]
fn gost_signatures_verify_with_openssl_and_klyuch() {
    let t = setup!(true);
    t.make_ca("gca", true);
    for (id, kt, alg) in [
        ("01", "GOSTR3410-2012-256:B", "1.2.643.7.1.1.1.1"),
        ("02", "GOSTR3410-2012-512:A", "1.2.643.7.1.1.1.2"),
    ] {
        t.keygen(kt, id);
        t.certify(id, "gca", true);
        let sig = format!("{id}.sig");
        let out = t.sign(id, &["doc.txt", "-o", &sig]);
        assert!(out.contains("GOST R 34.10-2012"), "{out}");
        t.openssl_verifies(&sig, "gca.pem", true, "DER", false);
        t.openssl_shows_attributes(&sig, true, alg);
        let out = t.klyuch_verifies(&sig, "gca.pem", Some("doc.txt"), &format!("Signer {id}"));
        assert!(out.contains("Streebog"), "{out}");
        assert!(out.contains("signingCertificateV2 matches"), "{out}");
        // one changed byte in the content
        let changed = t.changed_doc();
        t.klyuch_rejects(&sig, "gca.pem", changed, CHANGED);
        t.openssl_fails(&[
            "cms", "-verify", "-binary", "-inform", "DER", "-in", &sig, "-content", changed,
            "-CAfile", "gca.pem", "-engine", "gost",
        ]);
        // attached, and PEM
        let att = format!("{id}.att.sig");
        t.sign(id, &["--attached", "doc.txt", "-o", &att]);
        t.openssl_verifies(&att, "gca.pem", true, "DER", true);
        t.klyuch_verifies(&att, "gca.pem", None, &format!("Signer {id}"));
        let pem = format!("{id}.pem.sig");
        t.sign(id, &["--pem", "doc.txt", "-o", &pem]);
        assert!(std::fs::read_to_string(t.path(&pem))
            .unwrap()
            .starts_with("-----BEGIN CMS-----"));
        t.openssl_verifies(&pem, "gca.pem", true, "PEM", false);
        t.klyuch_verifies(&pem, "gca.pem", Some("doc.txt"), &format!("Signer {id}"));
    }
    // signatures made by OpenSSL's GOST engine (detached DER, and attached streamed BER)
    t.openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-engine",
        "gost",
        "-newkey",
        "gost2012_512",
        "-pkeyopt",
        "paramset:A",
        "-keyout",
        "o.key",
        "-out",
        "o.pem",
        "-days",
        "3",
        "-subj",
        "/CN=OpenSSL GOST signer",
    ]);
    for (name, extra) in [
        ("o.sig", vec![]),
        ("o.att.sig", vec!["-nodetach", "-stream"]),
    ] {
        let mut args = vec![
            "cms",
            "-sign",
            "-engine",
            "gost",
            "-signer",
            "o.pem",
            "-inkey",
            "o.key",
            "-md",
            "md_gost12_512",
            "-binary",
            "-in",
            "doc.txt",
            "-outform",
            "DER",
            "-out",
            name,
        ];
        args.extend(extra);
        t.openssl(&args);
        let content = (name == "o.sig").then_some("doc.txt");
        let out = t.klyuch_verifies(name, "o.pem", content, "OpenSSL GOST signer");
        assert!(out.contains("512-bit key"), "{out}");
    }
    let changed = t.changed_doc();
    t.klyuch_rejects("o.sig", "o.pem", changed, CHANGED);
    // a flipped bit in OpenSSL's signature value (the last bytes of the file)
    let mut bad = std::fs::read(t.path("o.sig")).unwrap();
    let n = bad.len();
    bad[n - 10] ^= 0x01;
    std::fs::write(t.path("o.bad.sig"), bad).unwrap();
    t.klyuch_rejects("o.bad.sig", "o.pem", "doc.txt", OTHER_KEY);
}

#[test]
fn rsa_and_ecdsa_signatures_verify_with_openssl_and_klyuch() {
    let t = setup!(false);
    t.make_ca("rca", false);
    t.keygen("rsa:2048", "03");
    t.certify("03", "rca", false);
    t.keygen("EC:prime256v1", "04");
    t.certify("04", "rca", false);
    t.keygen("rsa:2048", "05");
    t.certify("05", "rca", false);
    for (id, extra, alg, words) in [
        (
            "03",
            vec![],
            "rsaEncryption",
            "RSA PKCS#1 v1.5 with SHA-256",
        ),
        ("03", vec!["--pss"], "rsassaPss", "RSA-PSS with SHA-256"),
        ("04", vec![], "ecdsa-with-SHA256", "ECDSA with SHA-256"),
    ] {
        let sig = format!("{id}{}.sig", extra.len());
        let mut args = extra.clone();
        args.extend(["doc.txt", "-o", &sig]);
        t.sign(id, &args);
        t.openssl_verifies(&sig, "rca.pem", false, "DER", false);
        t.openssl_shows_attributes(&sig, false, alg);
        let out = t.klyuch_verifies(&sig, "rca.pem", Some("doc.txt"), &format!("Signer {id}"));
        assert!(out.contains(words), "{out}");
        let changed = t.changed_doc();
        t.klyuch_rejects(&sig, "rca.pem", changed, CHANGED);
        // attached + PEM in one
        let att = format!("{id}{}.att.sig", extra.len());
        let mut args = extra.clone();
        args.extend(["--attached", "--pem", "doc.txt", "-o", &att]);
        t.sign(id, &args);
        t.openssl_verifies(&att, "rca.pem", false, "PEM", true);
        t.klyuch_verifies(&att, "rca.pem", None, &format!("Signer {id}"));
    }
    // a signature by another key: key 05's signature value in key 03's signature file (both
    // RSA-2048, so the value is the last 256 bytes of each file)
    t.sign("05", &["doc.txt", "-o", "05.sig"]);
    let a = std::fs::read(t.path("030.sig")).unwrap();
    let b = std::fs::read(t.path("05.sig")).unwrap();
    let mut spliced = a[..a.len() - 256].to_vec();
    spliced.extend_from_slice(&b[b.len() - 256..]);
    std::fs::write(t.path("spliced.sig"), spliced).unwrap();
    t.klyuch_rejects("spliced.sig", "rca.pem", "doc.txt", OTHER_KEY);
    t.openssl_fails(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "spliced.sig",
        "-content",
        "doc.txt",
        "-CAfile",
        "rca.pem",
    ]);
    // an untrusted issuer
    t.make_ca("other", false);
    t.klyuch_rejects(
        "030.sig",
        "other.pem",
        "doc.txt",
        "not issued by any of the trusted CAs",
    );
    // without --ca the system trust store is the anchor set, which does not hold the test CA:
    // NOT VALID, and the message names both ways out
    let out = t.klyuch_fails(1, &["verify", "030.sig", "--content", "doc.txt"]);
    for w in ["NOT VALID", "system trust store", "--ca", "--no-chain"] {
        assert!(out.contains(w), "no {w:?} in\n{out}");
    }
    // --no-chain: valid, and the chain is reported as not checked
    let out = t.klyuch_ok(&["verify", "030.sig", "--content", "doc.txt", "--no-chain"]);
    assert!(out.contains("Signature:    VALID"), "{out}");
    assert!(out.contains("NOT CHECKED (--no-chain)"), "{out}");
    // the content found next to the signature (FILE.sig -> FILE)
    t.sign("04", &["doc.txt"]);
    let out = t.klyuch_ok(&["verify", "doc.txt.sig", "--ca", "rca.pem"]);
    assert!(out.contains("Signed file:  doc.txt"), "{out}");
    // signatures made by OpenSSL (RSA, with and without -cades; EC attached)
    t.openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-keyout",
        "oe.key",
        "-out",
        "oe.pem",
        "-days",
        "3",
        "-subj",
        "/CN=OpenSSL EC signer",
    ]);
    for (signer, key, name, extra) in [
        ("rca.pem", "rca.key", "or.sig", vec![]),
        ("rca.pem", "rca.key", "orc.sig", vec!["-cades"]),
        ("oe.pem", "oe.key", "oe.sig", vec!["-nodetach"]),
    ] {
        let mut args = vec![
            "cms", "-sign", "-signer", signer, "-inkey", key, "-binary", "-in", "doc.txt",
            "-outform", "DER", "-out", name,
        ];
        args.extend(extra);
        t.openssl(&args);
        let content = (name != "oe.sig").then_some("doc.txt");
        let who = if signer == "oe.pem" {
            "OpenSSL EC signer"
        } else {
            "CMS test CA rca"
        };
        let out = t.klyuch_verifies(name, signer, content, who);
        if name == "orc.sig" {
            assert!(out.contains("signingCertificateV2 matches"), "{out}");
        }
        if name == "oe.sig" {
            assert!(out.contains("ECDSA with SHA-"), "{out}");
        }
    }
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let t = setup!(false);
    t.make_ca("rca", false);
    t.keygen("rsa:2048", "06");
    t.certify_dated("06", "rca", "20200101000000Z", "20210101000000Z");
    t.keygen("EC:prime256v1", "07");
    t.certify_dated("07", "rca", "20990101000000Z", "20991231000000Z");
    let out = t.sign_fails(1, "06", &["doc.txt", "-o", "old.sig"]);
    assert!(
        out.contains("has expired") && out.contains("--force"),
        "{out}"
    );
    assert!(!t.path("old.sig").exists(), "a signature was written");
    let out = t.sign_fails(1, "07", &["doc.txt", "-o", "new.sig"]);
    assert!(out.contains("not valid yet"), "{out}");
    // --force signs anyway, with a warning; verification then names the problem
    let out = t.sign("06", &["--force", "doc.txt", "-o", "old.sig"]);
    assert!(out.contains("warning"), "{out}");
    t.klyuch_rejects(
        "old.sig",
        "rca.pem",
        "doc.txt",
        "had EXPIRED when it was signed",
    );
    t.sign("07", &["--force", "doc.txt", "-o", "new.sig"]);
    t.klyuch_rejects(
        "new.sig",
        "rca.pem",
        "doc.txt",
        "was NOT YET VALID when it was signed",
    );
}

#[test]
fn several_files_and_bad_usage() {
    let t = setup!(false);
    t.make_ca("rca", false);
    t.keygen("EC:prime256v1", "04");
    t.certify("04", "rca", false);
    std::fs::write(t.path("b.txt"), b"second file\n").unwrap();
    t.sign("04", &["doc.txt", "b.txt"]);
    for f in ["doc.txt", "b.txt"] {
        t.klyuch_ok(&["verify", &format!("{f}.sig"), "--ca", "rca.pem"]);
    }
    // the signature of one file does not fit the other
    t.klyuch_rejects("b.txt.sig", "rca.pem", "doc.txt", CHANGED);
    let out = t.sign_fails(2, "04", &["doc.txt", "b.txt", "-o", "x.sig"]);
    assert!(out.contains("several files"), "{out}");
    let out = t.sign_fails(1, "99", &["doc.txt"]);
    assert!(out.contains("no private key with ID 99"), "{out}");
    let out = t.klyuch_fails(2, &["sign", "--key", "token=cms", "doc.txt"]);
    assert!(out.contains("not a PKCS#11 URI"), "{out}");
    // a key without a certificate
    t.keygen("EC:prime256v1", "08");
    let out = t.sign_fails(1, "08", &["doc.txt"]);
    assert!(out.contains("no certificate with the key's ID 08"), "{out}");
    // --pss with an EC key
    let out = t.sign_fails(2, "04", &["--pss", "doc.txt"]);
    assert!(out.contains("--pss is for RSA keys"), "{out}");
    // a detached signature without its content, a file that is no signature
    std::fs::rename(t.path("b.txt"), t.path("b2.txt")).unwrap();
    let out = t.klyuch_fails(2, &["verify", "b.txt.sig"]);
    assert!(out.contains("--content"), "{out}");
    let out = t.klyuch_fails(1, &["verify", "rca.pem", "--content", "doc.txt"]);
    assert!(out.contains("not a CMS signature"), "{out}");
}

/// A key with CKA_ALWAYS_AUTHENTICATE (pkcs11-tool --always-auth) signs: klyuch logs in again
/// (CKU_CONTEXT_SPECIFIC) for each signature.
#[test]
fn always_authenticate_keys_sign() {
    let t = setup!(false);
    t.make_ca("rca", false);
    for (kt, id) in [("EC:prime256v1", "0c"), ("rsa:2048", "0d")] {
        t.f.pkcs11_tool(&[
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            kt,
            "--id",
            id,
            "--always-auth",
        ]);
        t.certify(id, "rca", false);
        std::fs::write(t.path("b.txt"), b"second file\n").unwrap();
        t.sign(id, &["doc.txt", "b.txt"]);
        t.openssl_verifies("doc.txt.sig", "rca.pem", false, "DER", false);
        t.klyuch_verifies("b.txt.sig", "rca.pem", None, &format!("Signer {id}"));
    }
}

/// An intermediate CA `name` issued by the CA `ca` (`ca_ext`: its basicConstraints), written
/// to the token as a certificate without key (ID `id`).
fn intermediate_ca(t: &T, name: &str, ca: &str, is_ca: bool, id: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let der = format!("{name}.der");
    let ext = format!("{name}.ext");
    t.openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        &format!("/O=Klyuch Test/CN=CMS intermediate {name}"),
        "-out",
        &csr,
    ]);
    let bc = if is_ca { "CA:TRUE" } else { "CA:FALSE" };
    std::fs::write(
        t.path(&ext),
        format!("basicConstraints=critical,{bc}\nkeyUsage=critical,keyCertSign,cRLSign\n"),
    )
    .unwrap();
    t.openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        &ext,
        "-out",
        &pem,
    ]);
    t.openssl(&["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
    t.f.pkcs11_tool(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        USER_PIN,
        "--write-object",
        &t.path(&der).display().to_string(),
        "--type",
        "cert",
        "--id",
        id,
    ]);
}

/// The intermediate CA certificates on the token travel in the signature, so a verifier needs
/// only the root; an "intermediate" that is not a CA breaks the chain, in words.
#[test]
fn intermediate_certificates_travel_with_the_signature() {
    let t = setup!(false);
    t.make_ca("rca", false);
    intermediate_ca(&t, "ica", "rca", true, "c1");
    t.keygen("EC:prime256v1", "04");
    t.certify("04", "ica", false);
    t.sign("04", &["doc.txt", "-o", "04.sig"]);
    t.openssl_verifies("04.sig", "rca.pem", false, "DER", false);
    let out = t.klyuch_verifies("04.sig", "rca.pem", Some("doc.txt"), "Signer 04");
    assert!(
        out.contains(
            "CMS intermediate ica,O=Klyuch Test <- CN=CMS test CA rca,O=Klyuch Test (trusted"
        ),
        "{out}"
    );
    intermediate_ca(&t, "nca", "rca", false, "c2");
    t.keygen("EC:prime256v1", "05");
    t.certify("05", "nca", false);
    t.sign("05", &["doc.txt", "-o", "05.sig"]);
    t.klyuch_rejects(
        "05.sig",
        "rca.pem",
        "doc.txt",
        "which is not a CA certificate",
    );
    t.openssl_fails(&[
        "cms", "-verify", "-binary", "-inform", "DER", "-in", "05.sig", "-content", "doc.txt",
        "-CAfile", "rca.pem",
    ]);
}

/// Peak resident memory (VmHWM, KiB) of a child, polled from /proc while it runs.
fn run_measuring_memory(t: &T, args: &[&str]) -> (Output, u64) {
    let m = module_path();
    let mut all = vec!["--module", m.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut child =
        t.f.command(t.bin.to_str().unwrap(), &all)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), peak)
}

/// Large files are hashed and copied in chunks: signing a 256 MiB (sparse) file, detached and
/// attached, and verifying both, stays far below the file's size in memory. (A 2 GiB file was checked by hand, see
/// notes/cms.md.)
#[test]
fn large_files_sign_and_verify_in_constant_memory() {
    let t = setup!(false);
    t.make_ca("rca", false);
    t.keygen("EC:prime256v1", "04");
    t.certify("04", "rca", false);
    let big = t.path("big.bin");
    let size: u64 = 256 << 20;
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(size).unwrap();
    drop(f);
    let uri = T::key_uri("04");
    for (name, attached) in [("big.sig", false), ("big.att.sig", true)] {
        let mut args = vec!["sign", "--key", uri.as_str(), "--pin", USER_PIN];
        if attached {
            args.push("--attached");
        }
        args.extend(["big.bin", "-o", name]);
        let (out, peak_kib) = run_measuring_memory(&t, &args);
        assert!(out.status.success(), "{}", text(&out));
        eprintln!("klyuch sign of 256 MiB ({name}): peak RSS {peak_kib} KiB");
        assert!(
            peak_kib > 0 && peak_kib < 48 * 1024,
            "peak RSS {peak_kib} KiB while signing a 256 MiB file"
        );
        let len = std::fs::metadata(t.path(name)).unwrap().len();
        assert_eq!(len > size, attached, "{name} is {len} bytes");
    }
    // verification reads around the content too, detached and attached
    for args in [
        &[
            "verify",
            "big.sig",
            "--content",
            "big.bin",
            "--ca",
            "rca.pem",
        ][..],
        &["verify", "big.att.sig", "--ca", "rca.pem"][..],
    ] {
        let (out, peak_kib) = run_measuring_memory(&t, args);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("Signature:    VALID"), "{}", text(&out));
        eprintln!("klyuch {args:?}: peak RSS {peak_kib} KiB");
        assert!(
            peak_kib > 0 && peak_kib < 48 * 1024,
            "peak RSS {peak_kib} KiB while verifying a 256 MiB file"
        );
    }
    let out = t.openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "big.sig",
        "-content",
        "big.bin",
        "-CAfile",
        "rca.pem",
        "-out",
        "/dev/null",
    ]);
    assert!(out.contains("Verification successful"), "{out}");
    let out = t.openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "big.att.sig",
        "-CAfile",
        "rca.pem",
        "-out",
        "/dev/null",
    ]);
    assert!(out.contains("Verification successful"), "{out}");
}

/// The same signing through another vendor's module, SoftHSMv2 (`--module`): RSA signs with
/// CKM_SHA256_RSA_PKCS, EC falls back to CKM_ECDSA over a digest made on the host (SoftHSMv2
/// 2.6 has no CKM_ECDSA_SHA256); OpenSSL verifies both.
#[test]
fn signs_through_softhsm() {
    require!("openssl");
    let softhsm = "/usr/lib/softhsm/libsofthsm2.so";
    if !std::path::Path::new(softhsm).exists() {
        eprintln!("SKIPPED: SoftHSMv2 is not installed");
        return;
    }
    let Some(bin) = klyuch_bin() else {
        eprintln!("SKIPPED: the klyuch tool is not built (cargo build --release -p klyuch)");
        return;
    };
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
    std::fs::write(f.path("doc.txt"), DOC).unwrap();
    let k = |args: &[&str]| -> String {
        let mut all = vec!["--module", softhsm];
        all.extend_from_slice(args);
        let o = f
            .command(bin.to_str().unwrap(), &all)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(o.status.success(), "klyuch {args:?}: {}", text(&o));
        text(&o)
    };
    let openssl = |args: &[&str]| text(&f.run("openssl", args));
    k(&[
        "token",
        "init",
        "--label",
        "hsm",
        "--so-pin",
        SO_PIN,
        "--init-pin",
        "--pin",
        USER_PIN,
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=SoftHSM test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    std::fs::write(f.path("ee.ext"), EE_EXT).unwrap();
    for (ty, id, words) in [
        ("rsa:2048", "0a", "RSA PKCS#1 v1.5"),
        ("ec:p256", "0b", "ECDSA with SHA-256"),
    ] {
        let uri = format!("pkcs11:token=hsm;id=%{id}");
        k(&[
            "--token", "hsm", "keygen", "--type", ty, "--id", id, "--pin", USER_PIN,
        ]);
        k(&[
            "csr",
            "--key",
            &uri,
            "--subject",
            "/CN=HSM signer",
            "--pin",
            USER_PIN,
            "-o",
            "h.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "h.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ee.ext",
            "-out",
            "h.pem",
        ]);
        k(&[
            "--token", "hsm", "import", "h.pem", "--id", id, "--pin", USER_PIN,
        ]);
        let out = k(&[
            "sign", "--key", &uri, "--pin", USER_PIN, "doc.txt", "-o", "h.sig",
        ]);
        assert!(out.contains(words), "{out}");
        let v = openssl(&[
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "h.sig",
            "-content",
            "doc.txt",
            "-CAfile",
            "ca.pem",
            "-out",
            "/dev/null",
        ]);
        assert!(v.contains("Verification successful"), "{ty}: {v}");
    }
}

/// The emulated GOST card (the card emulator in a vpcd reader of the running pcscd, through
/// Klyuch's PC/SC backend): its provisioned GOST 2012-256 key and self-signed certificate
/// (CKA_ID 01) sign a document on the card; OpenSSL's GOST engine and `klyuch verify` accept it.
#[test]
fn signs_on_the_emulated_gost_card() {
    use klyuch_card_emulator::harness::{self, EmulatorBuilder, StartError};
    require!("openssl");
    if !gost_engine() {
        eprintln!("SKIPPED: OpenSSL's GOST engine is not installed (libengine-gost-openssl)");
        return;
    }
    let Some(bin) = klyuch_bin() else {
        eprintln!("SKIPPED: the klyuch tool is not built (cargo build --release -p klyuch)");
        return;
    };
    // the emulator binary next to the module (cargo build --release -p klyuch-card-emulator)
    let emulator = std::env::var_os(harness::BINARY_ENV)
        .map(PathBuf::from)
        .or_else(|| {
            let m = module_path();
            let dir = m.parent()?;
            [
                dir.join("klyuch-card-emulator"),
                dir.parent()?.join("klyuch-card-emulator"),
            ]
            .into_iter()
            .find(|p| p.exists())
        });
    let Some(emulator) = emulator else {
        eprintln!("SKIPPED: klyuch-card-emulator is not built");
        return;
    };
    let card = match EmulatorBuilder::new("gost")
        .binary(emulator)
        .provision(true)
        .start()
    {
        Ok(card) => card,
        Err(StartError::Unavailable(why)) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let base = harness::VPCD_BASE_PORT;
    let other = harness::reader_name(if card.port() == base { base + 1 } else { base });
    let f = Fixture::with_pcsc(&format!("[pcsc]\nexclude_readers = [{other:?}]\n"));
    let slot = klyuch_tests::reader_slot(f.p11(), card.reader_name())
        .unwrap_or_else(|| panic!("no slot for reader {:?}", card.reader_name()));
    std::fs::write(f.path("doc.txt"), DOC).unwrap();
    let uri = format!("pkcs11:slot-id={};id=%01", slot.id());
    let m = module_path();
    let o = f
        .command(
            bin.to_str().unwrap(),
            &[
                "--module",
                m.to_str().unwrap(),
                "sign",
                "--key",
                &uri,
                "--pin",
                "12345678",
                "doc.txt",
            ],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "klyuch sign on the card: {}", text(&o));
    // the signer's certificate out of the signature (signature checked, chain not yet), then
    // the full check with it as the trust anchor
    let openssl = |args: &[&str]| text(&f.run("openssl", args));
    openssl(&[
        "cms",
        "-verify",
        "-engine",
        "gost",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "doc.txt.sig",
        "-content",
        "doc.txt",
        "-noverify",
        "-signer",
        "card.pem",
        "-out",
        "/dev/null",
    ]);
    let v = openssl(&[
        "cms",
        "-verify",
        "-engine",
        "gost",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "doc.txt.sig",
        "-content",
        "doc.txt",
        "-CAfile",
        "card.pem",
        "-out",
        "/dev/null",
    ]);
    assert!(v.contains("Verification successful"), "{v}");
    let out = text(&f.run(
        bin.to_str().unwrap(),
        &["verify", "doc.txt.sig", "--ca", "card.pem"],
    ));
    assert!(out.contains("Signature:    VALID"), "{out}");
    assert!(out.contains("GOST R 34.10-2012 (256-bit key)"), "{out}");
    assert!(out.contains("Klyuch GOST Test Card"), "{out}");
}

/// `klyuch verify --json`: one JSON object with the documented fields, for a valid signature, a
/// changed document, a missing trust anchor and `--no-chain`; the exit status as without
/// `--json`. Piped runs draw no progress bar; under a pseudo-terminal (`script`) the bar is
/// drawn, and `--quiet` hides it.
#[test]
fn verify_json_and_progress_bars() {
    let t = setup!(false);
    t.make_ca("rca", false);
    t.keygen("rsa:2048", "08");
    t.certify("08", "rca", false);
    t.sign("08", &["doc.txt", "-o", "j.sig"]);
    let json = |code: i32, args: &[&str]| -> serde_json::Value {
        let o = t.klyuch(args);
        assert_eq!(o.status.code(), Some(code), "klyuch {args:?}: {}", text(&o));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("klyuch {args:?}: not JSON ({e}): {}", text(&o)))
    };
    let v = json(
        0,
        &[
            "verify",
            "j.sig",
            "--content",
            "doc.txt",
            "--ca",
            "rca.pem",
            "--json",
        ],
    );
    assert_eq!(v["result"], "valid", "{v:#}");
    assert!(v["reason"].is_null(), "{v:#}");
    assert_eq!(v["content_file"], "doc.txt", "{v:#}");
    assert!(
        v["signer"]["subject"]
            .as_str()
            .unwrap()
            .contains("Signer 08"),
        "{v:#}"
    );
    assert!(
        v["signer"]["issuer"].as_str().unwrap().contains("rca"),
        "{v:#}"
    );
    // the serial as OpenSSL prints it
    let serial = t.openssl(&["x509", "-in", "08.pem", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_lowercase();
    assert_eq!(
        v["signer"]["serial"]
            .as_str()
            .unwrap()
            .trim_start_matches('0'),
        serial.trim_start_matches('0'),
        "{v:#}"
    );
    let st = v["signing_time"].as_str().unwrap();
    assert!(
        st.len() == 20 && st.ends_with('Z') && st.contains('T'),
        "{v:#}"
    );
    assert_eq!(v["algorithm"], "RSA PKCS#1 v1.5 with SHA-256", "{v:#}");
    assert_eq!(v["digest"], "SHA-256", "{v:#}");
    assert_eq!(v["certificate"]["state_now"], "valid", "{v:#}");
    let days = v["certificate"]["days_left"].as_i64().unwrap();
    assert!((29..=31).contains(&days), "a 30-day certificate: {v:#}");
    assert!(v["certificate"]["not_after"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(v["chain"]["status"], "valid", "{v:#}");
    let path = v["chain"]["path"].as_array().unwrap();
    assert_eq!(path.len(), 2, "{v:#}");
    assert!(
        path[1].as_str().unwrap().contains("(trusted, rca.pem)"),
        "{v:#}"
    );
    assert!(
        v["signing_certificate_attribute"]
            .as_str()
            .unwrap()
            .contains("signingCertificateV2 matches"),
        "{v:#}"
    );

    // a changed document: exit 1, result invalid with its reason code
    let changed = t.changed_doc();
    let v = json(
        1,
        &[
            "verify",
            "j.sig",
            "--content",
            changed,
            "--ca",
            "rca.pem",
            "--json",
        ],
    );
    assert_eq!(v["result"], "invalid", "{v:#}");
    assert_eq!(v["reason"]["code"], "content_changed", "{v:#}");
    assert!(
        v["reason"]["message"].as_str().unwrap().contains("CHANGED"),
        "{v:#}"
    );
    assert_eq!(v["chain"]["status"], "not_reached", "{v:#}");
    // a flipped bit in the signature value (the file's last bytes): another key
    let mut bad = std::fs::read(t.path("j.sig")).unwrap();
    let n = bad.len();
    bad[n - 5] ^= 0x01;
    std::fs::write(t.path("jbad.sig"), bad).unwrap();
    let v = json(
        1,
        &[
            "verify",
            "jbad.sig",
            "--content",
            "doc.txt",
            "--ca",
            "rca.pem",
            "--json",
        ],
    );
    assert_eq!(v["result"], "invalid", "{v:#}");
    assert_eq!(v["reason"]["code"], "signature_mismatch", "{v:#}");
    // no --ca: the system trust store does not know the test CA
    let v = json(1, &["verify", "j.sig", "--content", "doc.txt", "--json"]);
    assert_eq!(v["result"], "invalid", "{v:#}");
    assert_eq!(v["reason"]["code"], "chain_untrusted", "{v:#}");
    assert_eq!(v["chain"]["status"], "invalid", "{v:#}");
    let msg = v["reason"]["message"].as_str().unwrap();
    assert!(msg.contains("--ca") && msg.contains("--no-chain"), "{v:#}");
    // --no-chain: valid, the chain skipped
    let v = json(
        0,
        &[
            "verify",
            "j.sig",
            "--content",
            "doc.txt",
            "--no-chain",
            "--json",
        ],
    );
    assert_eq!(v["result"], "valid", "{v:#}");
    assert_eq!(v["chain"]["status"], "skipped", "{v:#}");
    // not a signature at all: result "error", exit 1
    let v = json(1, &["verify", "rca.pem", "--content", "doc.txt", "--json"]);
    assert_eq!(v["result"], "error", "{v:#}");
    assert!(v["reason"]["message"].as_str().unwrap().len() > 10, "{v:#}");

    // progress: a 64 MiB file, signed and verified with stderr piped: no bar
    let big = std::fs::File::create(t.path("big.bin")).unwrap();
    big.set_len(64 << 20).unwrap();
    drop(big);
    let o = t.klyuch(&[
        "sign",
        "--key",
        &T::key_uri("08"),
        "--pin",
        USER_PIN,
        "--attached",
        "big.bin",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let verify_args = ["verify", "big.bin.sig", "--ca", "rca.pem"];
    for o in [&o, &t.klyuch(&verify_args)] {
        assert!(o.status.success(), "{}", text(o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains('\r') && !err.contains('\x1b') && !err.contains("hashing"),
            "progress output on a pipe: {err:?}"
        );
    }
    // under a pseudo-terminal (util-linux script): the bar is drawn on stderr
    if which("script") {
        let m = module_path();
        let cmd = |extra: &str| {
            format!(
                "'{}' --module '{}' {extra} verify big.bin.sig --ca rca.pem",
                t.bin.display(),
                m.display()
            )
        };
        let tty = |c: String| {
            let o =
                t.f.command("script", &["-qec", &c, "/dev/null"])
                    .output()
                    .unwrap();
            assert!(o.status.success(), "script -qec {c}: {}", text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let out = tty(cmd(""));
        assert!(out.contains("Signature:    VALID"), "{out:?}");
        assert!(
            out.contains("hashing big.bin.sig") && out.contains('\r'),
            "no progress bar on a terminal: {out:?}"
        );
        let out = tty(cmd("--quiet"));
        assert!(out.contains("Signature:    VALID"), "{out:?}");
        assert!(!out.contains("hashing"), "a bar despite --quiet: {out:?}");
    } else {
        eprintln!("SKIPPED (the terminal part): util-linux script is not installed");
    }
}

fn which(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
