//! One repository's pass, as `bbdc sync` runs it for each listed repository, a worker under its
//! lease, and `bbdc serve` after a webhook: its pull requests (each batch written, then
//! acknowledged to the connector by the next call), its history (branches and tags, the default
//! branch's commits when it moved, a pull request's commits) and its builds.
//!
//! Every listing is followed one call at a time under the host's [`Guard`], each page written
//! as it arrives: a server whose listing never ends costs the memory of one page and stops at
//! the job's [`ListingBounds`], failing this repository with the reason while everything else
//! goes on. A pass can be cancelled between calls (a process asked to stop): it ends as
//! [`RepoFailure::Cancelled`], its acknowledged progress kept for the next run.

use crate::guard::{Guard, ListingBounds, Runaway};
use crate::job::{Entities, SyncJob, wit_options};
use crate::outcome::{Failure, SkippedPr, SyncError, Unreadable};
use crate::output;
use crate::output::{JsonlOut, emit};
use crate::records::{PrCommitsPage, PrHeads, RecordSink, RefKind, RefPage};
use bbdc_host::bindings::api::{ConnectorError, RepoRef, SyncOptions as WitSyncOptions};
use bbdc_host::bindings::history::BuildState;
use bbdc_host::bindings::types::{PullRequest, RecordKind};
pub(crate) use bbdc_host::clock::now_ms;
use bbdc_host::runtime::{CallError, MAX_BUILD_COMMITS_PER_CALL, Runtime};
use bbdc_host::tenant::Tenant;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// History items of `kind` that could not be identified, as the report lists them.
pub(crate) fn unreadable(
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

/// Whether a repository's commit pass must run: the default branch's commit as listed
/// (`listed`: `Some` once a listed branch said it is the default) is not the head the last
/// complete commit pass ended at (`stored`), or no listed branch said it is the default (a
/// server that sends no default flag): the commit pass then finds the tip itself, at one small
/// request when nothing moved. A repository that lists no branch at all (`branches` 0) has no
/// commits to read: an empty repository costs no commit request on every sync, and its first
/// push (seen by a listing, or by `repo:refs_changed`) starts its first pass.
fn needs_commit_pass(listed: Option<Option<&str>>, stored: Option<&str>, branches: u64) -> bool {
    match listed {
        Some(tip) => tip != stored,
        None => branches > 0,
    }
}

/// What one repository's pass wrote, by record type: what the sync's totals add up and a
/// worker reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoCounts {
    /// Pull requests written.
    pub pull_requests: u64,
    /// Pull requests unchanged since the last pass (not fetched again).
    pub unchanged: u64,
    /// Commits written.
    pub commits: u64,
    /// Branches listed (and stored).
    pub branches: u64,
    /// Tags listed (and stored).
    pub tags: u64,
    /// Build statuses written.
    pub builds: u64,
    /// Pull requests' commits written.
    pub pr_commits: u64,
}

impl std::ops::AddAssign for RepoCounts {
    fn add_assign(&mut self, o: Self) {
        self.pull_requests += o.pull_requests;
        self.unchanged += o.unchanged;
        self.commits += o.commits;
        self.branches += o.branches;
        self.tags += o.tags;
        self.builds += o.builds;
        self.pr_commits += o.pr_commits;
    }
}

/// What one repository's pass brought.
#[derive(Default)]
pub(crate) struct RepoOutcome {
    /// What it wrote.
    pub(crate) counts: RepoCounts,
    /// Pull requests skipped, those whose id could not be read among them (stage `identity`).
    pub(crate) skipped: Vec<SkippedPr>,
    /// Unreadable activities of this repository's pull requests.
    pub(crate) unreadable: Vec<Unreadable>,
}

