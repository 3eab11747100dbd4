//! `klyuch bench`: Klyuch's PKCS#11 module and SoftHSMv2 side by side in one run, with the raw
//! aws-lc-rs primitives, OpenSSL's GOST engine and the `streebog` crate as further references.
//! A benchmark, not a test: it prints ratios and targets and never fails because of speed.
//!
//! How it runs: this process writes a temporary store for each module (`KLYUCH_TOKEN_DIR`,
//! `KLYUCH_CONF`, `KLYUCH_PCSC=0` for Klyuch, a `SOFTHSM2_CONF` with its own `tokendir` for
//! SoftHSM) and runs itself as workers with that environment (`--worker crypto|objects`): a
//! worker loads both modules through `cryptoki` and measures each row in rounds, the contenders
//! alternating, and sends its samples back as JSON lines. Module start is measured in a fresh
//! process per sample (`--worker probe`). The GOST engine and the raw-mechanism harness are
//! small C programs kept in `cli/bench/` and compiled here with `cc` at run time.

mod crypto;
mod measure;
mod objects;
mod p11;
mod spec;
mod table;

use crate::ctx;
use crate::error::{CliError, Result};
use clap::Args;
use measure::Msg;
use spec::{ALL_PARTS, Part, Who};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SOFTHSM_DEFAULT: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The C helpers, compiled at run time: (name, source, extra cc arguments).
const TOOLS: &[(&str, &str, &[&str])] = &[
    (
        "gost_engine_speed",
        include_str!("../../bench/gost_engine_speed.c"),
        &["-lcrypto"],
    ),
    (
        "p11_mech_speed",
        include_str!("../../bench/p11_mech_speed.c"),
        &["-I/usr/include/p11-kit-1", "-ldl"],
    ),
];

#[derive(Args, Debug)]
#[command(after_help = "\
Klyuch's module is --module (or $KLYUCH_MODULE, or libklyuch_pkcs11.so next to klyuch); build \
it with `cargo build --release` first. Each module gets its own temporary store; nothing of \
yours is touched. Ratios are Klyuch's speed divided by the other's: above 1 means Klyuch is \
faster. Speed never makes the exit status non-zero.")]
pub struct BenchArgs {
    /// SoftHSMv2's module, loaded side by side with Klyuch's
    #[arg(long, value_name = "PATH", default_value = SOFTHSM_DEFAULT)]
    pub softhsm: PathBuf,
    /// Seconds per measurement (one contender, one round) [default: 0.25; --quick: 0.05]
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Rounds; each value is the median over the rounds [default: 7; --quick: 3]
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// A short run (about a minute): fewer and shorter rounds, at most 1,000 objects
    #[arg(long)]
    pub quick: bool,
    /// Print the table as Markdown (for the README)
    #[arg(long)]
    pub markdown: bool,
    /// Only these parts (comma-separated) [default: all]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PARTS")]
    pub only: Vec<Part>,
    /// Where the temporary token stores go [default: /dev/shm when writable, else the temporary
    /// folder]. SoftHSM rewrites an object file once per attribute (open, ftruncate, write):
    /// 10,000 objects take half an hour on a slow disk and seconds on tmpfs. Both modules' stores
    /// go to the same place.
    #[arg(long, value_name = "DIR")]
    pub store_dir: Option<PathBuf>,
    /// Only the rows whose id contains this text (ids: sign/eddsa/1, digest/sha256/64,
    /// find/CKA_ID/10000, gost/sign/256, ...; for profiling one operation)
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Object counts for module start and C_FindObjects [default: 0,100,1000,10000; --quick:
    /// 0,100,1000]
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub objects: Vec<usize>,

    // Internal: the worker processes.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
    #[arg(long, hide = true)]
    pub tools: Option<PathBuf>,
    #[arg(long, hide = true)]
    pub probe_id: Option<String>,
    #[arg(long, hide = true)]
    pub probe_login: bool,
}

impl BenchArgs {
    fn parts(&self) -> Vec<Part> {
        if self.only.is_empty() {
            ALL_PARTS.to_vec()
        } else {
            ALL_PARTS
                .into_iter()
                .filter(|p| self.only.contains(p))
                .collect()
        }
    }

