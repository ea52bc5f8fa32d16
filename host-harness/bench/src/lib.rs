//! `bbdc bench`: the performance suite behind `BENCHMARKS.md`.
//!
//! Every figure is measured side by side in one run (the component against the same core compiled
//! natively, the connector against a naive strategy, one allocator against another), so that a
//! shared, noisy machine moves both sides alike. Each figure is printed with its target; nothing
//! in the test suite asserts a time (the tests run the suite in `quick` mode and check only what
//! does not depend on the machine: request counts, exact diff totals, that every figure exists).
//!
//! The parts:
//! - [`fixtures`]: responses served from memory ([`fixtures::FixtureResponder`]) and the native
//!   host the core runs on for comparison ([`fixtures::NativeHost`]).
//! - [`core`]: webhook and page processing, wasm against native; per-call overhead; peak memory
//!   while counting a large diff.
//! - [`sync`]: sync against the simulator with added latency, beside a naive strategy
//!   ([`naive`]).
//! - [`serve`]: `bbdc serve` throughput with concurrent senders.
//! - [`rate`]: sync against a server that enforces Bitbucket's rate limit, with the client set
//!   to its budget and with no client-side limit (the adaptive limiter).
//! - [`scale`]: `bbdc sync` as a child process against instances of 1,000 to 50,000
//!   repositories: peak RSS and time per pull request as the instance grows.
//! - [`workers`]: 1, 2 and 4 `bbdc worker` processes sharing one sync through PostgreSQL:
//!   throughput against linear (`--only 9`).

pub mod core;
pub mod fixtures;
pub mod history;
pub mod naive;
pub mod rate;
pub mod scale;
pub mod serve;
pub mod sync;
pub mod workers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to run and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Small sizes and few iterations: checks the suite works (seconds), not the figures.
    pub quick: bool,
    /// Latency the simulator adds to each request in the sync benchmark.
    pub latency: Duration,
    /// Concurrency of the sync benchmark (both strategies).
    pub concurrency: usize,
    /// Concurrent senders in the serve benchmark.
    pub senders: usize,
    /// A component to load instead of the bundled one.
    pub component: Option<PathBuf>,
    /// Run only these benchmarks (1 to 7); empty: all.
    pub only: Vec<u8>,
    /// Run benchmark 8 (scale, tens of minutes): alone, or with those named in `only`.
    pub scale: bool,
    /// Instance sizes of benchmark 8, in repositories (empty: [`scale::SIZES`], or
    /// [`scale::QUICK_SIZES`] when `quick`).
    pub scale_sizes: Vec<usize>,
    /// The `bbdc` binary benchmark 8 runs `bbdc sync` with.
    pub bbdc: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            quick: false,
            latency: Duration::from_millis(20),
            concurrency: 4,
            senders: 32,
            component: None,
            only: Vec::new(),
            scale: false,
            scale_sizes: Vec::new(),
            bbdc: None,
        }
    }
}

impl BenchOptions {
    /// Whether benchmark `n` is selected: 8 only with `scale`; 9 (it needs the `bbdc` binary
    /// and a PostgreSQL server) only when `only` names it; 1 to 7 when `only` names them, or
    /// when `only` is empty and `scale` is not asked for.
    pub fn runs(&self, n: u8) -> bool {
        if n == 8 {
            return self.scale;
        }
        if n == 9 {
            return self.only.contains(&9);
        }
        if self.only.is_empty() {
            !self.scale
        } else {
            self.only.contains(&n)
        }
    }
}

/// A figure's target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At most this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
    /// Exactly this.
    Exactly(f64),
    /// Reported for comparison; no target.
    None,
}

impl Target {
    /// Whether `value` meets the target (`None` when there is no target).
    pub fn met(&self, value: f64) -> Option<bool> {
        match *self {
            Target::AtMost(t) => Some(value <= t),
            Target::AtLeast(t) => Some(value >= t),
            Target::Exactly(t) => Some((value - t).abs() < 1e-9),
            Target::None => None,
        }
    }

    /// The target as a table cell, e.g. `≤ 3`.
    pub fn describe(&self, unit: &str) -> String {
        let sep = if unit.is_empty() || unit == "×" {
            ""
        } else {
            " "
        };
        match *self {
            Target::AtMost(t) => format!("≤ {}{sep}{unit}", number(t)),
            Target::AtLeast(t) => format!("≥ {}{sep}{unit}", number(t)),
            Target::Exactly(t) => format!("= {}{sep}{unit}", number(t)),
            Target::None => "—".into(),
        }
    }
}

