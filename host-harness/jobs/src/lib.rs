//! The jobs `bbdc` runs over the embedding library ([`bbdc_host`]), usable on their own:
//!
//! - [`sync`]: the full sync job (projects, repositories, users, pull requests);
//! - [`repo_pass`]: one repository's pass (pull requests, history, builds), each listing
//!   written page by page;
//! - [`job`]: what a sync job is asked to do (repositories, entities, bounds);
//! - [`listing`]: the listing of projects, repositories and users, page by page;
//! - [`guard`]: the host's guard over every listing it follows call by call;
//! - [`outcome`]: what a sync comes to (report, failures, errors);
//! - [`records`], [`database`], [`work_queue`], [`shape`]: re-exported from [`bbdc_store`],
//!   where ingested records, the work queue and what `--db` names live;
//! - [`output`]: stable JSON shapes of records, errors and summaries;
//! - [`printable`]: escaping of untrusted text for logs and terminals;
//! - [`webhook`]: one webhook delivery through the connector (status, persistence, report);
//! - [`serve`]: the webhook HTTP endpoint; [`refresh`]: its durable background refresh;
//! - [`worker`]: `bbdc worker`, many processes sharing the sync of many tenants through
//!   PostgreSQL ([`work_queue`]), under leases;
//! - [`truth`]: whether the stored pull requests equal a ground truth, field for field.

pub mod guard;
pub mod job;
pub mod listing;
pub mod outcome;
pub mod output;
pub mod printable;
pub mod refresh;
pub mod repo_pass;
pub mod serve;
pub mod sync;
pub mod truth;
pub mod webhook;
pub mod worker;

pub use bbdc_store::{database, records, shape, work_queue};
