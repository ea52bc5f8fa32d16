//! `bbdc worker`: one of many processes, on one machine or several, sharing the sync of one or
//! more tenants through a PostgreSQL database ([`crate::work_queue`]).
//!
//! A worker takes the next due item under a lease and renews the lease while it works:
//! - a tenant's **listing** writes its projects, repositories and users and asks for a pass of
//!   each repository it lists;
//! - a **repository pass** is what `bbdc sync` runs for each repository: pull requests, history
//!   and builds, each batch written and then acknowledged to the connector.
//!
//! A worker that dies stops renewing; its lease expires and another worker takes the item. The
//! connector's state (in the shared key-value store) says which batches were acknowledged, so
//! the pass resumes after the last of them: a batch written but not acknowledged is listed and
//! written again, as the same upserts.
//!
//! A worker cut off from the database cannot write, renew or take: its pass fails with a store
//! error, and the worker waits and tries again, while its lease expires for another to take.
//!
//! Asked to stop (`stop`, SIGTERM), a worker stops the pass in hand before its next call (what
//! it acknowledged is kept), lets its lease go so that another worker resumes the item at once,
//! and returns. One tenant's failures stay its own: a tenant whose round the database refuses
//! to start is set aside for this run and reported, and the others are served.

use crate::records::{
    Delivery, PrCommitsPage, PrHeads, RecordSink, RefPage, Refresh, RepositoryDelivery, Stored,
};
use crate::sync::{self, RepoPassError, SyncError, SyncJob};
use crate::work_queue::{Lease, Retry, Work, WorkQueue};
use bbdc_host::bindings::history::{Build, CommitBatch};
use bbdc_host::bindings::types::{Project, PullRequest, Repo, RepoRef, User};
use bbdc_host::storage::StoreError;
use bbdc_host::{Runtime, Tenant};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One tenant a worker serves: its connector state and HTTP policy, and where its records go.
pub struct TenantWork {
    /// The tenant (its id names its work items and its state).
    pub tenant: Arc<Tenant>,
    /// Its records.
    pub records: Arc<dyn RecordSink>,
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name in the leases it holds: unique among the workers of a database.
    pub name: String,
    /// How long a lease lasts without renewal; it is renewed every third of it.
    pub lease: Duration,
    /// The longest wait when nothing is due (the wait starts at a twentieth of it and doubles
    /// while nothing comes, so that workers waiting on a listing start within moments of its
    /// first page), and the wait after a store error.
    pub poll: Duration,
    /// Stop once the tenants' rounds are complete (nothing due, held or waiting a retry),
    /// instead of running for ever.
    pub until_idle: bool,
    /// Start each tenant's next round this long after the last one completed (`None`: one
    /// round, the one running or a new one when none is).
    pub every: Option<Duration>,
    /// When a failed pass is tried again.
    pub retry: Retry,
    /// What each round imports (entities, filter, `--since`); its concurrency is unused: one
    /// worker runs one item at a time, and more workers run more.
    pub job: SyncJob,
}

impl WorkerConfig {
    /// The defaults: a 60 s lease, a 1 s poll, one round, the default retries and job.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            until_idle: false,
            every: None,
            retry: Retry::default(),
            job: SyncJob::default(),
        }
    }
}

/// A name for this worker process: host, process id and a random suffix, so that a restarted
/// worker never takes over the leases of the process it replaces (they expire instead).
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// What a worker did, per tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Per tenant id: what this worker's passes wrote.
    pub tenants: BTreeMap<String, TenantTally>,
    /// Store errors met (the database unreachable or failing); the worker waited and went on.
    pub store_errors: u64,
    /// When the worker stopped: the items of its tenants whose last pass failed (given up for
    /// the round after their retries, or still waiting a retry).
    pub given_up: Vec<GivenUp>,
    /// Tenants set aside for this run because the database refused their work (tenant id,
    /// why); the others were served.
    pub set_aside: Vec<(String, String)>,
    /// Items whose pass was stopped part-way because the worker was asked to stop; each was
    /// let go, for the next worker to resume.
    pub released: u64,
}

