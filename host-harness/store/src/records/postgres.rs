//! The PostgreSQL backend of [`Records`]: one database shared by every worker and serve
//! replica of a deployment, over a connection pool.
//!
//! Each write is one transaction on a pooled connection, at PostgreSQL's default isolation
//! (read committed: [`PgDb`]). A delivery's de-duplication mark is a primary key: when two replicas store
//! the same delivery at once, the second one's insert waits for the first transaction and then
//! finds the mark, so the delivery is stored once.

use super::{Backend, Records};
use crate::postgres::{PgPool, PoolOptions};
use crate::sql::postgres::PgDb;
use bbdc_host::storage::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations/records");
}

/// PostgreSQL under [`Records`] (see [`super::PgRecords`]): the seam's database on a pool,
/// each delivery in a transaction of its own.
pub type Postgres = PgDb;

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
        Ok(Self::on(PgDb::new(pool)))
    }
}

impl Backend for PgDb {}
