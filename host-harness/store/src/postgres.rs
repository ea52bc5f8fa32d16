//! PostgreSQL connections: a connection pool, versioned schema migrations applied on start, and
//! the shared rate budget ([`PgBudget`]). The key-value store on them is [`crate::kv::PgKv`].
//!
//! Every process of a deployment (workers, serve replicas) opens its own pool on the same
//! database. Migrations run under a PostgreSQL advisory lock, so processes starting together
//! apply each version once; refinery records the versions applied, and refuses to start a
//! process whose migrations disagree with what the database says was applied.

use bbdc_host::storage::StoreError;

/// A pool of connections to one database.
pub type PgPool = r2d2::Pool<Manager>;

/// A connection borrowed from a [`PgPool`].
pub type PgConnection = r2d2::PooledConnection<Manager>;

/// Opens the pool's connections and checks each before lending it: a connection whose session
/// is read-only is dropped rather than reused. A database that was read-only for a while (a
/// failover, a standby promoted, `default_transaction_read_only` set and cleared) leaves
/// sessions opened meanwhile read-only for their whole life; lending them again would refuse
/// every write long after the database became writable. Checked on every loan, the pool heals
/// within one loan of the database recovering.
#[derive(Debug)]
pub struct Manager(r2d2_postgres::PostgresConnectionManager<postgres::NoTls>);

/// Why the pool could not lend a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// PostgreSQL (or the network) failed.
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    /// The session is read-only: the database refuses writes on it.
    #[error("the connection's session is read-only (a standby, or default_transaction_read_only)")]
    ReadOnly,
}

impl r2d2::ManageConnection for Manager {
    type Connection = postgres::Client;
    type Error = ConnectionError;

    fn connect(&self) -> Result<postgres::Client, ConnectionError> {
        Ok(self.0.connect()?)
    }

    fn is_valid(&self, conn: &mut postgres::Client) -> Result<(), ConnectionError> {
        let read_only = conn
            .simple_query("SHOW transaction_read_only")?
            .into_iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "on"),
                _ => None,
            })
            .unwrap_or(false);
        if read_only {
            return Err(ConnectionError::ReadOnly);
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut postgres::Client) -> bool {
        conn.is_closed()
    }
}

/// How a pool connects.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections at most.
    pub max_size: u32,
    /// How long a caller waits for a free connection (or for the server to answer a new one)
    /// before the operation fails with a [`StoreError`].
    pub connect_timeout: std::time::Duration,
    /// The schema the connections work in (created when missing): each tenant's records live in
    /// a schema of their own. `None`: the database's default (`public`). Only lowercase ASCII
    /// letters, digits and `_`, so that it needs no quoting.
    pub schema: Option<String>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connect_timeout: std::time::Duration::from_secs(10),
            schema: None,
        }
    }
}

/// Opens a pool on `url` (`postgres://user@host:port/db?...`, libpq's URL form). The pool is
/// lazy: a server that is down fails the first operation, not this call, so a process can start
/// before its database and recover when the database does.
pub fn pool(url: &str, options: &PoolOptions) -> Result<PgPool, StoreError> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| StoreError::caused_by("PostgreSQL URL", e))?;
    config.connect_timeout(options.connect_timeout);
    // libpq's convention, which the client crate does not follow on its own: a password kept
    // out of the URL (and so out of the process list) in `PGPASSWORD`.
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
        && !password.is_empty()
    {
        config.password(password);
    }
    if let Some(schema) = &options.schema {
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::new(format!(
                "schema {schema:?}: only lowercase ASCII letters, digits and _"
            )));
        }
        config.options(&format!("-c search_path={schema}"));
    }
    let manager = Manager(r2d2_postgres::PostgresConnectionManager::new(
        config,
        postgres::NoTls,
    ));
    Ok(r2d2::Pool::builder()
        .max_size(options.max_size)
        // A worker serving many tenants keeps connections only for those it served lately:
        // idle ones close after 30 s instead of r2d2's 10 minutes.
        .min_idle(Some(0))
        .idle_timeout(Some(std::time::Duration::from_secs(30)))
        .connection_timeout(options.connect_timeout)
        // Every loan is checked (`Manager::is_valid`): a read-only session is dropped.
        .test_on_check_out(true)
        .build_unchecked(manager))
}

