//! Measuring: a contender's operation run in a loop for a time budget, rounds with the
//! contenders alternating, and the messages a worker sends to the parent.

use super::spec::Who;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::{Barrier, Mutex};
use std::time::Instant;

/// One line a worker writes on its stdout (JSON).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Msg {
    /// One round's value: operations per second.
    Sample { row: String, who: Who, v: f64 },
    /// The contender cannot do this row (and why).
    Na { row: String, who: Who, why: String },
    /// A fact for the notes under the table (set-up times, key parameters, ...).
    Note { text: String },
    /// Progress, for the terminal only.
    Progress { text: String },
    /// A start probe's phases in seconds, in order.
    Probe { phases: Vec<(String, f64)> },
}

static OUT: Mutex<()> = Mutex::new(());

pub fn send(m: &Msg) {
    let _g = OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = std::io::stdout().lock();
    // The parent reads line by line; a broken pipe means it is gone, and so are we.
    if serde_json::to_writer(&mut out, m).is_err()
        || out.write_all(b"\n").is_err()
        || out.flush().is_err()
    {
        std::process::exit(1);
    }
}

pub fn note(text: impl Into<String>) {
    send(&Msg::Note { text: text.into() });
}

pub fn progress(text: impl Into<String>) {
    send(&Msg::Progress { text: text.into() });
}

pub type OpResult = Result<(), String>;
/// A rate measured elsewhere: budget in seconds → (operations, seconds).
pub type RateFn<'a> = dyn FnMut(f64) -> Result<(f64, f64), String> + 'a;

