//! A tenant's configuration: one customer's Bitbucket server, credentials and limits.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How the host authenticates to the tenant's server. `Debug` never prints the secret.
#[derive(Clone)]
pub enum Credentials {
    /// `Authorization: Bearer <token>` (HTTP access tokens; project and repository tokens work
    /// only this way).
    Bearer(String),
    /// `Authorization: Basic` with a user name and a password or token.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// No credentials (anonymous access).
    None,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::None => f.write_str("None"),
        }
    }
}

/// Per-call sandbox limits (in a tenant file: `[limits]`, each field optional).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest linear memory a call may grow to.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call, host I/O included.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Largest response body `send` returns whole.
    pub max_body_bytes: u64,
    /// Largest response body `send-streaming` passes through.
    pub max_stream_bytes: u64,
    /// Fuel per call for this tenant, when the runtime meters fuel (`None`: the runtime's).
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(300),
            max_body_bytes: 32 << 20,
            max_stream_bytes: 1 << 30,
            fuel: None,
        }
    }
}

/// HTTP timeouts (in a tenant file: `[timeouts]`, each field optional).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// Whole-request timeout (headers and body).
    #[serde(with = "humantime_serde")]
    pub request: Duration,
    /// Longest wait for the response headers, and for the body once they arrived (a stalled or
    /// cut connection fails after this, and is retried).
    #[serde(with = "humantime_serde")]
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
            read: Duration::from_secs(60),
        }
    }
}

/// Longest tenant id, in bytes.
pub const MAX_TENANT_ID_BYTES: usize = 200;

/// Why `id` cannot name a tenant, or `None` when it can. A tenant id namespaces the tenant's
/// state, names its work items and its records' schema, and is shown in logs: it must be
/// non-empty printable text of at most [`MAX_TENANT_ID_BYTES`] bytes. Control characters are
/// refused, NUL among them, which PostgreSQL's text cannot hold: one tenant whose id the
/// database refuses would otherwise fail every query that names all tenants at once.
pub fn tenant_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("the id is empty".into());
    }
    if id.len() > MAX_TENANT_ID_BYTES {
        return Some(format!(
            "the id is {} bytes long, more than the {MAX_TENANT_ID_BYTES} a tenant id may have",
            id.len()
        ));
    }
    id.chars().find(|c| c.is_control()).map(|c| {
        format!(
            "the id holds the control character U+{:04X}; a tenant id is printable text",
            u32::from(c)
        )
    })
}

/// Everything the host knows about one tenant.
#[derive(Debug, Clone)]
pub struct TenantConfig {
    /// Stable id; namespaces the tenant's storage.
    pub id: String,
    /// The server's base URL (with any context path).
    pub base_url: String,
    /// How to authenticate.
    pub credentials: Credentials,
    /// A PEM bundle of extra CA certificates to trust (self-signed servers).
    pub ca_bundle: Option<PathBuf>,
    /// Sandbox limits.
    pub limits: Limits,
    /// HTTP timeouts.
    pub timeouts: Timeouts,
    /// Items per list request (`None`: the connector's default).
    pub page_size: Option<u32>,
    /// Rate limit and retries, shared by all of the tenant's calls.
    pub http_policy: crate::policy::HttpPolicy,
}

impl TenantConfig {
    /// A tenant with default limits.
    pub fn new(
        id: impl Into<String>,
        base_url: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        Self {
            id: id.into(),
            base_url: base_url.into(),
            credentials,
            ca_bundle: None,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            page_size: None,
            http_policy: crate::policy::HttpPolicy::default(),
        }
    }
}
