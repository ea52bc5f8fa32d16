//! The sync job behind `bbdc sync`: projects → repositories → users → pull requests, repositories
//! in parallel (each call in its own store), every batch made durable in the [`RecordSink`] before
//! the connector is told so (by calling it again with the batch's cursor).

use crate::listing::{
    ListingBounds, ListingPage, MAX_LISTING_ITEMS, MAX_LISTING_PAGES, PageFailure, all_pages,
};
pub use crate::outcome::{
    Failure, PARTIAL_EXIT, SkippedPr, SyncError, SyncReport, SyncStatus, Unreadable,
};
use crate::output;
pub use crate::output::JsonlOut;
use crate::output::emit;
use crate::records::RecordSink;
pub use crate::repo_pass::Entities;
use crate::repo_pass::{RepoFailure, RepoJob, RepoOutcome, now_ms, pr_commits_outcome};
use bbdc_host::bindings::api::{RepoRef, SyncOptions as WitSyncOptions};
use bbdc_host::bindings::types::{Project, PullRequest, RecordKind, Repo, RepoFilter, User};
use bbdc_host::imports::Tenant;
use bbdc_host::runtime::Runtime;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// Only these project keys (empty: every visible project).
    pub projects: Vec<String>,
    /// Only these repositories (empty: every repository of the projects).
    pub repos: Vec<RepoRef>,
    /// Which visible repositories to visit (personal, archived).
    pub filter: RepoFilter,
    /// Ignore pull requests last updated before this instant (epoch ms).
    pub since: Option<i64>,
    /// List every pull request this run (reconciliation), not just what changed.
    pub full: bool,
    /// Repositories synced at once.
    pub concurrency: usize,
    /// Draw progress bars (on stderr, when it is a terminal).
    pub progress: bool,
    /// Most pages (calls) one listing may take before it is stopped with an error: the
    /// projects, repositories and users, and each repository's pull requests, commits,
    /// branches, tags and pull requests' commits.
    pub max_listing_pages: u64,
    /// Most items one listing may bring before it is stopped with an error.
    pub max_listing_items: u64,
    /// What each repository's pass imports.
    pub entities: Entities,
}

impl SyncJob {
    /// How far each listing of the job may run.
    pub fn bounds(&self) -> ListingBounds {
        ListingBounds {
            pages: self.max_listing_pages,
            items: self.max_listing_items,
        }
    }
}

impl Default for SyncJob {
    /// Every visible repository, personal and archived ones included, four at a time.
    fn default() -> Self {
        Self {
            projects: Vec::new(),
            repos: Vec::new(),
            filter: RepoFilter {
                include_personal: true,
                include_archived: true,
            },
            since: None,
            full: false,
            concurrency: 4,
            progress: false,
            max_listing_pages: MAX_LISTING_PAGES,
            max_listing_items: MAX_LISTING_ITEMS,
            entities: Entities::default(),
        }
    }
}

/// Where listed projects and repositories go as their pages arrive. It remembers the keys of
/// the projects written (projects are few beside repositories) and counts the repositories; it
/// holds no repository.
struct Writer<'a> {
    sink: &'a dyn RecordSink,
    jsonl: Option<&'a JsonlOut>,
    /// Keys of the projects written so far.
    projects: HashSet<String>,
    /// Repositories written so far.
    repos: u64,
}

impl Writer<'_> {
    /// Writes the projects not written yet.
    fn projects(&mut self, page: Vec<Project>) -> Result<(), SyncError> {
        let new: Vec<Project> = page
            .into_iter()
            .filter(|p| self.projects.insert(p.key.clone()))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        self.sink.projects(&new)?;
        emit(self.jsonl, new.iter().map(output::project_json))?;
        Ok(())
    }

    /// Writes a page of repositories, and the projects they live in that the project listing
    /// left out (personal ones).
    fn repos(&mut self, page: &[Repo]) -> Result<(), SyncError> {
        self.sink.repos(page)?;
        emit(self.jsonl, page.iter().map(output::repo_json))?;
        self.repos += page.len() as u64;
        self.projects(page.iter().map(|r| r.project.clone()).collect())
    }
}

