//! Every stop within its drain (issue 28): SIGTERM to `bbdc serve` and `bbdc worker` while
//! their work waits on a Bitbucket server that has stalled. Each exits 0 within the drain it
//! was given (a few seconds here, 30 s by default), whatever the server is doing; work not done
//! is left for the next run.

use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use bbdc_test_postgres::TestPostgres;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod binary;
mod common;
#[path = "../../../tests/support/reference.rs"]
mod reference;
mod serving;

/// A stall longer than any test: every request waits this long for its answer.
const STALLED: Duration = Duration::from_secs(600);

/// How long a test waits for a process asked to stop before calling it stuck: far past the
/// drains given here, far short of the stall.
const STOP_LIMIT: Duration = Duration::from_secs(60);

fn small_world() -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            projects: 1,
            repos_per_project: 2,
            prs_per_repo: 6,
            users: 3,
            ..WorldSpec::default()
        },
        ..SimConfig::default()
    })
    .expect("the simulator starts")
}

fn sigterm(child: &Child) {
    Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("kill runs");
}

/// Waits for `child` to exit, at most [`STOP_LIMIT`] (then kills it and fails).
fn exits(child: &mut Child, what: &str) -> (ExitStatus, Duration) {
    let asked = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("a status") {
            return (status, asked.elapsed());
        }
        if asked.elapsed() > STOP_LIMIT {
            let _ = child.kill();
            panic!("{what} did not stop within {STOP_LIMIT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` every 100 ms for up to two minutes.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(Instant::now() < until, "{what}: not within two minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `serve` refreshes a pushed repository in the background; the server stalls mid-refresh.
/// SIGTERM answers what is in flight, cancels the refresh, leaves the call that waits on the
/// server behind at the drain deadline, and exits 0. On main it waited for the refresh: 82 to
/// 105 s against a stalled server.
#[test]
fn sigterm_stops_serve_within_its_drain_while_a_refresh_waits_on_a_stalled_server() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let dir = tempfile::tempdir().expect("a folder");
    let db = dir.path().join("serve.sqlite");
    let sim = small_world();
    let base_url = sim.base_url();
    let mut serve = serving::start(
        &db,
        &cache,
        &[
            "--base-url",
            &base_url,
            // Any token will do for the simulator; the secret's variable is set for serve.
            "--token-env",
            "SERVE_TEST_SECRET",
            "--drain",
            "2s",
        ],
        None,
    );
    sim.set_webhook(
        &format!("http://{}{}", serve.addr, serving::PATH),
        serving::SECRET,
    );
    sim.set_faults(Faults {
        latency: STALLED,
        ..Faults::default()
    });
    // A push: stored and answered, then refreshed against the stalled server.
    sim.push_commits(0, 1);
    eventually("the push is accepted", || {
        serve
            .log
            .lock()
            .expect("the log")
            .contains("result=\"accepted\"")
            || serve
                .log
                .lock()
                .expect("the log")
                .contains("result=accepted")
    });
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&serve.child);
    let (status, took) = exits(&mut serve.child, "serve");
    let log = serve.log.lock().expect("the log").clone();
    assert!(status.success(), "exit 0: {status:?}\n{log}");
    assert!(
        took < Duration::from_secs(30),
        "stopped {took:?} after SIGTERM, past any drain\n{log}"
    );
    assert!(
        log.contains("leaving a background refresh"),
        "the stalled refresh was left behind: {log}"
    );
    // The push itself was stored, with its mark, before its answer; the refresh it asked for
    // is left queued.
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    };
    assert_eq!(count("SELECT COUNT(*) FROM webhook_deliveries"), 1, "{log}");
    assert_eq!(count("SELECT COUNT(*) FROM refresh_queue"), 1, "{log}");
    drop(serve);
    // The next serve to start does it, once the server answers again: the repository's refs
    // are listed, and nothing is left queued.
    sim.set_faults(Faults::default());
    let again = serving::start(
        &db,
        &cache,
        &["--base-url", &base_url, "--token-env", "SERVE_TEST_SECRET"],
        None,
    );
    eventually("the refresh left queued is done by the next serve", || {
        count("SELECT COUNT(*) FROM refresh_queue") == 0
            && count("SELECT COUNT(*) FROM branches") > 0
    });
    drop(again);
}

