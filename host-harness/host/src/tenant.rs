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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tenant as the host holds it: configuration, HTTP client and storage.
pub struct Tenant {
    /// Configuration.
    pub config: TenantConfig,
    /// HTTP client and policy.
    pub http: TenantHttp,
    /// Storage (namespaced by `config.id`).
    pub kv: Arc<dyn KvStore>,
    /// The rate budget requests are paced to, once settled ([`Tenant::rate_budget`]), and when.
    budget: Mutex<Option<(RateBudget, Instant)>>,
}

/// A budget the server did not state is read again after this long: the read may have failed
/// for a moment, or an administrator may have set the account's budget since.
pub const BUDGET_REREAD: Duration = Duration::from_secs(10 * 60);

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
            budget: Mutex::new(None),
        })
    }

    /// The rate budget, if [`Tenant::rate_budget`] has settled it (no request is sent).
    pub fn settled_budget(&self) -> Option<RateBudget> {
        self.budget
            .lock()
            .ok()
            .and_then(|b| b.as_ref().map(|(b, _)| b.clone()))
    }

    /// The rate budget the tenant's requests are paced to, and where it came from. The first
    /// call settles it: a told budget ([`crate::policy::HttpPolicy::told`]) stands; otherwise
    /// the account's budget is read from the server ([`budget::read`], a request or two) and
    /// the requests are paced to it from then on, or, where the server does not say, adapt to
    /// its 429s with no ceiling. Later calls return the same answer without a request, except
    /// that a budget the server did not state is read again after [`BUDGET_REREAD`]. Calls
    /// made while it is being read wait for that read.
    pub fn rate_budget(&self) -> RateBudget {
        let policy = &self.config.http_policy;
        if policy.told {
            let told = RateBudget {
                per_second: policy.ceiling(),
                burst: policy.burst.filter(|_| policy.ceiling().is_finite()),
                source: BudgetSource::Configured,
            };
            if let Ok(mut held) = self.budget.lock()
                && held.is_none()
            {
                *held = Some((told.clone(), Instant::now()));
            }
            return told;
        }
        let Ok(mut held) = self.budget.lock() else {
            return RateBudget {
                per_second: f64::INFINITY,
                burst: None,
                source: BudgetSource::Unknown {
                    reason: "the tenant's budget lock was poisoned".into(),
                },
            };
        };
        let now = Instant::now();
        if let Some((budget, at)) = held.as_ref()
            && !needs_reading(budget, *at, now)
        {
            return budget.clone();
        }
        let within = self.config.limits.deadline.min(budget::READ_DEADLINE);
        let read = budget::read(&self.http, now + within);
        let changed = held
            .as_ref()
            .is_none_or(|(was, _)| (was.per_second, was.burst) != (read.per_second, read.burst));
        if changed {
            tracing::info!(
                tenant = %self.config.id,
                per_second = read.per_second,
                burst = read.burst,
                "rate budget: {}",
                read.source
            );
            // An unchanged budget leaves the limiter as it is (what it has learned of the
            // server's 429s included).
            self.http.set_budget(read.per_second, read.burst);
        }
        *held = Some((read.clone(), now));
        read
    }
}

/// Whether a budget settled at `at` must be read again at `now`: only one the server did not
/// state, once [`BUDGET_REREAD`] has passed.
fn needs_reading(budget: &RateBudget, at: Instant, now: Instant) -> bool {
    matches!(budget.source, BudgetSource::Unknown { .. })
        && now.saturating_duration_since(at) >= BUDGET_REREAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_budget_the_server_did_not_state_is_read_again_and_only_after_a_while() {
        let at = Instant::now();
        let later = at + BUDGET_REREAD;
        let unknown = RateBudget {
            per_second: f64::INFINITY,
            burst: None,
            source: BudgetSource::Unknown {
                reason: "refused".into(),
            },
        };
        assert!(!needs_reading(&unknown, at, at + BUDGET_REREAD / 2));
        assert!(needs_reading(&unknown, at, later));
        let stated = RateBudget {
            per_second: 5.0,
            burst: Some(60.0),
            source: BudgetSource::Instance,
        };
        assert!(!needs_reading(&stated, at, later));
    }
}
