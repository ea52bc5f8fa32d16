//! `bbdc`: run the Bitbucket DC connector component for real.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use host_harness::output;
use host_harness::printable;
use host_harness::storage::SqliteKv;
use host_harness::{Credentials, Runtime, RuntimeConfig, Tenant, TenantConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Run the Bitbucket Data Center connector component.
#[derive(Parser)]
#[command(name = "bbdc", version, about)]
struct Cli {
    /// Load this component file instead of the one built into `bbdc`.
    #[arg(long, global = true, value_name = "PATH")]
    component: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check that a server answers, the credentials work and there is something to import.
    Check {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Import projects, repositories, users and pull requests into SQLite (incremental).
    Sync(SyncArgs),
    /// Handle one webhook delivery (body from a file or stdin) and print what became of it.
    Webhook(WebhookArgs),
    /// Answer Bitbucket webhooks over HTTP at POST /webhooks/bitbucket_data_center.
    Serve(ServeArgs),
    /// Serve a simulated Bitbucket Data Center (for trials, tests and benchmarks).
    Sim(SimArgs),
    /// No setup: simulator, check, full sync, webhooks into serve, incremental sync.
    Demo(DemoArgs),
    /// Run the benchmark suite (see BENCHMARKS.md); each line prints a figure and its target.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Small sizes, few iterations: checks the suite runs, the figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// Run only these benchmarks (1 to 6), e.g. `--only 1,3`.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    only: Vec<u8>,
    /// Latency the simulator adds per request in benchmark 4, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    latency_ms: u64,
    /// Repositories synced at a time in benchmark 4 (both strategies).
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,
    /// Concurrent senders in benchmark 6.
    #[arg(long, value_name = "N", default_value_t = 32)]
    senders: usize,
    /// Also print the figures as the Markdown table of BENCHMARKS.md.
    #[arg(long)]
    markdown: bool,
}

#[derive(Args)]
struct SimArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7990")]
    listen: String,
    /// Seed of the generated instance.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The Bitbucket version to imitate: 5.16, 7.21, 8.19, 9.2 or 10.3.
    #[arg(long, value_name = "VERSION", default_value = "9.2")]
    server_version: host_harness::sim::version::ServerVersion,
    /// `reference` (bodies as that version sends them) or `varied[:SEED]` (also rewritten the way
    /// plugins and proxies rewrite them: unknown fields, nulls, other types and shapes).
    #[arg(
        long,
        value_name = "reference|varied[:SEED]",
        default_value = "reference"
    )]
    shapes: host_harness::sim::render::Shapes,
    /// Projects.
    #[arg(long, default_value_t = 3)]
    projects: usize,
    /// Repositories per project.
    #[arg(long, default_value_t = 3)]
    repos_per_project: usize,
    /// Pull requests per repository.
    #[arg(long, default_value_t = 40)]
    prs_per_repo: usize,
    /// Users.
    #[arg(long, default_value_t = 12)]
    users: usize,
    /// Require this Bearer token, read from the named environment variable.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Share of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    rate_429: f64,
    /// Share of requests answered 502/503.
    #[arg(long, default_value_t = 0.0)]
    rate_5xx: f64,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of responses cut mid-body.
    #[arg(long, default_value_t = 0.0)]
    cut_rate: f64,
    /// Share of responses with malformed JSON.
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Pull requests whose diff always fails.
    #[arg(long, default_value_t = 0)]
    broken_prs: usize,
    /// Change a random open pull request this often (milliseconds).
    #[arg(long, value_name = "MS")]
    update_every_ms: Option<u64>,
    /// Send signed webhooks for changes to this URL.
    #[arg(long, value_name = "URL", requires = "webhook_secret_env")]
    webhook_url: Option<String>,
    /// Environment variable holding the webhook secret.
    #[arg(long, value_name = "VAR")]
    webhook_secret_env: Option<String>,
    /// Write the ground truth (one pull_request JSON line each) to this file and keep serving.
    #[arg(long, value_name = "PATH")]
    truth: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Where the demo's SQLite file goes.
    #[arg(long, value_name = "PATH", default_value = "bbdc-demo.sqlite")]
    db: PathBuf,
}

