//! Secret hygiene and the no-source-code promise, end to end: with a recognisable token, webhook
//! secret and source-code marker, a full sync of every entity (pull requests, commits, branches,
//! tags, builds), a refresh and a batch of webhook deliveries at the most verbose log level leave
//! none of them in any log line, error message, record, JSON line, storage value or the SQLite
//! files.

mod support;

use bbdc_host::{Credentials, Tenant, TenantConfig};
use bbdc_jobs::records::{RecordSink, SqliteRecords};
use bbdc_jobs::serve::{ServeConfig, WEBHOOK_PATH, WebhookServer};
use bbdc_jobs::sync::SyncJob;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{Faults, SimConfig, Simulator, send_webhook};
use bbdc_store::kv::SqliteKv;
use std::sync::{Arc, Mutex};
use support::*;

const TOKEN_MARK: &str = "TOKEN-ZX9Q-7731";
const SECRET_MARK: &str = "WHSEC-ZX9Q-4412";
/// Every diff line the simulator serves carries this, and every commit message below its first
/// line.
const SOURCE_MARK: &str = "SIM-SOURCE-LINE";

#[tokio::test(flavor = "multi_thread")]
async fn no_token_secret_or_source_line_escapes() {
    // Compile (or load) the component before TRACE is on: cranelift traces every instruction it
    // compiles, gigabytes that have nothing to do with what this test looks for.
    let _ = runtime();
    let logs = CapturedLog::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(bbdc_host::logging::env_filter("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let outputs = blocking(move || {
        let sim = Simulator::start(SimConfig {
            spec: WorldSpec {
                seed: 5,
                projects: 1,
                repos_per_project: 2,
                prs_per_repo: 12,
                users: 5,
            },
            faults: Faults {
                broken_prs: 1,
                rate_5xx: 0.05,
                ..Faults::default()
            },
            token: Some(TOKEN_MARK.into()),
            ..SimConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hygiene.sqlite");
        let jsonl_path = dir.path().join("out.jsonl");
        let mut config =
            TenantConfig::new("h", sim.base_url(), Credentials::Bearer(TOKEN_MARK.into()));
        config.http_policy.burst = None;
        config.http_policy.base_backoff = std::time::Duration::from_millis(5);
        let tenant = Arc::new(Tenant::new(config, Arc::new(SqliteKv::open(&db).unwrap())).unwrap());
        let records = SqliteRecords::open(&db).unwrap();
        let jsonl: bbdc_jobs::sync::JsonlOut =
            Mutex::new(Box::new(std::fs::File::create(&jsonl_path).unwrap()));
        let report = bbdc_jobs::sync::run(
            runtime(),
            &tenant,
            &records,
            Some(&jsonl),
            &SyncJob {
                concurrency: 2,
                entities: bbdc_jobs::sync::Entities::parse("all").unwrap(),
                ..SyncJob::default()
            },
        )
        .unwrap();
        // The history passes ran (the simulator serves no commit diff, patch or file: asking
        // for one would fail its repository).
        let counts = sim.request_counts();
        assert!(
            counts.commit_lists > 0 && counts.build_lists > 0,
            "{counts:?}"
        );
        let mut texts = vec![
            bbdc_jobs::output::sync_summary_json(&report, &db.display().to_string()).to_string(),
        ];

        // A refresh of one pull request.
        let first = sim.truth()[0].clone();
        let repo = bbdc_host::bindings::api::RepoRef {
            project_key: first["project_key"].as_str().unwrap().into(),
            slug: first["repo_slug"].as_str().unwrap().into(),
        };
        let pr = runtime()
            .fetch_pull_request(&tenant, &repo, first["id"].as_u64().unwrap())
            .unwrap();
        records.pull_requests(std::slice::from_ref(&pr)).unwrap();
        texts.push(format!("{pr:?}"));

        // Webhook deliveries, good and forged, through a real serve.
        let server = WebhookServer::start(
            Arc::new(
                bbdc_host::Runtime::new(&bbdc_host::RuntimeConfig {
                    cache_dir: Some(
                        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                            .join("component-cache"),
                    ),
                    ..Default::default()
                })
                .unwrap(),
            ),
            tenant.clone(),
            Arc::new(SqliteRecords::open(&db).unwrap()),
            ServeConfig {
                max_body: 1 << 20,
                workers: 2,
                refresh: true,
                ..ServeConfig::new("127.0.0.1:0", Some(SECRET_MARK.into()))
            },
        )
        .unwrap();
        let url = format!("http://{}{WEBHOOK_PATH}", server.addr());
        sim.set_webhook(&url, SECRET_MARK);
        let touched = sim.touch(6);
        assert_eq!(touched.len(), 6);
        let forged = send_webhook(
            &url,
            "not-the-secret",
            "pr:opened",
            br#"{"eventKey": "pr:opened"}"#,
        );
        assert_eq!(forged, Some(403));
        std::thread::sleep(std::time::Duration::from_millis(500));
        server.stop();
        drop(jsonl);
        texts.push(std::fs::read_to_string(&jsonl_path).unwrap());
        // Every byte of every SQLite file (records and connector storage alike).
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let p = entry.unwrap().path();
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
        sim.stop();
        (texts, files)
    })
    .await;
    let (texts, files) = outputs;
    let logs = logs.text();
    assert!(
        logs.contains("bbdc::connector"),
        "the connector's own log lines were captured"
    );
    assert!(logs.lines().count() > 100, "trace level is on");
    for mark in [TOKEN_MARK, SECRET_MARK, SOURCE_MARK] {
        assert!(
            !logs.contains(mark),
            "{mark} in a log line: {}",
            logs.lines().find(|l| l.contains(mark)).unwrap_or("")
        );
        for t in &texts {
            assert!(!t.contains(mark), "{mark} in a record or report");
        }
        for (name, bytes) in &files {
            let hit = bytes.windows(mark.len()).any(|w| w == mark.as_bytes());
            assert!(!hit, "{mark} in {name}");
        }
    }
    for kind in [
        "pull_request",
        "commit",
        "pr_commit",
        "branch",
        "tag",
        "build",
    ] {
        assert!(
            texts[2].contains(&format!("\"type\":\"{kind}\"")),
            "the JSON lines were written, {kind} among them"
        );
    }
    // Every simulated pull request has commits, so each line carries the first one's time.
    let pull_requests: Vec<serde_json::Value> = texts[2]
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "pull_request")
        .collect();
    assert!(!pull_requests.is_empty());
    for p in &pull_requests {
        assert!(p["first_commit_at"].is_i64(), "first_commit_at: {p}");
    }
}
