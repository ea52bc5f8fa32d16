//! Benchmark 4: `bbdc sync` against the simulator with latency added to every request, beside
//! the naive strategy run against the same simulator in the same run.
//!
//! The lower bound of a sync's wall time is `requests × latency ÷ concurrency`: no client can
//! do better with that many round trips and that many in flight. The connector's figure is its
//! wall time over that bound; the request counts show what it saves.

use super::naive::{NAIVE_PAGE_SIZE, naive_sync};
use super::{BenchOptions, Figure, Target};
use anyhow::{Result, ensure};
use bbdc_host::runtime::Runtime;
use bbdc_host::storage::SqliteKv;
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::records::SqliteRecords;
use bbdc_jobs::sync::{self, SyncJob};
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, RequestCounts, SimConfig, Simulator};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "bench-token";

fn delta(after: RequestCounts, before: RequestCounts) -> RequestCounts {
    RequestCounts {
        pull_request_lists: after.pull_request_lists - before.pull_request_lists,
        pull_requests: after.pull_requests - before.pull_requests,
        activities: after.activities - before.activities,
        diffs: after.diffs - before.diffs,
        other: after.other - before.other,
    }
}

/// The world the benchmark syncs.
pub fn bench_world(quick: bool) -> WorldSpec {
    if quick {
        WorldSpec {
            seed: 5,
            projects: 2,
            repos_per_project: 2,
            prs_per_repo: 6,
            users: 10,
        }
    } else {
        WorldSpec {
            seed: 5,
            projects: 4,
            repos_per_project: 6,
            prs_per_repo: 30,
            users: 40,
        }
    }
}

/// One run of the connector: wall time, and requests by kind.
struct Run {
    wall: Duration,
    counts: RequestCounts,
    written: u64,
    unchanged: u64,
}

fn connector_run(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &SqliteRecords,
    sim: &Simulator,
    concurrency: usize,
) -> Result<Run> {
    let before = sim.request_counts();
    let job = SyncJob {
        concurrency,
        progress: false,
        ..SyncJob::default()
    };
    let report = sync::run(runtime, tenant, sink, None, &job)?;
    ensure!(
        report.failed_repos.is_empty() && report.skipped.is_empty(),
        "the benchmark sync failed repositories {:?} or skipped pull requests {:?}",
        report.failed_repos,
        report.skipped
    );
    Ok(Run {
        wall: report.elapsed,
        counts: delta(sim.request_counts(), before),
        written: report.records.get("pull_request").copied().unwrap_or(0),
        unchanged: report.unchanged,
    })
}

/// Runs benchmark 4.
pub fn sync_vs_naive(options: &BenchOptions, runtime: &Arc<Runtime>) -> Result<Vec<Figure>> {
    let latency = if options.quick {
        Duration::from_millis(1)
    } else {
        options.latency
    };
    let concurrency = options.concurrency.max(1);
    let spec = bench_world(options.quick);
    let sim = Simulator::start(SimConfig {
        spec: spec.clone(),
        faults: Faults {
            latency,
            ..Faults::default()
        },
        token: Some(TOKEN.into()),
        ..SimConfig::default()
    })?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.sqlite");
    let mut config = TenantConfig::new("bench", sim.base_url(), Credentials::Bearer(TOKEN.into()));
    // The simulator does not rate-limit; the bound below assumes no limit either.
    config.http_policy.burst = None;
    let tenant = Arc::new(Tenant::new(config, Arc::new(SqliteKv::open(&db)?))?);
    let sink = SqliteRecords::open(&db)?;
    let prs = sim.truth().len() as u64;
    let repos = sim.counts().1 as u64;

    let first = connector_run(runtime, &tenant, &sink, &sim, concurrency)?;
    ensure!(
        first.written == prs,
        "the first sync wrote {} of {prs} pull requests",
        first.written
    );
    let again = connector_run(runtime, &tenant, &sink, &sim, concurrency)?;
    ensure!(
        again.written == 0 && again.unchanged == prs,
        "the unchanged re-sync wrote {} and found {} of {prs} unchanged",
        again.written,
        again.unchanged
    );
    let naive_first = naive_sync(&sim.base_url(), Some(TOKEN), concurrency)?;
    let naive_again = naive_sync(&sim.base_url(), Some(TOKEN), concurrency)?;
    ensure!(
        naive_first.pull_requests == prs && naive_first.repos == repos,
        "the naive strategy saw {} pull requests in {} repositories",
        naive_first.pull_requests,
        naive_first.repos
    );

    let ms = latency.as_secs_f64() * 1e3;
    let bound = |requests: u64| requests as f64 * latency.as_secs_f64() / concurrency as f64;
    let first_total = first.counts.total();
    let naive_bound = bound(naive_first.requests);
    let per_repo = |c: &RequestCounts| {
        (c.pull_request_lists + c.pull_requests + c.activities + c.diffs) as f64 / repos as f64
    };
    let world = format!(
        "{repos} repositories, {prs} pull requests, {ms:.0} ms per request, {concurrency} repositories at a time"
    );
    Ok(vec![
        Figure {
            bench: 4,
            name: "Sync, first run: wall time ÷ lower bound".into(),
            value: first.wall.as_secs_f64() / bound(first_total),
            unit: "×",
            target: Target::AtMost(1.25),
            detail: format!(
                "{world}; {first_total} requests, bound {:.2} s, wall {:.2} s (SQLite on disk included); the naive strategy: {} requests, bound {naive_bound:.2} s, wall {:.2} s ({:.2}×)",
                bound(first_total),
                first.wall.as_secs_f64(),
                naive_first.requests,
                naive_first.elapsed.as_secs_f64(),
                naive_first.elapsed.as_secs_f64() / naive_bound
            ),
        },
        Figure {
            bench: 4,
            name: "Requests per pull request, first sync (connector)".into(),
            value: first_total as f64 / prs as f64,
            unit: "",
            target: Target::None,
            detail: format!(
                "{first_total} requests: {} list pages, {} activity pages, {} diffs, {} for projects, repositories and users",
                first.counts.pull_request_lists,
                first.counts.activities,
                first.counts.diffs,
                first.counts.other
            ),
        },
        Figure {
            bench: 4,
            name: format!(
                "Requests per pull request, first sync (naive, page size {NAIVE_PAGE_SIZE})"
            ),
            value: naive_first.requests as f64 / prs as f64,
            unit: "",
            target: Target::None,
            detail: format!("{} requests", naive_first.requests),
        },
        Figure {
            bench: 4,
            name: "Requests per repository, unchanged re-sync (connector)".into(),
            value: per_repo(&again.counts),
            unit: "",
            target: Target::Exactly(1.0),
            detail: format!(
                "requests to the repositories' pull-request resources ÷ {repos} repositories ({} list pages, {} activity pages, {} diffs); plus {} per run for projects, repositories and users; wall {:.2} s",
                again.counts.pull_request_lists,
                again.counts.activities,
                again.counts.diffs,
                again.counts.other,
                again.wall.as_secs_f64()
            ),
        },
        Figure {
            bench: 4,
            name: "Requests per repository, unchanged re-sync (naive)".into(),
            value: (naive_again.requests - naive_again.listing_requests) as f64 / repos as f64,
            unit: "",
            target: Target::None,
            detail: format!(
                "{} requests in all ({} of them listing), wall {:.2} s: {:.0}× the connector's re-sync time",
                naive_again.requests,
                naive_again.listing_requests,
                naive_again.elapsed.as_secs_f64(),
                naive_again.elapsed.as_secs_f64() / again.wall.as_secs_f64().max(1e-9)
            ),
        },
    ])
}
