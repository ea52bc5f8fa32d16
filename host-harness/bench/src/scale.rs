//! Benchmark 8 (`bbdc bench --scale`): how memory and time grow with the instance. `bbdc sync`
//! runs as a child process, as an administrator runs it, against simulated instances of 1,000,
//! 10,000 and 50,000 repositories (20 pull requests each, `--rate unlimited`, 8 repositories at
//! a time, records in SQLite on disk); its peak resident set comes from the kernel
//! (`wait4`'s `ru_maxrss`), and its wall time from its own summary. The largest instance is
//! then synced again, unchanged: one request per repository.
//!
//! Targets: the largest instance's peak RSS at most 1.25× the smallest's and under 256 MiB; its
//! wall time per pull request at most 1.25× the smallest's.

use super::{BenchOptions, Figure, Target};
use anyhow::{Context, Result, bail, ensure};
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{SimConfig, Simulator};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "scale-bench-token";
/// The environment variable the child reads the token from.
const TOKEN_ENV: &str = "BBDC_SCALE_BENCH_TOKEN";
/// Repositories per simulated project.
const REPOS_PER_PROJECT: usize = 25;
/// Pull requests per repository.
const PRS_PER_REPO: usize = 20;
/// Repositories synced at a time.
const CONCURRENCY: usize = 8;
/// Peak RSS allowed at any size, MiB.
const RSS_CEILING_MIB: f64 = 256.0;
/// Growth allowed from the smallest instance to the largest (RSS, and wall time per PR).
const GROWTH: f64 = 1.25;

/// The instance sizes (repositories) measured by default.
pub const SIZES: [usize; 3] = [1_000, 10_000, 50_000];
/// The sizes in quick mode: the machinery, not the figures.
pub const QUICK_SIZES: [usize; 3] = [25, 50, 100];

/// One `bbdc sync` child: what it said and what it cost.
struct ChildSync {
    /// Its `--json` summary.
    summary: Value,
    /// Peak resident set, bytes.
    max_rss: u64,
    /// Process wall time (start-up included).
    wall: Duration,
}

impl ChildSync {
    fn count(&self, kind: &str) -> u64 {
        self.summary["records"][kind].as_u64().unwrap_or(0)
    }

    /// The sync job's own wall time.
    fn seconds(&self) -> f64 {
        self.summary["seconds"].as_f64().unwrap_or(f64::NAN)
    }

    fn rss_mib(&self) -> f64 {
        self.max_rss as f64 / (1024.0 * 1024.0)
    }
}

/// Runs `bbdc sync` against `base_url` into `db` and waits for it, reading its peak RSS.
fn run_sync(bbdc: &Path, options: &BenchOptions, base_url: &str, db: &Path) -> Result<ChildSync> {
    let log = db.with_extension("stderr");
    let mut command = Command::new(bbdc);
    command
        .arg("sync")
        .args(["--base-url", base_url, "--token-env", TOKEN_ENV])
        .args(["--rate", "unlimited", "--concurrency"])
        .arg(CONCURRENCY.to_string())
        .arg("--db")
        .arg(db)
        .arg("--json")
        .env(TOKEN_ENV, TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?);
    if let Some(component) = &options.component {
        command.arg("--component").arg(component);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", bbdc.display()))?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    let (status, max_rss) = wait_with_rusage(child.id())?;
    let wall = started.elapsed();
    if status != 0 {
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("bbdc sync exited with {status}: {stdout}{stderr}");
    }
    let summary: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("reading the summary of bbdc sync: {stdout}"))?;
    Ok(ChildSync {
        summary,
        max_rss,
        wall,
    })
}

/// Waits for child `pid` and returns its exit status (the signal's number plus 128 when it was
/// killed) and its peak resident set in bytes, as the kernel counted it.
fn wait_with_rusage(pid: u32) -> Result<(i32, u64)> {
    let pid = libc::pid_t::try_from(pid).context("child pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain data the kernel fills in; `status` likewise.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: valid pointers to the two locals above; `pid` is our own child, not yet
        // reaped (std's `Child` is never waited on here).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    ensure!(
        reaped == pid,
        "waiting for bbdc sync: {}",
        std::io::Error::last_os_error()
    );
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    // Linux reports `ru_maxrss` in KiB.
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    Ok((code, max_rss))
}

/// One size's first sync.
struct Measured {
    /// Repositories asked for (the simulator adds three).
    size: usize,
    prs: u64,
    run: ChildSync,
}

impl Measured {
    fn micros_per_pr(&self) -> f64 {
        self.run.seconds() * 1e6 / self.prs.max(1) as f64
    }
}

