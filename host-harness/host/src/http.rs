//! The host's HTTP for one tenant: only the tenant's base URL, the tenant's credentials added by
//! the host (never by the guest), TLS through rustls with an optional per-tenant CA bundle,
//! timeouts, no redirects, and response size caps.

use crate::policy::{HttpCounters, Limiter, is_retryable_status, parse_retry_after};
use crate::tenant::config::{Credentials, TenantConfig};
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use ureq::tls::{PemItem, RootCerts, TlsConfig};
use url::Url;

/// Why a request got no response: the host side of WIT `http-error`, variant for variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Refused by host policy.
    #[error("denied: {0}")]
    Denied(String),
    /// Timed out.
    #[error("timed out")]
    Timeout,
    /// Connection, TLS or protocol failure.
    #[error("connection failed: {0}")]
    Connection(String),
    /// Body over the cap.
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
}

/// Why a tenant's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The base URL is unusable.
    #[error("invalid base URL {0:?}: {1}")]
    BaseUrl(String, String),
    /// The CA bundle could not be read or holds no certificate.
    #[error("CA bundle {0}: {1}")]
    CaBundle(String, String),
}

/// Status and headers (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
}

/// A streamed response body, held in the call's resource table.
pub struct StreamBody {
    reader: Box<dyn Read + Send>,
    cap: u64,
}

impl StreamBody {
    /// A body read from `reader`; `cap` is the limit named when a read fails for size.
    pub fn from_reader(reader: Box<dyn Read + Send>, cap: u64) -> Self {
        Self { reader, cap }
    }

    /// Reads up to `max` bytes; `None` at the end.
    pub fn read_chunk(&mut self, max: u32) -> Result<Option<Vec<u8>>, HttpError> {
        let mut buf = vec![0u8; max.clamp(1, 1 << 20) as usize];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_failure(e, self.cap)),
            }
        }
    }
}

/// A response made in the host instead of read from the network (see [`Responder`]).
pub struct CannedResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body, read as the guest asks for it (so large bodies need not be held in memory).
    pub body: Box<dyn Read + Send + Sync>,
}

impl CannedResponse {
    /// A `200` JSON response holding `body`.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Box::new(std::io::Cursor::new(body.into())),
        }
    }
}

/// Answers a tenant's requests in place of the network, for benchmarks and embedders' tests that
/// run the real component on the real host without a server. Every policy check (base URL,
/// forbidden headers, rate limit, retries, body caps) still runs; only the socket is replaced.
pub trait Responder: Send + Sync {
    /// The answer to `method url`.
    fn respond(&self, method: &str, url: &Url) -> CannedResponse;
}

/// Request headers the guest may not set: credentials and routing are the host's.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// What one request has used of the policy, across every retry of it (statuses, connection
/// failures, bodies cut short): it is sent at most `max_attempts` times in all, within one
/// total budget.
struct Attempts {
    /// Requests sent so far.
    made: u32,
    /// No retry is started that would end past this.
    until: Instant,
}

/// One tenant's HTTP client and policy.
pub struct TenantHttp {
    agent: ureq::Agent,
    base: Url,
    auth: Option<String>,
    max_body: u64,
    max_stream: u64,
    limiter: Limiter,
    /// The tenant's whole-request timeout (each attempt is cut further to the call's deadline).
    request_timeout: Duration,
    responder: Option<Arc<dyn Responder>>,
    /// Counters.
    pub counters: Arc<HttpCounters>,
}

impl std::fmt::Debug for TenantHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantHttp")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

fn authorization(c: &Credentials) -> Option<String> {
    use base64::Engine;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match c {
        Credentials::Bearer(t) => Some(format!("Bearer {t}")),
        Credentials::Basic { username, password } => Some(format!(
            "Basic {}",
            encode(format!("{username}:{password}").as_bytes())
        )),
        Credentials::None => None,
    }
}

/// The certificates of a PEM bundle, in DER.
fn load_bundle(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, HttpSetupError> {
    let shown = path.display().to_string();
    let pem =
        std::fs::read(path).map_err(|e| HttpSetupError::CaBundle(shown.clone(), e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => {
                certs.push(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
            }
            Ok(_) => {}
            Err(e) => return Err(HttpSetupError::CaBundle(shown, e.to_string())),
        }
    }
    if certs.is_empty() {
        return Err(HttpSetupError::CaBundle(
            shown,
            "no certificate in the file".into(),
        ));
    }
    Ok(certs)
}

fn io_failure(e: std::io::Error, cap: u64) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::TimedOut => HttpError::Timeout,
        _ => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        {
            Some(ureq::Error::BodyExceedsLimit(_)) => HttpError::TooLarge(cap),
            Some(ureq::Error::Timeout(_)) => HttpError::Timeout,
            _ => HttpError::Connection(e.to_string()),
        },
    }
}

