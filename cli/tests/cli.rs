//! `klyuch` end to end: the built binary against SoftHSMv2 and against Klyuch's own module, on
//! temporary token stores, with keys and certificates made by `openssl`.

mod common;
use common::*;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// The object of `class` with `id` in an `objects --json` listing.
fn find<'a>(objs: &'a [serde_json::Value], class: &str, id: &str) -> &'a serde_json::Value {
    objs.iter()
        .find(|o| o["class"] == class && o["id"] == id)
        .unwrap_or_else(|| panic!("no {class} with id {id} in {objs:#?}"))
}

on_each_backend!(help_everywhere, |t: &Tok| {
    for args in [
        vec!["--help"],
        vec!["slots", "--help"],
        vec!["token", "--help"],
        vec!["token", "init", "--help"],
        vec!["pin", "--help"],
        vec!["pin", "set", "--help"],
        vec!["pin", "unblock", "--help"],
        vec!["objects", "--help"],
        vec!["import", "--help"],
        vec!["delete", "--help"],
    ] {
        let o = t.run(&args).ok();
        assert!(o.stdout.contains("Usage: klyuch"), "{args:?}: {}", o.stdout);
    }
    t.run(&["frobnicate"]).fails(2, "unrecognized subcommand");
});

on_each_backend!(slots_and_token_init, |t: &Tok| {
    let o = t.run(&["slots"]).ok();
    assert!(o.stdout.contains("not initialised"), "{}", o.stdout);
    let o = t
        .run(&[
            "token",
            "init",
            "--label",
            "first",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--pin",
            PIN,
        ])
        .ok();
    assert!(
        o.stdout.contains("Token \"first\" initialised in slot"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("User PIN set."), "{}", o.stdout);

    let o = t.run(&["slots"]).ok();
    assert!(o.stdout.contains("token label:   first"), "{}", o.stdout);
    assert!(o.stdout.contains("user PIN:      ok"), "{}", o.stdout);
    assert!(o.stdout.contains("SO PIN:        ok"), "{}", o.stdout);

    let v = json(&t.run(&["slots", "--json"]).ok().stdout);
    let tokens: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.get("token").filter(|t| !t.is_null()))
        .collect();
    let first = tokens
        .iter()
        .find(|t| t["label"] == "first")
        .expect("token first");
    assert_eq!(first["initialized"], true);
    assert_eq!(first["user_pin"], "ok");
    // The SoftHSM convention: a new empty slot for the next token.
    assert!(tokens.iter().any(|t| t["initialized"] == false), "{v:#}");

    // A second token, the SO PIN from a file, no user PIN yet.
    std::fs::write(t.path("so.txt"), format!("{SO_PIN}\n")).unwrap();
    let o = t
        .run(&[
            "token",
            "init",
            "--label",
            "second",
            "--so-pin-file",
            &t.p("so.txt"),
        ])
        .ok();
    assert!(!o.stdout.contains("User PIN set."));
    let o = t.run(&["--token", "second", "objects", "--login", "--pin", PIN]);
    assert_ne!(o.code, 0, "login without a user PIN: {o:?}");
    let o = t.run(&["slots"]).ok();
    assert!(o.stdout.contains("user PIN:      not set"), "{}", o.stdout);

    // Errors in words.
    t.run(&["token", "init", "--label", "x"])
        .fails(1, "no new SO PIN given");
    t.run(&[
        "token",
        "init",
        "--label",
        &"x".repeat(33),
        "--so-pin",
        SO_PIN,
    ])
    .fails(2, "at most 32");
    t.run(&["token", "init", "--label", "y", "--so-pin", "12"])
        .fails(1, "CKR_PIN_LEN_RANGE");
    t.run(&["--token", "nope", "objects"])
        .fails(1, "no token labelled \"nope\"");
    t.run(&["--slot", "987654", "objects"])
        .fails(1, "no slot 987654");
});

