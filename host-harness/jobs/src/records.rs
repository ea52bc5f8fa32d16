//! Where ingested records go. [`RecordSink`] is the seam a platform implements to write its own
//! store; [`SqliteRecords`] is the embedded default: tables `projects`, `repos`, `users`,
//! `pull_requests` and `reviews`, written as upserts keyed by (project key, repo slug, PR id),
//! `commits` (the default branch's, keyed by (project key, repo slug, commit id)), `branches` and
//! `tags` (keyed by (project key, repo slug, full ref)), `pr_commits` (a pull request's commits,
//! keyed by (project key, repo slug, PR id, commit id)), `builds`, and the queues `build_queue`
//! and `pr_commit_queue`.
//!
//! A record store fails with [`StoreError`], the state store's error: both are storage, and one
//! error type lets a platform back both with one database.

use crate::output;
use bbdc_host::bindings::history::{
    Branch, Build, BuildState, Commit, CommitBatch, CommitPassKind, Tag,
};
use bbdc_host::bindings::repository_events::{RefChangeKind, RepositoryEvent};
use bbdc_host::bindings::types::{
    Project, PullRequest, Repo, RepoRef, ReviewChange, ReviewerStatus, User,
};
use bbdc_host::storage::StoreError;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Mutex;

/// Receives ingested records. Every write is an idempotent upsert.
pub trait RecordSink: Send + Sync {
    /// Upserts projects.
    fn projects(&self, items: &[Project]) -> Result<(), StoreError>;
    /// Upserts repositories, each stamped as listed now and not deleted. A repository is known
    /// by its id: one stored under another project key or slug (renamed or moved since) is moved
    /// to its new key together with every record of it, in the same transaction, so that it
    /// keeps its identity instead of appearing twice.
    fn repos(&self, items: &[Repo]) -> Result<(), StoreError>;
    /// Marks deleted the repositories not listed since `listed_since` (epoch ms) and not
    /// marked already, and returns them: called after a complete listing of every repository,
    /// whose start was `listed_since`. Their records stay.
    fn repos_gone(&self, listed_since: i64) -> Result<Vec<(RepoRef, u64)>, StoreError>;
    /// Upserts users.
    fn users(&self, items: &[User]) -> Result<(), StoreError>;
    /// Upserts pull requests (and replaces the review history of those fetched in full), in one
    /// transaction: the batch is durable when this returns.
    fn pull_requests(&self, items: &[PullRequest]) -> Result<(), StoreError>;
    /// Upserts one batch of a repository's commit pass in one transaction. When the batch is
    /// `complete` and the pass `rewritten` (a force-push), the repository's commits that no
    /// batch of the pass named (those whose `pass_head` is not the batch's `head`) are dropped in
    /// the same transaction; a complete pass of an empty repository (no `head`) drops them all.
    fn commits(&self, repo: &RepoRef, batch: &CommitBatch) -> Result<(), StoreError>;
    /// Replaces a repository's branches and tags with these, in one transaction.
    fn refs(&self, repo: &RepoRef, branches: &[Branch], tags: &[Tag]) -> Result<(), StoreError>;
    /// The head the repository's last complete commit pass ended at (`None`: none completed, or
    /// the branch was empty): a sync runs the commit pass only when the default branch moved
    /// from it. Kept apart from `branches`, which a push's webhook updates before any pass ran.
    fn default_branch_head(&self, repo: &RepoRef) -> Result<Option<String>, StoreError>;
    /// Queues `commits` of `repo` for reading their build statuses (a commit already queued
    /// stays once). Durable when this returns: the sync queues a batch's commits before it
    /// acknowledges the batch, so a crash between the two only lists the batch again.
    fn want_builds(&self, repo: &RepoRef, commits: &[String]) -> Result<(), StoreError>;
    /// The commits of `repo` queued for their build statuses, oldest queued first.
    fn build_queue(&self, repo: &RepoRef) -> Result<Vec<String>, StoreError>;
    /// Replaces the build statuses of the `asked` commits with `builds`, and takes those
    /// commits off the queue except the ones in `keep_queued` (builds still running), in one
    /// transaction.
    fn builds(
        &self,
        repo: &RepoRef,
        asked: &[String],
        builds: &[Build],
        keep_queued: &[String],
    ) -> Result<(), StoreError>;
    /// Queues the pull requests of `repo` whose pair of head commits (id, source commit, target
    /// commit) differs from the pair their stored commits were read for, to read their commits.
    /// Durable when this returns, before the batch that brought them is acknowledged.
    fn want_pr_commits(&self, repo: &RepoRef, prs: &[PrHeads]) -> Result<(), StoreError>;
    /// The pull requests of `repo` queued for their commits, lowest id first.
    fn pr_commit_queue(&self, repo: &RepoRef) -> Result<Vec<PrHeads>, StoreError>;
    /// Replaces the stored commits of pull request `heads.id` with `commits` (all of them, read
    /// for `heads`), records `heads` as the pair they were read for and the pull request's
    /// `first_commit_at` (the earliest author time among them), and takes it off the queue unless
    /// a newer pair was queued meanwhile, in one transaction. Returns `first_commit_at`.
    fn pr_commits(
        &self,
        repo: &RepoRef,
        heads: &PrHeads,
        commits: &[Commit],
    ) -> Result<Option<i64>, StoreError>;
    /// Takes pull request `heads.id` off the queue (unless a newer pair was queued meanwhile)
    /// without touching what is stored for it: the server no longer has it to read.
    fn forget_pr_commits(&self, repo: &RepoRef, heads: &PrHeads) -> Result<(), StoreError>;
    /// The stored `first_commit_at` of pull requests `ids` of `repo` (those known).
    fn first_commit_at(
        &self,
        repo: &RepoRef,
        ids: &[u64],
    ) -> Result<std::collections::HashMap<u64, i64>, StoreError>;
    /// Stores one accepted repository delivery with its de-duplication mark, in one transaction
    /// (as [`RecordSink::delivery`] does a pull request's): the repository (moved by its key
    /// before, for a rename), and for a push each changed branch or tag (created or moved to its
    /// new commit, or deleted). Returns [`Stored::Duplicate`], changing nothing, for a request id
    /// stored within the de-duplication window.
    fn repository_delivery(&self, d: &RepositoryDelivery<'_>) -> Result<Stored, StoreError>;
    /// Stores one accepted webhook delivery (its snapshot unless stale, its reviewer's status
    /// change, appended to the review history until the next full fetch of the pull request
    /// replaces it, and its deletion) together with its de-duplication mark, in one transaction: either all of it is
    /// durable when this returns `Ok`, or none of it is. Returns [`Stored::Duplicate`], changing
    /// nothing, when a delivery with the same request id was stored within the de-duplication
    /// window. This is what lets `bbdc serve` answer 2xx only for what is stored, and store a
    /// retried delivery whose first attempt failed.
    fn delivery(&self, d: &Delivery<'_>) -> Result<Stored, StoreError>;
}

/// One accepted repository delivery, as [`RecordSink::repository_delivery`] stores it.
#[derive(Debug, Clone, Copy)]
pub struct RepositoryDelivery<'a> {
    /// The `X-Request-Id` (`None`: nothing to de-duplicate by).
    pub request_id: Option<&'a str>,
    /// When the host received it, epoch ms.
    pub received_at: i64,
    /// The repository now.
    pub repo: &'a Repo,
    /// What happened to it.
    pub event: &'a RepositoryEvent,
}

/// A pull request and the pair of head commits its commits are (to be) read for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrHeads {
    /// The pull request's id.
    pub id: u64,
    /// Its source branch's commit (`from_ref.latest_commit`).
    pub source: String,
    /// Its target branch's commit (`to_ref.latest_commit`), when the server sent one.
    pub target: Option<String>,
}