/// One line of the suite's output.
#[derive(Debug, Clone)]
pub struct Figure {
    /// The benchmark it belongs to (1 to 9).
    pub bench: u8,
    /// What is measured.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// Its unit (`×`, `µs`, `MiB`, `/s`, `ms`, or empty for counts).
    pub unit: &'static str,
    /// The target.
    pub target: Target,
    /// How it was measured, and the side-by-side numbers behind a ratio.
    pub detail: String,
}

impl Figure {
    /// `true`/`false` against the target; `None` without one.
    pub fn met(&self) -> Option<bool> {
        self.target.met(self.value)
    }

    /// The value with its unit.
    pub fn shown(&self) -> String {
        let sep = if self.unit.is_empty() || self.unit == "×" {
            ""
        } else {
            " "
        };
        format!("{}{sep}{}", number(self.value), self.unit)
    }
}

/// A number with sensible precision for a table.
pub fn number(v: f64) -> String {
    if (v == v.trunc() && v.abs() < 1e12) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The `q`-quantile (0 to 1) of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// Times two workloads side by side: `rounds` rounds, each running `iters` iterations of `a` and
/// then of `b`, alternating which goes first. Returns the median time per iteration of each, so
/// a burst of load from elsewhere on the machine spoils a round of both, not one side.
pub fn side_by_side(
    rounds: usize,
    iters: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (Duration, Duration) {
    let iters = iters.max(1);
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        start.elapsed() / u32::try_from(iters).unwrap_or(u32::MAX)
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..rounds.max(1) {
        if round % 2 == 0 {
            ta.push(time(&mut a));
            tb.push(time(&mut b));
        } else {
            tb.push(time(&mut b));
            ta.push(time(&mut a));
        }
    }
    (quantile(&mut ta, 0.5), quantile(&mut tb, 0.5))
}

/// Microseconds, for details.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs the selected benchmarks, handing each figure to `report` as soon as it is known.
pub fn run(options: &BenchOptions, mut report: impl FnMut(&Figure)) -> anyhow::Result<Vec<Figure>> {
    let mut all = Vec::new();
    let mut add = |figures: Vec<Figure>| {
        for f in figures {
            report(&f);
            all.push(f);
        }
    };
    if (1..=7).all(|n| !options.runs(n)) {
        if options.runs(8) {
            add(scale::scale(options)?);
        }
        if options.runs(9) {
            add(workers::scaling(options)?);
        }
        return Ok(all);
    }
    let core = core::CoreBench::new(options)?;
    if options.runs(1) {
        add(core.webhook_vs_native()?);
    }
    if options.runs(2) {
        add(core.page_vs_native()?);
    }
    if options.runs(3) {
        add(core.call_overhead()?);
    }
    if options.runs(4) {
        add(sync::sync_vs_naive(options, core.runtime())?);
        add(sync::unchanged_large_repository(options, core.runtime())?);
        add(history::requests_per_commit(options, core.runtime())?);
    }
    if options.runs(5) {
        add(core.diff_memory()?);
    }
    if options.runs(6) {
        add(serve::throughput(options, core.runtime())?);
    }
    if options.runs(7) {
        add(rate::rate_budget(options, core.runtime())?);
    }
    if options.runs(8) {
        add(scale::scale(options)?);
    }
    if options.runs(9) {
        add(workers::scaling(options)?);
    }
    Ok(all)
}

/// The figures as the Markdown table in `BENCHMARKS.md`.
pub fn markdown_table(figures: &[Figure]) -> String {
    let mut out =
        String::from("| # | Figure | Measured | Target | Met | How |\n|---|---|---|---|---|---|\n");
    for f in figures {
        let met = match f.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            f.bench,
            f.name,
            f.shown(),
            f.target.describe(f.unit),
            met,
            f.detail.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_compare_as_named() {
        assert_eq!(Target::AtMost(3.0).met(2.9), Some(true));
        assert_eq!(Target::AtMost(3.0).met(3.1), Some(false));
        assert_eq!(Target::AtLeast(2000.0).met(1999.0), Some(false));
        assert_eq!(Target::Exactly(1.0).met(1.0), Some(true));
        assert_eq!(Target::Exactly(1.0).met(1.5), Some(false));
        assert_eq!(Target::None.met(5.0), None);
        assert_eq!(Target::AtMost(1.25).describe("×"), "≤ 1.25×");
        assert_eq!(Target::AtLeast(2000.0).describe("/s"), "≥ 2000 /s");
    }

    #[test]
    fn quantiles_pick_ranks() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut s, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&mut s, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&mut [], 0.5), Duration::ZERO);
    }
}
