//! Where ingested records go. [`RecordSink`] is the seam a platform implements to write its own
//! store; [`Records`] writes them to SQL, on SQLite ([`SqliteRecords`], the embedded default) or
//! PostgreSQL ([`PgRecords`], shared by many workers): tables `projects`, `repos`, `users`,
//! `pull_requests` and `reviews`, written as upserts keyed by (project key, repo slug, PR id),
//! `commits` (the default branch's, keyed by (project key, repo slug, commit id)), `branches` and
//! `tags` (keyed by (project key, repo slug, full ref)), `pr_commits` (a pull request's commits,
//! keyed by (project key, repo slug, PR id, commit id)), `builds`, the queues `build_queue`,
//! `pr_commit_queue` and `refresh_queue`, and `ref_tombstones` (refs a push deleted, so that
//! pushes apply in order: [`refs`]).
//!
//! A record store fails with [`StoreError`], the state store's error: both are storage, and one
//! error type lets a platform back both with one database.

use crate::shape;
use bbdc_host::bindings::history::{Branch, Build, Commit, CommitBatch, CommitPassKind, Tag};
use bbdc_host::bindings::repository_events::RepositoryEvent;
use bbdc_host::bindings::types::{Project, PullRequest, Repo, RepoRef, ReviewChange, User};
use bbdc_host::clock::now_ms;
use bbdc_host::storage::StoreError;

mod postgres;
mod pull_requests;
pub mod refs;
mod repos;
mod sqlite;

pub use crate::sql::{Database, ToValue, Tx, Value};
use crate::sql::{col, vals};
pub use postgres::{Postgres, tenant_schema};
use pull_requests::store_delivery;
use pull_requests::{mark_delivery, upsert_pull_request};
pub use refs::RefKind;
pub use repos::{REPO_TABLES, RepoTable};
use repos::{known_id, move_repo_by_id, upsert_repo};
pub use sqlite::Sqlite;

/// One page of a listing of a repository's branches or tags ([`RecordSink::ref_page`]).
#[derive(Debug, Clone, Copy)]
pub struct RefPage<'a> {
    /// When the listing started (epoch ms, this host's clock).
    pub since: i64,
    /// The page's branches.
    pub branches: &'a [Branch],
    /// The page's tags.
    pub tags: &'a [Tag],
    /// `Some(kind)` on the last page of a complete listing of `kind`.
    pub ends: Option<RefKind>,
}

