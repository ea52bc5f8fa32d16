//! The SQLite backend of [`Records`]: the embedded default, one file on one machine.

use super::{Backend, DeliveredReview, Delivery, Records, Stored, store_delivery};
use crate::sql::sqlite::{Durability, Lite, SqliteDb};
use crate::sql::{Database, Tx};
use bbdc_host::bindings::types::{PullRequest, ReviewChange};
use bbdc_host::storage::StoreError;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Mutex;

/// SQLite under [`Records`] (see [`super::SqliteRecords`]).
///
/// Deliveries are group-committed: each waits for a commit that holds it (so `Ok` still means
/// on disk, `synchronous = FULL`), but deliveries arriving while a commit is under way share the
/// next one. Whoever holds the connection commits everything queued, each delivery in its own
/// savepoint, so one delivery's failure never takes its neighbours with it, and a failed commit
/// fails every delivery it held (none of them answered 2xx, so Bitbucket retries each).
pub struct Sqlite {
    db: SqliteDb,
    /// Deliveries waiting for the next group commit.
    queued: Mutex<Vec<Queued>>,
}

/// A delivery waiting for a group commit, and where its result goes.
struct Queued {
    delivery: OwnedDelivery,
    window_ms: i64,
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

    fn borrowed(&self) -> Delivery<'_> {
        Delivery {
            request_id: self.request_id.as_deref(),
            received_at: self.received_at,
            pull_request: &self.pull_request,
            stale: self.stale,
            review: self
                .review
                .as_ref()
                .map(|(change, at)| DeliveredReview { change, at: *at }),
            deleted: self.deleted,
        }
    }
}

/// The record tables: the same statements as PostgreSQL's first migration (SQLite reads
/// `BIGINT` as its own integer). `CREATE ... IF NOT EXISTS`: a file keeps what it has, and
/// [`ADDED_COLUMNS`] brings an older file's tables up to date.
const SCHEMA: &str = include_str!("../../migrations/records/V1__record_tables.sql");

/// PostgreSQL's later migrations, in order, run on every open: each statement is idempotent
/// (`CREATE ... IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`, which [`apply_migration`] reads).
const LATER_MIGRATIONS: [&str; 1] = [include_str!(
    "../../migrations/records/V2__ordered_refs.sql"
)];

/// Runs a migration written for PostgreSQL: its statements one by one, comments dropped, and
/// `ALTER TABLE t ADD COLUMN IF NOT EXISTS c type` (which SQLite lacks) as "add the column
/// unless `t` has it".
fn apply_migration(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    for statement in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let words: Vec<&str> = statement.split_whitespace().collect();
        match words.as_slice() {
            [
                "ALTER",
                "TABLE",
                table,
                "ADD",
                "COLUMN",
                "IF",
                "NOT",
                "EXISTS",
                column,
                kind @ ..,
            ] => {
                add_column(conn, table, column, &kind.join(" "))?;
            }
            _ => conn.execute_batch(statement)?,
        }
    }
    Ok(())
}

/// Adds `column` to `table` unless it has it.
fn add_column(conn: &Connection, table: &str, column: &str, kind: &str) -> Result<(), StoreError> {
    let present: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |r| r.get(0),
    )?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
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

/// Adds each of [`ADDED_COLUMNS`] its table lacks.
fn add_missing_columns(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, kind) in ADDED_COLUMNS {
        add_column(conn, table, column, kind)?;
    }
    Ok(())
}

impl Records<Sqlite> {
    /// Opens (creating if needed) the record tables in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Records are the product: a commit is on disk before it is acknowledged.
        let db = SqliteDb::open(path, Durability::Full)?;
        {
            let conn = db.locked()?;
            conn.execute_batch(SCHEMA)?;
            add_missing_columns(&conn)?;
            for migration in LATER_MIGRATIONS {
                apply_migration(&conn, migration)?;
            }
        }
        Ok(Self::on(Sqlite {
            db,
            queued: Mutex::new(Vec::new()),
        }))
    }
}

impl Sqlite {
    /// Stores `group` in one transaction, each delivery in a savepoint, and sends each its
    /// result once the transaction is committed (or its failure).
    fn commit_group(conn: &mut Connection, group: Vec<Queued>) {
        let mut results = Vec::with_capacity(group.len());
        let committed = (|| -> Result<(), StoreError> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for q in &group {
                let mut sp = tx.savepoint()?;
                let r = store_delivery(&mut Lite(&sp), &q.delivery.borrowed(), q.window_ms);
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

impl Database for Sqlite {
    fn write<T>(
        &self,
        f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.write(f)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.read(f)
    }
}

impl Backend for Sqlite {
    fn deliver(&self, d: &Delivery<'_>, window_ms: i64) -> Result<Stored, StoreError> {
        let (result, stored) = std::sync::mpsc::sync_channel(1);
        self.queued
            .lock()
            .map_err(|_| StoreError::new("lock poisoned"))?
            .push(Queued {
                delivery: OwnedDelivery::of(d),
                window_ms,
                result,
            });
        let mut conn = self.db.locked()?;
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
        Self::commit_group(&mut conn, group);
        drop(conn);
        stored
            .recv()
            .map_err(|_| StoreError::new("the group commit ended without a result"))?
    }
}
