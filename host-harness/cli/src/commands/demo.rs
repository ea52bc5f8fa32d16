//! `bbdc demo`: the whole product against the simulator, with no setup. Starts a simulated
//! Bitbucket on a free loopback port, checks the connection, runs a full sync, changes some pull
//! requests and delivers their signed webhooks to an in-process `serve`, runs an incremental
//! sync, and compares the database with the simulator's ground truth.

use anyhow::{Context, Result};
use bbdc_host::{Credentials, Runtime, RuntimeConfig, Tenant, TenantConfig};
use bbdc_jobs::output;
use bbdc_jobs::records::SqliteRecords;
use bbdc_jobs::serve::{ServeConfig, WEBHOOK_PATH, WebhookServer};
use bbdc_jobs::sync::{self, SyncJob};
use bbdc_jobs::truth::compare_with_truth;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use bbdc_store::kv::SqliteKv;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
/// Arguments of `bbdc demo`.
pub struct DemoArgs {
    /// Where the demo's SQLite file goes.
    #[arg(long, value_name = "PATH", default_value = "bbdc-demo.sqlite")]
    pub db: PathBuf,
}

/// Runs the demo; fails when the database does not match the simulator's ground truth.
pub fn run(component: Option<PathBuf>, args: &DemoArgs) -> Result<ExitCode> {
    demo(component, &args.db).map(|ok| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// Runs the demo; returns whether everything matched.
fn demo(component: Option<PathBuf>, db: &Path) -> Result<bool> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let token = "demo-token";
    let secret = "demo-webhook-secret";
    println!("1. Starting a simulated Bitbucket Data Center on a free loopback port ...");
    let sim = Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 2026,
            projects: 2,
            repos_per_project: 3,
            prs_per_repo: 25,
            users: 8,
        },
        faults: Faults {
            broken_prs: 1,
            ..Faults::default()
        },
        token: Some(token.into()),
        ..SimConfig::default()
    })?;
    let (projects, repos, users) = sim.counts();
    println!(
        "   {} with {projects} projects (plus a personal one), {repos} repositories, {users} users, {} pull requests",
        sim.base_url(),
        sim.truth().len()
    );

    let runtime = Arc::new(Runtime::new(&RuntimeConfig {
        component_path: component,
        cache_dir: RuntimeConfig::default_cache_dir(),
        fuel: None,
        pooling_slots: None,
        ..RuntimeConfig::default()
    })?);
    let mut config =
        TenantConfig::new("default", sim.base_url(), Credentials::Bearer(token.into()));
    // The simulator does not rate-limit; against a real server keep the default (60 burst, 5/s).
    config.http_policy.burst = None;
    let kv = Arc::new(SqliteKv::open(db).with_context(|| format!("opening {}", db.display()))?);
    let tenant = Arc::new(Tenant::new(config, kv)?);

    println!("2. bbdc check");
    let job = SyncJob {
        concurrency: 4,
        progress: false,
        ..SyncJob::default()
    };
    match runtime.check_connection(&tenant, job.filter) {
        Ok(r) => println!(
            "   ok: {} {} as {}, {} projects, {} repositories to sync ({} personal, {} archived)",
            r.server_name.unwrap_or_default(),
            r.server_version.unwrap_or_default(),
            r.user.unwrap_or_default(),
            r.projects,
            r.repos,
            r.personal_repos,
            r.archived_repos
        ),
        Err(e) => anyhow::bail!("check failed: {:?}", output::call_error(&e)),
    }

    println!("3. bbdc sync (first, full)");
    let records = SqliteRecords::open(db)?;
    let first = sync::run(&runtime, &tenant, &records, None, &job)?;
    for line in output::sync_summary_text(&first, &db.display().to_string()).lines() {
        println!("   {line}");
    }

    println!("4. bbdc serve, and the simulator changes 5 pull requests and sends signed webhooks");
    let server = WebhookServer::start(
        Arc::clone(&runtime),
        Arc::clone(&tenant),
        Arc::new(SqliteRecords::open(db)?),
        ServeConfig {
            max_body: bbdc_jobs::webhook::DEFAULT_MAX_BODY,
            workers: 4,
            refresh: true,
            ..ServeConfig::new("127.0.0.1:0", Some(secret.into()))
        },
    )?;
    sim.set_webhook(&format!("http://{}{WEBHOOK_PATH}", server.addr()), secret);
    for (project, repo, id, key) in sim.touch(5) {
        println!("   {key:<22} {project}/{repo} #{id} → delivered, verified, stored");
    }
    server.stop();

    println!("5. bbdc sync (second, incremental)");
    let second = sync::run(&runtime, &tenant, &records, None, &job)?;
    for line in output::sync_summary_text(&second, &db.display().to_string()).lines() {
        println!("   {line}");
    }

    println!("6. Comparing the database with the simulator's ground truth");
    let broken = sim.broken();
    let (matched, problems) = compare_with_truth(db, &sim.truth(), &broken)?;
    println!(
        "   {matched} pull requests match field for field; {} permanently broken on the server (reported, retried next sync)",
        broken.len()
    );
    for p in problems.iter().take(10) {
        println!("   MISMATCH {p}");
    }
    println!(
        "\nThe SQLite file is {} (tables projects, repos, users, pull_requests, reviews).",
        db.display()
    );
    println!(
        "Try: sqlite3 {} 'SELECT repo_slug, id, state, additions, deletions, first_review_at FROM pull_requests LIMIT 5'",
        db.display()
    );
    sim.stop();
    Ok(problems.is_empty())
}