/// One page of a pull request's commits ([`RecordSink::pr_commits_page`]).
#[derive(Debug, Clone, Copy)]
pub struct PrCommitsPage<'a> {
    /// The pull request, and the source and target heads its commits were listed for.
    pub heads: &'a PrHeads,
    /// When the listing started (epoch ms, this host's clock).
    pub since: i64,
    /// The position of the page's first commit in the listing.
    pub position: u64,
    /// The page's commits, in the listing's order.
    pub commits: &'a [Commit],
    /// Whether this is the last page of a listing that completed.
    pub ends: bool,
}

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
    /// Upserts one page of a listing of the repository's branches or tags ([`RefPage`]) that
    /// started at `since` (epoch ms, this host's clock). A ref that a delivery wrote or deleted since then
    /// keeps what the delivery made of it: the page may have been read before the push.
    ///
    /// `ends` is `Some(kind)` on the last page of a complete listing of `kind`: in the same
    /// transaction, the refs of that kind that neither the listing nor a delivery wrote since
    /// `since` are dropped, and after the tags (a pass lists them last) the repository's mark
    /// for a refs listing is cleared if it was set before `since`. A listing that does not
    /// complete drops nothing.
    fn ref_page(&self, repo: &RepoRef, page: &RefPage<'_>) -> Result<(), StoreError>;
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
    /// Upserts one page of the commits of pull request `heads.id`, read for `heads` by a listing
    /// that started at `since` (epoch ms, this host's clock), the first of them at `position`
    /// (0 for the newest).
    ///
    /// On the last page of a complete listing (`ends`), in the same transaction: drops its
    /// stored commits the listing did not name, records `heads` as the pair they were read for
    /// and the pull request's `first_commit_at` (the earliest author time among them, which is
    /// returned), and takes it off the queue unless a newer pair was queued meanwhile. A listing
    /// that does not complete leaves what it wrote beside what was stored, and the pull request
    /// queued.
    fn pr_commits_page(
        &self,
        repo: &RepoRef,
        page: &PrCommitsPage<'_>,
    ) -> Result<Option<i64>, StoreError>;
    /// Takes pull request `heads.id` off the queue (unless a newer pair was queued meanwhile)
    /// without touching what is stored for it: the server no longer has it to read.
    fn forget_pr_commits(&self, repo: &RepoRef, heads: &PrHeads) -> Result<(), StoreError>;
    /// Queues a refresh through the server of pull request `pr` of `repo` (`None`: the
    /// repository's history), as `bbdc serve` does for an accepted delivery; queued again, its
    /// time moves on. Returns the time it is queued at, which [`RecordSink::refreshed`] takes.
    fn want_refresh(&self, repo: &RepoRef, pr: Option<u64>) -> Result<i64, StoreError>;
    /// Every queued refresh, the longest queued first: (repository, pull request, queued at).
    fn refreshes(&self) -> Result<Vec<Refresh>, StoreError>;
    /// Takes a refresh off the queue once done, unless it was queued again since (`queued_at`
    /// is no longer its time).
    fn refreshed(&self, refresh: &Refresh) -> Result<(), StoreError>;
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
    /// The payload's `date`, epoch ms (`None`: it had none): the order in which a push's
    /// changes apply.
    pub occurred_at: Option<i64>,
    /// The repository now.
    pub repo: &'a Repo,
    /// What happened to it.
    pub event: &'a RepositoryEvent,
}

/// A queued refresh through the server ([`RecordSink::want_refresh`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// The repository.
    pub repo: RepoRef,
    /// The pull request (`None`: the repository's history).
    pub pr: Option<u64>,
    /// When it was queued, epoch ms.
    pub queued_at: i64,
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

/// A database the record writes run on: [`Records`] over SQLite ([`Sqlite`]) or PostgreSQL
/// ([`Postgres`]). Every write of [`RecordSink`] is one call of [`Database::write`]; a backend
/// may store a delivery its own way.
pub trait Backend: Database {
    /// Stores one pull-request delivery with its de-duplication mark, durable when this
    /// returns `Ok`. By default in a transaction of its own.
    fn deliver(&self, d: &Delivery<'_>, window_ms: i64) -> Result<Stored, StoreError> {
        self.write(|tx| store_delivery(tx, d, window_ms))
    }
}

/// [`RecordSink`] on a SQL database. The writes are the same on every [`Backend`]; the
/// backends differ in how they connect and commit. See [`SqliteRecords`] and [`PgRecords`].
pub struct Records<B> {
    backend: B,
    /// How long a delivery's request id is remembered.
    dedup_window: std::time::Duration,
}

/// [`RecordSink`] on SQLite: the embedded default.
pub type SqliteRecords = Records<Sqlite>;

/// [`RecordSink`] on PostgreSQL: for workers and serve replicas sharing one database.
pub type PgRecords = Records<Postgres>;

