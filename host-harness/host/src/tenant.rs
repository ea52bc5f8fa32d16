//! A tenant: one customer's Bitbucket server as the host holds it ([`Tenant`]: its
//! configuration, HTTP client and storage), and the configuration itself ([`config`], re-exported
//! here).

pub mod config;

pub use config::{
    Credentials, Limits, MAX_TENANT_ID_BYTES, TenantConfig, Timeouts, tenant_id_problem,
};

use crate::budget::{self, BudgetSource, RateBudget};
use crate::http::TenantHttp;
use crate::storage::KvStore;
use std::sync::{Arc, OnceLock};

/// A tenant as the host holds it: configuration, HTTP client and storage.
pub struct Tenant {
    /// Configuration.
    pub config: TenantConfig,
    /// HTTP client and policy.
    pub http: TenantHttp,
    /// Storage (namespaced by `config.id`).
    pub kv: Arc<dyn KvStore>,
    /// The rate budget requests are paced to, once settled ([`Tenant::rate_budget`]).
    budget: OnceLock<RateBudget>,
}

impl Tenant {
    /// Builds a tenant's host state.
    pub fn new(
        config: TenantConfig,
        kv: Arc<dyn KvStore>,
    ) -> Result<Self, crate::http::HttpSetupError> {
        let http = TenantHttp::new(&config)?;
        Ok(Self {
            config,
            http,
            kv,
            budget: OnceLock::new(),
        })
    }

    /// The rate budget, if [`Tenant::rate_budget`] has settled it (no request is sent).
    pub fn settled_budget(&self) -> Option<&RateBudget> {
        self.budget.get()
    }

    /// The rate budget the tenant's requests are paced to, and where it came from. The first
    /// call settles it: a told budget ([`crate::policy::HttpPolicy::told`]) stands; otherwise
    /// the account's budget is read from the server ([`budget::read`], a request or two) and
    /// the requests are paced to it from then on, or, where the server does not say, adapt to
    /// its 429s with no ceiling. Later calls return the same answer without a request.
    pub fn rate_budget(&self) -> &RateBudget {
        self.budget.get_or_init(|| {
            let policy = &self.config.http_policy;
            if policy.told {
                return RateBudget {
                    per_second: policy.ceiling(),
                    burst: policy.burst.filter(|_| policy.ceiling().is_finite()),
                    source: BudgetSource::Configured,
                };
            }
            let within = self.config.limits.deadline.min(budget::READ_DEADLINE);
            let read = budget::read(&self.http, None, std::time::Instant::now() + within);
            tracing::info!(
                tenant = %self.config.id,
                per_second = read.per_second,
                burst = read.burst,
                "rate budget: {}",
                read.source
            );
            self.http.set_budget(read.per_second, read.burst);
            read
        })
    }
}
