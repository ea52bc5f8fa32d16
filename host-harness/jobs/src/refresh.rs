//! `bbdc serve`'s background refresh: after an accepted delivery, the pull request is fetched
//! again through the server (`fetch-pull-request`: diff statistics and review history, then its
//! commits and its head's builds), or after a push the repository's history (branches and tags,
//! new commits, their builds), one at a time on a thread of its own.
//!
//! **Durable.** A refresh is queued in the record store (`refresh_queue`) when its delivery is
//! accepted, and taken off once done. One not done when serve stops (its drain ended first, or
//! the process died) is done by the next serve to start, before any new one.
//!
//! **Bounded in time.** When the endpoint begins to stop, the refresh in progress stops before
//! its next call (what it acknowledged kept, and it stays queued), queued ones are left for the
//! next start, and [`Refresher::finish`] waits for the thread no longer than the drain: a call
//! still waiting on the server then is left behind, to end with the process.
//!
//! A burst of deliveries for one pull request (or pushes to one repository) queues one refresh.

use crate::guard::ListingBounds;
use crate::job::Entities;
use crate::outcome::{Failure, SyncError};
use crate::records::{RecordSink, Refresh};
use crate::repo_pass::{RepoFailure, RepoJob, RepoOutcome, pr_commits_outcome};
use bbdc_host::bindings::api::RepoRef;
use bbdc_host::bindings::api::SyncOptions as WitSyncOptions;
use bbdc_host::bindings::types::PullRequest;
use bbdc_host::clock::now_ms;
use bbdc_host::runtime::Runtime;
use bbdc_host::tenant::Tenant;
use bbdc_http_server::Stopping;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One refresh, as the in-memory queue knows it: (project key, slug, pull request), the pull
/// request `None` for a repository's history.
type Key = (String, String, Option<u64>);

/// Refreshes queued and not yet started, with the time each is queued at in the store.
type Pending = Arc<Mutex<HashMap<Key, i64>>>;

/// The refresh thread and its queue.
pub(crate) struct Refresher {
    queue: mpsc::Sender<Key>,
    /// The thread, until joined.
    worker: Mutex<Option<JoinHandle<()>>>,
    pending: Pending,
    sink: Arc<dyn RecordSink>,
}

/// How one refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Done, or failed for good (the next sync's pass reads it again): off the queue.
    Done,
    /// Stopped part-way because serve is stopping: it stays queued.
    Cancelled,
}

impl Refresher {
    /// Starts the refresh thread for `tenant`: first the refreshes a previous serve left queued
    /// in `sink`, then those [`Refresher::want`] queues, until `stopping` is set.
    pub(crate) fn start(
        runtime: Arc<Runtime>,
        tenant: Arc<Tenant>,
        sink: Arc<dyn RecordSink>,
        stopping: Arc<Stopping>,
    ) -> Self {
        let (queue, rx) = mpsc::channel::<Key>();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let worker = {
            let (pending, sink) = (Arc::clone(&pending), Arc::clone(&sink));
            std::thread::spawn(move || {
                let refresh = |r: &Refresh| {
                    if refresh_one(&runtime, &tenant, sink.as_ref(), r, &stopping) == Ended::Done
                        && let Err(e) = sink.refreshed(r)
                    {
                        tracing::warn!(
                            "taking a refresh off the queue: {}",
                            bbdc_host::errors::chain(&e)
                        );
                    }
                };
                match sink.refreshes() {
                    Ok(left) if !left.is_empty() => {
                        tracing::info!(
                            "resuming {} refreshes a previous serve left queued",
                            left.len()
                        );
                        for r in left.iter().take_while(|_| !stopping.is_set()) {
                            refresh(r);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "reading the refreshes left queued: {}",
                        bbdc_host::errors::chain(&e)
                    ),
                }
                // Once stopping, what is queued stays in the store for the next start.
                while !stopping.is_set() {
                    let key = match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(key) => key,
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    };
                    let queued_at = pending.lock().ok().and_then(|mut p| p.remove(&key));
                    if stopping.is_set() {
                        return;
                    }
                    let (project_key, slug, pr) = key;
                    refresh(&Refresh {
                        repo: RepoRef { project_key, slug },
                        pr,
                        queued_at: queued_at.unwrap_or(0),
                    });
                }
            })
        };
        Self {
            queue,
            worker: Mutex::new(Some(worker)),
            pending,
            sink,
        }
    }

