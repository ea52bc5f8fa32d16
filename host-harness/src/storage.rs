//! Connector storage: a key-value store namespaced per tenant. SQLite is the embedded default;
//! a platform plugs its own store by implementing [`KvStore`].

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// A tenant-namespaced key-value store. `tenant` is always supplied by the host, never by the
/// connector, which is what keeps one tenant's keys invisible to another.
pub trait KvStore: Send + Sync {
    /// Reads a key.
    fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a key.
    fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes a key.
    fn delete(&self, tenant: &str, key: &str) -> Result<(), StoreError>;
    /// Writes `value` only if the current value equals `expected` (`None`: absent).
    fn compare_and_swap(
        &self,
        tenant: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError>;
}

const UPSERT: &str = "INSERT INTO connector_kv (tenant, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value";
const SELECT: &str = "SELECT value FROM connector_kv WHERE tenant = ?1 AND key = ?2";

/// [`KvStore`] on SQLite.
pub struct SqliteKv {
    conn: Mutex<Connection>,
}

impl SqliteKv {
    /// Opens (creating if needed) a store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::init(conn)
    }

    /// A store that lives in memory (for one-off commands such as `bbdc check`).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS connector_kv (
                tenant TEXT NOT NULL,
                key    TEXT NOT NULL,
                value  BLOB NOT NULL,
                PRIMARY KEY (tenant, key)
            ) WITHOUT ROWID;",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError("connection lock poisoned".into()))
    }
}

impl KvStore for SqliteKv {
    fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn()?
            .query_row(SELECT, params![tenant, key], |r| r.get(0))
            .optional()?)
    }

    fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn()?.execute(UPSERT, params![tenant, key, value])?;
        Ok(())
    }

    fn delete(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM connector_kv WHERE tenant = ?1 AND key = ?2",
            params![tenant, key],
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
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<Vec<u8>> = tx
            .query_row(SELECT, params![tenant, key], |r| r.get(0))
            .optional()?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        tx.execute(UPSERT, params![tenant, key, value])?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_do_not_see_each_others_keys() {
        let kv = SqliteKv::in_memory().unwrap();
        kv.set("a", "k", b"1").unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("b", "k").unwrap(), None);
        kv.delete("b", "k").unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn compare_and_swap_checks_the_current_value() {
        let kv = SqliteKv::in_memory().unwrap();
        assert!(kv.compare_and_swap("t", "k", None, b"1").unwrap());
        assert!(!kv.compare_and_swap("t", "k", None, b"2").unwrap());
        assert!(!kv.compare_and_swap("t", "k", Some(b"0"), b"2").unwrap());
        assert!(kv.compare_and_swap("t", "k", Some(b"1"), b"2").unwrap());
        assert_eq!(kv.get("t", "k").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn persists_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        SqliteKv::open(&path).unwrap().set("t", "k", b"v").unwrap();
        assert_eq!(
            SqliteKv::open(&path)
                .unwrap()
                .get("t", "k")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
    }
}