/// One accepted webhook delivery, as [`RecordSink::delivery`] stores it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The `X-Request-Id` (`None`: nothing to de-duplicate by; stored every time).
    pub request_id: Option<&'a str>,
    /// When the host received it, epoch ms (the de-duplication window counts from here).
    pub received_at: i64,
    /// The pull request as the payload describes it.
    pub pull_request: &'a PullRequest,
    /// The payload is older than a version already handled: keep the stored snapshot.
    pub stale: bool,
    /// A reviewer's status change.
    pub review: Option<DeliveredReview<'a>>,
    /// The pull request was deleted.
    pub deleted: bool,
}

/// A reviewer's status change a delivery reports.
#[derive(Debug, Clone, Copy)]
pub struct DeliveredReview<'a> {
    /// Whose status changed, and to what.
    pub change: &'a ReviewChange,
    /// When it happened, epoch ms.
    pub at: i64,
}

/// What [`RecordSink::delivery`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The delivery and its mark are durable.
    New,
    /// A delivery with this request id was stored before; nothing changed.
    Duplicate,
}

/// How long a delivery's request id is remembered by default: Bitbucket retries a failed
/// delivery within minutes, so a week leaves a wide margin while keeping the table bounded.
pub const DEFAULT_DEDUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// [`RecordSink`] on SQLite.
///
/// Deliveries are group-committed: each waits for a commit that holds it (so `Ok` still means
/// on disk, `synchronous = FULL`), but deliveries arriving while a commit is under way share the
/// next one. Whoever holds the connection commits everything queued, each delivery in its own
/// savepoint, so one delivery's failure never takes its neighbours with it, and a failed commit
/// fails every delivery it held (none of them answered 2xx, so Bitbucket retries each).
pub struct SqliteRecords {
    conn: Mutex<Connection>,
    /// Deliveries waiting for the next group commit.
    queued: Mutex<Vec<Queued>>,
    /// How long a delivery's request id is remembered.
    dedup_window: std::time::Duration,
}

/// A delivery waiting for a group commit, and where its result goes.
struct Queued {
    delivery: OwnedDelivery,
    result: std::sync::mpsc::SyncSender<Result<Stored, StoreError>>,
}

/// [`Delivery`] with its own copies, so that any thread's commit can store it.
struct OwnedDelivery {
    request_id: Option<String>,
    received_at: i64,
    pull_request: PullRequest,
    stale: bool,
    review: Option<(ReviewChange, i64)>,
    deleted: bool,
}

