//! The objects worker: many objects on a token, `C_FindObjects` on both modules in this
//! process, and module start measured in fresh processes (the probe).

use super::WorkerPlan;
use super::crypto::P256_OID;
use super::measure::{Group, Msg, Runner, note, progress, run_rounds, send};
use super::p11::{Call, Tok, USER_PIN, call, ck};
use super::spec::{FindBy, RowKind, RowSpec, Who};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const LABEL: &str = "objects";

pub fn object_id(i: usize) -> Vec<u8> {
    format!("obj{i:06}").into_bytes()
}

fn object_label(i: usize) -> String {
    format!("object {i}")
}

/// The object `i` of the mix: every 100th a private AES secret key, the others alternately a
/// public EC public key and a private EC private key (one P-256 key's values, each object its
/// own CKA_ID and CKA_LABEL). Token objects.
fn template(i: usize, scalar: &[u8], point: &[u8]) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Token(true),
        Attribute::Id(object_id(i)),
        Attribute::Label(object_label(i).into_bytes()),
    ];
    if i % 100 == 99 {
        t.extend([
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Value(vec![(i % 251) as u8; 32]),
        ]);
    } else if i.is_multiple_of(2) {
        t.extend([
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(P256_OID.to_vec()),
            Attribute::EcPoint(point.to_vec()),
        ]);
    } else {
        t.extend([
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::EcParams(P256_OID.to_vec()),
            Attribute::Value(scalar.to_vec()),
        ]);
    }
    t
}

/// Objects of the mix among the first `n`: (secret keys).
fn secret_keys(n: usize) -> usize {
    n / 100
}

fn find_template(by: FindBy, n: usize) -> (Vec<Attribute>, usize) {
    let mid = n / 2;
    match by {
        FindBy::Id => (vec![Attribute::Id(object_id(mid))], usize::from(n > 0)),
        FindBy::Label => (
            vec![Attribute::Label(object_label(mid).into_bytes())],
            usize::from(n > 0),
        ),
        FindBy::Class => (
            vec![Attribute::Class(ObjectClass::SECRET_KEY)],
            secret_keys(n),
        ),
    }
}

pub fn run(plan: &WorkerPlan, specs: &[RowSpec]) {
    progress("objects: loading the modules");
    let toks: Vec<(Who, Result<Tok, String>)> = vec![
        (Who::Klyuch, Tok::open(&plan.klyuch, Who::Klyuch, LABEL)),
        (Who::SoftHsm, Tok::open(&plan.softhsm, Who::SoftHsm, LABEL)),
    ];
    let (scalar, point) = match EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING) {
        Ok(kp) => {
            let scalar = kp
                .private_key()
                .as_be_bytes()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default();
            let q = kp.public_key().as_ref();
            let mut point = vec![0x04, q.len() as u8];
            point.extend_from_slice(q);
            (scalar, point)
        }
        Err(_) => (Vec::new(), Vec::new()),
    };
    let mut sizes: Vec<usize> = specs
        .iter()
        .filter_map(|s| match s.kind {
            RowKind::Start { objects, .. } | RowKind::Find { objects, .. } => Some(objects),
            _ => None,
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    // Objects already on each token; a token that failed is left out.
    let mut have = vec![0usize; toks.len()];
    let mut broken: Vec<Option<String>> = toks
        .iter()
        .map(|(_, t)| t.as_ref().err().cloned())
        .collect();
    for &n in &sizes {
        for (i, (who, tok)) in toks.iter().enumerate() {
            let Ok(tok) = tok else { continue };
            if broken[i].is_some() || have[i] >= n {
                continue;
            }
            progress(format!(
                "objects: creating {} objects on {}",
                n - have[i],
                who.name()
            ));
            let start = Instant::now();
            for k in have[i]..n {
                if let Err(e) = tok.s.create_object(&template(k, &scalar, &point)) {
                    broken[i] = Some(format!("creating object {k}: {}", ck(e)));
                    break;
                }
            }
            note(format!(
                "{}: C_CreateObject of objects {}..{} took {:.1} s in all",
                who.name(),
                have[i],
                n,
                start.elapsed().as_secs_f64()
            ));
            have[i] = n;
        }
        let mut groups = Vec::new();
        for spec in specs {
            let objects = match spec.kind {
                RowKind::Start { objects, .. } | RowKind::Find { objects, .. } => objects,
                _ => continue,
            };
            if objects != n {
                continue;
            }
            let mut g = Group::new(&spec.id);
            for (i, (who, tok)) in toks.iter().enumerate() {
                if let Some(e) = &broken[i] {
                    g.na(*who, e.clone());
                    continue;
                }
                let Ok(tok) = tok else { continue };
                match runner(plan, spec, tok, n) {
                    Ok(r) => g.add(*who, r),
                    Err(e) => g.na(*who, e),
                }
            }
            // Module start: one fresh process per contender and round.
            g.once = matches!(spec.kind, RowKind::Start { .. });
            groups.push(g);
        }
        run_rounds(
            &mut groups,
            plan.rounds,
            plan.seconds,
            &format!("objects ({n})"),
        );
    }
}

fn runner<'a>(
    plan: &WorkerPlan,
    spec: &RowSpec,
    tok: &'a Tok,
    n: usize,
) -> Result<Runner<'a>, String> {
    match spec.kind {
        RowKind::Find { by, .. } => {
            let (t, expect) = find_template(by, n);
            let found = tok.s.find_objects(&t).map_err(ck)?.len();
            if found != expect {
                return Err(format!("found {found} objects, expected {expect}"));
            }
            let c = Call::Find {
                template: Arc::new(t),
            };
            let mut buf = Vec::new();
            Ok(Runner::One(Box::new(move || call(&tok.s, &c, &mut buf))))
        }
        RowKind::Start { login, .. } => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let module = if tok.who == Who::Klyuch {
                plan.klyuch.clone()
            } else {
                plan.softhsm.clone()
            };
            let row = spec.id.clone();
            let who = tok.who;
            Ok(Runner::Rate(Box::new(move |_secs| {
                let phases = start_probe(&exe, &module, login, n)?;
                let total: f64 = phases.iter().map(|(_, t)| t).sum();
                for (name, t) in &phases {
                    send(&Msg::Sample {
                        row: format!("phase|{row}|{name}"),
                        who,
                        v: *t,
                    });
                }
                Ok((1.0, total))
            })))
        }
        _ => Err("not an objects row".into()),
    }
}