pub(crate) enum RepoFailure {
    /// The connector or host failed for this repository, or one of its listings ran away.
    Call {
        /// Error code.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// Records could not be written: stop the job.
    Fatal(SyncError),
    /// The pass was asked to stop between two calls: what it acknowledged is kept, and the
    /// next run goes on from there.
    Cancelled,
}

impl From<Runaway> for RepoFailure {
    fn from(r: Runaway) -> Self {
        tracing::warn!("{r}");
        RepoFailure::Call {
            code: Runaway::CODE.into(),
            message: r.to_string(),
        }
    }
}

/// A record write that failed: the job stops.
fn fatal(e: impl Into<SyncError>) -> RepoFailure {
    RepoFailure::Fatal(e.into())
}

/// Why following a page-per-call listing stopped.
enum Followed {
    /// A call failed.
    Call(CallError<ConnectorError>),
    /// It ran away, or its pages could not be written, or it was cancelled.
    Failed(RepoFailure),
}

impl From<RepoFailure> for Followed {
    fn from(f: RepoFailure) -> Self {
        Followed::Failed(f)
    }
}

/// What every repository's pass shares: where to call, where records go, and how.
pub(crate) struct RepoJob<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) tenant: &'a Arc<Tenant>,
    pub(crate) sink: &'a dyn RecordSink,
    pub(crate) jsonl: Option<&'a JsonlOut>,
    pub(crate) options: &'a WitSyncOptions,
    pub(crate) entities: Entities,
    /// How far each listing may run.
    pub(crate) bounds: ListingBounds,
    /// Set when the pass must stop before its next call.
    pub(crate) cancel: Option<&'a AtomicBool>,
}

