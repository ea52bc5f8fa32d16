//! The sync job behind `bbdc sync`: projects → repositories → users → pull requests, repositories
//! in parallel (each call in its own store), every batch made durable in the [`RecordSink`] before
//! the connector is told so (by calling it again with the batch's cursor).

use crate::output;
use crate::records::{PrHeads, RecordSink};
use bbdc_host::bindings::api::{ConnectorError, RepoRef, SyncOptions as WitSyncOptions};
use bbdc_host::bindings::history::{Branch, BuildState};
use bbdc_host::bindings::types::{
    Project, ProjectPage, PullRequest, RecordKind, Repo, RepoFilter, RepoPage, UnreadableRecord,
    User,
};
use bbdc_host::imports::Tenant;
use bbdc_host::runtime::{CallError, MAX_BUILD_COMMITS_PER_CALL, Runtime};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
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
    /// Most pages one listing (projects, repositories, users) may take before it is stopped
    /// with an error.
    pub max_listing_pages: u64,
    /// Most items one listing may bring before it is stopped with an error.
    pub max_listing_items: u64,
    /// What each repository's pass imports.
    pub entities: Entities,
}

/// What a sync imports from each repository (projects, repositories and users always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entities {
    /// Pull requests with their reviews and diff statistics.
    pub pull_requests: bool,
    /// The default branch's commits, with the repository's branches and tags (contract 0.2.0):
    /// an unchanged repository costs its branch and tag listings, and a commit pass runs only
    /// when the default branch moved. With `pull_requests`, also each pull request's commits
    /// (read when its pair of head commits changed) and its `first_commit_at`.
    pub commits: bool,
    /// The build statuses of the commits the other passes bring: the default branch's new
    /// commits and the head commits of changed pull requests (contract 0.2.0). Needs
    /// `pull_requests` or `commits`.
    pub builds: bool,
}

impl Default for Entities {
    /// Everything: [`Entities::ALL`].
    fn default() -> Self {
        Self::ALL
    }
}

impl Entities {
    /// Pull requests, commits (with branches, tags and pull requests' commits) and builds.
    pub const ALL: Entities = Entities {
        pull_requests: true,
        commits: true,
        builds: true,
    };

    /// Pull requests alone: the scope before commits and builds existed, at its cost.
    pub const PULL_REQUESTS: Entities = Entities {
        pull_requests: true,
        commits: false,
        builds: false,
    };

    /// Whether pull requests' commits are read: when both pull requests and commits are.
    pub fn pr_commits(self) -> bool {
        self.pull_requests && self.commits
    }

    /// Parses a comma-separated list of `pull-requests`, `commits`, `builds` and `all`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut e = Entities {
            pull_requests: false,
            commits: false,
            builds: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "pull-requests" => e.pull_requests = true,
                "commits" => e.commits = true,
                "builds" => e.builds = true,
                "all" => {
                    e.pull_requests = true;
                    e.commits = true;
                    e.builds = true;
                }
                other => {
                    return Err(format!(
                        "{other:?} is not an entity: give pull-requests, commits, builds or all"
                    ));
                }
            }
        }
        if !e.pull_requests && !e.commits {
            return Err(if e.builds {
                "builds are read for the commits of pull requests or of the default branch: \
                 give builds with pull-requests or commits"
                    .into()
            } else {
                "no entity given: give pull-requests, commits, builds or all".into()
            });
        }
        Ok(e)
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

/// A pull request the connector could not fetch in full, or could not even identify.
#[derive(Debug, Clone)]
pub struct SkippedPr {
    /// `KEY/slug`.
    pub repo: String,
    /// PR id; `None` for a listed pull request whose id could not be read (stage `identity`).
    pub id: Option<u64>,
    /// What failed.
    pub stage: String,
    /// Error code.
    pub code: String,
    /// Error message.
    pub message: String,
}

