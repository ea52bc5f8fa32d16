//! A tenant: one customer's Bitbucket server as the host holds it ([`Tenant`]: its
//! configuration, HTTP client and storage), and the configuration itself ([`config`], re-exported
//! here).

pub mod config;

pub use config::{
    Credentials, Limits, MAX_TENANT_ID_BYTES, TenantConfig, Timeouts, tenant_id_problem,
};

use crate::http::TenantHttp;
use crate::storage::KvStore;
use std::sync::Arc;

/// A tenant as the host holds it: configuration, HTTP client and storage.
pub struct Tenant {
    /// Configuration.
    pub config: TenantConfig,
    /// HTTP client and policy.
    pub http: TenantHttp,
    /// Storage (namespaced by `config.id`).
    pub kv: Arc<dyn KvStore>,
}

impl Tenant {
    /// Builds a tenant's host state.
    pub fn new(
        config: TenantConfig,
        kv: Arc<dyn KvStore>,
    ) -> Result<Self, crate::http::HttpSetupError> {
        let http = TenantHttp::new(&config)?;
        Ok(Self { config, http, kv })
    }
}