/// Lists what the job visits, page by page: the projects (written as they arrive), then the
/// repositories (written as they arrive, each handed to `visit`, which may block while the
/// workers catch up). Nothing is kept: an instance of 50,000 repositories costs what one page
/// costs. Without `--project`/`--repo`, every visible repository comes from one listing
/// (`list-all-repos`: `GET /repos`, personal repositories included, which the project listing
/// cannot reach); the project records are the listed projects plus the personal projects those
/// repositories live in. With filters, only the named projects' repositories are listed (personal
/// keys such as `~JDOE` included); a named project that cannot be listed is reported in
/// `failed_projects` and the others are synced.
fn enumerate(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    job: &SyncJob,
    cancel: Option<&AtomicBool>,
    out: &mut Writer<'_>,
    report: &mut SyncReport,
    mut visit: impl FnMut(RepoRef) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let filter = job.filter;
    let mut wanted: Vec<String> = job.projects.clone();
    wanted.extend(job.repos.iter().map(|r| r.project_key.clone()));
    wanted.sort();
    wanted.dedup();
    all_pages(
        "GET /projects",
        job.bounds(),
        cancel,
        |c| runtime.list_projects(tenant, c).map(ListingPage::from),
        &mut report.unreadable,
        |page| {
            out.projects(
                page.into_iter()
                    .filter(|p| wanted.is_empty() || wanted.contains(&p.key))
                    .collect(),
            )
        },
    )
    .map_err(|e| e.into_sync("listing projects"))?;
    // The repositories named with `--repo` that were listed.
    let mut found: Vec<RepoRef> = Vec::new();
    let mut keep = |page: Vec<Repo>, out: &mut Writer<'_>| -> Result<(), SyncError> {
        let page: Vec<Repo> = page
            .into_iter()
            .filter(|r| job.repos.is_empty() || job.repos.contains(&r.repo_ref))
            .collect();
        out.repos(&page)?;
        for r in page {
            if !job.repos.is_empty() && !found.contains(&r.repo_ref) {
                found.push(r.repo_ref.clone());
            }
            visit(r.repo_ref)?;
        }
        Ok(())
    };
    if wanted.is_empty() {
        return all_pages(
            "GET /repos",
            job.bounds(),
            cancel,
            |c| {
                runtime
                    .list_all_repos(tenant, filter, c)
                    .map(ListingPage::from)
            },
            &mut report.unreadable,
            |page| keep(page, out),
        )
        .map_err(|e| e.into_sync("listing repositories"));
    }
    for key in &wanted {
        let listed = all_pages(
            &format!("GET /projects/{key}/repos"),
            job.bounds(),
            cancel,
            |c| {
                runtime
                    .list_repos(tenant, key, filter, c)
                    .map(ListingPage::from)
            },
            &mut report.unreadable,
            |page| keep(page, out),
        );
        // One project that cannot be listed is reported; the others are synced.
        match listed {
            Ok(()) => {}
            Err(PageFailure::Store(e)) => return Err(e),
            Err(PageFailure::Cancelled) => return Err(SyncError::Cancelled),
            Err(failure) => {
                let (code, message) = match failure {
                    PageFailure::Call(e) => {
                        let (code, message) = output::call_error(&e);
                        (code.to_owned(), message)
                    }
                    PageFailure::Runaway(r) => {
                        (crate::listing::Runaway::CODE.into(), r.to_string())
                    }
                    PageFailure::Store(e) => return Err(e),
                    PageFailure::Cancelled => return Err(SyncError::Cancelled),
                };
                tracing::warn!(
                    project = %crate::printable::shown(key),
                    code,
                    "listing repositories failed: {}",
                    crate::printable::shown(&message)
                );
                report
                    .failed_projects
                    .push(Failure::new(key.clone(), code, message));
            }
        }
    }
    if let Some(first) = report.failed_projects.first()
        && report.failed_projects.len() == wanted.len()
    {
        // Every project named failed: nothing can be done.
        let mut f = first.clone();
        f.name = format!("project {}", f.name);
        return Err(f.into());
    }
    for wanted_repo in &job.repos {
        let (k, s) = (&wanted_repo.project_key, &wanted_repo.slug);
        let listed_project = !report.failed_projects.iter().any(|f| f.name == *k);
        if listed_project && !found.contains(wanted_repo) {
            report.failed_repos.push(Failure::new(
                format!("{k}/{s}"),
                "not_found",
                format!(
                    "repository {k}/{s} is not visible to this account (or the filter leaves it out)"
                ),
            ));
        }
    }
    if !job.repos.is_empty() && found.is_empty() && job.projects.is_empty() {
        let mut f = report.failed_repos.first().cloned().unwrap_or_default();
        f.name = format!("repository {}", f.name);
        return Err(f.into());
    }
    Ok(())
}

