//! Cross-checks with the `openssl` command line: keys made by OpenSSL imported through
//! `pkcs8.rs`, signatures made here verified by `openssl pkeyutl`/`dgst`, an OAEP ciphertext made
//! by OpenSSL decrypted here, certificates parsed by `x509.rs`, and PKCS#8 written here read by
//! OpenSSL. Skipped (with a note) when `openssl` is not installed.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use klyuch_crypto::{Key, find, pkcs8, x509};
use token_api::MechParam;
use token_api::ck::*;

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("openssl not installed: cross-checks skipped");
    }
    ok
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap()
}

fn write(dir: &Path, f: &str, d: &[u8]) {
    std::fs::write(dir.join(f), d).unwrap()
}

fn import(dir: &Path, pem: &str) -> (Arc<Key>, Arc<Key>) {
    let text = String::from_utf8(read(dir, pem)).unwrap();
    let t = pkcs8::private_key_attributes_pem(&text).unwrap();
    let p = pkcs8::public_from_private(&t).unwrap();
    (
        Arc::new(Key::from_attributes(&p).unwrap()),
        Arc::new(Key::from_attributes(&t).unwrap()),
    )
}

/// DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3) of `r || s`.
fn ecdsa_der(rs: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let i = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
        let mut c = v[i..].to_vec();
        if c[0] & 0x80 != 0 {
            c.insert(0, 0);
        }
        let mut o = vec![0x02, c.len() as u8];
        o.extend(c);
        o
    }
    let (r, s) = rs.split_at(rs.len() / 2);
    let mut body = int(r);
    body.extend(int(s));
    let mut o = vec![0x30];
    if body.len() >= 0x80 {
        o.push(0x81);
    }
    o.push(body.len() as u8);
    o.extend(body);
    o
}

#[test]
fn rsa_with_openssl() {
    if !have_openssl() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "k.pem",
        ],
    );
    openssl(dir, &["pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem"]);
    let (pubk, privk) = import(dir, "k.pem");
    let msg = b"signed by klyuch, checked by openssl";
    write(dir, "msg", msg);

    // PKCS#1 v1.5 with SHA-256
    let sig = sign(CKM_SHA256_RSA_PKCS, &MechParam::None, &privk, msg);
    write(dir, "sig", &sig);
    openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "msg",
        ],
    );

    // PSS, SHA-256, MGF1-SHA-256, 32-byte salt, through pkeyutl on the digest
    let p = MechParam::RsaPss {
        hash: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        salt_len: 32,
    };
    let sig = sign(CKM_SHA256_RSA_PKCS_PSS, &p, &privk, msg);
    write(dir, "pss", &sig);
    write(
        dir,
        "dig",
        &klyuch_crypto::digest::hash(CKM_SHA256, msg).unwrap(),
    );
    openssl(
        dir,
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "dig",
            "-sigfile",
            "pss",
            "-pkeyopt",
            "digest:sha256",
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:32",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    // and an OpenSSL PSS signature (salt = digest length) verifies here
    openssl(
        dir,
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "k.pem",
            "-in",
            "dig",
            "-out",
            "osig",
            "-pkeyopt",
            "digest:sha256",
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:digest",
        ],
    );
    verify(CKM_SHA256_RSA_PKCS_PSS, &p, &pubk, msg, &read(dir, "osig")).unwrap();

    // OAEP (SHA-256, MGF1-SHA-1, a label) encrypted by OpenSSL, decrypted here
    write(dir, "plain", b"a key to transport");
    openssl(
        dir,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "plain",
            "-out",
            "ct",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha1",
            "-pkeyopt",
            "rsa_oaep_label:6c6162656c",
        ],
    );
    let oaep = MechParam::RsaOaep {
        hash: CKM_SHA256,
        mgf: CKG_MGF1_SHA1,
        source: b"label".to_vec(),
    };
    let pt = find(CKM_RSA_PKCS_OAEP)
        .unwrap()
        .decrypt_init(privk.clone(), &oaep)
        .unwrap()
        .one_shot(&read(dir, "ct"))
        .unwrap();
    assert_eq!(pt, b"a key to transport");
    // PKCS#1 v1.5 encryption by OpenSSL
    openssl(
        dir,
        &[
            "pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "plain", "-out", "ct1",
        ],
    );
    let pt = find(CKM_RSA_PKCS)
        .unwrap()
        .decrypt_init(privk.clone(), &MechParam::None)
        .unwrap()
        .one_shot(&read(dir, "ct1"))
        .unwrap();
    assert_eq!(pt, b"a key to transport");

    // PKCS#8 written here is read by OpenSSL and matches its key
    let der = pkcs8::to_pkcs8(&privk).unwrap();
    write(dir, "k8.der", &der);
    let a = openssl(dir, &["pkey", "-inform", "DER", "-in", "k8.der", "-pubout"]);
    assert_eq!(a, read(dir, "pub.pem"));
    // traditional "RSA PRIVATE KEY" PEM
    openssl(
        dir,
        &["pkey", "-in", "k.pem", "-traditional", "-out", "trad.pem"],
    );
    let (_, k2) = import(dir, "trad.pem");
    assert_eq!(&pkcs8::to_pkcs8(&k2).unwrap()[..], &der[..]);
}