/// How one contender performs one row.
pub enum Runner<'a> {
    /// One thread calling the operation in a loop.
    One(Box<dyn FnMut() -> OpResult + 'a>),
    /// One closure per thread (each with its own session), all started together.
    Threads(Vec<Box<dyn FnMut() -> OpResult + Send + 'a>>),
    /// Measured elsewhere (a helper process, a fresh process per run): given a time budget in
    /// seconds, returns (operations, seconds) done.
    Rate(Box<RateFn<'a>>),
}

/// Call `f` until `secs` have passed, at least once: (calls, seconds).
fn run_for(f: &mut (dyn FnMut() -> OpResult + '_), secs: f64) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        f()?;
        n += 1;
        let t = start.elapsed().as_secs_f64();
        if t >= secs {
            return Ok((n as f64, t));
        }
    }
}

/// One slice of about `secs` seconds: (operations, seconds). With threads, the operations of
/// all threads over the slice (the sum of each thread's own rate, times the slice).
fn slice(r: &mut Runner<'_>, secs: f64) -> Result<(f64, f64), String> {
    match r {
        Runner::One(f) => run_for(f.as_mut(), secs),
        Runner::Rate(f) => f(secs),
        Runner::Threads(fs) => {
            let barrier = Barrier::new(fs.len());
            let results: Vec<Result<(f64, f64), String>> = std::thread::scope(|s| {
                let handles: Vec<_> = fs
                    .iter_mut()
                    .map(|f| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            run_for(f.as_mut(), secs)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
                    .collect()
            });
            let mut rate = 0.0;
            let mut longest: f64 = 0.0;
            for r in results {
                let (n, t) = r?;
                rate += n / t;
                longest = longest.max(t);
            }
            Ok((rate * longest, longest))
        }
    }
}

/// One untimed operation (per thread), so that first-use costs stay out of the figures.
fn warm_up(r: &mut Runner<'_>) -> OpResult {
    match r {
        Runner::One(f) => f(),
        Runner::Threads(fs) => fs.iter_mut().try_for_each(|f| f()),
        // Helpers warm up themselves; a start probe must not be run twice.
        Runner::Rate(_) => Ok(()),
    }
}

/// One measurement of a single contender: operations per second over about `secs`.
#[cfg(test)]
pub fn measure_once(r: &mut Runner<'_>, secs: f64) -> Result<f64, String> {
    warm_up(r)?;
    let (n, t) = slice(r, secs)?;
    Ok(n / t)
}

/// How long each contender runs before the next one takes over, within a measurement.
const SLICE: f64 = 0.02;

/// One contender of one row.
pub struct Entry<'a> {
    pub who: Who,
    pub runner: Runner<'a>,
}

/// The contenders of one row.
pub struct Group<'a> {
    pub row: String,
    pub entries: Vec<Entry<'a>>,
    /// One slice per contender and round, whatever the budget (module start: one process).
    pub once: bool,
}

impl<'a> Group<'a> {
    pub fn new(row: &str) -> Self {
        Group {
            row: row.to_string(),
            entries: Vec::new(),
            once: false,
        }
    }

    pub fn add(&mut self, who: Who, runner: Runner<'a>) {
        self.entries.push(Entry { who, runner });
    }

    /// A contender that cannot run this row.
    pub fn na(&self, who: Who, why: impl Into<String>) {
        send(&Msg::Na {
            row: self.row.clone(),
            who,
            why: why.into(),
        });
    }

    /// One round: every contender gets about `secs` seconds, in slices of [`SLICE`] that
    /// alternate between the contenders (A B, B A, A B, ...), so that the machine's load, which
    /// changes from one second to the next on a shared machine, falls on all of them alike.
    /// Returns each contender's operations per second (`None`: it failed, and why).
    fn round(&mut self, secs: f64, dead: &mut [bool]) -> Vec<Option<Result<f64, String>>> {
        let n = self.entries.len();
        let mut out: Vec<Option<Result<f64, String>>> = (0..n).map(|_| None).collect();
        let mut acc = vec![(0.0f64, 0.0f64); n];
        for (i, e) in self.entries.iter_mut().enumerate() {
            if !dead[i] {
                if let Err(why) = warm_up(&mut e.runner) {
                    dead[i] = true;
                    out[i] = Some(Err(why));
                }
            }
        }
        let mut k = 0usize;
        loop {
            let mut order: Vec<usize> = (0..n).collect();
            if k % 2 == 1 {
                order.reverse();
            }
            k += 1;
            for i in order {
                if dead[i] || (k > 1 && acc[i].1 >= secs) {
                    continue;
                }
                match slice(&mut self.entries[i].runner, SLICE.min(secs)) {
                    Ok((ops, t)) => {
                        acc[i].0 += ops;
                        acc[i].1 += t;
                    }
                    Err(why) => {
                        dead[i] = true;
                        out[i] = Some(Err(why));
                    }
                }
            }
            if self.once || (0..n).all(|i| dead[i] || acc[i].1 >= secs) {
                break;
            }
        }
        for i in 0..n {
            if out[i].is_none() && !dead[i] && acc[i].1 > 0.0 {
                out[i] = Some(Ok(acc[i].0 / acc[i].1));
            }
        }
        out
    }
}

/// `rounds` rounds over all groups (see [`Group::round`]); each round gives one value per
/// contender. A contender that fails is reported once and left out afterwards.
pub fn run_rounds(groups: &mut [Group<'_>], rounds: usize, secs: f64, what: &str) {
    let mut dead: Vec<Vec<bool>> = groups
        .iter()
        .map(|g| vec![false; g.entries.len()])
        .collect();
    for round in 0..rounds {
        progress(format!("{what}: round {}/{rounds}", round + 1));
        for (g, dead) in groups.iter_mut().zip(dead.iter_mut()) {
            for (i, r) in g.round(secs, dead).into_iter().enumerate() {
                let who = g.entries[i].who;
                match r {
                    Some(Ok(v)) => send(&Msg::Sample {
                        row: g.row.clone(),
                        who,
                        v,
                    }),
                    Some(Err(why)) => send(&Msg::Na {
                        row: g.row.clone(),
                        who,
                        why,
                    }),
                    None => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_calls() {
        let mut n = 0u32;
        let mut r = Runner::One(Box::new(|| {
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
            Ok(())
        }));
        let rate = measure_once(&mut r, 0.02).unwrap();
        drop(r);
        assert!(n >= 2);
        assert!(rate > 50.0 && rate < 600.0, "{rate}");
        let mut t = Runner::Threads(vec![
            Box::new(|| Ok(())) as Box<dyn FnMut() -> OpResult + Send>,
            Box::new(|| Ok(())),
        ]);
        assert!(measure_once(&mut t, 0.01).unwrap() > 1000.0);
        let mut bad = Runner::Threads(vec![
            Box::new(|| Ok(())) as Box<dyn FnMut() -> OpResult + Send>,
            Box::new(|| Err("no".to_string())),
        ]);
        assert_eq!(measure_once(&mut bad, 0.01), Err("no".to_string()));
    }
}
