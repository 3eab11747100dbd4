//! Cross-checks against OpenSSL's GOST engine (Debian `libengine-gost-openssl`), with the
//! commands of gost-pkcs11.md §4.4/§4.5: keys made by OpenSSL load here and give the same public
//! key; OpenSSL's signatures verify here (and fail after a bit flip); our signatures verify in
//! OpenSSL (and a tampered one does not); VKO agrees with `openssl pkeyutl -derive`; Streebog
//! agrees with `openssl dgst`. Skipped, with a note, when `openssl` or the engine is missing.

use std::path::Path;
use std::process::Command;

use klyuch_gost::{ParamSet, SigningKey, VerifyingKey, streebog256, streebog512, vko_256};

fn engine_available() -> bool {
    match Command::new("openssl").args(["engine", "gost"]).output() {
        Ok(out) => out.status.success() && String::from_utf8_lossy(&out.stdout).contains("gost"),
        Err(_) => false,
    }
}

macro_rules! require_engine {
    () => {
        if !engine_available() {
            eprintln!(
                "NOTE: skipping the OpenSSL cross-check: `openssl engine gost` is not available \
                 (install libengine-gost-openssl)"
            );
            return;
        }
    };
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl")
}

fn openssl_ok(args: &[&str]) -> Vec<u8> {
    let out = openssl(args);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).unwrap();
    v
}

/// DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut v = vec![tag];
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend([0x81, n as u8]);
    } else {
        v.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

/// SubjectPublicKeyInfo of a GOST 2012 key (RFC 9215 §4; gost-pkcs11.md §7): algorithm
/// id-tc26-gost3410-12-256/512 with GostR3410-2012-PublicKeyParameters { paramset, digest },
/// and a BIT STRING holding an OCTET STRING of X_le || Y_le.
fn spki(vk: &VerifyingKey) -> Vec<u8> {
    let ps = vk.params();
    let params = tlv(0x30, &[ps.oid_der(), ps.digest_oid_der().to_vec()].concat());
    let alg = tlv(0x30, &[ps.key_algorithm_oid_der(), &params[..]].concat());
    let octets = tlv(0x04, &vk.to_le_bytes());
    let bits = tlv(0x03, &[&[0u8][..], &octets].concat());
    tlv(0x30, &[alg, bits].concat())
}

/// `Private key:` / `X:` / `Y:` of `openssl pkey -text`, big-endian hex, padded to `n` bytes.
fn text_field(text: &str, label: &str, n: usize) -> Vec<u8> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} in {text}"));
    let hex = line[label.len()..].trim();
    let hex = format!("{hex:0>width$}", width = 2 * n);
    hex::decode(hex).unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// OpenSSL engine paramset names (gost-pkcs11.md §4.5 "Engine paramset names").
const SETS: &[(&str, &str, ParamSet)] = &[
    ("gost2012_256", "TCA", ParamSet::Tc26Gost256A),
    ("gost2012_256", "TCB", ParamSet::Tc26Gost256B),
    ("gost2012_256", "TCC", ParamSet::Tc26Gost256C),
    ("gost2012_256", "TCD", ParamSet::Tc26Gost256D),
    ("gost2012_256", "A", ParamSet::CryptoProA),
    ("gost2012_256", "B", ParamSet::CryptoProB),
    ("gost2012_256", "C", ParamSet::CryptoProC),
    ("gost2012_256", "XA", ParamSet::CryptoProXchA),
    ("gost2012_256", "XB", ParamSet::CryptoProXchB),
    ("gost2012_512", "A", ParamSet::Tc26Gost512A),
    ("gost2012_512", "B", ParamSet::Tc26Gost512B),
    ("gost2012_512", "C", ParamSet::Tc26Gost512C),
];

