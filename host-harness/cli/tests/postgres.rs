//! Scale-out on a real PostgreSQL (issue 16): `bbdc worker` processes sharing the sync of one or
//! two simulated instances, killed and cut off from the database, and `bbdc serve` replicas on
//! one database. Each test starts its own throwaway server (`bbdc-test-postgres`).

use bbdc_jobs::records::{PgRecords, Value};
use bbdc_jobs::truth::compare_records_with_truth;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator};
use bbdc_test_postgres::TestPostgres;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod binary;
mod common;
#[path = "../../../tests/support/reference.rs"]
mod reference;
mod serving;

use binary::bbdc;

const TOKEN: &str = "pg-token";

/// A simulated instance whose passes take long enough to be interrupted.
fn simulator(seed: u64, repos: usize) -> Simulator {
    simulator_at(seed, repos, Duration::from_millis(4))
}

/// A simulated instance answering each request after `latency`.
fn simulator_at(seed: u64, repos: usize, latency: Duration) -> Simulator {
    Simulator::start(SimConfig {
        spec: WorldSpec {
            seed,
            projects: 2,
            repos_per_project: repos,
            prs_per_repo: 12,
            users: 6,
        },
        faults: Faults {
            latency,
            ..Faults::default()
        },
        token: Some(TOKEN.into()),
        ..SimConfig::default()
    })
    .expect("the simulator starts")
}

/// Writes a tenant file for `sim` with id `id` into `dir`, with no rate limit.
fn tenant_file(dir: &Path, id: &str, sim: &Simulator) -> PathBuf {
    tenant_file_at(dir, id, sim, "per_second = \"unlimited\"")
}

/// Writes a tenant file for `sim` with id `id` into `dir`, with `policy` as its HTTP policy.
fn tenant_file_at(dir: &Path, id: &str, sim: &Simulator, policy: &str) -> PathBuf {
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "id = \"{id}\"\nbase_url = \"{}\"\n\n[credentials]\ntoken_env = \"PG_TEST_TOKEN\"\n\n\
             [http_policy]\n{policy}\n",
            sim.base_url()
        ),
    )
    .expect("a tenant file");
    path
}

/// Every request the simulator answered.
fn requests(sim: &Simulator) -> u64 {
    let c = sim.request_counts();
    c.pull_request_lists
        + c.pull_requests
        + c.activities
        + c.diffs
        + c.commit_lists
        + c.pr_commit_lists
        + c.build_lists
        + c.other
}

/// A `bbdc worker` running until its tenants' round is complete, with a short lease so that a
/// killed worker's items pass to the others within seconds.
fn worker(url: &str, tenants: &[&Path]) -> Child {
    let mut cmd = bbdc();
    cmd.args([
        "worker",
        "--db",
        url,
        "--until-idle",
        "--lease",
        "3s",
        "--json",
    ]);
    for t in tenants {
        cmd.arg("--tenant").arg(t);
    }
    cmd.env("PG_TEST_TOKEN", TOKEN)
        .env("BBDC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bbdc worker starts")
}

/// Waits for `child` (at most `limit`), and returns its JSON report.
fn finished(mut child: Child, limit: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("a status") {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                std::io::Read::read_to_string(&mut stdout, &mut out).expect("its report");
            }
            assert!(status.success(), "the worker failed: {status}: {out}");
            return serde_json::from_str(out.trim()).expect("a JSON report");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("a worker ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The rows of a query, each column as text or number.
fn rows(records: &PgRecords, sql: &str) -> Vec<Vec<Value>> {
    records.query(sql, &[]).expect("rows")
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Checks that the tenant's records in `url` equal `sim`'s ground truth: every pull request once
/// with its fields, the default branches' commits, the build statuses, the pull requests'
/// commits, and nothing left queued.
fn assert_equals_truth(url: &str, tenant: &str, sim: &Simulator) {
    let records = PgRecords::connect_tenant(url, tenant, &Default::default()).expect("connects");
    let truth = sim.truth();
    let (matched, problems) = compare_records_with_truth(&records, &truth, &[]).expect("compared");
    assert!(problems.is_empty(), "{tenant}: {problems:#?}");
    assert_eq!(matched, truth.len(), "{tenant}");
    let triples = |sql: &str| -> BTreeSet<(String, String, String)> {
        rows(&records, sql)
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), text(&r[2])))
            .collect()
    };
    assert_eq!(
        triples("SELECT project_key, repo_slug, id FROM commits"),
        sim.commit_truth(),
        "{tenant}: commits"
    );
    let builds: BTreeSet<(String, String, String, String, String)> = rows(
        &records,
        "SELECT project_key, repo_slug, commit_id, key, state FROM builds",
    )
    .iter()
    .map(|r| {
        (
            text(&r[0]),
            text(&r[1]),
            text(&r[2]),
            text(&r[3]),
            text(&r[4]),
        )
    })
    .collect();
    assert_eq!(builds, sim.build_truth(), "{tenant}: builds");
    let pr_commits: BTreeSet<(String, String, String, String)> = rows(
        &records,
        "SELECT project_key, repo_slug, pr_id, commit_id FROM pr_commits",
    )
    .iter()
    .map(|r| (text(&r[0]), text(&r[1]), text(&r[2]), text(&r[3])))
    .collect();
    let want: BTreeSet<(String, String, String, String)> = sim
        .pr_commit_truth()
        .into_iter()
        .map(|c| (c.project, c.repo, c.pr.to_string(), c.commit))
        .collect();
    assert_eq!(pr_commits, want, "{tenant}: pull requests' commits");
    let queued = rows(
        &records,
        "SELECT (SELECT COUNT(*) FROM build_queue) + (SELECT COUNT(*) FROM pr_commit_queue)",
    );
    assert_eq!(
        queued,
        vec![vec![Value::Int(0)]],
        "{tenant}: nothing left queued"
    );
}