on_each_backend!(pin_set_and_unblock, |t: &Tok| {
    t.init("pins");
    t.run(&["pin", "set", "--pin", PIN, "--new-pin", "5678"])
        .ok();
    let o = t.run(&["pin", "set", "--pin", PIN, "--new-pin", "0000"]);
    let o = o.fails(1, "wrong PIN (CKR_PIN_INCORRECT)");
    assert!(
        !o.stderr.contains(PIN) && !o.stderr.contains("0000"),
        "PIN printed: {}",
        o.stderr
    );
    t.run(&["objects", "--login", "--pin", "5678"]).ok();

    // New PIN from a file, old from the environment.
    std::fs::write(t.path("new.txt"), "2468\r\n").unwrap();
    t.run_env(
        &["pin", "set", "--new-pin-file", &t.p("new.txt")],
        &[("KLYUCH_PIN", "5678")],
    )
    .ok();
    t.run_env(&["objects", "--login"], &[("KLYUCH_PIN", "2468")])
        .ok();
    t.run(&["pin", "set", "--pin", "2468", "--new-pin", "1"])
        .fails(1, "CKR_PIN_LEN_RANGE");

    // SO PIN change, then the SO sets a new user PIN.
    t.run(&[
        "pin",
        "set",
        "--so",
        "--so-pin",
        SO_PIN,
        "--new-pin",
        "87654321",
    ])
    .ok();
    t.run(&[
        "pin",
        "set",
        "--so",
        "--so-pin",
        SO_PIN,
        "--new-pin",
        "11111111",
    ])
    .fails(1, "CKR_PIN_INCORRECT");
    t.run_env(
        &["pin", "unblock", "--new-pin", "9999"],
        &[("KLYUCH_SO_PIN", "87654321")],
    )
    .ok();
    t.run(&["objects", "--login", "--pin", "9999"]).ok();
    t.run(&["pin", "unblock", "--new-pin", "9999"])
        .fails(1, "no SO PIN given");
});

on_each_backend!(wrong_pin_and_lockout, |t: &Tok| {
    t.init("lock");
    let o = t.run(&["objects", "--login", "--pin", "0000"]);
    o.fails(1, "wrong PIN (CKR_PIN_INCORRECT)");
    t.run(&["objects", "--login"]).fails(1, "no user PIN given");
    t.run(&["objects", "--login", "--pin-file", "/nonexistent/pin"])
        .fails(1, "cannot read the user PIN file");
    if t.backend == Backend::Klyuch {
        // The harness configures 3 tries: the last wrong one locks.
        let mut last = t.run(&["objects", "--login", "--pin", "0000"]);
        for _ in 0..3 {
            if last.stderr.contains("locked") {
                break;
            }
            last = t.run(&["objects", "--login", "--pin", "0000"]);
        }
        assert!(last.stderr.contains("locked"), "{last:?}");
        t.run(&["objects", "--login", "--pin", PIN])
            .fails(1, "CKR_PIN_LOCKED");
        let o = t.run(&["slots"]).ok();
        assert!(o.stdout.contains("user PIN:      locked"), "{}", o.stdout);
        t.run(&["pin", "unblock", "--so-pin", SO_PIN, "--new-pin", PIN])
            .ok();
        t.run(&["objects", "--login", "--pin", PIN]).ok();
    }
});

on_each_backend!(import_rsa_pem_and_certificate, |t: &Tok| {
    make_fixtures(t.dir.path());
    t.init("rsa");
    let id = openssl_key_id(t.dir.path(), "rsa.key", false);
    let Some(o) = t.import(&["rsa.key", "--label", "signer", "--pin", PIN]) else {
        return;
    };
    let o = o.ok();
    assert!(
        o.stdout.contains("Imported privkey \"signer\""),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(&format!("id {id} (RSA 2048)")),
        "{}",
        o.stdout
    );
    // The certificate alone finds the same ID (SHA-1 of the modulus) and the key's label.
    let o = t.import(&["rsa.crt", "--pin", PIN]).unwrap().ok();
    assert!(
        o.stdout
            .contains(&format!("Imported cert \"signer\" id {id}")),
        "{}",
        o.stdout
    );

    let objs = t.objects_json();
    let k = find(&objs, "privkey", &id);
    assert_eq!(k["label"], "signer");
    assert_eq!(k["key_type"], "RSA");
    assert_eq!(k["bits"], 2048);
    assert_eq!(k["private"], true);
    let flags = k["flags"].as_array().unwrap();
    assert!(
        flags.contains(&"sign".into()) && flags.contains(&"sensitive".into()),
        "{k}"
    );
    assert!(!flags.contains(&"extractable".into()), "{k}");
    let p = find(&objs, "pubkey", &id);
    assert_eq!(p["bits"], 2048);
    let c = find(&objs, "cert", &id);
    let cert = &c["certificate"];
    assert!(
        cert["subject"].as_str().unwrap().contains("CN=RSA Signer"),
        "{c}"
    );
    assert_eq!(cert["key"], "RSA 2048");
    assert_eq!(cert["expired"], false);

    // The imported key signs, and OpenSSL verifies with the original public key.
    t.sign_with_pkcs11_tool_and_verify(&id, "rsa.key", false);

    // The table.
    let o = t.run(&["objects", "--login", "--pin", PIN]).ok();
    let table = o.stdout;
    assert!(table.starts_with("CLASS"), "{table}");
    for want in [
        "privkey",
        "pubkey",
        "cert",
        "RSA 2048",
        "X.509 RSA 2048",
        "CN=RSA Signer",
        "valid ",
    ] {
        assert!(table.contains(want), "no {want:?} in\n{table}");
    }
    // Without login: no private key.
    let o = t.run(&["objects"]).ok();
    assert!(!o.stdout.contains("privkey"), "{}", o.stdout);
    assert!(o.stdout.contains("pubkey"), "{}", o.stdout);

    // Importing the same key again is refused, and names the way out.
    t.import(&["rsa1.key", "--pin", PIN])
        .unwrap()
        .fails(1, "already has a privkey with ID");
    // PKCS#1 PEM with another ID.
    let o = t
        .import(&["rsa1.key", "--id", "0a0b", "--label", "pkcs1", "--pin", PIN])
        .unwrap()
        .ok();
    assert!(o.stdout.contains("id 0a0b (RSA 2048)"), "{}", o.stdout);
    // The DER certificate, given the format.
    t.import(&["rsa.der", "--format", "der", "--id", "0a0b", "--pin", PIN])
        .unwrap()
        .ok();
    let objs = t.objects_json();
    find(&objs, "cert", "0a0b");
});

