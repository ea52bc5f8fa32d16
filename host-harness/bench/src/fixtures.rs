//! What the core benchmarks run on: one repository's responses served from memory, to the
//! component (through the host's real HTTP policy, see [`bbdc_host::http::Responder`]) and to the
//! same core compiled natively (through [`NativeHost`]), so both sides do the same work.

use bbdc_connector::fake::FakeHost;
use bbdc_connector::host::{BodyStream, Host, HttpError, HttpRequest, LogLevel, ResponseHead};
use bbdc_connector::model as native;
use bbdc_host::http::{CannedResponse, Responder, StreamBody};
use bbdc_host::storage::KvStore;
use bbdc_sim::{RepoFixture, repo_fixture};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;
use url::Url;

/// The base URL the fixtures answer under.
pub const BASE_URL: &str = "http://bench.invalid/bitbucket";

/// A diff served in place of a pull request's own, with the totals it must count to.
#[derive(Debug, Clone)]
pub struct BigDiff {
    /// The diff JSON.
    pub body: Arc<[u8]>,
    /// Lines added in it.
    pub added: u64,
    /// Lines removed in it.
    pub removed: u64,
    /// Files in it.
    pub files: u64,
}

/// Builds a diff of about `bytes` bytes: files of 2,000-line hunks of ordinary-looking code.
pub fn big_diff(bytes: usize) -> BigDiff {
    let mut out = String::with_capacity(bytes + 64 * 1024);
    out.push_str(r#"{"fromHash":"a","toHash":"b","contextLines":3,"whitespace":"SHOW","diffs":["#);
    let (mut added, mut removed, mut files) = (0u64, 0u64, 0u64);
    while out.len() < bytes {
        if files > 0 {
            out.push(',');
        }
        files += 1;
        let path = format!("src/module_{files}/handler.rs");
        out.push_str(&format!(
            r#"{{"source":{{"toString":"{path}"}},"destination":{{"toString":"{path}"}},"truncated":false,"hunks":[{{"sourceLine":1,"sourceSpan":1000,"destinationLine":1,"destinationSpan":1000,"truncated":false,"segments":["#
        ));
        for (s, kind) in ["CONTEXT", "REMOVED", "ADDED"].iter().enumerate() {
            if s > 0 {
                out.push(',');
            }
            out.push_str(&format!(r#"{{"type":"{kind}","truncated":false,"lines":["#));
            let n = if *kind == "CONTEXT" { 40 } else { 1000 };
            for i in 0..n {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!(
                    r#"{{"source":{i},"destination":{i},"line":"    let value_{i} = compute(input.field_{i}, \"{kind}\", {i});","truncated":false}}"#
                ));
            }
            out.push_str("]}");
            match *kind {
                "ADDED" => added += n,
                "REMOVED" => removed += n,
                _ => {}
            }
        }
        out.push_str("]}]}");
    }
    out.push_str(r#"],"truncated":false}"#);
    BigDiff {
        body: Arc::from(out.into_bytes()),
        added,
        removed,
        files,
    }
}

/// Serves a [`RepoFixture`]: the list page, each pull request, its activities and its diff.
pub struct FixtureResponder {
    fixture: RepoFixture,
    pull_requests: HashMap<u64, String>,
    big_diff: Option<BigDiff>,
}

impl FixtureResponder {
    /// Serves a generated repository with `prs` pull requests.
    pub fn new(prs: usize) -> Self {
        let fixture = repo_fixture(prs);
        let pull_requests = serde_json::from_str::<serde_json::Value>(&fixture.list_page)
            .ok()
            .and_then(|v| v.get("values").and_then(|v| v.as_array()).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.get("id")?.as_u64()?, p.to_string())))
            .collect();
        Self {
            fixture,
            pull_requests,
            big_diff: None,
        }
    }

    /// Serves `diff` as every pull request's diff.
    pub fn with_diff(mut self, diff: BigDiff) -> Self {
        self.big_diff = Some(diff);
        self
    }

    /// The repository served.
    pub fn fixture(&self) -> &RepoFixture {
        &self.fixture
    }

    fn answer(&self, path: &str) -> (u16, Box<dyn Read + Send + Sync>) {
        let found = |s: Option<&String>| match s {
            Some(s) => (
                200,
                Box::new(std::io::Cursor::new(s.clone().into_bytes()))
                    as Box<dyn Read + Send + Sync>,
            ),
            None => (
                404,
                Box::new(std::io::empty()) as Box<dyn Read + Send + Sync>,
            ),
        };
        let mut seg = path.trim_end_matches('/').rsplit('/');
        let (last, before) = (seg.next().unwrap_or(""), seg.next().unwrap_or(""));
        match (before, last) {
            (_, "pull-requests") => found(Some(&self.fixture.list_page)),
            (id, "activities") => found(
                id.parse()
                    .ok()
                    .and_then(|id| self.fixture.activities.get(&id)),
            ),
            (id, "diff") => match (&self.big_diff, id.parse::<u64>()) {
                (Some(d), _) => (200, Box::new(std::io::Cursor::new(Arc::clone(&d.body)))),
                (None, Ok(id)) => found(self.fixture.diffs.get(&id)),
                (None, Err(_)) => found(None),
            },
            ("pull-requests", id) => {
                found(id.parse().ok().and_then(|id| self.pull_requests.get(&id)))
            }
            _ => found(None),
        }
    }
}

impl Responder for FixtureResponder {
    fn respond(&self, _method: &str, url: &Url) -> CannedResponse {
        let (status, body) = self.answer(url.path());
        CannedResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }
}

/// A streamed body for the native side: the host's own [`StreamBody`], so both sides read the
/// same way.
struct NativeBody(StreamBody);

impl BodyStream for NativeBody {
    fn read(&mut self, max_bytes: u32) -> Result<Option<Vec<u8>>, HttpError> {
        self.0
            .read_chunk(max_bytes)
            .map_err(|e| HttpError::Connection(e.to_string()))
    }
}

/// The connector's [`Host`] for its core compiled natively: HTTP answered by a [`Responder`]
/// (the same one the component is answered by), storage in memory (the connector's own
/// [`FakeHost`] map), logs dropped.
pub struct NativeHost {
    responder: Arc<dyn Responder>,
    store: FakeHost,
    /// The host store and tenant namespace the connector's state goes to instead of `store`,
    /// as the component's host keeps it.
    kv: Option<(Arc<dyn KvStore>, String)>,
    /// The host's signature check of the delivery being handled.
    signature: std::cell::RefCell<Option<native::SignatureCheck>>,
}

impl NativeHost {
    /// A host answering from `responder`, with empty storage.
    pub fn new(responder: Arc<dyn Responder>) -> Self {
        Self {
            responder,
            store: FakeHost::new(),
            kv: None,
            signature: std::cell::RefCell::new(None),
        }
    }

    /// The same host, keeping the connector's state in `kv` under `tenant` (as
    /// `bbdc_host::imports` does for the component) instead of in memory. A store error reads
    /// as an absent key or a refused write, where the component would trap.
    pub fn with_store(mut self, kv: Arc<dyn KvStore>, tenant: &str) -> Self {
        self.kv = Some((kv, tenant.to_owned()));
        self
    }

    /// Hands the core the host's check of the next delivery's signature, made as the
    /// component's host makes it ([`bbdc_host::signature::check`], natively, before the call).
    pub fn set_signature(&self, check: bbdc_host::signature::SignatureCheck) {
        use bbdc_host::signature::SignatureCheck as Host;
        let check = match check {
            Host::NoSecret => native::SignatureCheck::NoSecret,
            Host::Missing => native::SignatureCheck::Missing,
            Host::Malformed(why) => native::SignatureCheck::Malformed(why),
            Host::Mismatch => native::SignatureCheck::Mismatch,
            Host::Matches => native::SignatureCheck::Matches,
        };
        self.signature.replace(Some(check));
    }

    /// Storage contents.
    pub fn stored(&self) -> std::cell::Ref<'_, BTreeMap<String, Vec<u8>>> {
        self.store.storage.borrow()
    }

    fn exchange(&self, req: &HttpRequest) -> Result<(ResponseHead, CannedResponse), HttpError> {
        let url = Url::parse(&req.url).map_err(|e| HttpError::Denied(e.to_string()))?;
        let method = match req.method {
            bbdc_connector::host::Method::Get => "GET",
            bbdc_connector::host::Method::Head => "HEAD",
        };
        let canned = self.responder.respond(method, &url);
        let head = ResponseHead {
            status: canned.status,
            headers: canned.headers.clone(),
        };
        Ok((head, canned))
    }
}

