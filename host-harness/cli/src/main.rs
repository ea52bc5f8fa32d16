//! `bbdc`: run the Bitbucket DC connector component for real.

mod args;
mod commands;

use anyhow::Context;
use args::{FilterArgs, ServerArgs};
use bbdc_jobs::printable;
use clap::{Parser, Subcommand};
use commands::{bench, check, demo, serve, sim, sync, webhook, worker};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Import projects, repositories, users, pull requests and their history into SQLite or
    /// PostgreSQL (incremental).
    Sync(sync::SyncArgs),
    /// Handle one webhook delivery (body from a file or stdin) and print what became of it.
    Webhook(webhook::WebhookArgs),
    /// Answer Bitbucket webhooks over HTTP at POST /webhooks/bitbucket_data_center.
    Serve(serve::ServeArgs),
    /// One of many processes sharing the sync of one or more tenants through PostgreSQL.
    Worker(worker::WorkerArgs),
    /// Serve a simulated Bitbucket Data Center (for trials, tests and benchmarks).
    Sim(sim::SimArgs),
    /// No setup: simulator, check, full sync, webhooks into serve, incremental sync.
    Demo(demo::DemoArgs),
    /// Run the benchmark suite (see BENCHMARKS.md); each line prints a figure and its target.
    Bench(bench::BenchArgs),
}

fn init_tracing(default: &str) {
    let spec = std::env::var("BBDC_LOG").unwrap_or_else(|_| default.to_owned());
    let filter = bbdc_host::logging::env_filter(&spec);
    // Colours only for a terminal: a log file or pipe gets no escape codes at all.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` logs one line per delivery; the demo narrates for itself.
    init_tracing(match cli.command {
        Command::Serve(_) => "warn,bbdc_jobs::serve=info",
        Command::Demo(_) => "error",
        _ => "warn",
    });
    let result = match &cli.command {
        Command::Check {
            server,
            filter,
            json,
        } => check::run(cli.component.clone(), server, filter, *json),
        Command::Sync(args) => sync::run(cli.component.clone(), args),
        Command::Webhook(args) => webhook::run(cli.component.clone(), args),
        Command::Serve(args) => serve::run(cli.component.clone(), args),
        Command::Worker(args) => worker::run(cli.component.clone(), args),
        Command::Sim(args) => sim::run(args),
        Command::Bench(args) => bench::run(cli.component.clone(), args),
        Command::Demo(args) => demo::run(cli.component.clone(), args),
    };
    match result.context("bbdc") {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable::shown(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
