//! The commit pass (`fetch-commits`, contract 0.2.0) through the real component and the host's
//! HTTP stack against the simulator: a first pass equals each repository's default branch, an
//! unchanged one costs one small request, a push lists only what is new, and a force-push is
//! found and the branch listed again in full; and `bbdc sync --entities all` keeps the `commits`
//! table equal to each default branch through pushes and a force-push.

mod support;

use bbdc_host::bindings::history::{Commit, CommitBatch, CommitPassKind};
use bbdc_host::bindings::types::RepoRef;
use bbdc_sim::history::SimCommit;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{SimConfig, Simulator};
use support::{TOKEN, runtime, tenant};

/// Runs a whole pass of `repo`, acknowledging every batch.
fn pass(tenant: &std::sync::Arc<bbdc_host::Tenant>, repo: &RepoRef) -> Vec<CommitBatch> {
    let mut batches = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let b = runtime()
            .fetch_commits(tenant, repo, cursor.as_deref())
            .unwrap_or_else(|e| panic!("{}/{}: {e}", repo.project_key, repo.slug));
        cursor = b.next_cursor.clone();
        batches.push(b);
        if cursor.is_none() {
            return batches;
        }
    }
    panic!("the pass did not end");
}

fn commits(batches: &[CommitBatch]) -> Vec<&Commit> {
    batches.iter().flat_map(|b| &b.commits).collect()
}

/// The record a correct pass makes of a simulated commit.
fn expected(c: &SimCommit) -> (String, u32, String, Option<String>, Option<i64>) {
    (
        c.id.clone(),
        c.parents.len() as u32,
        c.message.lines().next().unwrap_or_default().to_owned(),
        c.author.slug.clone(),
        Some(c.author_time),
    )
}

fn got(c: &Commit) -> (String, u32, String, Option<String>, Option<i64>) {
    (
        c.id.clone(),
        c.parent_count,
        c.summary.clone(),
        c.author.user_slug.clone(),
        c.author_timestamp,
    )
}

#[test]
fn commit_passes_follow_the_default_branch_through_pushes_and_a_force_push() {
    let sim = Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 11,
            projects: 2,
            repos_per_project: 2,
            prs_per_repo: 2,
            users: 4,
        },
        token: Some(TOKEN.into()),
        ..SimConfig::default()
    })
    .expect("simulator");
    let tenant = tenant(&sim.base_url());
    let world = sim.world();
    let repos: Vec<(usize, RepoRef)> = world
        .repos()
        .enumerate()
        .map(|(i, r)| {
            (
                i,
                RepoRef {
                    project_key: r.project.clone(),
                    slug: r.slug.clone(),
                },
            )
        })
        .collect();

    // First passes: each repository's default branch, newest first, every field as generated.
    for (i, repo) in &repos {
        let batches = pass(&tenant, repo);
        let truth = world.repo_now(*i);
        let want: Vec<_> = truth.history.branch().into_iter().map(expected).collect();
        let have: Vec<_> = commits(&batches).into_iter().map(got).collect();
        assert_eq!(have, want, "{}/{}", repo.project_key, repo.slug);
        assert!(batches.iter().all(|b| b.pass == CommitPassKind::First));
        assert!(
            commits(&batches)
                .iter()
                .all(|c| c.repo == *repo && !c.summary.contains('\n')),
            "one repository's records, first lines only"
        );
    }

    // Unchanged: one small request per repository, nothing listed.
    let before = sim.request_counts();
    for (_, repo) in &repos {
        let batches = pass(&tenant, repo);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].pass, CommitPassKind::Unchanged);
        assert!(batches[0].commits.is_empty());
    }
    let spent = sim.request_counts().since(&before);
    assert_eq!(spent.commit_lists, repos.len() as u64);
    assert_eq!(
        spent.total(),
        spent.commit_lists,
        "nothing but commit listings"
    );

    // A push of two: only those two.
    let (pushed, pushed_repo) = repos[0].clone();
    sim.push_commits(pushed, 2);
    let batches = pass(&tenant, &pushed_repo);
    let now = sim.world().repo_now(pushed);
    let want: Vec<_> = now
        .history
        .branch()
        .into_iter()
        .take(2)
        .map(expected)
        .collect();
    let have: Vec<_> = commits(&batches).into_iter().map(got).collect();
    assert_eq!(have, want);
    assert!(
        batches
            .iter()
            .all(|b| b.pass == CommitPassKind::Incremental)
    );

    // A force-push that drops the last three commits: found, and the branch listed in full.
    let (forced, forced_repo) = repos[1].clone();
    sim.force_push(forced, 3, 1);
    let batches = pass(&tenant, &forced_repo);
    assert_eq!(
        batches.last().map(|b| b.pass),
        Some(CommitPassKind::Rewritten)
    );
    let rewritten: Vec<_> = batches
        .iter()
        .filter(|b| b.pass == CommitPassKind::Rewritten)
        .flat_map(|b| &b.commits)
        .map(got)
        .collect();
    let now = sim.world().repo_now(forced);
    let want: Vec<_> = now.history.branch().into_iter().map(expected).collect();
    assert_eq!(rewritten, want, "the branch as it is now");
    // And the next pass is unchanged again.
    assert_eq!(
        pass(&tenant, &forced_repo)[0].pass,
        CommitPassKind::Unchanged
    );
    sim.stop();
}

