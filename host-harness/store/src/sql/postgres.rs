//! The PostgreSQL dialect of the seam: [`Pg`], a [`Tx`] on a transaction or client, and
//! [`PgDb`], a [`Database`] on a connection pool.

use super::{Database, Tx, Value};
use crate::postgres::PgPool;
use bbdc_host::storage::StoreError;

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
            Value::Bytes(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(ty: &postgres::types::Type) -> bool {
        use postgres::types::Type;
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::BYTEA
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
                            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
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

/// [`Database`] on a pool: each write is one transaction on a pooled connection, at
/// PostgreSQL's default isolation (read committed), run again when it lost a race.
pub struct PgDb {
    pool: PgPool,
}

impl PgDb {
    /// The database behind `pool` (migrated already, or not: see [`crate::postgres::migrate`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Transactions that lost a race with another process's (two replicas appending a review to
/// one pull request at once, say) are run again this many times in all.
const ATTEMPTS: u32 = 5;

/// Whether `e` is a conflict with a concurrent transaction, which running the transaction again
/// resolves: a key another transaction inserted first, a serialization failure, a deadlock.
fn lost_a_race(e: &StoreError) -> bool {
    use postgres::error::SqlState;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<postgres::Error>())
        .and_then(postgres::Error::code)
        .is_some_and(|code| {
            [
                SqlState::UNIQUE_VIOLATION,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
            ]
            .contains(code)
        })
}

impl Database for PgDb {
    fn write<T>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 1;
        loop {
            let mut conn = self.pool.get()?;
            let outcome = (|| {
                let mut tx = conn.transaction()?;
                let out = f(&mut Pg(&mut tx))?;
                tx.commit()?;
                Ok(out)
            })();
            match outcome {
                Err(e) if attempt < ATTEMPTS && lost_a_race(&e) => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        f(&mut Pg(&mut *conn))
    }
}
