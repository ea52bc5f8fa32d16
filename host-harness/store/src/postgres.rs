//! PostgreSQL connections (feature `postgres`): a connection pool, versioned schema migrations
//! applied on start, and the key-value store on it ([`PgKv`]).
//!
//! Every process of a deployment (workers, serve replicas) opens its own pool on the same
//! database. Migrations run under a PostgreSQL advisory lock, so processes starting together
//! apply each version once; refinery records the versions applied, and refuses to start a
//! process whose migrations disagree with what the database says was applied.

use bbdc_host::storage::{KvStore, StoreError};

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

/// [`KvStore`] on PostgreSQL: table `connector_kv`, shared by every process on the database.
///
/// Compare-and-swap is one statement (an `INSERT ... ON CONFLICT DO NOTHING` for an absent key,
/// an `UPDATE ... WHERE value = expected` otherwise), which PostgreSQL makes atomic at its
/// default isolation: two workers swapping the same key never both succeed.
pub struct PgKv {
    pool: PgPool,
}

impl PgKv {
    /// Connects to `url` and applies the store's migrations.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        Self::on(pool(url, options)?)
    }

    /// The store on an existing pool, after applying its migrations.
    pub fn on(pool: PgPool) -> Result<Self, StoreError> {
        migrate(
            &pool,
            embedded::migrations::runner(),
            "bbdc_kv_schema_history",
        )?;
        Ok(Self { pool })
    }

    fn conn(&self) -> Result<PgConnection, StoreError> {
        Ok(self.pool.get()?)
    }
}

const UPSERT: &str = "INSERT INTO connector_kv (tenant, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value";