impl OwnedDelivery {
    fn of(d: &Delivery<'_>) -> Self {
        Self {
            request_id: d.request_id.map(str::to_owned),
            received_at: d.received_at,
            pull_request: d.pull_request.clone(),
            stale: d.stale,
            review: d.review.map(|r| (r.change.clone(), r.at)),
            deleted: d.deleted,
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projects (
    key TEXT PRIMARY KEY, id INTEGER, name TEXT, description TEXT, public INTEGER, kind TEXT, url TEXT
);
CREATE TABLE IF NOT EXISTS repos (
    project_key TEXT NOT NULL, slug TEXT NOT NULL, id INTEGER, name TEXT, description TEXT, scm TEXT,
    state TEXT, public INTEGER, archived INTEGER, forkable INTEGER, origin_project_key TEXT,
    origin_slug TEXT, url TEXT, clone_http TEXT, clone_ssh TEXT, listed_at INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_key, slug)
);
-- A listed repository is looked up by id (a rename keeps it): one index lookup per repository,
-- not a scan of 50,000.
CREATE INDEX IF NOT EXISTS repos_by_id ON repos (id);
CREATE TABLE IF NOT EXISTS users (
    slug TEXT PRIMARY KEY, id INTEGER, name TEXT, display_name TEXT, email TEXT, active INTEGER, kind TEXT
);
CREATE TABLE IF NOT EXISTS pull_requests (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, id INTEGER NOT NULL, version INTEGER NOT NULL,
    title TEXT, description TEXT, state TEXT, draft INTEGER, author TEXT,
    created_at INTEGER, updated_at INTEGER, closed_at INTEGER, merged_at INTEGER, merged_by TEXT,
    merge_commit TEXT, source_branch TEXT, source_commit TEXT, source_repo TEXT, target_branch TEXT,
    target_commit TEXT, url TEXT, comment_count INTEGER, open_task_count INTEGER,
    resolved_task_count INTEGER, additions INTEGER, deletions INTEGER, files_changed INTEGER,
    diff_truncated INTEGER, first_review_at INTEGER, first_approval_at INTEGER, complete INTEGER,
    reviewers TEXT, participants TEXT, events TEXT, record TEXT, deleted INTEGER NOT NULL DEFAULT 0,
    first_commit_at INTEGER, commits_source TEXT, commits_target TEXT,
    PRIMARY KEY (project_key, repo_slug, id)
);
CREATE TABLE IF NOT EXISTS reviews (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    user TEXT NOT NULL, state TEXT NOT NULL, at INTEGER NOT NULL, activity_id INTEGER,
    PRIMARY KEY (project_key, repo_slug, pr_id, seq)
);
CREATE TABLE IF NOT EXISTS commits (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, id TEXT NOT NULL,
    author_name TEXT, author_email TEXT, author_slug TEXT, author_timestamp INTEGER,
    committer_name TEXT, committer_email TEXT, committer_slug TEXT, committer_timestamp INTEGER,
    parent_count INTEGER NOT NULL, summary TEXT NOT NULL, pass_head TEXT,
    PRIMARY KEY (project_key, repo_slug, id)
);
CREATE TABLE IF NOT EXISTS history_heads (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, head TEXT,
    PRIMARY KEY (project_key, repo_slug)
);
CREATE TABLE IF NOT EXISTS branches (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, ref_id TEXT NOT NULL, name TEXT NOT NULL,
    latest_commit TEXT, is_default INTEGER NOT NULL,
    PRIMARY KEY (project_key, repo_slug, ref_id)
);
CREATE TABLE IF NOT EXISTS tags (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, ref_id TEXT NOT NULL, name TEXT NOT NULL,
    target TEXT, object_hash TEXT,
    PRIMARY KEY (project_key, repo_slug, ref_id)
);
CREATE TABLE IF NOT EXISTS builds (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, commit_id TEXT NOT NULL, key TEXT NOT NULL,
    name TEXT, state TEXT NOT NULL, state_other TEXT, url TEXT, created_at INTEGER, updated_at INTEGER,
    duration_ms INTEGER, build_number TEXT, parent TEXT, ref_id TEXT, tests_successful INTEGER,
    tests_failed INTEGER, tests_skipped INTEGER,
    PRIMARY KEY (project_key, repo_slug, commit_id, key)
);
CREATE TABLE IF NOT EXISTS build_queue (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, commit_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (project_key, repo_slug, commit_id)
);
-- `want_builds` numbers each queued commit after the highest number so far: indexed, that is one
-- lookup per insert instead of a scan of the queue (a first sync queues thousands at once).
CREATE INDEX IF NOT EXISTS build_queue_by_seq ON build_queue (seq);
CREATE TABLE IF NOT EXISTS pr_commits (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id INTEGER NOT NULL, commit_id TEXT NOT NULL,
    position INTEGER NOT NULL, author_name TEXT, author_email TEXT, author_slug TEXT, author_timestamp INTEGER,
    committer_name TEXT, committer_email TEXT, committer_slug TEXT, committer_timestamp INTEGER,
    parent_count INTEGER NOT NULL, summary TEXT NOT NULL,
    PRIMARY KEY (project_key, repo_slug, pr_id, commit_id)
);
CREATE TABLE IF NOT EXISTS pr_commit_queue (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id INTEGER NOT NULL,
    source_commit TEXT NOT NULL, target_commit TEXT,
    PRIMARY KEY (project_key, repo_slug, pr_id)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    request_id TEXT PRIMARY KEY, received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_age ON webhook_deliveries (received_at);
";

/// Takes a pull request off the commit queue if `heads` is still the pair queued for it.
fn dequeue_pr_commits(
    tx: &Connection,
    repo: &RepoRef,
    pr_id: i64,
    heads: &PrHeads,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM pr_commit_queue WHERE project_key = ?1 AND repo_slug = ?2 AND pr_id = ?3
         AND source_commit = ?4 AND target_commit IS ?5",
        params![
            repo.project_key,
            repo.slug,
            pr_id,
            heads.source,
            heads.target
        ],
    )?;
    Ok(())
}

/// Columns added to tables after a release: (table, column, type). `CREATE TABLE IF NOT EXISTS`
/// leaves a file made by an older `bbdc` as it was, so these are added to it on open.
const ADDED_COLUMNS: [(&str, &str, &str); 5] = [
    ("repos", "listed_at", "INTEGER"),
    ("repos", "deleted", "INTEGER NOT NULL DEFAULT 0"),
    ("pull_requests", "first_commit_at", "INTEGER"),
    ("pull_requests", "commits_source", "TEXT"),
    ("pull_requests", "commits_target", "TEXT"),
];

/// The tables holding a repository's records, with the column naming its slug (each has
/// `project_key` beside it): what moves with a renamed repository.
pub const REPO_TABLES: [(&str, &str); 11] = [
    ("history_heads", "repo_slug"),
    ("repos", "slug"),
    ("pull_requests", "repo_slug"),
    ("reviews", "repo_slug"),
    ("commits", "repo_slug"),
    ("branches", "repo_slug"),
    ("tags", "repo_slug"),
    ("builds", "repo_slug"),
    ("build_queue", "repo_slug"),
    ("pr_commits", "repo_slug"),
    ("pr_commit_queue", "repo_slug"),
];

/// Moves the records of repository `id`, when it is stored under another key than `now`, to
/// `now` (a rename or a move to another project keeps the repository's identity). A row already
/// stored under the new key for the same thing is replaced by the moved one.
///
/// Before that, a different repository stored at `now` (its key reused after a rename or a
/// deletion) is moved aside to a key no real repository has (`slug#id`, marked deleted), where a
/// later listing finds it by its id. Id 0 (a repository whose id could not be read) identifies
/// nothing and moves nothing.
fn move_repo_by_id(tx: &Connection, id: i64, now: &RepoRef) -> Result<(), StoreError> {
    if id == 0 {
        return Ok(());
    }
    let occupant: Option<i64> = tx
        .prepare_cached("SELECT id FROM repos WHERE project_key = ?1 AND slug = ?2")?
        .query_row(params![now.project_key, now.slug], |r| r.get(0))
        .map(Some)
        .or_else(none_when_no_row)?;
    if let Some(other) = occupant.filter(|other| *other != id && *other != 0) {
        let aside = RepoRef {
            project_key: now.project_key.clone(),
            slug: format!("{}#{other}", now.slug),
        };
        move_repo(tx, now, &aside)?;
        tx.execute(
            "UPDATE repos SET deleted = 1 WHERE project_key = ?1 AND slug = ?2",
            params![aside.project_key, aside.slug],
        )?;
    }
    // Every other key the id is stored under (one, unless an older `bbdc` stored it twice).
    loop {
        let before: Option<(String, String)> = tx
            .prepare_cached(
                "SELECT project_key, slug FROM repos WHERE id = ?1 AND NOT (project_key = ?2 AND slug = ?3) LIMIT 1",
            )?
            .query_row(params![id, now.project_key, now.slug], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map(Some)
            .or_else(none_when_no_row)?;
        match before {
            Some((project_key, slug)) => move_repo(tx, &RepoRef { project_key, slug }, now)?,
            None => return Ok(()),
        }
    }
}

/// `None` for a query that found no row.
fn none_when_no_row<T>(e: rusqlite::Error) -> Result<Option<T>, rusqlite::Error> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    }
}

/// Moves every record of repository `before` to `now` (nothing when they are the same). What
/// is stored at `now` already wins over what comes from `before` (it was written later: by the
/// sync of the new name), and what could not move is dropped with the old key.
fn move_repo(tx: &Connection, before: &RepoRef, now: &RepoRef) -> Result<(), StoreError> {
    if before == now {
        return Ok(());
    }
    for (table, slug_column) in REPO_TABLES {
        tx.execute(
            &format!(
                "UPDATE OR IGNORE {table} SET project_key = ?3, {slug_column} = ?4
                 WHERE project_key = ?1 AND {slug_column} = ?2"
            ),
            params![before.project_key, before.slug, now.project_key, now.slug],
        )?;
        tx.execute(
            &format!("DELETE FROM {table} WHERE project_key = ?1 AND {slug_column} = ?2"),
            params![before.project_key, before.slug],
        )?;
    }
    tracing::info!(
        from = %format!("{}/{}", before.project_key, before.slug),
        to = %format!("{}/{}", now.project_key, now.slug),
        "repository renamed or moved: its records follow it"
    );
    Ok(())
}

/// Upserts one repository as listed (or described by a webhook) at `now`, not deleted.
fn upsert_repo(tx: &Connection, r: &Repo, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO repos (project_key, slug, id, name, description, scm, state, public, archived,
         forkable, origin_project_key, origin_slug, url, clone_http, clone_ssh, listed_at, deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 0)",
    )?
    .execute(params![
        r.repo_ref.project_key, r.repo_ref.slug, id_of("repository", r.id)?, r.name, r.description, r.scm,
        r.state, r.public, r.archived, r.forkable, r.origin.as_ref().map(|o| &o.project_key),
        r.origin.as_ref().map(|o| &o.slug), r.url, r.clone_http, r.clone_ssh, now
    ])?;
    Ok(())
}

