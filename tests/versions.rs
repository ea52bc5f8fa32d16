//! Every server generation, end to end through the built component: against a simulator of each
//! version the simulator offers (5.16, 7.21, 8.19, 9.2, 10.3), with the reference shapes and with
//! varied shapes (unknown fields, `null`s, other types and shapes, ISO 8601 dates), a full sync
//! ends equal to the ground truth, personal and archived repositories included; the connection
//! check counts exactly what the sync visits; the personal and archived filters leave out exactly
//! those repositories; and every webhook event of every version and variant is accepted with the
//! right snapshot.

mod support;

use bbdc_host::bindings::types::{RepoFilter, WebhookResult};
use bbdc_jobs::sync::{SyncJob, SyncReport};
use bbdc_jobs::truth::compare_with_truth;
use bbdc_sim::render::{Dialect, Shapes, webhook_events};
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{SimConfig, Simulator};
use serde_json::Value;
use support::*;

const SIM_TOKEN: &str = "versions-token";

fn start(version: ServerVersion, shapes: Shapes) -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 21,
            projects: 2,
            repos_per_project: 2,
            prs_per_repo: 10,
            users: 6,
        },
        token: Some(SIM_TOKEN.into()),
        dialect: Dialect { version, shapes },
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn setup(sim: &Simulator) -> SimRun {
    sim_run(&sim.base_url(), SIM_TOKEN, |c| c.http_policy.burst = None)
}

fn sync(run: &SimRun, filter: RepoFilter) -> SyncReport {
    run.sync(&SyncJob {
        filter,
        concurrency: 2,
        ..SyncJob::default()
    })
}

