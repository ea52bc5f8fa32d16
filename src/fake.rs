//! An in-memory [`Host`] for native tests: canned responses by URL path and query (or computed
//! from the query), recorded requests, a storage map with a count of calls, captured logs, and
//! a webhook secret that it checks signatures with, as a real host does.

use crate::host::{BodyStream, Host, HttpError, HttpRequest, LogLevel, ResponseHead};
use crate::model::{SignatureCheck, WebhookRequest};
use hmac::Mac;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// A canned answer.
#[derive(Debug, Clone)]
pub enum Canned {
    /// A response.
    Response {
        /// Status.
        status: u16,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
    },
    /// A transport failure.
    Error(HttpError),
    /// A response whose streamed body fails with `error` after `body` (a cut connection, the
    /// host's size cap hit midway); `send` fails with `error` at once.
    CutBody {
        /// Status.
        status: u16,
        /// The bytes that arrive before the failure.
        body: Vec<u8>,
        /// The failure.
        error: HttpError,
    },
}

/// The answer to a query's pairs, for routes whose answer depends on them (e.g. on `start`).
type Responder = Box<dyn Fn(&[(String, String)]) -> Canned>;

enum Answer {
    Fixed(Canned),
    Computed(Responder),
}

struct Route {
    path: String,
    query: Vec<(String, String)>,
    answer: Answer,
}

/// The fake host.
#[derive(Default)]
pub struct FakeHost {
    routes: RefCell<Vec<Route>>,
    /// Every request sent, in order.
    pub requests: RefCell<Vec<HttpRequest>>,
    /// Storage contents.
    pub storage: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Storage calls made (a `get-many` or `set-many` is one), as boundary crossings are
    /// counted in the component.
    pub storage_calls: Cell<u32>,
    /// The webhook secret signatures are checked against (`None`: no secret configured).
    pub webhook_secret: Option<String>,
    /// Log lines.
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// Chunk size for streamed bodies.
    pub chunk: usize,
    /// Answer `get-many` with one value fewer than the keys asked for, as a broken host would.
    pub short_get_many: Cell<bool>,
}

impl FakeHost {
    /// An empty fake host.
    pub fn new() -> Self {
        Self {
            chunk: 4096,
            ..Self::default()
        }
    }

    /// Answers GETs of `path` (the URL path, e.g. `/rest/api/1.0/projects`) whose query contains
    /// every pair in `query`. Later routes take precedence.
    pub fn on(&self, path: &str, query: &[(&str, &str)], answer: Canned) -> &Self {
        self.route(path, query, Answer::Fixed(answer))
    }

    /// Answers GETs of `path` with what `respond` makes of the request's query pairs (every
    /// query matches). Later routes take precedence, as with [`FakeHost::on`].
    pub fn on_query(
        &self,
        path: &str,
        respond: impl Fn(&[(String, String)]) -> Canned + 'static,
    ) -> &Self {
        self.route(path, &[], Answer::Computed(Box::new(respond)))
    }

    fn route(&self, path: &str, query: &[(&str, &str)], answer: Answer) -> &Self {
        self.routes.borrow_mut().push(Route {
            path: path.to_owned(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            answer,
        });
        self
    }

    /// Shorthand: a JSON answer with `status`.
    pub fn json(
        &self,
        path: &str,
        query: &[(&str, &str)],
        status: u16,
        body: serde_json::Value,
    ) -> &Self {
        self.on(
            path,
            query,
            Canned::Response {
                status,
                headers: vec![("content-type".into(), "application/json".into())],
                body: body.to_string().into_bytes(),
            },
        )
    }

    /// The same host, checking webhook signatures against `secret`.
    pub fn with_webhook_secret(mut self, secret: &str) -> Self {
        self.webhook_secret = Some(secret.to_owned());
        self
    }

    fn count_storage_call(&self) {
        self.storage_calls
            .set(self.storage_calls.get().saturating_add(1));
    }

    /// Paths of the requests sent so far, with their queries.
    pub fn sent(&self) -> Vec<String> {
        self.requests
            .borrow()
            .iter()
            .map(|r| match url::Url::parse(&r.url) {
                Ok(u) => match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_owned(),
                },
                Err(_) => r.url.clone(),
            })
            .collect()
    }

    fn answer(&self, req: &HttpRequest) -> Canned {
        self.requests.borrow_mut().push(req.clone());
        let Ok(url) = url::Url::parse(&req.url) else {
            return Canned::Error(HttpError::Denied(format!("bad url {}", req.url)));
        };
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let routes = self.routes.borrow();
        let found = routes
            .iter()
            .rev()
            .find(|r| r.path == url.path() && r.query.iter().all(|q| pairs.contains(q)));
        match found.map(|r| &r.answer) {
            Some(Answer::Fixed(c)) => c.clone(),
            Some(Answer::Computed(f)) => f(&pairs),
            None => Canned::Response {
                status: 404,
                headers: vec![],
                body: br#"{"errors":[{"message":"no route in fake host","exceptionName":"NoSuchThing"}]}"#.to_vec(),
            },
        }
    }
}

