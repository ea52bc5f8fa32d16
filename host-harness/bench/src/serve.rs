//! Benchmark 6: `bbdc serve` throughput. Concurrent senders on loopback POST signed deliveries,
//! each on its own keep-alive connection; the endpoint verifies each in a fresh instance and
//! persists it to SQLite on disk before it answers, as `bbdc serve` does.

use super::core::{SECRET, signature, webhook_body, webhook_headers};
use super::fixtures::FixtureResponder;
use super::{BenchOptions, Figure, Target, quantile};
use anyhow::{Result, anyhow, ensure};
use bbdc_host::runtime::Runtime;
use bbdc_host::storage::SqliteKv;
use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::records::SqliteRecords;
use bbdc_jobs::serve::{ServeConfig, WEBHOOK_PATH, WebhookServer};
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

/// Runs benchmark 6.
pub fn throughput(options: &BenchOptions, runtime: &Arc<Runtime>) -> Result<Vec<Figure>> {
    let senders = options.senders.max(1);
    let per_sender = if options.quick { 5 } else { 300 };
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("serve.sqlite");
    // Refresh is off: this measures the delivery path, not fetches from a server.
    let config = TenantConfig::new("bench", "http://127.0.0.1:9/bitbucket", Credentials::None);
    let tenant = Arc::new(Tenant::new(config, Arc::new(SqliteKv::open(&db)?))?);
    let records = Arc::new(SqliteRecords::open(&db)?);
    let server = WebhookServer::start(
        Arc::clone(runtime),
        tenant,
        records,
        ServeConfig {
            max_body: bbdc_jobs::webhook::DEFAULT_MAX_BODY,
            workers: SERVE_WORKERS,
            refresh: false,
            ..ServeConfig::new("127.0.0.1:0", Some(SECRET.into()))
        },
    )?;
    let url = format!("http://{}{WEBHOOK_PATH}", server.addr());

    // Deliveries for 200 different pull requests, signed before the clock starts.
    let fixture = FixtureResponder::new(200);
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

    let start_line = Barrier::new(senders + 1);
    let (results, wall) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|s| {
                let (url, bodies, start_line) = (&url, &bodies, &start_line);
                scope.spawn(move || {
                    // A delivery that is never answered fails instead of hanging the suite.
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(30)))
                        .build()
                        .into();
                    let send = |n: usize, out: &mut Sent, timed: bool| {
                        let (body, sig) = &bodies[(s * 7 + n) % bodies.len()];
                        let mut req = agent.post(url.as_str());
                        for (k, v) in webhook_headers(&format!("serve-{s}-{n}"), sig) {
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
    server.stop();

    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.latencies.clone()).collect();
    let accepted: u64 = results.iter().map(|r| r.accepted).sum();
    let failures: Vec<&String> = results.iter().flat_map(|r| &r.failures).collect();
    let expected = (senders * per_sender) as u64;
    ensure!(
        failures.is_empty() && accepted == expected,
        "{accepted} of {expected} deliveries accepted; first failures: {:?}",
        failures.iter().take(3).collect::<Vec<_>>()
    );
    let rate = accepted as f64 / wall.as_secs_f64();
    let p50 = quantile(&mut latencies, 0.5);
    let p99 = quantile(&mut latencies, 0.99);
    let how = format!(
        "{senders} senders × {per_sender} deliveries (~{mean_size} B each, 200 pull requests) on keep-alive loopback connections, {SERVE_WORKERS} serve workers, each delivery verified in a fresh instance and persisted to SQLite on disk (WAL) before the answer; senders and server share the machine"
    );
    Ok(vec![
        Figure {
            bench: 6,
            name: "`bbdc serve` throughput".into(),
            value: rate,
            unit: "/s",
            target: Target::AtLeast(2000.0),
            detail: format!(
                "{accepted} deliveries in {:.2} s; {how}",
                wall.as_secs_f64()
            ),
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
