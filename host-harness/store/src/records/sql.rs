//! The seam between the record writes and a database: [`Tx`] runs one statement with
//! [`Value`] parameters and returns rows of [`Value`]s.
//!
//! The statements are written once, in the SQL both SQLite (3.39+) and PostgreSQL accept:
//! `$N` parameters, `INSERT ... ON CONFLICT`, `IS [NOT] DISTINCT FROM`, `CAST(x AS BIGINT)`.
//! Every integer is a 64-bit integer and every flag an integer 0 or 1, so the two schemas hold
//! the same values.

use bbdc_host::storage::StoreError;

/// One SQL value as the record tables hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer (counts, ids, times in epoch ms, flags as 0 or 1).
    Int(i64),
    /// Text.
    Text(String),
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
        [$($crate::records::sql::ToValue::to_value(&$v)),*]
    };
}
pub(crate) use vals;

/// One open transaction (or connection, for reads) of a record store.
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
                        // The record tables hold no reals or blobs.
                        _ => Value::Null,
                    })
                })
                .collect::<rusqlite::Result<Vec<Value>>>()
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// [`Tx`] on a PostgreSQL transaction or client.
pub struct Pg<'a, C: postgres::GenericClient>(pub &'a mut C);

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match self {
            Value::Null => Ok(postgres::types::IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                _ => n.to_string().to_sql(ty, out),
            },
            // PostgreSQL's text cannot hold U+0000, which SQLite's can and a server may send
            // (a title or commit summary): it is stored as U+FFFD rather than failing the row.
            Value::Text(s) if s.contains('\0') => s.replace('\0', "\u{FFFD}").to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::Type;
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::TEXT | Type::VARCHAR | Type::BPCHAR
        )
    }

    postgres::types::to_sql_checked!();
}

fn pg_params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

impl<C: postgres::GenericClient> Tx for Pg<'_, C> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let n = self.0.execute(sql, &pg_params(params))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, StoreError> {
        use postgres::types::Type;
        let rows = self.0.query(sql, &pg_params(params))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        let ty = r.columns()[i].type_();
                        Ok(match *ty {
                            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                            Type::INT4 => r
                                .try_get::<_, Option<i32>>(i)?
                                .map(|v| Value::Int(v.into())),
                            Type::INT2 => r
                                .try_get::<_, Option<i16>>(i)?
                                .map(|v| Value::Int(v.into())),
                            Type::BOOL => r
                                .try_get::<_, Option<bool>>(i)?
                                .map(|v| Value::Int(v.into())),
                            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
                        }
                        .unwrap_or(Value::Null))
                    })
                    .collect::<Result<Vec<_>, postgres::Error>>()
                    .map_err(StoreError::from)
            })
            .collect()
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