/// Runs benchmark 8.
pub fn scale(options: &BenchOptions) -> Result<Vec<Figure>> {
    let bbdc = options
        .bbdc
        .as_deref()
        .context("the scale benchmark runs `bbdc sync` as a child: give the bbdc binary")?;
    let sizes: Vec<usize> = if !options.scale_sizes.is_empty() {
        options.scale_sizes.clone()
    } else if options.quick {
        QUICK_SIZES.to_vec()
    } else {
        SIZES.to_vec()
    };
    ensure!(
        sizes
            .iter()
            .all(|&n| n >= REPOS_PER_PROJECT && n % REPOS_PER_PROJECT == 0),
        "scale sizes are repositories in projects of {REPOS_PER_PROJECT}: multiples of {REPOS_PER_PROJECT}, got {sizes:?}"
    );
    let dir = tempfile::tempdir()?;
    let mut figures = Vec::new();
    let mut measured: Vec<Measured> = Vec::new();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    for &size in &sizes {
        let sim = Simulator::start(SimConfig {
            spec: WorldSpec {
                seed: 5,
                projects: size / REPOS_PER_PROJECT,
                repos_per_project: REPOS_PER_PROJECT,
                prs_per_repo: PRS_PER_REPO,
                users: 12,
            },
            token: Some(TOKEN.into()),
            ..SimConfig::default()
        })?;
        let world = sim.world();
        let (repos, prs) = (world.repo_count(), world.pr_count() as u64);
        let db = dir.path().join(format!("scale-{size}.sqlite"));
        let run = run_sync(bbdc, options, &sim.base_url(), &db)?;
        ensure!(
            run.count("pull_request") == prs
                && run.count("repo") == repos as u64
                && run.summary["status"] == "complete",
            "the sync of {size} repositories wrote {} of {prs} pull requests and {} of {repos} repositories: {}",
            run.count("pull_request"),
            run.count("repo"),
            run.summary
        );
        let m = Measured { size, prs, run };
        figures.push(Figure {
            bench: 8,
            name: format!("Scale: peak RSS of `bbdc sync`, {size} repositories"),
            value: m.run.rss_mib(),
            unit: "MiB",
            target: Target::AtMost(RSS_CEILING_MIB),
            detail: format!(
                "{repos} repositories (the simulator's three extra ones included), {prs} pull requests, {} requests, {CONCURRENCY} at a time, `--rate unlimited`, SQLite on disk; the kernel's ru_maxrss of the child",
                m.run.summary["requests"]
            ),
        });
        figures.push(Figure {
            bench: 8,
            name: format!("Scale: wall time per pull request, {size} repositories"),
            value: m.micros_per_pr(),
            unit: "µs",
            target: Target::None,
            detail: format!(
                "sync {:.1} s for {prs} pull requests (process {:.1} s, start-up included); the simulator shares the machine",
                m.run.seconds(),
                m.run.wall.as_secs_f64()
            ),
        });
        if size == largest {
            figures.extend(unchanged_resync(bbdc, options, &sim, &db, size, repos)?);
        }
        sim.stop();
        measured.push(m);
    }
    let smallest = measured.iter().min_by_key(|m| m.size);
    let biggest = measured.iter().max_by_key(|m| m.size);
    if let (Some(s), Some(b)) = (smallest, biggest)
        && b.size > s.size
    {
        figures.push(Figure {
            bench: 8,
            name: format!("Scale: peak RSS, {} ÷ {} repositories", b.size, s.size),
            value: b.run.rss_mib() / s.run.rss_mib(),
            unit: "×",
            target: Target::AtMost(GROWTH),
            detail: format!(
                "{:.1} MiB against {:.1} MiB",
                b.run.rss_mib(),
                s.run.rss_mib()
            ),
        });
        figures.push(Figure {
            bench: 8,
            name: format!(
                "Scale: wall time per pull request, {} ÷ {} repositories",
                b.size, s.size
            ),
            value: b.micros_per_pr() / s.micros_per_pr(),
            unit: "×",
            target: Target::AtMost(GROWTH),
            detail: format!(
                "{:.0} µs against {:.0} µs per pull request",
                b.micros_per_pr(),
                s.micros_per_pr()
            ),
        });
    }
    Ok(figures)
}

/// The largest instance synced again, nothing changed: one list page per repository.
fn unchanged_resync(
    bbdc: &Path,
    options: &BenchOptions,
    sim: &Simulator,
    db: &Path,
    size: usize,
    repos: usize,
) -> Result<Vec<Figure>> {
    let before = sim.request_counts();
    let run = run_sync(bbdc, options, &sim.base_url(), db)?;
    let counts = sim.request_counts().since(&before);
    ensure!(
        run.count("pull_request") == 0 && run.summary["status"] == "complete",
        "the unchanged re-sync wrote {} pull requests: {}",
        run.count("pull_request"),
        run.summary
    );
    let pr_requests =
        counts.pull_request_lists + counts.pull_requests + counts.activities + counts.diffs;
    let per_repo = pr_requests as f64 / repos.max(1) as f64;
    let n = size;
    Ok(vec![
        Figure {
            bench: 8,
            name: format!("Scale: re-sync of {n} unchanged repositories: requests per repository"),
            value: per_repo,
            unit: "",
            target: Target::Exactly(1.0),
            detail: format!(
                "{pr_requests} requests to the pull-request resources for {repos} repositories ({} list pages, {} pull requests, {} activity pages, {} diffs), plus {} for projects, repositories and users; {} requests in all",
                counts.pull_request_lists,
                counts.pull_requests,
                counts.activities,
                counts.diffs,
                counts.other,
                counts.total()
            ),
        },
        Figure {
            bench: 8,
            name: format!(
                "Scale: re-sync of {n} unchanged repositories: response body per repository"
            ),
            value: counts.pull_request_bytes as f64 / 1024.0 / repos.max(1) as f64,
            unit: "KiB",
            target: Target::None,
            detail: format!(
                "{:.1} MiB of pull-request listings, plus {:.1} MiB for projects, repositories and users",
                counts.pull_request_bytes as f64 / (1024.0 * 1024.0),
                counts.other_bytes as f64 / (1024.0 * 1024.0)
            ),
        },
        Figure {
            bench: 8,
            name: format!("Scale: re-sync of {n} unchanged repositories: wall time"),
            value: run.seconds(),
            unit: "s",
            target: Target::None,
            detail: format!(
                "peak RSS {:.1} MiB; process {:.1} s, start-up included",
                run.rss_mib(),
                run.wall.as_secs_f64()
            ),
        },
    ])
}
