//! A Bitbucket Data Center simulator for tests, benchmarks and the demo: a generated instance
//! ([`world`]) served over real HTTP with the real paging semantics (per-resource caps, ids that
//! skip, `nextPageStart`), the real error bodies, Bearer authentication, and fault injection
//! (429 with Retry-After, 5xx, latency, connections cut mid-body, malformed JSON, pull requests
//! whose diff always fails, pull requests updated while a sync runs). It can export its ground
//! truth and send signed webhooks for the changes it makes.

pub mod render;
pub mod vary;
pub mod version;
pub mod world;

use hmac::{Hmac, Mac};
use render::{Dialect, error as error_json, user as user_json};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use world::{SimPr, SimRepo, World, WorldSpec};

/// Faults to inject; each is independent.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of API requests answered 429 with `Retry-After: 1`.
    pub rate_429: f64,
    /// Share of API requests answered 502 or 503.
    pub rate_5xx: f64,
    /// Latency added to every request.
    pub latency: Duration,
    /// Share of responses whose connection is cut halfway through the body.
    pub cut_rate: f64,
    /// Share of 200 responses whose JSON is cut short (still a complete HTTP response).
    pub malformed_rate: f64,
    /// Pull requests whose diff always fails with 500 (permanently broken).
    pub broken_prs: usize,
    /// Touch a random open pull request this often while serving (`None`: never).
    pub update_every: Option<Duration>,
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on (`127.0.0.1:0` for a free port).
    pub listen: String,
    /// The world.
    pub spec: WorldSpec,
    /// Faults.
    pub faults: Faults,
    /// The Bearer token it accepts (`None`: any request).
    pub token: Option<String>,
    /// Where to send signed webhooks for changes, and the secret.
    pub webhook: Option<(String, String)>,
    /// Which server version it imitates, and whether it varies shapes.
    pub dialect: Dialect,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            spec: WorldSpec::default(),
            faults: Faults::default(),
            token: None,
            webhook: None,
            dialect: Dialect::default(),
        }
    }
}

/// Page caps per resource, as a server configures them (and answers with).
const CAP_PROJECTS: usize = 25;
const CAP_REPOS: usize = 25;
const CAP_USERS: usize = 25;
const CAP_PRS: usize = 50;
const CAP_ACTIVITIES: usize = 20;

struct State {
    world: Mutex<World>,
    faults: Mutex<Faults>,
    token: Option<String>,
    rng: Mutex<fastrand::Rng>,
    broken: HashSet<(String, String, u64)>,
    requests: AtomicU64,
    counts: Mutex<RequestCounts>,
    webhook: Mutex<Option<(String, String)>>,
    base: String,
    dialect: Dialect,
}

/// Requests answered so far, by kind of resource (for request budgets in tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Pull-request list pages (`.../pull-requests`).
    pub pull_request_lists: u64,
    /// Single pull requests (`.../pull-requests/{id}`).
    pub pull_requests: u64,
    /// Activity pages (`.../pull-requests/{id}/activities`).
    pub activities: u64,
    /// Diffs (`.../pull-requests/{id}/diff`).
    pub diffs: u64,
    /// Everything else: projects, repositories, users, server properties.
    pub other: u64,
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.pull_request_lists + self.pull_requests + self.activities + self.diffs + self.other
    }

    fn count(&mut self, url: &str) {
        let path = url.split('?').next().unwrap_or("").trim_end_matches('/');
        let mut seg = path.rsplit('/');
        let (last, before) = (seg.next().unwrap_or(""), seg.next().unwrap_or(""));
        let counter = match (before, last) {
            (_, "pull-requests") => &mut self.pull_request_lists,
            ("pull-requests", _) => &mut self.pull_requests,
            (_, "activities") => &mut self.activities,
            (_, "diff") => &mut self.diffs,
            _ => &mut self.other,
        };
        *counter += 1;
    }
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<State>,
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    stop_updates: Arc<AtomicBool>,
    updater: Option<JoinHandle<()>>,
}