fn failure(e: ureq::Error, cap: u64) -> HttpError {
    match e {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge(cap),
        ureq::Error::Io(io) => io_failure(io, cap),
        other => HttpError::Connection(other.to_string()),
    }
}

/// `url` with any user name and password replaced by `***`, for messages: a secret pasted into
/// a base URL never reaches a terminal or a log.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Whether `target` lies under `base`: same scheme, host and port, no user info, and a path
/// equal to or below the base path (on a segment boundary). `Url` has already resolved `..`.
pub fn is_under_base(base: &Url, target: &Url) -> bool {
    let base_path = base.path().trim_end_matches('/');
    let path = target.path();
    let path_ok = path == base_path
        || path
            .strip_prefix(base_path)
            .is_some_and(|rest| rest.starts_with('/'));
    target.scheme() == base.scheme()
        && target.host_str() == base.host_str()
        && target.port_or_known_default() == base.port_or_known_default()
        && target.username().is_empty()
        && target.password().is_none()
        && path_ok
}

impl TenantHttp {
    /// Shares the tenant's rate budget with the other processes calling its server: every
    /// request also takes a token from `budget` (see [`crate::policy::SharedBudget`]). Once per
    /// client; `false` when it already shares one.
    pub fn share_budget(&self, budget: Arc<dyn crate::policy::SharedBudget>, tenant: &str) -> bool {
        self.limiter.share(budget, tenant)
    }

    /// Paces the tenant's requests to a budget read from the server (see
    /// [`crate::policy::Limiter::set_budget`]).
    pub fn set_budget(&self, per_second: f64, burst: Option<f64>) {
        self.limiter.set_budget(per_second, burst);
    }

    /// The budget the server refused, if a run of 429s at it showed that it accepts less.
    pub fn refused_budget(&self) -> Option<crate::policy::RefusedBudget> {
        self.limiter.refused_budget()
    }