/// Runs `f` on a one-repository job of `entities` outside a sync (what `bbdc serve` refreshes
/// after a webhook), with no JSON lines and no `--since`; a repository failure becomes the
/// error, named by `repo`.
fn on_one_repo(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    repo: &RepoRef,
    entities: Entities,
    cancel: Option<&AtomicBool>,
    f: impl FnOnce(&RepoJob<'_>, &str) -> Result<(), RepoFailure>,
) -> Result<(), SyncError> {
    let options = WitSyncOptions {
        since: None,
        full_listing: false,
    };
    let job = RepoJob {
        runtime,
        tenant,
        sink,
        jsonl: None,
        options: &options,
        entities,
        bounds: ListingBounds::default(),
        cancel,
    };
    let name = format!("{}/{}", repo.project_key, repo.slug);
    match f(&job, &name) {
        Ok(()) => Ok(()),
        Err(RepoFailure::Fatal(e)) => Err(e),
        Err(RepoFailure::Cancelled) => Err(SyncError::Cancelled),
        Err(RepoFailure::Call { code, message }) => Err(Failure::new(name, code, message).into()),
    }
}

/// Refreshes one repository's history as a sync of `commits,builds` would: its branches and
/// tags, its default branch's commits when the branch moved, and the build statuses queued for
/// it. What `bbdc serve` runs after a push's webhook. Fails with the first failure (the rest
/// of the refresh goes on, as in a sync); stops between two calls once `cancel` is set
/// ([`SyncError::Cancelled`]), what it acknowledged kept.
pub fn refresh_history(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    repo: &RepoRef,
    cancel: Option<&AtomicBool>,
) -> Result<(), SyncError> {
    let entities = Entities {
        pull_requests: false,
        commits: true,
        builds: true,
    };
    on_one_repo(
        runtime,
        tenant,
        sink,
        repo,
        entities,
        cancel,
        |job, name| job.sync_repo(repo, name).map(|_| ()),
    )
}

/// What a sync of every entity does for one pull request it brought, for a pull request
/// `bbdc serve` has just refreshed after a webhook: queues its head commit's builds and, when
/// its pair of head commits changed, its commits; reads its commits and the repository's queued
/// builds. Stops between two calls once `cancel` is set.
pub fn refresh_pull_request_history(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    pr: &PullRequest,
    cancel: Option<&AtomicBool>,
) -> Result<(), SyncError> {
    let repo = &pr.repo;
    on_one_repo(
        runtime,
        tenant,
        sink,
        repo,
        Entities::ALL,
        cancel,
        |job, name| {
            let mut out = RepoOutcome::default();
            let mut failed = HashSet::new();
            job.want_builds(repo, pr.source.latest_commit.iter().cloned().collect())?;
            job.batch_pr_commits(repo, name, std::slice::from_ref(pr), &mut failed, &mut out)?;
            let commits = pr_commits_outcome(&failed);
            // The builds are read whether or not the commits were; a write failure wins.
            match (commits, job.sync_builds(repo, name, &mut out)) {
                (_, Err(stop @ (RepoFailure::Fatal(_) | RepoFailure::Cancelled))) => Err(stop),
                (Err(first), _) => Err(first),
                (Ok(()), builds) => builds,
            }
        },
    )
}

/// After a listing of every repository (no `--project` or `--repo`, nothing filtered out, no
/// listed repository unreadable), marks deleted the stored repositories it did not name, writes
/// a `repo` line with `deleted: true` for each, and counts them (`repo_deleted`). A partial
/// listing cannot tell a deleted repository from one it did not ask for, so it marks nothing.
fn record_gone_repos(
    sink: &dyn RecordSink,
    jsonl: Option<&JsonlOut>,
    job: &SyncJob,
    listing_started: i64,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let complete = job.projects.is_empty()
        && job.repos.is_empty()
        && job.filter.include_personal
        && job.filter.include_archived
        && !report
            .unreadable
            .iter()
            .any(|u| u.kind == output::record_kind(RecordKind::Repository));
    if !complete {
        return Ok(());
    }
    let gone = sink.repos_gone(listing_started)?;
    for (repo, id) in &gone {
        tracing::info!(
            repo = %format!("{}/{}", repo.project_key, repo.slug),
            "no longer listed: recorded as deleted"
        );
        emit(jsonl, std::iter::once(output::deleted_repo_json(repo, *id)))?;
    }
    report.records.insert("repo_deleted", gone.len() as u64);
    Ok(())
}

/// Repositories listed ahead of the workers: enough that no worker waits for the listing's next
/// page, few enough that memory does not grow with the instance.
const LISTED_AHEAD: usize = 256;

/// Lists the users, writing them as their pages arrive.
fn list_users(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    job: &SyncJob,
    cancel: Option<&AtomicBool>,
    sink: &dyn RecordSink,
    jsonl: Option<&JsonlOut>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut fallback = false;
    let mut user_count = 0u64;
    all_pages(
        "GET /users",
        job.bounds(),
        cancel,
        |c| {
            runtime.list_users(tenant, c).map(|p| {
                fallback |= p.fallback;
                ListingPage {
                    items: p.items,
                    next: p.next,
                    unreadable: p.unreadable,
                }
            })
        },
        &mut report.unreadable,
        |page: Vec<User>| {
            sink.users(&page)?;
            emit(jsonl, page.iter().map(output::user_json))?;
            user_count += page.len() as u64;
            Ok(())
        },
    )
    .map_err(|e| e.into_sync("listing users"))?;
    report.records.insert("user", user_count);
    report.users_fallback = fallback;
    Ok(())
}

/// The connector's options for a job's repository passes (`--since`, `--full`).
fn wit_options(job: &SyncJob) -> WitSyncOptions {
    WitSyncOptions {
        since: job.since,
        full_listing: job.full,
    }
}

/// What one repository's pass wrote, as a worker reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoCounts {
    /// Pull requests written.
    pub pull_requests: u64,
    /// Pull requests unchanged since the last pass (not fetched again).
    pub unchanged: u64,
    /// Commits written.
    pub commits: u64,
    /// Build statuses written.
    pub builds: u64,
    /// Pull requests' commits written.
    pub pr_commits: u64,
}

