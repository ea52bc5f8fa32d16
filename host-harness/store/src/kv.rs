//! The connector's key-value store, namespaced per tenant: [`SqlKv`], written once over the SQL
//! seam ([`crate::sql`]), on SQLite ([`SqliteKv`]) or PostgreSQL ([`PgKv`]).
//!
//! Compare-and-swap is one statement (an `INSERT ... ON CONFLICT DO NOTHING` for an absent key,
//! an `UPDATE ... WHERE value = expected` otherwise), which both databases make atomic: two
//! processes swapping the same key never both succeed.

use crate::postgres::{PgPool, PoolOptions, migrate_kv};
use crate::sql::postgres::PgDb;
use crate::sql::sqlite::{Durability, SqliteDb};
use crate::sql::{Database, Value, col, vals};
use bbdc_host::storage::{KvStore, StoreError};
use std::path::Path;

/// [`KvStore`] on a SQL [`Database`]: table `connector_kv` (tenant, key, value).
pub struct SqlKv<D> {
    db: D,
}

/// [`KvStore`] on SQLite: the embedded default.
pub type SqliteKv = SqlKv<SqliteDb>;

/// [`KvStore`] on PostgreSQL, shared by every process on the database.
pub type PgKv = SqlKv<PgDb>;

/// The table on SQLite. On PostgreSQL, the migrations in `migrations/kv` make it (with `BYTEA`
/// for `BLOB`).
const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS connector_kv (
    tenant TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;";

impl SqliteKv {
    /// Opens (creating if needed) a store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // The connector's state (sync positions, fingerprints, webhook de-duplication) is
        // re-derivable: a power loss may roll back its last commits, never corrupt it, and WAL
        // keeps commit order, so state never runs ahead of the records it describes (those are
        // committed first, with a full sync).
        Self::with_table(SqliteDb::open(path, Durability::Normal)?)
    }

    /// A store that lives in memory (for one-off commands such as `bbdc check`).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with_table(SqliteDb::in_memory()?)
    }

    fn with_table(db: SqliteDb) -> Result<Self, StoreError> {
        db.locked()?.execute_batch(SQLITE_TABLE)?;
        Ok(Self { db })
    }
}

impl PgKv {
    /// Connects to `url` and applies the store's migrations.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        Self::on(crate::postgres::pool(url, options)?)
    }

    /// The store on an existing pool, after applying its migrations.
    pub fn on(pool: PgPool) -> Result<Self, StoreError> {
        migrate_kv(&pool)?;
        Ok(Self {
            db: PgDb::new(pool),
        })
    }
}

const SELECT: &str = "SELECT value FROM connector_kv WHERE tenant = $1 AND key = $2";
const UPSERT: &str = "INSERT INTO connector_kv (tenant, key, value) VALUES ($1, $2, $3)
     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value";

/// Keys read by one statement at most in [`KvStore::get_many`], well under either database's
/// limit on parameters.
const KEYS_PER_READ: usize = 500;

/// Refuses a tenant or key holding U+0000. PostgreSQL's text cannot hold it, and the seam stores
/// record text with U+FFFD in its place; for a key that would make two keys one. Refused on
/// both databases, so that a key means the same on either.
fn storable(tenant: &str, key: &str) -> Result<(), StoreError> {
    if tenant.contains('\0') || key.contains('\0') {
        return Err(StoreError::new(format!(
            "the key {:?} of tenant {tenant:?} holds U+0000, which the store cannot keep apart",
            key.replace('\0', "\\0")
        )));
    }
    Ok(())
}

impl<D: Database> KvStore for SqlKv<D> {
    fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        storable(tenant, key)?;
        let row = self.db.read(|tx| tx.row(SELECT, &vals![tenant, key]))?;
        Ok(row
            .and_then(|r| r.into_iter().next())
            .and_then(Value::into_bytes))
    }

    fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.set_many(tenant, &[(key.to_owned(), value.to_vec())])
    }

    fn delete(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        storable(tenant, key)?;
        self.db.write(|tx| {
            tx.exec(
                "DELETE FROM connector_kv WHERE tenant = $1 AND key = $2",
                &vals![tenant, key],
            )
        })?;
        Ok(())
    }

    fn compare_and_swap(
        &self,
        tenant: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        storable(tenant, key)?;
        let changed = self.db.write(|tx| match expected {
            None => tx.exec(
                "INSERT INTO connector_kv (tenant, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (tenant, key) DO NOTHING",
                &vals![tenant, key, value],
            ),
            Some(old) => tx.exec(
                "UPDATE connector_kv SET value = $3 WHERE tenant = $1 AND key = $2 AND value = $4",
                &vals![tenant, key, value, old],
            ),
        })?;
        Ok(changed == 1)
    }

    /// One statement for every [`KEYS_PER_READ`] keys, in one read.
    fn get_many(&self, tenant: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().try_for_each(|key| storable(tenant, key))?;
        let mut found = std::collections::HashMap::with_capacity(keys.len());
        self.db.read(|tx| {
            for chunk in keys.chunks(KEYS_PER_READ) {
                let wanted: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
                let sql = format!(
                    "SELECT key, value FROM connector_kv WHERE tenant = $1 AND key IN ({})",
                    wanted.join(", ")
                );
                let params: Vec<Value> = std::iter::once(Value::Text(tenant.to_owned()))
                    .chain(chunk.iter().map(|k| Value::Text(k.clone())))
                    .collect();
                for row in tx.rows(&sql, &params)? {
                    if let (Some(key), Some(value)) =
                        (col(&row, 0).text(), col(&row, 1).clone().into_bytes())
                    {
                        found.insert(key.to_owned(), value);
                    }
                }
            }
            Ok(())
        })?;
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// One transaction for all the entries: they are stored together or not at all.
    fn set_many(&self, tenant: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        entries
            .iter()
            .try_for_each(|(key, _)| storable(tenant, key))?;
        self.db.write(|tx| {
            entries
                .iter()
                .try_for_each(|(key, value)| tx.exec(UPSERT, &vals![tenant, key, value]).map(drop))
        })
    }
}

#[cfg(test)]
mod tests;
