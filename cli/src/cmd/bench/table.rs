//! The results: medians and spreads of the rounds, ratios, targets, and the table (aligned
//! text or Markdown).

use super::spec::{RowSpec, Unit, Who};
use std::collections::HashMap;

/// Everything the workers sent.
#[derive(Default)]
pub struct Results {
    pub samples: HashMap<(String, Who), Vec<f64>>,
    pub na: HashMap<(String, Who), String>,
    pub notes: Vec<String>,
}

impl Results {
    pub fn stats(&self, row: &str, who: Who) -> Option<Stats> {
        Stats::of(self.samples.get(&(row.to_string(), who))?)
    }

    /// Klyuch's speed / `who`'s: the median of the per-round ratios (the two were measured in
    /// the same round, interleaved, so the machine's load cancels out), or the ratio of the
    /// medians when the rounds do not pair up (a contender that failed part-way).
    pub fn ratio(&self, row: &str, who: Who) -> Option<Stats> {
        let k = self.samples.get(&(row.to_string(), Who::Klyuch))?;
        let o = self.samples.get(&(row.to_string(), who))?;
        if k.len() == o.len() {
            let r: Vec<f64> = k.iter().zip(o).map(|(a, b)| a / b).collect();
            return Stats::of(&r);
        }
        let (k, o) = (Stats::of(k)?, Stats::of(o)?);
        (o.median > 0.0).then(|| Stats {
            median: k.median / o.median,
            spread: 0.0,
            n: 1,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub median: f64,
    /// Half the range of the rounds, relative to the median.
    pub spread: f64,
    pub n: usize,
}

impl Stats {
    pub fn of(v: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let spread = if median > 0.0 {
            (v[n - 1] - v[0]) / 2.0 / median
        } else {
            0.0
        };
        Some(Stats { median, spread, n })
    }
}

/// Thousands separators: 12345.6 → "12,346".
pub fn grouped(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time in seconds: "4.2 µs", "12.3 ms", "1.23 s".
pub fn duration(secs: f64) -> String {
    let (v, unit) = if secs < 1e-3 {
        (secs * 1e6, "µs")
    } else if secs < 1.0 {
        (secs * 1e3, "ms")
    } else {
        (secs, "s")
    };
    if v < 10.0 {
        format!("{v:.2} {unit}")
    } else if v < 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// A rate (operations/second) in the row's unit.
pub fn value(unit: Unit, rate: f64) -> String {
    match unit {
        Unit::Ops if rate < 100.0 => format!("{rate:.1}/s"),
        Unit::Ops => format!("{}/s", grouped(rate)),
        Unit::Bytes(n) => format!("{} MB/s", grouped(rate * n as f64 / 1e6)),
        Unit::Time => duration(1.0 / rate),
    }
}

fn with_spread(unit: Unit, s: &Stats) -> String {
    format!("{} ±{:.0}%", value(unit, s.median), s.spread * 100.0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Below,
    /// A target whose value is missing.
    Unmeasured,
}

/// One line of the table.
struct Line {
    cells: [String; 6],
}

pub struct Table {
    lines: Vec<Line>,
    footnotes: Vec<String>,
    pub verdicts: Vec<(String, Verdict)>,
}

const HEAD: [&str; 6] = ["operation", "Klyuch", "vs", "other", "ratio", "target"];
/// Columns aligned right in the text table.
const RIGHT: [bool; 6] = [false, true, false, true, true, false];

pub fn build(specs: &[RowSpec], r: &Results) -> Table {
    let mut t = Table {
        lines: Vec::new(),
        footnotes: Vec::new(),
        verdicts: Vec::new(),
    };
    let note = |why: &str, footnotes: &mut Vec<String>| -> String {
        let i = match footnotes.iter().position(|f| f == why) {
            Some(i) => i,
            None => {
                footnotes.push(why.to_string());
                footnotes.len() - 1
            }
        };
        format!("n/a [{}]", i + 1)
    };
    for spec in specs {
        let k = r.stats(&spec.id, Who::Klyuch);
        let k_cell = match (&k, r.na.get(&(spec.id.clone(), Who::Klyuch))) {
            (Some(s), _) => with_spread(spec.unit, s),
            (None, Some(why)) => note(&format!("Klyuch: {why}"), &mut t.footnotes),
            (None, None) => "–".into(),
        };
        for (j, (who, target)) in spec.refs.iter().enumerate() {
            let o = r.stats(&spec.id, *who);
            let o_cell = match (&o, r.na.get(&(spec.id.clone(), *who))) {
                (Some(s), _) => with_spread(spec.unit, s),
                (None, Some(why)) => note(&format!("{}: {why}", who.name()), &mut t.footnotes),
                (None, None) => "–".into(),
            };
            let rs = r.ratio(&spec.id, *who).filter(|x| x.median.is_finite());
            let ratio = rs.map(|x| x.median);
            let ratio_cell = rs
                .map(|r| {
                    if r.n > 1 {
                        format!("{:.2}x ±{:.0}%", r.median, r.spread * 100.0)
                    } else {
                        format!("{:.2}x", r.median)
                    }
                })
                .unwrap_or_default();
            let target_cell = match target {
                None => String::new(),
                Some(goal) => {
                    let v = match ratio {
                        Some(x) if x >= *goal => Verdict::Pass,
                        Some(_) => Verdict::Below,
                        None => Verdict::Unmeasured,
                    };
                    t.verdicts
                        .push((format!("{} vs {}", spec.label, who.name()), v));
                    let word = match v {
                        Verdict::Pass => "PASS",
                        Verdict::Below => "BELOW",
                        Verdict::Unmeasured => "not measured",
                    };
                    format!("≥ {goal}x {word}")
                }
            };
            t.lines.push(Line {
                cells: [
                    if j == 0 {
                        spec.label.clone()
                    } else {
                        String::new()
                    },
                    if j == 0 {
                        k_cell.clone()
                    } else {
                        String::new()
                    },
                    who.name().to_string(),
                    o_cell,
                    ratio_cell,
                    target_cell,
                ],
            });
        }
    }
    t
}

impl Table {
    pub fn text(&self) -> String {
        let mut w = HEAD.map(|h| h.chars().count());
        for l in &self.lines {
            for (i, c) in l.cells.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let fmt_line = |cells: &[String; 6]| -> String {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i] - c.chars().count();
                if i > 0 {
                    s.push_str("  ");
                }
                if RIGHT[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = fmt_line(&HEAD.map(String::from));
        let total: usize = w.iter().sum::<usize>() + 2 * (w.len() - 1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for l in &self.lines {
            out.push_str(&fmt_line(&l.cells));
        }
        out.push_str(&self.footnotes_text(""));
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", HEAD.join(" | "));
        out.push('|');
        for right in RIGHT {
            out.push_str(if right { "---:|" } else { "---|" });
        }
        out.push('\n');
        for l in &self.lines {
            let cells: Vec<String> = l.cells.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push_str(&self.footnotes_text("\n"));
        out
    }

    fn footnotes_text(&self, lead: &str) -> String {
        if self.footnotes.is_empty() {
            return String::new();
        }
        let mut out = lead.to_string();
        for (i, f) in self.footnotes.iter().enumerate() {
            out.push_str(&format!("[{}] {f}\n", i + 1));
            if !lead.is_empty() {
                // Markdown: one paragraph per note.
                out.push('\n');
            }
        }
        out
    }

    pub fn summary(&self) -> String {
        let count = |v: Verdict| self.verdicts.iter().filter(|(_, x)| *x == v).count();
        let mut s = format!(
            "targets: {} PASS, {} BELOW, {} not measured",
            count(Verdict::Pass),
            count(Verdict::Below),
            count(Verdict::Unmeasured)
        );
        for (what, v) in &self.verdicts {
            if *v == Verdict::Below {
                s.push_str(&format!("\n  BELOW: {what}"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::bench::spec::{Part, rows};

    #[test]
    fn stats_and_formats() {
        let s = Stats::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!((s.spread - 9.0 / 2.0 / 2.5).abs() < 1e-9);
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(grouped(1234567.4), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(duration(0.000_004_2), "4.20 µs");
        assert_eq!(duration(0.0123), "12.3 ms");
        assert_eq!(duration(1.5), "1.50 s");
        assert_eq!(value(Unit::Ops, 12345.0), "12,345/s");
        assert_eq!(value(Unit::Bytes(1 << 20), 100.0), "105 MB/s");
        assert_eq!(value(Unit::Time, 250.0), "4.00 ms");
    }

    #[test]
    fn table_shows_ratios_targets_and_missing_values() {
        let specs = rows(&[Part::Digest], &[]);
        let mut r = Results::default();
        let id = specs[0].id.clone();
        r.samples
            .insert((id.clone(), Who::Klyuch), vec![300.0, 310.0, 290.0]);
        r.samples
            .insert((id.clone(), Who::SoftHsm), vec![100.0, 100.0, 100.0]);
        r.na.insert((id, Who::Raw), "no | pipes".into());
        let t = build(&specs, &r);
        let text = t.text();
        assert!(text.contains("3.00x ±3%"), "{text}");
        assert!(text.contains("≥ 3x PASS"), "{text}");
        assert!(text.contains("[1] aws-lc-rs raw: no | pipes"), "{text}");
        let md = t.markdown();
        assert!(md.starts_with("| operation | Klyuch |"), "{md}");
        assert!(md.contains("---:|"));
        assert!(
            t.summary()
                .starts_with("targets: 1 PASS, 0 BELOW, 2 not measured"),
            "{}",
            t.summary()
        );
    }
}
