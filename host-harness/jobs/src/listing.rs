//! The listing part of a sync: projects, repositories and users, each page written as it
//! arrives ([`all_pages`], under the [`crate::guard`]), the repositories handed on to be synced
//! as they are listed, and the repositories no longer listed recorded deleted. What `bbdc sync`
//! runs before and beside its repository passes, and what a worker's listing item runs.

use crate::guard::{Guard, ListingBounds, Runaway};
use crate::job::SyncJob;
use crate::outcome::{Failure, SyncError, SyncReport, Unreadable};
use crate::output::{self, JsonlOut, emit};
use crate::records::RecordSink;
use bbdc_host::bindings::api::{ConnectorError, RepoRef};
use bbdc_host::bindings::types::{
    Project, ProjectPage, RecordKind, Repo, RepoPage, UnreadableRecord, User,
};
use bbdc_host::clock::now_ms;
use bbdc_host::runtime::{CallError, Runtime};
use bbdc_host::tenant::Tenant;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The job's error when a listing of `what` it cannot do without failed with `e`.
pub(crate) fn listing_error(what: impl Into<String>, e: &CallError<ConnectorError>) -> SyncError {
    let (code, message) = crate::output::call_error(e);
    SyncError::Listing {
        what: what.into(),
        code: code.into(),
        message,
    }
}

/// One page of a listing of projects, repositories or users.
pub(crate) struct ListingPage<T> {
    pub(crate) items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub(crate) next: Option<String>,
    /// Items that could not be identified.
    pub(crate) unreadable: Vec<UnreadableRecord>,
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

/// Follows a listing of projects, repositories or users to its end within `bounds`, handing each
/// page to `on_page` as it arrives (so nothing accumulates here) and collecting the items that
/// could not be identified. Stops before the next call once `cancel` is set.
pub(crate) fn all_pages<T>(
    what: &str,
    bounds: ListingBounds,
    cancel: Option<&AtomicBool>,
    mut page: impl FnMut(Option<String>) -> Result<ListingPage<T>, CallError<ConnectorError>>,
    unreadable: &mut Vec<Unreadable>,
    mut on_page: impl FnMut(Vec<T>) -> Result<(), SyncError>,
) -> Result<(), PageFailure> {
    let mut guard = Guard::new(what, bounds);
    let mut cursor: Option<String> = None;
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(PageFailure::Cancelled);
        }
        let got = page(cursor.clone()).map_err(PageFailure::Call)?;
        let received = got.items.len() + got.unreadable.len();
        unreadable.extend(got.unreadable.into_iter().map(Unreadable::from));
        on_page(got.items).map_err(PageFailure::Store)?;
        guard
            .page(received, got.next.as_deref())
            .map_err(PageFailure::Runaway)?;
        match got.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Why following a listing stopped.
pub(crate) enum PageFailure {
    /// The connector or host failed.
    Call(CallError<ConnectorError>),
    /// The listing ran away.
    Runaway(Runaway),
    /// A page could not be written.
    Store(SyncError),
    /// The listing was asked to stop.
    Cancelled,
}

impl PageFailure {
    /// The job's error, for a listing of `what` that the job cannot do without.
    pub(crate) fn into_sync(self, what: impl Into<String>) -> SyncError {
        match self {
            PageFailure::Call(e) => listing_error(what, &e),
            PageFailure::Runaway(r) => SyncError::Listing {
                what: what.into(),
                code: Runaway::CODE.into(),
                message: r.to_string(),
            },
            PageFailure::Store(e) => e,
            PageFailure::Cancelled => SyncError::Cancelled,
        }
    }
}

/// Where listed projects and repositories go as their pages arrive. It remembers the keys of
/// the projects written (projects are few beside repositories) and counts the repositories; it
/// holds no repository.
pub(crate) struct Writer<'a> {
    pub(crate) sink: &'a dyn RecordSink,
    pub(crate) jsonl: Option<&'a JsonlOut>,
    /// Keys of the projects written so far.
    pub(crate) projects: HashSet<String>,
    /// Repositories written so far.
    pub(crate) repos: u64,
}

impl Writer<'_> {
    /// Writes the projects not written yet.
    pub(crate) fn projects(&mut self, page: Vec<Project>) -> Result<(), SyncError> {
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
pub(crate) fn enumerate(
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

/// After a listing of every repository (no `--project` or `--repo`, nothing filtered out, no
/// listed repository unreadable), marks deleted the stored repositories it did not name, writes
/// a `repo` line with `deleted: true` for each, and counts them (`repo_deleted`). A partial
/// listing cannot tell a deleted repository from one it did not ask for, so it marks nothing.
pub(crate) fn record_gone_repos(
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

/// Lists the users, writing them as their pages arrive.
pub(crate) fn list_users(
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
    let mut report = SyncReport {
        budget: Some(tenant.rate_budget()),
        ..SyncReport::default()
    };
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