/// Waits (up to two minutes) until `tenant`'s first pull requests are written.
fn pull_requests_written(pg: &TestPostgres, tenant: &str) {
    let schema = bbdc_jobs::records::tenant_schema(tenant);
    let started = Instant::now();
    while pg
        .psql(
            "postgres",
            &format!("SELECT COUNT(*) > 0 FROM {schema}.pull_requests"),
        )
        .as_deref()
        != Ok("t")
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "nothing written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The work queue's items of `tenant` not completed, and those that failed.
fn unfinished_work(pg: &TestPostgres, tenant: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT item || ':' || failures || ':' || COALESCE(last_error, '') FROM work_items
             WHERE tenant = '{tenant}' AND (done < wanted OR failures > 0 OR lease_owner IS NOT NULL)"
        ),
    )
    .expect("the work queue")
}

/// Also: the tenant's rate budget is shared. Three workers (four processes over the run) send
/// at most the one tenant's rate in all.
#[test]
fn three_workers_one_killed_at_random_points_end_equal_to_the_ground_truth() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let sim = simulator(31, 4);
    let dir = tempfile::tempdir().expect("a folder");
    let (rate, burst) = (80.0, 20.0);
    let tenant = tenant_file_at(
        dir.path(),
        "acme",
        &sim,
        &format!("per_second = {rate}\nburst = {burst}"),
    );
    let started = Instant::now();
    let steady = [worker(&url, &[&tenant]), worker(&url, &[&tenant])];
    let mut rng = fastrand::Rng::with_seed(16);
    let mut killed = 0;
    for _ in 0..3 {
        let mut victim = worker(&url, &[&tenant]);
        std::thread::sleep(Duration::from_millis(rng.u64(300..1500)));
        if victim.try_wait().expect("a status").is_none() {
            victim.kill().expect("killed");
            killed += 1;
        }
        let _ = victim.wait();
    }
    assert!(killed >= 2, "the kills must land mid-round ({killed} did)");
    let last = worker(&url, &[&tenant]);
    let mut repos = 0;
    let mut budgets = 0;
    for w in steady.into_iter().chain([last]) {
        let report = finished(w, Duration::from_secs(300));
        repos += report["tenants"]["acme"]["repos"].as_u64().unwrap_or(0);
        // Each worker that sent a request for the tenant says the budget it paced them to.
        let budget = &report["tenants"]["acme"]["rate_budget"];
        if !budget.is_null() {
            assert_eq!(budget["source"], "configured", "{report}");
            assert_eq!(budget["per_second"], rate);
            budgets += 1;
        }
    }
    assert!(budgets > 0, "the workers report the tenant's rate budget");
    let elapsed = started.elapsed().as_secs_f64();
    assert!(repos > 0, "the surviving workers ran repository passes");
    let sent = requests(&sim) as f64;
    eprintln!("{sent} requests in {elapsed:.1} s");
    assert!(
        sent <= burst + rate * elapsed + 1.0,
        "{sent} requests in {elapsed:.1} s: over the shared {rate}/s (burst {burst})"
    );
    assert_equals_truth(&url, "acme", &sim);
    assert_eq!(unfinished_work(&pg, "acme"), "", "every item completed");
    sim.stop();
}

