//! `--rate` and `--burst` as a user gives them to `bbdc sync`, against a simulator that enforces
//! Bitbucket's own rate limit (a token bucket; 429 with `Retry-After` when it is empty).

use bbdc_jobs::truth::compare_with_truth;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{SimConfig, Simulator};
use serde_json::Value;

mod binary;

use binary::bbdc;

const TOKEN: &str = "rate-token";

fn limited_sim(capacity: f64, refill: f64) -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 11,
            projects: 1,
            repos_per_project: 2,
            prs_per_repo: 6,
            users: 4,
        },
        token: Some(TOKEN.into()),
        rate_limit: Some(bbdc_sim::ServerRateLimit { capacity, refill }),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

/// Runs `bbdc sync --json` with `extra` flags; returns the summary and the database.
fn sync(sim: &Simulator, extra: &[&str]) -> (Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rate.sqlite");
    let base = sim.base_url();
    let mut args = vec![
        "sync",
        "--base-url",
        &base,
        "--token-env",
        "T",
        "--db",
        db.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = bbdc().args(&args).env("T", TOKEN).output().unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{summary}");
    let truth = sim.truth();
    let (matched, problems) = compare_with_truth(&db, &truth, &[]).expect("the database reads");
    assert!(
        problems.is_empty(),
        "the sync equals the truth: {problems:#?}"
    );
    assert_eq!(matched, truth.len());
    (summary, dir)
}

#[test]
fn an_unlimited_client_meets_the_servers_limit_slows_down_and_loses_nothing() {
    // Far fewer tokens than the sync needs requests: the server must limit it.
    let sim = limited_sim(8.0, 40.0);
    let (summary, _db) = sync(&sim, &["--rate", "unlimited"]);
    let throttled = summary["throttled"].as_u64().unwrap();
    assert!(sim.throttled() > 0, "the server limited the client");
    assert_eq!(
        throttled,
        sim.throttled(),
        "every 429 is counted: {summary}"
    );
    assert!(
        throttled < summary["requests"].as_u64().unwrap(),
        "not every request was refused: {summary}"
    );
}

#[test]
fn a_client_rate_below_the_servers_is_never_limited_and_waits_on_its_own_bucket() {
    // The client's bucket (burst 3, 10/s) is strictly inside the server's (8, 40/s).
    let sim = limited_sim(8.0, 40.0);
    let (summary, _db) = sync(&sim, &["--rate", "10", "--burst", "3"]);
    assert_eq!(sim.throttled(), 0, "{summary}");
    assert_eq!(summary["throttled"], 0);
    assert!(
        summary["rate_limit_wait_seconds"].as_f64().unwrap() > 0.0,
        "beyond its burst the client waited for its own tokens: {summary}"
    );
}

/// `bbdc check` with `extra` flags against a server that is never reached.
fn check(extra: &[&str]) -> std::process::Output {
    bbdc()
        .args([
            "check",
            "--base-url",
            "https://bb.invalid",
            "--token-env",
            "T",
        ])
        .args(extra)
        .env("T", "x")
        .output()
        .unwrap()
}

#[test]
fn rates_and_bursts_that_mean_nothing_are_usage_errors() {
    for args in [
        ["--rate", "0"],
        ["--rate", "fast"],
        ["--burst", "0"],
        ["--burst", "1.5"],
    ] {
        assert_eq!(
            check(&args).status.code(),
            Some(2),
            "{args:?} is a usage error"
        );
    }
    let out = check(&["--rate", "unlimited", "--burst", "10", "--json"]);
    assert!(!out.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("--burst needs a rate limit"), "{said}");
}
