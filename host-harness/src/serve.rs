//! `bbdc serve`: `POST /webhooks/bitbucket_data_center` and `GET /healthz` over real HTTP, many
//! deliveries at once, each persisted before it is answered, and (with server credentials) a
//! background refresh of the pull request through `fetch-pull-request`.
//!
//! HTTP is axum on a small tokio runtime: connections (keep-alive included) cost no thread, and
//! each delivery runs on a blocking thread, at most `workers` at a time, since a call into the
//! component and the SQLite commit block.

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
use axum::serve::ListenerExt;
use http_body_util::BodyExt;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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

/// The refresh queue and its worker.
type Refresher = (mpsc::Sender<(RepoRef, u64)>, JoinHandle<()>);

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
        config: ServeConfig,
    ) -> Result<Self, ServeError> {
        let fail = |e: &dyn std::fmt::Display| ServeError(config.listen.clone(), e.to_string());
        let listener = std::net::TcpListener::bind(&config.listen).map_err(|e| fail(&e))?;
        listener.set_nonblocking(true).map_err(|e| fail(&e))?;
        let addr = listener.local_addr().map_err(|e| fail(&e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(config.workers.max(1))
            .thread_name("bbdc-serve")
            .enable_io()
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
            refresh: refresher.as_ref().map(|(tx, _)| tx.clone()),
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
        let http = std::thread::Builder::new()
            .name("bbdc-serve-http".into())
            .spawn(move || {
                let served = rt.block_on(async move {
                    // Answers go out at once, not after the client's delayed ACK (Nagle).
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await
                });
                if let Err(e) = served {
                    tracing::error!("webhook endpoint stopped: {e}");
                }
            })
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

    /// Stops answering and waits for in-flight deliveries and queued refreshes.
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
        if let Some((tx, handle)) = self.refresher.take() {
            drop(tx);
            let _ = handle.join();
        }
    }

    /// Serves until the process is stopped.
    pub fn wait(mut self) {
        if let Some(h) = self.http.take() {
            let _ = h.join();
        }
    }
}

fn start_refresher(
    shared: Shared,
    pending: Pending,
) -> (mpsc::Sender<(RepoRef, u64)>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<(RepoRef, u64)>();
    let handle = std::thread::spawn(move || {
        let (runtime, tenant, sink) = shared;
        while let Ok((repo, id)) = rx.recv() {
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
    (tx, handle)
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
    let body = match limited.collect().await {
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
        event_key = report.event_key.as_deref().unwrap_or("-"),
        request_id = report.request_id.as_deref().unwrap_or("-"),
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