impl KvStore for PgKv {
    fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT value FROM connector_kv WHERE tenant = $1 AND key = $2",
            &[&tenant, &key],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn()?.execute(UPSERT, &[&tenant, &key, &value])?;
        Ok(())
    }

    fn delete(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM connector_kv WHERE tenant = $1 AND key = $2",
            &[&tenant, &key],
        )?;
        Ok(())
    }

    fn compare_and_swap(
        &self,
        tenant: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let changed = match expected {
            None => conn.execute(
                "INSERT INTO connector_kv (tenant, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, key) DO NOTHING",
                &[&tenant, &key, &value],
            )?,
            Some(old) => conn.execute(
                "UPDATE connector_kv SET value = $3 WHERE tenant = $1 AND key = $2 AND value = $4",
                &[&tenant, &key, &value, &old],
            )?,
        };
        Ok(changed == 1)
    }

    /// One round trip for all the keys.
    fn get_many(&self, tenant: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.conn()?.query(
            "SELECT key, value FROM connector_kv WHERE tenant = $1 AND key = ANY($2)",
            &[&tenant, &keys],
        )?;
        let mut found: std::collections::HashMap<String, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    /// One transaction for all the entries: they are stored together or not at all.
    fn set_many(&self, tenant: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let upsert = tx.prepare(UPSERT)?;
        for (key, value) in entries {
            tx.execute(&upsert, &[&tenant, key, value])?;
        }
        tx.commit()?;
        Ok(())
    }
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
        migrate(
            &pool,
            embedded::migrations::runner(),
            "bbdc_kv_schema_history",
        )?;
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

    fn store(pg: &TestPostgres) -> PgKv {
        PgKv::connect(&pg.url(), &PoolOptions::default()).expect("connects and migrates")
    }

    #[test]
    fn keys_stay_in_their_tenant_and_many_read_in_order() {
        let pg = TestPostgres::start_or_panic();
        let kv = store(&pg);
        kv.set("a", "k1", b"old").unwrap();
        kv.set_many(
            "a",
            &[("k1".into(), b"1".to_vec()), ("k3".into(), b"3".to_vec())],
        )
        .unwrap();
        let keys: Vec<String> = ["k3", "k2", "k1"].map(String::from).to_vec();
        assert_eq!(
            kv.get_many("a", &keys).unwrap(),
            vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]
        );
        assert_eq!(kv.get_many("b", &keys).unwrap(), vec![None, None, None]);
        kv.delete("b", "k1").unwrap();
        assert_eq!(kv.get("a", "k1").unwrap().as_deref(), Some(&b"1"[..]));
        kv.delete("a", "k1").unwrap();
        assert_eq!(kv.get("a", "k1").unwrap(), None);
    }

    /// A session opened while the database was read-only stays read-only for its whole life:
    /// such a connection is never lent again, so writes succeed as soon as the database is
    /// writable (on main a worker kept refusing writes for minutes). While the database is
    /// read-only, a write fails as an unreachable database does: the caller waits, and counts
    /// no failure against the work.
    #[test]
    fn a_connection_opened_while_the_database_was_read_only_is_not_lent_again() {
        let pg = TestPostgres::start_or_panic();
        let url = pg.create_database("ro").expect("a database");
        let options = PoolOptions {
            max_size: 1,
            connect_timeout: std::time::Duration::from_secs(1),
            ..PoolOptions::default()
        };
        let kv = PgKv::connect(&url, &options).expect("connects and migrates");
        kv.set("t", "k", b"before").expect("writable");
        pg.psql(
            "postgres",
            "ALTER DATABASE ro SET default_transaction_read_only = on",
        )
        .expect("read-only");
        // Sessions opened from now on are read-only; end the pool's writable one.
        pg.psql(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'ro'",
        )
        .expect("sessions ended");
        let refused = kv.set("t", "k", b"during").expect_err("read-only");
        assert!(is_unreachable(&refused), "{refused:?}");
        pg.psql(
            "postgres",
            "ALTER DATABASE ro RESET default_transaction_read_only",
        )
        .expect("writable again");
        kv.set("t", "k", b"after")
            .expect("written at once, on a fresh session");
        assert_eq!(kv.get("t", "k").unwrap().as_deref(), Some(&b"after"[..]));
    }

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

    #[test]
    fn compare_and_swap_checks_the_current_value() {
        let pg = TestPostgres::start_or_panic();
        let kv = store(&pg);
        assert!(kv.compare_and_swap("t", "k", None, b"1").unwrap());
        assert!(!kv.compare_and_swap("t", "k", None, b"2").unwrap());
        assert!(!kv.compare_and_swap("t", "k", Some(b"0"), b"2").unwrap());
        assert!(kv.compare_and_swap("t", "k", Some(b"1"), b"2").unwrap());
        assert_eq!(kv.get("t", "k").unwrap().as_deref(), Some(&b"2"[..]));
    }

    /// Two processes' pools swapping one counter: every increment lands exactly once, because
    /// a swap from a value another already replaced fails and is retried.
    #[test]
    fn concurrent_swaps_from_separate_pools_never_both_win() {
        let pg = TestPostgres::start_or_panic();
        let stores = [store(&pg), store(&pg)];
        std::thread::scope(|s| {
            for kv in &stores {
                s.spawn(move || {
                    for _ in 0..100 {
                        loop {
                            let old = kv.get("t", "n").unwrap();
                            let n = old
                                .as_deref()
                                .map(|b| String::from_utf8_lossy(b).parse::<u32>().unwrap())
                                .unwrap_or(0);
                            let new = (n + 1).to_string();
                            if kv
                                .compare_and_swap("t", "n", old.as_deref(), new.as_bytes())
                                .unwrap()
                            {
                                break;
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(
            stores[0].get("t", "n").unwrap().as_deref(),
            Some(&b"200"[..])
        );
    }

    #[test]
    fn migrations_are_applied_once_and_recorded() {
        let pg = TestPostgres::start_or_panic();
        store(&pg).set("t", "k", b"v").unwrap();
        // A second process starting on the same database finds the schema there and keeps
        // the data.
        assert_eq!(
            store(&pg).get("t", "k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            pg.psql("postgres", "SELECT count(*) FROM bbdc_kv_schema_history")
                .unwrap(),
            embedded::migrations::runner()
                .get_migrations()
                .len()
                .to_string()
        );
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

    #[test]
    fn a_database_that_is_down_fails_with_a_store_error() {
        let pg = TestPostgres::start_or_panic();
        let url = pg.url();
        let kv = store(&pg);
        kv.set("t", "k", b"v").unwrap();
        drop(pg);
        let options = PoolOptions {
            connect_timeout: std::time::Duration::from_secs(1),
            ..PoolOptions::default()
        };
        let down = PgKv {
            pool: pool(&url, &options).unwrap(),
        };
        let e = down.get("t", "k").expect_err("no server");
        assert!(bbdc_host::errors::chain(&e).contains("PostgreSQL"), "{e}");
        assert!(
            is_unreachable(&e),
            "a server that is down is unreachable: {e:?}"
        );
    }
}
