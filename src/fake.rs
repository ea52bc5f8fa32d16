//! An in-memory [`Host`] for native tests: canned responses by URL path and query, recorded
//! requests, a storage map and captured logs.

use crate::host::{BodyStream, Host, HttpError, HttpRequest, LogLevel, ResponseHead};
use std::cell::RefCell;
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
}

struct Route {
    path: String,
    query: Vec<(String, String)>,
    answer: Canned,
}

/// The fake host.
#[derive(Default)]
pub struct FakeHost {
    routes: RefCell<Vec<Route>>,
    /// Every request sent, in order.
    pub requests: RefCell<Vec<HttpRequest>>,
    /// Storage contents.
    pub storage: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Log lines.
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    /// Chunk size for streamed bodies.
    pub chunk: usize,
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
        match found {
            Some(r) => r.answer.clone(),
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
}

impl BodyStream for ChunkedBody {
    fn read(&mut self, max_bytes: u32) -> Result<Option<Vec<u8>>, HttpError> {
        if self.pos >= self.data.len() {
            return Ok(None);
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
            Canned::Error(e) => Err(e),
        }
    }

    fn send_streaming(
        &self,
        req: &HttpRequest,
    ) -> Result<(ResponseHead, Box<dyn BodyStream>), HttpError> {
        let (head, data) = self.send(req)?;
        Ok((
            head,
            Box::new(ChunkedBody {
                data,
                pos: 0,
                chunk: self.chunk,
            }),
        ))
    }

    fn storage_get(&self, key: &str) -> Option<Vec<u8>> {
        self.storage.borrow().get(key).cloned()
    }

    fn storage_set(&self, key: &str, value: &[u8]) {
        self.storage
            .borrow_mut()
            .insert(key.to_owned(), value.to_vec());
    }

    fn storage_delete(&self, key: &str) {
        self.storage.borrow_mut().remove(key);
    }

    fn storage_compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> bool {
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