on_each_backend!(import_ec_keys_and_encrypted_pkcs8, |t: &Tok| {
    make_fixtures(t.dir.path());
    t.init("ec");
    let id = openssl_key_id(t.dir.path(), "ec.key", true);
    // SEC1 "EC PRIVATE KEY" PEM.
    let Some(o) = t.import(&["ec1.key", "--pin", PIN]) else {
        return;
    };
    let o = o.ok();
    assert!(
        o.stdout.contains(&format!("id {id} (EC P-256)")),
        "{}",
        o.stdout
    );
    // DER certificate, detected.
    t.import(&["ec.der", "--pin", PIN]).unwrap().ok();
    let objs = t.objects_json();
    let k = find(&objs, "privkey", &id);
    assert_eq!(k["key_type"], "EC");
    assert_eq!(k["curve"], "P-256");
    assert_eq!(find(&objs, "cert", &id)["certificate"]["key"], "EC P-256");
    let flags = k["flags"].as_array().unwrap();
    assert!(
        flags.contains(&"sign".into()) && !flags.contains(&"decrypt".into()),
        "{k}"
    );
    t.sign_with_pkcs11_tool_and_verify(&id, "ec.key", true);

    // Encrypted PKCS#8: wrong passphrase, then right one (from the environment).
    t.import(&[
        "ec-enc.key",
        "--id",
        "e1",
        "--passphrase",
        "nope",
        "--pin",
        PIN,
    ])
    .unwrap()
    .fails(1, "wrong passphrase");
    t.import(&["ec-enc.key", "--id", "e1", "--pin", PIN])
        .unwrap()
        .fails(1, "no passphrase given");
    let o = t.run_env(
        &["import", "ec-enc.key", "--id", "e1", "--pin", PIN],
        &[("KLYUCH_PASSPHRASE", "pass")],
    );
    let o = o.ok();
    assert!(o.stdout.contains("id e1 (EC P-256)"), "{}", o.stdout);
    // PKCS#8 DER with --format pkcs8.
    t.import(&["ec8.der", "--format", "pkcs8", "--id", "e2", "--pin", PIN])
        .unwrap()
        .ok();
    let objs = t.objects_json();
    find(&objs, "privkey", "e1");
    find(&objs, "pubkey", "e2");
});

on_each_backend!(import_pkcs12, |t: &Tok| {
    make_fixtures(t.dir.path());
    t.init("p12");
    let rsa_id = openssl_key_id(t.dir.path(), "rsa.key", false);
    let Some(o) = t.import(&["rsa.p12", "--passphrase", "pass", "--pin", PIN]) else {
        return;
    };
    let o = o.ok();
    // Label from the friendly name; key, public key and certificate share the ID.
    for kind in ["privkey", "pubkey", "cert"] {
        assert!(
            o.stdout
                .contains(&format!("Imported {kind} \"rsa-p12\" id {rsa_id}")),
            "{kind}: {}",
            o.stdout
        );
    }
    assert!(o.stdout.contains("(PKCS#12)"), "{}", o.stdout);
    t.import(&["ec-legacy.p12", "--passphrase", "wrong", "--pin", PIN])
        .unwrap()
        .fails(1, "wrong passphrase for the PKCS#12 file");
    std::fs::write(t.path("pass.txt"), "pass\n").unwrap();
    let o = t
        .import(&[
            "ec-legacy.p12",
            "--format",
            "pkcs12",
            "--passphrase-file",
            "pass.txt",
            "--label",
            "legacy",
            "--id",
            "1e",
            "--pin",
            PIN,
        ])
        .unwrap()
        .ok();
    assert!(
        o.stdout.contains("Imported cert \"legacy\" id 1e"),
        "{}",
        o.stdout
    );
    t.sign_with_pkcs11_tool_and_verify("1e", "ec.key", true);
    t.sign_with_pkcs11_tool_and_verify(&rsa_id, "rsa.key", false);
    let objs = t.objects_json();
    assert_eq!(find(&objs, "privkey", "1e")["curve"], "P-256");
    assert_eq!(find(&objs, "cert", &rsa_id)["label"], "rsa-p12");
});

