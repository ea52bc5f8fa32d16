//! The SQLite dialect of the seam: [`Lite`], a [`Tx`] on a connection, and [`SqliteDb`], a
//! [`Database`] on one file (or in memory).

use super::{Database, Tx, Value};
use bbdc_host::storage::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// [`Tx`] on a SQLite connection (inside a transaction or savepoint, or not).
pub struct Lite<'a>(pub &'a rusqlite::Connection);

/// `$N` parameters as SQLite's `?N` (SQLite reads `$1` as a *named* parameter, numbered in
/// order of appearance, which would bind out of order).
fn sqlite_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl Tx for Lite<'_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let mut st = self.0.prepare_cached(&sqlite_sql(sql))?;
        Ok(st.execute(rusqlite::params_from_iter(params))?)
    }

    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
        let mut st = self.0.prepare_cached(&sqlite_sql(sql))?;
        let n = st.column_count();
        let rows = st.query_map(rusqlite::params_from_iter(params), |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Integer(v) => Value::Int(v),
                        rusqlite::types::ValueRef::Text(t) => {
                            Value::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                        // The tables hold no reals.
                        rusqlite::types::ValueRef::Real(_) | rusqlite::types::ValueRef::Null => {
                            Value::Null
                        }
                    })
                })
                .collect::<rusqlite::Result<Vec<Value>>>()
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

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

/// How much a commit waits for the disk (SQLite's `synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the commit returns (`FULL`): for records, the product.
    Full,
    /// A power loss may roll back the last commits, never corrupt the file (`NORMAL`): for
    /// state that can be derived again, at microseconds a commit instead of milliseconds.
    Normal,
}

/// [`Database`] on one SQLite connection: writes take it in turn, each in an immediate
/// transaction.
pub struct SqliteDb {
    conn: Mutex<Connection>,
}

impl SqliteDb {
    /// Opens (creating, private to its owner, if needed: [`create_private`]) the file at `path`
    /// in WAL mode, waiting up to 30 s for another connection's write.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        create_private(path).map_err(|e| StoreError::caused_by(path.display().to_string(), e))?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// A database in memory, gone when dropped.
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            conn: Mutex::new(Connection::open_in_memory()?),
        })
    }

    /// The connection, locked: for what the seam does not say (a schema's creation, savepoints).
    pub fn locked(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::new("connection lock poisoned"))
    }
}

impl Database for SqliteDb {
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.locked()?;
        // Immediate: a transaction that reads before it writes (a repository looked up by id,
        // a queue compared with what is stored) must not start as a reader, or a write by
        // another connection in between makes its upgrade fail at once with "database is
        // locked" instead of waiting.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&mut Lite(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.locked()?;
        f(&mut Lite(&conn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_sqlites_own_and_dollars_elsewhere_stay() {
        assert_eq!(
            sqlite_sql("SELECT $1, $12 WHERE a = '$x' AND b = $2"),
            "SELECT ?1, ?12 WHERE a = '$x' AND b = ?2"
        );
    }

    #[test]
    fn parameters_bind_by_number_not_by_order_of_appearance() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let row = Lite(&conn)
            .row("SELECT $2, $1, $2", &vals!["a", 7_i64])
            .unwrap()
            .unwrap();
        assert_eq!(
            row,
            vec![Value::Int(7), Value::Text("a".into()), Value::Int(7)]
        );
    }
}
