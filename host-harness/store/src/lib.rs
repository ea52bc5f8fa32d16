//! Where `bbdc` keeps what it ingests, below the jobs that ingest it and above the embedding
//! library ([`bbdc_host`], whose `KvStore` trait stays the seam a platform implements):
//!
//! - [`sql`]: the one SQL seam ([`sql::Database`], [`sql::Tx`]) and its two dialects, SQLite
//!   and PostgreSQL, over which the records and the key-value store are each written once;
//! - [`records`]: the record sinks ([`records::RecordSink`]) and their tables, with the
//!   migrations in `migrations/records`;
//! - [`shape`]: one shape per record, the JSON line and the names both the lines and the tables
//!   spell;
//! - [`work_queue`]: the PostgreSQL work queue `bbdc worker` processes share (`migrations/work`);
//! - [`database`]: what `--db` names (a SQLite file or a PostgreSQL URL) and the stores on it;
//! - [`kv`]: the connector's key-value store, on either database;
//! - [`postgres`]: pooled, migrated PostgreSQL connections (`migrations/kv`) and the shared rate
//!   budget, for workers and serve replicas sharing one database.

pub mod database;
pub mod kv;
pub mod postgres;
pub mod records;
pub mod shape;
pub mod sql;
pub mod work_queue;