    /// Builds the client for a tenant.
    pub fn new(tenant: &TenantConfig) -> Result<Self, HttpSetupError> {
        let shown = redact_url(&tenant.base_url);
        let base = Url::parse(tenant.base_url.trim())
            .map_err(|e| HttpSetupError::BaseUrl(shown.clone(), e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(HttpSetupError::BaseUrl(
                shown,
                "must be an http(s) URL with a host".into(),
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(HttpSetupError::BaseUrl(
                shown,
                "must not carry credentials: give a token or a user name and password through \
                 their own settings"
                    .into(),
            ));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(tenant.timeouts.connect))
            .timeout_global(Some(tenant.timeouts.request))
            .timeout_recv_response(Some(tenant.timeouts.read))
            .timeout_recv_body(Some(tenant.timeouts.read))
            .user_agent(concat!("bbdc-connector/", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(RootCerts::WebPki).build())
            .build();
        // A tenant's own bundle also trusts a server presenting exactly one of its certificates
        // (self-signed servers); see `tls`.
        let agent = match &tenant.ca_bundle {
            Some(path) => crate::tls::agent(config, load_bundle(path)?)
                .map_err(|e| HttpSetupError::CaBundle(path.display().to_string(), e.to_string()))?,
            None => config.into(),
        };
        Ok(Self {
            agent,
            base,
            auth: authorization(&tenant.credentials),
            max_body: tenant.limits.max_body_bytes,
            max_stream: tenant.limits.max_stream_bytes,
            limiter: Limiter::new(tenant.http_policy.clone()),
            request_timeout: tenant.timeouts.request,
            responder: None,
            counters: Arc::new(HttpCounters::default()),
        })
    }

    /// The tenant's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Answers every request from `responder` instead of the network (see [`Responder`]).
    pub fn answer_from(&mut self, responder: Arc<dyn Responder>) {
        self.responder = Some(responder);
    }

    /// One exchange: through the responder if there is one, else over the network.
    fn exchange(
        &self,
        target: &Url,
        req: ureq::http::Request<()>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let Some(responder) = &self.responder else {
            return self.agent.run(req);
        };
        let canned = responder.respond(req.method().as_str(), target);
        let mut resp = ureq::http::Response::builder().status(canned.status);
        for (k, v) in &canned.headers {
            resp = resp.header(k.as_str(), v.as_str());
        }
        resp.body(ureq::Body::builder().reader(canned.body))
            .map_err(ureq::Error::from)
    }

    /// Sends a request under the tenant's policy: base URL only, host credentials, rate limit,
    /// Retry-After, bounded retries. Returns the final answer (a 429 or 503 the retries could
    /// not get past is returned as a response, for the connector to report).
    ///
    /// Nothing here outlives `deadline` (the call's): each attempt's timeout is cut to the time
    /// left, and no wait (rate limit, Retry-After, backoff) is started that would end past it.
    /// Attempts are counted in `tries`, which the caller keeps across its own retries of the
    /// same request (a body cut short), so one request never takes more than the policy's
    /// attempts or its total budget.
    fn start(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        deadline: Instant,
        tries: &mut Attempts,
    ) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let target = Url::parse(url).map_err(|e| {
            self.counters.denied.fetch_add(1, Ordering::Relaxed);
            HttpError::Denied(format!("not a valid URL: {e}"))
        })?;
        if !is_under_base(&self.base, &target) {
            self.counters.denied.fetch_add(1, Ordering::Relaxed);
            return Err(HttpError::Denied(format!(
                "{} is outside the tenant's base URL",
                target.origin().ascii_serialization()
            )));
        }
        let mut allowed: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(name, _)| !FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(auth) = &self.auth {
            allowed.push(("Authorization", auth.as_str()));
        }
        let policy = self.limiter.policy();
        let call_deadline = deadline;
        let deadline = tries.until.min(call_deadline);
        loop {
            // Held until this attempt is answered: while the limiter measures the server's
            // budget, the next request leaves only then.
            let (waited, admission) = match self.limiter.acquire(call_deadline) {
                Ok((w, admission)) => (w, Some(admission)),
                Err(w) => (w, None),
            };
            self.counters.waited_ms.fetch_add(
                u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let Some(left) = call_deadline
                .checked_duration_since(Instant::now())
                .filter(|_| admission.is_some())
                .filter(|d| !d.is_zero())
            else {
                return Err(HttpError::Timeout);
            };
            let mut req = ureq::http::Request::builder()
                .method(method)
                .uri(target.as_str());
            for (k, v) in &allowed {
                req = req.header(*k, *v);
            }
            let req = req
                .body(())
                .map_err(|e| HttpError::Denied(format!("invalid request header: {e}")))?;
            let req = self
                .agent
                .configure_request(req)
                .timeout_global(Some(left.min(self.request_timeout)))
                .build();
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            tries.made += 1;
            let attempt = tries.made;
            let sent = Instant::now();
            let last = attempt >= policy.max_attempts || sent >= deadline;
            match self.exchange(&target, req) {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    if status == 429 {
                        self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                        self.limiter.throttled();
                    } else {
                        self.limiter.accepted(sent);
                    }
                    if !is_retryable_status(status) || last {
                        return Ok(resp);
                    }
                    let retry_after = matches!(status, 429 | 503)
                        .then(|| {
                            resp.headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                        })
                        .flatten()
                        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                    match retry_after {
                        Some(d) if d > policy.max_wait => {
                            tracing::warn!(
                                "the server asked to wait {d:?} (Retry-After), longer than the {:?} allowed; not waiting",
                                policy.max_wait
                            );
                            return Ok(resp);
                        }
                        Some(d) if Instant::now().checked_add(d).is_none_or(|t| t > deadline) => {
                            return Ok(resp);
                        }
                        Some(d) => self.limiter.block_for(d),
                        None => {
                            if !self.pause(self.limiter.backoff(attempt), deadline) {
                                return Ok(resp);
                            }
                        }
                    }
                    // Drain the (small) error body so the connection can be reused.
                    let _ = resp.body_mut().with_config().limit(64 * 1024).read_to_vec();
                }
                Err(e) => {
                    let f = failure(e, self.max_body);
                    // No answer to measure by: the next request need not wait for the backoff.
                    drop(admission);
                    if last
                        || !matches!(f, HttpError::Connection(_) | HttpError::Timeout)
                        || !self.pause(self.limiter.backoff(attempt), deadline)
                    {
                        return Err(f);
                    }
                }
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempt, "retrying {method} {}", target.path());
        }
    }

    /// A request's attempt count, starting now: none made yet, and the policy's total budget
    /// (cut to the call's `deadline`).
    fn attempts(&self, deadline: Instant) -> Attempts {
        let until = Instant::now()
            .checked_add(self.limiter.policy().total_budget)
            .map_or(deadline, |d| d.min(deadline));
        Attempts { made: 0, until }
    }

    /// Sleeps `d` unless that would end past `deadline`; returns whether it slept.
    fn pause(&self, d: Duration, deadline: Instant) -> bool {
        if Instant::now().checked_add(d).is_none_or(|t| t > deadline) {
            return false;
        }
        std::thread::sleep(d);
        true
    }

    fn head_of(resp: &ureq::http::Response<ureq::Body>) -> Head {
        Head {
            status: resp.status().as_u16(),
            headers: resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// Sends a request and reads the whole body (capped). A body cut short by the connection is
    /// fetched again, within the same attempts and budget as the retries of its status (every
    /// call is a GET): at most the policy's `max_attempts` requests in all.
    /// Nothing outlives `deadline`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        deadline: Instant,
    ) -> Result<(Head, Vec<u8>), HttpError> {
        let mut tries = self.attempts(deadline);
        loop {
            let mut resp = self.start(method, url, headers, deadline, &mut tries)?;
            let head = Self::head_of(&resp);
            match resp
                .body_mut()
                .with_config()
                .limit(self.max_body)
                .read_to_vec()
            {
                Ok(body) => return Ok((head, body)),
                Err(e) => {
                    let f = failure(e, self.max_body);
                    let retryable = matches!(f, HttpError::Connection(_) | HttpError::Timeout);
                    if !retryable
                        || tries.made >= self.limiter.policy().max_attempts
                        || !self.pause(self.limiter.backoff(tries.made), tries.until)
                    {
                        return Err(f);
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sends a request and returns the body as a stream (capped). Reading the stream is bounded
    /// by `deadline` too (the request's timeout covers its body).
    pub fn send_streaming(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        deadline: Instant,
    ) -> Result<(Head, StreamBody), HttpError> {
        let mut tries = self.attempts(deadline);
        let resp = self.start(method, url, headers, deadline, &mut tries)?;
        let head = Self::head_of(&resp);
        let reader = resp
            .into_body()
            .into_with_config()
            .limit(self.max_stream)
            .reader();
        Ok((
            head,
            StreamBody {
                reader: Box::new(reader),
                cap: self.max_stream,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn under(base: &str, target: &str) -> bool {
        is_under_base(&Url::parse(base).unwrap(), &Url::parse(target).unwrap())
    }

    #[test]
    fn only_urls_below_the_base_are_allowed() {
        let b = "https://git.acme.com/bitbucket";
        assert!(under(
            b,
            "https://git.acme.com/bitbucket/rest/api/1.0/projects"
        ));
        assert!(under(
            "https://git.acme.com/bitbucket/",
            "https://git.acme.com/bitbucket/rest/api/1.0/projects"
        ));
        assert!(under("https://h", "https://h/rest/api/1.0/projects"));
        assert!(under(b, "https://git.acme.com:443/bitbucket/rest"));
        assert!(!under(b, "https://git.acme.com/bitbucket-evil/rest"));
        assert!(!under(b, "https://git.acme.com/other"));
        assert!(!under(b, "https://git.acme.com/bitbucket/../admin"));
        assert!(!under(b, "http://git.acme.com/bitbucket/rest"));
        assert!(!under(b, "https://evil.com/bitbucket/rest"));
        assert!(!under(b, "https://git.acme.com:8443/bitbucket/rest"));
        assert!(!under(b, "https://user:pw@git.acme.com/bitbucket/rest"));
        assert!(!under(b, "https://git.acme.com.evil.com/bitbucket/rest"));
    }

    #[test]
    fn a_password_in_the_base_url_is_refused_without_being_echoed() {
        for url in [
            "https://admin:hunter2-secret@bitbucket.example.com/bb",
            "https://hunter2-secret@bitbucket.example.com",
            "https://admin:hunter2-secret@[::1",
        ] {
            let config = TenantConfig::new("t", url, Credentials::None);
            let err = TenantHttp::new(&config).expect_err(url).to_string();
            assert!(!err.contains("hunter2-secret"), "{err}");
            assert!(err.contains("***@"), "{err}");
        }
        assert_eq!(
            redact_url("https://u:p@h.example/a@b"),
            "https://***@h.example/a@b"
        );
    }

    #[test]
    fn credentials_are_never_printed() {
        let c = Credentials::Bearer("s3cr3t-token".into());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn basic_header_is_base64_of_user_colon_password() {
        let c = Credentials::Basic {
            username: "Aladdin".into(),
            password: "open sesame".into(),
        };
        assert_eq!(
            authorization(&c).unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