impl<B: Backend> Records<B> {
    /// Runs `write` for each of `items`, all in one transaction (none for no items).
    fn write_each<T>(
        &self,
        items: &[T],
        mut write: impl FnMut(&mut dyn Tx, &T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        self.backend
            .write(|tx| items.iter().try_for_each(|item| write(tx, item)))
    }

    fn on(backend: B) -> Self {
        Self {
            backend,
            dedup_window: DEFAULT_DEDUP_WINDOW,
        }
    }

    /// Remembers delivery request ids for `window` instead of [`DEFAULT_DEDUP_WINDOW`]; older
    /// marks are pruned as deliveries arrive.
    pub fn with_dedup_window(mut self, window: std::time::Duration) -> Self {
        self.dedup_window = window;
        self
    }

    /// How many delivery request ids are remembered now.
    pub fn remembered_deliveries(&self) -> Result<u64, StoreError> {
        let n = self.backend.read(|tx| {
            Ok(tx
                .row("SELECT COUNT(*) FROM webhook_deliveries", &[])?
                .and_then(|r| col(&r, 0).int())
                .unwrap_or(0))
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs a read-only query on the record tables and returns its rows: for inspection by
    /// tools and tests, in the SQL both databases accept (`$N` parameters).
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
        self.backend.read(|tx| tx.rows(sql, params))
    }

    /// Runs a statement in a transaction of its own (tests set up odd rows with it).
    #[cfg(test)]
    fn execute(&self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        self.backend.write(|tx| tx.exec(sql, params))
    }

    /// The delivery de-duplication window in ms.
    fn window_ms(&self) -> i64 {
        i64::try_from(self.dedup_window.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Takes a pull request off the commit queue if `heads` is still the pair queued for it.
fn dequeue_pr_commits(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    pr_id: i64,
    heads: &PrHeads,
) -> Result<(), StoreError> {
    tx.exec(
        "DELETE FROM pr_commit_queue WHERE project_key = $1 AND repo_slug = $2 AND pr_id = $3
         AND source_commit = $4 AND target_commit IS NOT DISTINCT FROM $5",
        &vals![
            repo.project_key,
            repo.slug,
            pr_id,
            heads.source,
            heads.target
        ],
    )?;
    Ok(())
}

/// An identity (pull-request, repository, project, user or activity id) as a signed 64-bit
/// integer, losslessly or not at all: two ids must never collapse into one row.
fn id_of(what: &str, n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| {
        StoreError::new(format!(
            "{what} id {n} is beyond the 64-bit signed range Bitbucket ids have; refused"
        ))
    })
}

/// The upsert of a commit row into `commits` or `pr_commits`: the columns after the key.
const COMMIT_COLUMNS: &str =
    "author_name, author_email, author_slug, author_timestamp, committer_name,
    committer_email, committer_slug, committer_timestamp, parent_count, summary";

/// `excluded.` assignments for every column of `columns` (a comma-separated list).
fn set_excluded(columns: &str) -> String {
    columns
        .split(',')
        .map(str::trim)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A commit's columns after the key, as [`COMMIT_COLUMNS`] names them.
fn commit_values(c: &Commit) -> [Value; 10] {
    let committer = c.committer.as_ref();
    vals![
        c.author.name,
        c.author.email,
        c.author.user_slug,
        c.author_timestamp,
        committer.map(|p| &p.name),
        committer.and_then(|p| p.email.as_ref()),
        committer.and_then(|p| p.user_slug.as_ref()),
        c.committer_timestamp,
        c.parent_count,
        c.summary
    ]
}

impl<B: Backend> RecordSink for Records<B> {
    fn projects(&self, items: &[Project]) -> Result<(), StoreError> {
        self.write_each(items, |tx, p| {
            tx.exec(
                    "INSERT INTO projects (key, id, name, description, public, kind, url) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (key) DO UPDATE SET id = COALESCE(excluded.id, projects.id), name = excluded.name,
                     description = excluded.description, public = excluded.public, kind = excluded.kind, url = excluded.url",
                    &vals![p.key, known_id(p.id), p.name, p.description, p.public, shape::project_kind(p.kind), p.url],
                )
                .map(drop)
        })
    }

    fn repos(&self, items: &[Repo]) -> Result<(), StoreError> {
        let now = now_ms();
        self.write_each(items, |tx, r| {
            move_repo_by_id(tx, known_id(r.id).unwrap_or(0), &r.repo_ref)?;
            upsert_repo(tx, r, now)
        })
    }

    fn repos_gone(&self, listed_since: i64) -> Result<Vec<(RepoRef, u64)>, StoreError> {
        self.backend.write(|tx| {
            let gone = tx
                .rows(
                    "SELECT project_key, slug, id FROM repos
                     WHERE deleted = 0 AND (listed_at IS NULL OR listed_at < $1) ORDER BY project_key, slug",
                    &vals![listed_since],
                )?
                .into_iter()
                .map(|r| {
                    let id = col(&r, 2).int().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                    let mut r = r.into_iter();
                    let project_key = r.next().and_then(Value::into_text).unwrap_or_default();
                    let slug = r.next().and_then(Value::into_text).unwrap_or_default();
                    (RepoRef { project_key, slug }, id)
                })
                .collect();
            tx.exec(
                "UPDATE repos SET deleted = 1 WHERE deleted = 0 AND (listed_at IS NULL OR listed_at < $1)",
                &vals![listed_since],
            )?;
            Ok(gone)
        })
    }

    fn users(&self, items: &[User]) -> Result<(), StoreError> {
        self.write_each(items, |tx, u| {
            tx.exec(
                    "INSERT INTO users (slug, id, name, display_name, email, active, kind) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (slug) DO UPDATE SET id = COALESCE(excluded.id, users.id), name = excluded.name,
                     display_name = excluded.display_name, email = excluded.email, active = excluded.active,
                     kind = excluded.kind",
                    &vals![u.slug, u.id.and_then(known_id), u.name, u.display_name, u.email,
                        u.active, shape::user_kind(u.kind)],
                )
                .map(drop)
        })
    }

    fn pull_requests(&self, items: &[PullRequest]) -> Result<(), StoreError> {
        self.write_each(items, upsert_pull_request)
    }

    fn commits(&self, repo: &RepoRef, batch: &CommitBatch) -> Result<(), StoreError> {
        let upsert = format!(
            "INSERT INTO commits (project_key, repo_slug, id, {COMMIT_COLUMNS}, pass_head)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (project_key, repo_slug, id) DO UPDATE SET {}, pass_head = excluded.pass_head",
            set_excluded(COMMIT_COLUMNS)
        );
        self.backend.write(|tx| {
            for c in &batch.commits {
                let mut params = vals![c.repo.project_key, c.repo.slug, c.id].to_vec();
                params.extend(commit_values(c));
                params.push(batch.head.to_value());
                tx.exec(&upsert, &params)?;
            }
            if batch.complete {
                tx.exec(
                    "INSERT INTO history_heads (project_key, repo_slug, head) VALUES ($1, $2, $3)
                     ON CONFLICT (project_key, repo_slug) DO UPDATE SET head = excluded.head",
                    &vals![repo.project_key, repo.slug, batch.head],
                )?;
                match (&batch.head, batch.pass) {
                    (None, _) => {
                        tx.exec(
                            "DELETE FROM commits WHERE project_key = $1 AND repo_slug = $2",
                            &vals![repo.project_key, repo.slug],
                        )?;
                    }
                    (Some(head), CommitPassKind::Rewritten) => {
                        tx.exec(
                            "DELETE FROM commits WHERE project_key = $1 AND repo_slug = $2
                             AND pass_head IS DISTINCT FROM $3",
                            &vals![repo.project_key, repo.slug, head],
                        )?;
                    }
                    _ => {}
                }
                if batch.head.is_none() || batch.pass == CommitPassKind::Rewritten {
                    // The builds of commits gone from the branch go with them, unless a pull
                    // request's head or one of its commits still names the commit.
                    tx.exec(
                        "DELETE FROM builds WHERE project_key = $1 AND repo_slug = $2
                         AND commit_id NOT IN (SELECT id FROM commits WHERE project_key = $1 AND repo_slug = $2)
                         AND commit_id NOT IN (SELECT source_commit FROM pull_requests
                             WHERE project_key = $1 AND repo_slug = $2 AND source_commit IS NOT NULL)
                         AND commit_id NOT IN (SELECT commit_id FROM pr_commits
                             WHERE project_key = $1 AND repo_slug = $2)",
                        &vals![repo.project_key, repo.slug],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn ref_page(&self, repo: &RepoRef, page: &RefPage<'_>) -> Result<(), StoreError> {
        let RefPage {
            since,
            branches,
            tags,
            ends,
        } = *page;
        let keep = self.window_ms();
        self.backend.write(|tx| {
            refs::page(tx, repo, since, branches, tags)?;
            match ends {
                Some(kind) => refs::listed(tx, repo, kind, since, keep),
                None => Ok(()),
            }
        })
    }

    fn default_branch_head(&self, repo: &RepoRef) -> Result<Option<String>, StoreError> {
        self.backend.read(|tx| {
            Ok(tx
                .row(
                    "SELECT head FROM history_heads WHERE project_key = $1 AND repo_slug = $2",
                    &vals![repo.project_key, repo.slug],
                )?
                .and_then(|r| r.into_iter().next())
                .and_then(Value::into_text))
        })
    }

    fn want_builds(&self, repo: &RepoRef, commits: &[String]) -> Result<(), StoreError> {
        self.write_each(commits, |tx, c| {
            tx.exec(
                "INSERT INTO build_queue (project_key, repo_slug, commit_id, seq)
                     VALUES ($1, $2, $3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM build_queue))
                     ON CONFLICT DO NOTHING",
                &vals![repo.project_key, repo.slug, c],
            )
            .map(drop)
        })
    }

    fn build_queue(&self, repo: &RepoRef) -> Result<Vec<String>, StoreError> {
        self.backend.read(|tx| {
            Ok(tx
                .rows(
                    "SELECT commit_id FROM build_queue WHERE project_key = $1 AND repo_slug = $2 ORDER BY seq",
                    &vals![repo.project_key, repo.slug],
                )?
                .into_iter()
                .filter_map(|r| r.into_iter().next().and_then(Value::into_text))
                .collect())
        })
    }

    fn builds(
        &self,
        repo: &RepoRef,
        asked: &[String],
        builds: &[Build],
        keep_queued: &[String],
    ) -> Result<(), StoreError> {
        self.backend.write(|tx| {
            for c in asked {
                tx.exec(
                    "DELETE FROM builds WHERE project_key = $1 AND repo_slug = $2 AND commit_id = $3",
                    &vals![repo.project_key, repo.slug, c],
                )?;
                if !keep_queued.contains(c) {
                    tx.exec(
                        "DELETE FROM build_queue WHERE project_key = $1 AND repo_slug = $2 AND commit_id = $3",
                        &vals![repo.project_key, repo.slug, c],
                    )?;
                }
            }
            for b in builds {
                let tests = b.test_results.as_ref();
                tx.exec(
                    "INSERT INTO builds (project_key, repo_slug, commit_id, key, name, state, state_other,
                     url, created_at, updated_at, duration_ms, build_number, parent, ref_id, tests_successful,
                     tests_failed, tests_skipped)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                     ON CONFLICT (project_key, repo_slug, commit_id, key) DO UPDATE SET name = excluded.name,
                     state = excluded.state, state_other = excluded.state_other, url = excluded.url,
                     created_at = excluded.created_at, updated_at = excluded.updated_at,
                     duration_ms = excluded.duration_ms, build_number = excluded.build_number,
                     parent = excluded.parent, ref_id = excluded.ref_id,
                     tests_successful = excluded.tests_successful, tests_failed = excluded.tests_failed,
                     tests_skipped = excluded.tests_skipped",
                    &vals![
                        repo.project_key, repo.slug, b.commit_id, b.key, b.name, shape::build_state(b.state),
                        b.state_other, b.url, b.created_at, b.updated_at, b.duration_ms, b.build_number,
                        b.parent, b.ref_id, tests.map(|t| t.successful), tests.map(|t| t.failed),
                        tests.map(|t| t.skipped)
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn want_pr_commits(&self, repo: &RepoRef, prs: &[PrHeads]) -> Result<(), StoreError> {
        self.write_each(prs, |tx, p| {
            tx.exec(
                    "INSERT INTO pr_commit_queue (project_key, repo_slug, pr_id, source_commit, target_commit)
                     SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS TEXT), CAST($5 AS TEXT)
                     WHERE NOT EXISTS (SELECT 1 FROM pull_requests
                         WHERE project_key = $1 AND repo_slug = $2 AND id = $3
                         AND commits_source IS NOT DISTINCT FROM $4 AND commits_target IS NOT DISTINCT FROM $5)
                     ON CONFLICT (project_key, repo_slug, pr_id) DO UPDATE SET
                     source_commit = excluded.source_commit, target_commit = excluded.target_commit",
                    &vals![repo.project_key, repo.slug, id_of("pull request", p.id)?, p.source, p.target],
                )
                .map(drop)
        })
    }

    fn pr_commit_queue(&self, repo: &RepoRef) -> Result<Vec<PrHeads>, StoreError> {
        self.backend.read(|tx| {
            Ok(tx
                .rows(
                    "SELECT pr_id, source_commit, target_commit FROM pr_commit_queue
                     WHERE project_key = $1 AND repo_slug = $2 ORDER BY pr_id",
                    &vals![repo.project_key, repo.slug],
                )?
                .into_iter()
                .map(|r| {
                    let id = col(&r, 0)
                        .int()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0);
                    let mut r = r.into_iter().skip(1);
                    PrHeads {
                        id,
                        source: r.next().and_then(Value::into_text).unwrap_or_default(),
                        target: r.next().and_then(Value::into_text),
                    }
                })
                .collect())
        })
    }

    fn pr_commits_page(
        &self,
        repo: &RepoRef,
        page: &PrCommitsPage<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let PrCommitsPage {
            heads,
            since,
            position,
            commits,
            ends,
        } = *page;
        let pr_id = id_of("pull request", heads.id)?;
        let insert = format!(
            "INSERT INTO pr_commits (project_key, repo_slug, pr_id, commit_id, position, written_at, {COMMIT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (project_key, repo_slug, pr_id, commit_id) DO UPDATE SET position = excluded.position,
             written_at = excluded.written_at, {}",
            set_excluded(COMMIT_COLUMNS)
        );
        self.backend.write(|tx| {
            for (i, c) in commits.iter().enumerate() {
                let position = position.saturating_add(u64::try_from(i).unwrap_or(u64::MAX));
                let mut params =
                    vals![repo.project_key, repo.slug, pr_id, c.id, position, since].to_vec();
                params.extend(commit_values(c));
                tx.exec(&insert, &params)?;
            }
            if !ends {
                return Ok(None);
            }
            tx.exec(
                "DELETE FROM pr_commits WHERE project_key = $1 AND repo_slug = $2 AND pr_id = $3
                 AND (written_at IS NULL OR written_at < $4)",
                &vals![repo.project_key, repo.slug, pr_id, since],
            )?;
            let first = tx
                .row(
                    "SELECT MIN(author_timestamp) FROM pr_commits
                     WHERE project_key = $1 AND repo_slug = $2 AND pr_id = $3",
                    &vals![repo.project_key, repo.slug, pr_id],
                )?
                .and_then(|r| col(&r, 0).int());
            tx.exec(
                "UPDATE pull_requests SET first_commit_at = $4, commits_source = $5, commits_target = $6
                 WHERE project_key = $1 AND repo_slug = $2 AND id = $3",
                &vals![repo.project_key, repo.slug, pr_id, first, heads.source, heads.target],
            )?;
            dequeue_pr_commits(tx, repo, pr_id, heads)?;
            Ok(first)
        })
    }

    fn forget_pr_commits(&self, repo: &RepoRef, heads: &PrHeads) -> Result<(), StoreError> {
        let pr_id = id_of("pull request", heads.id)?;
        self.backend
            .write(|tx| dequeue_pr_commits(tx, repo, pr_id, heads))
    }

    fn want_refresh(&self, repo: &RepoRef, pr: Option<u64>) -> Result<i64, StoreError> {
        let pr_id = pr
            .map(|id| id_of("pull request", id))
            .transpose()?
            .unwrap_or(-1);
        let now = now_ms();
        self.backend.write(|tx| {
            tx.exec(
                "INSERT INTO refresh_queue (project_key, repo_slug, pr_id, queued_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project_key, repo_slug, pr_id) DO UPDATE SET queued_at = excluded.queued_at",
                &vals![repo.project_key, repo.slug, pr_id, now],
            )?;
            Ok(now)
        })
    }

    fn refreshes(&self) -> Result<Vec<Refresh>, StoreError> {
        self.backend.read(|tx| {
            Ok(tx
                .rows(
                    "SELECT project_key, repo_slug, pr_id, queued_at FROM refresh_queue
                     ORDER BY queued_at, project_key, repo_slug, pr_id",
                    &[],
                )?
                .into_iter()
                .map(|r| {
                    let pr = col(&r, 2).int().and_then(|n| u64::try_from(n).ok());
                    let queued_at = col(&r, 3).int().unwrap_or(0);
                    let mut r = r.into_iter();
                    Refresh {
                        repo: RepoRef {
                            project_key: r.next().and_then(Value::into_text).unwrap_or_default(),
                            slug: r.next().and_then(Value::into_text).unwrap_or_default(),
                        },
                        pr,
                        queued_at,
                    }
                })
                .collect())
        })
    }

    fn refreshed(&self, refresh: &Refresh) -> Result<(), StoreError> {
        let pr_id = refresh
            .pr
            .map(|id| id_of("pull request", id))
            .transpose()?
            .unwrap_or(-1);
        self.backend.write(|tx| {
            tx.exec(
                "DELETE FROM refresh_queue WHERE project_key = $1 AND repo_slug = $2 AND pr_id = $3
                 AND queued_at = $4",
                &vals![
                    refresh.repo.project_key,
                    refresh.repo.slug,
                    pr_id,
                    refresh.queued_at
                ],
            )?;
            Ok(())
        })
    }

    fn first_commit_at(
        &self,
        repo: &RepoRef,
        ids: &[u64],
    ) -> Result<std::collections::HashMap<u64, i64>, StoreError> {
        self.backend.read(|tx| {
            let mut found = std::collections::HashMap::new();
            for &id in ids {
                let at = tx
                    .row(
                        "SELECT first_commit_at FROM pull_requests WHERE project_key = $1 AND repo_slug = $2 AND id = $3",
                        &vals![repo.project_key, repo.slug, id_of("pull request", id)?],
                    )?
                    .and_then(|r| col(&r, 0).int());
                if let Some(at) = at {
                    found.insert(id, at);
                }
            }
            Ok(found)
        })
    }

    fn repository_delivery(&self, d: &RepositoryDelivery<'_>) -> Result<Stored, StoreError> {
        let window = self.window_ms();
        let now = now_ms();
        self.backend.write(|tx| {
            if let Some(id) = d.request_id
                && !mark_delivery(tx, id, d.received_at, window)?
            {
                return Ok(Stored::Duplicate);
            }
            let repo = &d.repo.repo_ref;
            // By id, as a listing does: a rename's key before is only a hint (a delivery retried
            // after a sync already moved the repository, and another took its old key, must not
            // move that other one's records).
            move_repo_by_id(tx, known_id(d.repo.id).unwrap_or(0), repo)?;
            upsert_repo(tx, d.repo, now)?;
            if let RepositoryEvent::RefsChanged(changes) = d.event {
                let mut unplaced = 0;
                for c in changes {
                    if refs::apply_change(tx, repo, c, d.occurred_at, now)? == refs::Placed::Unplaced {
                        unplaced += 1;
                    }
                }
                if unplaced > 0 {
                    tracing::info!(
                        repo = %format!("{}/{}", repo.project_key, repo.slug),
                        unplaced,
                        "a push's changes arrived out of order and could not be placed: the repository's refs are listed on its next pass"
                    );
                }
            }
            Ok(Stored::New)
        })
    }

    fn delivery(&self, d: &Delivery<'_>) -> Result<Stored, StoreError> {
        self.backend.deliver(d, self.window_ms())
    }
}

#[cfg(test)]
mod tests;