on_each_backend!(import_chain, |t: &Tok| {
    make_fixtures(t.dir.path());
    t.init("chain");
    let ca_id = openssl_key_id(t.dir.path(), "ca.key", false);
    let Some(o) = t.import(&[
        "chain.p12",
        "--passphrase",
        "pass",
        "--label",
        "leaf",
        "--pin",
        PIN,
    ]) else {
        return;
    };
    let o = o.ok();
    // The key, its public key and its certificate get the label; the CA certificate keeps its
    // own key's ID and its CN.
    assert!(o.stdout.contains("Imported cert \"leaf\""), "{}", o.stdout);
    assert!(
        o.stdout
            .contains(&format!("Imported cert \"Test CA\" id {ca_id}")),
        "{}",
        o.stdout
    );
    let objs = t.objects_json();
    assert_eq!(objs.len(), 4, "{objs:#?}");
    let ca = find(&objs, "cert", &ca_id);
    assert_eq!(ca["certificate"]["subject"], "CN=Test CA");
    let leaf = objs
        .iter()
        .find(|o| o["class"] == "cert" && o["label"] == "leaf")
        .unwrap();
    assert_eq!(leaf["certificate"]["issuer"], "CN=Test CA");
    assert_eq!(leaf["certificate"]["key"], "EC P-384");
    // The same chain as PEM into a second token: same result, ID from the key.
    t.init("chain2");
    let o = t
        .import(&["chain.pem", "--token", "chain2", "--pin", PIN])
        .unwrap()
        .ok()
        .stdout;
    assert!(o.contains("Imported privkey \"Leaf\""), "{o}");
    assert!(o.contains("(EC P-384)"), "{o}");
});

on_each_backend!(delete_objects, |t: &Tok| {
    make_fixtures(t.dir.path());
    t.init("del");
    let Some(o) = t.import(&[
        "rsa.p12",
        "--passphrase",
        "pass",
        "--id",
        "01",
        "--pin",
        PIN,
    ]) else {
        return;
    };
    o.ok();
    t.import(&["ec.key", "--id", "02", "--label", "ec", "--pin", PIN])
        .unwrap()
        .ok();
    // No terminal to confirm on and no --yes: nothing happens.
    t.run(&["delete", "--id", "01", "--pin", PIN])
        .fails(2, "add --yes");
    assert_eq!(t.objects_json().len(), 5);
    let o = t
        .run(&[
            "delete", "--id", "01", "--class", "cert", "--yes", "--pin", PIN,
        ])
        .ok();
    assert!(
        o.stdout.contains("Deleted cert \"rsa-p12\" id 01"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("1 object(s) deleted."), "{}", o.stdout);
    let o = t
        .run(&["delete", "--label", "rsa-p12", "--yes", "--pin", PIN])
        .ok();
    assert!(o.stdout.contains("2 object(s) deleted."), "{}", o.stdout);
    t.run(&["delete", "--id", "01", "--yes", "--pin", PIN])
        .fails(1, "no object matches");
    t.run(&["delete", "--id", "zz", "--yes"])
        .fails(2, "not a hex ID");
    t.run(&["delete", "--yes"]).fails(2, "required");
    let left = t.objects_json();
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left.iter().all(|o| o["id"] == "02"));
    t.run(&["delete", "--id", "02", "--label", "ec", "-y", "--pin", PIN])
        .ok();
    assert!(t.objects_json().is_empty());
});

on_each_backend!(bad_input_files, |t: &Tok| {
    t.init("bad");
    std::fs::write(t.path("junk.bin"), b"\x01\x02 not a key").unwrap();
    t.run(&["import", "junk.bin", "--pin", PIN])
        .fails(1, "not a certificate, private key");
    t.run(&["import", "missing.pem", "--pin", PIN])
        .fails(1, "cannot read missing.pem");
    std::fs::write(
        t.path("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    t.run(&["import", "broken.pem", "--pin", PIN])
        .fails(1, "PEM block 1 (CERTIFICATE)");
    t.run(&["import", "junk.bin", "--format", "pkcs12", "--pin", PIN])
        .fails(1, "not a PKCS#12 file");
    t.run(&["import", "junk.bin", "--format", "xml"])
        .fails(2, "invalid value");
    // Nothing was created.
    assert!(t.objects_json().is_empty());
});

#[test]
fn no_module_is_a_clear_error() {
    let o = std::process::Command::new(klyuch_bin())
        .args(["--module", "/nonexistent/lib.so", "slots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not exist"), "{err}");
    let o = std::process::Command::new(klyuch_bin())
        .args(["--module", "/etc/hostname", "slots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot load the PKCS#11 module"), "{err}");
}
