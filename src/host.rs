//! The connector's view of its host: HTTP, storage and logging.
//!
//! Everything the connector does goes through [`Host`]. The component implements it over the WIT
//! imports (see `bindings.rs`); tests implement it in memory (see [`crate::fake`]). Keeping the
//! trait small is what lets nearly all logic be unit-tested natively.

/// HTTP request method. The connector only reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
}

/// An outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    /// A GET asking for JSON.
    pub fn get_json(url: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: vec![("Accept".into(), "application/json".into())],
        }
    }
}

/// Status and headers of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// Headers (names compared case-insensitively by [`ResponseHead::header`]).
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why the host could not produce a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The host refused to send the request.
    #[error("request denied by the host: {0}")]
    Denied(String),
    /// No answer in time.
    #[error("request timed out")]
    Timeout,
    /// Connection, TLS or protocol failure.
    #[error("connection failed: {0}")]
    Connection(String),
    /// The body exceeded the host's cap.
    #[error("response larger than the host allows ({0} bytes)")]
    TooLarge(u64),
}

/// A response body read in chunks.
pub trait BodyStream {
    /// Up to `max_bytes` more bytes; `None` at the end.
    fn read(&mut self, max_bytes: u32) -> Result<Option<Vec<u8>>, HttpError>;
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Worked around something unexpected.
    Warn,
    /// A failure.
    Error,
}

/// What the connector needs from its host.
pub trait Host {
    /// Sends a request and returns the whole body.
    fn send(&self, req: &HttpRequest) -> Result<(ResponseHead, Vec<u8>), HttpError>;
    /// Sends a request and returns the body as a stream.
    fn send_streaming(
        &self,
        req: &HttpRequest,
    ) -> Result<(ResponseHead, Box<dyn BodyStream>), HttpError>;
    /// Reads a tenant-scoped storage key.
    fn storage_get(&self, key: &str) -> Option<Vec<u8>>;
    /// Writes a tenant-scoped storage key.
    fn storage_set(&self, key: &str, value: &[u8]);
    /// Removes a tenant-scoped storage key.
    fn storage_delete(&self, key: &str);
    /// Writes `value` only if the current value equals `expected`; returns whether it wrote.
    fn storage_compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> bool;
    /// Reads many tenant-scoped storage keys at once, in order (`None` where absent). The
    /// component asks its host in one crossing; the default reads them one by one.
    fn storage_get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        keys.iter().map(|k| self.storage_get(k)).collect()
    }
    /// Writes many tenant-scoped storage keys at once. The component tells its host in one
    /// crossing; the default writes them one by one.
    fn storage_set_many(&self, entries: &[(String, Vec<u8>)]) {
        for (k, v) in entries {
            self.storage_set(k, v);
        }
    }
    /// The host's check of the signature of the webhook delivery being handled, against the
    /// tenant's webhook secret, which the connector never holds. The component's host checks
    /// the body as it received it and ignores `req`; a native host (tests, the benchmarks'
    /// baseline) has no other copy and checks `req`.
    fn check_signature(&self, req: &crate::model::WebhookRequest) -> crate::model::SignatureCheck;
    /// Writes one log line.
    fn log(&self, level: LogLevel, message: &str);
}
