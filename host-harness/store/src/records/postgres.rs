//! The PostgreSQL backend of [`Records`]: one database shared by every worker and serve
//! replica of a deployment, over a connection pool.
//!
//! Each write is one transaction on a pooled connection, at PostgreSQL's default isolation
//! (read committed). A delivery's de-duplication mark is a primary key: when two replicas store
//! the same delivery at once, the second one's insert waits for the first transaction and then
//! finds the mark, so the delivery is stored once.

use super::sql::{Pg, Tx};
use super::{Backend, Records};
use crate::postgres::{PgPool, PoolOptions};
use bbdc_host::storage::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations/records");
}

/// PostgreSQL under [`Records`] (see [`super::PgRecords`]).
pub struct Postgres {
    pool: PgPool,
}

/// The PostgreSQL schema holding `tenant`'s record tables: `bbdc_`, the tenant id's letters and
/// digits (lowercased, at most 32), and 8 hex digits of its SHA-256, so that two ids never share
/// a schema whatever characters they hold. Tenants sharing a database never see each other's
/// records: a project key or repository slug means nothing across tenants.
pub fn tenant_schema(tenant: &str) -> String {
    use sha2::Digest as _;
    let readable: String = tenant
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(32)
        .collect();
    let digest = sha2::Sha256::digest(tenant.as_bytes());
    format!("bbdc_{readable}_{}", hex::encode(&digest[..4]))
}

impl Records<Postgres> {
    /// Connects to `url` with `tenant`'s records in its own schema ([`tenant_schema`]), and
    /// applies the record tables' migrations there.
    pub fn connect_tenant(
        url: &str,
        tenant: &str,
        options: &PoolOptions,
    ) -> Result<Self, StoreError> {
        let options = PoolOptions {
            schema: Some(tenant_schema(tenant)),
            ..options.clone()
        };
        Self::connect(url, &options)
    }

    /// Connects to `url` and applies the record tables' migrations (in `options.schema`, when
    /// given).
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Self, StoreError> {
        Self::on_pool(crate::postgres::pool(url, options)?)
    }

    /// The record tables on an existing pool, after applying their migrations.
    pub fn on_pool(pool: PgPool) -> Result<Self, StoreError> {
        crate::postgres::migrate(
            &pool,
            embedded::migrations::runner(),
            "bbdc_records_schema_history",
        )?;
        Ok(Self::on(Postgres { pool }))
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

impl Backend for Postgres {
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
