//! Build statuses (`fetch-builds`, contract 0.2.0) through `bbdc sync --entities all`, the real
//! component and the host's HTTP stack against the simulator: the `builds` table equals the
//! simulator's statuses of every default-branch commit and every pull request's head commit, on
//! every server version it offers, with reference and varied shapes and under faults (and the
//! `commits` table each default branch, the `pr_commits` table each pull request's commits and
//! `first_commit_at`); an unchanged repository reads no build and no pull request's commits; a
//! push reads the new commits' builds only; a push to a pull request reads its commits again
//! (one request); a force-push drops the builds of the commits it dropped. A renamed repository
//! keeps its identity (every record moves with it); a deleted one is recorded deleted.

mod support;

use bbdc_jobs::sync::{Entities, SyncJob};
use bbdc_sim::Faults;
use bbdc_sim::builds::builds_of;
use bbdc_sim::render::{Dialect, Shapes};
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{PrCommitTruth, SimConfig, Simulator};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use support::TOKEN;

/// A stored build: commit, key, name, state, url, created, updated, duration, number, parent,
/// ref, and the three test counts.
type Row = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    [Option<i64>; 3],
);

type Table = BTreeMap<(String, String), Vec<Row>>;

fn start(version: ServerVersion, shapes: Shapes, faults: Faults, seed: u64) -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            seed,
            projects: 2,
            repos_per_project: 2,
            prs_per_repo: 3,
            users: 4,
        },
        faults,
        token: Some(TOKEN.into()),
        dialect: Dialect { version, shapes },
        ..SimConfig::default()
    })
    .expect("simulator")
}

/// The `builds` table, by repository, rows sorted.
fn stored(db: &Path) -> Table {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare(
            "SELECT project_key, repo_slug, commit_id, key, name, state, url, created_at, updated_at,
                    duration_ms, build_number, parent, ref_id, tests_successful, tests_failed, tests_skipped
             FROM builds ORDER BY 1, 2, 3, 4",
        )
        .expect("the builds table");
    let mut out: Table = BTreeMap::new();
    for row in st
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?),
                (
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                    [r.get(13)?, r.get(14)?, r.get(15)?],
                ),
            ))
        })
        .expect("rows")
    {
        let (key, b) = row.expect("a row");
        out.entry(key).or_default().push(b);
    }
    out
}

/// The `commits` table as (project, repo, commit id).
fn stored_commits(db: &Path) -> BTreeSet<(String, String, String)> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare("SELECT project_key, repo_slug, id FROM commits")
        .expect("the commits table");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("a row")
}

/// The `pr_commits` table, in the simulator's terms.
fn stored_pr_commits(db: &Path) -> BTreeSet<PrCommitTruth> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare(
            "SELECT project_key, repo_slug, pr_id, commit_id, author_timestamp, parent_count, summary
             FROM pr_commits",
        )
        .expect("the pr_commits table");
    st.query_map([], |r| {
        Ok(PrCommitTruth {
            project: r.get(0)?,
            repo: r.get(1)?,
            pr: r.get(2)?,
            commit: r.get(3)?,
            author_time: r.get(4)?,
            parents: r.get(5)?,
            summary: r.get(6)?,
        })
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("a row")
}

/// Each stored pull request's `first_commit_at`.
fn stored_first_commits(db: &Path) -> BTreeMap<(String, String, u64), Option<i64>> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare("SELECT project_key, repo_slug, id, first_commit_at FROM pull_requests")
        .expect("the pull_requests table");
    st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("a row")
}

/// The `branches` and `tags` tables, in the simulator's terms.
fn stored_ref_truth(db: &Path) -> BTreeSet<bbdc_sim::RefTruth> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare(
            "SELECT project_key, repo_slug, ref_id, latest_commit, is_default, NULL FROM branches
             UNION ALL SELECT project_key, repo_slug, ref_id, target, 0, object_hash FROM tags",
        )
        .expect("the ref tables");
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .expect("rows")
    .collect::<Result<_, _>>()
    .expect("a row")
}