#[derive(Args)]
struct WebhookArgs {
    /// Name of the environment variable holding the webhook secret.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// A request header, as 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'Name: value'", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The raw body: a file, or `-` for stdin.
    #[arg(long, value_name = "PATH|-", default_value = "-")]
    body: String,
    /// Persist accepted deliveries (and deduplicate) in this SQLite file, as `serve` does.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Largest body accepted, in bytes (at most the connector's own cap, 8 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = host_harness::webhook::DEFAULT_MAX_BODY, value_parser = parse_max_body)]
    max_body: usize,
    /// Print the JSON report instead of one line for people.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// SQLite file for records and state.
    #[arg(long, value_name = "PATH", default_value = "bbdc.sqlite")]
    db: PathBuf,
    /// Name of the environment variable holding the webhook secret.
    #[arg(long, value_name = "VAR")]
    secret_env: Option<String>,
    /// Accept deliveries without a secret (unverified). Refused unless given.
    #[arg(long)]
    allow_unsigned: bool,
    /// Server base URL: with credentials, accepted pull requests are refreshed in the background.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Name of the environment variable holding an HTTP access token.
    #[arg(long, value_name = "VAR", requires = "base_url", conflicts_with_all = ["username", "password_env"])]
    token_env: Option<String>,
    /// User name for Basic authentication (with --password-env).
    #[arg(long, value_name = "USER", requires_all = ["base_url", "password_env"])]
    username: Option<String>,
    /// Name of the environment variable holding the password for --username.
    #[arg(long, value_name = "VAR", requires = "username")]
    password_env: Option<String>,
    /// PEM file of CA certificates to trust.
    #[arg(long, value_name = "PATH")]
    ca_cert: Option<PathBuf>,
    /// Threads answering deliveries (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Largest body accepted, in bytes (at most the connector's own cap, 8 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = host_harness::webhook::DEFAULT_MAX_BODY, value_parser = parse_max_body)]
    max_body: usize,
    /// Connections open at once (1 to 65536); more wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_connections: u32,
    /// Close a connection that sends no complete request head this long after opening or after
    /// its last answer (e.g. `15s`).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_timeout)]
    idle_timeout: std::time::Duration,
    /// Longest wait for a request body once its head arrived (408 beyond).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    body_timeout: std::time::Duration,
    /// How long a delivery's X-Request-Id is remembered for de-duplication (e.g. `7d`).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_window)]
    dedup_window: std::time::Duration,
}

/// A body cap no larger than the connector accepts.
fn parse_max_body(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let cap = host_harness::webhook::CONNECTOR_MAX_BODY;
    if n == 0 || n > cap {
        return Err(format!(
            "must be between 1 and {cap} (the connector's own cap)"
        ));
    }
    Ok(n)
}

/// A duration such as `30s` or `2m`, between 1 s and 1 h.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(s, 1, 3600)
}

/// A duration such as `7d`, between 1 s and 365 days.
fn parse_window(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(s, 1, 365 * 24 * 3600)
}

fn parse_duration_within(s: &str, min_s: u64, max_s: u64) -> Result<std::time::Duration, String> {
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

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?} is not 'Name: value'")),
    }
}

/// Whether a kind of repository is visited.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Inclusion {
    /// Visit them.
    Include,
    /// Leave them out.
    Exclude,
}

/// Which of the visible repositories `check` counts and `sync` visits.
#[derive(Args)]
struct FilterArgs {
    /// Repositories in personal projects (`~USER`), which `GET /projects` does not list.
    #[arg(
        long,
        value_enum,
        value_name = "include|exclude",
        default_value = "include"
    )]
    personal: Inclusion,
    /// Archived repositories (Bitbucket 8.0+).
    #[arg(
        long,
        value_enum,
        value_name = "include|exclude",
        default_value = "include"
    )]
    archived: Inclusion,
}

impl FilterArgs {
    fn filter(&self) -> host_harness::bindings::types::RepoFilter {
        host_harness::bindings::types::RepoFilter {
            include_personal: self.personal == Inclusion::Include,
            include_archived: self.archived == Inclusion::Include,
        }
    }
}

#[derive(Args)]
struct SyncArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// SQLite file for records and sync state.
    #[arg(long, value_name = "PATH", default_value = "bbdc.sqlite")]
    db: PathBuf,
    /// Only this project (repeatable).
    #[arg(long = "project", value_name = "KEY")]
    projects: Vec<String>,
    /// Only this repository, as KEY/slug (repeatable).
    #[arg(long = "repo", value_name = "KEY/slug", value_parser = parse_repo)]
    repos: Vec<(String, String)>,
    /// Ignore pull requests last updated before this date (UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    since: Option<i64>,
    /// Repositories synced at once (1 to 64).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Also write every record as a JSON line to this file (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    jsonl: Option<String>,
    /// List every pull request (reconciliation) instead of stopping at what is known.
    #[arg(long)]
    full: bool,
    /// Print the closing summary as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_repo(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((k, r)) if !k.is_empty() && !r.is_empty() && !r.contains('/') => {
            Ok((k.to_owned(), r.to_owned()))
        }
        _ => Err(format!("{s:?} is not KEY/slug")),
    }
}