/// A tenant file for `sim`, with id `id`, no rate limit.
fn tenant_file(dir: &Path, id: &str, sim: &Simulator) -> std::path::PathBuf {
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "id = \"{id}\"\nbase_url = \"{}\"\n\n[credentials]\ntoken_env = \"STOP_TEST_TOKEN\"\n\n\
             [http_policy]\nper_second = \"unlimited\"\n",
            sim.base_url()
        ),
    )
    .expect("a tenant file");
    path
}

/// A worker of `tenant` on `url` with a one-minute lease and `drain`, reporting in JSON.
fn worker(url: &str, tenant: &Path, drain: &str) -> Child {
    binary::bbdc()
        .args([
            "worker", "--db", url, "--lease", "60s", "--drain", drain, "--json",
        ])
        .arg("--tenant")
        .arg(tenant)
        .env("STOP_TEST_TOKEN", "any")
        .env("BBDC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bbdc worker starts")
}

/// Items of `tenant` held by a worker now.
fn held(pg: &TestPostgres, tenant: &str, repos_only: bool) -> i64 {
    let only = if repos_only { "AND item <> ''" } else { "" };
    pg.psql(
        "postgres",
        &format!(
            "SELECT COUNT(*) FROM work_items WHERE tenant = '{tenant}' {only} AND lease_owner IS NOT NULL"
        ),
    )
    .ok()
    .and_then(|n| n.parse().ok())
    .unwrap_or(-1)
}

fn output(child: &mut Child) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut err);
    }
    (out, err)
}

/// SIGTERM to a worker in the middle of a repository pass against a slow server: the pass
/// stops before its next call, its item is let go (held by nobody, due now) for the next
/// worker to resume at once instead of after the lease, and the worker exits 0.
#[test]
fn sigterm_lets_a_workers_item_go_and_exits_within_its_drain() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let dir = tempfile::tempdir().expect("a folder");
    let sim = small_world();
    sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let tenant = tenant_file(dir.path(), "slow", &sim);
    let mut child = worker(&url, &tenant, "30s");
    eventually("the worker holds a repository", || {
        held(&pg, "slow", true) > 0
    });
    sigterm(&child);
    let (status, _) = exits(&mut child, "worker");
    let (out, err) = output(&mut child);
    assert!(status.success(), "exit 0: {status:?}\n{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("a JSON report");
    assert!(
        report["released"].as_u64().is_some_and(|n| n >= 1),
        "the item in hand was let go: {report}"
    );
    assert_eq!(held(&pg, "slow", false), 0, "nothing is held any more");
}

/// SIGTERM to a worker whose call waits on a stalled server: at the drain deadline it leaves
/// the call behind and exits 0 (its lease expires, and another worker resumes the item).
#[test]
fn sigterm_stops_a_worker_waiting_on_a_stalled_server_within_its_drain() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let dir = tempfile::tempdir().expect("a folder");
    let sim = small_world();
    sim.set_faults(Faults {
        latency: STALLED,
        ..Faults::default()
    });
    let tenant = tenant_file(dir.path(), "stalled", &sim);
    let mut child = worker(&url, &tenant, "2s");
    // Its first item, the listing, waits on the server.
    eventually("the worker holds an item", || {
        held(&pg, "stalled", false) > 0
    });
    std::thread::sleep(Duration::from_secs(1));
    sigterm(&child);
    let (status, took) = exits(&mut child, "worker");
    let (out, err) = output(&mut child);
    assert!(status.success(), "exit 0: {status:?}\n{out}\n{err}");
    assert!(
        took < Duration::from_secs(30),
        "stopped {took:?} after SIGTERM, past any drain\n{err}"
    );
}
