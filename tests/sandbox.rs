//! The sandbox: a hostile component (tests/hostile-plugin, built here) tries an endless loop, a
//! memory bomb, a panic, a request to another host, its own Authorization header, another
//! tenant's storage and a log flood. Each is contained with a clear error, and the host keeps
//! serving every tenant, including calls in flight for others.

mod support;

use bbdc_host::bindings::types::{ConnectorError, RepoFilter};
use bbdc_host::storage::KvStore;
use bbdc_host::{CallError, Credentials, HostError, Runtime, RuntimeConfig, Tenant, TenantConfig};
use bbdc_store::kv::SqliteKv;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::*;
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Builds the hostile component once (same cargo, the guest target directory).
fn hostile_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target/guest");
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(root.join("tests/hostile-plugin"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the hostile plugin failed");
        target.join("wasm32-wasip2/release/hostile_plugin.wasm")
    })
    .clone()
}

fn hostile_runtime(fuel: Option<u64>) -> Runtime {
    Runtime::new(&RuntimeConfig {
        component_path: Some(hostile_wasm()),
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        fuel,
        pooling_slots: None,
        ..RuntimeConfig::default()
    })
    .expect("the hostile component loads")
}

fn hostile_tenant(id: &str, base: &str, kv: Arc<dyn KvStore>) -> Arc<Tenant> {
    let mut c = TenantConfig::new(id, base, Credentials::Bearer(TOKEN.into()));
    c.limits.deadline = Duration::from_millis(1500);
    c.limits.memory_bytes = 64 << 20;
    Arc::new(Tenant::new(c, kv).unwrap())
}

fn mem() -> Arc<dyn KvStore> {
    Arc::new(SqliteKv::in_memory().unwrap())
}