/// How one repository's pass ended for a worker.
#[derive(Debug, thiserror::Error)]
pub enum RepoPassError {
    /// The server or the connector failed for this repository: try it again later (the
    /// connector resumes from its last acknowledged batch).
    #[error("{}: {}: {}", .0.name, .0.code, .0.message)]
    Call(Failure),
    /// Records or state could not be written: the worker's database is unreachable or failing.
    #[error(transparent)]
    Store(SyncError),
    /// The pass was asked to stop (`cancel`) and stopped between two calls: what it
    /// acknowledged is kept, and the next pass goes on from there.
    #[error("stopped before the pass was done")]
    Cancelled,
}

/// The listing part of a sync, as a worker runs it for a round of `bbdc worker`: projects and
/// repositories (each repository written, then handed to `visit`, which queues its pass), then
/// users, then the repositories no longer listed marked deleted. The repository passes are not
/// run here: other workers run them as `visit` queues them. Stops before its next call once
/// `cancel` is set ([`SyncError::Cancelled`]).
pub fn list_for_workers(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    job: &SyncJob,
    cancel: Option<&AtomicBool>,
    visit: impl FnMut(RepoRef) -> Result<(), SyncError>,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let listing_started = now_ms();
    let mut writer = Writer {
        sink,
        jsonl: None,
        projects: HashSet::new(),
        repos: 0,
    };
    enumerate(
        runtime,
        tenant,
        job,
        cancel,
        &mut writer,
        &mut report,
        visit,
    )?;
    list_users(runtime, tenant, job, cancel, sink, None, &mut report)?;
    record_gone_repos(sink, None, job, listing_started, &mut report)?;
    report
        .records
        .insert("project", writer.projects.len() as u64);
    report.records.insert("repo", writer.repos);
    Ok(report)
}

