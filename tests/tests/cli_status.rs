//! Certificate validity in `klyuch objects` and `klyuch status`: a certificate that expires in
//! 10 days (`openssl x509 -req -days 10`) and one that expired in 2021 (`openssl ca -startdate
//! -enddate`), both issued for keys made by `klyuch keygen`; PIN states from the token flags;
//! `status` exits 3 while something has run out and 0 with warnings only.

mod cli_common;
use cli_common::{fails, issue, make_ca, ok, run, tool};
use klyuch_tests::{require, text, Fixture, USER_PIN};

const CA_CONF: &str = "\
[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial.txt
default_md = sha256
policy = p
unique_subject = no
copy_extensions = copy
[p]
commonName = supplied
";

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

#[test]
fn objects_and_status_show_days_left_and_warn() {
    require!("openssl");
    let bin = require_klyuch!();
    let f = Fixture::new();
    f.init_token("st");
    make_ca(&f);
    for (id, cn) in [("01", "Soon"), ("02", "Old")] {
        ok(
            &f,
            &bin,
            &[
                "--token", "st", "keygen", "--type", "ec:p256", "--id", id, "--label", cn, "--pin",
                USER_PIN,
            ],
        );
        ok(
            &f,
            &bin,
            &[
                "--token",
                "st",
                "csr",
                "--id",
                id,
                "--subject",
                &format!("/CN={cn}"),
                "--pin",
                USER_PIN,
                "-o",
                &format!("{id}.csr"),
            ],
        );
    }
    issue(&f, "01.csr", "soon.pem", "10", false);
    std::fs::write(f.path("ca.cnf"), CA_CONF).unwrap();
    std::fs::write(f.path("index.txt"), "").unwrap();
    std::fs::write(f.path("serial.txt"), "1000\n").unwrap();
    tool(
        &f,
        "openssl",
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "02.csr",
            "-out",
            "old.pem",
            "-notext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
        ],
    );
    for c in ["soon.pem", "old.pem"] {
        ok(&f, &bin, &["--token", "st", "import", c, "--pin", USER_PIN]);
    }

    // objects: days left in the table, warnings on stderr, days_left in JSON
    let o = run(&f, &bin, &["--token", "st", "objects"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        out.contains("expires in 10 days (under 30): renew it"),
        "{out}"
    );
    assert!(out.contains("EXPIRED"), "{out}");
    assert!(
        err.contains("warning: certificate \"Soon\" (id 01) expires in 10 days"),
        "{err}"
    );
    assert!(
        err.contains("warning: certificate \"Old\" (id 02) EXPIRED"),
        "{err}"
    );
    let v = json(&ok(&f, &bin, &["--token", "st", "objects", "--json"]));
    let certs: Vec<&serde_json::Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["class"] == "cert")
        .collect();
    assert_eq!(certs.len(), 2, "{v:#}");
    let soon = certs.iter().find(|c| c["id"] == "01").unwrap();
    assert_eq!(soon["certificate"]["days_left"], 10, "{soon:#}");
    assert_eq!(soon["certificate"]["expired"], false);
    let old = certs.iter().find(|c| c["id"] == "02").unwrap();
    assert_eq!(old["certificate"]["expired"], true);
    assert!(
        old["certificate"]["days_left"].as_i64().unwrap() < -1000,
        "{old:#}"
    );
    assert!(old["certificate"]["warning"]
        .as_str()
        .unwrap()
        .starts_with("EXPIRED"));

    // status: exit 3 while a certificate has expired
    let t = fails(
        &f,
        &bin,
        &["status"],
        3,
        "attention: 1 certificate is expired or not yet valid",
    );
    assert!(t.contains("Token \"st\" (slot"), "{t}");
    assert!(t.contains("user PIN: ok"), "{t}");
    assert!(t.contains("certificate \"Soon\" id 01: CN=Soon"), "{t}");
    assert!(t.contains("(10 days left)"), "{t}");
    assert!(t.contains("warning: expires in 10 days"), "{t}");
    assert!(t.contains("warning: EXPIRED"), "{t}");
    let o = run(&f, &bin, &["--token", "st", "status", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let tok = &v.as_array().unwrap()[0];
    assert_eq!(tok["label"], "st");
    assert_eq!(tok["user_pin"], "ok");
    assert_eq!(tok["certificates"].as_array().unwrap().len(), 2);
    // sorted by days left: the expired one first
    assert_eq!(tok["certificates"][0]["id"], "02");
    assert_eq!(tok["certificates"][1]["days_left"], 10);
    // a longer warning window
    let t = fails(&f, &bin, &["status", "--warn-days", "5"], 3, "attention");
    assert!(!t.contains("warning: expires in 10 days"), "{t}");

    // a wrong PIN shows in the PIN state
    fails(
        &f,
        &bin,
        &["--token", "st", "objects", "--login", "--pin", "9999"],
        1,
        "CKR_PIN_INCORRECT",
    );
    let t = fails(&f, &bin, &["status"], 3, "attention");
    assert!(
        t.contains("user PIN: ok, but wrong tries since the last login"),
        "{t}"
    );
    assert!(t.contains("warning: wrong user PINs were entered"), "{t}");

    // without the expired certificate: warnings only, exit 0
    ok(
        &f,
        &bin,
        &[
            "--token", "st", "delete", "--id", "02", "--class", "cert", "--yes", "--pin", USER_PIN,
        ],
    );
    ok(
        &f,
        &bin,
        &["--token", "st", "objects", "--login", "--pin", USER_PIN],
    );
    let t = ok(&f, &bin, &["status"]);
    assert!(t.contains("warning: expires in 10 days"), "{t}");
    assert!(!t.contains("EXPIRED"), "{t}");
}