/// An OpenSSL-generated key: the PEM path and our view of it.
fn openssl_key(dir: &Path, name: &str, alg: &str, set: &str, ps: ParamSet) -> SigningKey {
    let pem = dir.join(format!("{name}.pem"));
    openssl_ok(&[
        "genpkey",
        "-engine",
        "gost",
        "-algorithm",
        alg,
        "-pkeyopt",
        &format!("paramset:{set}"),
        "-out",
        path_str(&pem),
    ]);
    let n = ps.key_len();
    let text = String::from_utf8(openssl_ok(&[
        "pkey",
        "-engine",
        "gost",
        "-in",
        path_str(&pem),
        "-text",
        "-noout",
    ]))
    .unwrap();
    let d_be = text_field(&text, "Private key:", n);
    let x_be = text_field(&text, "X:", n);
    let y_be = text_field(&text, "Y:", n);
    let d_le: Vec<u8> = d_be.iter().rev().copied().collect();
    let key = SigningKey::from_le_bytes(ps, &d_le).unwrap();
    // Same public key, and the same bytes as the tail of OpenSSL's SPKI.
    let mut xy_le: Vec<u8> = x_be.iter().rev().copied().collect();
    xy_le.extend(y_be.iter().rev());
    assert_eq!(
        key.verifying_key().to_le_bytes(),
        xy_le,
        "{set}: public key"
    );
    let pub_der = dir.join(format!("{name}.pub.der"));
    openssl_ok(&[
        "pkey",
        "-engine",
        "gost",
        "-in",
        path_str(&pem),
        "-pubout",
        "-outform",
        "DER",
        "-out",
        path_str(&pub_der),
    ]);
    let der = std::fs::read(&pub_der).unwrap();
    assert!(der.ends_with(&xy_le), "{set}: SPKI tail is X_le || Y_le");
    // The parameter set OID OpenSSL wrote is the one we expect.
    assert!(
        der.windows(ps.oid_der().len()).any(|w| w == ps.oid_der()),
        "{set}: OID of {ps}"
    );
    key
}