/// The `commits` table of a sync's SQLite file: (project, repo) → ids, newest first by commit
/// time as the branch lists them.
fn stored_commits(
    db: &std::path::Path,
) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut st = conn
        .prepare(
            "SELECT project_key, repo_slug, id FROM commits ORDER BY project_key, repo_slug, id",
        )
        .expect("the commits table");
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .expect("rows");
    let mut out: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for row in rows {
        let (k, s, id) = row.expect("a row");
        out.entry((k, s)).or_default().push(id);
    }
    out
}

/// Branches (name, commit, default) and tags (name, target, object) by repository, sorted.
#[allow(clippy::type_complexity)]
fn stored_refs(
    db: &std::path::Path,
) -> (
    std::collections::BTreeMap<(String, String), Vec<(String, Option<String>, bool)>>,
    std::collections::BTreeMap<(String, String), Vec<(String, Option<String>, Option<String>)>>,
) {
    let conn = rusqlite::Connection::open(db).expect("the database");
    let mut branches: std::collections::BTreeMap<_, Vec<_>> = Default::default();
    let mut st = conn
        .prepare("SELECT project_key, repo_slug, name, latest_commit, is_default FROM branches ORDER BY 1, 2, 3")
        .expect("the branches table");
    for row in st
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .expect("rows")
    {
        let (key, b) = row.expect("a row");
        branches.entry(key).or_default().push(b);
    }
    let mut tags: std::collections::BTreeMap<_, Vec<_>> = Default::default();
    let mut st = conn
        .prepare(
            "SELECT project_key, repo_slug, name, target, object_hash FROM tags ORDER BY 1, 2, 3",
        )
        .expect("the tags table");
    for row in st
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .expect("rows")
    {
        let (key, t) = row.expect("a row");
        tags.entry(key).or_default().push(t);
    }
    (branches, tags)
}

