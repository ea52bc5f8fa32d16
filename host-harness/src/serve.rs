//! `bbdc serve`: `POST /webhooks/bitbucket_data_center` and `GET /healthz` over real HTTP, many
//! deliveries at once, each persisted before it is answered, and (with server credentials) a
//! background refresh of the pull request through `fetch-pull-request`.

use crate::bindings::api::RepoRef;
use crate::records::RecordSink;
use crate::runtime::Runtime;
use crate::state::Tenant;
use crate::webhook;
use std::collections::HashSet;
use std::io::Read;
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
    /// Threads answering deliveries.
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
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    refresher: Option<Refresher>,
}

type Shared = (Arc<Runtime>, Arc<Tenant>, Arc<dyn RecordSink>);

/// The refresh queue and its worker.
type Refresher = (mpsc::Sender<(RepoRef, u64)>, JoinHandle<()>);

/// Pull requests queued for refresh and not yet started: a burst of deliveries for one pull
/// request queues one refresh.
type Pending = Arc<Mutex<HashSet<(String, String, u64)>>>;

impl WebhookServer {
    /// Binds and starts answering.
    pub fn start(
        runtime: Arc<Runtime>,
        tenant: Arc<Tenant>,
        sink: Arc<dyn RecordSink>,
        config: ServeConfig,
    ) -> Result<Self, ServeError> {
        let server = Arc::new(
            tiny_http::Server::http(&config.listen)
                .map_err(|e| ServeError(config.listen.clone(), e.to_string()))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| ServeError(config.listen.clone(), "not an IP address".into()))?;
        let shared: Shared = (runtime, tenant, sink);
        let pending: Pending = Arc::new(Mutex::new(HashSet::new()));
        let refresher = config
            .refresh
            .then(|| start_refresher(shared.clone(), Arc::clone(&pending)));
        let workers = (0..config.workers.max(1))
            .map(|_| {
                let (server, shared, config) =
                    (Arc::clone(&server), shared.clone(), config.clone());
                let refresh_tx = refresher.as_ref().map(|(tx, _)| tx.clone());
                let pending = Arc::clone(&pending);
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        answer(request, &shared, &config, refresh_tx.as_ref(), &pending);
                    }
                })
            })
            .collect();
        tracing::info!("listening on http://{addr}{WEBHOOK_PATH}");
        Ok(Self {
            addr,
            server,
            workers,
            refresher,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops answering and waits for in-flight deliveries and queued refreshes.
    pub fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
        if let Some((tx, handle)) = self.refresher {
            drop(tx);
            let _ = handle.join();
        }
    }

    /// Serves until the process is stopped.
    pub fn wait(self) {
        for w in self.workers {
            let _ = w.join();
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

fn respond(request: tiny_http::Request, status: u16, body: String) {
    let content_type = tiny_http::Header::from_bytes("Content-Type", "application/json").ok();
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Some(h) = content_type {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}

fn answer(
    mut request: tiny_http::Request,
    shared: &Shared,
    config: &ServeConfig,
    refresh: Option<&mpsc::Sender<(RepoRef, u64)>>,
    pending: &Pending,
) {
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    match (request.method(), path.as_str()) {
        (tiny_http::Method::Get, "/healthz") => {
            return respond(request, 200, r#"{"ok":true}"#.into());
        }
        (tiny_http::Method::Post, WEBHOOK_PATH) => {}
        (_, WEBHOOK_PATH) => {
            return respond(request, 405, r#"{"error":"method_not_allowed"}"#.into());
        }
        _ => return respond(request, 404, r#"{"error":"not_found"}"#.into()),
    }
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_owned(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let limit = u64::try_from(config.max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    if let Err(e) = request.as_reader().take(limit).read_to_end(&mut body) {
        return respond(request, 400, serde_json::json!({"result": "rejected", "error": "malformed_payload", "message": e.to_string()}).to_string());
    }
    let (runtime, tenant, sink) = shared;
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
        refresh,
        report.outcome.as_ref().and_then(|o| o.refresh.clone()),
    ) {
        let key = (r.repo.project_key.clone(), r.repo.slug.clone(), r.id);
        if pending.lock().map(|mut p| p.insert(key)).unwrap_or(true) {
            let _ = tx.send((r.repo, r.id));
        }
    }
    let status = report.http_status;
    respond(request, status, webhook::report_json(&report).to_string());
}