fn note(
    r: Result<bbdc_host::bindings::types::ConnectionReport, CallError<ConnectorError>>,
) -> String {
    r.expect("the call returns")
        .server_version
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_hits_the_deadline_and_others_keep_being_served() {
    let healthy = MockServer::start().await;
    Mock::given(path("/rest/api/1.0/projects"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(
            vec![project("PLAT", 1)],
            0,
            25,
            None,
        )))
        .mount(&healthy)
        .await;
    let (hostile, uri) = (hostile_runtime(None), healthy.uri());
    blocking(move || {
        let hostile = Arc::new(hostile);
        let looping = {
            let hostile = Arc::clone(&hostile);
            std::thread::spawn(move || {
                hostile.check_connection(
                    &hostile_tenant("a", "http://127.0.0.1:9/loop", mem()),
                    RepoFilter::EVERYTHING,
                )
            })
        };
        // While tenant a loops, tenant b's calls on the same host go through.
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..5 {
            assert_eq!(
                note(hostile.check_connection(
                    &hostile_tenant("b", "http://127.0.0.1:9/fine", mem()),
                    RepoFilter::EVERYTHING
                )),
                "well-behaved"
            );
        }
        // And the real connector, for another tenant, on another runtime of the same process.
        let page = runtime()
            .list_projects(&tenant(&uri), None)
            .expect("served while a tenant loops");
        assert_eq!(page.items.len(), 1);
        match looping.join().unwrap() {
            Err(CallError::Host(HostError::Deadline(d))) => {
                assert_eq!(d, Duration::from_millis(1500))
            }
            other => panic!("expected the deadline, got {other:?}"),
        }
        // The host recovers: a fresh instance for the next call.
        assert_eq!(
            note(hostile.check_connection(
                &hostile_tenant("a", "http://127.0.0.1:9/fine", mem()),
                RepoFilter::EVERYTHING
            )),
            "well-behaved"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_memory_cap() {
    blocking(|| {
        let rt = hostile_runtime(None);
        match rt.check_connection(
            &hostile_tenant("a", "http://127.0.0.1:9/memory", mem()),
            RepoFilter::EVERYTHING,
        ) {
            Err(CallError::Host(HostError::MemoryLimit(n))) => assert_eq!(n, 64 << 20),
            other => panic!("expected the memory limit, got {other:?}"),
        }
        assert_eq!(
            note(rt.check_connection(
                &hostile_tenant("a", "http://127.0.0.1:9/fine", mem()),
                RepoFilter::EVERYTHING
            )),
            "well-behaved"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fuel_stops_a_loop_when_metering_is_on() {
    blocking(|| {
        // The runtime's default is generous; this tenant's own limit is small.
        let rt = hostile_runtime(Some(u64::MAX / 2));
        let mut c = TenantConfig::new(
            "a",
            "http://127.0.0.1:9/loop",
            Credentials::Bearer(TOKEN.into()),
        );
        c.limits.fuel = Some(50_000_000);
        c.limits.deadline = Duration::from_secs(60);
        match rt.check_connection(
            &Arc::new(Tenant::new(c, mem()).unwrap()),
            RepoFilter::EVERYTHING,
        ) {
            Err(CallError::Host(HostError::Fuel)) => {}
            other => panic!("expected fuel exhaustion, got {other:?}"),
        }
        assert_eq!(
            note(rt.check_connection(
                &hostile_tenant("a", "http://127.0.0.1:9/fine", mem()),
                RepoFilter::EVERYTHING
            )),
            "well-behaved"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_is_a_trap_and_the_host_carries_on() {
    blocking(|| {
        let rt = hostile_runtime(None);
        match rt.check_connection(
            &hostile_tenant("a", "http://127.0.0.1:9/panic", mem()),
            RepoFilter::EVERYTHING,
        ) {
            Err(CallError::Host(HostError::Trap(_))) => {}
            other => panic!("expected a trap, got {other:?}"),
        }
        assert_eq!(
            note(rt.check_connection(
                &hostile_tenant("a", "http://127.0.0.1:9/fine", mem()),
                RepoFilter::EVERYTHING
            )),
            "well-behaved"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_to_another_host_is_denied_and_never_sent() {
    let other = MockServer::start().await;
    let port = other.address().port();
    blocking(move || {
        let rt = hostile_runtime(None);
        let mut c = TenantConfig::new(
            "a",
            "http://127.0.0.1:9/other-host",
            Credentials::Bearer(TOKEN.into()),
        );
        c.page_size = Some(u32::from(port));
        let t = Arc::new(Tenant::new(c, mem()).unwrap());
        let n = note(rt.check_connection(&t, RepoFilter::EVERYTHING));
        assert!(n.starts_with("denied:"), "{n}");
    })
    .await;
    assert!(other.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plugins_own_authorization_never_reaches_the_server() {
    let server = MockServer::start().await;
    Mock::given(path("/auth/rest/api/1.0/application-properties"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&server)
        .await;
    let uri = server.uri();
    let n = blocking(move || {
        note(hostile_runtime(None).check_connection(
            &hostile_tenant("a", &format!("{uri}/auth"), mem()),
            RepoFilter::EVERYTHING,
        ))
    })
    .await;
    assert_eq!(n, "sent:200");
    let requests = server.received_requests().await.unwrap();
    let auth: Vec<_> = requests[0]
        .headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(auth, [format!("Bearer {TOKEN}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_others_storage_even_all_at_once() {
    blocking(|| {
        let rt = Arc::new(hostile_runtime(None));
        // One store shared by every tenant, as a platform would run it.
        let kv: Arc<dyn KvStore> = Arc::new(SqliteKv::in_memory().unwrap());
        let threads: Vec<_> = (0..24)
            .map(|i| {
                let (rt, kv) = (Arc::clone(&rt), Arc::clone(&kv));
                std::thread::spawn(move || {
                    let base = format!("http://127.0.0.1:9/t{i}/storage");
                    let t = hostile_tenant(&format!("tenant-{i}"), &base, kv);
                    let first = note(rt.check_connection(&t, RepoFilter::EVERYTHING));
                    let second = note(rt.check_connection(&t, RepoFilter::EVERYTHING));
                    (first, second, base)
                })
            })
            .collect();
        for h in threads {
            let (first, second, base) = h.join().unwrap();
            assert_eq!(
                first, "seen:None",
                "a fresh tenant sees nothing of the others"
            );
            assert_eq!(
                second,
                format!("seen:Some({base:?})"),
                "and then only its own value"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_flood_is_cut_by_the_host() {
    let lines = CapturedLog::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let n = blocking(|| {
        note(hostile_runtime(None).check_connection(
            &hostile_tenant("a", "http://127.0.0.1:9/log-flood", mem()),
            RepoFilter::EVERYTHING,
        ))
    })
    .await;
    assert_eq!(n, "flooded", "the call completes");
    let text = lines.text();
    let kept = text.lines().filter(|l| l.contains("flood ")).count();
    assert_eq!(
        kept, 10_000,
        "the host keeps 10,000 lines of a call and drops the other 190,000"
    );
    assert!(text.contains("log limit reached"));
}

#[test]
fn an_initialiser_that_reaches_for_the_host_is_refused_and_the_component_runs_as_built() {
    use bbdc_host::preinit::{PreInitError, exports_initialiser, pre_initialize};
    let bytes = std::fs::read(hostile_wasm()).expect("the hostile component was built");
    assert!(exports_initialiser(&bytes).expect("parses"));
    // Its initialiser calls the log import: at load time every import traps, so no snapshot is
    // made that could hold a handle or anything the host gave it.
    match pre_initialize(&bytes) {
        Err(PreInitError::Snapshot(why)) => assert!(why.contains("trap"), "{why}"),
        other => panic!("pre-initialised a component whose initialiser calls an import: {other:?}"),
    }
    // The runtime's default is to pre-initialise when it can; here it runs the component as
    // built, and it works.
    let hostile = hostile_runtime(None);
    assert_eq!(
        note(hostile.check_connection(
            &hostile_tenant("a", "http://127.0.0.1:9/fine", mem()),
            RepoFilter::EVERYTHING
        )),
        "well-behaved"
    );
}

/// Instances are reused between calls of one tenant (the default), never across tenants, and
/// none outlives a trap: the hostile plugin's `memo` mode reports the base URL that the previous
/// call of its instance saw, which only a reused instance remembers.
#[tokio::test(flavor = "multi_thread")]
async fn a_warm_instance_serves_only_its_tenant_and_no_instance_outlives_a_trap() {
    blocking(|| {
        let rt = Arc::new(hostile_runtime(None));
        let memo = |t: &Arc<Tenant>| note(rt.check_connection(t, RepoFilter::EVERYTHING));
        let (a_url, b_url) = ("http://127.0.0.1:9/a/memo", "http://127.0.0.1:9/b/memo");
        let a = hostile_tenant("a", a_url, mem());
        let b = hostile_tenant("b", b_url, mem());
        assert_eq!(
            memo(&a),
            "previous:None",
            "a new instance remembers nothing"
        );
        assert_eq!(
            memo(&a),
            format!("previous:Some({a_url:?})"),
            "a's instance is reused"
        );
        assert_eq!(memo(&b), "previous:None", "b never gets a's instance");
        assert_eq!(memo(&b), format!("previous:Some({b_url:?})"));
        // Another tenant with the very same configuration is another tenant.
        let a_again = hostile_tenant("a", a_url, mem());
        assert_eq!(memo(&a_again), "previous:None");
        let counts = rt.instance_counts();
        assert_eq!((counts.created, counts.reused), (3, 2), "{counts:?}");

        // A trap retires the instance it happened in: a's next call starts afresh.
        match rt.list_projects(&a, None) {
            Err(CallError::Host(HostError::Trap(_))) => {}
            other => panic!("expected the trap, got {other:?}"),
        }
        assert_eq!(
            memo(&a),
            "previous:None",
            "the trapped instance was not reused"
        );

        // Many threads, two tenants, calls interleaved: each instance only ever saw its own.
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let rt = Arc::clone(&rt);
                let (t, own) = if i % 2 == 0 {
                    (Arc::clone(&a), a_url)
                } else {
                    (Arc::clone(&b), b_url)
                };
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let seen = note(rt.check_connection(&t, RepoFilter::EVERYTHING));
                        assert!(
                            seen == "previous:None" || seen == format!("previous:Some({own:?})"),
                            "a call of {own} saw {seen}"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no call saw another tenant's instance");
        }
        let counts = rt.instance_counts();
        assert!(counts.reused > counts.created, "{counts:?}");

        // Reuse can be turned off: every call is a new instance.
        let fresh = Runtime::new(&RuntimeConfig {
            component_path: Some(hostile_wasm()),
            cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
            reuse: bbdc_host::InstanceReuse::OFF,
            ..RuntimeConfig::default()
        })
        .expect("the hostile component loads");
        for _ in 0..3 {
            assert_eq!(
                note(fresh.check_connection(&a, RepoFilter::EVERYTHING)),
                "previous:None"
            );
        }
        assert_eq!(fresh.instance_counts().reused, 0);
    })
    .await;
}

/// A call that keeps a host resource (a response body, and the connection under it) past its
/// end retires its instance: the next call cannot find the body, and the host frees it.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_keeps_a_response_body_open_is_not_reused() {
    let server = MockServer::start().await;
    Mock::given(path("/keep-body/rest/api/1.0/application-properties"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let base = format!("{}/keep-body", server.uri());
    blocking(move || {
        let rt = hostile_runtime(None);
        let t = hostile_tenant("a", &base, mem());
        for _ in 0..3 {
            assert_eq!(
                note(rt.check_connection(&t, RepoFilter::EVERYTHING)),
                "kept a body"
            );
        }
        assert_eq!(rt.instance_counts().reused, 0);
    })
    .await;
}

/// The webhook secret stays in the host: a component sees the connection, the headers, the body
/// and the host's verdict on the signature, never the secret; and the verdict belongs to its
/// delivery alone (none lingers into the next call of a reused instance).
#[tokio::test(flavor = "multi_thread")]
async fn a_component_learns_whether_a_delivery_is_signed_but_never_the_secret() {
    use bbdc_host::bindings::api::WebhookRequest;
    use bbdc_host::bindings::types::WebhookError;
    const SECRET: &str = "WHSEC-HOSTILE-5521";
    blocking(|| {
        let rt = hostile_runtime(None);
        let t = hostile_tenant("a", "http://127.0.0.1:9/delivery", mem());
        let body = br#"{"eventKey":"pr:opened"}"#.to_vec();
        let deliver = |signature: &str, secret: Option<&str>| {
            let req = WebhookRequest {
                headers: vec![
                    ("X-Event-Key".into(), "pr:opened".into()),
                    ("X-Hub-Signature".into(), signature.into()),
                ],
                body: body.clone(),
            };
            match rt.handle_webhook(&t, secret, &req) {
                Err(CallError::Connector(WebhookError::MalformedPayload(seen))) => seen,
                other => panic!("the hostile plugin reports what it saw: {other:?}"),
            }
        };
        let good = bbdc_sim::signature(SECRET, &body);
        let seen = [
            deliver(&good, Some(SECRET)),
            deliver(&bbdc_sim::signature("another", &body), Some(SECRET)),
            deliver("sha256=beef", Some(SECRET)),
            deliver(&good, None),
        ];
        assert!(
            seen[0].ends_with("check:SignatureCheck::Matches again:SignatureCheck::Matches"),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].ends_with("check:SignatureCheck::Mismatch again:SignatureCheck::Mismatch"),
            "{}",
            seen[1]
        );
        assert!(
            seen[2].contains("check:SignatureCheck::Malformed("),
            "{}",
            seen[2]
        );
        assert!(
            seen[3].ends_with("check:SignatureCheck::NoSecret again:SignatureCheck::NoSecret"),
            "{}",
            seen[3]
        );
        for s in &seen {
            assert!(!s.contains(SECRET), "the secret reached the component: {s}");
        }
        // The same warm instance, outside a delivery: there is nothing to check.
        assert_eq!(
            note(rt.check_connection(&t, RepoFilter::EVERYTHING)),
            "check:SignatureCheck::Missing"
        );
        assert!(
            rt.instance_counts().reused >= 4,
            "{:?}",
            rt.instance_counts()
        );
    })
    .await;
}