fn parse_date(s: &str) -> Result<i64, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date =
        time::Date::parse(s, &format).map_err(|e| format!("{s:?} is not YYYY-MM-DD: {e}"))?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Where the server is and how to authenticate. Secrets come from environment variables only.
#[derive(Args)]
struct ServerArgs {
    /// Base URL of the server, with any context path (e.g. https://git.acme.com/bitbucket).
    #[arg(long, value_name = "URL")]
    base_url: String,
    /// Name of the environment variable holding an HTTP access token (sent as Bearer).
    #[arg(long, value_name = "VAR", conflicts_with_all = ["username", "password_env"])]
    token_env: Option<String>,
    /// User name for Basic authentication (with --password-env).
    #[arg(long, value_name = "USER", requires = "password_env")]
    username: Option<String>,
    /// Name of the environment variable holding the password or token for --username.
    #[arg(long, value_name = "VAR", requires = "username")]
    password_env: Option<String>,
    /// PEM file of CA certificates to trust instead of the public roots (self-signed servers).
    #[arg(long, value_name = "PATH")]
    ca_cert: Option<PathBuf>,
    /// Longest server-requested wait (Retry-After) honoured; a longer one fails the call
    /// rate-limited at once (1 s to 24 h).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_max_wait)]
    max_wait: std::time::Duration,
}

/// A duration such as `15m`, between 1 s and 24 h.
fn parse_max_wait(s: &str) -> Result<std::time::Duration, String> {
    parse_duration_within(s, 1, 24 * 3600)
}

fn secret_from_env(var: &str) -> Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) => bail!("environment variable {var} is empty"),
        Err(_) => bail!("environment variable {var} is not set"),
    }
}

impl ServerArgs {
    fn credentials(&self) -> Result<Credentials> {
        match (&self.token_env, &self.username, &self.password_env) {
            (Some(var), _, _) => Ok(Credentials::Bearer(secret_from_env(var)?)),
            (None, Some(user), Some(var)) => Ok(Credentials::Basic {
                username: user.clone(),
                password: secret_from_env(var)?,
            }),
            _ => bail!("give --token-env VAR, or --username USER with --password-env VAR"),
        }
    }

    fn tenant_config(&self) -> Result<TenantConfig> {
        let mut config = TenantConfig::new("default", self.base_url.clone(), self.credentials()?);
        config.ca_bundle = self.ca_cert.clone();
        config.http_policy.max_wait = self.max_wait;
        Ok(config)
    }
}

fn runtime(component: Option<PathBuf>) -> Result<Runtime> {
    Ok(Runtime::new(&RuntimeConfig {
        component_path: component,
        cache_dir: RuntimeConfig::default_cache_dir(),
        fuel: None,
        pooling_slots: None,
    })?)
}