/// The stored repositories, as `KEY/slug`.
fn stored_repos(run: &SimRun) -> Vec<String> {
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    let mut st = conn
        .prepare("SELECT project_key || '/' || slug FROM repos ORDER BY 1")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn full_sync_equals_truth(version: ServerVersion, shapes: Shapes) {
    let what = format!("{version} with {shapes:?} shapes");
    let sim = start(version, shapes);
    let run = setup(&sim);
    let report = sync(&run, RepoFilter::EVERYTHING);
    assert!(
        report.failed_repos.is_empty(),
        "{what}: {:?}",
        report.failed_repos
    );
    assert!(report.skipped.is_empty(), "{what}: {:?}", report.skipped);
    let truth = sim.truth();
    assert!(
        truth.iter().any(|t| t["project_key"]
            .as_str()
            .is_some_and(|k| k.starts_with('~'))),
        "{what}: the instance has pull requests in personal repositories"
    );
    let (matched, problems) = compare_with_truth(&run.db, &truth, &[]).unwrap();
    assert!(problems.is_empty(), "{what}: {problems:#?}");
    assert_eq!(matched, truth.len(), "{what}");
    // Every repository, personal and archived ones too, was visited and stored, and the
    // connection check counts the same set.
    let (_, repos, _) = sim.counts();
    assert_eq!(
        stored_repos(&run).len(),
        repos,
        "{what}: {:?}",
        stored_repos(&run)
    );
    let check = runtime()
        .check_connection(&run.tenant, RepoFilter::EVERYTHING)
        .unwrap_or_else(|e| panic!("{what}: check failed: {e:?}"));
    assert_eq!(check.repos as usize, repos, "{what}");
    assert_eq!(check.personal_repos, 2, "{what}");
    assert_eq!(
        check.archived_repos,
        u32::from(version.has_archiving()),
        "{what}"
    );
    // The personal projects have records too, though /projects does not list them.
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    let personal: i64 = conn
        .query_row(
            "SELECT count(*) FROM projects WHERE kind = 'personal'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(personal, 2, "{what}");
    sim.stop();
}

#[test]
fn a_full_sync_of_every_version_equals_the_ground_truth() {
    for version in ServerVersion::ALL {
        full_sync_equals_truth(version, Shapes::Reference);
    }
}

#[test]
fn a_full_sync_of_every_version_with_varied_shapes_equals_the_ground_truth() {
    for (i, version) in ServerVersion::ALL.into_iter().enumerate() {
        full_sync_equals_truth(
            version,
            Shapes::Varied {
                seed: 40 + i as u64,
            },
        );
    }
}

#[test]
fn the_personal_and_archived_filters_leave_out_exactly_those_repositories() {
    for version in [ServerVersion::V7_21, ServerVersion::V9_2] {
        for (filter, leaves_out) in [
            (
                RepoFilter {
                    include_personal: false,
                    include_archived: true,
                },
                (|t: &Value| {
                    t["project_key"]
                        .as_str()
                        .is_some_and(|k| k.starts_with('~'))
                }) as fn(&Value) -> bool,
            ),
            (
                RepoFilter {
                    include_personal: true,
                    include_archived: false,
                },
                |t: &Value| t["repo_slug"] == "legacy",
            ),
        ] {
            let what = format!("{version} {filter:?}");
            let sim = start(version, Shapes::Reference);
            let run = setup(&sim);
            let report = sync(&run, filter);
            assert!(report.failed_repos.is_empty(), "{what}");
            // Before 8.0 nothing is archived, so the archived filter leaves nothing out.
            let excluded =
                |t: &Value| leaves_out(t) && (filter.include_archived || version.has_archiving());
            let kept: Vec<Value> = sim.truth().into_iter().filter(|t| !excluded(t)).collect();
            let (matched, problems) = compare_with_truth(&run.db, &kept, &[]).unwrap();
            assert!(problems.is_empty(), "{what}: {problems:#?}");
            assert_eq!(matched, kept.len(), "{what}");
            let stored = stored_repos(&run);
            let check = runtime().check_connection(&run.tenant, filter).unwrap();
            assert_eq!(
                check.repos as usize,
                stored.len(),
                "{what}: check and sync agree: {stored:?}"
            );
            assert_eq!(
                (check.repos + check.excluded_repos) as usize,
                sim.counts().1,
                "{what}"
            );
            if !filter.include_personal {
                assert!(
                    stored.iter().all(|r| !r.starts_with('~')),
                    "{what}: {stored:?}"
                );
                assert_eq!(check.personal_repos, 0, "{what}");
            }
            sim.stop();
        }
    }
}

/// The fields of a webhook's pull-request snapshot that the ground truth checks.
fn snapshot_fields(pr: &bbdc_host::bindings::types::PullRequest) -> String {
    format!(
        "{} {}/{} v{} {:?} {:?} draft={} author={:?} created={} updated={} closed={:?} from={}@{:?} to={}@{:?} fork={:?} reviewers={:?}",
        pr.id,
        pr.repo.project_key,
        pr.repo.slug,
        pr.version,
        pr.title,
        pr.state,
        pr.draft,
        pr.author.as_ref().map(|u| &u.slug),
        pr.created_at,
        pr.updated_at,
        pr.closed_at,
        pr.source.display_id,
        pr.source.latest_commit,
        pr.target.display_id,
        pr.target.latest_commit,
        pr.source_fork.as_ref().map(|r| (&r.project_key, &r.slug)),
        pr.reviewers
            .iter()
            .map(|r| (&r.user.slug, r.status))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn every_webhook_event_of_every_version_and_variant_is_accepted_with_its_snapshot() {
    let sim = start(ServerVersion::V9_2, Shapes::Reference);
    let world = sim.world();
    let tenant = tenant("https://bitbucket.invalid");
    let mut delivered = 0;
    for version in ServerVersion::ALL {
        let reference = Dialect {
            version,
            shapes: Shapes::Reference,
        };
        for r in world.repos().filter(|r| !r.prs.is_empty()) {
            let p = &r.prs[0];
            for (key, payload) in webhook_events(&reference, &r, p) {
                let mut snapshots = Vec::new();
                for seed in [None, Some(1), Some(2), Some(3)] {
                    let shapes = seed.map_or(Shapes::Reference, |seed| Shapes::Varied { seed });
                    let d = Dialect { version, shapes };
                    let body =
                        d.finish(&format!("{key} {}/{}", r.project, r.slug), payload.clone());
                    delivered += 1;
                    let req = bbdc_host::bindings::api::WebhookRequest {
                        headers: vec![
                            ("X-Event-Key".into(), key.into()),
                            (
                                "X-Request-Id".into(),
                                format!("{version}-{key}-{}-{seed:?}-{delivered}", r.slug),
                            ),
                        ],
                        body: body.into_bytes(),
                    };
                    let out = runtime()
                        .handle_webhook(&tenant, None, &req)
                        .unwrap_or_else(|e| panic!("{version} {key} {shapes:?}: rejected: {e:?}"));
                    assert_eq!(
                        out.result,
                        WebhookResult::Accepted,
                        "{version} {key} {shapes:?}"
                    );
                    let pr = out.pull_request.as_ref().expect("a snapshot");
                    assert_eq!(pr.id, p.id);
                    assert_eq!(out.deleted, key == "pr:deleted");
                    let review = out.review.as_ref().map(|c| (c.user.slug.clone(), c.status));
                    assert_eq!(
                        review.is_some(),
                        key.starts_with("pr:reviewer:") && key != "pr:reviewer:updated",
                        "{version} {key}"
                    );
                    snapshots.push((snapshot_fields(pr), review));
                }
                assert!(
                    snapshots.windows(2).all(|w| w[0] == w[1]),
                    "{version} {key}: the varied deliveries give another snapshot:\n{snapshots:#?}"
                );
            }
        }
    }
    assert!(delivered > 200, "{delivered} deliveries");
    sim.stop();
}

#[test]
fn project_filters_reach_personal_projects_too() {
    let sim = start(ServerVersion::V8_19, Shapes::Reference);
    let run = setup(&sim);
    let report = run.sync(&SyncJob {
        projects: vec!["~USER2".into(), "P2".into(), "~USER2".into()],
        concurrency: 2,
        ..SyncJob::default()
    });
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    let stored = stored_repos(&run);
    assert!(
        stored
            .iter()
            .all(|r| r.starts_with("P2/") || r.starts_with("~USER2/")),
        "{stored:?}"
    );
    assert!(stored.contains(&"~USER2/notes".to_string()), "{stored:?}");
    let kept: Vec<Value> = sim
        .truth()
        .into_iter()
        .filter(|t| matches!(t["project_key"].as_str(), Some("P2" | "~USER2")))
        .collect();
    let (matched, problems) = compare_with_truth(&run.db, &kept, &[]).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(matched, kept.len());
    sim.stop();
}