/// Whether every pull request's commits and `first_commit_at` are the simulator's.
fn pr_commits_equal(sim: &Simulator, db: &Path) -> bool {
    stored_pr_commits(db) == sim.pr_commit_truth()
        && stored_first_commits(db) == sim.first_commit_truth()
}

/// What the table must hold: the builds of each repository's default-branch commits and of its
/// pull requests' head commits, as a server of `version` reports them.
fn truth(sim: &Simulator, version: ServerVersion) -> Table {
    truth_with(sim, version, &[])
}

/// [`truth`], plus the builds of `also`: (repository place, commit) pairs whose builds were read
/// before (a pull request's earlier head, which keeps them).
fn truth_with(sim: &Simulator, version: ServerVersion, also: &[(usize, String)]) -> Table {
    let rich = version.has_rich_build_status();
    let mut out: Table = BTreeMap::new();
    for (place, r) in sim.world().repos().enumerate() {
        let commits: BTreeSet<String> = r
            .history
            .branch()
            .iter()
            .map(|c| c.id.clone())
            .chain(r.prs.iter().map(|p| p.from_commit.clone()))
            .chain(
                also.iter()
                    .filter(|(at, _)| *at == place)
                    .map(|(_, c)| c.clone()),
            )
            .collect();
        let mut rows: Vec<Row> = commits
            .iter()
            .flat_map(|id| {
                builds_of(id).into_iter().map(move |b| {
                    let tests = b.tests.filter(|_| rich);
                    (
                        id.clone(),
                        b.key.clone(),
                        Some(b.name.clone()),
                        b.state.to_owned(),
                        Some(b.url.clone()),
                        Some(b.created),
                        rich.then_some(b.updated),
                        b.duration.filter(|_| rich),
                        rich.then(|| b.number.clone()),
                        rich.then(|| b.parent.clone()),
                        rich.then(|| "refs/heads/main".to_owned()),
                        [
                            tests.map(|t| i64::from(t.0)),
                            tests.map(|t| i64::from(t.1)),
                            tests.map(|t| i64::from(t.2)),
                        ],
                    )
                })
            })
            .collect();
        rows.sort();
        if !rows.is_empty() {
            out.insert((r.project.clone(), r.slug.clone()), rows);
        }
    }
    out
}

/// A run against `sim` without the client-side rate limit (the simulator does not limit).
fn unlimited(sim: &Simulator) -> support::SimRun {
    support::sim_run(&sim.base_url(), TOKEN, |config| {
        config.http_policy.burst = None
    })
}

fn all() -> SyncJob {
    SyncJob {
        entities: Entities::parse("all").expect("entities"),
        ..SyncJob::default()
    }
}

#[test]
fn builds_equal_the_simulator_on_every_version_and_shape() {
    for version in ServerVersion::ALL {
        for shapes in [Shapes::Reference, Shapes::Varied { seed: 3 }] {
            let sim = start(version, shapes, Faults::default(), 21);
            let run = unlimited(&sim);
            let report = run.sync(&all());
            let what = format!("{version} {shapes:?}");
            assert!(
                report.failed_repos.is_empty(),
                "{what}: {:?}",
                report.failed_repos
            );
            let want = truth(&sim, version);
            let states: BTreeSet<&str> = want.values().flatten().map(|r| r.3.as_str()).collect();
            assert_eq!(
                states.len(),
                5,
                "{what}: every state is exercised: {states:?}"
            );
            assert_eq!(stored(&run.db), want, "{what}");
            assert_eq!(
                stored_commits(&run.db),
                sim.commit_truth(),
                "{what}: commits"
            );
            assert_eq!(stored_ref_truth(&run.db), sim.ref_truth(), "{what}: refs");
            let pr_commits = sim.pr_commit_truth();
            assert!(
                pr_commits.iter().any(|c| c.parents == 2),
                "{what}: a pull request's merge commit is exercised"
            );
            assert_eq!(stored_pr_commits(&run.db), pr_commits, "{what}: pr commits");
            assert_eq!(
                stored_first_commits(&run.db),
                sim.first_commit_truth(),
                "{what}: first_commit_at"
            );
            assert_eq!(
                report.records.get("pr_commit").copied(),
                Some(pr_commits.len() as u64),
                "{what}"
            );
            let total: usize = want.values().map(Vec::len).sum();
            assert_eq!(
                report.records.get("build").copied(),
                Some(total as u64),
                "{what}"
            );
            sim.stop();
        }
    }
}

