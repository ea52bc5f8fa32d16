//! End-to-end webhooks: deliveries through the component and the host's handler into SQLite, and
//! `serve` over real HTTP with concurrent senders and a background refresh against wiremock.

mod support;

use bbdc_host::storage::StoreError;
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::records::{Delivery, RecordSink, SqliteRecords, Stored};
use bbdc_jobs::serve::{ServeConfig, WEBHOOK_PATH, WebhookServer};
use bbdc_jobs::webhook::{DEFAULT_MAX_BODY, handle, report_json};
use bbdc_store::kv::SqliteKv;
use hmac::{Hmac, Mac};
use rusqlite::Connection;
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use support::*;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "hook-secret-51e0";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn payload(key: &str, version: u32, extra: Value) -> Value {
    let mut pr = pr_json(
        42,
        version,
        if key == "pr:merged" {
            "MERGED"
        } else if key == "pr:declined" {
            "DECLINED"
        } else {
            "OPEN"
        },
        1,
        2 + i64::from(version),
    );
    pr["createdDate"] = json!("2026-08-19T17:27:55.266Z");
    let mut v = json!({"eventKey": key, "date": "2026-08-19T23:00:00+0530", "actor": user("bob"), "pullRequest": pr});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

fn headers(key: &str, id: &str, signature: Option<String>) -> Vec<(String, String)> {
    let mut h = vec![
        ("X-Event-Key".to_string(), key.to_string()),
        ("X-Request-Id".to_string(), id.to_string()),
        (
            "Content-Type".to_string(),
            "application/json; charset=utf-8".to_string(),
        ),
    ];
    if let Some(s) = signature {
        h.push(("X-Hub-Signature".to_string(), s));
    }
    h
}

struct Db {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    tenant: Arc<Tenant>,
    records: SqliteRecords,
}

fn db(base_url: &str) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooks.sqlite");
    let kv = Arc::new(SqliteKv::open(&path).unwrap());
    let tenant = Arc::new(
        Tenant::new(
            TenantConfig::new("default", base_url, Credentials::Bearer(TOKEN.into())),
            kv,
        )
        .unwrap(),
    );
    let records = SqliteRecords::open(&path).unwrap();
    Db {
        _dir: dir,
        path,
        tenant,
        records,
    }
}

fn deliver(d: &Db, key: &str, id: &str, body: &Value) -> Value {
    let bytes = body.to_string().into_bytes();
    let sig = sign(&bytes);
    report_json(&handle(
        runtime(),
        &d.tenant,
        Some(SECRET),
        DEFAULT_MAX_BODY,
        headers(key, id, Some(sig)),
        bytes,
        Some(&d.records as &dyn RecordSink),
    ))
}

