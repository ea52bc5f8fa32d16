//! The naive strategy the sync benchmark compares against: what a first-cut importer does. It
//! lists everything with the REST API's default page size (25), and on every run fetches every
//! pull request's activities and whole diff again, with no state between runs. It runs natively
//! (no sandbox) with the same HTTP stack and the same concurrency over repositories as the
//! connector, so the difference measured is the strategy.

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The REST API's default page size, which the naive strategy never changes.
pub const NAIVE_PAGE_SIZE: u32 = 25;

/// What one naive run did.
#[derive(Debug, Clone, Default)]
pub struct NaiveReport {
    /// Requests sent.
    pub requests: u64,
    /// Of which for users, projects and repositories.
    pub listing_requests: u64,
    /// Repositories visited.
    pub repos: u64,
    /// Pull requests fetched in full.
    pub pull_requests: u64,
    /// Lines added and removed over all diffs (to show the work was done).
    pub changed_lines: u64,
    /// Wall time.
    pub elapsed: Duration,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    requests: AtomicU64,
}

impl Client {
    fn get(&self, path_and_query: &str) -> Result<Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/rest/api/1.0/{path_and_query}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().with_context(|| format!("GET {url}"))?;
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()?;
        serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))
    }

    fn all(&self, path: &str) -> Result<Vec<Value>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut start = 0u64;
        let mut out = Vec::new();
        loop {
            let page = self.get(&format!("{path}{sep}limit={NAIVE_PAGE_SIZE}&start={start}"))?;
            if let Some(values) = page.get("values").and_then(Value::as_array) {
                out.extend(values.iter().cloned());
            }
            let last = page
                .get("isLastPage")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            match page.get("nextPageStart").and_then(Value::as_u64) {
                Some(next) if !last => start = next,
                _ => return Ok(out),
            }
        }
    }
}

fn changed_lines(diff: &Value) -> u64 {
    let mut n = 0u64;
    for file in diff
        .get("diffs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for hunk in file
            .get("hunks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for seg in hunk
                .get("segments")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = seg.get("type").and_then(Value::as_str).unwrap_or("");
                if kind == "ADDED" || kind == "REMOVED" {
                    n += seg
                        .get("lines")
                        .and_then(Value::as_array)
                        .map_or(0, |l| l.len() as u64);
                }
            }
        }
    }
    n
}

fn text<'a>(v: &'a Value, pointer: &str) -> Result<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("missing {pointer}"))
}

/// Imports everything from `base_url` the naive way, `concurrency` repositories at a time.
pub fn naive_sync(base_url: &str, token: Option<&str>, concurrency: usize) -> Result<NaiveReport> {
    let started = Instant::now();
    let client = Client {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(true)
            .build()
            .into(),
        base: base_url.trim_end_matches('/').to_owned(),
        auth: token.map(|t| format!("Bearer {t}")),
        requests: AtomicU64::new(0),
    };
    let _users = client.all("users")?;
    let _projects = client.all("projects")?;
    // Every visible repository, as the connector enumerates them (personal and archived included).
    let mut repos = VecDeque::new();
    for repo in client.all("repos?archived=ALL")? {
        repos.push_back((
            text(&repo, "/project/key")?.to_owned(),
            text(&repo, "/slug")?.to_owned(),
        ));
    }
    let repo_count = repos.len() as u64;
    let listing_requests = client.requests.load(Ordering::Relaxed);
    let queue = Mutex::new(repos);
    let totals = Mutex::new((0u64, 0u64, None::<anyhow::Error>));
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| {
                while let Some((key, slug)) = queue.lock().ok().and_then(|mut q| q.pop_front()) {
                    let outcome = (|| -> Result<(u64, u64)> {
                        let base = format!("projects/{key}/repos/{slug}/pull-requests");
                        let prs = client.all(&format!("{base}?state=ALL"))?;
                        let mut lines = 0;
                        for pr in &prs {
                            let id = pr.get("id").and_then(Value::as_u64).context("PR id")?;
                            client.all(&format!("{base}/{id}/activities"))?;
                            lines += changed_lines(&client.get(&format!("{base}/{id}/diff"))?);
                        }
                        Ok((prs.len() as u64, lines))
                    })();
                    if let Ok(mut t) = totals.lock() {
                        match outcome {
                            Ok((p, l)) => {
                                t.0 += p;
                                t.1 += l;
                            }
                            Err(e) => {
                                t.2.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    let (pull_requests, changed, error) = totals
        .into_inner()
        .map_err(|_| anyhow!("naive sync: a worker panicked"))?;
    if let Some(e) = error {
        return Err(e);
    }
    Ok(NaiveReport {
        requests: client.requests.load(Ordering::Relaxed),
        listing_requests,
        repos: repo_count,
        pull_requests,
        changed_lines: changed,
        elapsed: started.elapsed(),
    })
}
