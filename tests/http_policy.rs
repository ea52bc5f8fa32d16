//! The host's HTTP policy end to end: Retry-After honoured (no request before it expires),
//! retries on 502/503/504 and connection failures, none on other errors, and the counters.

mod support;

use bbdc_host::policy::HttpPolicy;
use bbdc_host::{Credentials, TenantConfig};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers a scripted sequence of statuses (then 200 with `ok_body`) and records arrival times.
struct Script {
    statuses: Vec<(u16, Option<&'static str>)>,
    seen: Arc<Mutex<Vec<Instant>>>,
    ok_body: serde_json::Value,
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        match self.statuses.get(seen.len() - 1) {
            Some((status, retry_after)) => {
                let mut r = ResponseTemplate::new(*status)
                    .set_body_json(error_body("x.Throttled", "slow down"));
                if let Some(ra) = retry_after {
                    r = r.insert_header("Retry-After", *ra);
                }
                r
            }
            None => ResponseTemplate::new(200).set_body_json(self.ok_body.clone()),
        }
    }
}

async fn scripted(
    statuses: Vec<(u16, Option<&'static str>)>,
) -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(wiremock::matchers::any())
        .respond_with(Script {
            statuses,
            seen: seen.clone(),
            ok_body: page(vec![project("PLAT", 1)], 0, 25, None),
        })
        .mount(&server)
        .await;
    (server, seen)
}

