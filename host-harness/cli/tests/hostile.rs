//! The hostile-peer cases of issue 28 against the real `bbdc` binary: a server whose listing
//! never ends, for every listing the connector follows. Each run is a `bbdc sync` child whose
//! peak resident set is read from the kernel (`wait4`), stopped by the test if it outlives a
//! generous limit: an unbounded listing fails the test by never ending or by its memory, and a
//! bounded one fails its repository (or the job, for the listings it cannot do without) with
//! the reason, while everything else is synced.

mod binary;

use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Endless, Faults, SimConfig, Simulator};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Longest a bounded run may take before the test calls it unbounded. A run here takes
/// seconds; a listing without a bound runs until killed.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Peak resident set a bounded run stays under: a process with wasmtime and the component
/// (tens of MiB), far below what an endless listing collected in memory reaches (gigabytes on
/// main before the fix).
const RSS_LIMIT_MIB: u64 = 512;

/// Pages any one listing may take in these runs (`--max-listing-pages`).
const MAX_PAGES: &str = "40";

/// A small world whose `listing` never ends.
fn hostile(endless: &str) -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            projects: 1,
            repos_per_project: 2,
            prs_per_repo: 4,
            users: 3,
            ..WorldSpec::default()
        },
        faults: Faults {
            endless: Some(Endless::parse(endless).expect("a listing")),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .expect("the simulator starts")
}

/// What a `bbdc sync` run came to.
struct Run {
    /// Exit status.
    code: i32,
    /// Its `--json` summary.
    summary: Value,
    /// Peak resident set, MiB.
    rss_mib: u64,
    /// Wall time.
    took: Duration,
    /// The SQLite file it wrote.
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs `bbdc sync --entities all --json` against `sim` as a child, killing it after
/// [`RUN_LIMIT`], and reads its peak RSS.
// The child is waited for by `wait4`, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn sync(sim: &Simulator, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("a folder");
    let db = dir.path().join("bbdc.sqlite");
    let started = Instant::now();
    let child = binary::bbdc()
        .args([
            "sync",
            "--base-url",
            &sim.base_url(),
            "--token-env",
            "HOSTILE_TOKEN",
            "--rate",
            "unlimited",
            "--db",
            &db.display().to_string(),
            "--max-listing-pages",
            MAX_PAGES,
            "--json",
        ])
        .args(extra)
        .env("HOSTILE_TOKEN", "any")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("bbdc runs");
    let pid = child.id();
    // Kill it if it outlives the limit: the test then fails on its status.
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + RUN_LIMIT;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let mut stdout = child.stdout.expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let (code, rss) = wait_with_rusage(pid);
    let took = started.elapsed();
    let _ = watchdog.join();
    let out = reader.join().unwrap_or_default();
    let summary = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    Run {
        code,
        summary,
        rss_mib: rss / (1024 * 1024),
        took,
        db,
        _dir: dir,
    }
}

/// Waits for child `pid`: its exit status (negative: killed by that signal) and peak RSS in
/// bytes.
fn wait_with_rusage(pid: u32) -> (i32, u64) {
    let pid = i32::try_from(pid).expect("a pid");
    let mut status = 0;
    // SAFETY: `rusage` and `status` are plain data the kernel fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: as above; `pid` is this test's own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        assert!(
            std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted,
            "wait4 failed"
        );
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    (code, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024)
}

/// The run ended on its own, quickly, within the memory of a bounded process.
fn bounded(run: &Run, what: &str) {
    assert!(
        run.code >= 0,
        "{what}: killed after {:?}: the listing was not bounded",
        run.took
    );
    assert!(
        run.rss_mib < RSS_LIMIT_MIB,
        "{what}: peak RSS {} MiB",
        run.rss_mib
    );
}

/// Rows of `sql` in the run's database.
fn count(run: &Run, sql: &str) -> i64 {
    rusqlite::Connection::open(&run.db)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(-1)
}