/// Now, epoch ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Adds each of [`ADDED_COLUMNS`] its table lacks.
fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, kind) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// A build state as the `builds` table and the JSON lines spell it (the server's own spelling).
pub fn build_state(s: BuildState) -> &'static str {
    match s {
        BuildState::Successful => "SUCCESSFUL",
        BuildState::Failed => "FAILED",
        BuildState::InProgress => "INPROGRESS",
        BuildState::Cancelled => "CANCELLED",
        BuildState::Unknown => "UNKNOWN",
    }
}

/// A count (lines, files) as SQLite's signed integer; counts past `i64::MAX` cannot occur in a
/// real diff and are kept at the maximum.
fn count_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An identity (pull-request, repository, project, user or activity id) as SQLite's signed
/// integer, losslessly or not at all: two ids must never collapse into one row.
fn id_of(what: &str, n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| {
        StoreError::new(format!(
            "{what} id {n} is beyond the 64-bit signed range Bitbucket ids have; refused"
        ))
    })
}

impl SqliteRecords {
    /// Opens (creating if needed) the record tables in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        bbdc_host::storage::create_private(path)
            .map_err(|e| StoreError::caused_by(path.display().to_string(), e))?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Records are the product: a commit is on disk before it is acknowledged.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            queued: Mutex::new(Vec::new()),
            dedup_window: DEFAULT_DEDUP_WINDOW,
        })
    }

    /// Remembers delivery request ids for `window` instead of [`DEFAULT_DEDUP_WINDOW`]; older
    /// marks are pruned as deliveries arrive.
    pub fn with_dedup_window(mut self, window: std::time::Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// How many delivery request ids are remembered now.
    pub fn remembered_deliveries(&self) -> Result<u64, StoreError> {
        let conn = self.locked()?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM webhook_deliveries", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The connection, locked.
    fn locked(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::new("lock poisoned"))
    }

    fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.locked()?;
        // Immediate: a transaction that reads before it writes (a repository looked up by id,
        // a queue compared with what is stored) must not start as a reader, or a write by the
        // state store's connection in between makes its upgrade fail at once with "database is
        // locked" instead of waiting.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

impl RecordSink for SqliteRecords {
    fn projects(&self, items: &[Project]) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO projects (key, id, name, description, public, kind, url) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for p in items {
                let j = output::project_json(p);
                st.execute(params![p.key, id_of("project", p.id)?, p.name, p.description, p.public, j["kind"].as_str(), p.url])?;
            }
            Ok(())
        })
    }

    fn repos(&self, items: &[Repo]) -> Result<(), StoreError> {
        let now = now_ms();
        self.with_tx(|tx| {
            for r in items {
                move_repo_by_id(tx, id_of("repository", r.id)?, &r.repo_ref)?;
                upsert_repo(tx, r, now)?;
            }
            Ok(())
        })
    }

    fn repos_gone(&self, listed_since: i64) -> Result<Vec<(RepoRef, u64)>, StoreError> {
        self.with_tx(|tx| {
            let gone: Vec<(RepoRef, u64)> = tx
                .prepare_cached(
                    "SELECT project_key, slug, id FROM repos
                     WHERE deleted = 0 AND (listed_at IS NULL OR listed_at < ?1) ORDER BY project_key, slug",
                )?
                .query_map(params![listed_since], |r| {
                    Ok((
                        RepoRef {
                            project_key: r.get(0)?,
                            slug: r.get(1)?,
                        },
                        u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    ))
                })?
                .collect::<Result<_, _>>()?;
            tx.execute(
                "UPDATE repos SET deleted = 1 WHERE deleted = 0 AND (listed_at IS NULL OR listed_at < ?1)",
                params![listed_since],
            )?;
            Ok(gone)
        })
    }

    fn users(&self, items: &[User]) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO users (slug, id, name, display_name, email, active, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for u in items {
                st.execute(params![u.slug, u.id.map(|n| id_of("user", n)).transpose()?, u.name, u.display_name, u.email, u.active, output::user_kind(u.kind)])?;
            }
            Ok(())
        })
    }

    fn pull_requests(&self, items: &[PullRequest]) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            for p in items {
                upsert_pull_request(tx, p)?;
            }
            Ok(())
        })
    }

    fn commits(&self, repo: &RepoRef, batch: &CommitBatch) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO commits (project_key, repo_slug, id, author_name, author_email, author_slug,
                 author_timestamp, committer_name, committer_email, committer_slug, committer_timestamp, parent_count,
                 summary, pass_head) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for c in &batch.commits {
                let committer = c.committer.as_ref();
                st.execute(params![
                    c.repo.project_key, c.repo.slug, c.id, c.author.name, c.author.email, c.author.user_slug,
                    c.author_timestamp, committer.map(|p| &p.name), committer.and_then(|p| p.email.as_ref()),
                    committer.and_then(|p| p.user_slug.as_ref()), c.committer_timestamp, c.parent_count,
                    c.summary, batch.head
                ])?;
            }
            if batch.complete {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO history_heads (project_key, repo_slug, head) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![repo.project_key, repo.slug, batch.head])?;
                match (&batch.head, batch.pass) {
                    (None, _) => {
                        tx.execute(
                            "DELETE FROM commits WHERE project_key = ?1 AND repo_slug = ?2",
                            params![repo.project_key, repo.slug],
                        )?;
                    }
                    (Some(head), CommitPassKind::Rewritten) => {
                        tx.execute(
                            "DELETE FROM commits WHERE project_key = ?1 AND repo_slug = ?2 AND pass_head IS NOT ?3",
                            params![repo.project_key, repo.slug, head],
                        )?;
                    }
                    _ => {}
                }
                if batch.head.is_none() || batch.pass == CommitPassKind::Rewritten {
                    // The builds of commits gone from the branch go with them, unless a pull
                    // request's head or one of its commits still names the commit.
                    tx.execute(
                        "DELETE FROM builds WHERE project_key = ?1 AND repo_slug = ?2
                         AND commit_id NOT IN (SELECT id FROM commits WHERE project_key = ?1 AND repo_slug = ?2)
                         AND commit_id NOT IN (SELECT source_commit FROM pull_requests
                             WHERE project_key = ?1 AND repo_slug = ?2 AND source_commit IS NOT NULL)
                         AND commit_id NOT IN (SELECT commit_id FROM pr_commits
                             WHERE project_key = ?1 AND repo_slug = ?2)",
                        params![repo.project_key, repo.slug],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn refs(&self, repo: &RepoRef, branches: &[Branch], tags: &[Tag]) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let key = params![repo.project_key, repo.slug];
            tx.execute("DELETE FROM branches WHERE project_key = ?1 AND repo_slug = ?2", key)?;
            tx.execute("DELETE FROM tags WHERE project_key = ?1 AND repo_slug = ?2", key)?;
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO branches (project_key, repo_slug, ref_id, name, latest_commit, is_default)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for b in branches {
                st.execute(params![repo.project_key, repo.slug, b.ref_id, b.name, b.latest_commit, b.is_default])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO tags (project_key, repo_slug, ref_id, name, target, object_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for t in tags {
                st.execute(params![repo.project_key, repo.slug, t.ref_id, t.name, t.target, t.object_hash])?;
            }
            Ok(())
        })
    }

    fn default_branch_head(&self, repo: &RepoRef) -> Result<Option<String>, StoreError> {
        let conn = self.locked()?;
        let mut st = conn.prepare_cached(
            "SELECT head FROM history_heads WHERE project_key = ?1 AND repo_slug = ?2",
        )?;
        let mut rows = st.query(params![repo.project_key, repo.slug])?;
        Ok(match rows.next()? {
            Some(row) => row.get(0)?,
            None => None,
        })
    }

    fn want_builds(&self, repo: &RepoRef, commits: &[String]) -> Result<(), StoreError> {
        if commits.is_empty() {
            return Ok(());
        }
        self.with_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO build_queue (project_key, repo_slug, commit_id, seq)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM build_queue))",
            )?;
            for c in commits {
                st.execute(params![repo.project_key, repo.slug, c])?;
            }
            Ok(())
        })
    }

    fn build_queue(&self, repo: &RepoRef) -> Result<Vec<String>, StoreError> {
        let conn = self.locked()?;
        let mut st = conn.prepare_cached(
            "SELECT commit_id FROM build_queue WHERE project_key = ?1 AND repo_slug = ?2 ORDER BY seq",
        )?;
        let rows = st.query_map(params![repo.project_key, repo.slug], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    fn builds(
        &self,
        repo: &RepoRef,
        asked: &[String],
        builds: &[Build],
        keep_queued: &[String],
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            for c in asked {
                tx.execute(
                    "DELETE FROM builds WHERE project_key = ?1 AND repo_slug = ?2 AND commit_id = ?3",
                    params![repo.project_key, repo.slug, c],
                )?;
                if !keep_queued.contains(c) {
                    tx.execute(
                        "DELETE FROM build_queue WHERE project_key = ?1 AND repo_slug = ?2 AND commit_id = ?3",
                        params![repo.project_key, repo.slug, c],
                    )?;
                }
            }
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO builds (project_key, repo_slug, commit_id, key, name, state, state_other,
                 url, created_at, updated_at, duration_ms, build_number, parent, ref_id, tests_successful,
                 tests_failed, tests_skipped)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?;
            for b in builds {
                let tests = b.test_results.as_ref();
                st.execute(params![
                    repo.project_key, repo.slug, b.commit_id, b.key, b.name, build_state(b.state),
                    b.state_other, b.url, b.created_at, b.updated_at, b.duration_ms, b.build_number,
                    b.parent, b.ref_id, tests.map(|t| t.successful), tests.map(|t| t.failed),
                    tests.map(|t| t.skipped)
                ])?;
            }
            Ok(())
        })
    }

    fn want_pr_commits(&self, repo: &RepoRef, prs: &[PrHeads]) -> Result<(), StoreError> {
        if prs.is_empty() {
            return Ok(());
        }
        self.with_tx(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO pr_commit_queue (project_key, repo_slug, pr_id, source_commit, target_commit)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM pull_requests
                     WHERE project_key = ?1 AND repo_slug = ?2 AND id = ?3
                     AND commits_source IS ?4 AND commits_target IS ?5)",
            )?;
            for p in prs {
                st.execute(params![
                    repo.project_key,
                    repo.slug,
                    id_of("pull request", p.id)?,
                    p.source,
                    p.target
                ])?;
            }
            Ok(())
        })
    }

    fn pr_commit_queue(&self, repo: &RepoRef) -> Result<Vec<PrHeads>, StoreError> {
        let conn = self.locked()?;
        let mut st = conn.prepare_cached(
            "SELECT pr_id, source_commit, target_commit FROM pr_commit_queue
             WHERE project_key = ?1 AND repo_slug = ?2 ORDER BY pr_id",
        )?;
        let rows = st.query_map(params![repo.project_key, repo.slug], |r| {
            Ok(PrHeads {
                id: r.get(0)?,
                source: r.get(1)?,
                target: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn pr_commits(
        &self,
        repo: &RepoRef,
        heads: &PrHeads,
        commits: &[Commit],
    ) -> Result<Option<i64>, StoreError> {
        let pr_id = id_of("pull request", heads.id)?;
        let first = commits.iter().filter_map(|c| c.author_timestamp).min();
        self.with_tx(|tx| {
            tx.execute(
                "DELETE FROM pr_commits WHERE project_key = ?1 AND repo_slug = ?2 AND pr_id = ?3",
                params![repo.project_key, repo.slug, pr_id],
            )?;
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO pr_commits (project_key, repo_slug, pr_id, commit_id, position, author_name,
                 author_email, author_slug, author_timestamp, committer_name, committer_email, committer_slug,
                 committer_timestamp, parent_count, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            for (position, c) in commits.iter().enumerate() {
                let committer = c.committer.as_ref();
                st.execute(params![
                    repo.project_key, repo.slug, pr_id, c.id, position, c.author.name, c.author.email,
                    c.author.user_slug, c.author_timestamp, committer.map(|p| &p.name),
                    committer.and_then(|p| p.email.as_ref()), committer.and_then(|p| p.user_slug.as_ref()),
                    c.committer_timestamp, c.parent_count, c.summary
                ])?;
            }
            tx.execute(
                "UPDATE pull_requests SET first_commit_at = ?4, commits_source = ?5, commits_target = ?6
                 WHERE project_key = ?1 AND repo_slug = ?2 AND id = ?3",
                params![repo.project_key, repo.slug, pr_id, first, heads.source, heads.target],
            )?;
            dequeue_pr_commits(tx, repo, pr_id, heads)?;
            Ok(first)
        })
    }

    fn forget_pr_commits(&self, repo: &RepoRef, heads: &PrHeads) -> Result<(), StoreError> {
        let pr_id = id_of("pull request", heads.id)?;
        self.with_tx(|tx| {
            dequeue_pr_commits(tx, repo, pr_id, heads)?;
            Ok(())
        })
    }

    fn first_commit_at(
        &self,
        repo: &RepoRef,
        ids: &[u64],
    ) -> Result<std::collections::HashMap<u64, i64>, StoreError> {
        let conn = self.locked()?;
        let mut st = conn.prepare_cached(
            "SELECT first_commit_at FROM pull_requests WHERE project_key = ?1 AND repo_slug = ?2 AND id = ?3",
        )?;
        let mut found = std::collections::HashMap::new();
        for &id in ids {
            let mut rows = st.query(params![
                repo.project_key,
                repo.slug,
                id_of("pull request", id)?
            ])?;
            if let Some(row) = rows.next()?
                && let Some(at) = row.get::<_, Option<i64>>(0)?
            {
                found.insert(id, at);
            }
        }
        Ok(found)
    }

    fn repository_delivery(&self, d: &RepositoryDelivery<'_>) -> Result<Stored, StoreError> {
        let window = i64::try_from(self.dedup_window.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        self.with_tx(|tx| {
            if let Some(id) = d.request_id
                && !mark_delivery(tx, id, d.received_at, window)?
            {
                return Ok(Stored::Duplicate);
            }
            let repo = &d.repo.repo_ref;
            // By id, as a listing does: a rename's key before is only a hint (a delivery retried
            // after a sync already moved the repository, and another took its old key, must not
            // move that other one's records).
            move_repo_by_id(tx, id_of("repository", d.repo.id)?, repo)?;
            upsert_repo(tx, d.repo, now)?;
            if let RepositoryEvent::RefsChanged(changes) = d.event {
                for c in changes {
                    let (table, target) = if c.is_tag {
                        ("tags", "target")
                    } else {
                        ("branches", "latest_commit")
                    };
                    let key = params![repo.project_key, repo.slug, c.ref_id];
                    match (c.kind, &c.to_hash) {
                        (RefChangeKind::Delete, _) | (_, None) => {
                            tx.execute(
                                &format!("DELETE FROM {table} WHERE project_key = ?1 AND repo_slug = ?2 AND ref_id = ?3"),
                                key,
                            )?;
                        }
                        (_, Some(to)) => {
                            // A branch keeps whether it is the default; a tag's object hash is
                            // not in the payload, and the next listing brings it.
                            let extra = if c.is_tag { "object_hash" } else { "is_default" };
                            tx.execute(
                                &format!(
                                    "INSERT INTO {table} (project_key, repo_slug, ref_id, name, {target}, {extra})
                                     VALUES (?1, ?2, ?3, ?4, ?5, {})
                                     ON CONFLICT (project_key, repo_slug, ref_id) DO UPDATE SET
                                     name = excluded.name, {target} = excluded.{target}",
                                    if c.is_tag { "NULL" } else { "0" }
                                ),
                                params![repo.project_key, repo.slug, c.ref_id, c.name, to],
                            )?;
                        }
                    }
                }
            }
            Ok(Stored::New)
        })
    }

    fn delivery(&self, d: &Delivery<'_>) -> Result<Stored, StoreError> {
        let (result, stored) = std::sync::mpsc::sync_channel(1);
        self.queued
            .lock()
            .map_err(|_| StoreError::new("lock poisoned"))?
            .push(Queued {
                delivery: OwnedDelivery::of(d),
                result,
            });
        let mut conn = self.locked()?;
        // The previous holder of the connection may have committed this delivery already; if
        // not, it is still queued, and this thread commits it with everything queued after it.
        if let Ok(r) = stored.try_recv() {
            return r;
        }
        let group = std::mem::take(
            &mut *self
                .queued
                .lock()
                .map_err(|_| StoreError::new("lock poisoned"))?,
        );
        self.commit_group(&mut conn, group);
        drop(conn);
        stored
            .recv()
            .map_err(|_| StoreError::new("the group commit ended without a result"))?
    }
}

impl SqliteRecords {
    /// Stores `group` in one transaction, each delivery in a savepoint, and sends each its
    /// result once the transaction is committed (or its failure).
    fn commit_group(&self, conn: &mut Connection, group: Vec<Queued>) {
        let window = i64::try_from(self.dedup_window.as_millis()).unwrap_or(i64::MAX);
        let mut results = Vec::with_capacity(group.len());
        let committed = (|| -> Result<(), StoreError> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for q in &group {
                let mut sp = tx.savepoint()?;
                let r = store_delivery(&sp, &q.delivery, window);
                if r.is_ok() {
                    sp.commit()?;
                } else {
                    sp.rollback()?;
                }
                results.push(r);
            }
            tx.commit()?;
            Ok(())
        })();
        match committed {
            Ok(()) => {
                for (q, r) in group.into_iter().zip(results) {
                    // A waiter only goes away with its thread: nothing waits for the result.
                    let _ = q.result.send(r);
                }
            }
            Err(e) => {
                let why = bbdc_host::errors::chain(&e);
                for q in group {
                    let failed = StoreError::new(format!("the group commit failed: {why}"));
                    let _ = q.result.send(Err(failed));
                }
            }
        }
    }
}

/// One delivery's writes, inside the group's transaction: its de-duplication mark first, then
/// its records.
/// Marks delivery `id` as stored; `false` when it was already, within `window` of
/// `received_at`. Expired marks go as deliveries arrive, so the table holds one window at most.
fn mark_delivery(
    tx: &Connection,
    id: &str,
    received_at: i64,
    window: i64,
) -> Result<bool, StoreError> {
    tx.prepare_cached("DELETE FROM webhook_deliveries WHERE received_at < ?1")?
        .execute(params![received_at.saturating_sub(window)])?;
    let fresh = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO webhook_deliveries (request_id, received_at) VALUES (?1, ?2)",
        )?
        .execute(params![id, received_at])?;
    Ok(fresh > 0)
}

fn store_delivery(tx: &Connection, d: &OwnedDelivery, window: i64) -> Result<Stored, StoreError> {
    if let Some(id) = &d.request_id
        && !mark_delivery(tx, id, d.received_at, window)?
    {
        return Ok(Stored::Duplicate);
    }
    let pr = &d.pull_request;
    if !d.stale {
        upsert_pull_request(tx, pr)?;
    }
    if let Some((change, at)) = &d.review {
        append_review(tx, &pr.repo, pr.id, change, *at)?;
    }
    if d.deleted {
        mark_deleted(tx, &pr.repo, pr.id)?;
    }
    Ok(Stored::New)
}

/// Appends a reviewer's status change to a pull request's review history.
fn append_review(
    tx: &Connection,
    repo: &RepoRef,
    pr_id: u64,
    change: &ReviewChange,
    at: i64,
) -> Result<(), StoreError> {
    let state = match change.status {
        ReviewerStatus::Approved => "approved",
        ReviewerStatus::NeedsWork => "needs_work",
        ReviewerStatus::Unapproved => "unapproved",
    };
    tx.prepare_cached(
        "INSERT INTO reviews (project_key, repo_slug, pr_id, seq, user, state, at, activity_id)
         SELECT ?1, ?2, ?3, COALESCE(MAX(seq) + 1, 0), ?4, ?5, ?6, NULL FROM reviews
         WHERE project_key = ?1 AND repo_slug = ?2 AND pr_id = ?3",
    )?
    .execute(params![
        repo.project_key,
        repo.slug,
        id_of("pull request", pr_id)?,
        change.user.slug,
        state,
        at
    ])?;
    Ok(())
}

/// Marks a pull request deleted.
fn mark_deleted(tx: &Connection, repo: &RepoRef, pr_id: u64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE pull_requests SET deleted = 1 WHERE project_key = ?1 AND repo_slug = ?2 AND id = ?3",
    )?
    .execute(params![repo.project_key, repo.slug, id_of("pull request", pr_id)?])?;
    Ok(())
}

/// Upserts one pull request. A row is never replaced by an older version; a snapshot (from a
/// webhook or a list page) keeps the diff statistics and review history a full fetch stored.
fn upsert_pull_request(tx: &Connection, p: &PullRequest) -> Result<(), StoreError> {
    let j = output::pull_request_json(p);
    let text = |v: &serde_json::Value| v.to_string();
    let complete = matches!(
        p.completeness,
        bbdc_host::bindings::types::PrCompleteness::Full
    );
    let pr_id = id_of("pull request", p.id)?;
    tx.prepare_cached(
        "INSERT INTO pull_requests (project_key, repo_slug, id, version, title, description, state, draft, author,
            created_at, updated_at, closed_at, merged_at, merged_by, merge_commit, source_branch, source_commit,
            source_repo, target_branch, target_commit, url, comment_count, open_task_count, resolved_task_count,
            additions, deletions, files_changed, diff_truncated, first_review_at, first_approval_at, complete,
            reviewers, participants, events, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
            ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35)
         ON CONFLICT (project_key, repo_slug, id) DO UPDATE SET
            version = excluded.version, title = excluded.title, description = excluded.description,
            state = excluded.state, draft = excluded.draft, author = excluded.author,
            created_at = excluded.created_at, updated_at = excluded.updated_at, closed_at = excluded.closed_at,
            merged_at = COALESCE(excluded.merged_at, merged_at), merged_by = COALESCE(excluded.merged_by, merged_by),
            merge_commit = COALESCE(excluded.merge_commit, merge_commit), source_branch = excluded.source_branch,
            source_commit = excluded.source_commit, source_repo = excluded.source_repo,
            target_branch = excluded.target_branch, target_commit = excluded.target_commit, url = excluded.url,
            comment_count = excluded.comment_count, open_task_count = excluded.open_task_count,
            resolved_task_count = excluded.resolved_task_count,
            additions = CASE WHEN excluded.complete THEN excluded.additions ELSE additions END,
            deletions = CASE WHEN excluded.complete THEN excluded.deletions ELSE deletions END,
            files_changed = CASE WHEN excluded.complete THEN excluded.files_changed ELSE files_changed END,
            diff_truncated = CASE WHEN excluded.complete THEN excluded.diff_truncated ELSE diff_truncated END,
            first_review_at = CASE WHEN excluded.complete THEN excluded.first_review_at ELSE first_review_at END,
            first_approval_at = CASE WHEN excluded.complete THEN excluded.first_approval_at ELSE first_approval_at END,
            events = CASE WHEN excluded.complete THEN excluded.events ELSE events END,
            complete = MAX(complete, excluded.complete),
            reviewers = excluded.reviewers, participants = excluded.participants, record = excluded.record
         WHERE excluded.version >= pull_requests.version",
    )?
    .execute(params![
        p.repo.project_key, p.repo.slug, pr_id, p.version, p.title, p.description, j["state"].as_str(),
        p.draft, j["author"].as_str(), p.created_at, p.updated_at, p.closed_at, p.merged_at, j["merged_by"].as_str(),
        p.merge_commit, p.source.display_id, p.source.latest_commit,
        p.source_fork.as_ref().map(|r| format!("{}/{}", r.project_key, r.slug)), p.target.display_id,
        p.target.latest_commit, p.url, p.comment_count, p.open_task_count, p.resolved_task_count,
        p.diff.as_ref().map(|d| count_of(d.additions)), p.diff.as_ref().map(|d| count_of(d.deletions)),
        p.diff.as_ref().map(|d| d.files_changed), p.diff.as_ref().map(|d| d.truncated), p.first_review_at,
        p.first_approval_at, complete, text(&j["reviewers"]), text(&j["participants"]), text(&j["events"]), text(&j)
    ])?;
    if complete {
        let current: u32 = tx.query_row(
            "SELECT version FROM pull_requests WHERE project_key = ?1 AND repo_slug = ?2 AND id = ?3",
            params![p.repo.project_key, p.repo.slug, pr_id],
            |r| r.get(0),
        )?;
        if current == p.version {
            tx.execute(
                "DELETE FROM reviews WHERE project_key = ?1 AND repo_slug = ?2 AND pr_id = ?3",
                params![p.repo.project_key, p.repo.slug, pr_id],
            )?;
            let mut st = tx.prepare_cached(
                "INSERT INTO reviews (project_key, repo_slug, pr_id, seq, user, state, at, activity_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (seq, r) in p.reviews.iter().enumerate() {
                st.execute(params![
                    p.repo.project_key,
                    p.repo.slug,
                    pr_id,
                    seq,
                    r.user.slug,
                    output::review_action(r.action),
                    r.at,
                    r.activity_id.map(|n| id_of("activity", n)).transpose()?
                ])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbdc_host::bindings::history::CommitPerson;
    use bbdc_host::bindings::repository_events::RefChange;

    fn repo() -> RepoRef {
        RepoRef {
            project_key: "P".into(),
            slug: "r".into(),
        }
    }

    fn commit(id: &str, at: Option<i64>) -> Commit {
        Commit {
            repo: repo(),
            id: id.into(),
            author: CommitPerson {
                name: "Ada".into(),
                email: None,
                user_slug: Some("ada".into()),
            },
            author_timestamp: at,
            committer: None,
            committer_timestamp: None,
            parent_count: 1,
            summary: "s".into(),
        }
    }

    fn heads(id: u64, source: &str) -> PrHeads {
        PrHeads {
            id,
            source: source.into(),
            target: Some("t".into()),
        }
    }

    fn a_repo(slug: &str) -> Repo {
        Repo {
            id: 656,
            repo_ref: RepoRef {
                project_key: "P".into(),
                slug: slug.into(),
            },
            name: slug.into(),
            description: None,
            scm: "git".into(),
            state: None,
            public: false,
            archived: false,
            project: Project {
                key: "P".into(),
                id: 1,
                name: "P".into(),
                description: None,
                public: false,
                kind: bbdc_host::bindings::types::ProjectKind::Normal,
                url: None,
            },
            forkable: true,
            origin: None,
            url: None,
            clone_http: None,
            clone_ssh: None,
        }
    }

    fn change(ref_id: &str, is_tag: bool, to: Option<&str>, kind: RefChangeKind) -> RefChange {
        RefChange {
            ref_id: ref_id.into(),
            name: ref_id.rsplit('/').next().unwrap_or_default().into(),
            is_tag,
            from_hash: None,
            to_hash: to.map(str::to_owned),
            kind,
        }
    }

    #[test]
    fn a_repository_delivery_moves_refs_once_and_a_rename_moves_the_records() {
        let dir = tempfile::tempdir().expect("a directory");
        let records = SqliteRecords::open(&dir.path().join("r.db")).expect("opens");
        let api = a_repo("r");
        records.repos(std::slice::from_ref(&api)).expect("listed");
        let refs = |r: &SqliteRecords, table: &str| -> Vec<(String, String, String)> {
            let column = if table == "tags" {
                "target"
            } else {
                "latest_commit"
            };
            let conn = r.locked().expect("the connection");
            let mut st = conn
                .prepare(&format!(
                    "SELECT repo_slug, ref_id, {column} FROM {table} ORDER BY ref_id"
                ))
                .expect("a query");
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("a row")
        };
        let push = RepositoryEvent::RefsChanged(vec![
            change("refs/heads/main", false, Some("c2"), RefChangeKind::Update),
            change("refs/heads/gone", false, None, RefChangeKind::Delete),
            change("refs/tags/v1", true, Some("c1"), RefChangeKind::Add),
        ]);
        records
            .refs(
                &api.repo_ref,
                &[Branch {
                    repo: api.repo_ref.clone(),
                    name: "gone".into(),
                    ref_id: "refs/heads/gone".into(),
                    latest_commit: Some("c0".into()),
                    is_default: false,
                }],
                &[],
            )
            .expect("refs");
        let delivery = RepositoryDelivery {
            request_id: Some("req-1"),
            received_at: 1,
            repo: &api,
            event: &push,
        };
        assert_eq!(
            records.repository_delivery(&delivery).expect("stored"),
            Stored::New
        );
        let branches = vec![("r".into(), "refs/heads/main".into(), "c2".into())];
        let tags = vec![("r".into(), "refs/tags/v1".into(), "c1".into())];
        assert_eq!(refs(&records, "branches"), branches);
        assert_eq!(refs(&records, "tags"), tags);
        // The same delivery again changes nothing.
        assert_eq!(
            records.repository_delivery(&delivery).expect("answered"),
            Stored::Duplicate
        );
        // A rename: the refs follow the repository to its new slug.
        let renamed = a_repo("r2");
        let rename = RepositoryEvent::Modified(api.repo_ref.clone());
        records
            .repository_delivery(&RepositoryDelivery {
                request_id: Some("req-2"),
                received_at: 2,
                repo: &renamed,
                event: &rename,
            })
            .expect("stored");
        assert_eq!(refs(&records, "branches")[0].0, "r2");
        assert_eq!(refs(&records, "tags")[0].0, "r2");
        let slugs: Vec<String> = records
            .locked()
            .expect("the connection")
            .prepare("SELECT slug FROM repos")
            .expect("a query")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("a row");
        assert_eq!(slugs, vec!["r2".to_owned()]);
    }

    /// (slug, id, deleted) of every stored repository, and (slug, pull request id) of every
    /// stored pull request, sorted.
    #[allow(clippy::type_complexity)]
    fn keys(r: &SqliteRecords) -> (Vec<(String, i64, i64)>, Vec<(String, i64)>) {
        let conn = r.locked().expect("the connection");
        let repos = conn
            .prepare("SELECT slug, id, deleted FROM repos ORDER BY 1")
            .expect("a query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("a row");
        let prs = conn
            .prepare("SELECT repo_slug, id FROM pull_requests ORDER BY 1, 2")
            .expect("a query")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("a row");
        (repos, prs)
    }

    #[test]
    fn a_reused_key_never_merges_two_repositories() {
        let dir = tempfile::tempdir().expect("a directory");
        let records = SqliteRecords::open(&dir.path().join("r.db")).expect("opens");
        let with_id = |slug: &str, id: u64| Repo { id, ..a_repo(slug) };
        records.repos(&[with_id("api", 1)]).expect("listed");
        let pr = |slug: &str, id: i64| {
            records
                .locked()
                .expect("the connection")
                .execute(
                    "INSERT INTO pull_requests (project_key, repo_slug, id, version) VALUES ('P', ?1, ?2, 0)",
                    params![slug, id],
                )
                .expect("a pull request");
        };
        pr("api", 7);
        // Repository 1 renamed to `api-legacy`, and a new repository 2 created as `api`; the
        // listing names the new one first. Repository 1's records step aside, kept.
        records.repos(&[with_id("api", 2)]).expect("listed");
        assert_eq!(
            keys(&records),
            (
                vec![("api".into(), 2, 0), ("api#1".into(), 1, 1)],
                vec![("api#1".into(), 7)]
            )
        );
        pr("api", 1);
        // Then the renamed one: found by its id, its records follow it.
        records.repos(&[with_id("api-legacy", 1)]).expect("listed");
        assert_eq!(
            keys(&records),
            (
                vec![("api".into(), 2, 0), ("api-legacy".into(), 1, 0)],
                vec![("api".into(), 1), ("api-legacy".into(), 7)]
            )
        );
        // A repository whose id could not be read (0) moves nothing.
        records.repos(&[with_id("other", 0)]).expect("listed");
        assert_eq!(keys(&records).1.len(), 2);
        assert!(keys(&records).0.contains(&("api".into(), 2, 0)));
    }

    #[test]
    fn a_file_from_before_the_pull_request_commit_columns_gains_them_on_open() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .and_then(|c| {
                c.execute_batch(
                    "CREATE TABLE pull_requests (project_key TEXT NOT NULL, repo_slug TEXT NOT NULL,
                     id INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (project_key, repo_slug, id));
                     INSERT INTO pull_requests VALUES ('P', 'r', 1, 0);",
                )
            })
            .expect("an old file");
        let records = SqliteRecords::open(&path).expect("opens");
        records
            .pr_commits(&repo(), &heads(1, "s1"), &[commit("c1", Some(5))])
            .expect("stored");
        assert_eq!(
            records.first_commit_at(&repo(), &[1]).expect("read"),
            [(1, 5)].into_iter().collect()
        );
        // Opening it again adds nothing twice.
        drop(records);
        SqliteRecords::open(&path).expect("opens again");
    }

    #[test]
    fn a_pull_request_is_queued_for_its_commits_only_when_its_pair_changed() {
        let dir = tempfile::tempdir().expect("a directory");
        let records = SqliteRecords::open(&dir.path().join("r.db")).expect("opens");
        records
            .locked()
            .expect("the connection")
            .execute(
                "INSERT INTO pull_requests (project_key, repo_slug, id, version) VALUES ('P', 'r', 1, 0), ('P', 'r', 2, 0)",
                [],
            )
            .expect("two pull requests");
        records
            .want_pr_commits(&repo(), &[heads(1, "a"), heads(2, "b")])
            .expect("queued");
        assert_eq!(
            records.pr_commit_queue(&repo()).expect("the queue"),
            vec![heads(1, "a"), heads(2, "b")]
        );
        // Read for pair `a`, with the earliest author time kept; one commit has none.
        let first = records
            .pr_commits(
                &repo(),
                &heads(1, "a"),
                &[
                    commit("c2", Some(20)),
                    commit("c1", Some(10)),
                    commit("c0", None),
                ],
            )
            .expect("stored");
        assert_eq!(first, Some(10));
        assert_eq!(
            records.pr_commit_queue(&repo()).expect("the queue"),
            vec![heads(2, "b")]
        );
        // The same pair again: nothing to read.
        records
            .want_pr_commits(&repo(), &[heads(1, "a")])
            .expect("queued");
        assert_eq!(
            records.pr_commit_queue(&repo()).expect("the queue").len(),
            1
        );
        // A newer pair queued while an older one was read stays queued.
        records
            .want_pr_commits(&repo(), &[heads(2, "b2")])
            .expect("queued");
        records
            .pr_commits(&repo(), &heads(2, "b"), &[commit("x", Some(1))])
            .expect("stored");
        assert_eq!(
            records.pr_commit_queue(&repo()).expect("the queue"),
            vec![heads(2, "b2")]
        );
        let stored: i64 = records
            .locked()
            .expect("the connection")
            .query_row("SELECT COUNT(*) FROM pr_commits WHERE pr_id = 1", [], |r| {
                r.get(0)
            })
            .expect("a count");
        assert_eq!(stored, 3);
    }
}
