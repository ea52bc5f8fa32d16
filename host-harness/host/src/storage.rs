//! Connector storage: a key-value store namespaced per tenant. SQLite ([`SqliteKv`], the
//! default `sqlite` feature) is the embedded default; a platform plugs its own store by
//! implementing [`KvStore`] and may turn the feature off.

#[cfg(feature = "sqlite")]
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// Why the store failed: what it was doing, with the underlying error as its
/// [`source`](std::error::Error::source) where there is one ([`crate::errors::chain`] writes
/// both).
#[derive(Debug, thiserror::Error)]
#[error("storage: {context}")]
pub struct StoreError {
    context: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure with no underlying error (for stores a platform writes itself, too).
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// A failure caused by `source`.
    pub fn caused_by(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::caused_by("SQLite", e)
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
    /// Reads many keys, in order (`None` where absent). A store that can should answer in one
    /// round trip or one lock; the default reads them one by one.
    fn get_many(&self, tenant: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(tenant, k)).collect()
    }
    /// Writes many keys. A store that can should do it in one transaction; the default writes
    /// them one by one.
    fn set_many(&self, tenant: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        entries.iter().try_for_each(|(k, v)| self.set(tenant, k, v))
    }
}

#[cfg(feature = "sqlite")]
const UPSERT: &str = "INSERT INTO connector_kv (tenant, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value";
#[cfg(feature = "sqlite")]
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

/// [`KvStore`] on SQLite (the default `sqlite` feature).
#[cfg(feature = "sqlite")]
pub struct SqliteKv {
    conn: Mutex<Connection>,
}

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
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

/// Keys and values of one tenant.
type Namespace = std::collections::HashMap<String, Vec<u8>>;

/// [`KvStore`] in process memory, gone when dropped: for benchmarks, tests and one-off calls
/// where nothing needs to outlive the process.
#[derive(Debug, Default)]
pub struct MemoryKv {
    tenants: Mutex<std::collections::HashMap<String, Namespace>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut std::collections::HashMap<String, Namespace>) -> T,
    ) -> Result<T, StoreError> {
        let mut tenants = self
            .tenants
            .lock()
            .map_err(|_| StoreError::new("memory store lock poisoned"))?;
        Ok(f(&mut tenants))
    }
}

impl KvStore for MemoryKv {
    fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|t| t.get(tenant).and_then(|ns| ns.get(key)).cloned())
    }

    fn get_many(&self, tenant: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.with(|t| {
            let ns = t.get(tenant);
            keys.iter()
                .map(|k| ns.and_then(|ns| ns.get(k)).cloned())
                .collect()
        })
    }

    fn set_many(&self, tenant: &str, entries: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.with(|t| {
            let ns = t.entry(tenant.to_owned()).or_default();
            for (k, v) in entries {
                ns.insert(k.clone(), v.clone());
            }
        })
    }

    fn set(&self, tenant: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with(|t| {
            t.entry(tenant.to_owned())
                .or_default()
                .insert(key.to_owned(), value.to_vec());
        })
    }

    fn delete(&self, tenant: &str, key: &str) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(ns) = t.get_mut(tenant) {
                ns.remove(key);
            }
        })
    }

    fn compare_and_swap(
        &self,
        tenant: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        self.with(|t| {
            let ns = t.entry(tenant.to_owned()).or_default();
            if ns.get(key).map(Vec::as_slice) != expected {
                return false;
            }
            ns.insert(key.to_owned(), value.to_vec());
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stores() -> Vec<Box<dyn KvStore>> {
        vec![
            #[cfg(feature = "sqlite")]
            Box::new(SqliteKv::in_memory().unwrap()),
            Box::new(MemoryKv::new()),
        ]
    }

    #[test]
    fn tenants_do_not_see_each_others_keys() {
        for kv in stores() {
            tenants_apart(kv.as_ref());
        }
    }

    #[test]
    fn compare_and_swap_checks_the_current_value() {
        for kv in stores() {
            swaps(kv.as_ref());
        }
    }

    #[test]
    fn many_keys_at_once_read_in_order_and_stay_in_their_tenant() {
        for kv in stores() {
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
            assert_eq!(kv.get("a", "k3").unwrap().as_deref(), Some(&b"3"[..]));
            assert!(kv.get_many("a", &[]).unwrap().is_empty());
        }
    }

    fn tenants_apart(kv: &dyn KvStore) {
        kv.set("a", "k", b"1").unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("b", "k").unwrap(), None);
        kv.delete("b", "k").unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some(&b"1"[..]));
    }

    fn swaps(kv: &dyn KvStore) {
        assert!(kv.compare_and_swap("t", "k", None, b"1").unwrap());
        assert!(!kv.compare_and_swap("t", "k", None, b"2").unwrap());
        assert!(!kv.compare_and_swap("t", "k", Some(b"0"), b"2").unwrap());
        assert!(kv.compare_and_swap("t", "k", Some(b"1"), b"2").unwrap());
        assert_eq!(kv.get("t", "k").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[cfg(all(unix, feature = "sqlite"))]
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

    #[cfg(feature = "sqlite")]
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

    #[cfg(feature = "sqlite")]
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
        let text = crate::errors::chain(&e);
        assert!(
            text.starts_with(&format!("storage: {}: ", path.display()))
                && text.ends_with(&cause.to_string()),
            "{text}"
        );
    }
}
