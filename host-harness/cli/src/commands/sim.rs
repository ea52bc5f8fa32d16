//! `bbdc sim`: a simulated Bitbucket Data Center on a port, for trials, tests and benchmarks.

use crate::args::secret_from_env;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
/// Arguments of `bbdc sim`.
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7990")]
    pub listen: String,
    /// Seed of the generated instance.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The Bitbucket version to imitate: 5.16, 7.21, 8.19, 9.2 or 10.3.
    #[arg(long, value_name = "VERSION", default_value = "9.2")]
    pub server_version: bbdc_sim::version::ServerVersion,
    /// `reference` (bodies as that version sends them) or `varied[:SEED]` (also rewritten the way
    /// plugins and proxies rewrite them: unknown fields, nulls, other types and shapes).
    #[arg(
        long,
        value_name = "reference|varied[:SEED]",
        default_value = "reference"
    )]
    pub shapes: bbdc_sim::render::Shapes,
    /// Projects.
    #[arg(long, default_value_t = 3)]
    pub projects: usize,
    /// Repositories per project.
    #[arg(long, default_value_t = 3)]
    pub repos_per_project: usize,
    /// Pull requests per repository.
    #[arg(long, default_value_t = 40)]
    pub prs_per_repo: usize,
    /// Users.
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Require this Bearer token, read from the named environment variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Enforce Bitbucket's rate limit: a token bucket of this many requests per user, refilled
    /// at --server-refill per second; an empty bucket answers 429 with Retry-After.
    #[arg(long, value_name = "TOKENS", requires = "server_refill", value_parser = positive)]
    pub server_bucket: Option<f64>,
    /// Tokens added to --server-bucket per second.
    #[arg(long, value_name = "PER_SECOND", requires = "server_bucket", value_parser = positive)]
    pub server_refill: Option<f64>,
    /// What the rate-limit settings resources say about the bucket: `instance` (it is the
    /// instance's default; the account has none of its own), `account` (it is the account's
    /// own; without a bucket the account is exempt) or `refused` (both answer 401).
    #[arg(long, value_name = "WHOSE", default_value = "instance")]
    pub rate_settings: bbdc_sim::RateSettings,
    /// Share of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    rate_429: f64,
    /// Share of requests answered 502/503.
    #[arg(long, default_value_t = 0.0)]
    rate_5xx: f64,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of responses cut mid-body.
    #[arg(long, default_value_t = 0.0)]
    pub cut_rate: f64,
    /// Share of responses with malformed JSON.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Pull requests whose diff always fails.
    #[arg(long, default_value_t = 0)]
    pub broken_prs: usize,
    /// Change a random open pull request this often (milliseconds).
    #[arg(long, value_name = "MS")]
    pub update_every_ms: Option<u64>,
    /// Send signed webhooks for changes to this URL.
    #[arg(long, value_name = "URL", requires = "webhook_secret_env")]
    pub webhook_url: Option<String>,
    /// Environment variable holding the webhook secret.
    #[arg(long, value_name = "VAR")]
    pub webhook_secret_env: Option<String>,
    /// Write the ground truth (one pull_request JSON line each) to this file and keep serving.
    #[arg(long, value_name = "PATH")]
    pub truth: Option<PathBuf>,
    /// Never end one listing, as a hostile server: `projects`, `repos`, `users`,
    /// `pull-requests`, `activities`, `commits`, `pr-commits`, `branches`, `tags` or `builds`,
    /// with `:past` (pages of items without end, the default), `:creep` (`nextPageStart` one
    /// past the page's start) or `:empty` (empty pages that say more follows).
    #[arg(long, value_name = "LISTING[:STEP]", value_parser = bbdc_sim::Endless::parse)]
    pub endless: Option<bbdc_sim::Endless>,
}

/// A finite number above zero.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number above zero")),
    }
}

fn sim_faults(a: &SimArgs) -> bbdc_sim::Faults {
    bbdc_sim::Faults {
        rate_429: a.rate_429,
        rate_5xx: a.rate_5xx,
        latency: std::time::Duration::from_millis(a.latency_ms),
        cut_rate: a.cut_rate,
        malformed_rate: a.malformed_rate,
        broken_prs: a.broken_prs,
        update_every: a.update_every_ms.map(std::time::Duration::from_millis),
        endless: a.endless,
    }
}

pub fn run(args: &SimArgs) -> Result<ExitCode> {
    use bbdc_sim::{SimConfig, Simulator, world::WorldSpec};
    let token = args.token_env.as_deref().map(secret_from_env).transpose()?;
    let webhook = match (&args.webhook_url, &args.webhook_secret_env) {
        (Some(url), Some(var)) => Some((url.clone(), secret_from_env(var)?)),
        _ => None,
    };
    let sim = Simulator::start(SimConfig {
        listen: args.listen.clone(),
        spec: WorldSpec {
            seed: args.seed,
            projects: args.projects,
            repos_per_project: args.repos_per_project,
            prs_per_repo: args.prs_per_repo,
            users: args.users,
        },
        faults: sim_faults(args),
        token,
        webhook,
        dialect: bbdc_sim::render::Dialect {
            version: args.server_version,
            shapes: args.shapes,
        },
        rate_limit: args
            .server_bucket
            .zip(args.server_refill)
            .map(|(capacity, refill)| bbdc_sim::ServerRateLimit { capacity, refill }),
        rate_settings: args.rate_settings,
    })?;
    if let Some(path) = &args.truth {
        let lines: Vec<String> = sim.truth().iter().map(|v| v.to_string()).collect();
        std::fs::write(path, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "bbdc sim: a simulated Bitbucket {} at {}",
        args.server_version,
        sim.base_url()
    );
    println!("{}", sim.base_url());
    loop {
        std::thread::park();
    }
}
