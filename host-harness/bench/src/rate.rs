//! Benchmark 7: the rate budget. `bbdc sync` against a simulator that enforces Bitbucket's own
//! rate limit (a token bucket of `capacity` requests refilled at `refill` per second; 429 with
//! `Retry-After` when empty), across server profiles (a small bucket refilled fast, Bitbucket's
//! default, a large bucket refilled slowly), each with a short run (under 100 requests) and a
//! long one, and three clients: told the server's budget (`--rate`, `--burst`), reading it from
//! the server's rate-limit settings (no flags), and with no client-side limit
//! (`--rate unlimited`), where only the adaptive limiter keeps it from drowning in 429s.
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
use bbdc_sim::{Faults, RateSettings, ServerRateLimit, SimConfig, Simulator};
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
    spec: WorldSpec,
    policy: HttpPolicy,
) -> Result<Run> {
    let sim = Simulator::start(SimConfig {
        spec,
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
        rate_settings: RateSettings::Account,
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

/// A server's bucket, by name.
struct Profile {
    name: &'static str,
    limit: ServerRateLimit,
}

/// The profiles: a small bucket refilled fast, Bitbucket's default (60 refilled at 5 a second),
/// a large bucket refilled slowly. Whole numbers, as Bitbucket's settings are.
fn profiles(quick: bool) -> Vec<Profile> {
    let profile = |name, capacity, refill| Profile {
        name,
        limit: ServerRateLimit { capacity, refill },
    };
    if quick {
        return vec![profile("small bucket, fast refill", 10.0, 200.0)];
    }
    vec![
        profile("small bucket, fast refill", 10.0, 20.0),
        profile("Bitbucket's default", 60.0, 5.0),
        profile("large bucket, slow refill", 50.0, 2.0),
    ]
}

/// A short run (a pull-request sync of about 95 requests) and a long one (the simulator's
/// default instance, 9 repositories and 360 pull requests: about 800 requests).
fn runs(quick: bool) -> Vec<(&'static str, WorldSpec)> {
    if quick {
        return vec![("short", bench_world(true))];
    }
    let short = WorldSpec {
        seed: 13,
        projects: 1,
        repos_per_project: 2,
        prs_per_repo: 15,
        users: 5,
    };
    vec![("short", short), ("long", WorldSpec::default())]
}

/// The client's rate settings, by name, with the targets its runs must meet: wall ÷ bound,
/// and the 429s allowed (a share of the requests, and at least this many).
struct Client {
    name: &'static str,
    policy: HttpPolicy,
    wall: f64,
    share: f64,
    at_least: f64,
}

fn clients(limit: ServerRateLimit, long: bool) -> Vec<Client> {
    let mut told = HttpPolicy::default();
    told.tell(Some(limit.refill), Some(limit.capacity));
    let mut unlimited = HttpPolicy::default();
    unlimited.tell(Some(f64::INFINITY), None);
    vec![
        Client {
            name: "told the server's budget",
            policy: told,
            wall: 1.10,
            share: 1.0,
            at_least: 1.0,
        },
        Client {
            name: "budget read from the server",
            policy: HttpPolicy::default(),
            wall: 1.10,
            share: 1.0,
            at_least: 1.0,
        },
        Client {
            name: "unlimited (adaptive)",
            policy: unlimited,
            wall: if long { 1.05 } else { 1.5 },
            share: if long { 1.0 } else { 5.0 },
            at_least: 0.0,
        },
    ]
}

/// Runs benchmark 7.
pub fn rate_budget(options: &BenchOptions, runtime: &Arc<Runtime>) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    for profile in profiles(options.quick) {
        let limit = profile.limit;
        for (size, spec) in runs(options.quick) {
            for client in clients(limit, size == "long") {
                let run = limited_run(options, runtime, limit, spec.clone(), client.policy)?;
                // A refused request takes no token: the bound counts the accepted ones.
                let accepted = run.requests.saturating_sub(run.throttled) as f64;
                let bound = (accepted - limit.capacity).max(1.0) / limit.refill;
                let share = 100.0 * run.throttled as f64 / run.requests.max(1) as f64;
                let allowed =
                    (client.at_least * 100.0 / run.requests.max(1) as f64).max(client.share);
                let how = format!(
                    "server bucket {} refilled at {}/s; {} requests ({} answered 429), bound {bound:.2} s, wall {:.2} s",
                    limit.capacity,
                    limit.refill,
                    run.requests,
                    run.throttled,
                    run.wall.as_secs_f64()
                );
                let label = format!("{}, {size} run, client {}", profile.name, client.name);
                figures.push(Figure {
                    bench: 7,
                    name: format!("Rate-limited sync, {label}: wall time ÷ bound"),
                    value: run.wall.as_secs_f64() / bound,
                    unit: "×",
                    target: Target::AtMost(client.wall),
                    detail: how.clone(),
                });
                figures.push(Figure {
                    bench: 7,
                    name: format!("Rate-limited sync, {label}: requests answered 429"),
                    value: share,
                    unit: "%",
                    target: Target::AtMost(allowed),
                    detail: how,
                });
            }
        }
    }
    Ok(figures)
}