/// The outcome of a sync.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Records written, by type.
    pub records: BTreeMap<&'static str, u64>,
    /// Pull requests listed but unchanged.
    pub unchanged: u64,
    /// HTTP requests sent to the server (retries included).
    pub requests: u64,
    /// Requests retried (429, 502, 503, 504, connection failures).
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Time spent waiting for the rate limit and Retry-After.
    pub rate_limit_wait: Duration,
    /// Pull requests skipped, with reasons.
    pub skipped: Vec<SkippedPr>,
    /// Other listed records that could not be identified (projects, repositories, users,
    /// activities). Unreadable pull requests are in `skipped`.
    pub unreadable: Vec<Unreadable>,
    /// Repositories that failed (`name` is `KEY/slug`).
    pub failed_repos: Vec<Failure>,
    /// Projects named with `--project` (or by a `--repo`) whose repositories could not be
    /// listed (`name` is the key); the other projects were synced.
    pub failed_projects: Vec<Failure>,
    /// Whether users came from `/users` because `/admin/users` was refused.
    pub users_fallback: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// A listed record other than a pull request (project, repository, user, activity) that could
/// not be identified, so it was left out; the rest of its page was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What it should have been: `project`, `repository`, `user`, `activity`, `commit`,
    /// `branch`, `tag`, `build` or `pr_commit`.
    pub kind: String,
    /// Where it was listed, as the connector names it.
    pub location: String,
    /// Why it could not be read.
    pub reason: String,
}

impl From<UnreadableRecord> for Unreadable {
    fn from(u: UnreadableRecord) -> Self {
        Self {
            kind: output::record_kind(u.kind).to_owned(),
            location: u.location,
            reason: u.reason,
        }
    }
}

/// A project or repository the job could not sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// The project key, or `KEY/slug` for a repository.
    pub name: String,
    /// The error code (`not_found`, `deadline_exceeded`, …).
    pub code: String,
    /// What went wrong, as the server or host said it.
    pub message: String,
}

impl Failure {
    fn new(name: impl Into<String>, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Failure> for SyncError {
    /// A failure that leaves nothing to do: the job's error.
    fn from(f: Failure) -> Self {
        SyncError::Listing {
            what: f.name,
            code: f.code,
            message: f.message,
        }
    }
}

/// How a sync ended, as `bbdc sync`'s exit status tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Everything asked for was synced (skipped pull requests are listed and retried by the next
    /// sync). Exit status 0.
    Complete,
    /// Some projects or repositories failed and are listed; the rest was synced. Exit status 3.
    Partial,
}

impl SyncStatus {
    /// `complete` or `partial`, as the JSON summary's `status`.
    pub fn name(self) -> &'static str {
        match self {
            SyncStatus::Complete => "complete",
            SyncStatus::Partial => "partial",
        }
    }

    /// The process exit status: 0 complete, 3 partial. (1 is "nothing done": the job could not
    /// run at all; 2 is a command-line usage error.)
    pub fn exit_code(self) -> u8 {
        match self {
            SyncStatus::Complete => 0,
            SyncStatus::Partial => PARTIAL_EXIT,
        }
    }
}

/// Exit status of a sync that synced part of what was asked for.
pub const PARTIAL_EXIT: u8 = 3;

impl SyncReport {
    /// Whether everything asked for was synced.
    pub fn status(&self) -> SyncStatus {
        if self.failed_repos.is_empty() && self.failed_projects.is_empty() {
            SyncStatus::Complete
        } else {
            SyncStatus::Partial
        }
    }
}