/// One repository's pass of `job` (its entities, `--since`, `--full`), as a worker runs it
/// under its lease: what `bbdc sync` runs for each listed repository. Stops between two calls
/// once `cancel` is set.
pub fn sync_one_repo(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    job: &SyncJob,
    repo: &RepoRef,
    cancel: Option<&AtomicBool>,
) -> Result<RepoCounts, RepoPassError> {
    let options = wit_options(job);
    let ctx = RepoJob {
        runtime,
        tenant,
        sink,
        jsonl: None,
        options: &options,
        entities: job.entities,
        bounds: job.bounds(),
        cancel,
    };
    let name = format!("{}/{}", repo.project_key, repo.slug);
    match ctx.sync_repo(repo, &name) {
        Ok(out) => Ok(RepoCounts {
            pull_requests: out.written,
            unchanged: out.unchanged,
            commits: out.commits,
            builds: out.builds,
            pr_commits: out.pr_commits,
        }),
        Err(RepoFailure::Call { code, message }) => {
            Err(RepoPassError::Call(Failure::new(name, code, message)))
        }
        Err(RepoFailure::Fatal(e)) => Err(RepoPassError::Store(e)),
        Err(RepoFailure::Cancelled) => Err(RepoPassError::Cancelled),
    }
}

/// Runs the job.
pub fn run(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    jsonl: Option<&JsonlOut>,
    job: &SyncJob,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let before = tenant.http.counters.snapshot();
    let mut report = SyncReport::default();
    let bars = MultiProgress::with_draw_target(if job.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let phase = bars.add(ProgressBar::new_spinner());
    phase.enable_steady_tick(Duration::from_millis(120));

    // Projects and repositories, listed page by page, each repository handed to the workers
    // as it is listed (pull requests, repositories in parallel); then users, while the workers
    // go on.
    phase.set_message("listing projects and repositories");
    let listing_started = now_ms();
    let bar = bars.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} pull requests [{bar:30}] {pos}/{len} repositories listed {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (listed, queue) = std::sync::mpsc::sync_channel::<RepoRef>(LISTED_AHEAD);
    // Shared by the workers alone: once they have all stopped, it is dropped, and the listing's
    // next send fails instead of waiting for ever.
    let queue = Arc::new(Mutex::new(queue));
    let tally = Mutex::new(Totals::default());
    // Set when the job must stop: records could not be written, or the listing failed.
    let stop = AtomicBool::new(false);
    let options = wit_options(job);
    let ctx = RepoJob {
        runtime,
        tenant,
        sink,
        jsonl,
        options: &options,
        entities: job.entities,
        bounds: job.bounds(),
        // A record write that fails stops the other repositories' passes too.
        cancel: Some(&stop),
    };
    let mut writer = Writer {
        sink,
        jsonl,
        projects: HashSet::new(),
        repos: 0,
    };
    let listing = std::thread::scope(|scope| {
        let (ctx, tally, stop, bar) = (&ctx, &tally, &stop, &bar);
        for _ in 0..job.concurrency.max(1) {
            let queue = Arc::clone(&queue);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let next = queue.lock().ok().and_then(|q| q.recv().ok());
                    let Some(repo) = next else {
                        return;
                    };
                    let name = format!("{}/{}", repo.project_key, repo.slug);
                    let outcome = ctx.sync_repo(&repo, &name);
                    if let Ok(mut t) = tally.lock() {
                        match outcome {
                            Ok(r) => {
                                t.written += r.written;
                                t.commits += r.commits;
                                t.branches += r.branches;
                                t.tags += r.tags;
                                t.builds += r.builds;
                                t.pr_commits += r.pr_commits;
                                t.unchanged += r.unchanged;
                                t.skipped.extend(r.skipped);
                                t.unreadable.extend(r.unreadable);
                            }
                            Err(RepoFailure::Call { code, message }) => {
                                t.failed.push(Failure::new(name, code, message))
                            }
                            // Only a fatal error elsewhere cancels a pass: that error is the job's.
                            Err(RepoFailure::Cancelled) => {}
                            Err(RepoFailure::Fatal(e)) => {
                                t.fatal.get_or_insert(e);
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                        bar.set_message(format!("{} pull requests", t.written));
                    }
                    bar.inc(1);
                }
            });
        }
        drop(queue);
        // A worker's failure to write records ends the listing with that error.
        let fatal = || tally.lock().ok().and_then(|mut t| t.fatal.take());
        let listing = enumerate(
            runtime,
            tenant,
            job,
            None,
            &mut writer,
            &mut report,
            |repo| {
                if stop.load(Ordering::Relaxed)
                    && let Some(e) = fatal()
                {
                    return Err(e);
                }
                bar.inc_length(1);
                listed.send(repo).map_err(|_| {
                    fatal().unwrap_or_else(|| {
                        SyncError::Output(std::io::Error::other("every repository worker stopped"))
                    })
                })
            },
        );
        // The workers finish what is listed, then stop.
        drop(listed);
        let listing = listing.and_then(|()| {
            phase.set_message("listing users");
            list_users(runtime, tenant, job, None, sink, jsonl, &mut report)
        });
        if listing.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        phase.finish_and_clear();
        listing
    });
    listing?;
    record_gone_repos(sink, jsonl, job, listing_started, &mut report)?;
    report
        .records
        .insert("project", writer.projects.len() as u64);
    report.records.insert("repo", writer.repos);
    bar.finish_and_clear();
    let tally = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    report.unreadable.extend(tally.unreadable);
    if let Some(e) = tally.fatal {
        return Err(e);
    }
    if job.entities.pull_requests {
        report.records.insert("pull_request", tally.written);
    }
    if job.entities.commits {
        report.records.insert("commit", tally.commits);
        report.records.insert("branch", tally.branches);
        report.records.insert("tag", tally.tags);
    }
    if job.entities.builds {
        report.records.insert("build", tally.builds);
    }
    if job.entities.pr_commits() {
        report.records.insert("pr_commit", tally.pr_commits);
    }
    report.unchanged = tally.unchanged;
    report.skipped = tally.skipped;
    report.failed_repos.extend(tally.failed);
    let http = tenant.http.counters.snapshot().since(before);
    report.requests = http.requests;
    report.retries = http.retries;
    report.throttled = http.throttled;
    report.rate_limit_wait = http.waited;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What the repository workers have gathered so far.
#[derive(Default)]
struct Totals {
    written: u64,
    commits: u64,
    branches: u64,
    tags: u64,
    builds: u64,
    pr_commits: u64,
    unchanged: u64,
    skipped: Vec<SkippedPr>,
    failed: Vec<Failure>,
    /// The first error that stops the job (records could not be written).
    fatal: Option<SyncError>,
    unreadable: Vec<Unreadable>,
}

#[cfg(test)]
mod tests {
    use super::Entities;

    #[test]
    fn entities_parse_as_a_list_of_names() {
        let all = Entities {
            pull_requests: true,
            commits: true,
            builds: true,
        };
        assert_eq!(Entities::parse("all"), Ok(all));
        assert_eq!(Entities::parse("commits, pull-requests,builds"), Ok(all));
        assert_eq!(
            Entities::parse("commits"),
            Ok(Entities {
                pull_requests: false,
                commits: true,
                builds: false,
            })
        );
        assert_eq!(
            Entities::parse("pull-requests"),
            Ok(Entities::PULL_REQUESTS)
        );
        assert_eq!(Entities::default(), Entities::ALL);
        // Builds are read for the commits another pass brings: alone they are refused.
        for bad in ["", ",", "builds", "Commits", "deployments"] {
            assert!(Entities::parse(bad).is_err(), "{bad:?}");
        }
    }
}
