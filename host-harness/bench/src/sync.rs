//! Benchmark 4: `bbdc sync` against the simulator with latency added to every request, beside
//! the naive strategy run against the same simulator in the same run.
//!
//! The lower bound of a sync's wall time is `requests × latency ÷ concurrency`: no client can
//! do better with that many round trips and that many in flight. The connector's figure is its
//! wall time over that bound; the request counts show what it saves.

use super::naive::{NAIVE_PAGE_SIZE, naive_sync};
use super::{BenchOptions, Figure, Target};
use anyhow::{Result, ensure};
use bbdc_connector::sync::FIRST_INCREMENTAL_PAGE;
use bbdc_host::runtime::Runtime;
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::records::SqliteRecords;
use bbdc_jobs::sync::{self, SyncJob};
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, RequestCounts, SimConfig, Simulator};
use bbdc_store::kv::SqliteKv;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "bench-token";

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
}

fn connector_run(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &SqliteRecords,
    sim: &Simulator,
    concurrency: usize,
) -> Result<Run> {
    let before = sim.request_counts();
    // The pull-request sync these figures and targets measure (benchmark 4 measures the
    // history passes on their own).
    let job = SyncJob {
        concurrency,
        progress: false,
        entities: sync::Entities::PULL_REQUESTS,
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
        counts: sim.request_counts().since(&before),
        written: report.records.get("pull_request").copied().unwrap_or(0),
    })
}

/// A simulator, a tenant on it and the SQLite file the records go to.
pub(crate) struct Setup {
    pub(crate) sim: Simulator,
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) sink: SqliteRecords,
    pub(crate) _dir: tempfile::TempDir,
}

impl Setup {
    /// A simulator of `spec` with `latency` on every request, and a tenant without a client-side
    /// rate limit.
    pub(crate) fn start(spec: WorldSpec, latency: Duration) -> Result<Setup> {
        let sim = Simulator::start(SimConfig {
            spec,
            faults: Faults {
                latency,
                ..Faults::default()
            },
            token: Some(TOKEN.into()),
            ..SimConfig::default()
        })?;
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("bench.sqlite");
        let mut config =
            TenantConfig::new("bench", sim.base_url(), Credentials::Bearer(TOKEN.into()));
        // The simulator does not rate-limit; the bound below assumes no limit either.
        config.http_policy.burst = None;
        let tenant = Arc::new(Tenant::new(config, Arc::new(SqliteKv::open(&db)?))?);
        let sink = SqliteRecords::open(&db)?;
        Ok(Setup {
            sim,
            tenant,
            sink,
            _dir: dir,
        })
    }
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
    let Setup {
        sim,
        tenant,
        sink,
        _dir,
    } = Setup::start(spec, latency)?;
    let prs = sim.truth().len() as u64;
    let repos = sim.counts().1 as u64;

    let first = connector_run(runtime, &tenant, &sink, &sim, concurrency)?;
    ensure!(
        first.written == prs,
        "the first sync wrote {} of {prs} pull requests",
        first.written
    );
    let again = connector_run(runtime, &tenant, &sink, &sim, concurrency)?;
    // Nothing changed: nothing is written (each repository's pass stops at the first pull
    // request it has seen unchanged, so not every one is looked at).
    ensure!(
        again.written == 0,
        "the unchanged re-sync wrote {}",
        again.written
    );
    let naive_first = naive_sync(&sim.base_url(), Some(TOKEN), concurrency)?;
    let before_naive_again = sim.request_counts();
    let naive_again = naive_sync(&sim.base_url(), Some(TOKEN), concurrency)?;
    let naive_again_counts = sim.request_counts().since(&before_naive_again);
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
    let kib_per_repo = |c: &RequestCounts| kib(c.pull_request_bytes) / repos as f64;
    let per_repo = |c: &RequestCounts| pull_request_requests(c) as f64 / repos as f64;
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
                "requests to the repositories' pull-request resources ÷ {repos} repositories ({} list pages, {} activity pages, {} diffs), {:.1} KiB of response body per repository; plus {} per run for projects, repositories and users; wall {:.2} s",
                again.counts.pull_request_lists,
                again.counts.activities,
                again.counts.diffs,
                kib_per_repo(&again.counts),
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
                "{} requests in all ({} of them listing), {:.1} KiB of response body per repository, wall {:.2} s: {:.0}× the connector's re-sync time",
                naive_again.requests,
                naive_again.listing_requests,
                kib_per_repo(&naive_again_counts),
                naive_again.elapsed.as_secs_f64(),
                naive_again.elapsed.as_secs_f64() / again.wall.as_secs_f64().max(1e-9)
            ),
        },
    ])
}

fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

/// Requests to a repository's pull-request resources (lists, pull requests, activities, diffs).
fn pull_request_requests(c: &RequestCounts) -> u64 {
    c.pull_request_lists + c.pull_requests + c.activities + c.diffs
}

/// The one repository of the unchanged-repository figure: 1,000 pull requests (60 when quick).
pub fn large_repository_world(quick: bool) -> WorldSpec {
    WorldSpec {
        seed: 9,
        projects: 1,
        repos_per_project: 1,
        prs_per_repo: if quick { 60 } else { 1000 },
        users: 40,
    }
}

/// Benchmark 4, second part: what an unchanged repository with 1,000 pull requests costs a
/// re-sync, in requests and response body bytes, for the connector and for the naive strategy.
/// No latency is added: the figures are counts, not times.
pub fn unchanged_large_repository(
    options: &BenchOptions,
    runtime: &Arc<Runtime>,
) -> Result<Vec<Figure>> {
    let concurrency = options.concurrency.max(1);
    let Setup {
        sim,
        tenant,
        sink,
        _dir,
    } = Setup::start(large_repository_world(options.quick), Duration::ZERO)?;
    let prs = sim.truth().len() as u64;
    let repos = sim.counts().1 as u64;
    let largest = large_repository_world(options.quick).prs_per_repo;
    let first = connector_run(runtime, &tenant, &sink, &sim, concurrency)?;
    ensure!(
        first.written == prs,
        "the first sync of the large repository wrote {} of {prs} pull requests",
        first.written
    );
    let again = connector_run(runtime, &tenant, &sink, &sim, concurrency)?;
    ensure!(
        again.written == 0,
        "the re-sync of the unchanged large repositories wrote {}",
        again.written
    );
    let before = sim.request_counts();
    let naive = naive_sync(&sim.base_url(), Some(TOKEN), concurrency)?;
    let naive_counts = sim.request_counts().since(&before);
    ensure!(
        naive.pull_requests == prs,
        "the naive strategy saw {} of {prs} pull requests",
        naive.pull_requests
    );
    let name = |what: &str, who: &str| {
        format!("Unchanged repository of {largest} pull requests, re-sync: {what} ({who})")
    };
    let per_repo = |n: u64| n as f64 / repos as f64;
    let first_page = FIRST_INCREMENTAL_PAGE;
    Ok(vec![
        Figure {
            bench: 4,
            name: name("requests", "connector"),
            value: per_repo(pull_request_requests(&again.counts)),
            unit: "",
            target: Target::Exactly(1.0),
            detail: format!(
                "requests to the pull-request resources ÷ {repos} repositories (one of {largest} pull requests, the simulator's extra ones with a quarter of that): {} list pages, {} pull requests, {} activity pages, {} diffs; the pass starts with a {first_page}-item page and stops at the first pull request it has seen unchanged",
                again.counts.pull_request_lists,
                again.counts.pull_requests,
                again.counts.activities,
                again.counts.diffs
            ),
        },
        Figure {
            bench: 4,
            name: name("response body", "connector"),
            value: kib(again.counts.pull_request_bytes) / repos as f64,
            unit: "KiB",
            target: Target::AtMost(32.0),
            detail: format!(
                "response body per repository, the same {repos} repositories: the first list page ({first_page} of the simulator's pull requests, shaped as the 9.2 reference describes them); the first sync read {:.0} KiB in {} requests",
                kib(first.counts.pull_request_bytes),
                pull_request_requests(&first.counts)
            ),
        },
        Figure {
            bench: 4,
            name: name("requests", "naive"),
            value: per_repo(pull_request_requests(&naive_counts)),
            unit: "",
            target: Target::None,
            detail: format!(
                "every list page (page size {NAIVE_PAGE_SIZE}), every activity page and every diff again"
            ),
        },
        Figure {
            bench: 4,
            name: name("response body", "naive"),
            value: kib(naive_counts.pull_request_bytes) / repos as f64,
            unit: "KiB",
            target: Target::None,
            detail: format!(
                "{:.0}× the connector's",
                naive_counts.pull_request_bytes as f64
                    / again.counts.pull_request_bytes.max(1) as f64
            ),
        },
    ])
}