fn pr_row(path: &Path) -> Option<(u32, String, Option<i64>, i64)> {
    Connection::open(path).unwrap().query_row(
        "SELECT version, state, additions, deleted FROM pull_requests WHERE project_key='PLAT' AND repo_slug='api' AND id=42",
        [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    ).ok()
}

const EVENTS: &[&str] = &[
    "pr:opened",
    "pr:modified",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:declined",
    "pr:merged",
    "pr:from_ref_updated",
    "pr:reviewer:needs_work",
    "pr:reviewer:changes_requested",
    "pr:reviewer:updated",
    "pr:comment:added",
    "pr:comment:edited",
    "pr:comment:deleted",
    "pr:deleted",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_delivery_of_every_event_is_accepted_and_persisted() {
    let d = db(NO_SERVER);
    let outs = blocking(move || {
        let mut outs = Vec::new();
        for (i, key) in EVENTS.iter().enumerate() {
            let extra = match *key {
                "pr:reviewer:approved" => json!({"participant": {"user": user("bob"), "role": "REVIEWER", "approved": true, "status": "APPROVED"}, "previousStatus": "UNAPPROVED"}),
                "pr:reviewer:unapproved" => json!({"participant": {"user": user("bob"), "status": "UNAPPROVED"}, "previousStatus": "APPROVED"}),
                "pr:reviewer:needs_work" | "pr:reviewer:changes_requested" => json!({"participant": {"user": user("dave"), "status": "NEEDS_WORK"}, "previousStatus": "UNAPPROVED"}),
                "pr:reviewer:updated" => json!({"addedReviewers": [user("erin")], "removedReviewers": []}),
                "pr:modified" => json!({"previousTitle": "Old", "previousDescription": "", "previousTarget": {"id": "refs/heads/main"}}),
                "pr:from_ref_updated" => json!({"previousFromHash": "0".repeat(40)}),
                k if k.starts_with("pr:comment:") => json!({"comment": {"id": 9, "text": "hm"}, "commentParentId": 3}),
                _ => json!({}),
            };
            outs.push((key.to_string(), deliver(&d, key, &format!("id-{i}"), &payload(key, i as u32, extra))));
        }
        (outs, d)
    }).await;
    let (outs, d) = outs;
    for (key, out) in &outs {
        assert_eq!(
            (out["http_status"].as_u64(), out["result"].as_str()),
            (Some(200), Some("accepted")),
            "{key}: {out}"
        );
        assert_eq!(out["verified"], true);
        assert_eq!(out["pull_request"]["id"], 42, "{key}");
        assert_eq!(
            out["pull_request"]["created_at"], 1_787_160_475_266i64,
            "ISO date in the payload: {key}"
        );
    }
    let review = |k: &str| outs.iter().find(|(key, _)| key == k).unwrap().1["review"].clone();
    assert_eq!(
        review("pr:reviewer:approved"),
        json!({"user": "bob", "status": "APPROVED", "previous_status": "UNAPPROVED"})
    );
    assert_eq!(
        review("pr:reviewer:changes_requested"),
        json!({"user": "dave", "status": "NEEDS_WORK", "previous_status": "UNAPPROVED"})
    );
    assert_eq!(review("pr:opened"), Value::Null);
    let (version, _, _, deleted) = pr_row(&d.path).expect("row");
    assert_eq!(
        (version, deleted),
        (13, 1),
        "the newest version is stored and the deletion recorded"
    );
    let reviews: i64 = Connection::open(&d.path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM reviews WHERE pr_id = 42", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(reviews, 4, "every reviewer status change is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_rejections_replay_and_order() {
    let d = db(NO_SERVER);
    blocking(move || {
        let rt = runtime();
        let run = |key: &str, id: &str, body: Vec<u8>, sig: Option<String>| {
            report_json(&handle(
                rt,
                &d.tenant,
                Some(SECRET),
                DEFAULT_MAX_BODY,
                headers(key, id, sig),
                body,
                Some(&d.records as &dyn RecordSink),
            ))
        };
        let ping = run("diagnostics:ping", "p", br#"{"test": true}"#.to_vec(), None);
        assert_eq!(
            (ping["http_status"].as_u64(), ping["result"].as_str()),
            (Some(200), Some("ignored"))
        );

        let body = payload("pr:opened", 5, json!({})).to_string().into_bytes();
        let cases: Vec<(Vec<u8>, Option<String>, u64, &str)> = vec![
            (body.clone(), None, 401, "missing_signature"),
            (
                body.clone(),
                Some(sign(b"other body")),
                403,
                "invalid_signature",
            ),
            (
                body.clone(),
                Some("sha1=0123abcd".into()),
                403,
                "invalid_signature",
            ),
            (
                b"{not json".to_vec(),
                Some(sign(b"{not json")),
                400,
                "malformed_payload",
            ),
            (
                vec![0xc3, 0x28],
                Some(sign(&[0xc3, 0x28])),
                400,
                "malformed_payload",
            ),
            (
                br#"{"eventKey":"pr:opened"}"#.to_vec(),
                Some(sign(br#"{"eventKey":"pr:opened"}"#)),
                400,
                "malformed_payload",
            ),
            (
                vec![b'['; 100_000],
                Some(sign(&vec![b'['; 100_000])),
                400,
                "malformed_payload",
            ),
            (vec![b' '; DEFAULT_MAX_BODY + 1], None, 413, "too_large"),
        ];
        for (i, (b, sig, status, code)) in cases.into_iter().enumerate() {
            let out = run("pr:opened", &format!("bad-{i}"), b, sig);
            assert_eq!(
                (
                    out["http_status"].as_u64(),
                    out["result"].as_str(),
                    out["error"].as_str()
                ),
                (Some(status), Some("rejected"), Some(code)),
                "case {i}: {out}"
            );
        }
        assert!(
            pr_row(&d.path).is_none(),
            "no rejected delivery left a record"
        );

        let first = run("pr:modified", "r-1", body.clone(), Some(sign(&body)));
        assert_eq!(first["result"], "accepted");
        let replay = run("pr:modified", "r-1", body.clone(), Some(sign(&body)));
        assert_eq!(
            (replay["http_status"].as_u64(), replay["result"].as_str()),
            (Some(200), Some("duplicate"))
        );

        let older = payload("pr:modified", 3, json!({}))
            .to_string()
            .into_bytes();
        let out = run("pr:modified", "r-2", older.clone(), Some(sign(&older)));
        assert_eq!(
            (out["result"].as_str(), out["stale"].as_bool()),
            (Some("accepted"), Some(true))
        );
        assert_eq!(
            pr_row(&d.path).unwrap().0,
            5,
            "an older delivery never overwrites a newer version"
        );
    })
    .await;
}

const NO_SERVER: &str = "https://bitbucket.invalid";

#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_concurrent_deliveries_over_http_and_refreshes_in_the_background() {
    // The Bitbucket server the background refresh reads from.
    let bb = MockServer::start().await;
    let prs = "/rest/api/1.0/projects/PLAT/repos/api/pull-requests";
    Mock::given(path(format!("{prs}/42")))
        .respond_with(ResponseTemplate::new(200).set_body_json(pr_json(42, 1000, "OPEN", 1, 2000)))
        .mount(&bb)
        .await;
    Mock::given(path(format!("{prs}/42/activities")))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            activities_json(42, false),
            0,
            500,
            None,
        )))
        .mount(&bb)
        .await;
    Mock::given(path(format!("{prs}/42/diff")))
        .respond_with(ResponseTemplate::new(200).set_body_json(diff_json(7, 2, false, false)))
        .mount(&bb)
        .await;

    let d = db(&bb.uri());
    let records: Arc<dyn RecordSink> = Arc::new(SqliteRecords::open(&d.path).unwrap());
    let config = ServeConfig {
        max_body: DEFAULT_MAX_BODY,
        workers: 8,
        refresh: true,
        ..ServeConfig::new("127.0.0.1:0", Some(SECRET.into()))
    };
    let runtime = Arc::new(
        bbdc_host::Runtime::new(&bbdc_host::RuntimeConfig {
            cache_dir: Some(
                std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            ),
            ..Default::default()
        })
        .unwrap(),
    );
    let server = WebhookServer::start(runtime, d.tenant.clone(), records, config).unwrap();
    let url = format!("http://{}{WEBHOOK_PATH}", server.addr());
    let health = format!("http://{}/healthz", server.addr());

    let results = blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        assert_eq!(agent.get(&health).call().unwrap().status().as_u16(), 200);
        let senders: Vec<_> = (0..16u32)
            .map(|i| {
                let (agent, url) = (agent.clone(), url.clone());
                std::thread::spawn(move || {
                    let mut statuses = Vec::new();
                    for j in 0..8u32 {
                        let n = i * 8 + j;
                        let key = if n % 2 == 0 {
                            "pr:modified"
                        } else {
                            "pr:reviewer:approved"
                        };
                        let body = payload(
                            key,
                            n,
                            json!({"participant": {"user": user("bob"), "status": "APPROVED"}}),
                        )
                        .to_string();
                        let mut req = agent.post(&url);
                        for (k, v) in
                            headers(key, &format!("conc-{n}"), Some(sign(body.as_bytes())))
                        {
                            req = req.header(k, v);
                        }
                        let mut resp = req.send(body.as_bytes()).unwrap();
                        let json: Value =
                            serde_json::from_slice(&resp.body_mut().read_to_vec().unwrap())
                                .unwrap();
                        statuses.push((
                            resp.status().as_u16(),
                            json["result"].as_str().unwrap_or("").to_owned(),
                        ));
                    }
                    statuses
                })
            })
            .collect();
        let mut all: Vec<(u16, String)> = senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        // One forged delivery among them.
        let mut resp = agent
            .post(&url)
            .header("X-Event-Key", "pr:opened")
            .header("X-Hub-Signature", "sha256=00")
            .send(&b"{}"[..])
            .unwrap();
        let _ = resp.body_mut().read_to_vec();
        all.push((resp.status().as_u16(), "forged".into()));
        all
    })
    .await;
    assert_eq!(
        results
            .iter()
            .filter(|(s, r)| *s == 200 && r == "accepted")
            .count(),
        128,
        "{results:?}"
    );
    assert_eq!(results.last().map(|(s, _)| *s), Some(403));

    // The refresh stores the server's full record (version 1000, diff statistics) in the background.
    let path = d.path.clone();
    let refreshed = blocking(move || {
        for _ in 0..200 {
            if pr_row(&path).is_some_and(|r| r.0 == 1000 && r.2 == Some(7)) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        false
    })
    .await;
    server.stop();
    assert!(
        refreshed,
        "the background refresh stored the full record: {:?}",
        pr_row(&d.path)
    );
    let reviews: i64 = Connection::open(&d.path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM reviews WHERE pr_id = 42", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(reviews > 0);
}

/// A record store whose disk is full for the first `failures` deliveries, then heals.
struct FullDiskOnce {
    inner: SqliteRecords,
    failures: std::sync::atomic::AtomicU32,
}

impl RecordSink for FullDiskOnce {
    fn projects(&self, i: &[bbdc_host::bindings::types::Project]) -> Result<(), StoreError> {
        self.inner.projects(i)
    }
    fn repos(&self, i: &[bbdc_host::bindings::types::Repo]) -> Result<(), StoreError> {
        self.inner.repos(i)
    }
    fn users(&self, i: &[bbdc_host::bindings::types::User]) -> Result<(), StoreError> {
        self.inner.users(i)
    }
    fn pull_requests(
        &self,
        i: &[bbdc_host::bindings::types::PullRequest],
    ) -> Result<(), StoreError> {
        self.inner.pull_requests(i)
    }
    support::history_to_inner!();
    fn delivery(&self, d: &Delivery<'_>) -> Result<Stored, StoreError> {
        use std::sync::atomic::Ordering;
        if self
            .failures
            .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::new("database or disk is full"));
        }
        self.inner.delivery(d)
    }
}

#[test]
fn a_delivery_whose_storing_failed_is_stored_when_bitbucket_retries_it() {
    let d = db(NO_SERVER);
    let sink = FullDiskOnce {
        inner: SqliteRecords::open(&d.path).unwrap(),
        failures: std::sync::atomic::AtomicU32::new(1),
    };
    let body = payload(
        "pr:reviewer:approved",
        5,
        json!({"participant": {"user": user("carol"), "role": "REVIEWER", "approved": true, "status": "APPROVED"},
               "previousStatus": "UNAPPROVED"}),
    );
    let mut body = body;
    // `payload` writes one date as ISO text, as some servers do; the reference says epoch ms.
    body["pullRequest"]["createdDate"] = json!(T0);
    support::reference::assert_webhook("pr:reviewer:approved", &body);
    let bytes = body.to_string().into_bytes();
    let deliver = || {
        handle(
            runtime(),
            &d.tenant,
            Some(SECRET),
            DEFAULT_MAX_BODY,
            headers("pr:reviewer:approved", "retried-1", Some(sign(&bytes))),
            bytes.clone(),
            Some(&sink as &dyn RecordSink),
        )
    };
    let send = || report_json(&deliver());
    let failed = deliver();
    assert!(
        failed.outcome.is_none(),
        "an outcome that was not stored is not acted on (serve would queue its refresh): {:?}",
        failed.outcome
    );
    let first = report_json(&failed);
    assert_eq!(
        (
            first["http_status"].as_u64(),
            first["result"].as_str(),
            first["error"].as_str()
        ),
        (Some(500), Some("rejected"), Some("storage")),
        "{first}"
    );
    assert!(
        pr_row(&d.path).is_none(),
        "nothing stored by the failed attempt"
    );
    let retried = deliver();
    assert!(
        retried
            .outcome
            .as_ref()
            .is_some_and(|o| o.refresh.is_some()),
        "the stored retry asks for its refresh: {:?}",
        retried.outcome
    );
    let retry = report_json(&retried);
    assert_eq!(
        (retry["http_status"].as_u64(), retry["result"].as_str()),
        (Some(200), Some("accepted")),
        "the retry is stored, not answered as a duplicate: {retry}"
    );
    assert_eq!(pr_row(&d.path).map(|r| r.0), Some(5));
    let again = send();
    assert_eq!(again["result"], "duplicate", "{again}");
    let reviews: i64 = Connection::open(&d.path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM reviews", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reviews, 1, "the review event is stored exactly once");
}

/// The pull request a signed `pr:modified` delivery carries, as the component normalised it
/// (nothing stored), for tests that call the record store directly.
fn delivered_pull_request(d: &Db) -> bbdc_host::bindings::types::PullRequest {
    let bytes = payload("pr:modified", 3, json!({}))
        .to_string()
        .into_bytes();
    let report = handle(
        runtime(),
        &d.tenant,
        Some(SECRET),
        DEFAULT_MAX_BODY,
        headers("pr:modified", "template", Some(sign(&bytes))),
        bytes,
        None,
    );
    report
        .outcome
        .and_then(|o| o.pull_request)
        .expect("a pull request")
}

#[test]
fn delivery_marks_expire_after_the_window_so_storage_stays_bounded() {
    let d = db(NO_SERVER);
    let pr = delivered_pull_request(&d);
    let window = std::time::Duration::from_secs(600);
    let records = SqliteRecords::open(&d.path)
        .unwrap()
        .with_dedup_window(window);
    let minute = 60_000;
    let at = |i: i64| 1_800_000_000_000 + i * minute;
    let store = |id: &str, received_at: i64| {
        records
            .delivery(&Delivery {
                request_id: Some(id),
                received_at,
                pull_request: &pr,
                stale: false,
                review: None,
                deleted: false,
            })
            .unwrap()
    };
    // One delivery a minute for ten hours: at most a window's worth is remembered.
    for i in 0..600 {
        assert_eq!(store(&format!("d{i}"), at(i)), Stored::New);
        assert!(records.remembered_deliveries().unwrap() <= 11, "at {i}");
    }
    assert_eq!(
        store("d595", at(600)),
        Stored::Duplicate,
        "within the window a repeat is a duplicate"
    );
    assert_eq!(
        store("d0", at(600)),
        Stored::New,
        "past the window the id is forgotten"
    );
}

#[test]
fn pull_request_ids_past_a_java_long_are_refused_not_collapsed_into_one_row() {
    let d = db(NO_SERVER);
    for (i, id) in ["9223372036854775808", "9223372036854775809"]
        .iter()
        .enumerate()
    {
        let mut body = payload("pr:opened", 1, json!({}));
        // Written as JSON numbers beyond i64, as a hostile or broken sender would.
        body["pullRequest"]["id"] = json!(0);
        let bytes = body
            .to_string()
            .replace("\"id\":0,", &format!("\"id\":{id},"))
            .into_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains(id));
        let out = report_json(&handle(
            runtime(),
            &d.tenant,
            Some(SECRET),
            DEFAULT_MAX_BODY,
            headers("pr:opened", &format!("big-{i}"), Some(sign(&bytes))),
            bytes,
            Some(&d.records as &dyn RecordSink),
        ));
        assert_eq!(
            (out["http_status"].as_u64(), out["error"].as_str()),
            (Some(400), Some("malformed_payload")),
            "{out}"
        );
    }
    let rows: i64 = Connection::open(&d.path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM pull_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

/// Deliveries stored from many threads at once share commits: every one is stored exactly once
/// (a request id sent to several threads is `New` for one and `Duplicate` for the rest), and a
/// delivery that cannot be stored fails alone, leaving no mark, while the deliveries committed
/// with it are stored.
#[test]
fn concurrent_deliveries_are_group_committed_and_one_failure_fails_alone() {
    let d = db(NO_SERVER);
    let template = delivered_pull_request(&d);
    let (threads, per_thread) = (16u64, 40u64);
    let outcomes: Vec<(String, Result<Stored, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (records, template) = (&d.records, &template);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for i in 0..per_thread {
                        // Every thread also sends "shared-{i}": one of them stores it.
                        for id in [format!("t{t}-{i}"), format!("shared-{i}")] {
                            let mut pr = template.clone();
                            // Every fifth thread-own delivery of thread 3 names an id no row can
                            // hold: its store fails.
                            let poisoned = t == 3 && i % 5 == 0 && id.starts_with('t');
                            pr.id = match (poisoned, id.starts_with('t')) {
                                (true, _) => u64::MAX,
                                (false, true) => 1000 + t * per_thread + i,
                                (false, false) => 1 + i,
                            };
                            let r = records.delivery(&Delivery {
                                request_id: Some(&id),
                                received_at: 1_800_000_000_000,
                                pull_request: &pr,
                                stale: false,
                                review: None,
                                deleted: false,
                            });
                            out.push((id, r.map_err(|e| bbdc_host::errors::chain(&e))));
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no thread panics"))
            .collect()
    });
    let mut new = std::collections::BTreeMap::<String, u32>::new();
    let mut failed = Vec::new();
    for (id, r) in &outcomes {
        match r {
            Ok(Stored::New) => *new.entry(id.clone()).or_default() += 1,
            Ok(Stored::Duplicate) => assert!(id.starts_with("shared-"), "{id} duplicated"),
            Err(e) => {
                assert!(e.contains("beyond the 64-bit"), "{id}: {e}");
                failed.push(id.clone());
            }
        }
    }
    let poisoned: Vec<String> = (0..per_thread)
        .filter(|i| i % 5 == 0)
        .map(|i| format!("t3-{i}"))
        .collect();
    assert_eq!(failed, poisoned, "exactly the poisoned deliveries failed");
    assert!(new.values().all(|&n| n == 1), "each id stored once");
    let expected = threads * per_thread + per_thread - poisoned.len() as u64;
    assert_eq!(new.len() as u64, expected);
    let conn = Connection::open(&d.path).unwrap();
    let marks: i64 = conn
        .query_row("SELECT COUNT(*) FROM webhook_deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(marks as u64, expected, "a failed delivery leaves no mark");
    let poisoned_marks: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE request_id LIKE 't3-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(poisoned_marks as u64, per_thread - poisoned.len() as u64);
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM pull_requests", [], |r| r.get(0))
        .unwrap();
    // Each stored delivery wrote its own pull request.
    assert_eq!(rows as u64, expected);
}
