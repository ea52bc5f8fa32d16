//! Benchmark 6: `bbdc serve` throughput. Concurrent senders on loopback POST signed deliveries,
//! each on its own keep-alive connection; the endpoint checks each signature in the host, lets a
//! warm instance of the tenant's interpret the delivery, and persists it to SQLite on disk before it answers, as `bbdc serve` does. A native baseline
//! endpoint runs in the same benchmark, alternating with it: the same HTTP stack, the same
//! host-side HMAC check, the connector's state in the same SQLite store, the connector's core
//! compiled natively instead of the component, and the same group-committed SQLite write.

use super::core::{SECRET, signature, webhook_body, webhook_headers};
use super::fixtures::{BASE_URL, FixtureResponder, NativeHost};
use super::{BenchOptions, Figure, Target, quantile};
use anyhow::{Result, anyhow, ensure};
use bbdc_connector::model as native;
use bbdc_host::bindings::types::PullRequest;
use bbdc_host::runtime::Runtime;
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_http_server::axum::Router;
use bbdc_http_server::axum::body::Body;
use bbdc_http_server::axum::extract::State;
use bbdc_http_server::axum::http::{HeaderMap, StatusCode};
use bbdc_http_server::axum::response::{IntoResponse, Response};
use bbdc_http_server::axum::routing::post;
use bbdc_http_server::{HttpServer, ServerLimits};
use bbdc_jobs::records::{Delivery, RecordSink, SqliteRecords, Stored};
use bbdc_jobs::serve::{ServeConfig, WEBHOOK_PATH, WebhookServer};
use bbdc_jobs::webhook::DEFAULT_MAX_BODY;
use bbdc_store::kv::SqliteKv;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Worker threads of the endpoint (`bbdc serve --workers`' default).
pub const SERVE_WORKERS: usize = 8;

/// One sender's results.
#[derive(Default)]
struct Sent {
    latencies: Vec<Duration>,
    accepted: u64,
    failures: Vec<String>,
}

/// One endpoint's totals over its rounds.
#[derive(Default)]
struct Totals {
    accepted: u64,
    wall: Duration,
    latencies: Vec<Duration>,
}

/// The native baseline: the connector's core compiled into this process, and what to store
/// for each delivery (the pull request the component produced for the same body, so both
/// endpoints write the same rows).
struct Baseline {
    /// What the core's hosts answer requests from (a delivery makes none).
    fixture: Arc<FixtureResponder>,
    /// The connector's state (the newest version seen of each pull request), in the same kind
    /// of store and file as the component's tenant keeps it.
    kv: Arc<SqliteKv>,
    records: SqliteRecords,
    /// Keyed by the delivery's signature.
    stored: HashMap<String, PullRequest>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Baseline {
    /// What the baseline answers a delivery: status and result.
    fn deliver(&self, headers: Vec<(String, String)>, body: Vec<u8>) -> (u16, &'static str) {
        let check = match bbdc_jobs::webhook::precheck(Some(SECRET), &headers, &body) {
            Ok(check) => check,
            Err((status, code, _)) => return (status, code),
        };
        let signature = header(&headers, "x-hub-signature")
            .unwrap_or_default()
            .to_owned();
        let req = native::WebhookRequest { headers, body };
        let conn = native::Connection {
            base_url: BASE_URL.into(),
            page_size: None,
        };
        // One core host per worker thread (the core's host is not shared between threads), the
        // connector's state in one SQLite store that every worker shares, as the tenant's is.
        thread_local! {
            static HOST: std::cell::RefCell<Option<NativeHost>> = const { std::cell::RefCell::new(None) };
        }
        let outcome = HOST.with_borrow_mut(|host| {
            let host = host.get_or_insert_with(|| {
                NativeHost::new(Arc::clone(&self.fixture) as _)
                    .with_store(Arc::clone(&self.kv) as _, "bench")
            });
            host.set_signature(check);
            bbdc_connector::webhook::handle::<
                bbdc_connector::pull_request_webhook::PullRequestEvents,
                _,
            >(&*host, &conn, &req)
        });
        let Ok(outcome) = outcome else {
            return (400, "rejected");
        };
        let Some(pull_request) = self.stored.get(&signature) else {
            return (500, "unknown_delivery");
        };
        let received_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        match self.records.delivery(&Delivery {
            request_id: outcome.request_id.as_deref(),
            received_at,
            pull_request,
            stale: outcome.stale,
            review: None,
            deleted: false,
        }) {
            Ok(Stored::New) => (200, "accepted"),
            Ok(Stored::Duplicate) => (200, "duplicate"),
            Err(_) => (500, "storage"),
        }
    }
}

/// An answer with `status` and a JSON `result`.
fn answer(status: u16, result: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, format!(r#"{{"result":"{result}"}}"#)).into_response()
}

async fn baseline_delivery(
    State(baseline): State<Arc<Baseline>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let Ok(body) = bbdc_http_server::axum::body::to_bytes(body, DEFAULT_MAX_BODY).await else {
        return answer(413, "too_large");
    };
    let answered =
        tokio::task::spawn_blocking(move || baseline.deliver(headers, body.to_vec())).await;
    match answered {
        Ok((status, result)) => answer(status, result),
        Err(_) => answer(500, "internal"),
    }
}

/// Sends `per_sender` deliveries from each of `senders` keep-alive connections to `url` and
/// adds what was accepted, and how long it took, to `totals`. `round` keeps request ids unique
/// across rounds.
fn send_all(
    url: &str,
    bodies: &[(Vec<u8>, String)],
    senders: usize,
    per_sender: usize,
    round: usize,
    totals: &mut Totals,
) -> Result<()> {
    let start_line = Barrier::new(senders + 1);
    let (results, wall) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|s| {
                let start_line = &start_line;
                scope.spawn(move || {
                    // A delivery that is never answered fails instead of hanging the suite.
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(30)))
                        .build()
                        .into();
                    let send = |n: usize, out: &mut Sent, timed: bool| {
                        let (body, sig) = &bodies[(s * 7 + n) % bodies.len()];
                        let mut req = agent.post(url);
                        for (k, v) in webhook_headers(&format!("serve-{round}-{s}-{n}"), sig) {
                            req = req.header(k, v);
                        }
                        let began = Instant::now();
                        let answer = req.send(body.as_slice()).and_then(|mut r| {
                            let status = r.status().as_u16();
                            r.body_mut().read_to_string().map(|text| (status, text))
                        });
                        let took = began.elapsed();
                        match answer {
                            Ok((200, text)) if text.contains("\"accepted\"") => {
                                if timed {
                                    out.latencies.push(took);
                                    out.accepted += 1;
                                }
                            }
                            Ok((status, text)) => out.failures.push(format!("{status}: {text}")),
                            Err(e) => out.failures.push(e.to_string()),
                        }
                    };
                    let mut out = Sent::default();
                    // Warm up: open the connection, touch the code paths.
                    send(usize::MAX / 2, &mut out, false);
                    start_line.wait();
                    for n in 0..per_sender {
                        send(n, &mut out, true);
                    }
                    out
                })
            })
            .collect();
        start_line.wait();
        let began = Instant::now();
        let results: Vec<Sent> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (results, began.elapsed())
    });
    let accepted: u64 = results.iter().map(|r| r.accepted).sum();
    let failures: Vec<&String> = results.iter().flat_map(|r| &r.failures).collect();
    let expected = (senders * per_sender) as u64;
    ensure!(
        failures.is_empty() && accepted == expected,
        "{accepted} of {expected} deliveries accepted at {url}; first failures: {:?}",
        failures.iter().take(3).collect::<Vec<_>>()
    );
    totals.accepted += accepted;
    totals.wall += wall;
    totals
        .latencies
        .extend(results.into_iter().flat_map(|r| r.latencies));
    Ok(())
}

