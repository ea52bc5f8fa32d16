//! Connector storage: the key-value store namespaced per tenant that a host's imports write
//! through ([`KvStore`], the seam a platform implements), its error ([`StoreError`]), and an
//! in-memory store ([`MemoryKv`]). The stores on SQLite and PostgreSQL live in `bbdc-store`;
//! the features `sqlite` and `postgres` only let those drivers' errors become a [`StoreError`].

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

#[cfg(feature = "postgres")]
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::caused_by("PostgreSQL", e)
    }
}

#[cfg(feature = "postgres")]
impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::caused_by("PostgreSQL connection pool", e)
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

/// Checks that `kv`, a fresh store, keeps what the connector relies on of a [`KvStore`]:
/// tenants never see each other's keys, compare-and-swap compares with the current value, and
/// `get_many` answers one value per key, in order, within its tenant. For the tests of a
/// [`KvStore`] implementation (a platform's own, say): it panics at the first broken promise.
/// It writes under tenants `a`, `b` and `t`.
pub fn check_contract(kv: &dyn KvStore) {
    // Tenants apart.
    kv.set("a", "k", b"1").expect("set");
    assert_eq!(kv.get("a", "k").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(kv.get("b", "k").expect("get"), None, "another tenant's key");
    kv.delete("b", "k").expect("delete");
    assert_eq!(
        kv.get("a", "k").expect("get").as_deref(),
        Some(&b"1"[..]),
        "a delete in another tenant removed this one's key"
    );
    // Compare-and-swap.
    assert!(kv.compare_and_swap("t", "k", None, b"1").expect("swap"));
    assert!(!kv.compare_and_swap("t", "k", None, b"2").expect("swap"));
    assert!(
        !kv.compare_and_swap("t", "k", Some(b"0"), b"2")
            .expect("swap")
    );
    assert!(
        kv.compare_and_swap("t", "k", Some(b"1"), b"2")
            .expect("swap")
    );
    assert_eq!(kv.get("t", "k").expect("get").as_deref(), Some(&b"2"[..]));
    // Many keys at once: in order, one per key, within the tenant.
    kv.set("a", "k1", b"old").expect("set");
    kv.set_many(
        "a",
        &[("k1".into(), b"1".to_vec()), ("k3".into(), b"3".to_vec())],
    )
    .expect("set_many");
    let keys: Vec<String> = ["k3", "k2", "k1"].map(String::from).to_vec();
    assert_eq!(
        kv.get_many("a", &keys).expect("get_many"),
        vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]
    );
    assert_eq!(
        kv.get_many("b", &keys).expect("get_many"),
        vec![None, None, None]
    );
    assert_eq!(kv.get("a", "k3").expect("get").as_deref(), Some(&b"3"[..]));
    assert!(kv.get_many("a", &[]).expect("get_many").is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_keeps_the_store_contract() {
        check_contract(&MemoryKv::new());
    }
}