/// An item whose passes kept failing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GivenUp {
    /// The tenant's id.
    pub tenant: String,
    /// The repository (`KEY/slug`), or empty for the tenant's listing.
    pub item: String,
    /// Failures in a row.
    pub failures: u64,
    /// The last one's error.
    pub error: String,
}

/// What one worker did for one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantTally {
    /// Listings completed.
    pub listings: u64,
    /// Repository passes completed.
    pub repos: u64,
    /// Passes that failed (tried again later).
    pub failed: u64,
    /// Leases lost to another worker while a pass ran (this worker stalled past its lease).
    pub lost: u64,
    /// Pull requests written.
    pub pull_requests: u64,
    /// Commits written.
    pub commits: u64,
}

/// Why a worker stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// No tenant to serve.
    #[error("no tenant: give at least one --tenant FILE")]
    NoTenant,
    /// Two tenants share an id.
    #[error("tenant id {0:?} is given twice")]
    DuplicateTenant(String),
}

/// Runs a worker until `stop` is set or, with `until_idle`, until the tenants' rounds are
/// complete. Once `stop` is set, the pass in hand stops before its next call and its item is
/// let go.
pub fn run(
    runtime: &Runtime,
    tenants: &[TenantWork],
    queue: &WorkQueue,
    config: &WorkerConfig,
    stop: &AtomicBool,
) -> Result<WorkerReport, WorkerError> {
    if tenants.is_empty() {
        return Err(WorkerError::NoTenant);
    }
    let mut by_id: BTreeMap<String, &TenantWork> = BTreeMap::new();
    for t in tenants {
        if by_id.insert(t.tenant.config.id.clone(), t).is_some() {
            return Err(WorkerError::DuplicateTenant(t.tenant.config.id.clone()));
        }
    }
    let mut ids: Vec<String> = by_id.keys().cloned().collect();
    let mut report = WorkerReport::default();
    // Join the running round of each tenant, or start one: at start, and with `every`
    // whenever there is nothing to do (the queue starts a round at most once per `every`,
    // however many workers ask).
    let mut round_due = true;
    let mut idle_wait = config.poll / 20;
    while !stop.load(Ordering::Relaxed) {
        if round_due {
            // Each tenant on its own: a tenant whose round the database refuses is set aside,
            // and an unreachable database is waited for.
            let mut unreachable_db = None;
            ids.retain(|id| match queue.start_round(id, config.every) {
                Ok(()) => true,
                Err(e) if bbdc_store::postgres::is_unreachable(&e) => {
                    unreachable_db = Some(e);
                    true
                }
                Err(e) => {
                    let why = bbdc_host::errors::chain(&e);
                    tracing::error!(
                        tenant = %crate::printable::shown(id),
                        "tenant set aside: the database refuses its work: {why}"
                    );
                    report.set_aside.push((id.clone(), why));
                    false
                }
            });
            if let Some(e) = unreachable_db {
                store_error(&mut report, &e, config);
                continue;
            }
            if ids.is_empty() {
                break;
            }
            round_due = false;
        }
        let lease = match queue.take(&ids, &config.name, config.lease) {
            Ok(lease) => lease,
            Err(e) => {
                store_error(&mut report, &e, config);
                continue;
            }
        };
        let Some(lease) = lease else {
            if config.until_idle {
                match queue.idle(&ids) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        store_error(&mut report, &e, config);
                        continue;
                    }
                }
            }
            round_due = config.every.is_some();
            std::thread::sleep(idle_wait);
            idle_wait = (idle_wait * 2).min(config.poll);
            continue;
        };
        idle_wait = config.poll / 20;
        let Some(work) = by_id.get(&lease.tenant) else {
            // Taken from the tenants asked for: cannot happen; let it go for its own worker.
            let _ = queue.failed(&lease, "no such tenant in this worker", &config.retry);
            continue;
        };
        let tally = report.tenants.entry(lease.tenant.clone()).or_default();
        let outcome = leased(queue, &lease, config, |hold| {
            let fenced = Fenced {
                inner: work.records.as_ref(),
                hold,
            };
            let cx = ItemContext {
                runtime,
                queue,
                job: &config.job,
                cancel: stop,
            };
            run_item(&cx, work, &fenced, &lease.work, tally)
        });
        match outcome {
            (Err(ItemError::Cancelled), held) => {
                // Asked to stop: the item goes back to the queue, due now, for the next worker.
                report.released += 1;
                if held && let Err(e) = queue.release(&lease) {
                    tracing::warn!("letting an item go: {}", bbdc_host::errors::chain(&e));
                }
            }
            (_, false) => {
                // Another worker took the item while this one stalled: its pass counts, and
                // this one wrote nothing after the loss was seen.
                tally.lost += 1;
            }
            (Ok(()), true) => {
                if let Err(e) = queue.complete(&lease) {
                    store_error(&mut report, &e, config);
                }
            }
            (Err(ItemError::Call(why)), true) => {
                tally.failed += 1;
                tracing::warn!(tenant = %lease.tenant, item = ?lease.work, "pass failed: {why}");
                if let Err(e) = queue.failed(&lease, &why, &config.retry) {
                    store_error(&mut report, &e, config);
                }
            }
            (Err(ItemError::Store(e)), true) if !unreachable(&e) => {
                // The database answered and refused (a row it cannot hold, an id out of
                // range): the same pass would fail the same way, so it counts as a failure,
                // backed off and given up after the retries, rather than going round for ever.
                tally.failed += 1;
                let why = format!("storing: {}", bbdc_host::errors::chain(&e));
                tracing::warn!(tenant = %lease.tenant, item = ?lease.work, "pass failed: {why}");
                if let Err(e) = queue.failed(&lease, &why, &config.retry) {
                    store_error(&mut report, &e, config);
                }
            }
            (Err(ItemError::Store(e)), true) => {
                // The database is unreachable, or the lease lapsed for want of a renewal: the
                // lease is left to expire, and the next worker to take the item resumes the
                // pass from its acknowledged state.
                report.store_errors += 1;
                tracing::warn!(tenant = %lease.tenant, item = ?lease.work, "pass stopped: {}", bbdc_host::errors::chain(&e));
                std::thread::sleep(config.poll);
            }
        }
    }
    for id in &ids {
        match queue.failing(id) {
            Ok(items) => {
                report
                    .given_up
                    .extend(items.into_iter().map(|(item, failures, error)| GivenUp {
                        tenant: id.clone(),
                        item,
                        failures: u64::try_from(failures).unwrap_or(0),
                        error,
                    }))
            }
            Err(e) => store_error(&mut report, &e, config),
        }
    }
    Ok(report)
}