/// Run one probe process (same environment as this worker) and read its phases.
fn start_probe(
    exe: &Path,
    module: &Path,
    login: bool,
    n: usize,
) -> Result<Vec<(String, f64)>, String> {
    let mut cmd = Command::new(exe);
    cmd.arg("--module")
        .arg(module)
        .args(["bench", "--worker", "probe", "--probe-id"])
        .arg(hex::encode(object_id(n / 2)))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .stdout(Stdio::piped());
    if login {
        cmd.arg("--probe-login");
    }
    let out = cmd.output().map_err(|e| format!("probe: {e}"))?;
    for line in out.stdout.lines() {
        let line = line.map_err(|e| e.to_string())?;
        match serde_json::from_str::<Msg>(&line) {
            Ok(Msg::Probe { phases }) => return Ok(phases),
            Ok(Msg::Na { why, .. }) => return Err(why),
            _ => {}
        }
    }
    Err(format!("the probe ended without a result ({})", out.status))
}

/// The probe: one module start, as an application does it, timed phase by phase.
pub fn probe(module: &Path, id_hex: &str, login: bool) {
    let fail = |why: String| {
        send(&Msg::Na {
            row: String::new(),
            who: Who::Klyuch,
            why,
        })
    };
    let id = match hex::decode(id_hex) {
        Ok(id) => id,
        Err(e) => return fail(e.to_string()),
    };
    let mut phases = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &str, phases: &mut Vec<(String, f64)>| {
        phases.push((name.to_string(), t.elapsed().as_secs_f64()));
        t = Instant::now();
    };
    let p11 = match Pkcs11::new(module) {
        Ok(p) => p,
        Err(e) => return fail(ck(e)),
    };
    lap("dlopen + C_GetFunctionList", &mut phases);
    if let Err(e) = p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        return fail(ck(e));
    }
    lap("C_Initialize", &mut phases);
    let slot = match Tok::find_slot(&p11, LABEL) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    lap("C_GetSlotList + C_GetTokenInfo", &mut phases);
    let s = match p11.open_ro_session(slot) {
        Ok(s) => s,
        Err(e) => return fail(ck(e)),
    };
    lap("C_OpenSession", &mut phases);
    if login {
        if let Err(e) = s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into()))) {
            return fail(ck(e));
        }
        lap("C_Login", &mut phases);
    }
    match s.find_objects(&[Attribute::Id(id)]) {
        Ok(found) => std::hint::black_box(found),
        Err(e) => return fail(ck(e)),
    };
    lap("first C_FindObjects (CKA_ID)", &mut phases);
    send(&Msg::Probe { phases });
    // Leave without C_Finalize: the measurement is done, and teardown is not part of it.
    std::process::exit(0);
}
