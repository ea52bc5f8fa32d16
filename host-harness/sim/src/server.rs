//! The simulator's HTTP side, on the stack `bbdc serve` uses ([`bbdc_http_server`]): the shared
//! state behind every request, authentication, latency, and the faults applied to answers.

use crate::counts::RequestCounts;
use crate::faults::{Endless, Faults, Injected};
use crate::rate_limit::{ServerBucket, retry_after_secs};
use crate::render::{Dialect, error as error_json};
use crate::world::World;
use bbdc_http_server::axum::Router;
use bbdc_http_server::axum::body::Body;
use bbdc_http_server::axum::extract::{Request, State as Shared};
use bbdc_http_server::axum::http::{HeaderValue, StatusCode, header};
use bbdc_http_server::axum::response::Response;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Everything a request may read or change.
pub(crate) struct State {
    pub(crate) world: Mutex<World>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) token: Option<String>,
    pub(crate) rng: Mutex<fastrand::Rng>,
    pub(crate) broken: HashSet<(String, String, u64)>,
    pub(crate) requests: AtomicU64,
    pub(crate) counts: Mutex<RequestCounts>,
    pub(crate) webhook: Mutex<Option<(String, String)>>,
    pub(crate) base: String,
    pub(crate) dialect: Dialect,
    /// The server's own rate limit, when it has one.
    pub(crate) bucket: Option<Mutex<ServerBucket>>,
    /// Its settings, as the settings resources describe them.
    pub(crate) rate_limit: Option<crate::ServerRateLimit>,
    /// How the settings resources describe it.
    pub(crate) rate_settings: crate::rate_limit::RateSettings,
    /// When each of the latest requests was answered ([`ANSWERS_KEPT`] at most), and with
    /// which status.
    pub(crate) log: Mutex<std::collections::VecDeque<(std::time::Instant, u16)>>,
    /// Requests refused by it.
    pub(crate) throttled: AtomicU64,
    /// Where running builds stand.
    pub(crate) running_builds: Mutex<crate::builds::RunningBuilds>,
    /// Commits whose build statuses always fail with 500 (a broken CI plugin, say).
    pub(crate) failing_builds: Mutex<HashSet<String>>,
    /// Set when the simulator stops: requests waiting out a simulated latency end at once,
    /// so that a stalled simulator stops as promptly as any other.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

/// How many of the latest answers the simulator keeps the time and status of: a scale run
/// answers millions.
pub(crate) const ANSWERS_KEPT: usize = 100_000;

/// One answer, before it is put on the wire.
struct Reply {
    status: u16,
    body: String,
    /// `Retry-After`, in seconds.
    retry_after: Option<u64>,
    user: Option<&'static str>,
    cut: bool,
}

impl Reply {
    fn json(status: u16, body: String) -> Self {
        Self {
            status,
            body,
            retry_after: None,
            user: None,
            cut: false,
        }
    }
}

/// The router: every path goes to the simulated REST API.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new().fallback(answer).with_state(state)
}

async fn answer(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    let url = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Routing locks the world and latency sleeps: both on a blocking thread.
    let reply = tokio::task::spawn_blocking(move || state.handle(&url, authorization.as_deref()))
        .await
        .unwrap_or_else(|e| {
            Reply::json(
                500,
                error_json("java.lang.IllegalStateException", &e.to_string()),
            )
        });
    reply.into_response()
}

impl Reply {
    fn into_response(self) -> Response {
        let mut response = if self.cut {
            // Promise the whole body, send half, then fail the stream: hyper closes the
            // connection mid-body, as a dying proxy does.
            let len = self.body.len();
            let half = self.body.into_bytes()[..len / 2].to_vec();
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::other("simulated connection cut")),
            ];
            let mut r = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        } else {
            Response::new(Body::from(self.body))
        };
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(user) = self.user {
            headers.insert("x-ausername", HeaderValue::from_static(user));
        }
        response
    }
}

/// Bitbucket's 429: its exception name and message, and when to come back.
fn rate_limited(retry_after: u64) -> Reply {
    Reply {
        retry_after: Some(retry_after),
        ..Reply::json(
            429,
            error_json(
                "com.atlassian.bitbucket.ratelimit.RateLimitedException",
                "You have been rate limited.",
            ),
        )
    }
}

impl State {
    /// `body`, the answer to `url`, made a page of a listing without end when `url` is a page
    /// of `endless`'s listing: the listing's first page again, saying more follows.
    fn endless(&self, endless: Endless, url: &str, body: String) -> String {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        if !endless.listing.lists(path) {
            return body;
        }
        let mut start = 0u64;
        let first_query: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .filter_map(|(k, v)| {
                if k == "start" {
                    start = v.parse().unwrap_or(0);
                    None
                } else {
                    Some(format!(
                        "{}={}",
                        k,
                        url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                    ))
                }
            })
            .collect();
        let first_url = format!("{path}?{}", first_query.join("&"));
        let (status, first) = self.route(&first_url);
        match serde_json::from_str::<serde_json::Value>(&first) {
            Ok(first) if status == 200 && first.get("values").is_some() => {
                endless.page(&first, start).to_string()
            }
            _ => body,
        }
    }

    /// Answers one request and counts it, with the body bytes it was answered with.
    fn handle(&self, url: &str, authorization: Option<&str>) -> Reply {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let reply = self.reply(url, authorization);
        if let Ok(mut c) = self.counts.lock() {
            c.count(url, reply.body.len() as u64);
        }
        if let Ok(mut log) = self.log.lock() {
            if log.len() >= ANSWERS_KEPT {
                log.pop_front();
            }
            log.push_back((std::time::Instant::now(), reply.status));
        }
        reply
    }

    fn reply(&self, url: &str, authorization: Option<&str>) -> Reply {
        let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        if !faults.latency.is_zero() {
            let until = std::time::Instant::now() + faults.latency;
            while !self.stopping.load(Ordering::Relaxed) {
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
            }
        }
        if let Some(token) = &self.token
            && authorization != Some(&format!("Bearer {token}"))
        {
            return Reply::json(
                401,
                error_json(
                    "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
                    "Authentication failed. Please check your credentials and try again.",
                ),
            );
        }
        if let Some(bucket) = &self.bucket
            && let Ok(mut bucket) = bucket.lock()
            && let Err(wait) = bucket.take(std::time::Instant::now())
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return rate_limited(retry_after_secs(wait));
        }
        let before = self.rng.lock().ok().and_then(|mut r| faults.before(&mut r));
        let (status, body) = match before {
            Some(Injected::RateLimited) => return rate_limited(1),
            Some(Injected::Unavailable(status)) => {
                return Reply::json(status, "<html>Service unavailable</html>".into());
            }
            Some(Injected::Cut | Injected::Malformed) | None => self.route(url),
        };
        let (status, body) = match faults.endless {
            Some(endless) if status == 200 => (status, self.endless(endless, url, body)),
            _ => (status, body),
        };
        let after = if status == 200 {
            self.rng.lock().ok().and_then(|mut r| faults.after(&mut r))
        } else {
            None
        };
        let user = self.token.as_ref().map(|_| crate::rate_limit::ACCOUNT);
        match after {
            Some(Injected::Cut) => Reply {
                cut: true,
                ..Reply::json(status, body)
            },
            Some(Injected::Malformed) => Reply::json(status, body[..body.len() / 2].to_owned()),
            _ => Reply {
                user,
                ..Reply::json(status, body)
            },
        }
    }
}
