//! Benchmark 4, history part: what the default branch's commits and their build statuses cost in
//! requests, per commit, on a first sync, on an incremental sync after pushes, and on an
//! unchanged sync (nothing: no branch head moved). Counts, not times: no latency is added.

use super::sync::{Setup, bench_world};
use super::{BenchOptions, Figure, Target};
use anyhow::{Result, ensure};
use bbdc_host::runtime::Runtime;
use bbdc_jobs::sync::{self, Entities, SyncJob};
use bbdc_sim::RequestCounts;
use std::sync::Arc;
use std::time::Duration;

/// New commits pushed onto each repository's default branch before the incremental sync.
const PUSHED_PER_REPO: usize = 5;

/// One history sync (commits with branches and tags, and builds): the requests it made and
/// the commits it wrote.
fn history_sync(
    setup: &Setup,
    runtime: &Runtime,
    concurrency: usize,
) -> Result<(RequestCounts, u64)> {
    let before = setup.sim.request_counts();
    let job = SyncJob {
        concurrency,
        entities: Entities::parse("commits,builds").map_err(anyhow::Error::msg)?,
        ..SyncJob::default()
    };
    let report = sync::run(runtime, &setup.tenant, &setup.sink, None, &job)?;
    ensure!(
        report.failed_repos.is_empty(),
        "the history sync failed repositories {:?}",
        report.failed_repos
    );
    Ok((
        setup.sim.request_counts().since(&before),
        report.records.get("commit").copied().unwrap_or(0),
    ))
}

/// The figures.
pub fn requests_per_commit(options: &BenchOptions, runtime: &Arc<Runtime>) -> Result<Vec<Figure>> {
    let concurrency = options.concurrency.max(1);
    let setup = Setup::start(bench_world(options.quick), Duration::ZERO)?;
    let repos = setup.sim.counts().1;
    let (first, first_commits) = history_sync(&setup, runtime, concurrency)?;
    ensure!(
        first_commits == setup.sim.commit_truth().len() as u64,
        "the first history sync wrote {first_commits} commits of {}",
        setup.sim.commit_truth().len()
    );
    for repo in 0..repos {
        setup.sim.push_commits(repo, PUSHED_PER_REPO);
    }
    let (pushed, pushed_commits) = history_sync(&setup, runtime, concurrency)?;
    let (unchanged, _) = history_sync(&setup, runtime, concurrency)?;
    let per_commit = |c: &RequestCounts, commits: u64| {
        (c.commit_lists + c.build_lists) as f64 / commits.max(1) as f64
    };
    let detail = |c: &RequestCounts, commits: u64| {
        format!(
            "{commits} commits in {repos} repositories: {} commit-list pages, {} build-status requests (one per commit: no resource lists several commits' builds); plus {} branch, tag and other listing requests",
            c.commit_lists, c.build_lists, c.other
        )
    };
    let per_commit_figure = |name: String, c: &RequestCounts, commits: u64| Figure {
        bench: 4,
        name,
        value: per_commit(c, commits),
        unit: "",
        target: Target::None,
        detail: detail(c, commits),
    };
    Ok(vec![
        per_commit_figure(
            "History requests per commit, first sync (commits + builds)".into(),
            &first,
            first_commits,
        ),
        per_commit_figure(
            format!(
                "History requests per new commit, incremental sync ({PUSHED_PER_REPO} pushed per repository)"
            ),
            &pushed,
            pushed_commits,
        ),
        Figure {
            bench: 4,
            name: "Commit and build requests, unchanged history sync".into(),
            value: (unchanged.commit_lists + unchanged.build_lists) as f64,
            unit: "",
            target: Target::Exactly(0.0),
            detail: format!(
                "no branch head moved: {} branch and tag listing requests for {repos} repositories, nothing else",
                unchanged.other
            ),
        },
    ])
}