fn check(
    component: Option<PathBuf>,
    server: &ServerArgs,
    filter: &FilterArgs,
    json: bool,
) -> Result<ExitCode> {
    let fail = |code: &str, message: &str| {
        if json {
            println!("{}", output::failure_json(code, message));
        } else {
            eprintln!(
                "connection check failed: {code}: {}",
                printable::shown(message)
            );
        }
        Ok(ExitCode::FAILURE)
    };
    let config = match server.tenant_config() {
        Ok(c) => c,
        Err(e) => return fail("invalid_config", &format!("{e:#}")),
    };
    let kv = Arc::new(SqliteKv::in_memory()?);
    let tenant = match Tenant::new(config, kv) {
        Ok(t) => Arc::new(t),
        Err(e) => return fail("invalid_config", &e.to_string()),
    };
    let runtime = runtime(component)?;
    match runtime.check_connection(&tenant, filter.filter()) {
        Ok(report) => {
            if json {
                println!("{}", output::check_json(&report));
            } else {
                println!("connection ok");
                println!(
                    "  server:       {} {}",
                    printable::shown(report.server_name.as_deref().unwrap_or("Bitbucket")),
                    printable::shown(
                        report
                            .server_version
                            .as_deref()
                            .unwrap_or("(version unknown)")
                    )
                );
                println!(
                    "  account:      {}",
                    printable::shown(report.user.as_deref().unwrap_or("(the server did not say)"))
                );
                println!(
                    "  projects:     {} (personal projects are not listed)",
                    report.projects
                );
                println!(
                    "  repositories: {} to sync ({} personal, {} archived; {} left out by the filter)",
                    report.repos,
                    report.personal_repos,
                    report.archived_repos,
                    report.excluded_repos
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let (code, message) = output::call_error(&e);
            fail(code, &message)
        }
    }
}

fn sync(component: Option<PathBuf>, args: &SyncArgs) -> Result<ExitCode> {
    use host_harness::records::SqliteRecords;
    use host_harness::sync::{self, SyncJob};
    use std::io::{IsTerminal, Write};
    let config = args.server.tenant_config()?;
    let kv = Arc::new(
        SqliteKv::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?,
    );
    let records =
        SqliteRecords::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    let tenant = Arc::new(Tenant::new(config, kv)?);
    let runtime = runtime(component)?;
    let jsonl: Option<sync::JsonlOut> = match args.jsonl.as_deref() {
        None => None,
        Some("-") => Some(std::sync::Mutex::new(Box::new(std::io::stdout()))),
        Some(path) => Some(std::sync::Mutex::new(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {path}"))?,
        )))),
    };
    let job = SyncJob {
        projects: args.projects.clone(),
        repos: args.repos.clone(),
        filter: args.filter.filter(),
        since: args.since,
        full: args.full,
        concurrency: usize::from(args.concurrency),
        progress: std::io::stderr().is_terminal(),
        ..SyncJob::default()
    };
    let report = match sync::run(&runtime, &tenant, &records, jsonl.as_ref(), &job) {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            }
            bail!(e);
        }
    };
    let summary = output::sync_summary_json(&report, &args.db);
    // With JSON lines on stdout, the summary goes to stderr.
    let mut out: Box<dyn Write> = if args.jsonl.as_deref() == Some("-") {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    if args.json {
        writeln!(out, "{summary}")?;
    } else {
        writeln!(out, "{}", output::sync_summary_text(&report, &args.db))?;
    }
    Ok(ExitCode::from(report.status().exit_code()))
}

fn sim_faults(a: &SimArgs) -> host_harness::sim::Faults {
    host_harness::sim::Faults {
        rate_429: a.rate_429,
        rate_5xx: a.rate_5xx,
        latency: std::time::Duration::from_millis(a.latency_ms),
        cut_rate: a.cut_rate,
        malformed_rate: a.malformed_rate,
        broken_prs: a.broken_prs,
        update_every: a.update_every_ms.map(std::time::Duration::from_millis),
    }
}