fn query(url: &str) -> Vec<(String, String)> {
    url.split_once('?')
        .map(|(_, q)| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// `start` and `limit` of a listing request (Bitbucket's default limit is 25).
fn paging(q: &[(String, String)]) -> (usize, usize) {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    (get("start").unwrap_or(0), get("limit").unwrap_or(25))
}

impl State {
    fn route(&self, url: &str) -> (u16, String) {
        let path = url.split('?').next().unwrap_or("");
        let q = query(url);
        let rest = path
            .strip_prefix("/rest/api/1.0/")
            .or_else(|| path.strip_prefix("/rest/api/latest/"));
        let Some(rest) = rest else {
            return (
                404,
                error_json(
                    "com.atlassian.bitbucket.NoSuchEntityException",
                    "No such resource",
                ),
            );
        };
        let seg: Vec<String> = rest
            .split('/')
            .map(|s| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
        let Ok(world) = self.world.lock() else {
            return (
                500,
                error_json(
                    "java.lang.IllegalStateException",
                    "simulator state poisoned",
                ),
            );
        };
        let find_repo =
            |k: &str, s: &str| world.repos.iter().find(|r| r.project == k && r.slug == s);
        let no_repo = |k: &str, s: &str| {
            (
                404,
                error_json(
                    "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
                    &format!("Repository {k}/{s} does not exist."),
                ),
            )
        };
        let d = &self.dialect;
        let (start, limit) = paging(&q);
        let ok = |v: Value| (200, d.finish(url, v));
        match seg.as_slice() {
            ["application-properties"] => ok(d.application_properties()),
            // Personal projects are not listed (research notes rest.md §5; Sourcegraph and
            // Renovate reach personal repositories through `/repos`).
            ["projects"] => ok(d.page(
                world
                    .projects
                    .iter()
                    .filter(|k| !k.starts_with('~'))
                    .map(|k| render::project(k))
                    .collect(),
                start,
                limit,
                CAP_PROJECTS,
            )),
            ["projects", key, "repos"] => {
                // A personal project exists for every user (it is made on first access: Atlassian
                // KB "Personal projects in Bitbucket Server").
                let personal_of_user = key
                    .strip_prefix('~')
                    .is_some_and(|u| world.users.iter().any(|x| x.eq_ignore_ascii_case(u)));
                if !world.projects.iter().any(|p| p == key) && !personal_of_user {
                    return (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.project.NoSuchProjectException",
                            &format!("Project {key} does not exist."),
                        ),
                    );
                }
                // Archived repositories included: this listing has no `archived` filter (reference).
                ok(d.page(
                    world
                        .repos
                        .iter()
                        .filter(|r| r.project == *key)
                        .map(|r| d.repo(r))
                        .collect(),
                    start,
                    limit,
                    CAP_REPOS,
                ))
            }
            ["repos"] => {
                let wanted = q
                    .iter()
                    .find(|(k, _)| k == "archived")
                    .map(|(_, v)| v.to_ascii_uppercase());
                let admits = |r: &&SimRepo| {
                    // 8.0+ filters by `archived`, ACTIVE unless asked (reference); older servers
                    // have no archiving and ignore the parameter.
                    !d.version.has_archiving()
                        || match wanted.as_deref() {
                            Some("ALL") => true,
                            Some("ARCHIVED") => r.archived,
                            _ => !r.archived,
                        }
                };
                ok(d.page(
                    world
                        .repos
                        .iter()
                        .filter(admits)
                        .map(|r| d.repo(r))
                        .collect(),
                    start,
                    limit,
                    CAP_REPOS,
                ))
            }
            ["admin", "users"] | ["users"] => ok(d.page(
                world.users.iter().map(|u| user_json(u)).collect(),
                start,
                limit,
                CAP_USERS,
            )),
            ["projects", k, "repos", s, "pull-requests"] => {
                let Some(r) = find_repo(k, s) else {
                    return no_repo(k, s);
                };
                let mut prs: Vec<&SimPr> = r.prs.iter().collect();
                prs.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
                ok(d.page(
                    prs.into_iter()
                        .map(|p| d.pull_request(r, p, false))
                        .collect(),
                    start,
                    limit,
                    CAP_PRS,
                ))
            }
            ["projects", k, "repos", s, "pull-requests", id, rest @ ..] => {
                let Some(r) = find_repo(k, s) else {
                    return no_repo(k, s);
                };
                let Some(p) = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| r.prs.iter().find(|p| p.id == id))
                else {
                    return (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.pull.NoSuchPullRequestException",
                            &format!("Pull request {id} does not exist in {k}/{s}."),
                        ),
                    );
                };
                match rest {
                    [] => ok(d.pull_request(r, p, true)),
                    ["activities"] => ok(d.page(
                        p.activities
                            .iter()
                            .rev()
                            .map(|a| d.activity(p, a))
                            .collect(),
                        start,
                        limit,
                        CAP_ACTIVITIES,
                    )),
                    ["diff"] if self.broken.contains(&(k.to_string(), s.to_string(), p.id)) => (
                        500,
                        error_json(
                            "com.atlassian.bitbucket.scm.CommandFailedException",
                            "git diff failed: fatal: bad object",
                        ),
                    ),
                    ["diff"] => ok(d.diff(p)),
                    _ => (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.NoSuchEntityException",
                            "No such resource",
                        ),
                    ),
                }
            }
            _ => (
                404,
                error_json(
                    "com.atlassian.bitbucket.NoSuchEntityException",
                    "No such resource",
                ),
            ),
        }
    }

    fn handle(&self, request: tiny_http::Request) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.counts.lock() {
            c.count(request.url());
        }
        let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        if !faults.latency.is_zero() {
            std::thread::sleep(faults.latency);
        }
        let url = request.url().to_owned();
        let header = |name: &str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_owned())
        };
        let json_header =
            || tiny_http::Header::from_bytes("Content-Type", "application/json;charset=UTF-8").ok();
        let respond = |request: tiny_http::Request,
                       status: u16,
                       body: String,
                       extra: Option<tiny_http::Header>| {
            let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
            if let Some(h) = json_header() {
                resp = resp.with_header(h);
            }
            if let Some(h) = extra {
                resp = resp.with_header(h);
            }
            let _ = request.respond(resp);
        };
        if let Some(token) = &self.token
            && header("Authorization").as_deref() != Some(&format!("Bearer {token}"))
        {
            return respond(
                request,
                401,
                error_json(
                    "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
                    "Authentication failed. Please check your credentials and try again.",
                ),
                None,
            );
        }
        let roll = |p: f64| p > 0.0 && self.rng.lock().map(|mut r| r.f64() < p).unwrap_or(false);
        if roll(faults.rate_429) {
            return respond(
                request,
                429,
                error_json(
                    "com.atlassian.bitbucket.ratelimit.RateLimitedException",
                    "You have been rate limited.",
                ),
                tiny_http::Header::from_bytes("Retry-After", "1").ok(),
            );
        }
        if roll(faults.rate_5xx) {
            let status = if roll(0.5) { 502 } else { 503 };
            return respond(
                request,
                status,
                "<html>Service unavailable</html>".into(),
                None,
            );
        }
        let (status, body) = self.route(&url);
        let user = self.token.as_ref().map(|_| "sim-user");
        let user_header = user.and_then(|u| tiny_http::Header::from_bytes("X-AUSERNAME", u).ok());
        if status == 200 && roll(faults.cut_rate) {
            // Promise the whole body, send half, and close the connection.
            use std::io::Write;
            let mut w = request.into_writer();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = w.write_all(head.as_bytes());
            let _ = w.write_all(&body.as_bytes()[..body.len() / 2]);
            let _ = w.flush();
            return;
        }
        let body = if status == 200 && roll(faults.malformed_rate) {
            body[..body.len() / 2].to_owned()
        } else {
            body
        };
        respond(request, status, body, user_header);
    }

    /// Touches a random open pull request; sends its webhook if configured.
    fn touch_random(&self) -> Option<(String, String, u64, &'static str)> {
        let mut rng = self.rng.lock().ok()?;
        let mut world = self.world.lock().ok()?;
        let open: Vec<(usize, usize)> = world
            .repos
            .iter()
            .enumerate()
            .flat_map(|(ri, r)| {
                r.prs
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.state == "OPEN")
                    .map(move |(pi, _)| (ri, pi))
            })
            // Archived repositories are read-only.
            .filter(|(ri, _)| !world.repos[*ri].archived)
            .filter(|(ri, pi)| {
                let r = &world.repos[*ri];
                !self
                    .broken
                    .contains(&(r.project.clone(), r.slug.clone(), r.prs[*pi].id))
            })
            .collect();
        if open.is_empty() {
            return None;
        }
        let (ri, pi) = open[rng.usize(0..open.len())];
        let newest = world
            .repos
            .iter()
            .flat_map(|r| r.prs.iter().map(|p| p.updated))
            .max()
            .unwrap_or(world::EPOCH);
        world.clock = world.clock.max(newest) + 60_000;
        let now = world.clock;
        let (key, reviewer) = world.touch(ri, pi, now, &mut rng);
        let r = &world.repos[ri];
        let p = &r.prs[pi];
        let target = self.webhook.lock().ok().and_then(|w| w.clone());
        if let Some((url, secret)) = &target {
            let d = &self.dialect;
            let actor = reviewer.as_deref().unwrap_or(&p.author);
            let extra = match &reviewer {
                Some(who) => {
                    json!({"participant": {"user": user_json(who), "role": "REVIEWER", "approved": true, "status": "APPROVED"},
                                    "previousStatus": "UNAPPROVED"})
                }
                None => json!({}),
            };
            let payload = d.webhook(key, r, p, actor, extra);
            let body = d.finish(&format!("webhook {key} {}", world.clock), payload);
            send_webhook(url, secret, key, body.as_bytes());
        }
        Some((r.project.clone(), r.slug.clone(), p.id, key))
    }
}

