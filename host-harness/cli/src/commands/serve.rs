//! `bbdc serve`: the webhook endpoint over HTTP, until SIGTERM or SIGINT.

use crate::args::{
    NO_SERVER, ServerArgs, parse_max_body, parse_timeout, parse_window, runtime, secret_from_env,
};
use anyhow::{Result, bail};
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::database::Database;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
/// Arguments of `bbdc serve`.
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where records and state go: a SQLite file, or a PostgreSQL database as a
    /// `postgres://user@host/db` URL, which several `serve` replicas (and `sync` workers) may
    /// share.
    #[arg(long, value_name = "PATH|URL", default_value = "bbdc.sqlite", value_parser = Database::parse)]
    pub db: Database,
    /// Name of the environment variable holding the webhook secret.
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
    /// Accept deliveries without a secret (unverified). Refused unless given.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// The server (flags or `--tenant FILE`): when given, accepted pull requests are refreshed
    /// through it in the background.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Threads answering deliveries (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Largest body accepted, in bytes (at most the connector's own cap, 8 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = bbdc_jobs::webhook::DEFAULT_MAX_BODY, value_parser = parse_max_body)]
    pub max_body: usize,
    /// Connections open at once (1 to 65536); more wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// Close a connection that sends no complete request head this long after opening or after
    /// its last answer (e.g. `15s`).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_timeout)]
    pub idle_timeout: std::time::Duration,
    /// Longest wait for a request body once its head arrived (408 beyond).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub body_timeout: std::time::Duration,
    /// How long SIGTERM (or SIGINT) may take: deliveries in flight are answered, the
    /// background refresh stops before its next call, and one still waiting on the server at
    /// this deadline is left behind (what it acknowledged is kept).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub drain: std::time::Duration,
    /// How long a delivery's X-Request-Id is remembered for de-duplication (e.g. `7d`).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_window)]
    pub dedup_window: std::time::Duration,
}

pub fn run(component: Option<PathBuf>, args: &ServeArgs) -> Result<ExitCode> {
    use bbdc_jobs::serve::{ServeConfig, WebhookServer};
    let secret = match (&args.secret_env, args.allow_unsigned) {
        (Some(var), _) => Some(secret_from_env(var)?),
        (None, true) => None,
        (None, false) => bail!(
            "refusing to accept unverified webhooks: give --secret-env VAR (or --allow-unsigned)"
        ),
    };
    let refresh = args.server.configured();
    let config = if refresh {
        args.server.tenant_config()?
    } else {
        TenantConfig::new("default", NO_SERVER, Credentials::None)
    };
    // Each answering thread writes at once, and the background refresh beside them.
    let stores = args.db.open(
        &config.id,
        u32::from(args.workers) + 4,
        Some(args.dedup_window),
    )?;
    let tenant = Arc::new(Tenant::new(config, Arc::clone(&stores.kv))?);
    stores.share_budget(&tenant);
    let records = stores.records;
    let runtime = Arc::new(runtime(component)?);
    let server = WebhookServer::start(
        runtime,
        tenant,
        records,
        ServeConfig {
            max_body: args.max_body,
            workers: usize::from(args.workers),
            refresh,
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            idle_timeout: args.idle_timeout,
            body_timeout: args.body_timeout,
            drain_timeout: args.drain,
            stop_on_signals: true,
            ..ServeConfig::new(args.listen.clone(), secret)
        },
    )?;
    eprintln!(
        "bbdc serve: listening on http://{}{}",
        server.addr(),
        bbdc_jobs::serve::WEBHOOK_PATH
    );
    // Returns after SIGTERM or SIGINT, once the deliveries in flight are answered, within the
    // drain.
    if server.wait() {
        eprintln!("bbdc serve: stopped");
    } else {
        eprintln!(
            "bbdc serve: stopped, leaving a background refresh that was still waiting on the server"
        );
    }
    Ok(ExitCode::SUCCESS)
}