/// Lists projects against a server answering `statuses`: the error and the requests it took.
async fn listing_fails(
    statuses: Vec<(u16, Option<&'static str>)>,
) -> (
    bbdc_host::CallError<bbdc_host::bindings::types::ConnectorError>,
    usize,
) {
    let (server, seen) = scripted(statuses).await;
    let t = retrying_tenant(&server.uri());
    let e = blocking(move || runtime().list_projects(&t, None))
        .await
        .expect_err("the listing fails");
    let requests = seen.lock().unwrap().len();
    (e, requests)
}

fn retrying_tenant(uri: &str) -> Arc<bbdc_host::Tenant> {
    let mut c = TenantConfig::new("r", uri, Credentials::Bearer(TOKEN.into()));
    c.http_policy = HttpPolicy {
        burst: None,
        max_attempts: 5,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    tenant_with(c)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_request_arrives_before_its_retry_after() {
    let (server, seen) = scripted(vec![(429, Some("1")), (429, Some("1")), (503, Some("1"))]).await;
    let t = retrying_tenant(&server.uri());
    let t2 = t.clone();
    let page = blocking(move || runtime().list_projects(&t2, None))
        .await
        .expect("succeeds after the storm");
    assert_eq!(page.items.len(), 1);
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "a request arrived {:?} after a Retry-After of 1 s",
            pair[1] - pair[0]
        );
    }
    let counts = t.http.counters.snapshot();
    let waited = counts.waited;
    assert_eq!(
        (counts.requests, counts.retries, counts.throttled),
        (4, 3, 2)
    );
    assert!(
        // Each wait starts a moment after its 429 arrived, so it is a little under 1 s.
        waited >= Duration::from_millis(2500),
        "waiting for Retry-After is counted: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_errors_are_retried_and_server_errors_are_not() {
    let (server, seen) = scripted(vec![(502, None), (504, None)]).await;
    let t = retrying_tenant(&server.uri());
    let t2 = t.clone();
    blocking(move || runtime().list_projects(&t2, None))
        .await
        .expect("succeeds on the third attempt");
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(t.http.counters.retries.load(Ordering::Relaxed), 2);

    let (e, requests) = listing_fails(vec![(500, None)]).await;
    assert!(
        matches!(
            e,
            bbdc_host::CallError::Connector(bbdc_host::bindings::types::ConnectorError::Server(_))
        ),
        "{e:?}"
    );
    assert_eq!(
        requests, 1,
        "a 500 (the server failed this request for good) is not retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_that_outlasts_the_attempts_is_reported_as_rate_limited() {
    let (server, seen) = scripted(vec![(429, Some("0")); 10]).await;
    let t = retrying_tenant(&server.uri());
    let e = blocking(move || runtime().list_projects(&t, None))
        .await
        .unwrap_err();
    match e {
        bbdc_host::CallError::Connector(
            bbdc_host::bindings::types::ConnectorError::RateLimited(r),
        ) => assert_eq!(r.retry_after_ms, Some(0)),
        other => panic!("expected rate-limited, got {other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 5, "bounded by max_attempts");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_failures_are_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = retrying_tenant(&format!("http://127.0.0.1:{port}"));
    let t2 = t.clone();
    let e = blocking(move || runtime().list_projects(&t2, None))
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("Transport"), "{e:?}");
    assert_eq!(t.http.counters.requests.load(Ordering::Relaxed), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_bucket_spaces_requests_beyond_the_burst() {
    let (server, seen) = scripted(vec![]).await;
    let mut c = TenantConfig::new("b", server.uri(), Credentials::Bearer(TOKEN.into()));
    c.http_policy = HttpPolicy {
        burst: Some(2.0),
        per_second: 20.0,
        ..Default::default()
    };
    let t = tenant_with(c);
    let t2 = t.clone();
    blocking(move || {
        for _ in 0..6 {
            runtime().list_projects(&t2, None).unwrap();
        }
    })
    .await;
    let times = seen.lock().unwrap().clone();
    // Two leave at once; each further one waits for a token (1/20 s).
    let span = *times.last().unwrap() - times[0];
    assert!(
        span >= Duration::from_millis(190),
        "4 requests beyond the burst at 20/s span at least 200 ms: {span:?}"
    );
    // Not asserted: that the limiter's wait counter moved. When a loaded machine makes each call
    // slower than a token's refill, no request needs to wait, and the spacing above still holds.
}

/// A server that answers every request with headers promising a body, sends a little of it and
/// then stalls, never closing: the body never completes.
fn stalling_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"size\":1,",
            );
            held.push(conn);
        }
    });
    format!("http://{addr}")
}

fn stalled_tenant(deadline: Duration) -> Arc<bbdc_host::Tenant> {
    let mut c = TenantConfig::new(
        "stall",
        stalling_server(),
        Credentials::Bearer(TOKEN.into()),
    );
    // The read timeout alone would let each attempt wait a minute, six times over.
    c.limits.deadline = deadline;
    tenant_with(c)
}

/// How far past its deadline a call may end: scheduling and the trap's unwinding.
const SLACK: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stalls_mid_way_ends_check_within_its_deadline() {
    let deadline = Duration::from_secs(3);
    let t = stalled_tenant(deadline);
    let started = Instant::now();
    let e = blocking(move || {
        runtime().check_connection(&t, bbdc_host::bindings::types::RepoFilter::EVERYTHING)
    })
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            e,
            bbdc_host::CallError::Host(bbdc_host::HostError::Deadline(_))
        ),
        "{e:?}"
    );
    assert!(
        took < deadline + SLACK,
        "check took {took:?} against {deadline:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_failure_is_not_repeated_by_sync() {
    let deadline = Duration::from_secs(2);
    let t = stalled_tenant(deadline);
    // The sync first reads the account's rate budget: against a stalled server that read ends
    // within the same deadline, and the budget is unknown (the client adapts to 429s).
    let t1 = t.clone();
    let read = Instant::now();
    let budget = blocking(move || t1.rate_budget().clone()).await;
    assert_eq!(budget.source.code(), "unknown", "{budget:?}");
    assert!(read.elapsed() < deadline + SLACK, "{:?}", read.elapsed());
    let before = t.http.counters.requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let records = bbdc_jobs::records::SqliteRecords::open(&dir.path().join("r.sqlite")).unwrap();
    let t2 = t.clone();
    let out = blocking(move || {
        bbdc_jobs::sync::run(
            runtime(),
            &t2,
            &records,
            None,
            &support::pull_requests_job(),
        )
        .map(|_| ())
    })
    .await;
    let took = started.elapsed();
    let e = out.unwrap_err().to_string();
    assert!(e.contains("deadline"), "{e}");
    assert!(
        took < deadline + SLACK,
        "sync took {took:?}: the failed call was repeated"
    );
    assert_eq!(
        t.http.counters.requests.load(Ordering::Relaxed) - before,
        1,
        "one request, never retried past the deadline"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_of_any_size_fails_rate_limited_at_once_without_a_panic() {
    for huge in ["18446744073709551615", "9223372036854775807", "3600"] {
        let started = Instant::now();
        let (e, requests) = listing_fails(vec![(429, Some(huge)); 3]).await;
        assert!(
            matches!(
                e,
                bbdc_host::CallError::Connector(
                    bbdc_host::bindings::types::ConnectorError::RateLimited(_)
                )
            ),
            "{huge}: {e:?}"
        );
        assert_eq!(
            requests, 1,
            "{huge}: a wait past the maximum is not waited for"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{huge}");
    }
}

/// A repository of five pull requests, every detail served, except pull request 3's diff,
/// answered by `diff`.
async fn repository_with_one_diff(server: &MockServer, diff: ResponseTemplate) {
    use wiremock::matchers::path;
    let prs = "/rest/api/1.0/projects/PLAT/repos/api/pull-requests";
    let ok = |v: serde_json::Value| ResponseTemplate::new(200).set_body_json(v);
    for (p, v) in [
        (
            "/rest/api/1.0/projects",
            page(vec![project("PLAT", 1)], 0, 25, None),
        ),
        (
            "/rest/api/1.0/repos",
            page(vec![repo("PLAT", "api", 10)], 0, 25, None),
        ),
        (
            "/rest/api/1.0/admin/users",
            page(vec![user("alice")], 0, 25, None),
        ),
    ] {
        Mock::given(path(p)).respond_with(ok(v)).mount(server).await;
    }
    let list: Vec<_> = (1..=5u64)
        .rev()
        .map(|i| pr_json(i, 0, "OPEN", i as i64, 10 * i as i64))
        .collect();
    Mock::given(path(prs))
        .respond_with(ok(page(list, 0, 25, None)))
        .mount(server)
        .await;
    for i in 1..=5u64 {
        Mock::given(path(format!("{prs}/{i}")))
            .respond_with(ok(pr_json(i, 0, "OPEN", i as i64, 10 * i as i64)))
            .mount(server)
            .await;
        Mock::given(path(format!("{prs}/{i}/activities")))
            .respond_with(ok(page(vec![], 0, 50, None)))
            .mount(server)
            .await;
        let answer = if i == 3 {
            diff.clone()
        } else {
            ok(diff_json(1, 0, false, false))
        };
        Mock::given(path(format!("{prs}/{i}/diff")))
            .respond_with(answer)
            .with_priority(5)
            .mount(server)
            .await;
    }
}

async fn diff_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/pull-requests/3/diff"))
        .count()
}

fn sync_once(t: &Arc<bbdc_host::Tenant>, db: &std::path::Path) -> bbdc_jobs::sync::SyncReport {
    let records = bbdc_jobs::records::SqliteRecords::open(db).unwrap();
    bbdc_jobs::sync::run(runtime(), t, &records, None, &support::pull_requests_job()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_that_always_fails_costs_the_policys_attempts_and_the_next_sync_takes_it_up() {
    let server = MockServer::start().await;
    repository_with_one_diff(&server, ResponseTemplate::new(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let mut c = TenantConfig::new("r", server.uri(), Credentials::Bearer(TOKEN.into()));
    c.http_policy = HttpPolicy {
        burst: None,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..Default::default()
    };
    let max = c.http_policy.max_attempts as usize;
    let t = tenant_with(c);
    let (t2, db2) = (t.clone(), db.clone());
    let report = blocking(move || sync_once(&t2, &db2)).await;
    assert_eq!(max, 6);
    assert_eq!(
        diff_requests(&server).await,
        max,
        "the policy's attempts, nothing more"
    );
    assert_eq!(
        report.records.get("pull_request"),
        Some(&4),
        "every other PR is stored"
    );
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.id, s.code.as_str()))
        .collect();
    assert_eq!(skipped, [(Some(3), "server")]);
    assert!(report.failed_repos.is_empty());

    // The diff heals: the next sync takes the pull request up again and stores it.
    server.reset().await;
    let healed = ResponseTemplate::new(200).set_body_json(diff_json(2, 1, false, false));
    repository_with_one_diff(&server, healed).await;
    let report = blocking(move || sync_once(&t, &db)).await;
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(
        report.records.get("pull_request"),
        Some(&1),
        "PR 3, taken up again"
    );
    assert_eq!(diff_requests(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_over_the_hosts_cap_is_requested_exactly_once() {
    let server = MockServer::start().await;
    let big = ResponseTemplate::new(200).set_body_string(format!(
        r#"{{"diffs":[{{"hunks":[{{"segments":[{{"type":"ADDED","lines":[{{"line":"{}"}}]}}]}}]}}],"truncated":false}}"#,
        "a".repeat(64 * 1024)
    ));
    repository_with_one_diff(&server, big).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let mut c = TenantConfig::new("r", server.uri(), Credentials::Bearer(TOKEN.into()));
    c.http_policy.burst = None;
    c.limits.max_stream_bytes = 1024;
    let t = tenant_with(c);
    let report = blocking(move || sync_once(&t, &db)).await;
    assert_eq!(
        diff_requests(&server).await,
        1,
        "too-large is never retried"
    );
    assert_eq!(
        report.records.get("pull_request"),
        Some(&5),
        "delivered without diff statistics"
    );
}