/// The `X-Hub-Signature` Bitbucket sends for `body` under `secret`: `sha256=` and the hex
/// HMAC-SHA256.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map(|m| m.chain_update(body).finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("sha256={}", hex::encode(mac))
}

/// POSTs a signed webhook delivery of `body`.
pub fn send_webhook(url: &str, secret: &str, key: &str, body: &[u8]) -> Option<u16> {
    let sig = signature(secret, body);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .post(url)
        .header("X-Event-Key", key)
        .header("X-Request-Id", format!("sim-{:032x}", fastrand::u128(..)))
        .header("X-Hub-Signature", sig)
        .header("Content-Type", "application/json; charset=utf-8")
        .send(body)
        .ok()?;
    Some(resp.status().as_u16())
}

/// A listener whose connections send without Nagle's delay (Linux hands `TCP_NODELAY` on to
/// accepted sockets). tiny_http writes a response in 1 KiB pieces; with Nagle on, every piece
/// after the first waited for the client's delayed ACK, about 40 ms per response.
fn no_delay_listener(listen: &str) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{listen}: no address")))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl Simulator {
    /// Generates the world and starts serving it.
    pub fn start(config: SimConfig) -> std::io::Result<Self> {
        let server = Arc::new(
            tiny_http::Server::from_listener(no_delay_listener(&config.listen)?, None)
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("not an IP address"))?;
        let world = World::generate(&config.spec);
        // The first open pull requests of the last repository are permanently broken.
        let broken: HashSet<(String, String, u64)> = world
            .repos
            .iter()
            .rev()
            .find(|r| !r.prs.is_empty())
            .map(|r| {
                r.prs
                    .iter()
                    .filter(|p| p.state == "OPEN")
                    .take(config.faults.broken_prs)
                    .map(|p| (r.project.clone(), r.slug.clone(), p.id))
                    .collect()
            })
            .unwrap_or_default();
        let state = Arc::new(State {
            world: Mutex::new(world),
            faults: Mutex::new(config.faults.clone()),
            token: config.token.clone(),
            rng: Mutex::new(fastrand::Rng::with_seed(config.spec.seed ^ 0x5eed)),
            broken,
            requests: AtomicU64::new(0),
            counts: Mutex::new(RequestCounts::default()),
            webhook: Mutex::new(config.webhook.clone()),
            base: format!("http://{addr}"),
            dialect: config.dialect,
        });
        let workers = (0..8)
            .map(|_| {
                let (server, state) = (Arc::clone(&server), Arc::clone(&state));
                std::thread::spawn(move || {
                    while let Ok(rq) = server.recv() {
                        state.handle(rq);
                    }
                })
            })
            .collect();
        let stop_updates = Arc::new(AtomicBool::new(false));
        let updater = config.faults.update_every.map(|every| {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop_updates));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(every);
                    state.touch_random();
                }
            })
        });
        Ok(Self {
            addr,
            state,
            server,
            workers,
            stop_updates,
            updater,
        })
    }

    /// The base URL to point the connector at.
    pub fn base_url(&self) -> String {
        self.state.base.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Requests answered so far, by kind.
    pub fn request_counts(&self) -> RequestCounts {
        self.state.counts.lock().map(|c| *c).unwrap_or_default()
    }

    /// Sends signed webhooks for changes to `url` from now on.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        if let Ok(mut w) = self.state.webhook.lock() {
            *w = Some((url.to_owned(), secret.to_owned()));
        }
    }

    /// Replaces the faults (e.g. to end a storm).
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.state.faults.lock() {
            *f = faults;
        }
    }

    /// Stops touching pull requests in the background.
    pub fn stop_updates(&mut self) {
        self.stop_updates.store(true, Ordering::Relaxed);
        if let Some(h) = self.updater.take() {
            let _ = h.join();
        }
    }

    /// Changes `n` random open pull requests now (sending webhooks if configured); returns
    /// (project, repo, id, event key) of each.
    pub fn touch(&self, n: usize) -> Vec<(String, String, u64, &'static str)> {
        (0..n).filter_map(|_| self.state.touch_random()).collect()
    }

    /// Ground truth: one `pull_request` line per pull request, sorted by (project, repo, id).
    pub fn truth(&self) -> Vec<Value> {
        let Ok(world) = self.state.world.lock() else {
            return Vec::new();
        };
        // A server without drafts (before 8.18) has no draft pull requests to report.
        let drafts = self.state.dialect.version.has_draft();
        let mut out: Vec<Value> = world
            .repos
            .iter()
            .flat_map(|r| r.prs.iter().map(move |p| World::truth(r, p)))
            .map(|mut t| {
                if !drafts {
                    t["draft"] = Value::Bool(false);
                }
                t
            })
            .collect();
        out.sort_by_key(|v| {
            (
                v["project_key"].as_str().unwrap_or("").to_owned(),
                v["repo_slug"].as_str().unwrap_or("").to_owned(),
                v["id"].as_u64().unwrap_or(0),
            )
        });
        out
    }

    /// Pull requests the simulator made permanently broken: (project, repo, id).
    pub fn broken(&self) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = self.state.broken.iter().cloned().collect();
        v.sort();
        v
    }

    /// Counts of the world: (projects listed by /projects, repositories, users).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.state
            .world
            .lock()
            .map(|w| {
                (
                    w.projects.iter().filter(|k| !k.starts_with('~')).count(),
                    w.repos.len(),
                    w.users.len(),
                )
            })
            .unwrap_or_default()
    }

    /// How it speaks: server version and shape mode.
    pub fn dialect(&self) -> Dialect {
        self.state.dialect
    }

    /// A copy of the simulated instance as it is now.
    pub fn world(&self) -> World {
        self.state
            .world
            .lock()
            .map(|w| w.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Stops serving.
    pub fn stop(mut self) {
        self.stop_updates();
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// One repository's responses as the simulator would serve them, for benchmarks that answer
/// the connector from memory: the whole pull-request listing as a single page, and each pull
/// request's activities and diff.
#[derive(Debug, Clone)]
pub struct RepoFixture {
    /// Project key.
    pub project: String,
    /// Repository slug.
    pub slug: String,
    /// Every pull request on one page, newest first (`isLastPage: true`).
    pub list_page: String,
    /// The first pull request's JSON, as webhooks carry it.
    pub first_pull_request: Value,
    /// Activities page of each pull request, by id.
    pub activities: std::collections::HashMap<u64, String>,
    /// Diff of each pull request, by id.
    pub diffs: std::collections::HashMap<u64, String>,
}

/// Generates a repository with `prs` pull requests (seeded, so every run is the same).
pub fn repo_fixture(prs: usize) -> RepoFixture {
    let world = World::generate(&WorldSpec {
        seed: 11,
        projects: 1,
        repos_per_project: 1,
        prs_per_repo: prs,
        users: 12,
    });
    let repo = world
        .repos
        .iter()
        .find(|r| !r.project.starts_with('~'))
        .or(world.repos.first());
    let d = Dialect::default();
    let Some(r) = repo else {
        return RepoFixture {
            project: String::new(),
            slug: String::new(),
            list_page: d.page(Vec::new(), 0, 1, 1).to_string(),
            first_pull_request: Value::Null,
            activities: Default::default(),
            diffs: Default::default(),
        };
    };
    let mut sorted: Vec<&SimPr> = r.prs.iter().collect();
    sorted.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
    let n = sorted.len().max(1);
    RepoFixture {
        project: r.project.clone(),
        slug: r.slug.clone(),
        list_page: d
            .page(
                sorted.iter().map(|p| d.pull_request(r, p, false)).collect(),
                0,
                n,
                n,
            )
            .to_string(),
        first_pull_request: sorted
            .first()
            .map(|p| d.pull_request(r, p, false))
            .unwrap_or_default(),
        activities: r
            .prs
            .iter()
            .map(|p| {
                let items: Vec<Value> = p
                    .activities
                    .iter()
                    .rev()
                    .map(|a| d.activity(p, a))
                    .collect();
                let n = items.len().max(1);
                (p.id, d.page(items, 0, n, n).to_string())
            })
            .collect(),
        diffs: r
            .prs
            .iter()
            .map(|p| (p.id, d.diff(p).to_string()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_kind() {
        let mut c = RequestCounts::default();
        let base = "/rest/api/1.0/projects/P/repos/r/pull-requests";
        c.count(&format!("{base}?state=ALL&limit=50"));
        c.count(&format!("{base}/7"));
        c.count(&format!("{base}/7/activities?start=0"));
        c.count(&format!("{base}/7/diff?contextLines=0"));
        c.count("/rest/api/1.0/projects?limit=25");
        c.count("/rest/api/1.0/projects/P/repos");
        assert_eq!(
            c,
            RequestCounts {
                pull_request_lists: 1,
                pull_requests: 1,
                activities: 1,
                diffs: 1,
                other: 2,
            }
        );
        assert_eq!(c.total(), 6);
    }

    #[test]
    fn a_fixture_lists_every_pull_request_on_one_page() {
        let f = repo_fixture(30);
        let page: Value = serde_json::from_str(&f.list_page).unwrap();
        assert_eq!(page["values"].as_array().map(Vec::len), Some(30));
        assert_eq!(page["isLastPage"], json!(true));
        assert_eq!(f.activities.len(), 30);
        assert_eq!(f.diffs.len(), 30);
        assert_eq!(f.first_pull_request["id"], page["values"][0]["id"]);
    }
}
