//! `bbdc serve`: `POST /webhooks/bitbucket_data_center` and `GET /healthz` over real HTTP, many
//! deliveries at once, each persisted before it is answered, and (with server credentials) a
//! background refresh of the pull request through `fetch-pull-request`.
//!
//! HTTP is axum's router served by hyper on a small tokio runtime: connections (keep-alive
//! included) cost no thread, and each delivery runs on a blocking thread, at most `workers` at a
//! time, since a call into the component and the SQLite commit block.
//!
//! What the endpoint guarantees:
//! - **2xx means stored.** A delivery is answered 200 `accepted` only once its records and its
//!   de-duplication mark are committed in one transaction ([`RecordSink::delivery`]); any
//!   failure before that answers 5xx and leaves no mark, so Bitbucket's retry stores it.
//! - **Bounded clients.** At most `max_connections` connections are open (more wait in the
//!   kernel's backlog); a connection that has not sent a complete request head within
//!   `idle_timeout` of opening or of its previous answer is closed, and a body must arrive
//!   within `body_timeout` (408 otherwise). Accept failures (out of file descriptors) back off
//!   and retry instead of stopping the endpoint.
//! - **Graceful stop.** [`WebhookServer::stop`], or SIGTERM/SIGINT when `stop_on_signals` is
//!   set, stops accepting, lets the deliveries in flight finish (up to `drain_timeout`) and
//!   then returns; queued background refreshes are abandoned (their snapshots are stored).

use crate::bindings::api::RepoRef;
use crate::records::RecordSink;
use crate::runtime::Runtime;
use crate::state::Tenant;
use crate::webhook::{self, DeliveryReport};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The delivery path Bitbucket is pointed at.
pub const WEBHOOK_PATH: &str = "/webhooks/bitbucket_data_center";

/// Settings of the endpoint.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free one).
    pub listen: String,
    /// The webhook secret (`None` only when unsigned deliveries are explicitly allowed).
    pub secret: Option<String>,
    /// Largest body accepted (413 beyond).
    pub max_body: usize,
    /// Deliveries handled at once (each on its own thread while it runs).
    pub workers: usize,
    /// Refresh pull requests through the server after accepted deliveries.
    pub refresh: bool,
    /// Connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that has not sent a complete request head this long after opening, or
    /// after its previous answer, is closed (this bounds both slow headers and idle
    /// keep-alive connections).
    pub idle_timeout: Duration,
    /// Longest wait for a request body once its head arrived (408 beyond).
    pub body_timeout: Duration,
    /// How long a stop waits for deliveries in flight.
    pub drain_timeout: Duration,
    /// Stop gracefully on SIGTERM and SIGINT (for `bbdc serve`; embedders keep their own
    /// signal handling and call [`WebhookServer::stop`]).
    pub stop_on_signals: bool,
}

