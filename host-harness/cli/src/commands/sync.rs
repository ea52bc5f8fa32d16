//! `bbdc sync`: projects, repositories, users, pull requests and their history into SQLite or
//! PostgreSQL, incrementally.

use crate::args::{FilterArgs, ServerArgs, parse_date, parse_repo, runtime};
use anyhow::{Context, Result, bail};
use bbdc_host::Tenant;
use bbdc_jobs::database::Database;
use bbdc_jobs::output;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
/// Arguments of `bbdc sync`.
pub struct SyncArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Where records and sync state go: a SQLite file, or a PostgreSQL database as a
    /// `postgres://user@host/db` URL (tables created and migrated on start).
    #[arg(long, value_name = "PATH|URL", default_value = "bbdc.sqlite", value_parser = Database::parse)]
    pub db: Database,
    /// Only this project (repeatable).
    #[arg(long = "project", value_name = "KEY")]
    pub projects: Vec<String>,
    /// Only this repository, as KEY/slug (repeatable).
    #[arg(long = "repo", value_name = "KEY/slug", value_parser = parse_repo)]
    pub repos: Vec<bbdc_host::bindings::api::RepoRef>,
    /// Ignore pull requests last updated before this date (UTC).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub since: Option<i64>,
    /// Repositories synced at once (1 to 64).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Also write every record as a JSON line to this file (`-` for stdout).
    #[arg(long, value_name = "PATH|-")]
    pub jsonl: Option<String>,
    /// List every pull request (reconciliation) instead of stopping at what is known.
    #[arg(long)]
    pub full: bool,
    /// What to import from each repository: `pull-requests`, `commits` (the default branch's,
    /// with branches and tags, and with `pull-requests` each pull request's; contract 0.2.0),
    /// `builds` (the build statuses of the commits the other two bring), or `all`,
    /// comma-separated [default: all]
    #[arg(long, value_name = "LIST", value_parser = bbdc_jobs::sync::Entities::parse)]
    pub entities: Option<bbdc_jobs::sync::Entities>,
    /// Most pages (calls) any one listing may take before it is stopped with an error: the
    /// projects, repositories and users, and each repository's pull requests, commits,
    /// branches, tags and pull requests' commits. A repository whose listing is stopped is
    /// reported failed with the reason; the rest goes on.
    #[arg(long, value_name = "N", default_value_t = bbdc_jobs::guard::MAX_LISTING_PAGES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_listing_pages: u64,
    /// Most items any one listing may bring before it is stopped with an error.
    #[arg(long, value_name = "N", default_value_t = bbdc_jobs::guard::MAX_LISTING_ITEMS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_listing_items: u64,
    /// Print the closing summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(component: Option<PathBuf>, args: &SyncArgs) -> Result<ExitCode> {
    use bbdc_jobs::sync::{self, SyncJob};
    use std::io::{IsTerminal, Write};
    let config = args.server.tenant_config()?;
    // Each repository pass writes records and state at once: two connections per pass.
    let stores = args
        .db
        .open(&config.id, u32::from(args.concurrency) * 2 + 2, None)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let tenant = Arc::new(Tenant::new(config, Arc::clone(&stores.kv))?);
    stores.share_budget(&tenant);
    let records = stores.records;
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
        entities: args.entities.unwrap_or_default(),
        max_listing_pages: args.max_listing_pages,
        max_listing_items: args.max_listing_items,
        progress: std::io::stderr().is_terminal(),
    };
    let report = match sync::run(&runtime, &tenant, records.as_ref(), jsonl.as_ref(), &job) {
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
    let summary = output::sync_summary_json(&report, &args.db.display());
    // With JSON lines on stdout, the summary goes to stderr.
    let mut out: Box<dyn Write> = if args.jsonl.as_deref() == Some("-") {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    if args.json {
        writeln!(out, "{summary}")?;
    } else {
        writeln!(
            out,
            "{}",
            output::sync_summary_text(&report, &args.db.display())
        )?;
    }
    Ok(ExitCode::from(report.status().exit_code()))
}