/// Why the job could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A listing (projects, repositories, users) failed.
    #[error("{what} failed: {code}: {message}")]
    Listing {
        /// What was being listed.
        what: String,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Writing records failed.
    #[error(transparent)]
    Records(#[from] bbdc_host::storage::StoreError),
    /// Writing JSON lines failed.
    #[error("writing JSON lines: {0}")]
    Output(#[from] std::io::Error),
}

fn listing_error(what: impl Into<String>, e: &CallError<ConnectorError>) -> SyncError {
    let (code, message) = output::call_error(e);
    SyncError::Listing {
        what: what.into(),
        code: code.into(),
        message,
    }
}

/// Writes JSON lines, shared by the workers.
pub type JsonlOut = Mutex<Box<dyn Write + Send>>;

fn emit(
    out: Option<&JsonlOut>,
    values: impl IntoIterator<Item = Value>,
) -> Result<(), std::io::Error> {
    let Some(out) = out else { return Ok(()) };
    let mut w = out
        .lock()
        .map_err(|_| std::io::Error::other("output lock poisoned"))?;
    for v in values {
        writeln!(w, "{v}")?;
    }
    w.flush()
}

/// One page of any listing (projects, repositories, users).
struct ListingPage<T> {
    items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    next: Option<String>,
    /// Items that could not be identified.
    unreadable: Vec<UnreadableRecord>,
}

impl From<ProjectPage> for ListingPage<Project> {
    fn from(p: ProjectPage) -> Self {
        Self {
            items: p.items,
            next: p.next,
            unreadable: p.unreadable,
        }
    }
}

impl From<RepoPage> for ListingPage<Repo> {
    fn from(p: RepoPage) -> Self {
        Self {
            items: p.items,
            next: p.next,
            unreadable: p.unreadable,
        }
    }
}

/// Default [`SyncJob::max_listing_pages`]: far beyond any real server (50,000 repositories are
/// 500 pages of 100), so a page stream that never ends fails instead of running forever.
pub const MAX_LISTING_PAGES: u64 = 200_000;
/// Default [`SyncJob::max_listing_items`], for the same reason: it bounds what a listing can make
/// the job hold (the repositories to visit).
pub const MAX_LISTING_ITEMS: u64 = 5_000_000;
/// Pages in a row that bring nothing but another cursor before a listing is declared stuck.
pub const MAX_EMPTY_PAGES: u32 = 3;

/// Why a listing was stopped: it made no progress, or never ended.
fn runaway(why: String) -> PageFailure {
    PageFailure::Call(CallError::Connector(ConnectorError::MalformedResponse(why)))
}

/// Follows a paged listing to its end, handing each page to `on_page` as it arrives (so
/// nothing accumulates here) and collecting the items that could not be identified. A listing
/// that keeps answering empty pages with a next cursor, repeats a cursor, or passes
/// the job's page or item cap ends with an error.
fn all_pages<T>(
    job: &SyncJob,
    mut page: impl FnMut(Option<String>) -> Result<ListingPage<T>, CallError<ConnectorError>>,
    unreadable: &mut Vec<Unreadable>,
    mut on_page: impl FnMut(Vec<T>) -> Result<(), SyncError>,
) -> Result<(), PageFailure> {
    let mut cursor: Option<String> = None;
    let (mut pages, mut items, mut empty) = (0u64, 0u64, 0u32);
    loop {
        let got = page(cursor.clone()).map_err(PageFailure::Call)?;
        pages += 1;
        items = items.saturating_add(got.items.len() as u64);
        empty = if got.items.is_empty() && got.unreadable.is_empty() {
            empty + 1
        } else {
            0
        };
        unreadable.extend(got.unreadable.into_iter().map(Unreadable::from));
        on_page(got.items).map_err(PageFailure::Store)?;
        let Some(next) = got.next else {
            return Ok(());
        };
        if empty >= MAX_EMPTY_PAGES {
            return Err(runaway(format!(
                "the listing answered {empty} empty pages in a row that each promised more; stopped"
            )));
        }
        if cursor.as_deref() == Some(next.as_str()) {
            return Err(runaway("the listing repeated its cursor; stopped".into()));
        }
        if pages >= job.max_listing_pages || items >= job.max_listing_items {
            return Err(runaway(format!(
                "the listing did not end after {pages} pages and {items} items; stopped"
            )));
        }
        cursor = Some(next);
    }
}

/// Why following a listing stopped.
enum PageFailure {
    /// The connector or host failed.
    Call(CallError<ConnectorError>),
    /// A page could not be written.
    Store(SyncError),
}

impl PageFailure {
    fn into_sync(self, what: impl Into<String>) -> SyncError {
        match self {
            PageFailure::Call(e) => listing_error(what, &e),
            PageFailure::Store(e) => e,
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
        job,
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
            job,
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
            job,
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
            Err(PageFailure::Call(e)) => {
                let (code, message) = output::call_error(&e);
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
    };
    let name = format!("{}/{}", repo.project_key, repo.slug);
    match f(&job, &name) {
        Ok(()) => Ok(()),
        Err(RepoFailure::Fatal(e)) => Err(e),
        Err(RepoFailure::Call { code, message }) => Err(Failure::new(name, code, message).into()),
    }
}

/// Refreshes one repository's history as a sync of `commits,builds` would: its branches and
/// tags, its default branch's commits when the branch moved, and the build statuses queued for
/// it. What `bbdc serve` runs after a push's webhook. Fails with the first failure (the rest
/// of the refresh goes on, as in a sync).
pub fn refresh_history(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    repo: &RepoRef,
) -> Result<(), SyncError> {
    let entities = Entities {
        pull_requests: false,
        commits: true,
        builds: true,
    };
    on_one_repo(runtime, tenant, sink, repo, entities, |job, name| {
        job.sync_repo(repo, name).map(|_| ())
    })
}

/// What a sync of every entity does for one pull request it brought, for a pull request
/// `bbdc serve` has just refreshed after a webhook: queues its head commit's builds and, when
/// its pair of head commits changed, its commits; reads its commits and the repository's queued
/// builds.
pub fn refresh_pull_request_history(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    pr: &PullRequest,
) -> Result<(), SyncError> {
    let repo = &pr.repo;
    on_one_repo(runtime, tenant, sink, repo, Entities::ALL, |job, name| {
        let mut out = RepoOutcome::default();
        let mut failed = HashSet::new();
        job.want_builds(repo, pr.source.latest_commit.iter().cloned().collect())?;
        job.batch_pr_commits(repo, name, std::slice::from_ref(pr), &mut failed, &mut out)?;
        let commits = pr_commits_outcome(&failed);
        // The builds are read whether or not the commits were; a write failure wins.
        match (commits, job.sync_builds(repo, name, &mut out)) {
            (_, Err(fatal @ RepoFailure::Fatal(_))) => Err(fatal),
            (Err(first), _) => Err(first),
            (Ok(()), builds) => builds,
        }
    })
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
    sink: &dyn RecordSink,
    jsonl: Option<&JsonlOut>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut fallback = false;
    let mut user_count = 0u64;
    all_pages(
        job,
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
}

/// The listing part of a sync, as a worker runs it for a round of `bbdc worker`: projects and
/// repositories (each repository written, then handed to `visit`, which queues its pass), then
/// users, then the repositories no longer listed marked deleted. The repository passes are not
/// run here: other workers run them as `visit` queues them.
pub fn list_for_workers(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    job: &SyncJob,
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
    enumerate(runtime, tenant, job, &mut writer, &mut report, visit)?;
    list_users(runtime, tenant, job, sink, None, &mut report)?;
    record_gone_repos(sink, None, job, listing_started, &mut report)?;
    report
        .records
        .insert("project", writer.projects.len() as u64);
    report.records.insert("repo", writer.repos);
    Ok(report)
}

/// One repository's pass of `job` (its entities, `--since`, `--full`), as a worker runs it
/// under its lease: what `bbdc sync` runs for each listed repository.
pub fn sync_one_repo(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    job: &SyncJob,
    repo: &RepoRef,
) -> Result<RepoCounts, RepoPassError> {
    let options = wit_options(job);
    let ctx = RepoJob {
        runtime,
        tenant,
        sink,
        jsonl: None,
        options: &options,
        entities: job.entities,
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
    let tally = Mutex::new(Tally::default());
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
        let listing = enumerate(runtime, tenant, job, &mut writer, &mut report, |repo| {
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
        });
        // The workers finish what is listed, then stop.
        drop(listed);
        let listing = listing.and_then(|()| {
            phase.set_message("listing users");
            list_users(runtime, tenant, job, sink, jsonl, &mut report)
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

/// History items of `kind` that could not be identified, as the report lists them.
fn unreadable(
    kind: &'static str,
    items: Vec<bbdc_host::bindings::history::UnreadableItem>,
) -> impl Iterator<Item = Unreadable> {
    items.into_iter().map(move |u| Unreadable {
        kind: kind.into(),
        location: u.location,
        reason: u.reason,
    })
}

/// How long a build may report `INPROGRESS` and still be read again by the next sync: past
/// it, the build is taken as abandoned (its commit is not asked for again until something
/// queues it).
pub const RUNNING_BUILD_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Now, in epoch milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Whether a repository's commit pass must run: its default branch's commit is not the one
/// stored with its refs, or no listed branch says it is the default (a server that sends no
/// default flag): the commit pass then finds the tip itself, at one small request when nothing
/// moved.
fn needs_commit_pass(branches: &[Branch], stored: Option<&str>) -> bool {
    match branches.iter().find(|b| b.is_default) {
        Some(default) => default.latest_commit.as_deref() != stored,
        None => true,
    }
}

/// What the repository workers have gathered so far.
#[derive(Default)]
struct Tally {
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

/// What one repository's pass brought.
#[derive(Default)]
struct RepoOutcome {
    written: u64,
    /// Commits written.
    commits: u64,
    /// Branches and tags listed (and stored).
    branches: u64,
    tags: u64,
    /// Build statuses written.
    builds: u64,
    /// Pull-request commits written.
    pr_commits: u64,
    unchanged: u64,
    /// Pull requests skipped, those whose id could not be read among them (stage `identity`).
    skipped: Vec<SkippedPr>,
    /// Unreadable activities of this repository's pull requests.
    unreadable: Vec<Unreadable>,
}

enum RepoFailure {
    /// The connector or host failed for this repository.
    Call {
        /// Error code.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// Records could not be written: stop the job.
    Fatal(SyncError),
}

/// What every repository's pass shares: where to call, where records go, and how.
struct RepoJob<'a> {
    runtime: &'a Runtime,
    tenant: &'a Arc<Tenant>,
    sink: &'a dyn RecordSink,
    jsonl: Option<&'a JsonlOut>,
    options: &'a WitSyncOptions,
    entities: Entities,
}

impl RepoJob<'_> {
    /// One pass over a repository (one per sync): call, persist, acknowledge (by calling again),
    /// until done. Each call is made once: the host's HTTP policy has retried every request
    /// already, so a failed call fails the repository for this sync, and the connector resumes
    /// the pass from its last acknowledged batch next time. Pull requests still skipped are
    /// reported, and retried by the connector at the start of the next sync's pass.
    fn sync_repo(&self, repo: &RepoRef, name: &str) -> Result<RepoOutcome, RepoFailure> {
        let mut out = RepoOutcome::default();
        // Each pass goes on from its own acknowledged progress, so a pass that failed does not
        // stop the next (the builds queue, in particular, is read whatever else failed); the
        // first failure is the repository's. Records that cannot be written stop everything.
        let mut failed = None;
        let mut note = |outcome: Result<(), RepoFailure>| match outcome {
            Err(fatal @ RepoFailure::Fatal(_)) => Err(fatal),
            Err(call) => {
                failed.get_or_insert(call);
                Ok(())
            }
            Ok(()) => Ok(()),
        };
        if self.entities.pull_requests {
            note(self.sync_pull_requests(repo, name, &mut out))?;
        }
        if self.entities.commits {
            note(self.sync_history(repo, name, &mut out))?;
        }
        if self.entities.builds {
            note(self.sync_builds(repo, name, &mut out))?;
        }
        match failed {
            Some(f) => Err(f),
            None => Ok(out),
        }
    }

    /// Queues `commits` for their build statuses, when builds are imported. Called before the
    /// batch that brought them is acknowledged.
    fn want_builds(&self, repo: &RepoRef, commits: Vec<String>) -> Result<(), RepoFailure> {
        if !self.entities.builds || commits.is_empty() {
            return Ok(());
        }
        self.sink
            .want_builds(repo, &commits)
            .map_err(|e| RepoFailure::Fatal(e.into()))
    }

    /// Reads the build statuses of the repository's queued commits,
    /// [`MAX_BUILD_COMMITS_PER_CALL`] a call, each call's stored before the next. A commit with
    /// a build still running (changed within [`RUNNING_BUILD_RECHECK`]) stays queued, to be read
    /// again by the next sync; nothing queued costs nothing.
    fn sync_builds(
        &self,
        repo: &RepoRef,
        name: &str,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        let queue = self
            .sink
            .build_queue(repo)
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        let recent = now_ms().saturating_sub(RUNNING_BUILD_RECHECK.as_millis() as i64);
        let mut failed_commits = 0;
        for chunk in queue.chunks(MAX_BUILD_COMMITS_PER_CALL) {
            let batch = self
                .runtime
                .fetch_builds(self.tenant, repo, chunk)
                .map_err(|e| Self::call_failed(name, &e))?;
            let running: Vec<String> = chunk
                .iter()
                .filter(|c| {
                    batch.builds.iter().any(|b| {
                        &b.commit_id == *c
                            && b.state == BuildState::InProgress
                            && b.updated_at.or(b.created_at).is_some_and(|t| t >= recent)
                    })
                })
                .cloned()
                .collect();
            // A commit that could not be read keeps what was stored and stays queued.
            let read: Vec<String> = chunk
                .iter()
                .filter(|c| !batch.failed.iter().any(|f| &f.commit_id == *c))
                .cloned()
                .collect();
            self.sink
                .builds(repo, &read, &batch.builds, &running)
                .map_err(|e| RepoFailure::Fatal(e.into()))?;
            if let Some(f) = batch.failed.first() {
                let (code, message) = output::connector_error(&f.error);
                tracing::warn!(
                    repo = name,
                    code,
                    "the builds of {} commits could not be read (first: {}: {message}); they stay queued",
                    batch.failed.len(),
                    f.commit_id
                );
                failed_commits += batch.failed.len();
            }
            emit(self.jsonl, batch.builds.iter().map(output::build_json))
                .map_err(|e| RepoFailure::Fatal(e.into()))?;
            out.builds += batch.builds.len() as u64;
            out.unreadable.extend(unreadable("build", batch.unreadable));
        }
        if failed_commits > 0 {
            return Err(RepoFailure::Call {
                code: "builds_incomplete".into(),
                message: format!(
                    "the builds of {failed_commits} commits could not be read; the next sync reads them"
                ),
            });
        }
        Ok(())
    }

    /// Every page of a ref listing (`list-branches`, `list-tags`).
    fn all_refs<T>(
        name: &str,
        mut page: impl FnMut(
            Option<String>,
        ) -> Result<
            (Vec<T>, Option<String>, Vec<Unreadable>),
            CallError<ConnectorError>,
        >,
        out: &mut RepoOutcome,
    ) -> Result<Vec<T>, RepoFailure> {
        let mut items = Vec::new();
        let mut cursor = None;
        loop {
            let (more, next, unreadable) = page(cursor).map_err(|e| Self::call_failed(name, &e))?;
            items.extend(more);
            out.unreadable.extend(unreadable);
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(items),
            }
        }
    }

    /// The repository's branches and tags, and its default branch's commits when the branch
    /// moved since the refs were last stored. The refs are stored after the commit pass
    /// completes, so that a pass cut short runs again next time.
    fn sync_history(
        &self,
        repo: &RepoRef,
        name: &str,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        let branches = Self::all_refs(
            name,
            |cursor| {
                self.runtime
                    .list_branches(self.tenant, repo, cursor)
                    .map(|p| {
                        (
                            p.items,
                            p.next,
                            unreadable("branch", p.unreadable).collect(),
                        )
                    })
            },
            out,
        )?;
        let tags = Self::all_refs(
            name,
            |cursor| {
                self.runtime
                    .list_tags(self.tenant, repo, cursor)
                    .map(|p| (p.items, p.next, unreadable("tag", p.unreadable).collect()))
            },
            out,
        )?;
        let stored = self
            .sink
            .default_branch_head(repo)
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        if needs_commit_pass(&branches, stored.as_deref()) {
            // The listing has just named the tip: the pass need not ask for it.
            let tip = branches
                .iter()
                .find(|b| b.is_default)
                .and_then(|b| b.latest_commit.clone());
            self.sync_commits(repo, name, tip.as_deref(), out)?;
        }
        self.sink
            .refs(repo, &branches, &tags)
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        emit(self.jsonl, branches.iter().map(output::branch_json))
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        emit(self.jsonl, tags.iter().map(output::tag_json))
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        out.branches += branches.len() as u64;
        out.tags += tags.len() as u64;
        Ok(())
    }

    /// The failure of a call for `name`'s pass, logged.
    fn call_failed(name: &str, e: &CallError<ConnectorError>) -> RepoFailure {
        let (code, message) = output::call_error(e);
        tracing::warn!(repo = name, code, "repository sync failed: {message}");
        RepoFailure::Call {
            code: code.into(),
            message,
        }
    }

    /// The commit pass of `repo`'s default branch: call, persist (dropping, at the end of a
    /// rewritten pass, what the pass did not name), acknowledge, until done.
    fn sync_commits(
        &self,
        repo: &RepoRef,
        name: &str,
        tip: Option<&str>,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        let mut cursor: Option<String> = None;
        loop {
            let batch = self
                .runtime
                .fetch_commits_from(self.tenant, repo, cursor.as_deref(), tip)
                .map_err(|e| Self::call_failed(name, &e))?;
            self.sink
                .commits(repo, &batch)
                .map_err(|e| RepoFailure::Fatal(e.into()))?;
            // The builds of commits older than `--since` are not read.
            let since = self.options.since.unwrap_or(i64::MIN);
            self.want_builds(
                repo,
                batch
                    .commits
                    .iter()
                    .filter(|c| {
                        c.committer_timestamp
                            .or(c.author_timestamp)
                            .unwrap_or(i64::MAX)
                            >= since
                    })
                    .map(|c| c.id.clone())
                    .collect(),
            )?;
            emit(self.jsonl, batch.commits.iter().map(output::commit_json))
                .map_err(|e| RepoFailure::Fatal(e.into()))?;
            out.commits += batch.commits.len() as u64;
            out.unreadable
                .extend(unreadable("commit", batch.unreadable));
            match batch.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    /// Queues the pull requests of a batch whose pair of head commits changed, and reads their
    /// commits, before the batch is acknowledged. Returns the batch's `first_commit_at` by id
    /// (`None` when pull requests' commits are not imported).
    fn batch_pr_commits(
        &self,
        repo: &RepoRef,
        name: &str,
        prs: &[PullRequest],
        failed: &mut HashSet<u64>,
        out: &mut RepoOutcome,
    ) -> Result<Option<HashMap<u64, i64>>, RepoFailure> {
        if !self.entities.pr_commits() {
            return Ok(None);
        }
        let heads: Vec<PrHeads> = prs
            .iter()
            .filter_map(|p| {
                Some(PrHeads {
                    id: p.id,
                    source: p.source.latest_commit.clone()?,
                    target: p.target.latest_commit.clone(),
                })
            })
            .collect();
        self.sink
            .want_pr_commits(repo, &heads)
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        let ids: HashSet<u64> = prs.iter().map(|p| p.id).collect();
        self.drain_pr_commits(repo, name, Some(&ids), failed, out)?;
        let ids: Vec<u64> = ids.into_iter().collect();
        self.sink
            .first_commit_at(repo, &ids)
            .map(Some)
            .map_err(|e| RepoFailure::Fatal(e.into()))
    }

    /// Reads the commits of the pull requests of `repo` queued for them (only those in `only`,
    /// when given), every page of each, and stores each pull request's before the next. A pull
    /// request whose commits cannot be read stays queued and joins `failed`; one the server no
    /// longer has is taken off the queue, its stored commits kept. Fails only when records
    /// cannot be written.
    fn drain_pr_commits(
        &self,
        repo: &RepoRef,
        name: &str,
        only: Option<&HashSet<u64>>,
        failed: &mut HashSet<u64>,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        if !self.entities.pr_commits() {
            return Ok(());
        }
        let queue = self
            .sink
            .pr_commit_queue(repo)
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
        for heads in queue {
            if failed.contains(&heads.id) || only.is_some_and(|o| !o.contains(&heads.id)) {
                continue;
            }
            let mut commits = Vec::new();
            let mut cursor = None;
            let read = loop {
                match self
                    .runtime
                    .list_pull_request_commits(self.tenant, repo, heads.id, cursor)
                {
                    Ok(page) => {
                        commits.extend(page.items);
                        out.unreadable
                            .extend(unreadable("pr_commit", page.unreadable));
                        match page.next {
                            Some(next) => cursor = Some(next),
                            None => break Ok(()),
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            // Gone from the server (the pull request deleted, or the repository renamed since
            // the batch was listed): nothing to read, and what is stored stays. A later change
            // to the pull request queues it again.
            if let Err(CallError::Connector(ConnectorError::NotFound(_))) = &read {
                self.sink
                    .forget_pr_commits(repo, &heads)
                    .map_err(|e| RepoFailure::Fatal(e.into()))?;
                continue;
            }
            if let Err(e) = read {
                let (code, message) = output::call_error(&e);
                tracing::warn!(
                    repo = name,
                    code,
                    "the commits of pull request {} could not be read: {message}; it stays queued",
                    heads.id
                );
                failed.insert(heads.id);
                continue;
            }
            self.sink
                .pr_commits(repo, &heads, &commits)
                .map_err(|e| RepoFailure::Fatal(e.into()))?;
            emit(
                self.jsonl,
                commits
                    .iter()
                    .enumerate()
                    .map(|(i, c)| output::pr_commit_json(heads.id, i, c)),
            )
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
            out.pr_commits += commits.len() as u64;
        }
        Ok(())
    }

    /// The pull-request pass of `repo`.
    fn sync_pull_requests(
        &self,
        repo: &RepoRef,
        name: &str,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        // Listed pull requests whose id could not be read: reported after the skipped ones
        // (never retried: there is nothing to ask for).
        let mut unidentified = Vec::new();
        // Pull requests whose commits could not be read in this pass: not asked again in it.
        let mut pr_commits_failed = HashSet::new();
        // Whatever a run before this one left queued is read first.
        self.drain_pr_commits(repo, name, None, &mut pr_commits_failed, out)?;
        let mut cursor: Option<String> = None;
        loop {
            let batch = self
                .runtime
                .fetch_pull_requests(self.tenant, repo, self.options, cursor.as_deref())
                .map_err(|e| Self::call_failed(name, &e))?;
            // Durable first: only then may the connector be told (by the next call) that it
            // is safe.
            self.sink
                .pull_requests(&batch.pull_requests)
                .map_err(|e| RepoFailure::Fatal(e.into()))?;
            self.want_builds(
                repo,
                batch
                    .pull_requests
                    .iter()
                    .filter_map(|p| p.source.latest_commit.clone())
                    .collect(),
            )?;
            let first_commits = self.batch_pr_commits(
                repo,
                name,
                &batch.pull_requests,
                &mut pr_commits_failed,
                out,
            )?;
            emit(
                self.jsonl,
                batch.pull_requests.iter().map(|p| {
                    let mut line = output::pull_request_json(p);
                    if let Some(first) = &first_commits {
                        line["first_commit_at"] = serde_json::json!(first.get(&p.id));
                    }
                    line
                }),
            )
            .map_err(|e| RepoFailure::Fatal(e.into()))?;
            out.written += batch.pull_requests.len() as u64;
            out.unchanged += u64::from(batch.stats.unchanged);
            for s in batch.skipped {
                let (code, message) = output::connector_error(&s.error);
                out.skipped.push(SkippedPr {
                    repo: name.to_owned(),
                    id: Some(s.id),
                    stage: output::skip_stage(s.stage).into(),
                    code: code.into(),
                    message,
                });
            }
            for u in batch.unreadable {
                if u.kind == RecordKind::PullRequest {
                    unidentified.push(SkippedPr {
                        repo: name.to_owned(),
                        id: None,
                        stage: "identity".into(),
                        code: "unreadable".into(),
                        message: format!("{}: {}", u.location, u.reason),
                    });
                } else {
                    out.unreadable.push(u.into());
                }
            }
            match batch.next_cursor {
                Some(c) => cursor = Some(c),
                None => {
                    out.skipped.extend(unidentified);
                    return pr_commits_outcome(&pr_commits_failed);
                }
            }
        }
    }
}

/// The pull-request pass's outcome when the commits of the pull requests in `failed` could not
/// be read: they stay queued, and the next sync reads them.
fn pr_commits_outcome(failed: &HashSet<u64>) -> Result<(), RepoFailure> {
    if failed.is_empty() {
        return Ok(());
    }
    Err(RepoFailure::Call {
        code: "pr_commits_incomplete".into(),
        message: format!(
            "the commits of {} pull requests could not be read; the next sync reads them",
            failed.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::{Entities, needs_commit_pass};
    use bbdc_host::bindings::history::Branch;
    use bbdc_host::bindings::types::RepoRef;

    fn branch(name: &str, commit: &str, is_default: bool) -> Branch {
        Branch {
            repo: RepoRef {
                project_key: "P".into(),
                slug: "r".into(),
            },
            name: name.into(),
            ref_id: format!("refs/heads/{name}"),
            latest_commit: Some(commit.into()),
            is_default,
        }
    }

    #[test]
    fn the_commit_pass_runs_when_the_default_branch_moved_or_is_unknown() {
        let listed = [branch("main", "b", true), branch("f", "x", false)];
        assert!(!needs_commit_pass(&listed, Some("b")), "unchanged");
        assert!(needs_commit_pass(&listed, Some("a")), "moved");
        assert!(needs_commit_pass(&listed, None), "never stored");
        let unflagged = [branch("main", "b", false)];
        assert!(
            needs_commit_pass(&unflagged, Some("b")),
            "no default flag: the pass finds the tip itself"
        );
        assert!(needs_commit_pass(&[], None), "no branch at all");
    }

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