/// Each repository's default branch, ids sorted, as the simulator has it now.
fn branches(sim: &Simulator) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    sim.world()
        .repos()
        .map(|r| {
            let mut ids: Vec<String> = r.history.branch().iter().map(|c| c.id.clone()).collect();
            ids.sort();
            ((r.project.clone(), r.slug.clone()), ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
}

#[test]
fn bbdc_sync_with_commits_keeps_each_default_branch_through_a_force_push() {
    let sim = Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 5,
            projects: 2,
            repos_per_project: 2,
            prs_per_repo: 3,
            users: 4,
        },
        token: Some(TOKEN.into()),
        ..SimConfig::default()
    })
    .expect("simulator");
    // One repository was created and never pushed to: it lists no branch.
    let empty = 3;
    sim.empty_repo(empty);
    let run = support::sim_run(&sim.base_url(), TOKEN, |_| {});
    let job = bbdc_jobs::sync::SyncJob {
        entities: bbdc_jobs::sync::Entities::parse("all").expect("entities"),
        ..bbdc_jobs::sync::SyncJob::default()
    };
    let report = run.sync(&job);
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    assert_eq!(stored_commits(&run.db), branches(&sim));
    let total: usize = branches(&sim).values().map(Vec::len).sum();
    assert_eq!(report.records.get("commit").copied(), Some(total as u64));
    assert_eq!(
        report.records.get("pull_request").copied(),
        Some(sim.truth().len() as u64)
    );

    // Branches and tags as the simulator has them; `main` points at each tip.
    let (stored_branches, tags) = stored_refs(&run.db);
    for r in sim.world().repos() {
        let key = (r.project.clone(), r.slug.clone());
        let mut want: Vec<(String, Option<String>, bool)> = r
            .history
            .branches
            .iter()
            .map(|(n, c)| (n.clone(), Some(c.clone()), false))
            .collect();
        // An empty repository has no branch at all.
        if r.history.tip.is_some() {
            want.push(("main".into(), r.history.tip.clone(), true));
        }
        want.sort();
        assert_eq!(
            stored_branches.get(&key).cloned().unwrap_or_default(),
            want,
            "{key:?}"
        );
        let mut want_tags: Vec<(String, Option<String>, Option<String>)> = r
            .history
            .tags
            .iter()
            .map(|t| (t.name.clone(), Some(t.target.clone()), t.object.clone()))
            .collect();
        want_tags.sort();
        assert_eq!(
            tags.get(&key).cloned().unwrap_or_default(),
            want_tags,
            "{key:?}"
        );
    }
    assert!(
        tags.values().flatten().any(|t| t.2.is_some()),
        "annotated tags too"
    );

    // Unchanged: no default branch moved, so no commit request at all, the empty repository's
    // included; the branch and tag listings are one small request each per repository.
    let before = sim.request_counts();
    let report = run.sync(&job);
    assert_eq!(report.records.get("commit").copied(), Some(0));
    let spent = sim.request_counts().since(&before);
    assert_eq!(spent.commit_lists, 0);
    let repos = sim.world().repo_count() as u64;
    assert_eq!(
        spent.pull_request_lists, repos,
        "one pull-request list page per repository"
    );

    // A force-push drops commits from one branch, a push adds to another, and the empty
    // repository gets its first commits: the table follows.
    sim.force_push(0, 3, 2);
    sim.push_commits(1, 1);
    sim.push_commits(empty, 2);
    let before = sim.request_counts();
    run.sync(&job);
    assert_eq!(stored_commits(&run.db), branches(&sim));
    let first = sim.world().repo_now(empty);
    assert_eq!(
        branches(&sim)
            .get(&(first.project.clone(), first.slug.clone()))
            .map(Vec::len),
        Some(2),
        "the first push to the empty repository is read"
    );
    assert!(sim.request_counts().since(&before).commit_lists >= 3);
    let (branches_now, _) = stored_refs(&run.db);
    let moved = sim.world().repo_now(0);
    let main = branches_now[&(moved.project.clone(), moved.slug.clone())]
        .iter()
        .find(|b| b.2)
        .cloned();
    assert_eq!(main.and_then(|b| b.1), moved.history.tip.clone());

    // Pull requests alone, as before contract 0.2.0: no commit request at all.
    let before = sim.request_counts();
    run.sync(&bbdc_jobs::sync::SyncJob::default());
    assert_eq!(sim.request_counts().since(&before).commit_lists, 0);
    sim.stop();
}