#[test]
fn an_unchanged_repository_reads_no_build_and_a_push_reads_the_new_commits_only() {
    let version = ServerVersion::default();
    let sim = start(version, Shapes::Reference, Faults::default(), 8);
    let run = unlimited(&sim);
    run.sync(&all());
    assert_eq!(stored(&run.db), truth(&sim, version));

    assert!(pr_commits_equal(&sim, &run.db));

    let before = sim.request_counts();
    let report = run.sync(&all());
    let counts = sim.request_counts().since(&before);
    assert_eq!(counts.build_lists, 0);
    assert_eq!(counts.pr_commit_lists, 0);
    assert_eq!(report.records.get("build").copied(), Some(0));
    assert_eq!(report.records.get("pr_commit").copied(), Some(0));

    // A push to a pull request: its commits are read again, in one request, and its new head's
    // builds.
    let head = |sim: &Simulator| {
        sim.world()
            .repos()
            .nth(3)
            .and_then(|r| r.prs.get(1).map(|p| p.from_commit.clone()))
            .expect("repository 3 has a second pull request")
    };
    let old_head = head(&sim);
    sim.push_to_pull_request(3, 1);
    assert_ne!(head(&sim), old_head);
    let before = sim.request_counts();
    run.sync(&all());
    let counts = sim.request_counts().since(&before);
    assert_eq!(counts.pr_commit_lists, 1);
    assert_eq!(counts.build_lists, 1);
    assert!(pr_commits_equal(&sim, &run.db));
    // The earlier head's builds stay: they are what CI said about the pull request then.
    let read_before = [(3, old_head)];
    assert_eq!(stored(&run.db), truth_with(&sim, version, &read_before));

    // Three new commits: three build requests, one per commit.
    sim.push_commits(1, 3);
    let before = sim.request_counts();
    run.sync(&all());
    assert_eq!(sim.request_counts().since(&before).build_lists, 3);
    assert_eq!(stored(&run.db), truth_with(&sim, version, &read_before));

    // A force-push: the dropped commits' builds go, the new ones' come.
    sim.force_push(0, 4, 2);
    run.sync(&all());
    assert_eq!(stored(&run.db), truth_with(&sim, version, &read_before));

    // Pull requests and commits without builds: no build request.
    let before = sim.request_counts();
    sim.push_commits(2, 1);
    run.sync(&SyncJob {
        entities: Entities::parse("pull-requests,commits").expect("entities"),
        ..SyncJob::default()
    });
    assert_eq!(sim.request_counts().since(&before).build_lists, 0);
    sim.stop();
}

#[test]
fn builds_reach_the_simulator_through_faults() {
    let version = ServerVersion::default();
    let faults = Faults {
        rate_429: 0.03,
        rate_5xx: 0.08,
        latency: Duration::from_millis(1),
        cut_rate: 0.05,
        malformed_rate: 0.05,
        ..Faults::default()
    };
    let sim = start(version, Shapes::Varied { seed: 9 }, faults, 13);
    let run = support::sim_run(&sim.base_url(), TOKEN, |config| {
        config.http_policy.burst = None;
        config.timeouts.read = Duration::from_millis(800);
        config.http_policy.base_backoff = Duration::from_millis(5);
        config.http_policy.max_backoff = Duration::from_millis(40);
    });
    // A call that still failed after the host's retries fails its repository for this run, and
    // the queued commits are read by the next: a bounded number of runs reaches the truth.
    let want = truth(&sim, version);
    let mut runs = 0;
    loop {
        runs += 1;
        let _ = run.try_sync(&all());
        if stored(&run.db) == want
            && stored_commits(&run.db) == sim.commit_truth()
            && pr_commits_equal(&sim, &run.db)
            && stored_ref_truth(&run.db) == sim.ref_truth()
        {
            break;
        }
        assert!(
            runs < 12,
            "12 runs did not reach the simulator's builds, commits, refs and pull requests' commits"
        );
    }
    sim.stop();
}