    /// The rows of this run.
    fn specs(&self) -> Vec<spec::RowSpec> {
        spec::rows(&self.parts(), &self.sizes())
            .into_iter()
            .filter(|s| {
                self.filter
                    .as_ref()
                    .is_none_or(|f| s.id.contains(f.as_str()))
            })
            .collect()
    }

    fn sizes(&self) -> Vec<usize> {
        if !self.objects.is_empty() {
            return self.objects.clone();
        }
        if self.quick {
            vec![0, 100, 1000]
        } else {
            vec![0, 100, 1000, 10_000]
        }
    }

    fn seconds(&self) -> f64 {
        self.seconds
            .unwrap_or(if self.quick { 0.05 } else { 0.25 })
            .max(0.0)
    }

    fn rounds(&self) -> usize {
        self.rounds.unwrap_or(if self.quick { 3 } else { 7 }).max(1)
    }
}

/// What a worker needs to know.
pub struct WorkerPlan {
    pub klyuch: PathBuf,
    pub softhsm: PathBuf,
    pub tools: PathBuf,
    pub rounds: usize,
    pub seconds: f64,
}

/// A compiled helper, or why there is none.
fn tool_or_reason(tools: &Path, name: &str) -> std::result::Result<PathBuf, String> {
    let p = tools.join(name);
    if p.is_file() {
        return Ok(p);
    }
    Err(std::fs::read_to_string(tools.join(format!("{name}.err")))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| format!("{name} was not built")))
}

pub fn run(module: Option<&Path>, a: &BenchArgs) -> Result<()> {
    match a.worker.as_deref() {
        None => parent(module, a),
        Some("probe") => {
            let module = module.ok_or_else(|| CliError::usage("--worker probe needs --module"))?;
            objects::probe(module, a.probe_id.as_deref().unwrap_or(""), a.probe_login);
            Ok(())
        }
        Some(w @ ("crypto" | "objects")) => {
            let plan = WorkerPlan {
                klyuch: ctx::resolve_module(module)?,
                softhsm: a.softhsm.clone(),
                tools: a.tools.clone().unwrap_or_default(),
                rounds: a.rounds(),
                seconds: a.seconds(),
            };
            let specs: Vec<spec::RowSpec> = a
                .specs()
                .into_iter()
                .filter(|s| (s.part == Part::Objects) == (w == "objects"))
                .collect();
            if w == "crypto" {
                crypto::run(&plan, &specs);
            } else {
                objects::run(&plan, &specs);
            }
            Ok(())
        }
        Some(other) => Err(CliError::usage(format!("unknown bench worker {other}"))),
    }
}

/// Facts about the machine, for the header.
struct Machine {
    date: String,
    cpus: usize,
    cpu: String,
    load_start: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// "2026-11-23 08:40 UTC" from the system clock (days to a civil date: H. Hinnant's algorithm).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn progress(text: &str) {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K{text}");
    } else {
        eprintln!("{text}");
    }
}

/// Compile the C helpers into `dir`; a helper that cannot be built leaves `NAME.err`.
fn build_tools(dir: &Path) {
    for (name, source, extra) in TOOLS {
        let src = dir.join(format!("{name}.c"));
        let result = std::fs::write(&src, source)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                Command::new("cc")
                    .args(["-O2", "-o"])
                    .arg(dir.join(name))
                    .arg(&src)
                    .args(*extra)
                    .output()
                    .map_err(|e| format!("cannot run cc: {e}"))
            })
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let first = err.lines().find(|l| l.contains("error")).unwrap_or("");
                    Err(format!(
                        "cc could not build cli/bench/{name}.c (Debian: apt-get install gcc \
                         libssl-dev libp11-kit-dev): {first}"
                    ))
                }
            });
        if let Err(e) = result {
            let _ = std::fs::write(dir.join(format!("{name}.err")), e);
        }
    }
}

