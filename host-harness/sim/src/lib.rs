//! A Bitbucket Data Center simulator for tests, benchmarks and the demo: a generated instance
//! ([`world`]) served over real HTTP with the real paging semantics (per-resource caps, ids that
//! skip, `nextPageStart`), the real error bodies, Bearer authentication, and fault injection
//! (429 with Retry-After, 5xx, latency, connections cut mid-body, malformed JSON, pull requests
//! whose diff always fails, pull requests updated while a sync runs). It can export its ground
//! truth and send signed webhooks for the changes it makes.
//!
//! Where each part lives:
//! - [`world`]: the generated instance and its ground truth;
//! - [`history`]: each repository's commits and default branch (merges, pushes, force-pushes);
//! - [`render`], [`version`], [`vary`]: JSON in the shapes of each server version, and the
//!   variations plugins and proxies add;
//! - [`routes`]: the REST paths and their paging;
//! - [`server`]: HTTP (the stack `bbdc serve` uses), authentication, latency;
//! - [`faults`]: what is injected, and when;
//! - [`rate_limit`]: the server's own token bucket (429 with `Retry-After` when it is empty);
//! - [`webhooks`]: signed deliveries for the changes it makes;
//! - [`fixture`]: repositories rendered in memory, for benchmarks.

pub mod builds;
mod counts;
mod faults;
pub mod fixture;
pub mod history;
pub mod pr_commits;
pub mod rate_limit;
pub mod render;
mod routes;
mod server;
pub mod vary;
pub mod version;
mod webhooks;
pub mod world;

pub use counts::RequestCounts;
pub use faults::{Endless, Faults, Listing, Step};
pub use fixture::{RepoFixture, repo_fixture};
pub use rate_limit::{RateSettings, ServerRateLimit};
pub use webhooks::{send_webhook, signature};

/// A branch or tag as a sync of commits must hold it: (project, repo, full ref, commit, whether
/// it is the default branch, an annotated tag's object hash).
pub type RefTruth = (String, String, String, String, bool, Option<String>);

/// One commit of a pull request, as a sync of every entity must hold it (see
/// [`Simulator::pr_commit_truth`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrCommitTruth {
    /// Project key.
    pub project: String,
    /// Repository slug.
    pub repo: String,
    /// The pull request's id.
    pub pr: u64,
    /// The commit's id.
    pub commit: String,
    /// When it was written (epoch ms).
    pub author_time: i64,
    /// Its parents' count.
    pub parents: usize,
    /// Its message's first line.
    pub summary: String,
}