impl ServeConfig {
    /// Defaults for `listen`: the connector's body cap, 8 workers, 1024 connections, 15 s to
    /// send a request head, 30 s for a body, 30 s to drain.
    pub fn new(listen: impl Into<String>, secret: Option<String>) -> Self {
        Self {
            listen: listen.into(),
            secret,
            max_body: crate::webhook::DEFAULT_MAX_BODY,
            workers: 8,
            refresh: false,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            stop_on_signals: false,
        }
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {0}: {1}")]
pub struct ServeError(String, String);

/// A running endpoint.
pub struct WebhookServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    http: Option<JoinHandle<()>>,
    refresher: Option<Refresher>,
}

type Shared = (Arc<Runtime>, Arc<Tenant>, Arc<dyn RecordSink>);

/// The refresh queue, its worker, and the flag that makes it abandon what is queued.
type Refresher = (
    mpsc::Sender<(RepoRef, u64)>,
    JoinHandle<()>,
    Arc<AtomicBool>,
);

/// Pull requests queued for refresh and not yet started: a burst of deliveries for one pull
/// request queues one refresh.
type Pending = Arc<Mutex<HashSet<(String, String, u64)>>>;

/// What every request handler sees.
struct Endpoint {
    shared: Shared,
    config: ServeConfig,
    refresh: Option<mpsc::Sender<(RepoRef, u64)>>,
    pending: Pending,
}

impl WebhookServer {
    /// Binds and starts answering.
    pub fn start(
        runtime: Arc<Runtime>,
        tenant: Arc<Tenant>,
        sink: Arc<dyn RecordSink>,
        mut config: ServeConfig,
    ) -> Result<Self, ServeError> {
        // Never accept a body the connector would refuse anyway.
        config.max_body = config.max_body.min(crate::webhook::CONNECTOR_MAX_BODY);
        config.max_connections = config.max_connections.max(1);
        let fail = |e: &dyn std::fmt::Display| ServeError(config.listen.clone(), e.to_string());
        let listener = std::net::TcpListener::bind(&config.listen).map_err(|e| fail(&e))?;
        listener.set_nonblocking(true).map_err(|e| fail(&e))?;
        let addr = listener.local_addr().map_err(|e| fail(&e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(config.workers.max(1))
            .thread_name("bbdc-serve")
            .enable_all()
            .build()
            .map_err(|e| fail(&e))?;
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(|e| fail(&e))?
        };
        let shared: Shared = (runtime, tenant, sink);
        let pending: Pending = Arc::new(Mutex::new(HashSet::new()));
        let refresher = config
            .refresh
            .then(|| start_refresher(shared.clone(), Arc::clone(&pending)));
        let endpoint = Arc::new(Endpoint {
            shared,
            config: config.clone(),
            refresh: refresher.as_ref().map(|(tx, _, _)| tx.clone()),
            pending,
        });
        let app = Router::new()
            .route(
                "/healthz",
                get(|| async { json_response(200, r#"{"ok":true}"#.into()) }),
            )
            .route(
                WEBHOOK_PATH,
                post(deliver).fallback(|| async {
                    json_response(405, r#"{"error":"method_not_allowed"}"#.into())
                }),
            )
            .fallback(|| async { json_response(404, r#"{"error":"not_found"}"#.into()) })
            .with_state(endpoint);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let limits = config.clone();
        let http = std::thread::Builder::new()
            .name("bbdc-serve-http".into())
            .spawn(move || rt.block_on(accept_loop(listener, app, limits, rx)))
            .map_err(|e| fail(&e))?;
        tracing::info!("listening on http://{addr}{WEBHOOK_PATH}");
        Ok(Self {
            addr,
            shutdown: Some(tx),
            http: Some(http),
            refresher,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits for the deliveries in flight (up to the drain timeout), abandons
    /// queued refreshes and lets a running one finish.
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.finish();
    }

    /// Serves until stopped by a signal (with `stop_on_signals`), then drains as
    /// [`WebhookServer::stop`] does.
    pub fn wait(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
        if let Some((tx, handle, abandon)) = self.refresher.take() {
            abandon.store(true, Ordering::Relaxed);
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// Resolves when the endpoint should stop: [`WebhookServer::stop`], or a signal.
async fn stop_requested(stop: tokio::sync::oneshot::Receiver<()>, signals: bool) {
    #[cfg(unix)]
    if signals {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = stop => {}
                _ = term.recv() => tracing::info!("SIGTERM: draining deliveries in flight"),
                _ = int.recv() => tracing::info!("SIGINT: draining deliveries in flight"),
            }
            return;
        }
    }
    let _ = signals;
    let _ = stop.await;
}

/// Accepts connections until stopped, at most `max_connections` at once, each served by hyper
/// with the header/idle timeout; then drains.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServeConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let stop = stop_requested(stop, limits.stop_on_signals);
    tokio::pin!(stop);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => slot,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                tcp
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS…: the listener is fine; wait for resources to free.
                if backoff == ACCEPT_BACKOFF_MIN {
                    tracing::warn!("accepting a connection failed ({e}); backing off");
                }
                drop(slot);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        // Answers go out at once, not after the client's delayed ACK (Nagle).
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            tracing::warn!("deliveries still in flight after {:?}; stopping anyway", limits.drain_timeout);
        }
    }
}

/// First and longest pause after a failed `accept`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

fn start_refresher(shared: Shared, pending: Pending) -> Refresher {
    let (tx, rx) = mpsc::channel::<(RepoRef, u64)>();
    let abandon = Arc::new(AtomicBool::new(false));
    let abandoned = Arc::clone(&abandon);
    let handle = std::thread::spawn(move || {
        let (runtime, tenant, sink) = shared;
        while let Ok((repo, id)) = rx.recv() {
            if abandoned.load(Ordering::Relaxed) {
                continue;
            }
            if let Ok(mut p) = pending.lock() {
                p.remove(&(repo.project_key.clone(), repo.slug.clone(), id));
            }
            match runtime.fetch_pull_request(&tenant, &repo, id) {
                Ok(pr) => {
                    if let Err(e) = sink.pull_requests(std::slice::from_ref(&pr)) {
                        tracing::warn!(repo = %format!("{}/{}", repo.project_key, repo.slug), id, "refresh not stored: {e}");
                    }
                }
                Err(e) => {
                    let (code, message) = crate::output::call_error(&e);
                    tracing::warn!(repo = %format!("{}/{}", repo.project_key, repo.slug), id, code, "refresh failed: {message}");
                }
            }
        }
    });
    (tx, handle, abandon)
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn deliver(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let headers = header_pairs(&headers);
    let max_body = endpoint.config.max_body;
    let limited = http_body_util::Limited::new(body, max_body);
    let Ok(collected) = tokio::time::timeout(endpoint.config.body_timeout, limited.collect()).await
    else {
        let report = webhook::unreadable_with(
            408,
            "body_timeout",
            format!(
                "the body did not arrive within {:?}",
                endpoint.config.body_timeout
            ),
            &headers,
        );
        return json_response(
            report.http_status,
            webhook::report_json(&report).to_string(),
        );
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => {
            let report = if e.is::<http_body_util::LengthLimitError>() {
                webhook::too_large(max_body, &headers)
            } else {
                webhook::unreadable(e.to_string(), &headers)
            };
            return json_response(
                report.http_status,
                webhook::report_json(&report).to_string(),
            );
        }
    };
    let answered = tokio::task::spawn_blocking(move || {
        let report = handle(&endpoint, headers, body);
        (
            report.http_status,
            webhook::report_json(&report).to_string(),
        )
    })
    .await;
    match answered {
        Ok((status, body)) => json_response(status, body),
        Err(e) => json_response(
            500,
            serde_json::json!({"result": "rejected", "error": "internal", "message": e.to_string()})
                .to_string(),
        ),
    }
}

/// One delivery, on a blocking thread: the call, persistence, the refresh queue, the log line.
fn handle(endpoint: &Endpoint, headers: Vec<(String, String)>, body: Vec<u8>) -> DeliveryReport {
    let (runtime, tenant, sink) = &endpoint.shared;
    let config = &endpoint.config;
    let report = webhook::handle(
        runtime,
        tenant,
        config.secret.as_deref(),
        config.max_body,
        headers,
        body,
        Some(sink.as_ref()),
    );
    tracing::info!(
        event_key = %crate::printable::prefix(report.event_key.as_deref().unwrap_or("-")),
        request_id = %crate::printable::prefix(report.request_id.as_deref().unwrap_or("-")),
        result = report.result,
        status = report.http_status,
        "webhook delivery"
    );
    if let (Some(tx), Some(r)) = (
        &endpoint.refresh,
        report.outcome.as_ref().and_then(|o| o.refresh.clone()),
    ) {
        let key = (r.repo.project_key.clone(), r.repo.slug.clone(), r.id);
        let fresh = endpoint
            .pending
            .lock()
            .map(|mut p| p.insert(key))
            .unwrap_or(true);
        if fresh {
            let _ = tx.send((r.repo, r.id));
        }
    }
    report
}
