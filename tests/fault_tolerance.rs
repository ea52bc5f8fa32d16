//! Fault tolerance against the simulator: for each fault alone and all together, and on every server
//! version the simulator imitates, a full sync ends equal to the simulator's ground truth (no
//! pull request lost or duplicated, every field right, personal and archived repositories
//! included), except the pull requests the simulator made permanently broken, which are reported.

mod support;

use bbdc_host::policy::HttpPolicy;
use bbdc_jobs::demo::compare_with_truth;
use bbdc_jobs::sync::{SyncJob, SyncReport};
use bbdc_sim::render::Dialect;
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use std::time::Duration;
use support::*;

const SIM_TOKEN: &str = "sim-token";
/// Most runs of `sync` a faulty server may take to reach the ground truth.
const MAX_RUNS: usize = 8;

fn start(faults: Faults, seed: u64) -> Simulator {
    start_version(faults, seed, ServerVersion::default())
}

fn start_version(faults: Faults, seed: u64, version: ServerVersion) -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            seed,
            projects: 1,
            repos_per_project: 2,
            prs_per_repo: 15,
            users: 6,
        },
        faults,
        token: Some(SIM_TOKEN.into()),
        dialect: Dialect {
            version,
            ..Dialect::default()
        },
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn setup(sim: &Simulator) -> SimRun {
    sim_run(&sim.base_url(), SIM_TOKEN, |config| {
        // A safety net: a fault must never cost a long timeout.
        config.timeouts.request = Duration::from_secs(10);
        config.timeouts.read = Duration::from_millis(800);
        config.http_policy = HttpPolicy {
            burst: None,
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
            ..HttpPolicy::default()
        };
    })
}

fn sync(run: &SimRun) -> SyncReport {
    run.sync(&SyncJob {
        concurrency: 2,
        ..SyncJob::default()
    })
}

/// On every server version, syncs once and checks the database against the ground truth.
async fn assert_sync_matches_truth(name: &'static str, faults: Faults) {
    for version in ServerVersion::ALL {
        let faults = faults.clone();
        sync_matches_truth(&format!("{name} on {version}"), faults, version).await;
    }
}

async fn sync_matches_truth(name: &str, faults: Faults, version: ServerVersion) {
    let name = name.to_owned();
    blocking(move || {
        let sim = start_version(faults, 11, version);
        let run = setup(&sim);
        let broken = sim.broken();
        let expected: Vec<(String, Option<u64>)> = broken
            .iter()
            .map(|(k, s, id)| (format!("{k}/{s}"), Some(*id)))
            .collect();
        // Nothing above the HTTP policy retries within a run: what still failed (a page, a pull
        // request) is taken up by the next run. A bounded number of runs must reach the truth.
        let mut report = None;
        for _ in 0..MAX_RUNS {
            let Ok(r) = run.try_sync(&SyncJob {
                concurrency: 2,
                ..SyncJob::default()
            }) else {
                continue;
            };
            let done = r.failed_repos.is_empty()
                && r.skipped
                    .iter()
                    .map(|s| (s.repo.clone(), s.id))
                    .collect::<Vec<_>>()
                    == expected;
            report = Some(r);
            if done {
                break;
            }
        }
        let report = report.unwrap_or_else(|| panic!("{name}: no sync ran in {MAX_RUNS} runs"));
        let (matched, problems) = compare_with_truth(&run.db, &sim.truth(), &broken).unwrap();
        assert!(problems.is_empty(), "{name}: {problems:#?}");
        assert_eq!(matched, sim.truth().len() - broken.len(), "{name}");
        assert!(
            report.failed_repos.is_empty(),
            "{name}: {:?}",
            report.failed_repos
        );
        let skipped: Vec<(String, Option<u64>)> = report
            .skipped
            .iter()
            .map(|s| (s.repo.clone(), s.id))
            .collect();
        assert_eq!(
            skipped, expected,
            "{name}: only the permanently broken pull requests are reported"
        );
        sim.stop();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_faults() {
    assert_sync_matches_truth("none", Faults::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_with_retry_after() {
    assert_sync_matches_truth(
        "429",
        Faults {
            rate_429: 0.05,
            ..Faults::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_errors() {
    assert_sync_matches_truth(
        "5xx",
        Faults {
            rate_5xx: 0.15,
            ..Faults::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn added_latency() {
    assert_sync_matches_truth(
        "latency",
        Faults {
            latency: Duration::from_millis(15),
            ..Faults::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_cut_mid_body() {
    assert_sync_matches_truth(
        "cut",
        Faults {
            cut_rate: 0.1,
            ..Faults::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_bodies() {
    assert_sync_matches_truth(
        "malformed",
        Faults {
            malformed_rate: 0.1,
            ..Faults::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn permanently_broken_pull_requests() {
    assert_sync_matches_truth(
        "broken",
        Faults {
            broken_prs: 2,
            ..Faults::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn all_faults_together() {
    assert_sync_matches_truth(
        "all",
        Faults {
            rate_429: 0.03,
            rate_5xx: 0.08,
            latency: Duration::from_millis(2),
            cut_rate: 0.05,
            malformed_rate: 0.05,
            broken_prs: 1,
            update_every: None,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_updated_while_a_sync_runs_are_not_lost() {
    blocking(|| {
        let mut sim = start(
            Faults {
                latency: Duration::from_millis(3),
                update_every: Some(Duration::from_millis(15)),
                ..Faults::default()
            },
            12,
        );
        let run = setup(&sim);
        sync(&run);
        sim.stop_updates();
        // A sync after the changes stop picks up whatever the first one could not see.
        sync(&run);
        let (matched, problems) = compare_with_truth(&run.db, &sim.truth(), &[]).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(matched, sim.truth().len());
        sim.stop();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_resync_costs_one_list_request_per_repository() {
    blocking(|| {
        let sim = start(Faults::default(), 13);
        let run = setup(&sim);
        sync(&run);
        let report = sync(&run);
        // projects (1 page) + every repository (1 page of /repos) + users (1) + one
        // pull-request list per repository.
        let repos = sim.counts().1 as u64;
        assert_eq!(report.requests, 3 + repos, "{report:?}");
        assert_eq!(report.records.get("pull_request"), Some(&0));
        sim.stop();
    })
    .await;
}