/// Two tenants, from one tenant file, synced at once by two workers.
#[test]
fn two_tenants_at_once_each_equal_their_own_truth_with_nothing_crossing() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    // The two worlds have the same project keys and repository slugs: only the tenant keeps
    // their records apart.
    let (one, two) = (simulator(41, 3), simulator(42, 3));
    let dir = tempfile::tempdir().expect("a folder");
    // One file listing both tenants.
    let both = dir.path().join("tenants.toml");
    let entry = |id: &str, sim: &Simulator| {
        format!(
            "[[tenants]]\nid = \"{id}\"\nbase_url = \"{}\"\n[tenants.credentials]\n\
             token_env = \"PG_TEST_TOKEN\"\n[tenants.http_policy]\nper_second = \"unlimited\"\n\n",
            sim.base_url()
        )
    };
    std::fs::write(&both, entry("acme", &one) + &entry("globex", &two)).expect("a tenant file");
    let workers = [worker(&url, &[&both]), worker(&url, &[&both])];
    for w in workers {
        let report = finished(w, Duration::from_secs(300));
        assert!(report["store_errors"].as_u64() == Some(0), "{report}");
    }
    assert_ne!(one.truth(), two.truth(), "the worlds differ");
    assert_equals_truth(&url, "acme", &one);
    assert_equals_truth(&url, "globex", &two);
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT string_agg(DISTINCT tenant, ',' ORDER BY tenant) FROM connector_kv"
        )
        .expect("the state's tenants"),
        "acme,globex"
    );
    one.stop();
    two.stop();
}

#[test]
fn a_worker_cut_off_from_the_database_mid_pass_recovers_without_losing_anything() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    // Slow enough that the round takes many seconds.
    let sim = simulator_at(51, 4, Duration::from_millis(30));
    let dir = tempfile::tempdir().expect("a folder");
    let tenant = tenant_file(dir.path(), "acme", &sim);
    let w = worker(&url, &[&tenant]);
    // Cut when the first repository's pull requests are being written.
    pull_requests_written(&pg, "acme");
    let mut w = w;
    pg.halt();
    // Longer than the pool waits for a connection (10 s): the worker's writes fail, not just
    // wait.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        w.try_wait().expect("a status").is_none(),
        "still running when the database returns"
    );
    pg.resume().expect("the database is back");
    let report = finished(w, Duration::from_secs(300));
    assert!(
        report["store_errors"].as_u64().unwrap_or(0) > 0,
        "the cut landed while the worker ran: {report}"
    );
    assert_equals_truth(&url, "acme", &sim);
    assert_eq!(unfinished_work(&pg, "acme"), "", "every item completed");
    sim.stop();
}

#[test]
fn two_serve_replicas_store_each_delivery_once_and_a_killed_one_loses_nothing() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let db = Path::new(&url);
    let mut first = serving::start(db, &cache, &[], None);
    let second = serving::start(db, &cache, &[], None);
    let items = serving::burst(1, 240, 12);
    let (early, late) = items.split_at(120);
    // Every delivery goes to both replicas at once, as a load balancer that retries would send
    // it; the first replica is killed halfway.
    let answered_first = std::thread::scope(|s| {
        let to_second = s.spawn(|| serving::send_all(second.addr, &items, 4));
        let answered = serving::send_all(first.addr, early, 4);
        first.child.kill().expect("killed");
        let _ = first.child.wait();
        assert!(
            serving::send_all(first.addr, late, 1).is_empty(),
            "it is gone"
        );
        let answered_second = to_second.join().expect("sent");
        assert_eq!(
            answered_second.len(),
            items.len(),
            "the second answers every one"
        );
        answered
    });
    assert!(!answered_first.is_empty());
    let count = |sql: &str| pg.psql("postgres", sql).expect("a count");
    let schema = bbdc_jobs::records::tenant_schema("default");
    assert_eq!(
        count(&format!("SELECT COUNT(*) FROM {schema}.reviews")),
        items.len().to_string(),
        "one review per delivery, none twice"
    );
    assert_eq!(
        count(&format!("SELECT COUNT(*) FROM {schema}.pull_requests")),
        "12"
    );
    // What the killed replica answered 2xx is there.
    let marks = count(&format!(
        "SELECT string_agg(request_id, ',') FROM {schema}.webhook_deliveries"
    ));
    let marks: BTreeSet<&str> = marks.split(',').collect();
    for id in &answered_first {
        assert!(
            marks.contains(id.as_str()),
            "{id} was answered but is not stored"
        );
    }
}

