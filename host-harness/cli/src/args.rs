//! What the subcommands share: where the server is and how to authenticate, which repositories
//! are visited, secrets from the environment, and the parsers of flag values.

use anyhow::{Result, bail};
use bbdc_host::{Credentials, Runtime, RuntimeConfig, TenantConfig, TenantFile};
use clap::Args;
use std::path::PathBuf;

/// Where the server is and how to authenticate: flags for the common case, or a tenant file
/// (server, credentials reference, limits) with `--tenant`. Secrets come from environment
/// variables (or, in a tenant file, from files) only.
#[derive(Args)]
pub struct ServerArgs {
    /// A tenant file, TOML (or JSON when it ends in `.json`): base URL, where the credentials
    /// are, CA bundle, page size, limits, timeouts and HTTP policy (see the README).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["base_url", "token_env", "username", "password_env", "ca_cert"])]
    pub tenant: Option<PathBuf>,
    /// Base URL of the server, with any context path (e.g. https://git.acme.com/bitbucket).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding an HTTP access token (sent as Bearer).
    #[arg(long, value_name = "VAR", requires = "base_url", conflicts_with_all = ["username", "password_env"])]
    pub token_env: Option<String>,
    /// User name for Basic authentication (with --password-env).
    #[arg(long, value_name = "USER", requires_all = ["base_url", "password_env"])]
    pub username: Option<String>,
    /// Name of the environment variable holding the password or token for --username.
    #[arg(long, value_name = "VAR", requires = "username")]
    pub password_env: Option<String>,
    /// PEM file of CA certificates to trust instead of the public roots (self-signed servers).
    #[arg(long, value_name = "PATH", requires = "base_url")]
    pub ca_cert: Option<PathBuf>,
    /// Longest server-requested wait (Retry-After) honoured; a longer one fails the call
    /// rate-limited at once (1 s to 24 h; default 15m, or the tenant file's).
    #[arg(long, value_name = "DURATION", value_parser = parse_max_wait)]
    pub max_wait: Option<std::time::Duration>,
    /// The account's rate budget, requests per second (the server's refill), or `unlimited`
    /// for none on the client's side (it then adapts to the server's 429s). Default: the
    /// tenant file's, or else the budget the server reports for the account, read at the
    /// start. Requests are paced 3 % under it; a lone 429 is waited out, and only a run of them
    /// lowers the rate (said in the log and the summary).
    #[arg(long, value_name = "N|unlimited", value_parser = bbdc_host::policy::parse_rate)]
    pub rate: Option<f64>,
    /// Requests that may leave at once before --rate applies: the server's bucket (default:
    /// the tenant file's, or the server's for the account; with --rate alone, 60, Bitbucket's
    /// default).
    #[arg(long, value_name = "N", value_parser = bbdc_host::policy::parse_burst)]
    pub burst: Option<f64>,
}

/// A duration such as `15m`, between 1 s and 24 h.
pub fn parse_max_wait(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(s, 1, 24 * 3600)
}

/// A secret from environment variable `var`, by the one rule tenant files follow too
/// ([`bbdc_host::tenant_file::secret_from_env`]).
pub fn secret_from_env(var: &str) -> Result<String> {
    bbdc_host::tenant_file::secret_from_env(var).map_err(anyhow::Error::msg)
}

impl ServerArgs {
    pub fn credentials(&self) -> Result<Credentials> {
        match (&self.token_env, &self.username, &self.password_env) {
            (Some(var), _, _) => Ok(Credentials::Bearer(secret_from_env(var)?)),
            (None, Some(user), Some(var)) => Ok(Credentials::Basic {
                username: user.clone(),
                password: secret_from_env(var)?,
            }),
            _ => bail!("give --token-env VAR, or --username USER with --password-env VAR"),
        }
    }

    /// Whether a server is configured at all (by flags or a tenant file).
    pub fn configured(&self) -> bool {
        self.tenant.is_some() || self.base_url.is_some()
    }