/// Whether a pass's store error means the database could not be reached (or the lease lapsed
/// for want of a renewal), rather than the database refusing the write.
fn unreachable(e: &SyncError) -> bool {
    match e {
        SyncError::Records(e) => {
            bbdc_store::postgres::is_unreachable(e) || e.to_string().contains(LAPSED)
        }
        _ => false,
    }
}

/// Why an item's pass did not complete.
enum ItemError {
    /// The server or connector failed: try again later.
    Call(String),
    /// Records or state could not be written.
    Store(SyncError),
    /// The worker was asked to stop, and the pass stopped between two calls.
    Cancelled,
}

/// What every item's work shares: the component, the queue, the round's job, and the flag
/// that asks the pass in hand to stop.
struct ItemContext<'a> {
    runtime: &'a Runtime,
    queue: &'a WorkQueue,
    job: &'a SyncJob,
    cancel: &'a AtomicBool,
}

/// Runs one item's work, writing records through `sink`.
fn run_item(
    cx: &ItemContext<'_>,
    work: &TenantWork,
    sink: &Fenced<'_>,
    item: &Work,
    tally: &mut TenantTally,
) -> Result<(), ItemError> {
    let ItemContext {
        runtime,
        queue,
        job,
        cancel,
    } = *cx;
    let tenant = &work.tenant;
    match item {
        Work::Listing => {
            let id = &tenant.config.id;
            let listed = sync::list_for_workers(runtime, tenant, sink, job, Some(cancel), |repo| {
                sink.check()?;
                queue.want_repo(id, &repo).map_err(SyncError::from)
            });
            match listed {
                Ok(_) => {
                    tally.listings += 1;
                    Ok(())
                }
                Err(SyncError::Cancelled) => Err(ItemError::Cancelled),
                Err(e @ (SyncError::Records(_) | SyncError::Output(_))) => Err(ItemError::Store(e)),
                Err(e) => Err(ItemError::Call(e.to_string())),
            }
        }
        Work::Repo(repo) => {
            match sync::sync_one_repo(runtime, tenant, sink, job, repo, Some(cancel)) {
                Ok(counts) => {
                    tally.repos += 1;
                    tally.pull_requests += counts.pull_requests;
                    tally.commits += counts.commits;
                    Ok(())
                }
                Err(RepoPassError::Call(f)) => {
                    Err(ItemError::Call(format!("{}: {}", f.code, f.message)))
                }
                Err(RepoPassError::Store(e)) => Err(ItemError::Store(e)),
                Err(RepoPassError::Cancelled) => Err(ItemError::Cancelled),
            }
        }
    }
}