/// Run one worker with its own stores; collect what it sends.
fn run_worker(
    role: &str,
    klyuch: &Path,
    a: &BenchArgs,
    stores: &Path,
    tools: &Path,
    results: &mut table::Results,
) -> Result<()> {
    let base = stores.join(role);
    let kdir = base.join("klyuch-tokens");
    let sdir = base.join("softhsm-tokens");
    let io = |e: std::io::Error| CliError::new(format!("bench: {e}"));
    std::fs::create_dir_all(&kdir).map_err(io)?;
    std::fs::create_dir_all(&sdir).map_err(io)?;
    // Klyuch: the defaults (PIN KDF, limits) a user gets; only the store is temporary.
    let kconf = base.join("klyuch.toml");
    std::fs::write(&kconf, "# klyuch bench: defaults\n").map_err(io)?;
    let sconf = base.join("softhsm2.conf");
    std::fs::write(
        &sconf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
             slots.removable = false\n",
            sdir.display()
        ),
    )
    .map_err(io)?;
    let exe = std::env::current_exe().map_err(io)?;
    let stderr_path = base.join("stderr");
    let stderr = std::fs::File::create(&stderr_path).map_err(io)?;
    let mut cmd = Command::new(exe);
    cmd.arg("--module")
        .arg(klyuch)
        .args(["bench", "--worker", role, "--softhsm"])
        .arg(&a.softhsm)
        .arg("--tools")
        .arg(tools)
        .args(["--rounds", &a.rounds().to_string()])
        .args(["--seconds", &a.seconds().to_string()]);
    let parts: Vec<String> = a
        .parts()
        .iter()
        .map(|p| format!("{p:?}").to_lowercase())
        .collect();
    cmd.args(["--only", &parts.join(",")]);
    let sizes: Vec<String> = a.sizes().iter().map(usize::to_string).collect();
    cmd.args(["--objects", &sizes.join(",")]);
    if a.quick {
        cmd.arg("--quick");
    }
    if let Some(f) = &a.filter {
        cmd.args(["--filter", f]);
    }
    cmd.env("KLYUCH_TOKEN_DIR", &kdir)
        .env("KLYUCH_CONF", &kconf)
        .env("KLYUCH_PCSC", "0")
        .env("SOFTHSM2_CONF", &sconf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut child = cmd.spawn().map_err(io)?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| CliError::new("bench: no pipe"))?;
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Msg>(&line) {
            Ok(Msg::Sample { row, who, v }) => {
                results.samples.entry((row, who)).or_default().push(v)
            }
            Ok(Msg::Na { row, who, why }) => {
                results.na.entry((row, who)).or_insert(why);
            }
            Ok(Msg::Note { text }) => results.notes.push(text),
            Ok(Msg::Progress { text }) => progress(&text),
            Ok(Msg::Probe { .. }) | Err(_) => {}
        }
    }
    let status = child.wait().map_err(io)?;
    if !status.success() {
        let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        results.notes.push(format!(
            "the {role} worker ended with {status}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(())
}

/// The median phases of the start probes, one line per row and module.
fn phase_notes(specs: &[spec::RowSpec], r: &table::Results) -> Vec<String> {
    let mut out = Vec::new();
    for s in specs.iter().filter(|s| s.part == Part::Objects) {
        for who in [Who::Klyuch, Who::SoftHsm] {
            let prefix = format!("phase|{}|", s.id);
            let mut phases: Vec<(&str, f64)> = r
                .samples
                .iter()
                .filter(|((row, w), _)| *w == who && row.starts_with(&prefix))
                .filter_map(|((row, _), v)| {
                    Some((&row[prefix.len()..], table::Stats::of(v)?.median))
                })
                .collect();
            if phases.is_empty() {
                continue;
            }
            // Probe phases come in a fixed order; keep it.
            const ORDER: [&str; 6] = [
                "dlopen",
                "C_Initialize",
                "C_GetSlotList",
                "C_OpenSession",
                "C_Login",
                "first",
            ];
            phases.sort_by_key(|(n, _)| ORDER.iter().position(|o| n.starts_with(o)));
            let list: Vec<String> = phases
                .iter()
                .map(|(n, t)| format!("{n} {}", table::duration(*t)))
                .collect();
            out.push(format!("{} ({}): {}", s.label, who.name(), list.join(", ")));
        }
    }
    out
}

fn parent(module: Option<&Path>, a: &BenchArgs) -> Result<()> {
    let klyuch = ctx::resolve_module(module)?;
    let klyuch = klyuch.canonicalize().map_err(|e| {
        CliError::new(format!(
            "the PKCS#11 module {} cannot be used: {e}; build it with cargo build --release",
            klyuch.display()
        ))
    })?;
    let specs = a.specs();
    let parts: Vec<Part> = a
        .parts()
        .into_iter()
        .filter(|p| specs.iter().any(|s| s.part == *p))
        .collect();
    let machine = Machine {
        date: utc_now(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        load_start: load_average(),
    };
    let tmp = tempfile::Builder::new()
        .prefix("klyuch-bench-")
        .tempdir()
        .map_err(|e| CliError::new(format!("bench: temporary folder: {e}")))?;
    let store_root = a.store_dir.clone().unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        let writable = tempfile::tempdir_in(&shm).is_ok();
        if writable { shm } else { std::env::temp_dir() }
    });
    let stores = tempfile::Builder::new()
        .prefix("klyuch-bench-")
        .tempdir_in(&store_root)
        .map_err(|e| {
            CliError::new(format!(
                "bench: temporary folder in {}: {e}",
                store_root.display()
            ))
        })?;
    let tools = tmp.path().join("tools");
    std::fs::create_dir_all(&tools).map_err(|e| CliError::new(format!("bench: {e}")))?;
    if parts.contains(&Part::Gost) {
        progress("compiling the C helpers (cli/bench/*.c)");
        build_tools(&tools);
    }
    let mut results = table::Results::default();
    let started = std::time::Instant::now();
    if parts.iter().any(|p| *p != Part::Objects) {
        run_worker("crypto", &klyuch, a, stores.path(), &tools, &mut results)?;
    }
    if parts.contains(&Part::Objects) {
        run_worker("objects", &klyuch, a, stores.path(), &tools, &mut results)?;
    }
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let load_end = load_average();
    let t = table::build(&specs, &results);

    let command = std::iter::once("klyuch".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let facts = [
        format!("date: {}", machine.date),
        format!(
            "machine: {} CPUs ({}), load average {} at the start, {} at the end",
            machine.cpus, machine.cpu, machine.load_start, load_end
        ),
        format!("command: `{command}`"),
        format!(
            "modules: Klyuch {}, SoftHSMv2 {}; token stores in {} (each module its own, \
             Klyuch with its default configuration)",
            klyuch.display(),
            a.softhsm.display(),
            store_root.display()
        ),
        format!(
            "method: {} rounds; in each round every contender runs {} s, in slices of 20 ms \
             that alternate between the contenders (A B B A ...), so load changes hit all alike; \
             module start: one fresh process per contender and round; value = median of the \
             rounds, ± = half their range relative to the median; ratio = median over the \
             rounds of Klyuch's speed / the other's in the same round (above 1: Klyuch is \
             faster), with its own ±; run time {:.0} s",
            a.rounds(),
            a.seconds(),
            started.elapsed().as_secs_f64()
        ),
    ];
    let mut notes = results.notes.clone();
    notes.extend(phase_notes(&specs, &results));
    if cfg!(debug_assertions) {
        notes.push("this klyuch is a debug build: the raw aws-lc-rs rows are slower than in a release build".into());
    }
    if a.markdown {
        for f in &facts {
            println!("- {f}");
        }
        println!();
        print!("{}", t.markdown());
        println!();
        for n in &notes {
            println!("- {n}");
        }
        println!();
        println!("{}", t.summary().replace("\n  ", "\n- "));
    } else {
        for f in &facts {
            println!("{f}");
        }
        println!();
        print!("{}", t.text());
        println!();
        for n in &notes {
            println!("note: {n}");
        }
        println!();
        println!("{}", t.summary());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_plausible() {
        let d = utc_now();
        assert_eq!(d.len(), "2026-11-23 08:40 UTC".len(), "{d}");
        assert!(d.starts_with("20"), "{d}");
    }

    #[test]
    fn helper_sources_are_embedded() {
        assert!(TOOLS.iter().all(|(_, src, _)| src.contains("int main")));
    }
}
