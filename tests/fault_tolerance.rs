//! Fault tolerance against the simulator: for each fault alone and all together, and on every server
//! version the simulator imitates, a full sync ends equal to the simulator's ground truth (no
//! pull request lost or duplicated, every field right, personal and archived repositories
//! included), except the pull requests the simulator made permanently broken, which are reported.

mod support;

use bbdc_host::policy::HttpPolicy;
use bbdc_jobs::sync::{SyncJob, SyncReport, SyncStatus};
use bbdc_jobs::truth::compare_with_truth;
use bbdc_sim::render::Dialect;
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use std::time::Duration;
use support::*;

const SIM_TOKEN: &str = "sim-token";
/// Most runs of `sync` a faulty server may take to reach the ground truth. Nothing above the
/// HTTP policy retries, and the policy does not repeat a complete 200 whose JSON is cut short: at
/// a 10% malformed rate a run fails as a whole about one time in four (projects, repositories and
/// users are one page each) and a failed pull request heals in about half of the others, so 8
/// runs were not enough about once in ten versions. Every run is also checked to report what it
/// has not stored, so a loss is told apart from a slow convergence.
const MAX_RUNS: usize = 16;

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

/// A sync of the pull requests: what these tests hold under faults (the history passes have
/// their own fault run in `tests/builds.rs`).
fn sync(run: &SimRun) -> SyncReport {
    run.sync(&SyncJob {
        concurrency: 2,
        entities: bbdc_jobs::sync::Entities::PULL_REQUESTS,
        ..SyncJob::default()
    })
}

/// The pull requests of the ground truth not (yet) in the run's database, as (`KEY/slug`, id).
fn missing(run: &SimRun, sim: &Simulator) -> Vec<(String, u64)> {
    let conn = rusqlite::Connection::open(&run.db).expect("records database");
    let mut st = conn
        .prepare("SELECT project_key, repo_slug, id FROM pull_requests")
        .expect("query");
    let stored: std::collections::HashSet<(String, String, u64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    sim.truth()
        .iter()
        .map(|t| {
            (
                t["project_key"].as_str().unwrap_or_default().to_owned(),
                t["repo_slug"].as_str().unwrap_or_default().to_owned(),
                t["id"].as_u64().unwrap_or_default(),
            )
        })
        .filter(|k| !stored.contains(k))
        .map(|(k, s, id)| (format!("{k}/{s}"), id))
        .collect()
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
        // request) is taken up by the next run. A bounded number of runs must reach the truth,
        // and every run must account for what is not stored yet: a pull request missing from the
        // database is reported as skipped, or its repository as failed, never left unsaid.
        let mut report = None;
        let mut history = Vec::new();
        let mut done = false;
        for i in 0..MAX_RUNS {
            let r = match run.try_sync(&SyncJob {
                concurrency: 2,
                entities: bbdc_jobs::sync::Entities::PULL_REQUESTS,
                ..SyncJob::default()
            }) {
                Ok(r) => r,
                Err(e) => {
                    history.push(format!("run {i}: failed as a whole: {e}"));
                    continue;
                }
            };
            let skipped: Vec<(String, Option<u64>)> =
                r.skipped.iter().map(|s| (s.repo.clone(), s.id)).collect();
            let failed: Vec<&str> = r
                .failed_repos
                .iter()
                .chain(&r.failed_projects)
                .map(|f| f.name.as_str())
                .collect();
            let unsaid: Vec<String> = missing(&run, &sim)
                .into_iter()
                .filter(|(repo, id)| {
                    !failed.contains(&repo.as_str())
                        && !skipped.contains(&(repo.clone(), Some(*id)))
                })
                .map(|(repo, id)| format!("{repo} #{id}"))
                .collect();
            history.push(format!(
                "run {i}: {} pull requests written, failed {failed:?}, skipped {skipped:?}",
                r.records.get("pull_request").copied().unwrap_or(0)
            ));
            assert!(
                unsaid.is_empty(),
                "{name}: run {i} neither stored nor reported {unsaid:?}\n{history:#?}"
            );
            // Done only when the run says it synced everything asked for (no repository and no
            // project failed) and skipped nothing but the permanently broken pull requests.
            done = r.status() == SyncStatus::Complete && skipped == expected;
            report = Some(r);
            if done {
                break;
            }
        }
        assert!(
            done,
            "{name}: the truth was not reached in {MAX_RUNS} runs\n{history:#?}"
        );
        let report = report.unwrap_or_else(|| panic!("{name}: no sync ran in {MAX_RUNS} runs"));
        let (matched, problems) = compare_with_truth(&run.db, &sim.truth(), &broken).unwrap();
        assert!(problems.is_empty(), "{name}: {problems:#?}\n{history:#?}");
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
            endless: None,
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
async fn an_unchanged_resync_costs_one_small_request_per_listing_of_each_repository() {
    blocking(|| {
        let sim = start(Faults::default(), 13);
        let run = setup(&sim);
        // Every entity, as `bbdc sync` imports by default.
        let sync = |run: &SimRun| {
            run.sync(&SyncJob {
                concurrency: 2,
                ..SyncJob::default()
            })
        };
        sync(&run);
        let before = sim.request_counts();
        let report = sync(&run);
        // projects (1 page) + every repository (1 page of /repos) + users (1), and per
        // repository one small request per listing that can change without a commit: its pull
        // requests, its branches and its tags. Nothing for commits, pull requests' commits or
        // builds: no branch head moved.
        let repos = sim.counts().1 as u64;
        let counts = sim.request_counts().since(&before);
        assert_eq!(counts.pull_request_lists, repos, "{counts:?}");
        assert_eq!(
            (
                counts.commit_lists,
                counts.pr_commit_lists,
                counts.build_lists
            ),
            (0, 0, 0),
            "{counts:?}"
        );
        assert_eq!(counts.other, 3 + 2 * repos, "{counts:?}");
        assert_eq!(report.requests, 3 + 3 * repos, "{report:?}");
        assert_eq!(report.records.get("pull_request"), Some(&0));
        assert_eq!(report.records.get("commit"), Some(&0));
        sim.stop();
    })
    .await;
}
