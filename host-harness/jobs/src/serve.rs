//! `bbdc serve`: `POST /webhooks/bitbucket_data_center` and `GET /healthz` over real HTTP, many
//! deliveries at once, each persisted before it is answered, and (with server credentials) a
//! background refresh of the pull request through `fetch-pull-request`.
//!
//! HTTP is [`bbdc_http_server`], the stack the simulator shares: connections (keep-alive
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
//! - **Graceful stop, within the drain.** [`WebhookServer::stop`], or SIGTERM/SIGINT when
//!   `stop_on_signals` is set, stops accepting, lets the deliveries in flight finish and returns
//!   within `drain_timeout` of the stop, whatever the Bitbucket server is doing: the background
//!   refresh ([`crate::refresh`]) is cancelled at once, and what it has not done stays queued
//!   in the record store for the next serve to start.

use crate::records::RecordSink;
use crate::refresh::Refresher;
use crate::webhook::{self, DeliveryReport};
use bbdc_host::runtime::Runtime;
use bbdc_host::tenant::Tenant;
use bbdc_http_server::axum::Router;
use bbdc_http_server::axum::body::Body;
use bbdc_http_server::axum::extract::State;
use bbdc_http_server::axum::http::{HeaderMap, StatusCode, header};
use bbdc_http_server::axum::response::{IntoResponse, Response};
use bbdc_http_server::axum::routing::{get, post};
use bbdc_http_server::{HttpServer, ServerLimits, Stopping};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
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
pub type ServeError = bbdc_http_server::BindError;

/// A running endpoint.
pub struct WebhookServer {
    http: HttpServer,
    refresher: Option<Arc<Refresher>>,
    /// Set when the endpoint begins to stop.
    stopping: Arc<Stopping>,
    /// How long a stop may take, from its start.
    drain_timeout: Duration,
}

/// What deliveries and refreshes run on: the component, the tenant, the record store.
#[derive(Clone)]
struct DeliveryContext {
    runtime: Arc<Runtime>,
    tenant: Arc<Tenant>,
    sink: Arc<dyn RecordSink>,
}

/// What every request handler sees.
struct Endpoint {
    backend: DeliveryContext,
    config: ServeConfig,
    refresher: Option<Arc<Refresher>>,
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
        let backend = DeliveryContext {
            runtime,
            tenant,
            sink,
        };
        let stopping = Arc::new(Stopping::default());
        let refresher = config.refresh.then(|| {
            Arc::new(Refresher::start(
                Arc::clone(&backend.runtime),
                Arc::clone(&backend.tenant),
                Arc::clone(&backend.sink),
                Arc::clone(&stopping),
            ))
        });
        let endpoint = Arc::new(Endpoint {
            backend,
            config: config.clone(),
            refresher: refresher.clone(),
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
        let limits = ServerLimits {
            max_connections: config.max_connections,
            idle_timeout: Some(config.idle_timeout),
            drain_timeout: config.drain_timeout,
            stop_on_signals: config.stop_on_signals,
            blocking_threads: config.workers,
            stopping: Some(Arc::clone(&stopping)),
        };
        let http = HttpServer::start("bbdc-serve", &config.listen, limits, app)?;
        tracing::info!("listening on http://{}{WEBHOOK_PATH}", http.addr());
        Ok(Self {
            http,
            refresher,
            stopping,
            drain_timeout: config.drain_timeout,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Stops accepting, waits for the deliveries in flight, abandons queued refreshes and
    /// cancels a running one, all within the drain timeout of the call; returns whether
    /// everything finished in time (a refresh still waiting on the server is left behind).
    pub fn stop(self) -> bool {
        self.stopping.set();
        self.http.stop();
        Self::finish(self.refresher, &self.stopping, self.drain_timeout)
    }

    /// Serves until stopped by a signal (with `stop_on_signals`), then drains as
    /// [`WebhookServer::stop`] does, within the drain timeout of the signal.
    pub fn wait(self) -> bool {
        self.http.wait();
        Self::finish(self.refresher, &self.stopping, self.drain_timeout)
    }

    /// Waits for the refresher until the drain deadline (`drain` after the stop began).
    fn finish(refresher: Option<Arc<Refresher>>, stopping: &Stopping, drain: Duration) -> bool {
        stopping.set();
        refresher.is_none_or(|r| r.finish(stopping, drain))
    }
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
    let DeliveryContext {
        runtime,
        tenant,
        sink,
    } = &endpoint.backend;
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
    let pull_request = report
        .outcome
        .as_ref()
        .and_then(|o| o.refresh.clone())
        .map(|r| (r.repo, Some(r.id)));
    // A push or a rename: the repository's history, under its name now.
    let repository = report
        .repository
        .as_ref()
        .and_then(|o| o.repo.as_ref())
        .map(|r| (r.repo_ref.clone(), None));
    if let (Some(refresher), Some((repo, id))) = (&endpoint.refresher, pull_request.or(repository))
    {
        refresher.want(repo, id);
    }
    report
}