impl RepoJob<'_> {
    /// Fails with [`RepoFailure::Cancelled`] once the pass was asked to stop.
    fn go_on(&self) -> Result<(), RepoFailure> {
        match self.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(RepoFailure::Cancelled),
            _ => Ok(()),
        }
    }

    /// Follows a listing served a page per call (`call` with the cursor, `None` for the first
    /// page) under a [`Guard`] named `what`, handing each page to `on_page` as it arrives, with
    /// whether it is the listing's last (so that the last page and the listing's end can be
    /// written in one transaction).
    fn follow<T>(
        &self,
        what: String,
        out: &mut RepoOutcome,
        mut call: impl FnMut(
            Option<String>,
        ) -> Result<
            (Vec<T>, Option<String>, Vec<Unreadable>),
            CallError<ConnectorError>,
        >,
        mut on_page: impl FnMut(Vec<T>, bool) -> Result<(), RepoFailure>,
    ) -> Result<(), Followed> {
        let mut guard = Guard::new(what, self.bounds);
        let mut cursor = None;
        loop {
            self.go_on()?;
            let (items, next, unreadable) = call(cursor).map_err(Followed::Call)?;
            let received = items.len() + unreadable.len();
            out.unreadable.extend(unreadable);
            on_page(items, next.is_none())?;
            guard
                .page(received, next.as_deref())
                .map_err(RepoFailure::from)?;
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    /// One pass over a repository (one per sync): call, persist, acknowledge (by calling again),
    /// until done. Each call is made once: the host's HTTP policy has retried every request
    /// already, so a failed call fails the repository for this sync, and the connector resumes
    /// the pass from its last acknowledged batch next time. Pull requests still skipped are
    /// reported, and retried by the connector at the start of the next sync's pass.
    pub(crate) fn sync_repo(&self, repo: &RepoRef, name: &str) -> Result<RepoOutcome, RepoFailure> {
        let mut out = RepoOutcome::default();
        // Each pass goes on from its own acknowledged progress, so a pass that failed does not
        // stop the next (the builds queue, in particular, is read whatever else failed); the
        // first failure is the repository's. Records that cannot be written stop everything.
        let mut failed = None;
        let mut note = |outcome: Result<(), RepoFailure>| match outcome {
            Err(stop @ (RepoFailure::Fatal(_) | RepoFailure::Cancelled)) => Err(stop),
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
    pub(crate) fn want_builds(
        &self,
        repo: &RepoRef,
        commits: Vec<String>,
    ) -> Result<(), RepoFailure> {
        if !self.entities.builds || commits.is_empty() {
            return Ok(());
        }
        self.sink.want_builds(repo, &commits).map_err(fatal)
    }

    /// Reads the build statuses of the repository's queued commits,
    /// [`MAX_BUILD_COMMITS_PER_CALL`] a call, each call's stored before the next. A commit with
    /// a build still running (changed within [`RUNNING_BUILD_RECHECK`]) stays queued, to be read
    /// again by the next sync; nothing queued costs nothing.
    pub(crate) fn sync_builds(
        &self,
        repo: &RepoRef,
        name: &str,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        let queue = self.sink.build_queue(repo).map_err(fatal)?;
        let recent = now_ms().saturating_sub(RUNNING_BUILD_RECHECK.as_millis() as i64);
        let mut failed_commits = 0;
        for chunk in queue.chunks(MAX_BUILD_COMMITS_PER_CALL) {
            self.go_on()?;
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
                .map_err(fatal)?;
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
            emit(self.jsonl, batch.builds.iter().map(output::build_json)).map_err(fatal)?;
            out.counts.builds += batch.builds.len() as u64;
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

    /// The repository's branches and tags, each page written as it arrives, and its default
    /// branch's commits when the branch moved since the last complete commit pass. The commit
    /// pass decides from `history_heads`, not from the refs just written, so a pass cut short
    /// runs again next time.
    fn sync_history(
        &self,
        repo: &RepoRef,
        name: &str,
        out: &mut RepoOutcome,
    ) -> Result<(), RepoFailure> {
        let since = now_ms();
        let refs_failed = |f: Followed| match f {
            Followed::Call(e) => Self::call_failed(name, &e),
            Followed::Failed(f) => f,
        };
        // The default branch's commit, once a listed branch says it is the default.
        let mut default_tip: Option<Option<String>> = None;
        let mut branches = 0;
        self.follow(
            format!("the branches of {name}"),
            out,
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
            |page, last| {
                if default_tip.is_none()
                    && let Some(d) = page.iter().find(|b| b.is_default)
                {
                    default_tip = Some(d.latest_commit.clone());
                }
                let ends = last.then_some(RefKind::Branch);
                self.sink
                    .ref_page(
                        repo,
                        &RefPage {
                            since,
                            branches: &page,
                            tags: &[],
                            ends,
                        },
                    )
                    .map_err(fatal)?;
                emit(self.jsonl, page.iter().map(output::branch_json)).map_err(fatal)?;
                branches += page.len() as u64;
                Ok(())
            },
        )
        .map_err(refs_failed)?;
        out.counts.branches += branches;
        let mut tags = 0;
        self.follow(
            format!("the tags of {name}"),
            out,
            |cursor| {
                self.runtime
                    .list_tags(self.tenant, repo, cursor)
                    .map(|p| (p.items, p.next, unreadable("tag", p.unreadable).collect()))
            },
            |page, last| {
                let ends = last.then_some(RefKind::Tag);
                self.sink
                    .ref_page(
                        repo,
                        &RefPage {
                            since,
                            branches: &[],
                            tags: &page,
                            ends,
                        },
                    )
                    .map_err(fatal)?;
                emit(self.jsonl, page.iter().map(output::tag_json)).map_err(fatal)?;
                tags += page.len() as u64;
                Ok(())
            },
        )
        .map_err(refs_failed)?;
        out.counts.tags += tags;
        let stored = self.sink.default_branch_head(repo).map_err(fatal)?;
        let listed = default_tip.as_ref().map(Option::as_deref);
        if needs_commit_pass(listed, stored.as_deref(), branches) {
            // The listing has just named the tip: the pass need not ask for it.
            let tip = default_tip.flatten();
            self.sync_commits(repo, name, tip.as_deref(), out)?;
        }
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
        let mut guard = Guard::new(format!("the commit pass of {name}"), self.bounds);
        loop {
            self.go_on()?;
            let batch = self
                .runtime
                .fetch_commits_from(self.tenant, repo, cursor.as_deref(), tip)
                .map_err(|e| Self::call_failed(name, &e))?;
            self.sink.commits(repo, &batch).map_err(fatal)?;
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
            emit(self.jsonl, batch.commits.iter().map(output::commit_json)).map_err(fatal)?;
            out.counts.commits += batch.commits.len() as u64;
            // A batch may be empty (the pass's completion): only pages and items count here;
            // the connector stops a listing of empty pages itself.
            guard.count_calls(
                batch.commits.len() + batch.unreadable.len(),
                batch.next_cursor.as_deref(),
            )?;
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
    pub(crate) fn batch_pr_commits(
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
        self.sink.want_pr_commits(repo, &heads).map_err(fatal)?;
        let ids: HashSet<u64> = prs.iter().map(|p| p.id).collect();
        self.drain_pr_commits(repo, name, Some(&ids), failed, out)?;
        let ids: Vec<u64> = ids.into_iter().collect();
        self.sink
            .first_commit_at(repo, &ids)
            .map(Some)
            .map_err(fatal)
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
        let queue = self.sink.pr_commit_queue(repo).map_err(fatal)?;
        for heads in queue {
            if failed.contains(&heads.id) || only.is_some_and(|o| !o.contains(&heads.id)) {
                continue;
            }
            // Each page is written as it arrives; the listing's end drops what it did not name.
            let since = now_ms();
            let mut position = 0u64;
            let read = self.follow(
                format!("the commits of pull request {} of {name}", heads.id),
                out,
                |cursor| {
                    self.runtime
                        .list_pull_request_commits(self.tenant, repo, heads.id, cursor)
                        .map(|p| {
                            (
                                p.items,
                                p.next,
                                unreadable("pr_commit", p.unreadable).collect(),
                            )
                        })
                },
                |page, last| {
                    self.sink
                        .pr_commits_page(
                            repo,
                            &PrCommitsPage {
                                heads: &heads,
                                since,
                                position,
                                commits: &page,
                                ends: last,
                            },
                        )
                        .map_err(fatal)?;
                    emit(
                        self.jsonl,
                        page.iter().enumerate().map(|(i, c)| {
                            output::pr_commit_json(heads.id, position as usize + i, c)
                        }),
                    )
                    .map_err(fatal)?;
                    position += page.len() as u64;
                    Ok(())
                },
            );
            let why = match read {
                Ok(()) => {
                    out.counts.pr_commits += position;
                    continue;
                }
                // Gone from the server (the pull request deleted, or the repository renamed
                // since the batch was listed): nothing to read, and what is stored stays. A
                // later change to the pull request queues it again.
                Err(Followed::Call(CallError::Connector(ConnectorError::NotFound(_)))) => {
                    self.sink.forget_pr_commits(repo, &heads).map_err(fatal)?;
                    continue;
                }
                Err(Followed::Call(e)) => {
                    let (code, message) = output::call_error(&e);
                    format!("{code}: {message}")
                }
                Err(Followed::Failed(RepoFailure::Call { code, message })) => {
                    format!("{code}: {message}")
                }
                Err(Followed::Failed(stop)) => return Err(stop),
            };
            tracing::warn!(
                repo = name,
                "the commits of pull request {} could not be read: {why}; it stays queued",
                heads.id
            );
            failed.insert(heads.id);
            out.counts.pr_commits += position;
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
        let mut guard = Guard::new(format!("the pull requests of {name}"), self.bounds);
        loop {
            self.go_on()?;
            let batch = self
                .runtime
                .fetch_pull_requests(self.tenant, repo, self.options, cursor.as_deref())
                .map_err(|e| Self::call_failed(name, &e))?;
            // Durable first: only then may the connector be told (by the next call) that it
            // is safe.
            self.sink
                .pull_requests(&batch.pull_requests)
                .map_err(fatal)?;
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
            .map_err(fatal)?;
            out.counts.pull_requests += batch.pull_requests.len() as u64;
            out.counts.unchanged += u64::from(batch.stats.unchanged);
            // A batch may hold no pull request (all unchanged): only pages and items count here.
            guard.count_calls(
                usize::try_from(batch.stats.listed).unwrap_or(usize::MAX),
                batch.next_cursor.as_deref(),
            )?;
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
pub(crate) fn pr_commits_outcome(failed: &HashSet<u64>) -> Result<(), RepoFailure> {
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
    tenant.rate_budget();
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
        Ok(out) => Ok(out.counts),
        Err(RepoFailure::Call { code, message }) => {
            Err(RepoPassError::Call(Failure::new(name, code, message)))
        }
        Err(RepoFailure::Fatal(e)) => Err(RepoPassError::Store(e)),
        Err(RepoFailure::Cancelled) => Err(RepoPassError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::needs_commit_pass;

    #[test]
    fn the_commit_pass_runs_when_the_default_branch_moved_or_is_unknown() {
        assert!(
            !needs_commit_pass(Some(Some("b")), Some("b"), 1),
            "unchanged"
        );
        assert!(needs_commit_pass(Some(Some("b")), Some("a"), 1), "moved");
        assert!(needs_commit_pass(Some(Some("b")), None, 1), "never stored");
        assert!(
            needs_commit_pass(None, Some("b"), 3),
            "no default flag: the pass finds the tip itself"
        );
        assert!(
            !needs_commit_pass(None, None, 0),
            "no branch at all: an empty repository has no commits to read"
        );
        assert!(
            !needs_commit_pass(None, Some("b"), 0),
            "every branch deleted: nothing to read either"
        );
        assert!(
            !needs_commit_pass(Some(None), None, 1),
            "an empty default branch, and no head stored"
        );
    }
}
