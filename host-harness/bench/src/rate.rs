//! Benchmark 7: the rate budget. `bbdc sync` against a simulator that enforces Bitbucket's own
//! rate limit (a token bucket of `capacity` requests refilled at `refill` per second; 429 with
//! `Retry-After` when empty), once with the client configured to the server's budget and once
//! with no client-side limit (`--rate unlimited`), where only the adaptive limiter keeps it from
//! drowning in 429s.
//!
//! No client can finish sooner than `(requests − capacity) ÷ refill`, counting the requests the
//! server accepted: it lets the bucket through at once and then `refill` per second. Each run's figure is its wall time over
//! that bound, beside the share of its requests the server answered 429 (each one a request
//! sent for nothing, and a `Retry-After` wait for the whole tenant).

use super::sync::bench_world;
use super::{BenchOptions, Figure, Target};
use anyhow::{Result, ensure};
use bbdc_host::policy::HttpPolicy;
use bbdc_host::runtime::Runtime;
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::records::SqliteRecords;
use bbdc_jobs::sync::{self, SyncJob};
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, ServerRateLimit, SimConfig, Simulator};
use bbdc_store::kv::SqliteKv;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "rate-bench-token";

/// One sync against a fresh rate-limited simulator.
struct Run {
    requests: u64,
    throttled: u64,
    wall: Duration,
}

fn limited_run(
    options: &BenchOptions,
    runtime: &Runtime,
    limit: ServerRateLimit,
    policy: HttpPolicy,
) -> Result<Run> {
    let sim = Simulator::start(SimConfig {
        // The simulator's default instance (9 repositories, 360 pull requests), the one a
        // user meets first with `bbdc sim`.
        spec: if options.quick {
            bench_world(true)
        } else {
            WorldSpec::default()
        },
        faults: Faults {
            latency: if options.quick {
                Duration::from_millis(1)
            } else {
                options.latency
            },
            ..Faults::default()
        },
        token: Some(TOKEN.into()),
        rate_limit: Some(limit),
        ..SimConfig::default()
    })?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("rate.sqlite");
    let mut config = TenantConfig::new("rate", sim.base_url(), Credentials::Bearer(TOKEN.into()));
    config.http_policy = policy;
    let tenant = Arc::new(Tenant::new(config, Arc::new(SqliteKv::open(&db)?))?);
    let sink = SqliteRecords::open(&db)?;
    // The pull-request sync the rate figures were set for.
    let job = SyncJob {
        concurrency: options.concurrency.max(1),
        entities: sync::Entities::PULL_REQUESTS,
        ..SyncJob::default()
    };
    let report = sync::run(runtime, &tenant, &sink, None, &job)?;
    let prs = sim.truth().len() as u64;
    let written = report.records.get("pull_request").copied().unwrap_or(0);
    ensure!(
        report.failed_repos.is_empty() && written == prs,
        "the rate-limited sync wrote {written} of {prs} pull requests; failed {:?}",
        report.failed_repos
    );
    let run = Run {
        requests: sim.requests(),
        throttled: sim.throttled(),
        wall: report.elapsed,
    };
    sim.stop();
    Ok(run)
}

/// Runs benchmark 7.
pub fn rate_budget(options: &BenchOptions, runtime: &Arc<Runtime>) -> Result<Vec<Figure>> {
    // Bitbucket's default bucket and refill (`bbdc sim --server-bucket 60 --server-refill 5`):
    // the server's budget, not latency, bounds the sync (about 140 s per run).
    let limit = if options.quick {
        ServerRateLimit {
            capacity: 10.0,
            refill: 200.0,
        }
    } else {
        ServerRateLimit {
            capacity: 60.0,
            refill: 5.0,
        }
    };
    let matched = HttpPolicy {
        burst: Some(limit.capacity),
        per_second: limit.refill,
        ..HttpPolicy::default()
    };
    let unlimited = HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    };
    let mut figures = Vec::new();
    for (label, policy) in [
        ("client set to the server's budget", matched),
        ("client unlimited (adaptive)", unlimited),
    ] {
        let run = limited_run(options, runtime, limit, policy)?;
        // A refused request takes no token: the bound counts the accepted ones.
        let accepted = run.requests.saturating_sub(run.throttled) as f64;
        let bound = (accepted - limit.capacity).max(1.0) / limit.refill;
        let share = 100.0 * run.throttled as f64 / run.requests.max(1) as f64;
        let how = format!(
            "server bucket {} refilled at {}/s; {} requests ({} answered 429), bound {bound:.2} s, wall {:.2} s",
            limit.capacity,
            limit.refill,
            run.requests,
            run.throttled,
            run.wall.as_secs_f64()
        );
        figures.push(Figure {
            bench: 7,
            name: format!("Rate-limited sync, {label}: wall time ÷ (requests − burst) ÷ refill"),
            value: run.wall.as_secs_f64() / bound,
            unit: "×",
            target: Target::AtMost(1.05),
            detail: how.clone(),
        });
        figures.push(Figure {
            bench: 7,
            name: format!("Rate-limited sync, {label}: requests answered 429"),
            value: share,
            unit: "%",
            target: Target::AtMost(1.0),
            detail: how,
        });
    }
    Ok(figures)
}