    /// The tenant the flags or the tenant file describe.
    pub fn tenant_config(&self) -> Result<TenantConfig> {
        let mut config = match (&self.tenant, &self.base_url) {
            (Some(path), _) => TenantFile::load(path)?.resolve()?,
            (None, Some(url)) => {
                let mut config = TenantConfig::new("default", url.clone(), self.credentials()?);
                config.ca_bundle = self.ca_cert.clone();
                config
            }
            (None, None) => bail!("give --base-url URL (with credentials) or --tenant FILE"),
        };
        if let Some(wait) = self.max_wait {
            config.http_policy.max_wait = wait;
        }
        let policy = &mut config.http_policy;
        let unlimited = self.rate.map_or(
            policy.told && policy.ceiling().is_infinite(),
            f64::is_infinite,
        );
        if self.burst.is_some() && unlimited {
            bail!("--burst needs a rate limit: the rate is unlimited (give --rate N too)");
        }
        policy.tell(self.rate, self.burst);
        Ok(config)
    }
}

pub fn runtime(component: Option<PathBuf>) -> Result<Runtime> {
    Ok(Runtime::new(&RuntimeConfig {
        component_path: component,
        cache_dir: RuntimeConfig::default_cache_dir(),
        fuel: None,
        pooling_slots: None,
        ..RuntimeConfig::default()
    })?)
}

/// Whether a kind of repository is visited.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Inclusion {
    /// Visit them.
    Include,
    /// Leave them out.
    Exclude,
}

/// Which of the visible repositories `check` counts and `sync` visits.
#[derive(Args)]
pub struct FilterArgs {
    /// Repositories in personal projects (`~USER`), which `GET /projects` does not list.
    #[arg(
        long,
        value_enum,
        value_name = "include|exclude",
        default_value = "include"
    )]
    pub personal: Inclusion,
    /// Archived repositories (Bitbucket 8.0+).
    #[arg(
        long,
        value_enum,
        value_name = "include|exclude",
        default_value = "include"
    )]
    pub archived: Inclusion,
}

impl FilterArgs {
    pub fn filter(&self) -> bbdc_host::bindings::types::RepoFilter {
        bbdc_host::bindings::types::RepoFilter {
            include_personal: self.personal == Inclusion::Include,
            include_archived: self.archived == Inclusion::Include,
        }
    }
}

/// A body cap no larger than the connector accepts.
pub fn parse_max_body(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let cap = bbdc_jobs::webhook::CONNECTOR_MAX_BODY;
    if n == 0 || n > cap {
        return Err(format!(
            "must be between 1 and {cap} (the connector's own cap)"
        ));
    }
    Ok(n)
}

/// A duration such as `30s` or `2m`, between 1 s and 1 h.
pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(s, 1, 3600)
}

/// A duration such as `7d`, between 1 s and 365 days.
pub fn parse_window(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(s, 1, 365 * 24 * 3600)
}

pub fn parse_duration_within(
    s: &str,
    min_s: u64,
    max_s: u64,
) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.as_secs() < min_s || d.as_secs() > max_s {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(std::time::Duration::from_secs(min_s)),
            humantime::format_duration(std::time::Duration::from_secs(max_s))
        ));
    }
    Ok(d)
}

pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?} is not 'Name: value'")),
    }
}

pub fn parse_repo(s: &str) -> Result<bbdc_host::bindings::api::RepoRef, String> {
    match s.split_once('/') {
        Some((k, r)) if !k.is_empty() && !r.is_empty() && !r.contains('/') => {
            Ok(bbdc_host::bindings::api::RepoRef {
                project_key: k.to_owned(),
                slug: r.to_owned(),
            })
        }
        _ => Err(format!("{s:?} is not KEY/slug")),
    }
}

pub fn parse_date(s: &str) -> Result<i64, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date =
        time::Date::parse(s, &format).map_err(|e| format!("{s:?} is not YYYY-MM-DD: {e}"))?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// The tenant used when no server is configured (webhook handling needs none).
pub const NO_SERVER: &str = "https://bitbucket.invalid";
