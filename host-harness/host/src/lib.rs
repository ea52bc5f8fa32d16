//! The embedding library for the Bitbucket DC connector component: what a platform depends on
//! (or copies) to run the component for its tenants. It has no command line, progress bar or
//! HTTP server in its dependency tree.
//!
//! - [`runtime`]: the wasmtime embedding (engine, component cache, per-call stores, limits);
//! - [`preinit`]: pre-initialising the component at load time (feature `pre-initialize`);
//! - [`imports`]: a call's state and the WIT imports implemented over it;
//! - [`signature`]: webhook signatures, checked in the host so the secret stays out of the
//!   sandbox;
//! - [`http`]: the tenant's HTTP client (base URL only, host-added credentials, caps);
//! - [`policy`]: rate limit, Retry-After and retries: the one owner of retries;
//! - [`budget`]: the account's rate budget as the server states it, read when none is told;
//! - [`tls`]: server verification against a tenant's own CA bundle (self-signed servers too);
//! - [`storage`]: the tenant-namespaced key-value store a platform implements
//!   ([`storage::KvStore`]), its error, an in-memory store and the contract's checks (the
//!   SQLite and PostgreSQL stores are `bbdc-store`'s);
//! - [`tenant`]: a tenant as the host holds it (configuration, HTTP client, storage), and its
//!   configuration and limits ([`tenant::config`]);
//! - [`tenant_file`]: the same as data, from a TOML or JSON tenant file;
//! - [`errors`]: an error with its causes as one line;
//! - [`clock`]: the wall clock in epoch milliseconds;
//! - [`logging`]: log filtering that keeps credentials out of logs;
//! - [`plugin`]: a loaded component of either contract version (0.1.0, 0.2.0) behind one
//!   interface;
//! - [`bindings`]: the generated host bindings of `wit/0.2.0` and `wit/0.1.0`.

pub mod bindings;
pub mod budget;
pub mod clock;
pub mod errors;
pub mod http;
pub mod imports;
pub mod logging;
pub mod plugin;
pub mod policy;
#[cfg(feature = "pre-initialize")]
pub mod preinit;
pub mod runtime;
pub mod signature;
pub mod storage;
pub mod tenant;
pub mod tenant_file;
pub mod tls;

pub use plugin::{ContractVersion, Unsupported};
pub use runtime::{
    CallError, HostError, InstanceCounts, InstanceReuse, PreInitialize, Runtime, RuntimeConfig,
};
pub use tenant::Tenant;
pub use tenant::{Credentials, Limits, TenantConfig};
pub use tenant_file::{TenantFile, TenantFileError};