use bbdc_http_server::{HttpServer, ServerLimits};
use render::Dialect;
use serde_json::Value;
use server::State;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use world::{World, WorldSpec};

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
    /// Rate limiting as Bitbucket enforces it (`None`: the account is exempt).
    pub rate_limit: Option<ServerRateLimit>,
    /// How the rate-limit settings resources describe `rate_limit`.
    pub rate_settings: RateSettings,
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
            rate_limit: None,
            rate_settings: RateSettings::default(),
        }
    }
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<State>,
    server: Option<HttpServer>,
    stop_updates: Arc<AtomicBool>,
    updater: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the world and starts serving it.
    pub fn start(config: SimConfig) -> std::io::Result<Self> {
        let listener = bbdc_http_server::bind(&config.listen).map_err(|e| e.source)?;
        let addr = listener.local_addr()?;
        let world = World::generate(&config.spec);
        // The first open pull requests of the last repository are permanently broken.
        let last = world.repo_now(world.repo_count() - 1);
        let broken: HashSet<(String, String, u64)> = last
            .prs
            .iter()
            .filter(|p| p.state == "OPEN")
            .take(config.faults.broken_prs)
            .map(|p| (last.project.clone(), last.slug.clone(), p.id))
            .collect();
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
            bucket: config
                .rate_limit
                .map(|l| Mutex::new(rate_limit::ServerBucket::new(l))),
            throttled: AtomicU64::new(0),
            rate_limit: config.rate_limit,
            rate_settings: config.rate_settings,
            log: Mutex::new(std::collections::VecDeque::new()),
            running_builds: Mutex::new(builds::RunningBuilds::default()),
            failing_builds: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
        });
        let limits = ServerLimits {
            // Clients keep pooled connections as long as they like, as with a real server.
            idle_timeout: None,
            drain_timeout: Duration::from_secs(5),
            // Simulated latency sleeps on a blocking thread: enough of them for any concurrency
            // `bbdc sync` allows.
            blocking_threads: 128,
            ..ServerLimits::default()
        };
        let server = HttpServer::serve(
            "bbdc-sim",
            listener,
            limits,
            server::router(Arc::clone(&state)),
        )
        .map_err(|e| e.source)?;
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
            server: Some(server),
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

    /// Requests answered 429 because the server's rate limit ([`SimConfig::rate_limit`]) was
    /// spent (injected 429s are not counted here).
    pub fn throttled(&self) -> u64 {
        self.state.throttled.load(Ordering::Relaxed)
    }

    /// When each request so far was answered, and its status, oldest first (the latest
    /// 100,000 of them).
    pub fn answers(&self) -> Vec<(std::time::Instant, u16)> {
        self.state
            .log
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Spends up to `n` tokens of the account's rate-limit bucket, as another client of the
    /// same account would (nothing without a rate limit).
    pub fn spend_tokens(&self, n: u32) {
        if let Some(bucket) = &self.state.bucket
            && let Ok(mut b) = bucket.lock()
        {
            b.spend(n, std::time::Instant::now());
        }
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

    /// Pushes `n` commits onto the default branch of the repository at `repo` (its place in the
    /// world, as [`world::World::repo_index`] finds it).
    pub fn push_commits(&self, repo: usize, n: usize) {
        self.moving_tip(repo, |w, now| w.push_commits(repo, n, now));
    }

    /// Runs `change` on the world at its clock, then sends the `repo:refs_changed` webhook of the
    /// default branch's move, if configured and it moved.
    fn moving_tip(&self, repo: usize, change: impl FnOnce(&mut world::World, i64)) {
        let (before, after) = {
            let Ok(mut w) = self.state.world.lock() else {
                return;
            };
            if repo >= w.repo_count() {
                return;
            }
            let before = w.repo(repo);
            let now = w.clock;
            change(&mut w, now);
            (before, w.repo(repo))
        };
        if before.history.tip != after.history.tip {
            let actor = after.prs.first().map_or("user1", |p| p.author.as_str());
            let payload = self.state.dialect.refs_changed(
                &after,
                before.history.tip.as_deref(),
                after.history.tip.as_deref(),
                actor,
            );
            self.state
                .send_repository_event("repo:refs_changed", payload);
        }
    }

    /// Empties the repository at `repo`, as one created and never pushed to: it lists no branch,
    /// tag or commit. [`Simulator::push_commits`] then makes its first commits.
    pub fn empty_repo(&self, repo: usize) {
        if let Ok(mut w) = self.state.world.lock() {
            w.empty_repo(repo);
        }
    }

    /// Force-pushes the default branch of the repository at `repo`: `back` commits dropped, `n`
    /// new ones pushed.
    pub fn force_push(&self, repo: usize, back: usize, n: usize) {
        self.moving_tip(repo, |w, now| w.force_push(repo, back, n, now));
    }

    /// Moves the running builds (see [`builds::RunningBuilds`]).
    pub fn set_running_builds(&self, running: builds::RunningBuilds) {
        if let Ok(mut r) = self.state.running_builds.lock() {
            *r = running;
        }
    }

    /// Makes the build-status request of `commit` fail with 500 (`false`: answer again).
    pub fn fail_builds_of(&self, commit: &str, failing: bool) {
        if let Ok(mut f) = self.state.failing_builds.lock() {
            if failing {
                f.insert(commit.to_owned());
            } else {
                f.remove(commit);
            }
        }
    }

    /// Renames the repository at `repo` (its place in the world) to `slug`, keeping its id;
    /// returns its (project, old slug, id), `None` when there is no such repository.
    /// Sends the `repo:modified` webhook, if configured.
    pub fn rename_repo(&self, repo: usize, slug: &str) -> Option<(String, String, u64)> {
        let (before, after) = self.state.world.lock().ok()?.rename_repo(repo, slug)?;
        let payload = self.state.dialect.repo_modified(&before, &after, "user1");
        self.state.send_repository_event("repo:modified", payload);
        Some((before.project.clone(), before.slug.clone(), before.id))
    }

    /// Deletes the repository at `repo`: no listing names it any more, and requests for it
    /// answer 404, as after a deletion on a real server.
    pub fn delete_repo(&self, repo: usize) {
        if let Ok(mut w) = self.state.world.lock() {
            w.delete_repo(repo);
        }
    }

    /// Pushes a commit to the source branch of pull request `pr` (its place in the repository)
    /// of the repository at `repo`: its head commit, and so its list of commits, changes.
    /// Sends its `pr:from_ref_updated` webhook, if configured.
    pub fn push_to_pull_request(&self, repo: usize, pr: usize) {
        let changed = {
            let Ok(mut w) = self.state.world.lock() else {
                return;
            };
            if repo >= w.repo_count() {
                return;
            }
            let before = w.repo(repo).prs.get(pr).map(|p| p.from_commit.clone());
            let now = w.clock;
            w.push_to_pull_request(repo, pr, now);
            before.map(|b| (b, w.repo(repo)))
        };
        let Some((previous, r)) = changed else {
            return;
        };
        let Some(p) = r.prs.get(pr) else {
            return;
        };
        let target = self.state.webhook.lock().ok().and_then(|w| w.clone());
        if let Some((url, secret)) = target {
            let d = &self.state.dialect;
            let key = "pr:from_ref_updated";
            let payload = d.webhook(
                key,
                &r,
                p,
                &p.author,
                serde_json::json!({"previousFromHash": previous}),
            );
            let body = d.finish(&format!("webhook {key} {}", p.version), payload);
            send_webhook(&url, &secret, key, body.as_bytes());
        }
    }

    /// Ground truth: one `pull_request` line per pull request, sorted by (project, repo, id).
    /// It holds the whole world's pull requests: for the instances tests compare in full.
    pub fn truth(&self) -> Vec<Value> {
        let Ok(world) = self.state.world.lock() else {
            return Vec::new();
        };
        // A server without drafts (before 8.18) has no draft pull requests to report.
        let drafts = self.state.dialect.version.has_draft();
        let mut out: Vec<Value> = world
            .repos()
            .flat_map(|r| {
                r.prs
                    .iter()
                    .map(|p| World::truth(&r, p))
                    .collect::<Vec<_>>()
            })
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

    /// Ground truth of the history: every default-branch commit as (project, repo, commit id).
    pub fn commit_truth(&self) -> std::collections::BTreeSet<(String, String, String)> {
        self.world()
            .repos()
            .flat_map(|r| {
                r.history
                    .branch()
                    .iter()
                    .map(|c| (r.project.clone(), r.slug.clone(), c.id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ground truth of every repository's branches and tags, as (project, repo, full ref,
    /// commit, whether it is the default branch, an annotated tag's object hash).
    pub fn ref_truth(&self) -> std::collections::BTreeSet<RefTruth> {
        self.world()
            .repos()
            .flat_map(|r| {
                let key = (r.project.clone(), r.slug.clone());
                let main = r.history.tip.iter().map(|tip| {
                    (
                        format!("refs/heads/{}", history::DEFAULT_BRANCH),
                        tip.clone(),
                        true,
                        None,
                    )
                });
                let others = r
                    .history
                    .branches
                    .iter()
                    .map(|(n, c)| (format!("refs/heads/{n}"), c.clone(), false, None));
                let tags = r.history.tags.iter().map(|t| {
                    (
                        format!("refs/tags/{}", t.name),
                        t.target.clone(),
                        false,
                        t.object.clone(),
                    )
                });
                main.chain(others)
                    .chain(tags)
                    .map(|(ref_id, commit, default, object)| {
                        (
                            key.0.clone(),
                            key.1.clone(),
                            ref_id,
                            commit,
                            default,
                            object,
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ground truth of the commits of every pull request, as (project, repo, pull request id,
    /// commit id, author time, parent count, summary).
    pub fn pr_commit_truth(&self) -> std::collections::BTreeSet<PrCommitTruth> {
        self.world()
            .repos()
            .flat_map(|r| {
                r.prs
                    .iter()
                    .flat_map(|p| {
                        pr_commits::commits_of(p)
                            .into_iter()
                            .map(|c| PrCommitTruth {
                                project: r.project.clone(),
                                repo: r.slug.clone(),
                                pr: p.id,
                                commit: c.id,
                                author_time: c.author_time,
                                parents: c.parents.len(),
                                summary: c.message.lines().next().unwrap_or_default().to_owned(),
                            })
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ground truth of each pull request's `first_commit_at`: (project, repo, id) → the earliest
    /// author time of its commits.
    pub fn first_commit_truth(
        &self,
    ) -> std::collections::BTreeMap<(String, String, u64), Option<i64>> {
        self.world()
            .repos()
            .flat_map(|r| {
                r.prs
                    .iter()
                    .map(|p| {
                        (
                            (r.project.clone(), r.slug.clone(), p.id),
                            pr_commits::first_commit_at(p),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ground truth of the build statuses a sync of every entity holds: those of each
    /// default-branch commit and each pull request's head commit, as (project, repo, commit,
    /// key, state).
    pub fn build_truth(
        &self,
    ) -> std::collections::BTreeSet<(String, String, String, String, String)> {
        self.world()
            .repos()
            .flat_map(|r| {
                let heads = r.prs.iter().map(|p| p.from_commit.clone());
                let commits: std::collections::BTreeSet<String> = r
                    .history
                    .branch()
                    .iter()
                    .map(|c| c.id.clone())
                    .chain(heads)
                    .collect();
                commits
                    .into_iter()
                    .flat_map(|id| {
                        builds::builds_of(&id)
                            .into_iter()
                            .map(move |b| (id.clone(), b.key, b.state.to_owned()))
                    })
                    .map(|(id, key, state)| (r.project.clone(), r.slug.clone(), id, key, state))
                    .collect::<Vec<_>>()
            })
            .collect()
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
                    w.repo_count(),
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
        self.halt();
    }

    fn halt(&mut self) {
        self.stop_updates();
        self.state.stopping.store(true, Ordering::Relaxed);
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

impl Drop for Simulator {
    /// A dropped simulator stops as [`Simulator::stop`] does, simulated stalls included.
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(sim: &Simulator, path: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let body = agent
            .get(format!("{}/rest/api/1.0/{path}", sim.base_url()))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    #[test]
    fn fifty_thousand_repositories_are_served_page_by_page() {
        let sim = Simulator::start(SimConfig {
            spec: WorldSpec {
                projects: 2000,
                repos_per_project: 25,
                prs_per_repo: 20,
                ..WorldSpec::default()
            },
            ..SimConfig::default()
        })
        .unwrap();
        assert_eq!(sim.counts().1, 50_003);
        // Active repositories: 50,000 normal and two personal (the archived one is left out).
        let near_end = get(&sim, "repos?start=49975&limit=25");
        assert_eq!(near_end["values"].as_array().map(Vec::len), Some(25));
        assert_eq!(near_end["nextPageStart"], 50_000);
        let end = get(&sim, "repos?start=50000&limit=25");
        assert_eq!(end["values"].as_array().map(Vec::len), Some(2));
        assert_eq!(end["isLastPage"], true);
        let all = get(&sim, "repos?start=50000&limit=25&archived=ALL");
        assert_eq!(all["values"].as_array().map(Vec::len), Some(3));
        let last = get(&sim, "projects/P2000/repos?limit=100");
        assert_eq!(last["values"].as_array().map(Vec::len), Some(25));
        let prs = get(
            &sim,
            "projects/P1999/repos/repo-25/pull-requests?state=ALL&limit=50",
        );
        assert_eq!(prs["values"].as_array().map(Vec::len), Some(20));
        assert_eq!(prs["values"][0]["toRef"]["repository"]["slug"], "repo-25");
        let projects = get(&sim, "projects?start=1975&limit=25");
        assert_eq!(projects["values"][24]["key"], "P2000");
        assert_eq!(projects["isLastPage"], true);
        sim.stop();
    }
}