struct ChunkedBody {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    /// What reading past `data` gives, when not the end.
    then: Option<HttpError>,
}

impl BodyStream for ChunkedBody {
    fn read(&mut self, max_bytes: u32) -> Result<Option<Vec<u8>>, HttpError> {
        if self.pos >= self.data.len() {
            return match &self.then {
                Some(e) => Err(e.clone()),
                None => Ok(None),
            };
        }
        let n = self.chunk.min(max_bytes as usize).max(1);
        let end = (self.pos + n).min(self.data.len());
        let out = self.data[self.pos..end].to_vec();
        self.pos = end;
        Ok(Some(out))
    }
}

impl Host for FakeHost {
    fn send(&self, req: &HttpRequest) -> Result<(ResponseHead, Vec<u8>), HttpError> {
        match self.answer(req) {
            Canned::Response {
                status,
                headers,
                body,
            } => Ok((ResponseHead { status, headers }, body)),
            Canned::Error(e) | Canned::CutBody { error: e, .. } => Err(e),
        }
    }

    fn send_streaming(
        &self,
        req: &HttpRequest,
    ) -> Result<(ResponseHead, Box<dyn BodyStream>), HttpError> {
        let (head, data, then) = match self.answer(req) {
            Canned::Response {
                status,
                headers,
                body,
            } => (ResponseHead { status, headers }, body, None),
            Canned::CutBody {
                status,
                body,
                error,
            } => (
                ResponseHead {
                    status,
                    headers: Vec::new(),
                },
                body,
                Some(error),
            ),
            Canned::Error(e) => return Err(e),
        };
        Ok((
            head,
            Box::new(ChunkedBody {
                data,
                pos: 0,
                chunk: self.chunk,
                then,
            }),
        ))
    }

    fn storage_get(&self, key: &str) -> Option<Vec<u8>> {
        self.count_storage_call();
        self.storage.borrow().get(key).cloned()
    }

    fn storage_set(&self, key: &str, value: &[u8]) {
        self.count_storage_call();
        self.storage
            .borrow_mut()
            .insert(key.to_owned(), value.to_vec());
    }

    fn storage_delete(&self, key: &str) {
        self.count_storage_call();
        self.storage.borrow_mut().remove(key);
    }

    fn storage_get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        self.count_storage_call();
        let s = self.storage.borrow();
        let mut values: Vec<Option<Vec<u8>>> = keys.iter().map(|k| s.get(k).cloned()).collect();
        if self.short_get_many.get() {
            values.pop();
        }
        values
    }

    fn storage_set_many(&self, entries: &[(String, Vec<u8>)]) {
        self.count_storage_call();
        let mut s = self.storage.borrow_mut();
        for (k, v) in entries {
            s.insert(k.clone(), v.clone());
        }
    }

    /// Checks as a host does, with [`FakeHost::webhook_secret`]: the one header, `sha256=` and
    /// 64 hex digits, the HMAC-SHA256 of the body.
    fn check_signature(&self, req: &WebhookRequest) -> SignatureCheck {
        let Some(secret) = self.webhook_secret.as_deref().filter(|s| !s.is_empty()) else {
            return SignatureCheck::NoSecret;
        };
        let values: Vec<&str> = req
            .headers
            .iter()
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case("x-hub-signature"))
            .map(|(_, v)| v.trim())
            .collect();
        let value = match values.as_slice() {
            [] => return SignatureCheck::Missing,
            [one] => *one,
            _ => return SignatureCheck::Malformed("sent more than once".into()),
        };
        let mut mac = [0u8; 32];
        let well_formed = value.split_once('=').is_some_and(|(algorithm, digits)| {
            algorithm.eq_ignore_ascii_case("sha256")
                && hex::decode_to_slice(digits, &mut mac).is_ok()
        });
        if !well_formed {
            return SignatureCheck::Malformed("not sha256= and 64 hex digits".into());
        }
        let matches = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .is_ok_and(|h| h.chain_update(&req.body).verify_slice(&mac).is_ok());
        if matches {
            SignatureCheck::Matches
        } else {
            SignatureCheck::Mismatch
        }
    }

    fn storage_compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> bool {
        self.count_storage_call();
        let mut s = self.storage.borrow_mut();
        if s.get(key).map(Vec::as_slice) == expected {
            s.insert(key.to_owned(), value.to_vec());
            true
        } else {
            false
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}

/// The repository the native pass tests use: `PLAT/api`.
pub fn repo() -> crate::model::RepoRef {
    crate::model::RepoRef {
        project_key: "PLAT".into(),
        slug: "api".into(),
    }
}

/// A connection to `https://bb.example/bitbucket` (a context path) asking for pages of
/// `page_size`.
pub fn conn(page_size: u32) -> crate::model::Connection {
    crate::model::Connection {
        base_url: "https://bb.example/bitbucket".into(),
        page_size: Some(page_size),
    }
}
