//! The benchmark suite in quick mode: every figure is produced, and what does not depend on the
//! machine holds (request budgets, exact diff counts, every delivery answered). Times are never
//! asserted here; `bbdc bench` reports them against their targets.

use bbdc_bench::{BenchOptions, Figure, Target};
use std::time::Duration;

fn quick(only: Vec<u8>, senders: usize) -> Vec<Figure> {
    let options = BenchOptions {
        quick: true,
        latency: Duration::from_millis(1),
        concurrency: 4,
        senders,
        component: None,
        only,
        ..BenchOptions::default()
    };
    bbdc_bench::run(&options, |_| {}).expect("the quick suite runs")
}

fn figure<'a>(figures: &'a [Figure], name: &str) -> &'a Figure {
    figures
        .iter()
        .find(|f| f.name.starts_with(name))
        .unwrap_or_else(|| panic!("no figure named {name:?}"))
}

#[test]
fn the_quick_suite_reports_every_benchmark_and_keeps_the_request_budget() {
    let figures = quick(Vec::new(), 8);
    for n in 1..=7 {
        assert!(
            figures.iter().any(|f| f.bench == n),
            "benchmark {n} reported nothing"
        );
    }
    for f in &figures {
        // A share of 429s may rightly be zero, and so may a count whose target is zero; every
        // other figure is a positive quantity.
        let may_be_zero = f.unit == "%" || f.target == Target::Exactly(0.0);
        assert!(
            f.value.is_finite() && (f.value > 0.0 || may_be_zero && f.value == 0.0),
            "{}: {}",
            f.name,
            f.value
        );
    }
    // An unchanged repository costs exactly one request; the naive strategy pays for every PR.
    let resync = figure(
        &figures,
        "Requests per repository, unchanged re-sync (connector)",
    );
    assert_eq!(resync.value, 1.0, "{}", resync.detail);
    assert_eq!(resync.met(), Some(true));
    let naive = figure(
        &figures,
        "Requests per repository, unchanged re-sync (naive)",
    );
    assert!(naive.value > 2.0, "{}", naive.detail);
    // So does a repository with many pull requests, and its one page stays under 32 KiB
    // (the simulator's bodies are deterministic for its seed); the naive strategy reads them all.
    let large = figure(
        &figures,
        "Unchanged repository of 60 pull requests, re-sync: requests (connector)",
    );
    assert_eq!(large.value, 1.0, "{}", large.detail);
    let bytes = figure(
        &figures,
        "Unchanged repository of 60 pull requests, re-sync: response body (connector)",
    );
    assert_eq!(
        bytes.met(),
        Some(true),
        "{}: {} KiB",
        bytes.detail,
        bytes.value
    );
    let naive_bytes = figure(
        &figures,
        "Unchanged repository of 60 pull requests, re-sync: response body (naive)",
    );
    assert!(
        naive_bytes.value > 10.0 * bytes.value,
        "{}",
        naive_bytes.detail
    );
    // History: an unchanged sync asks for no commit and no build; a first sync asks for at
    // least one build status per commit (no resource lists several commits'), and a commit page
    // holds many commits.
    let unchanged = figure(
        &figures,
        "Commit and build requests, unchanged history sync",
    );
    assert_eq!(unchanged.value, 0.0, "{}", unchanged.detail);
    assert_eq!(unchanged.met(), Some(true));
    let first = figure(&figures, "History requests per commit, first sync");
    assert!(
        first.value >= 1.0 && first.value < 1.5,
        "{}: {}",
        first.detail,
        first.value
    );
    // An 8 MB diff is counted as it streams: guest memory stays near its ~1.2 MiB baseline
    // (buffering the diff would take more than 8 MiB).
    let memory = figure(&figures, "Peak guest memory");
    assert!(memory.value < 4.0, "{}", memory.detail);
    let table = bbdc_bench::markdown_table(&figures);
    assert_eq!(table.lines().count(), figures.len() + 2);
}

#[test]
fn serve_answers_many_keep_alive_senders_at_once() {
    // Connections opened in a burst once starved behind a small connection-thread pool; each
    // sender here holds its connection open for all its deliveries.
    let figures = quick(vec![6], 48);
    // Two rounds of 48 senders × 5 deliveries each, to the endpoint and to the native baseline;
    // every delivery accepted (the bench fails otherwise).
    let rate = figure(&figures, "`bbdc serve` throughput");
    assert!(rate.detail.starts_with("480 deliveries"), "{}", rate.detail);
    let baseline = figure(&figures, "Native baseline endpoint throughput");
    assert!(
        baseline.detail.starts_with("480 deliveries"),
        "{}",
        baseline.detail
    );
    let ratio = figure(&figures, "`bbdc serve` throughput ÷ native baseline");
    let expected = rate.value / baseline.value;
    assert!((ratio.value - expected).abs() < 1e-9 * expected.max(1.0));
}
