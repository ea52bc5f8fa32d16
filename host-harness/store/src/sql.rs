//! The one seam between what `bbdc` stores and a SQL database: a [`Database`] runs
//! transactions, in which a [`Tx`] runs one statement with [`Value`] parameters and returns rows
//! of [`Value`]s. The record tables and the key-value store are written once over it; the
//! dialects live in [`sqlite`] and [`postgres`].
//!
//! The statements are written once, in the SQL both SQLite (3.39+) and PostgreSQL accept:
//! `$N` parameters, `INSERT ... ON CONFLICT`, `IS [NOT] DISTINCT FROM`, `CAST(x AS BIGINT)`.
//! Every integer is a 64-bit integer and every flag an integer 0 or 1, so the two schemas hold
//! the same values.

use bbdc_host::storage::StoreError;

/// One SQL value as the tables hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer (counts, ids, times in epoch ms, flags as 0 or 1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (the key-value store's values).
    Bytes(Vec<u8>),
}

impl Value {
    /// The integer, if this is one.
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The text, if this is text.
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The text, owned, if this is text.
    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes, owned, if these are bytes.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Something a statement parameter can be made of.
pub trait ToValue {
    /// This as a [`Value`].
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Bytes(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u16 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u8 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
/// Counts past `i64::MAX` cannot occur in real data and are kept at the maximum; identities go
/// through `id_of`, which refuses them instead.
impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// Statement parameters: `vals![a, b]` is `[a.to_value(), b.to_value()]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        [$($crate::sql::ToValue::to_value(&$v)),*]
    };
}
pub(crate) use vals;

/// One open transaction (or connection, for reads) of a [`Database`].
pub trait Tx {
    /// Runs a statement; returns how many rows it changed.
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError>;
    /// Runs a query; returns its rows.
    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError>;

    /// The first row of a query, if any.
    fn row(&mut self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

/// Column `i` of `row` (NULL when the row is shorter: a query always names its columns).
pub fn col(row: &[Value], i: usize) -> &Value {
    row.get(i).unwrap_or(&Value::Null)
}

/// A SQL database: transactions over [`Tx`], the same statements on every dialect.
pub trait Database: Send + Sync {
    /// Runs `f` in one write transaction and commits it when `f` returns `Ok`. A database may
    /// run `f` again in a new transaction when the first lost a race with another process's.
    fn write<T>(
        &self,
        f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
    /// Runs `f` for reads only.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
}

pub mod postgres;
pub mod sqlite;
