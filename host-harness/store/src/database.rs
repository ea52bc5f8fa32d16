//! Where `--db` points: a SQLite file (the default) or a PostgreSQL database, and the two stores
//! opened on it, the connector's state ([`KvStore`]) and the records ([`RecordSink`]).

use crate::kv::{PgKv, SqliteKv};
use crate::postgres::{PgBudget, PoolOptions};
use crate::records::{PgRecords, RecordSink, SqliteRecords};
use bbdc_host::policy::SharedBudget;
use bbdc_host::storage::{KvStore, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// A database for state and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its `postgres://` (or `postgresql://`) URL. Its tables are
    /// created and migrated on open; several processes may share it.
    Postgres(String),
}

/// The stores opened on a [`Database`].
pub struct Stores {
    /// The connector's state.
    pub kv: Arc<dyn KvStore>,
    /// The records.
    pub records: Arc<dyn RecordSink>,
    /// The tenant's rate budget shared with every other process on the database (PostgreSQL
    /// only): pass it to [`Stores::share_budget`] once the tenant is built.
    pub budget: Option<Arc<dyn SharedBudget>>,
}

impl Stores {
    /// Makes `tenant`'s requests take their tokens from the shared budget too, when there is
    /// one: `bbdc sync`, `serve` and `worker` processes on one database then send at most the
    /// tenant's configured rate in all.
    pub fn share_budget(&self, tenant: &bbdc_host::Tenant) {
        if let Some(budget) = &self.budget {
            tenant
                .http
                .share_budget(Arc::clone(budget), &tenant.config.id);
        }
    }
}

impl Database {
    /// `--db`'s value: a `postgres://` or `postgresql://` URL names PostgreSQL, anything else a
    /// SQLite file.
    pub fn parse(s: &str) -> Result<Self, String> {
        if crate::postgres::is_url(s) {
            // Checked when opened, not here: the command line's parser would repeat the whole
            // value, password included, in its message.
            Ok(Self::Postgres(s.to_owned()))
        } else if s.is_empty() {
            Err("an empty database path".into())
        } else {
            Ok(Self::Sqlite(PathBuf::from(s)))
        }
    }

    /// Opens both stores for tenant `tenant`. `connections` bounds each PostgreSQL pool (the
    /// callers' threads that write at once); `dedup_window` is how long delivery ids are
    /// remembered (`None`: the default). On PostgreSQL the tenant's records live in a schema of
    /// their own ([`crate::records::tenant_schema`]), and its state is namespaced by its id.
    pub fn open(
        &self,
        tenant: &str,
        connections: u32,
        dedup_window: Option<std::time::Duration>,
    ) -> Result<Stores, StoreError> {
        let window = dedup_window.unwrap_or(crate::records::DEFAULT_DEDUP_WINDOW);
        Ok(match self {
            Self::Sqlite(path) => Stores {
                kv: Arc::new(SqliteKv::open(path)?),
                records: Arc::new(SqliteRecords::open(path)?.with_dedup_window(window)),
                budget: None,
            },
            Self::Postgres(url) => {
                let options = PoolOptions {
                    max_size: connections.max(1),
                    ..PoolOptions::default()
                };
                let pool = crate::postgres::pool(url, &options)?;
                Stores {
                    kv: Arc::new(PgKv::on(pool.clone())?),
                    budget: Some(Arc::new(PgBudget::on(pool)?)),
                    records: Arc::new(
                        PgRecords::connect_tenant(url, tenant, &options)?.with_dedup_window(window),
                    ),
                }
            }
        })
    }

    /// How it is shown in summaries and logs: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => redacted(url),
        }
    }
}

/// `url` with any password replaced, so a summary or log line never carries it.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // A password may also be a query parameter.
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "postgres://(unreadable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_postgresql_and_anything_else_a_file() {
        assert_eq!(
            Database::parse("bbdc.sqlite"),
            Ok(Database::Sqlite("bbdc.sqlite".into()))
        );
        assert!(matches!(
            Database::parse("postgresql://u@db/bbdc"),
            Ok(Database::Postgres(_))
        ));
        assert!(Database::parse("").is_err());
        // A malformed URL fails when opened, without its password in the message.
        let bad = Database::parse("postgres://u:s3cret@db:notaport/x").expect("taken as given");
        let e = bad.open("t", 1, None).err().expect("refused");
        let text = bbdc_host::errors::chain(&e);
        assert!(
            text.contains("PostgreSQL URL") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[test]
    fn a_password_is_never_shown() {
        for url in [
            "postgres://bbdc:s3cret@db.internal:5432/bbdc",
            "postgres://bbdc@db.internal/bbdc?password=s3cret&sslmode=disable",
        ] {
            let shown = Database::parse(url).unwrap().display();
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.internal"), "{shown}");
        }
    }

    #[test]
    fn both_stores_open_on_postgresql_and_share_its_tables() {
        let pg = bbdc_test_postgres::TestPostgres::start_or_panic();
        let db = Database::parse(&pg.url()).unwrap();
        let stores = db.open("t", 4, None).expect("opens");
        stores.kv.set("t", "k", b"v").unwrap();
        assert_eq!(
            stores
                .records
                .default_branch_head(&bbdc_host::bindings::types::RepoRef {
                    project_key: "P".into(),
                    slug: "r".into()
                })
                .unwrap(),
            None
        );
        // A second process on the same database sees the first one's state.
        let again = db.open("t", 4, None).expect("opens again");
        assert_eq!(again.kv.get("t", "k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