/// `bbdc bench --only 9` in quick mode: the workers benchmark runs its own `bbdc worker`
/// children on a throwaway PostgreSQL and reports each count (the figures mean nothing here).
#[test]
fn the_workers_benchmark_runs_and_reports_each_count() {
    let out = bbdc()
        .args(["bench", "--only", "9", "--quick", "--latency-ms", "1"])
        .output()
        .expect("bbdc bench runs");
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "Workers: one worker's throughput",
        "Workers: 2 workers' throughput",
        "Workers: 4 workers' throughput",
    ] {
        assert!(text.contains(name), "{name} missing: {text}");
    }
}

/// One tenant's bad data stays its own (issue 28): a tenant whose round the database refuses to
/// start (here a trigger refuses its rows, as the database refused the NUL of defect 7) is set
/// aside and reported, and the worker serves the other to the end of its round. On main the
/// refusal stopped every tenant and `--until-idle` never returned.
#[test]
fn a_tenant_the_database_refuses_is_set_aside_and_the_others_are_served() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let pool = bbdc_store::postgres::pool(&url, &Default::default()).expect("a pool");
    bbdc_jobs::work_queue::WorkQueue::on(pool).expect("the work queue's tables");
    pg.psql(
        "postgres",
        "CREATE FUNCTION refuse_rotten() RETURNS trigger AS $$ BEGIN
             IF NEW.tenant = 'rotten' THEN RAISE EXCEPTION 'this tenant is refused'; END IF;
             RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse_rotten BEFORE INSERT ON work_tenants
             FOR EACH ROW EXECUTE FUNCTION refuse_rotten();",
    )
    .expect("a trigger");
    let (good, rotten) = (simulator(51, 2), simulator(52, 1));
    let dir = tempfile::tempdir().expect("a folder");
    let tenants = [
        tenant_file(dir.path(), "rotten", &rotten),
        tenant_file(dir.path(), "good", &good),
    ];
    let mut child = worker(&url, &[&tenants[0], &tenants[1]]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("a status") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("the worker did not finish its round: one tenant stalled the others");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        std::io::Read::read_to_string(&mut stdout, &mut out).expect("its report");
    }
    assert_eq!(status.code(), Some(3), "partial: {out}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("a JSON report");
    let aside = report["set_aside"].as_array().cloned().unwrap_or_default();
    assert_eq!(aside.len(), 1, "{report}");
    assert_eq!(aside[0]["tenant"], "rotten", "{report}");
    assert!(
        aside[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("this tenant is refused")),
        "{report}"
    );
    assert_equals_truth(&url, "good", &good);
}

/// A database read-only for a while (a failover, a standby promoted) mid-round: every session
/// opened meanwhile is read-only for its whole life. On main the worker kept lending such
/// connections and refusing writes long after the database was writable again (290 s, until it
/// was killed). Now a read-only session is never lent, the refused writes wait as for an
/// unreachable database, and the round completes equal to the ground truth.
#[test]
fn a_worker_recovers_once_a_read_only_database_is_writable_again() {
    let pg = TestPostgres::start_or_panic();
    let url = pg.url();
    let sim = simulator_at(61, 4, Duration::from_millis(30));
    let dir = tempfile::tempdir().expect("a folder");
    let tenant = tenant_file(dir.path(), "acme", &sim);
    let w = worker(&url, &[&tenant]);
    pull_requests_written(&pg, "acme");
    // Read-only from now on for new sessions; the worker's sessions end, so its next ones are
    // opened read-only. (Run from another database, which stays writable.)
    let end_sessions =
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'postgres'";
    pg.psql(
        "template1",
        "ALTER DATABASE postgres SET default_transaction_read_only = on",
    )
    .expect("read-only");
    pg.psql("template1", end_sessions).expect("sessions ended");
    std::thread::sleep(Duration::from_secs(4));
    let mut w = w;
    assert!(
        w.try_wait().expect("a status").is_none(),
        "still running when the database is writable again"
    );
    pg.psql(
        "template1",
        "ALTER DATABASE postgres RESET default_transaction_read_only",
    )
    .expect("writable again");
    let report = finished(w, Duration::from_secs(300));
    assert!(
        report["given_up"].as_array().is_some_and(Vec::is_empty),
        "nothing given up while the database was read-only: {report}"
    );
    assert_equals_truth(&url, "acme", &sim);
    assert_eq!(unfinished_work(&pg, "acme"), "", "every item completed");
    sim.stop();
}
