//! The connector's key-value store on SQLite ([`SqliteKv`]), namespaced per tenant, and the
//! owner-only creation of a SQLite file that the store and the records share. On PostgreSQL it is
//! [`crate::postgres::PgKv`].

use bbdc_host::storage::{KvStore, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const UPSERT: &str = "INSERT INTO connector_kv (tenant, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value";
const SELECT: &str = "SELECT value FROM connector_kv WHERE tenant = ?1 AND key = ?2";

/// Creates `path` empty and readable by its owner only (0600) unless it exists, so a database
/// holding a tenant's records and state is never world-readable; SQLite gives its `-wal` and
/// `-shm` files the database file's permissions. An existing file is left as it is.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// [`KvStore`] on SQLite.
pub struct SqliteKv {
    conn: Mutex<Connection>,
}

impl SqliteKv {
    /// Opens (creating if needed) a store in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path).map_err(|e| StoreError::caused_by(path.display().to_string(), e))?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // The connector's state (sync positions, fingerprints, webhook de-duplication) is
        // re-derivable: a power loss may roll back its last commits, never corrupt it, and WAL
        // keeps commit order, so state never runs ahead of the records it describes (those are
        // committed first, with a full sync). Without an fsync per key, a call's storage writes
        // cost microseconds instead of milliseconds.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
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
            .map_err(|_| StoreError::new("connection lock poisoned"))
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

    /// One lock and one prepared statement for all the keys.
    fn get_many(&self, tenant: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let conn = self.conn()?;
        let mut select = conn.prepare_cached(SELECT)?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(
                select
                    .query_row(params![tenant, key], |r| r.get(0))
                    .optional()?,
            );
        }
        Ok(values)
    }

    /// One transaction for all the entries: they are stored together or not at all.
    fn set_many(&self, tenant: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut upsert = tx.prepare_cached(UPSERT)?;
            for (key, value) in entries {
                upsert.execute(params![tenant, key, value])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn database_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let kv = SqliteKv::open(&path).unwrap();
        kv.set("t", "k", b"v").unwrap();
        for file in ["s.sqlite", "s.sqlite-wal"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file} is open to others: {mode:o}");
        }
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

    #[test]
    fn a_failure_says_what_was_being_done_and_carries_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("s.sqlite");
        let e = SqliteKv::open(&path).err().expect("no such directory");
        let cause = std::error::Error::source(&e).expect("the I/O error is the source");
        assert!(
            !e.to_string().contains(&cause.to_string()),
            "said once: {e}"
        );
        let text = bbdc_host::errors::chain(&e);
        assert!(
            text.starts_with(&format!("storage: {}: ", path.display()))
                && text.ends_with(&cause.to_string()),
            "{text}"
        );
    }

    #[test]
    fn tenants_keys_swaps_and_many_keys_keep_the_store_contract() {
        bbdc_host::storage::check_contract(&SqliteKv::in_memory().unwrap());
    }
}