/// Rows of every repository table still under `project/slug`.
fn rows_under(db: &Path, project: &str, slug: &str) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    bbdc_jobs::records::REPO_TABLES
        .into_iter()
        .map(|t| {
            let (table, column) = (t.name, t.slug_column);
            let n: i64 = conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM {table} WHERE project_key = ?1 AND {column} = ?2"
                    ),
                    [project, slug],
                    |r| r.get(0),
                )
                .expect("a count");
            (table.to_owned(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn a_renamed_repository_keeps_its_identity_and_a_deleted_one_is_recorded_deleted() {
    let version = ServerVersion::default();
    let sim = start(version, Shapes::Reference, Faults::default(), 5);
    let run = unlimited(&sim);
    run.sync(&all());
    let (project, old_slug, id) = sim.rename_repo(1, "renamed").expect("repository 1");
    assert!(!rows_under(&run.db, &project, &old_slug).is_empty());

    let report = run.sync(&all());
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    assert_eq!(report.records.get("repo_deleted").copied(), Some(0));
    // Nothing stays under the old name, and everything equals the renamed instance: no
    // pull request, commit or build twice.
    assert_eq!(rows_under(&run.db, &project, &old_slug), vec![]);
    let prs = sim.truth();
    let (matched, problems) =
        bbdc_jobs::truth::compare_with_truth(&run.db, &prs, &[]).expect("compared");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(matched, prs.len());
    let conn = rusqlite::Connection::open(&run.db).expect("the database");
    let stored_prs: i64 = conn
        .query_row("SELECT COUNT(*) FROM pull_requests", [], |r| r.get(0))
        .expect("a count");
    assert_eq!(stored_prs as usize, prs.len());
    let renamed_id: i64 = conn
        .query_row(
            "SELECT id FROM repos WHERE project_key = ?1 AND slug = 'renamed'",
            [&project],
            |r| r.get(0),
        )
        .expect("the renamed repository");
    assert_eq!(renamed_id as u64, id);
    assert_eq!(stored(&run.db), truth(&sim, version));
    assert_eq!(stored_commits(&run.db), sim.commit_truth());
    assert!(pr_commits_equal(&sim, &run.db));

    // A repository deleted on the server: the next complete listing records it deleted, and
    // keeps its records.
    sim.delete_repo(2);
    let gone = sim.world().repo_now(2);
    let report = run.sync(&all());
    assert_eq!(report.records.get("repo_deleted").copied(), Some(1));
    let (deleted, prs): (i64, i64) = conn
        .query_row(
            "SELECT deleted, (SELECT COUNT(*) FROM pull_requests WHERE project_key = ?1 AND repo_slug = ?2)
             FROM repos WHERE project_key = ?1 AND slug = ?2",
            [&gone.project, &gone.slug],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the deleted repository's row");
    assert_eq!(deleted, 1);
    assert_eq!(prs as usize, gone.prs.len());
    let live: i64 = conn
        .query_row("SELECT COUNT(*) FROM repos WHERE deleted = 0", [], |r| {
            r.get(0)
        })
        .expect("a count");
    assert_eq!(live as usize, sim.world().repos().count());
    // Once recorded, it is not counted again; a sync of one project marks nothing.
    let report = run.sync(&all());
    assert_eq!(report.records.get("repo_deleted").copied(), Some(0));
    let report = run.sync(&SyncJob {
        projects: vec!["P2".into()],
        ..all()
    });
    assert_eq!(report.records.get("repo_deleted"), None);
    let live_after: i64 = conn
        .query_row("SELECT COUNT(*) FROM repos WHERE deleted = 0", [], |r| {
            r.get(0)
        })
        .expect("a count");
    assert_eq!(live_after, live);
    sim.stop();
}

/// The default branch's stored commit in `branches`, for `project/slug`.
fn stored_main(db: &Path, project: &str, slug: &str) -> Option<String> {
    rusqlite::Connection::open(db)
        .expect("the database")
        .query_row(
            "SELECT latest_commit FROM branches WHERE project_key = ?1 AND repo_slug = ?2 AND ref_id = 'refs/heads/main'",
            [project, slug],
            |r| r.get(0),
        )
        .ok()
        .flatten()
}

/// Waits up to a minute for `done`, polling (the refresh runs in the background).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < until,
            "{what}: not within a minute"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_stores_signed_repository_webhooks_and_refreshes_the_pushed_history() {
    use bbdc_jobs::records::{RecordSink, SqliteRecords};
    use bbdc_jobs::serve::{ServeConfig, WEBHOOK_PATH, WebhookServer};
    use std::sync::Arc;

    let version = ServerVersion::default();
    let sim = start(version, Shapes::Varied { seed: 4 }, Faults::default(), 17);
    let run = unlimited(&sim);
    run.sync(&all());
    let records: Arc<dyn RecordSink> = Arc::new(SqliteRecords::open(&run.db).expect("records"));
    let runtime = Arc::new(
        bbdc_host::Runtime::new(&bbdc_host::RuntimeConfig {
            cache_dir: Some(
                std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            ),
            ..Default::default()
        })
        .expect("a runtime"),
    );
    let secret = "repo-events-secret";
    let server = WebhookServer::start(
        runtime,
        run.tenant.clone(),
        records,
        ServeConfig {
            refresh: true,
            ..ServeConfig::new("127.0.0.1:0", Some(secret.into()))
        },
    )
    .expect("serve starts");
    sim.set_webhook(&format!("http://{}{WEBHOOK_PATH}", server.addr()), secret);

    // A push: the signed repo:refs_changed delivery is answered once the branch's new commit is
    // stored, and the background refresh brings the new commits and their builds.
    let repo = sim.world().repos().nth(1).expect("a second repository");
    sim.push_commits(1, 2);
    let tip = sim
        .world()
        .repos()
        .nth(1)
        .and_then(|r| r.history.tip.clone());
    assert_ne!(tip, repo.history.tip);
    // Stored before the answer when the payload places it (its `fromHash` is the stored head);
    // with these varied shapes the payload may have lost its hashes, and then the repository
    // is marked for a refs listing instead, which the refresh runs at once.
    let marked: bool = rusqlite::Connection::open(&run.db)
        .expect("the database")
        .query_row(
            "SELECT refs_marked_at IS NOT NULL FROM repos WHERE project_key = ?1 AND slug = ?2",
            [&repo.project, &repo.slug],
            |r| r.get(0),
        )
        .expect("the repository");
    assert!(
        marked || stored_main(&run.db, &repo.project, &repo.slug) == tip,
        "the push is stored or the repository marked"
    );
    eventually("the pushed commits and their builds", || {
        stored_main(&run.db, &repo.project, &repo.slug) == tip
            && stored_commits(&run.db) == sim.commit_truth()
            && stored(&run.db) == truth(&sim, version)
    });
    // A force-push is a push too: the dropped commits go.
    sim.force_push(1, 3, 1);
    eventually("the force-pushed history", || {
        stored_commits(&run.db) == sim.commit_truth() && stored(&run.db) == truth(&sim, version)
    });

    // A push to a pull request: its pr:from_ref_updated delivery refreshes it, its commits and
    // its new head's builds (the earlier head's stay).
    let old_head = sim
        .world()
        .repos()
        .nth(3)
        .and_then(|r| r.prs.get(1).map(|p| p.from_commit.clone()))
        .expect("repository 3 has a second pull request");
    sim.push_to_pull_request(3, 1);
    let read_before = [(3, old_head)];
    eventually("the pushed pull request's commits and builds", || {
        pr_commits_equal(&sim, &run.db)
            && stored(&run.db) == truth_with(&sim, version, &read_before)
    });

    // A rename: the repo:modified delivery moves every record at once, before any sync.
    let (project, old_slug, id) = sim.rename_repo(2, "moved").expect("repository 2");
    assert_eq!(rows_under(&run.db, &project, &old_slug), vec![]);
    let moved: i64 = rusqlite::Connection::open(&run.db)
        .expect("the database")
        .query_row(
            "SELECT id FROM repos WHERE project_key = ?1 AND slug = 'moved'",
            [&project],
            |r| r.get(0),
        )
        .expect("the moved repository");
    assert_eq!(moved as u64, id);
    server.stop();

    // The next sync finds everything in place: nothing twice, everything the simulator's.
    let report = run.sync(&all());
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    let prs = sim.truth();
    let (matched, problems) =
        bbdc_jobs::truth::compare_with_truth(&run.db, &prs, &[]).expect("compared");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(matched, prs.len());
    assert_eq!(stored(&run.db), truth_with(&sim, version, &read_before));
    assert_eq!(stored_commits(&run.db), sim.commit_truth());
    assert!(pr_commits_equal(&sim, &run.db));
    sim.stop();
}

/// The commits queued for their builds.
fn queued(db: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare("SELECT commit_id FROM build_queue")
        .expect("the build_queue table");
    st.query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("a row")
}

/// How many stored builds are in `state`.
fn in_state(db: &Path, state: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("the database")
        .query_row(
            "SELECT COUNT(*) FROM builds WHERE state = ?1",
            [state],
            |r| r.get(0),
        )
        .expect("a count")
}

#[test]
fn running_builds_are_read_again_until_they_finish_and_a_failed_commit_stays_queued() {
    use bbdc_sim::builds::RunningBuilds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock")
        .as_millis() as i64;
    let version = ServerVersion::default();
    let sim = start(version, Shapes::Reference, Faults::default(), 8);
    let run = unlimited(&sim);

    // Builds that ran long ago and never said they finished are not read again.
    run.sync(&all());
    assert!(in_state(&run.db, "INPROGRESS") > 0);
    assert_eq!(queued(&run.db), BTreeSet::new());

    // Running now: every commit with one stays queued, and each later sync reads it again.
    let sim = {
        sim.stop();
        start(version, Shapes::Reference, Faults::default(), 8)
    };
    let run = unlimited(&sim);
    sim.set_running_builds(RunningBuilds::Since(now - 3_600_000));
    run.sync(&all());
    let running: BTreeSet<String> = truth(&sim, version)
        .values()
        .flatten()
        .filter(|r| r.3 == "INPROGRESS")
        .map(|r| r.0.clone())
        .collect();
    assert!(!running.is_empty());
    assert_eq!(queued(&run.db), running);
    let before = sim.request_counts();
    run.sync(&all());
    assert_eq!(
        sim.request_counts().since(&before).build_lists as usize,
        running.len()
    );
    assert_eq!(queued(&run.db), running);

    // They finish: the next sync stores the outcome and the queue empties; then nothing is read.
    sim.set_running_builds(RunningBuilds::FinishedAt(now));
    run.sync(&all());
    assert_eq!(in_state(&run.db, "INPROGRESS"), 0);
    assert_eq!(queued(&run.db), BTreeSet::new());
    let before = sim.request_counts();
    run.sync(&all());
    assert_eq!(sim.request_counts().since(&before).build_lists, 0);

    // A commit whose statuses cannot be read: the repository is reported builds_incomplete, the
    // commit stays queued with the others read, and the next sync reads it.
    sim.push_commits(0, 2);
    let tip = sim
        .world()
        .repos()
        .next()
        .and_then(|r| r.history.tip.clone())
        .expect("a tip");
    sim.fail_builds_of(&tip, true);
    let report = run.sync(&all());
    let failed: Vec<&str> = report
        .failed_repos
        .iter()
        .map(|f| f.code.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["builds_incomplete"],
        "{:?}",
        report.failed_repos
    );
    assert_eq!(queued(&run.db), BTreeSet::from([tip.clone()]));
    sim.fail_builds_of(&tip, false);
    let report = run.sync(&all());
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    assert_eq!(queued(&run.db), BTreeSet::new());
    sim.stop();
}

#[test]
fn commits_before_since_are_stored_but_their_builds_not_read() {
    let sim = start(
        ServerVersion::default(),
        Shapes::Reference,
        Faults::default(),
        8,
    );
    let run = unlimited(&sim);
    let report = run.sync(&SyncJob {
        since: Some(i64::MAX / 2),
        ..all()
    });
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    assert_eq!(stored_commits(&run.db), sim.commit_truth());
    assert_eq!(sim.request_counts().build_lists, 0);
    assert_eq!(stored(&run.db), Table::new());
    sim.stop();
}