/// What a pass knows of its lease.
struct Hold {
    /// Another worker took the item (a renewal found it gone).
    lost: AtomicBool,
    /// When the lease was last taken or renewed, by this process's clock.
    renewed: std::sync::Mutex<Instant>,
    /// How long a lease lasts.
    lease: Duration,
}

impl Hold {
    /// Whether the lease is surely still this worker's: not lost, and renewed less than nine
    /// tenths of a lease ago. A worker that stalled (or cannot reach the database to renew)
    /// stops writing before another can take the item.
    fn valid(&self) -> bool {
        !self.lost.load(Ordering::Relaxed)
            && self
                .renewed
                .lock()
                .map(|at| at.elapsed() < self.lease.mul_f64(0.9))
                .unwrap_or(false)
    }
}

/// What a fenced write is refused with.
const LAPSED: &str =
    "the lease on this item lapsed or passed to another worker: nothing more is written";

/// The worker's record sink, fenced by its lease: every write is refused once the lease may
/// have passed to another worker, so two workers never write one repository's records at once
/// (a write already under way when the lease lapses completes).
struct Fenced<'a> {
    inner: &'a dyn RecordSink,
    hold: &'a Hold,
}

impl Fenced<'_> {
    fn check(&self) -> Result<(), StoreError> {
        if self.hold.valid() {
            Ok(())
        } else {
            Err(StoreError::new(LAPSED))
        }
    }
}

/// Each method checks the fence, then writes (or reads) through the worker's sink.
macro_rules! fenced {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        impl RecordSink for Fenced<'_> {
            $(fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                self.check()?;
                self.inner.$name($($arg),*)
            })*
        }
    };
}

