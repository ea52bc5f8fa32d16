//! The PostgreSQL backend of [`Records`]: one database shared by every worker and serve
//! replica of a deployment, over a connection pool.
//!
//! Each write is one transaction on a pooled connection, at PostgreSQL's default isolation
//! (read committed). A delivery's de-duplication mark is a primary key: when two replicas store
//! the same delivery at once, the second one's insert waits for the first transaction and then
//! finds the mark, so the delivery is stored once.

use super::sql::{Pg, Tx};
use super::{Backend, Records};
use bbdc_host::postgres::{PgPool, PoolOptions};
use bbdc_host::storage::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// PostgreSQL under [`Records`] (see [`super::PgRecords`]).
pub struct Postgres {
    pool: PgPool,
}

impl Records<Postgres> {
    /// Connects to `url` and applies the record tables' migrations.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        Self::on_pool(bbdc_host::postgres::pool(url, options)?)
    }

    /// The record tables on an existing pool, after applying their migrations.
    pub fn on_pool(pool: PgPool) -> Result<Self, StoreError> {
        bbdc_host::postgres::migrate(
            &pool,
            embedded::migrations::runner(),
            "bbdc_records_schema_history",
        )?;
        Ok(Self::on(Postgres { pool }))
    }
}

impl Backend for Postgres {
    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        let mut tx = conn.transaction()?;
        let out = f(&mut Pg(&mut tx))?;
        tx.commit()?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.pool.get()?;
        f(&mut Pg(&mut *conn))
    }
}