impl Host for NativeHost {
    fn send(&self, req: &HttpRequest) -> Result<(ResponseHead, Vec<u8>), HttpError> {
        let (head, mut canned) = self.exchange(req)?;
        let mut body = Vec::new();
        canned
            .body
            .read_to_end(&mut body)
            .map_err(|e| HttpError::Connection(e.to_string()))?;
        Ok((head, body))
    }

    fn send_streaming(
        &self,
        req: &HttpRequest,
    ) -> Result<(ResponseHead, Box<dyn BodyStream>), HttpError> {
        let (head, canned) = self.exchange(req)?;
        let body = StreamBody::from_reader(canned.body, u64::MAX);
        Ok((head, Box::new(NativeBody(body))))
    }

    fn storage_get(&self, key: &str) -> Option<Vec<u8>> {
        match &self.kv {
            Some((kv, t)) => kv.get(t, key).ok().flatten(),
            None => self.store.storage_get(key),
        }
    }

    fn storage_set(&self, key: &str, value: &[u8]) {
        match &self.kv {
            Some((kv, t)) => drop(kv.set(t, key, value)),
            None => self.store.storage_set(key, value),
        }
    }

    fn storage_delete(&self, key: &str) {
        match &self.kv {
            Some((kv, t)) => drop(kv.delete(t, key)),
            None => self.store.storage_delete(key),
        }
    }