fenced! {
    projects(items: &[Project]) -> ();
    repos(items: &[Repo]) -> ();
    repos_gone(listed_since: i64) -> Vec<(RepoRef, u64)>;
    users(items: &[User]) -> ();
    pull_requests(items: &[PullRequest]) -> ();
    commits(repo: &RepoRef, batch: &CommitBatch) -> ();
    ref_page(repo: &RepoRef, page: &RefPage<'_>) -> ();
    default_branch_head(repo: &RepoRef) -> Option<String>;
    want_builds(repo: &RepoRef, commits: &[String]) -> ();
    build_queue(repo: &RepoRef) -> Vec<String>;
    builds(repo: &RepoRef, asked: &[String], builds: &[Build], keep_queued: &[String]) -> ();
    want_pr_commits(repo: &RepoRef, prs: &[PrHeads]) -> ();
    pr_commit_queue(repo: &RepoRef) -> Vec<PrHeads>;
    pr_commits_page(repo: &RepoRef, page: &PrCommitsPage<'_>) -> Option<i64>;
    forget_pr_commits(repo: &RepoRef, heads: &PrHeads) -> ();
    first_commit_at(repo: &RepoRef, ids: &[u64]) -> std::collections::HashMap<u64, i64>;
    want_refresh(repo: &RepoRef, pr: Option<u64>) -> i64;
    refreshes() -> Vec<Refresh>;
    refreshed(refresh: &Refresh) -> ();
    repository_delivery(d: &RepositoryDelivery<'_>) -> Stored;
    delivery(d: &Delivery<'_>) -> Stored;
}

/// Runs `f` while a thread renews `lease` every third of its length; returns `f`'s result and
/// whether the lease was still held throughout (no renewal found it taken).
fn leased<T>(
    queue: &WorkQueue,
    lease: &Lease,
    config: &WorkerConfig,
    f: impl FnOnce(&Hold) -> T,
) -> (T, bool) {
    let done = std::sync::Mutex::new(false);
    let woken = std::sync::Condvar::new();
    let hold = Hold {
        lost: AtomicBool::new(false),
        renewed: std::sync::Mutex::new(Instant::now()),
        lease: config.lease,
    };
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut finished = done.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                let (guard, timeout) = woken
                    .wait_timeout(finished, config.lease / 3)
                    .unwrap_or_else(|p| p.into_inner());
                finished = guard;
                if *finished {
                    return;
                }
                if timeout.timed_out() {
                    let asked = Instant::now();
                    match queue.renew(lease, config.lease) {
                        Ok(true) => {
                            if let Ok(mut at) = hold.renewed.lock() {
                                *at = asked;
                            }
                        }
                        Ok(false) => {
                            hold.lost.store(true, Ordering::Relaxed);
                            tracing::warn!(tenant = %lease.tenant, item = ?lease.work, "lease lost to another worker");
                            return;
                        }
                        // The database is unreachable: try again at the next renewal, while
                        // the lease is still valid.
                        Err(e) => tracing::warn!("renewing a lease: {}", bbdc_host::errors::chain(&e)),
                    }
                }
            }
        });
        let out = f(&hold);
        *done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        woken.notify_all();
        out
    });
    (out, !hold.lost.load(Ordering::Relaxed))
}

/// Notes a store error and waits before going on.
fn store_error(
    report: &mut WorkerReport,
    e: &bbdc_host::storage::StoreError,
    config: &WorkerConfig,
) {
    report.store_errors += 1;
    tracing::warn!("database: {}", bbdc_host::errors::chain(e));
    std::thread::sleep(config.poll);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lapsed lease waits for the database like an outage; a refusal (the database answered)
    /// counts as a failed pass, so a write that can never succeed is given up, not retried for
    /// ever.
    #[test]
    fn a_refused_write_fails_the_pass_while_a_lapsed_lease_waits() {
        assert!(unreachable(&SyncError::Records(StoreError::new(LAPSED))));
        let refused = StoreError::new("pull request id 18446744073709551615 is beyond the range");
        assert!(!unreachable(&SyncError::Records(refused)));
    }

    /// Once the lease may have passed to another worker (not renewed for nine tenths of it, or
    /// found taken), the pass can no longer write.
    #[test]
    fn a_pass_whose_lease_lapsed_or_was_taken_writes_nothing() {
        let dir = tempfile::tempdir().expect("a folder");
        let records = crate::records::SqliteRecords::open(&dir.path().join("r.db")).expect("opens");
        let hold = Hold {
            lost: AtomicBool::new(false),
            renewed: std::sync::Mutex::new(Instant::now()),
            // Long enough that a loaded machine reaches the first check in time.
            lease: Duration::from_millis(1000),
        };
        let sink = Fenced {
            inner: &records,
            hold: &hold,
        };
        assert!(sink.users(&[]).is_ok(), "held");
        std::thread::sleep(Duration::from_millis(950));
        assert!(sink.users(&[]).is_err(), "lapsed: not renewed in time");
        *hold.renewed.lock().expect("the time") = Instant::now();
        assert!(sink.users(&[]).is_ok(), "renewed");
        hold.lost.store(true, Ordering::Relaxed);
        let e = sink.users(&[]).expect_err("taken by another worker");
        assert!(e.to_string().contains("lease"), "{e}");
    }
}