/// Whether `e` (or an error it wraps) says the database could not be reached (no connection,
/// a connection cut, the server shutting down) or cannot write for now (a read-only database,
/// during a failover), as opposed to the database refusing what was asked: a caller waits and
/// tries again for the first, and treats the second as a failure.
pub fn is_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<r2d2::Error>().is_some() {
            return true;
        }
        if let Some(pg) = e.downcast_ref::<postgres::Error>() {
            return match pg.as_db_error() {
                None => true,
                Some(db) => {
                    let code = db.code().code();
                    // 25006: read_only_sql_transaction, a database that cannot write now.
                    code.starts_with("08") || code.starts_with("57P") || code == "25006"
                }
            };
        }
        next = e.source();
    }
    false
}

/// Whether `db` names a PostgreSQL database (a `postgres://` or `postgresql://` URL) rather than
/// a SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// Applies `runner`'s migrations that the database lacks, recording them in `history_table`,
/// under an advisory lock so that processes starting together apply each once. The pool's
/// schema, if any, is created first, and holds the tables and their history.
pub fn migrate(
    pool: &PgPool,
    mut runner: refinery::Runner,
    history_table: &str,
) -> Result<(), StoreError> {
    let mut conn = pool.get()?;
    // One lock for every migration set of the project: a key no other program uses.
    const MIGRATION_LOCK: i64 = 0x6262_6463_6d69_6772; // "bbdcmigr"
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let migrated = (|| {
        let schema: Option<String> = conn
            .query_one("SELECT current_setting('search_path')", &[])?
            .get(0);
        // One schema named (the pool's): create it, quoted. The server's default path
        // (`"$user", public`) or a list is left as it is.
        if let Some(schema) = schema.filter(|s| !s.is_empty() && !s.contains([',', '$', '"'])) {
            let quoted = format!("\"{}\"", schema.trim());
            conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))?;
        }
        runner
            .set_migration_table_name(history_table)
            .run(&mut *conn)
            .map(|_| ())
            .map_err(|e| StoreError::caused_by(format!("migrating {history_table}"), e))
    })();
    // Released whatever happened, or the connection goes back to the pool holding it and every
    // other process's migration waits for ever.
    let unlocked = conn.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    migrated?;
    unlocked?;
    Ok(())
}

mod embedded {
    refinery::embed_migrations!("migrations/kv");
}

/// Applies the migrations of the key-value store ([`crate::kv::PgKv`]) and the shared rate
/// budget ([`PgBudget`]), `migrations/kv`.
pub fn migrate_kv(pool: &PgPool) -> Result<(), StoreError> {
    migrate(
        pool,
        embedded::migrations::runner(),
        "bbdc_kv_schema_history",
    )
}

/// The migrations [`migrate_kv`] applies, in all.
/// The migrations [`migrate_kv`] applies, in all.
#[cfg(test)]
pub(crate) fn kv_migrations() -> usize {
    embedded::migrations::runner().get_migrations().len()
}

/// [`SharedBudget`](bbdc_host::policy::SharedBudget) on PostgreSQL: table `rate_budgets`, one
/// token bucket per tenant, taken from in one atomic statement and refilled by the database's
/// clock (so the machines' clocks do not matter). Created with the key-value store's
/// migrations; a bucket starts full.
pub struct PgBudget {
    pool: PgPool,
}

impl PgBudget {
    /// The budget on `pool`, after applying the store's migrations (which create its table).
    pub fn on(pool: PgPool) -> Result<Self, StoreError> {
        migrate_kv(&pool)?;
        Ok(Self { pool })
    }
}