fn sim(args: &SimArgs) -> Result<ExitCode> {
    use host_harness::sim::{SimConfig, Simulator, world::WorldSpec};
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
        dialect: host_harness::sim::render::Dialect {
            version: args.server_version,
            shapes: args.shapes,
        },
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

/// The tenant used when no server is configured (webhook handling needs none).
const NO_SERVER: &str = "https://bitbucket.invalid";

fn webhook(component: Option<PathBuf>, args: &WebhookArgs) -> Result<ExitCode> {
    use host_harness::records::{RecordSink, SqliteRecords};
    use std::io::Read;
    let secret = args
        .secret_env
        .as_deref()
        .map(secret_from_env)
        .transpose()?;
    // At most the cap and one byte more are read: enough to tell a body over the cap.
    let limit = u64::try_from(args.max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut body = Vec::new();
    if args.body == "-" {
        std::io::stdin().take(limit).read_to_end(&mut body)?;
    } else {
        std::fs::File::open(&args.body)
            .and_then(|f| f.take(limit).read_to_end(&mut body))
            .with_context(|| format!("reading {}", args.body))?;
    }
    let kv: Arc<dyn host_harness::storage::KvStore> = match &args.db {
        Some(db) => Arc::new(SqliteKv::open(db)?),
        None => Arc::new(SqliteKv::in_memory()?),
    };
    let records = args.db.as_deref().map(SqliteRecords::open).transpose()?;
    let tenant = Arc::new(Tenant::new(
        TenantConfig::new("default", NO_SERVER, Credentials::None),
        kv,
    )?);
    let runtime = runtime(component)?;
    let report = host_harness::webhook::handle(
        &runtime,
        &tenant,
        secret.as_deref(),
        args.max_body,
        args.headers.clone(),
        body,
        records.as_ref().map(|r| r as &dyn RecordSink),
    );
    if args.json {
        println!("{}", host_harness::webhook::report_json(&report));
    } else {
        let shown = |v: Option<&str>| printable::prefix(v.unwrap_or("-")).to_string();
        let mut line = format!(
            "{} {} {} {}",
            report.http_status,
            report.result,
            shown(report.event_key.as_deref()),
            shown(report.request_id.as_deref())
        );
        if let (Some(code), Some(message)) = (report.error, report.message.as_deref()) {
            line.push_str(&format!(": {code}: {}", printable::shown(message)));
        }
        println!("{line}");
    }
    Ok(
        if report.result == "rejected" || report.http_status >= 500 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn serve(component: Option<PathBuf>, args: &ServeArgs) -> Result<ExitCode> {
    use host_harness::records::SqliteRecords;
    use host_harness::serve::{ServeConfig, WebhookServer};
    let secret = match (&args.secret_env, args.allow_unsigned) {
        (Some(var), _) => Some(secret_from_env(var)?),
        (None, true) => None,
        (None, false) => bail!(
            "refusing to accept unverified webhooks: give --secret-env VAR (or --allow-unsigned)"
        ),
    };
    let (config, refresh) = match &args.base_url {
        Some(url) => {
            let server = ServerArgs {
                base_url: url.clone(),
                token_env: args.token_env.clone(),
                username: args.username.clone(),
                password_env: args.password_env.clone(),
                ca_cert: args.ca_cert.clone(),
                max_wait: host_harness::policy::DEFAULT_MAX_WAIT,
            };
            (server.tenant_config()?, true)
        }
        None => (
            TenantConfig::new("default", NO_SERVER, Credentials::None),
            false,
        ),
    };
    let kv = Arc::new(SqliteKv::open(&args.db)?);
    let records = Arc::new(SqliteRecords::open(&args.db)?.with_dedup_window(args.dedup_window));
    let tenant = Arc::new(Tenant::new(config, kv)?);
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
            stop_on_signals: true,
            ..ServeConfig::new(args.listen.clone(), secret)
        },
    )?;
    eprintln!(
        "bbdc serve: listening on http://{}{}",
        server.addr(),
        host_harness::serve::WEBHOOK_PATH
    );
    // Returns after SIGTERM or SIGINT, once the deliveries in flight are answered.
    server.wait();
    eprintln!("bbdc serve: stopped");
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(default: &str) {
    let spec = std::env::var("BBDC_LOG").unwrap_or_else(|_| default.to_owned());
    let filter = host_harness::logging::env_filter(&spec);
    // Colours only for a terminal: a log file or pipe gets no escape codes at all.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn bench(component: Option<PathBuf>, args: &BenchArgs) -> Result<ExitCode> {
    use host_harness::bench::{self, BenchOptions};
    let options = BenchOptions {
        quick: args.quick,
        latency: std::time::Duration::from_millis(args.latency_ms),
        concurrency: args.concurrency,
        senders: args.senders,
        component,
        only: args.only.clone(),
    };
    let figures = bench::run(&options, |f| {
        let verdict = match f.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "{}. {:<72} {:>12}   target {:<10} {verdict}",
            f.bench,
            f.name,
            f.shown(),
            f.target.describe(f.unit)
        );
        println!("   {}", f.detail);
    })?;
    if args.markdown {
        println!("\n{}", bench::markdown_table(&figures));
    }
    let missed = figures.iter().filter(|f| f.met() == Some(false)).count();
    if missed > 0 {
        println!("{missed} figure(s) missed their target");
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` logs one line per delivery; the demo narrates for itself.
    init_tracing(match cli.command {
        Command::Serve(_) => "warn,host_harness::serve=info",
        Command::Demo(_) => "error",
        _ => "warn",
    });
    let result = match &cli.command {
        Command::Check {
            server,
            filter,
            json,
        } => check(cli.component.clone(), server, filter, *json),
        Command::Sync(args) => sync(cli.component.clone(), args),
        Command::Webhook(args) => webhook(cli.component.clone(), args),
        Command::Serve(args) => serve(cli.component.clone(), args),
        Command::Sim(args) => sim(args),
        Command::Bench(args) => bench(cli.component.clone(), args),
        Command::Demo(args) => host_harness::demo::run(cli.component.clone(), &args.db).map(|ok| {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }),
    };
    match result.context("bbdc") {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable::shown(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