#[test]
fn ec_and_ed25519_with_openssl() {
    if !have_openssl() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let msg = b"ecdsa message";
    write(dir, "msg", msg);
    for (curve, mech, md) in [
        ("P-256", CKM_ECDSA_SHA256, "-sha256"),
        ("P-384", CKM_ECDSA_SHA384, "-sha384"),
        ("P-521", CKM_ECDSA_SHA512, "-sha512"),
        ("P-256", CKM_ECDSA_SHA1, "-sha1"),
    ] {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-out",
                "ec.pem",
            ],
        );
        openssl(
            dir,
            &["pkey", "-in", "ec.pem", "-pubout", "-out", "ecpub.pem"],
        );
        let (pubk, privk) = import(dir, "ec.pem");
        let sig = sign(mech, &MechParam::None, &privk, msg);
        write(dir, "sig", &ecdsa_der(&sig));
        openssl(
            dir,
            &[
                "dgst",
                md,
                "-verify",
                "ecpub.pem",
                "-signature",
                "sig",
                "msg",
            ],
        );
        // raw CKM_ECDSA over the digest, verified by pkeyutl
        let h = klyuch_crypto::hash_then_sign(mech).unwrap().0;
        let dig = klyuch_crypto::digest::hash(h, msg).unwrap();
        write(dir, "dig", &dig);
        let sig = sign(CKM_ECDSA, &MechParam::None, &privk, &dig);
        write(dir, "rsig", &ecdsa_der(&sig));
        openssl(
            dir,
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "ecpub.pem",
                "-in",
                "dig",
                "-sigfile",
                "rsig",
            ],
        );
        // PKCS#8 round trip and the SEC 1 "EC PRIVATE KEY" form
        let der = pkcs8::to_pkcs8(&privk).unwrap();
        write(dir, "ec8.der", &der);
        let a = openssl(
            dir,
            &["pkey", "-inform", "DER", "-in", "ec8.der", "-pubout"],
        );
        assert_eq!(a, read(dir, "ecpub.pem"));
        openssl(dir, &["ec", "-in", "ec.pem", "-out", "sec1.pem"]);
        let (p2, _) = import(dir, "sec1.pem");
        let sig = sign(mech, &MechParam::None, &privk, msg);
        verify(mech, &MechParam::None, &p2, msg, &sig).unwrap();
        verify(mech, &MechParam::None, &pubk, msg, &sig).unwrap();
    }
    // Ed25519
    openssl(dir, &["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"]);
    openssl(
        dir,
        &["pkey", "-in", "ed.pem", "-pubout", "-out", "edpub.pem"],
    );
    let (_, privk) = import(dir, "ed.pem");
    let sig = sign(CKM_EDDSA, &MechParam::None, &privk, msg);
    write(dir, "edsig", &sig);
    openssl(
        dir,
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "edpub.pem",
            "-rawin",
            "-in",
            "msg",
            "-sigfile",
            "edsig",
        ],
    );
    let der = pkcs8::to_pkcs8(&privk).unwrap();
    write(dir, "ed8.der", &der);
    let a = openssl(
        dir,
        &["pkey", "-inform", "DER", "-in", "ed8.der", "-pubout"],
    );
    assert_eq!(a, read(dir, "edpub.pem"));
}

#[test]
fn certificates_from_openssl() {
    if !have_openssl() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for (alg, opts) in [
        ("RSA", vec!["-pkeyopt", "rsa_keygen_bits:2048"]),
        ("EC", vec!["-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("ED25519", vec![]),
    ] {
        let mut args = vec!["genpkey", "-algorithm", alg];
        args.extend(opts);
        args.extend(["-out", "k.pem"]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "k.pem",
                "-subj",
                "/CN=Klyuch Test/O=Example",
                "-set_serial",
                "0x8102",
                "-days",
                "30",
                "-outform",
                "DER",
                "-out",
                "c.der",
            ],
        );
        let der = read(dir, "c.der");
        let t = x509::certificate_attributes(&der).unwrap();
        assert_eq!(t.get_ulong(CKA_CERTIFICATE_TYPE).unwrap(), Some(CKC_X_509));
        // serial 0x8102 as a DER INTEGER: a zero byte keeps it positive
        assert_eq!(
            t.get(CKA_SERIAL_NUMBER).unwrap(),
            &[0x02, 0x03, 0x00, 0x81, 0x02]
        );
        let subject = t.get(CKA_SUBJECT).unwrap();
        assert_eq!(subject, t.get(CKA_ISSUER).unwrap());
        assert!(der.windows(subject.len()).any(|w| w == subject));
        assert!(subject.windows(11).any(|w| w == b"Klyuch Test"));
        let start = std::str::from_utf8(t.get(CKA_START_DATE).unwrap())
            .unwrap()
            .to_owned();
        let end = std::str::from_utf8(t.get(CKA_END_DATE).unwrap())
            .unwrap()
            .to_owned();
        assert_eq!(start.len(), 8);
        assert!(end > start);
        // the SPKI gives the same public key as the private key file
        let spki = t.get(CKA_PUBLIC_KEY_INFO).unwrap();
        let pubt = x509::public_key_attributes(spki).unwrap();
        let (pubk, _) = import(dir, "k.pem");
        let mine = pubk.public_attributes().unwrap();
        for ty in [
            CKA_KEY_TYPE,
            CKA_MODULUS,
            CKA_PUBLIC_EXPONENT,
            CKA_EC_PARAMS,
            CKA_EC_POINT,
        ] {
            assert_eq!(pubt.get(ty), mine.get(ty), "{alg} {ty:#x}");
        }
        let spki_openssl = openssl(dir, &["pkey", "-in", "k.pem", "-pubout", "-outform", "DER"]);
        assert_eq!(spki, &spki_openssl[..]);
    }
}