impl bbdc_host::policy::SharedBudget for PgBudget {
    fn take(
        &self,
        tenant: &str,
        per_second: f64,
        burst: f64,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";
        let mut conn = self.pool.get()?;
        conn.execute(
            &format!(
                "INSERT INTO rate_budgets (tenant, tokens, refilled_at) VALUES ($1, $2, {NOW_MS})
                 ON CONFLICT DO NOTHING"
            ),
            &[&tenant, &burst],
        )?;
        // The row is locked by the update: concurrent takers queue on it, and each sees the
        // tokens the one before left.
        let row = conn.query_one(
            &format!(
                "WITH now AS (SELECT {NOW_MS} AS ms),
                 level AS (SELECT LEAST($3::FLOAT8,
                               tokens + GREATEST(0, now.ms - refilled_at)::FLOAT8 / 1000 * $2::FLOAT8) AS tokens,
                           now.ms FROM rate_budgets, now WHERE tenant = $1 FOR UPDATE OF rate_budgets)
                 UPDATE rate_budgets SET
                     tokens = CASE WHEN level.tokens >= 1 THEN level.tokens - 1 ELSE level.tokens END,
                     refilled_at = level.ms
                 FROM level WHERE tenant = $1
                 RETURNING level.tokens"
            ),
            &[&tenant, &per_second, &burst],
        )?;
        let level: f64 = row.get(0);
        if level >= 1.0 {
            return Ok(None);
        }
        let wait = (1.0 - level) / per_second.max(0.001);
        Ok(Some(
            std::time::Duration::try_from_secs_f64(wait).unwrap_or(std::time::Duration::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bbdc_test_postgres::TestPostgres;

    /// A database that answers and refuses is not unreachable: the caller fails the work
    /// instead of waiting for the database to come back.
    #[test]
    fn a_refusal_is_told_apart_from_an_unreachable_database() {
        let pg = TestPostgres::start_or_panic();
        let pool = pool(&pg.url(), &PoolOptions::default()).unwrap();
        let refused: StoreError = pool
            .get()
            .unwrap()
            .execute("SELECT 1 / 0", &[])
            .expect_err("division by zero")
            .into();
        assert!(!is_unreachable(&refused), "{refused:?}");
        assert!(!is_unreachable(&StoreError::new("no cause")));
    }

    /// Two processes' budgets (separate pools) sending from four threads for a while: together
    /// they never take more than the bucket's burst and its refill over the time they ran.
    #[test]
    fn a_shared_budget_holds_every_process_to_one_rate() {
        use bbdc_host::policy::SharedBudget;
        let pg = TestPostgres::start_or_panic();
        let budget = |pg: &TestPostgres| {
            PgBudget::on(pool(&pg.url(), &PoolOptions::default()).unwrap()).unwrap()
        };
        let budgets = [budget(&pg), budget(&pg)];
        let (rate, burst) = (40.0, 5.0);
        let taken = std::sync::atomic::AtomicU64::new(0);
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            for i in 0..4 {
                let (b, taken) = (&budgets[i % 2], &taken);
                s.spawn(move || {
                    while started.elapsed() < std::time::Duration::from_millis(1500) {
                        match b.take("t", rate, burst).unwrap() {
                            None => {
                                taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Some(wait) => std::thread::sleep(wait),
                        }
                    }
                });
            }
        });
        let elapsed = started.elapsed().as_secs_f64();
        let taken = taken.into_inner() as f64;
        assert!(
            taken <= burst + rate * elapsed + 1.0,
            "{taken} tokens in {elapsed:.2} s at {rate}/s with a burst of {burst}"
        );
        assert!(taken >= burst, "the burst is there: {taken}");
        // Another tenant's bucket is its own, and starts full.
        assert_eq!(budgets[0].take("other", rate, burst).unwrap(), None);
    }
}
