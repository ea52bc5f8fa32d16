//! Benchmark 9 (`bbdc bench --only 9`): `bbdc worker` processes sharing one sync through
//! PostgreSQL. 1, 2 and 4 workers sync the same latency-bound simulated instance, each count
//! into a fresh database of one throwaway PostgreSQL server; the figure is each count's
//! throughput (pull requests per second of wall time, the workers' start-up and the listing
//! included) against the one-worker throughput times the count. Beside it, the database's own
//! cost: transactions committed per second during the run.

use crate::{BenchOptions, Figure, Target};
use anyhow::{Context, Result, bail, ensure};
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use bbdc_test_postgres::TestPostgres;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-workers-token";

/// The worker counts compared.
pub const COUNTS: [usize; 3] = [1, 2, 4];

/// One count's run.
struct Run {
    workers: usize,
    elapsed: Duration,
    prs: u64,
    commits: u64,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.prs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn commits_per_second(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Transactions committed in database `db` so far.
fn commits(pg: &TestPostgres, db: &str) -> Result<u64> {
    let out = pg
        .psql(
            "postgres",
            &format!("SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'"),
        )
        .map_err(anyhow::Error::msg)?;
    out.parse().with_context(|| format!("xact_commit: {out:?}"))
}

/// Runs `workers` workers on database `db` until the round is complete.
fn run_count(
    bbdc: &Path,
    pg: &TestPostgres,
    tenant: &Path,
    workers: usize,
    expected_prs: u64,
) -> Result<Run> {
    let db = format!("workers_{workers}");
    let url = pg.create_database(&db).map_err(anyhow::Error::msg)?;
    // The tables are made by the first worker; their creation is part of the first count's time
    // as it is of every count's.
    let before = commits(pg, &db)?;
    let started = Instant::now();
    let children: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(bbdc)
                .args([
                    "worker",
                    "--db",
                    &url,
                    "--until-idle",
                    "--entities",
                    "pull-requests",
                ])
                .arg("--tenant")
                .arg(tenant)
                .env("BENCH_WORKERS_TOKEN", TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {}", bbdc.display()))
        })
        .collect::<Result<_>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "bbdc worker exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let elapsed = started.elapsed();
    let after = commits(pg, &db)?;
    let schema = bbdc_jobs::records::tenant_schema("bench");
    let prs: u64 = pg
        .psql(&db, &format!("SELECT COUNT(*) FROM {schema}.pull_requests"))
        .map_err(anyhow::Error::msg)?
        .parse()?;
    ensure!(
        prs == expected_prs,
        "{workers} workers wrote {prs} of {expected_prs} pull requests"
    );
    Ok(Run {
        workers,
        elapsed,
        prs,
        commits: after.saturating_sub(before),
    })
}

/// Runs benchmark 9.
pub fn scaling(options: &BenchOptions) -> Result<Vec<Figure>> {
    let bbdc = options
        .bbdc
        .as_deref()
        .context("the workers benchmark runs `bbdc worker` as children: give the bbdc binary")?;
    let pg = TestPostgres::start().map_err(anyhow::Error::msg)?;
    // Large enough that a worker's start-up (loading the component) and the listing, which
    // one worker runs while the others wait for its first page, are a small share of the run,
    // as they are of a real deployment's.
    let (repos_per_project, prs_per_repo) = if options.quick { (2, 2) } else { (16, 16) };
    let sim = Simulator::start(SimConfig {
        spec: WorldSpec {
            seed: 9,
            projects: 2,
            repos_per_project,
            prs_per_repo,
            users: 6,
        },
        faults: Faults {
            latency: options.latency,
            ..Faults::default()
        },
        token: Some(TOKEN.into()),
        ..SimConfig::default()
    })?;
    let expected = sim.world().pr_count() as u64;
    let repos = sim.world().repo_count();
    let dir = tempfile::tempdir()?;
    let tenant = dir.path().join("bench.toml");
    std::fs::write(
        &tenant,
        format!(
            "id = \"bench\"\nbase_url = \"{}\"\n\n[credentials]\ntoken_env = \"BENCH_WORKERS_TOKEN\"\n\n\
             [http_policy]\nper_second = \"unlimited\"\n",
            sim.base_url()
        ),
    )?;
    let runs: Vec<Run> = COUNTS
        .iter()
        .map(|&n| run_count(bbdc, &pg, &tenant, n, expected))
        .collect::<Result<_>>()?;
    sim.stop();
    let one = &runs[0];
    let mut figures = vec![Figure {
        bench: 9,
        name: "Workers: one worker's throughput".into(),
        value: one.throughput(),
        unit: "/s",
        target: Target::None,
        detail: format!(
            "pull requests per second of wall time: {} pull requests in {repos} repositories, {} ms per request, \
             `bbdc worker --until-idle --entities pull-requests` on a fresh PostgreSQL database, start-up and \
             listing included: {:.2} s; the database committed {:.0} transactions per second",
            one.prs,
            options.latency.as_millis(),
            one.elapsed.as_secs_f64(),
            one.commits_per_second()
        ),
    }];
    for run in &runs[1..] {
        let n = run.workers as f64;
        figures.push(Figure {
            bench: 9,
            name: format!("Workers: {} workers' throughput ÷ ({} × one worker's)", run.workers, run.workers),
            value: run.throughput() / (n * one.throughput()),
            unit: "×",
            target: Target::AtLeast(0.8),
            detail: format!(
                "{:.1} pull requests/s against {:.1}/s for one worker ({:.2} s against {:.2} s); the database \
                 committed {:.0} transactions per second ({} in all, against {:.0}/s for one worker)",
                run.throughput(),
                one.throughput(),
                run.elapsed.as_secs_f64(),
                one.elapsed.as_secs_f64(),
                run.commits_per_second(),
                run.commits,
                one.commits_per_second()
            ),
        });
    }
    Ok(figures)
}