/// The failed repositories of the summary: (name, code, message).
fn failed_repos(run: &Run) -> Vec<(String, String, String)> {
    run.summary["failed_repos"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                    (s("repo"), s("error"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A listing the job needs (projects, repositories, users) that never ends fails the job
/// (exit 1) with the reason.
fn job_listing(endless: &str, says: &str) {
    let sim = hostile(endless);
    let run = sync(&sim, &[]);
    bounded(&run, endless);
    assert_eq!(run.code, 1, "{endless}: {}", run.summary);
    let error = run.summary.to_string();
    assert!(
        error.contains(says),
        "{endless}: the reason is named: {error}"
    );
}

/// A repository's listing that never ends fails each repository with `code` and a message
/// naming the listing (`says`), exit 3; every pull request is still stored.
fn repo_listing(endless: &str, code: &str, says: &str) {
    let sim = hostile(endless);
    let run = sync(&sim, &[]);
    bounded(&run, endless);
    assert_eq!(run.code, 3, "{endless}: {}", run.summary);
    let failed = failed_repos(&run);
    assert!(!failed.is_empty(), "{endless}: {}", run.summary);
    for (name, c, message) in &failed {
        assert_eq!(c, code, "{endless}: {name}: {message}");
        assert!(message.contains(says), "{endless}: {name}: {message}");
    }
    // Everything else goes on: the pull requests, in full.
    assert_eq!(
        count(&run, "SELECT COUNT(*) FROM pull_requests"),
        sim.truth().len() as i64,
        "{endless}"
    );
}

#[test]
fn an_endless_project_listing_fails_the_job_bounded() {
    job_listing("projects", "did not end after 40 pages");
}

#[test]
fn an_endless_repository_listing_fails_the_job_bounded() {
    job_listing("repos", "did not end after 40 pages");
}

#[test]
fn an_endless_user_listing_fails_the_job_bounded() {
    job_listing("users:empty", "empty pages in a row");
}

#[test]
fn an_endless_pull_request_listing_fails_its_repositories_bounded() {
    // Every page repeats the first: the pull requests are stored, and the pass is stopped.
    repo_listing(
        "pull-requests",
        "malformed_response",
        "the pull requests of",
    );
}

#[test]
fn an_endless_branch_listing_fails_its_repositories_bounded() {
    repo_listing(
        "branches",
        "malformed_response",
        "did not end after 40 pages",
    );
}

#[test]
fn an_endless_tag_listing_fails_its_repositories_bounded() {
    repo_listing("tags", "malformed_response", "did not end after 40 pages");
}

#[test]
fn a_tag_listing_of_empty_pages_fails_its_repositories() {
    repo_listing("tags:empty", "malformed_response", "3 empty pages in a row");
}

#[test]
fn a_creeping_commit_listing_fails_at_its_second_page() {
    repo_listing(
        "commits:creep",
        "malformed_response",
        "moves forward by less than the page it read",
    );
}

#[test]
fn an_endless_commit_listing_fails_its_repositories_bounded() {
    repo_listing("commits", "malformed_response", "the commit pass of");
}

#[test]
fn an_endless_listing_of_a_pull_requests_commits_fails_its_repositories_bounded() {
    repo_listing("pr-commits", "pr_commits_incomplete", "could not be read");
}

#[test]
fn a_creeping_build_listing_leaves_the_builds_queued() {
    repo_listing("builds:creep", "builds_incomplete", "could not be read");
}

/// Activities are read whole within one call, under the connector's own bound (a listing
/// without end fails there, as the connector's unit tests show for every kind of step); the
/// pull request is skipped with the reason (and retried by the next run), as one pull request
/// the server cannot serve always is.
#[test]
fn an_endless_activity_listing_skips_each_pull_request_with_the_reason() {
    let sim = hostile("activities:empty");
    let run = sync(&sim, &["--entities", "pull-requests"]);
    bounded(&run, "activities:empty");
    assert_eq!(run.code, 0, "{}", run.summary);
    let skipped = run.summary["skipped"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!skipped.is_empty(), "{}", run.summary);
    for s in &skipped {
        assert_eq!(s["stage"], "activities", "{s}");
        assert!(
            s["message"]
                .as_str()
                .is_some_and(|m| m.contains("3 empty pages in a row")),
            "{s}"
        );
    }
}