    /// Queues a refresh of pull request `id` of `repo` (`None`: its history): durably, then in
    /// memory, unless one is queued and not started yet (it will read what this delivery
    /// changed), so that a burst for one pull request costs one write.
    pub(crate) fn want(&self, repo: RepoRef, id: Option<u64>) {
        let key: Key = (repo.project_key.clone(), repo.slug.clone(), id);
        if self.pending.lock().is_ok_and(|p| p.contains_key(&key)) {
            return;
        }
        let queued_at = self.sink.want_refresh(&repo, id).unwrap_or_else(|e| {
            tracing::warn!(
                "a refresh could not be queued durably (the next sync's pass does it): {}",
                bbdc_host::errors::chain(&e)
            );
            now_ms()
        });
        let fresh = self
            .pending
            .lock()
            .map(|mut p| p.insert(key.clone(), queued_at).is_none())
            .unwrap_or(true);
        if fresh {
            let _ = self.queue.send(key);
        }
    }

    /// Waits for the refresh thread until `drain` after the stop began (`stopping` is set
    /// here if it was not); returns whether it ended in time. A refresh still waiting on the
    /// server then is left behind.
    pub(crate) fn finish(&self, stopping: &Stopping, drain: Duration) -> bool {
        stopping.set();
        let Some(worker) = self.worker.lock().ok().and_then(|mut w| w.take()) else {
            return true;
        };
        let deadline = stopping
            .at()
            .unwrap_or_else(Instant::now)
            .checked_add(drain)
            .unwrap_or_else(Instant::now);
        while !worker.is_finished() {
            if Instant::now() >= deadline {
                tracing::warn!(
                    "a background refresh is still waiting on the server after the {drain:?} drain; \
                     leaving it (it stays queued, and the next serve does it)"
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = worker.join();
        true
    }
}

/// One refresh: the pull request fetched in full and stored, then its commits and its head's
/// builds; or the repository's history.
fn refresh_one(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    sink: &dyn RecordSink,
    r: &Refresh,
    stopping: &Stopping,
) -> Ended {
    let repo = &r.repo;
    let name = format!("{}/{}", repo.project_key, repo.slug);
    let cancel = Some(stopping.flag());
    let ended = |outcome: Result<(), SyncError>, what: &str| match outcome {
        Err(SyncError::Cancelled) => Ended::Cancelled,
        Err(e) => {
            tracing::warn!(repo = %name, "{what} failed: {e}");
            Ended::Done
        }
        Ok(()) => Ended::Done,
    };
    let Some(id) = r.pr else {
        return ended(
            refresh_history(runtime, tenant, sink, repo, cancel),
            "history refresh",
        );
    };
    let pr = match runtime.fetch_pull_request(tenant, repo, id) {
        Ok(pr) => pr,
        Err(e) => {
            let (code, message) = crate::output::call_error(&e);
            tracing::warn!(repo = %name, id, code, "refresh failed: {message}");
            return Ended::Done;
        }
    };
    if let Err(e) = sink.pull_requests(std::slice::from_ref(&pr)) {
        tracing::warn!(repo = %name, id, "refresh not stored: {}", bbdc_host::errors::chain(&e));
        return Ended::Done;
    }
    // Its commits and its head's builds, as a sync would read them (a 0.1.0 component has
    // neither: the sync's own pass tells that).
    if runtime.contract_version() != bbdc_host::plugin::ContractVersion::V0_2 {
        return Ended::Done;
    }
    ended(
        refresh_pull_request_history(runtime, tenant, sink, &pr, cancel),
        "commits and builds refresh",
    )
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
    tenant.rate_budget();
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
