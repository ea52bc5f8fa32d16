//! The reference host for the Bitbucket DC connector component, and the library behind `bbdc`.
//!
//! - [`demo`]: `bbdc demo`, the whole product against the simulator;
//! - [`sim`]: the Bitbucket Data Center simulator (faults, ground truth, webhooks);
//! - [`runtime`]: the wasmtime embedding (engine, component cache, per-call stores, limits);
//! - [`state`]: a tenant's host state and the WIT imports implemented over it;
//! - [`http`]: the tenant's HTTP client (base URL only, host-added credentials, caps);
//! - [`tls`]: server verification against a tenant's own CA bundle (self-signed servers too);
//! - [`policy`]: rate limit, Retry-After and retries shared by a tenant's calls;
//! - [`logging`]: log filtering that keeps credentials out of logs;
//! - [`storage`]: the tenant-namespaced key-value store (SQLite by default);
//! - [`tenant`]: tenant configuration;
//! - [`output`]: stable JSON shapes of records and errors for the command line;
//! - [`records`]: where ingested records go (SQLite tables by default);
//! - [`sync`]: the full sync job (projects, repositories, users, pull requests);
//! - [`webhook`]: one webhook delivery through the connector (status, persistence, report);
//! - [`serve`]: the webhook HTTP endpoint with background refresh;
//! - [`bindings`]: the generated host bindings.

pub mod bench;
pub mod bindings;
pub mod demo;
pub mod http;
pub mod logging;
pub mod output;
pub mod policy;
pub mod printable;
pub mod records;
pub mod runtime;
pub mod serve;
pub mod sim;
pub mod state;
pub mod storage;
pub mod sync;
pub mod tenant;
pub mod tls;
pub mod webhook;

pub use runtime::{CallError, HostError, Runtime, RuntimeConfig};
pub use state::Tenant;
pub use tenant::{Credentials, Limits, TenantConfig};