fn serve_tenant(db: &Path) -> Result<Arc<Tenant>> {
    // Refresh is off: this measures the delivery path, not fetches from a server.
    let config = TenantConfig::new("bench", "http://127.0.0.1:9/bitbucket", Credentials::None);
    Ok(Arc::new(Tenant::new(
        config,
        Arc::new(SqliteKv::open(db)?),
    )?))
}

/// Runs benchmark 6.
pub fn throughput(options: &BenchOptions, runtime: &Arc<Runtime>) -> Result<Vec<Figure>> {
    let senders = options.senders.max(1);
    let per_sender = if options.quick { 5 } else { 300 };
    let rounds = if options.quick { 2 } else { 4 };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("serve.sqlite");
    let server = WebhookServer::start(
        Arc::clone(runtime),
        serve_tenant(&db)?,
        Arc::new(SqliteRecords::open(&db)?),
        ServeConfig {
            max_body: DEFAULT_MAX_BODY,
            workers: SERVE_WORKERS,
            refresh: false,
            ..ServeConfig::new("127.0.0.1:0", Some(SECRET.into()))
        },
    )?;
    let url = format!("http://{}{WEBHOOK_PATH}", server.addr());

    // Deliveries for 200 different pull requests, signed before the clock starts.
    let fixture = Arc::new(FixtureResponder::new(200));
    let page: serde_json::Value = serde_json::from_str(&fixture.fixture().list_page)?;
    let bodies: Vec<(Vec<u8>, String)> = page["values"]
        .as_array()
        .ok_or_else(|| anyhow!("the fixture page has no values"))?
        .iter()
        .map(|pr| {
            let body = webhook_body(pr, 0);
            let sig = signature(SECRET, &body);
            (body, sig)
        })
        .collect();
    ensure!(!bodies.is_empty(), "no deliveries to send");
    let mean_size = bodies.iter().map(|(b, _)| b.len()).sum::<usize>() / bodies.len();

    // The baseline stores what the component makes of each body.
    let scratch = dir.path().join("scratch.sqlite");
    let scratch_tenant = serve_tenant(&scratch)?;
    let mut stored = HashMap::new();
    for (i, (body, sig)) in bodies.iter().enumerate() {
        let report = bbdc_jobs::webhook::handle(
            runtime,
            &scratch_tenant,
            Some(SECRET),
            DEFAULT_MAX_BODY,
            webhook_headers(&format!("scratch-{i}"), sig),
            body.clone(),
            None,
        );
        let pr = report
            .outcome
            .and_then(|o| o.pull_request)
            .ok_or_else(|| anyhow!("the component made no pull request of delivery {i}"))?;
        stored.insert(sig.clone(), pr);
    }
    let baseline_db = dir.path().join("baseline.sqlite");
    let baseline = Arc::new(Baseline {
        fixture,
        kv: Arc::new(SqliteKv::open(&baseline_db)?),
        records: SqliteRecords::open(&baseline_db)?,
        stored,
    });
    let app = Router::new()
        .route(WEBHOOK_PATH, post(baseline_delivery))
        .with_state(baseline);
    let limits = ServerLimits {
        blocking_threads: SERVE_WORKERS,
        ..ServerLimits::default()
    };
    let native_server = HttpServer::start("bench-baseline", "127.0.0.1:0", limits, app)?;
    let native_url = format!("http://{}{WEBHOOK_PATH}", native_server.addr());

    // Alternate, so load from elsewhere spoils both sides alike.
    let (mut wasm, mut nat) = (Totals::default(), Totals::default());
    for round in 0..rounds {
        let order: [(&str, &mut Totals); 2] = if round % 2 == 0 {
            [(&url, &mut wasm), (&native_url, &mut nat)]
        } else {
            [(&native_url, &mut nat), (&url, &mut wasm)]
        };
        for (target, totals) in order {
            send_all(target, &bodies, senders, per_sender, round, totals)?;
        }
    }
    server.stop();
    native_server.stop();

    let rate = |t: &Totals| t.accepted as f64 / t.wall.as_secs_f64().max(1e-9);
    let (wasm_rate, native_rate) = (rate(&wasm), rate(&nat));
    let p50 = quantile(&mut wasm.latencies, 0.5);
    let p99 = quantile(&mut wasm.latencies, 0.99);
    let native_p50 = quantile(&mut nat.latencies, 0.5);
    let how = format!(
        "{senders} senders × {per_sender} deliveries (~{mean_size} B each, 200 pull requests) on keep-alive loopback connections, {SERVE_WORKERS} serve workers, signatures checked in the host, each delivery interpreted in a warm instance of the tenant and persisted to SQLite on disk (WAL, group commit) before the answer; {rounds} rounds alternating with the baseline; senders and server share the machine"
    );
    Ok(vec![
        Figure {
            bench: 6,
            name: "`bbdc serve` throughput".into(),
            value: wasm_rate,
            unit: "/s",
            target: Target::AtLeast(5000.0),
            detail: format!(
                "{} deliveries in {:.2} s; {how}",
                wasm.accepted,
                wasm.wall.as_secs_f64()
            ),
        },
        Figure {
            bench: 6,
            name: "Native baseline endpoint throughput".into(),
            value: native_rate,
            unit: "/s",
            target: Target::None,
            detail: format!(
                "{} deliveries in {:.2} s, p50 {:.1} ms; the same HTTP stack, host HMAC check, connector state in SQLite and group-committed record write, the connector's core compiled natively (one core host per worker thread) instead of the component",
                nat.accepted,
                nat.wall.as_secs_f64(),
                native_p50.as_secs_f64() * 1e3
            ),
        },
        Figure {
            bench: 6,
            name: "`bbdc serve` throughput ÷ native baseline".into(),
            value: wasm_rate / native_rate.max(1e-9),
            unit: "×",
            target: Target::AtLeast(0.8),
            detail: "the same run, the same senders".into(),
        },
        Figure {
            bench: 6,
            name: "`bbdc serve` latency p50".into(),
            value: p50.as_secs_f64() * 1e3,
            unit: "ms",
            target: Target::None,
            detail: "as seen by the senders, request sent to answer read".into(),
        },
        Figure {
            bench: 6,
            name: "`bbdc serve` latency p99".into(),
            value: p99.as_secs_f64() * 1e3,
            unit: "ms",
            target: Target::None,
            detail: "as seen by the senders".into(),
        },
    ])
}
