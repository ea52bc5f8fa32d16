//! `bbdc worker`: one of many processes sharing the sync of one or more tenants through a
//! PostgreSQL database, each repository pass under a lease (see `bbdc_jobs::worker`).

use crate::args::{FilterArgs, parse_timeout, parse_window, runtime};
use anyhow::{Context, Result, bail};
use bbdc_host::{Tenant, TenantFile};
use bbdc_jobs::database::Database;
use bbdc_jobs::work_queue::WorkQueue;
use bbdc_jobs::worker::{self, TenantWork, WorkerConfig};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Args)]
/// Arguments of `bbdc worker`.
pub struct WorkerArgs {
    /// The PostgreSQL database the workers share, as a `postgres://user@host/db` URL: work
    /// queue, connector state and each tenant's records (in a schema of its own).
    #[arg(long, value_name = "URL", value_parser = Database::parse)]
    pub db: Database,
    /// A tenant file (repeatable) of one tenant, as `bbdc sync --tenant` reads it, or of many
    /// (`[[tenants]]`): each tenant's id, base URL, credentials reference, rate budget and
    /// limits. Tenants take turns: a large one does not starve the others.
    #[arg(long = "tenant", value_name = "FILE", required = true)]
    pub tenants: Vec<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// What to import from each repository, as `bbdc sync --entities` [default: all].
    #[arg(long, value_name = "LIST", value_parser = bbdc_jobs::sync::Entities::parse)]
    pub entities: Option<bbdc_jobs::sync::Entities>,
    /// How long a lease lasts without renewal (renewed every third of it): how soon another
    /// worker resumes the work of one that died.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_window)]
    pub lease: std::time::Duration,
    /// Stop once every tenant's round is complete, instead of running until SIGTERM.
    #[arg(long)]
    pub until_idle: bool,
    /// Start each tenant's next round this long after the last (e.g. `15m`); without it, one
    /// round.
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub every: Option<std::time::Duration>,
    /// How long SIGTERM (or SIGINT) may take: the pass in hand stops before its next call and
    /// its item is let go for another worker; a call still waiting on the server at this
    /// deadline is left behind and the worker exits (its lease expires, and another worker
    /// resumes the item).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub drain: std::time::Duration,
    /// This worker's name in its leases [default: host, process id and a random suffix].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Print the closing report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(component: Option<PathBuf>, args: &WorkerArgs) -> Result<ExitCode> {
    let Database::Postgres(url) = &args.db else {
        bail!("bbdc worker shares its work through PostgreSQL: give --db postgres://...");
    };
    // Every tenant file is read, and every tenant checked, before the database is touched: a
    // tenant the database could not store (an id holding NUL, say) is refused here, by name.
    let files: Vec<TenantFile> = args
        .tenants
        .iter()
        .map(|path| TenantFile::load_all(path))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let configs = files
        .iter()
        .map(TenantFile::resolve)
        .collect::<Result<Vec<_>, _>>()?;
    let options = bbdc_store::postgres::PoolOptions {
        max_size: 4,
        ..Default::default()
    };
    let queue = WorkQueue::on(bbdc_store::postgres::pool(url, &options)?)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let mut tenants = Vec::new();
    for config in configs {
        let stores = args
            .db
            .open(&config.id, 4, None)
            .with_context(|| format!("opening {} for tenant {}", args.db.display(), config.id))?;
        let tenant = Arc::new(Tenant::new(config, Arc::clone(&stores.kv))?);
        // Every worker's requests to this tenant's server draw on one budget.
        stores.share_budget(&tenant);
        tenants.push(TenantWork {
            tenant,
            records: stores.records,
        });
    }
    // Kept to report each tenant's rate budget at the end.
    let held: std::collections::HashMap<String, Arc<Tenant>> = tenants
        .iter()
        .map(|t| (t.tenant.config.id.clone(), Arc::clone(&t.tenant)))
        .collect();
    let runtime = runtime(component)?;
    let mut config = WorkerConfig::new(args.name.clone().unwrap_or_else(worker::default_name));
    config.lease = args.lease;
    config.until_idle = args.until_idle;
    config.every = args.every;
    config.job.filter = args.filter.filter();
    config.job.entities = args.entities.unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // The first signal stops the pass in hand before its next call and lets its item go,
        // within `--drain`; a second one stops at once (the lease expires, and another worker
        // resumes the item).
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let name = config.name.clone();
    let running = {
        let (stop, config) = (Arc::clone(&stop), config.clone());
        std::thread::Builder::new()
            .name("bbdc-worker".into())
            .spawn(move || worker::run(&runtime, &tenants, &queue, &config, &stop))?
    };
    // Wait for the worker; once asked to stop, for at most `--drain`.
    let mut asked_at: Option<Instant> = None;
    while !running.is_finished() {
        if stop.load(Ordering::Relaxed) {
            let at = *asked_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= args.drain {
                eprintln!(
                    "bbdc worker {name}: a call was still waiting on the server {} after the stop; \
                     leaving it (its lease expires, and another worker resumes the item)",
                    humantime::format_duration(args.drain)
                );
                return Ok(ExitCode::SUCCESS);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = match running.join() {
        Ok(report) => report?,
        Err(_) => bail!("the worker thread panicked"),
    };
    if args.json {
        let tenants: serde_json::Map<String, serde_json::Value> = report
            .tenants
            .iter()
            .map(|(id, t)| {
                (
                    id.clone(),
                    serde_json::json!({
                        "listings": t.listings, "repos": t.repos, "failed": t.failed,
                        "lost": t.lost, "pull_requests": t.pull_requests, "commits": t.commits,
                        "rate_budget": held.get(id).and_then(|t| t.settled_budget())
                            .as_ref().map(bbdc_jobs::output::budget_json),
                        "rate_budget_refused": held.get(id)
                            .and_then(|t| t.http.refused_budget())
                            .map(bbdc_jobs::output::refused_budget_json),
                    }),
                )
            })
            .collect();
        let set_aside: Vec<serde_json::Value> = report
            .set_aside
            .iter()
            .map(|(id, why)| {
                serde_json::json!({"tenant": bbdc_jobs::printable::shown(id).to_string(),
                    "error": bbdc_jobs::printable::shown(why).to_string()})
            })
            .collect();
        let given_up: Vec<serde_json::Value> = report
            .given_up
            .iter()
            .map(|g| {
                serde_json::json!({"tenant": g.tenant, "item": g.item, "failures": g.failures,
                    "error": bbdc_jobs::printable::shown(&g.error).to_string()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"name": name, "tenants": tenants,
                "store_errors": report.store_errors, "given_up": given_up,
                "set_aside": set_aside, "released": report.released})
        );
    } else {
        for (id, t) in &report.tenants {
            eprintln!(
                "bbdc worker {}: tenant {id}: {} listings, {} repository passes ({} failed, {} lost), {} pull requests, {} commits",
                name, t.listings, t.repos, t.failed, t.lost, t.pull_requests, t.commits
            );
            if let Some(tenant) = held.get(id) {
                if let Some(budget) = tenant.settled_budget() {
                    eprintln!(
                        "bbdc worker {name}: tenant {id}: rate budget {}",
                        bbdc_jobs::output::budget_text(&budget)
                    );
                }
                if let Some(refused) = tenant.http.refused_budget() {
                    eprintln!(
                        "bbdc worker {name}: tenant {id}: {}",
                        bbdc_jobs::output::refused_budget_text(refused)
                    );
                }
            }
        }
    }
    for g in &report.given_up {
        let what = if g.item.is_empty() {
            "listing"
        } else {
            &g.item
        };
        eprintln!(
            "bbdc worker: tenant {}: {what} failed {} times in a row: {}",
            g.tenant,
            g.failures,
            bbdc_jobs::printable::shown(&g.error)
        );
    }
    for (id, why) in &report.set_aside {
        eprintln!(
            "bbdc worker: tenant {} was set aside: {}",
            bbdc_jobs::printable::shown(id),
            bbdc_jobs::printable::shown(why)
        );
    }
    if report.released > 0 {
        eprintln!(
            "bbdc worker {name}: stopped; {} item(s) in hand let go for another worker to resume",
            report.released
        );
    }
    // As `bbdc sync` does: some of what was asked for could not be synced.
    Ok(
        if report.given_up.is_empty() && report.set_aside.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(bbdc_jobs::sync::PARTIAL_EXIT)
        },
    )
}