    fn storage_compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> bool {
        match &self.kv {
            Some((kv, t)) => kv
                .compare_and_swap(t, key, expected, value)
                .unwrap_or(false),
            None => self.store.storage_compare_and_swap(key, expected, value),
        }
    }

    fn storage_get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        match &self.kv {
            Some((kv, t)) => kv
                .get_many(t, keys)
                .unwrap_or_else(|_| vec![None; keys.len()]),
            None => self.store.storage_get_many(keys),
        }
    }

    fn storage_set_many(&self, entries: &[(String, Vec<u8>)]) {
        match &self.kv {
            Some((kv, t)) => drop(kv.set_many(t, entries)),
            None => self.store.storage_set_many(entries),
        }
    }

    /// The check handed over with [`NativeHost::set_signature`], once; without one, the
    /// delivery reads as unsigned.
    fn check_signature(&self, _req: &native::WebhookRequest) -> native::SignatureCheck {
        self.signature
            .take()
            .unwrap_or(native::SignatureCheck::Missing)
    }

    fn log(&self, _level: LogLevel, _message: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_diff_is_valid_json_with_the_totals_it_claims() {
        let d = big_diff(300_000);
        assert!(d.body.len() >= 300_000);
        let stats = bbdc_connector::diffstat::count_reader(&d.body[..]).unwrap();
        assert_eq!(stats.additions, d.added);
        assert_eq!(stats.deletions, d.removed);
        assert_eq!(u64::from(stats.files_changed), d.files);
    }

    #[test]
    fn the_responder_routes_each_resource() {
        let r = FixtureResponder::new(5);
        let f = r.fixture().clone();
        let base = format!(
            "/rest/api/1.0/projects/{}/repos/{}/pull-requests",
            f.project, f.slug
        );
        let id = f.first_pull_request["id"].as_u64().unwrap();
        let read = |path: &str| {
            let (status, mut body) = r.answer(path);
            let mut s = String::new();
            body.read_to_string(&mut s).unwrap();
            (status, s)
        };
        assert_eq!(read(&base).1, f.list_page);
        assert_eq!(
            read(&format!("{base}/{id}/activities")).1,
            f.activities[&id]
        );
        assert_eq!(read(&format!("{base}/{id}/diff")).1, f.diffs[&id]);
        let pr: serde_json::Value = serde_json::from_str(&read(&format!("{base}/{id}")).1).unwrap();
        assert_eq!(pr["id"].as_u64(), Some(id));
        assert_eq!(read(&format!("{base}/999999")).0, 404);
        assert_eq!(read("/rest/api/1.0/projects").0, 404);
    }
}