#[test]
fn openssl_signs_we_verify_and_vice_versa() {
    require_engine!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for &(alg, set, ps) in SETS {
        let n = ps.key_len();
        let key = openssl_key(d, "k", alg, set, ps);
        let vk = key.verifying_key();
        let pem = d.join("k.pem");
        let hash = d.join("h.bin");
        let sig_path = d.join("sig.bin");
        for _ in 0..3 {
            let digest = random(n);
            std::fs::write(&hash, &digest).unwrap();

            // OpenSSL signs, we verify; one flipped bit fails.
            openssl_ok(&[
                "pkeyutl",
                "-engine",
                "gost",
                "-sign",
                "-inkey",
                path_str(&pem),
                "-in",
                path_str(&hash),
                "-out",
                path_str(&sig_path),
            ]);
            let sig = std::fs::read(&sig_path).unwrap();
            assert_eq!(sig.len(), 2 * n);
            vk.verify_digest(&digest, &sig)
                .unwrap_or_else(|e| panic!("{set}: OpenSSL signature refused: {e}"));
            let mut bad = sig.clone();
            bad[random(1)[0] as usize % (2 * n)] ^= 0x10;
            assert!(
                vk.verify_digest(&digest, &bad).is_err(),
                "{set}: flipped bit"
            );

            // We sign, OpenSSL verifies with the public key from our SPKI.
            let spki_path = d.join("spki.der");
            std::fs::write(&spki_path, spki(vk)).unwrap();
            let ours = key.sign_digest(&digest).unwrap();
            std::fs::write(&sig_path, &ours).unwrap();
            let verify = [
                "pkeyutl",
                "-engine",
                "gost",
                "-verify",
                "-pubin",
                "-keyform",
                "DER",
                "-inkey",
                path_str(&spki_path),
                "-in",
                path_str(&hash),
                "-sigfile",
                path_str(&sig_path),
            ];
            let out = openssl(&verify);
            assert!(
                out.status.success(),
                "{set}: OpenSSL refused our signature: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut bad = ours.clone();
            bad[0] ^= 0x01;
            std::fs::write(&sig_path, &bad).unwrap();
            assert!(
                !openssl(&verify).status.success(),
                "{set}: tampered accepted"
            );
        }

        // A key generated here, signature made here, verified by OpenSSL too.
        let own = SigningKey::generate(ps).unwrap();
        let digest = random(n);
        std::fs::write(&hash, &digest).unwrap();
        let spki_path = d.join("own.der");
        std::fs::write(&spki_path, spki(own.verifying_key())).unwrap();
        std::fs::write(&sig_path, own.sign_digest(&digest).unwrap()).unwrap();
        openssl_ok(&[
            "pkeyutl",
            "-engine",
            "gost",
            "-verify",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            path_str(&spki_path),
            "-in",
            path_str(&hash),
            "-sigfile",
            path_str(&sig_path),
        ]);
    }
}

/// gost-pkcs11.md §4.4: the RFC 7091 §7.1 signature in PKCS#11 byte order verifies in OpenSSL
/// under a TestParamSet SPKI built here.
#[test]
fn openssl_verifies_rfc7091_a1() {
    require_engine!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pubkey = hex::decode(
        "0BD86FE5D8DB89668F789B4E1DBA8585C5508B45EC5B59D8906DDB70E2492B7F\
         DA77FF871A10FBDF2766D293C5D164AFBB3C7B973A41C885D11D70D689B4F126",
    )
    .unwrap();
    let vk = VerifyingKey::from_le_bytes(ParamSet::Test256, &pubkey).unwrap();
    let digest =
        hex::decode("E53E042B67E6EC678E2E02B12A0352CE1FC6EEE0529CC088119AD872B3C1FB2D").unwrap();
    let d_le: Vec<u8> =
        hex::decode("7A929ADE789BB9BE10ED359DD39A72C11B60961F49397EEE1D19CE9891EC3B28")
            .unwrap()
            .into_iter()
            .rev()
            .collect();
    let key = SigningKey::from_le_bytes(ParamSet::Test256, &d_le).unwrap();
    let k =
        hex::decode("77105C9B20BCD3122823C8CF6FCC7B956DE33814E95B7FE64FED924594DCEAB3").unwrap();
    let sig = key.sign_digest_with_nonce(&digest, &k).unwrap();
    std::fs::write(d.join("pub.der"), spki(&vk)).unwrap();
    std::fs::write(d.join("h.bin"), &digest).unwrap();
    std::fs::write(d.join("sig.bin"), &sig).unwrap();
    openssl_ok(&[
        "pkeyutl",
        "-engine",
        "gost",
        "-verify",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        path_str(&d.join("pub.der")),
        "-in",
        path_str(&d.join("h.bin")),
        "-sigfile",
        path_str(&d.join("sig.bin")),
    ]);
}

/// VKO against `openssl pkeyutl -derive` with an 8-byte UKM: the engine returns
/// VKO_GOSTR3410_2012_256 for every key size (gost-engine `pkey_gost_ec_derive`).
#[test]
fn openssl_derive_matches_vko() {
    require_engine!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for &(alg, set, ps) in SETS {
        let a = openssl_key(d, "a", alg, set, ps);
        let b = openssl_key(d, "b", alg, set, ps);
        let ukm = random(8);
        let out = d.join("kek.bin");
        openssl_ok(&[
            "pkeyutl",
            "-engine",
            "gost",
            "-derive",
            "-inkey",
            path_str(&d.join("a.pem")),
            "-peerkey",
            path_str(&d.join("b.pub.der")),
            "-peerform",
            "DER",
            "-pkeyopt",
            &format!("ukmhex:{}", hex::encode(&ukm)),
            "-out",
            path_str(&out),
        ]);
        let theirs = std::fs::read(&out).unwrap();
        let ours = vko_256(&a, b.verifying_key(), &ukm).unwrap();
        assert_eq!(hex::encode(theirs), hex::encode(ours), "{set} ({ps}): VKO");
        // And the other direction.
        assert_eq!(ours, vko_256(&b, a.verifying_key(), &ukm).unwrap());
    }
}

#[test]
fn openssl_dgst_matches_streebog() {
    require_engine!();
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 1, 63, 64, 65, 1000] {
        let msg = random(len);
        let path = dir.path().join("m.bin");
        std::fs::write(&path, &msg).unwrap();
        let d256 = openssl_ok(&[
            "dgst",
            "-engine",
            "gost",
            "-md_gost12_256",
            "-binary",
            path_str(&path),
        ]);
        let d512 = openssl_ok(&[
            "dgst",
            "-engine",
            "gost",
            "-md_gost12_512",
            "-binary",
            path_str(&path),
        ]);
        // stdout may start with the engine banner line.
        assert!(
            d256.ends_with(&streebog256(&msg)),
            "Streebog-256 of {len} bytes"
        );
        assert!(
            d512.ends_with(&streebog512(&msg)),
            "Streebog-512 of {len} bytes"
        );
    }
}
