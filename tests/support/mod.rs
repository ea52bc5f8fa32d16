//! Shared test support: one runtime per test binary, tenants pointed at a wiremock server, and
//! Bitbucket-shaped JSON fixtures. Every fixture builder checks what it builds against the OpenAPI
//! reference ([`reference`]) before handing it out, so no test runs on an invented shape.
#![allow(dead_code)]

pub mod reference;

use bbdc_host::storage::KvStore;
use bbdc_host::{Credentials, Runtime, RuntimeConfig, Tenant, TenantConfig};
use bbdc_store::kv::SqliteKv;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

/// The token every test tenant authenticates with.
pub const TOKEN: &str = "test-token-7f3a";

/// The runtime, built once per test binary (the compiled component is cached under target/).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(&RuntimeConfig {
            component_path: None,
            cache_dir: Some(
                std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            ),
            fuel: None,
            pooling_slots: None,
            ..RuntimeConfig::default()
        })
        .expect("runtime loads the bundled component")
    })
}

/// A tenant with a Bearer token against `base_url`, storage in memory, and no retries or
/// client-side rate limit, so error answers reach the connector at once (the policy has its own
/// tests in `http_policy.rs`).
pub fn tenant(base_url: &str) -> Arc<Tenant> {
    let mut config = TenantConfig::new("t1", base_url, Credentials::Bearer(TOKEN.into()));
    config.http_policy = bbdc_host::policy::HttpPolicy {
        burst: None,
        max_attempts: 1,
        ..Default::default()
    };
    tenant_with(config)
}

/// A tenant from a config, storage in memory.
pub fn tenant_with(config: TenantConfig) -> Arc<Tenant> {
    let kv: Arc<dyn KvStore> = Arc::new(SqliteKv::in_memory().expect("sqlite in memory"));
    Arc::new(Tenant::new(config, kv).expect("tenant"))
}

/// A tenant of a simulator, with its records and state in a SQLite file of a temporary folder.
pub struct SimRun {
    _dir: tempfile::TempDir,
    /// The SQLite file.
    pub db: std::path::PathBuf,
    /// The tenant.
    pub tenant: Arc<Tenant>,
}

/// A [`SimRun`] against `base_url` with a Bearer `token`, its config adjusted by `tweak`.
pub fn sim_run(base_url: &str, token: &str, tweak: impl FnOnce(&mut TenantConfig)) -> SimRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("sim.sqlite");
    let mut config = TenantConfig::new("t", base_url, Credentials::Bearer(token.into()));
    tweak(&mut config);
    let kv = Arc::new(SqliteKv::open(&db).expect("sqlite"));
    let tenant = Arc::new(Tenant::new(config, kv).expect("tenant"));
    SimRun {
        _dir: dir,
        db,
        tenant,
    }
}

impl SimRun {
    /// Runs the sync job into this run's database, which may fail as a whole.
    pub fn try_sync(
        &self,
        job: &bbdc_jobs::sync::SyncJob,
    ) -> Result<bbdc_jobs::sync::SyncReport, bbdc_jobs::sync::SyncError> {
        let records = bbdc_jobs::records::SqliteRecords::open(&self.db).expect("records");
        bbdc_jobs::sync::run(runtime(), &self.tenant, &records, None, job)
    }

    /// Runs the sync job into this run's database; it must run.
    pub fn sync(&self, job: &bbdc_jobs::sync::SyncJob) -> bbdc_jobs::sync::SyncReport {
        let records = bbdc_jobs::records::SqliteRecords::open(&self.db).expect("records");
        bbdc_jobs::sync::run(runtime(), &self.tenant, &records, None, job).expect("sync runs")
    }
}

/// A sync of pull requests alone: for tests whose mock server answers the pull-request
/// resources only (the history passes would ask it for branches and fail the repository).
#[allow(dead_code)]
pub fn pull_requests_job() -> bbdc_jobs::sync::SyncJob {
    bbdc_jobs::sync::SyncJob {
        entities: bbdc_jobs::sync::Entities::PULL_REQUESTS,
        ..bbdc_jobs::sync::SyncJob::default()
    }
}

/// Runs blocking host work off the async test's worker threads, so wiremock keeps serving.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// A Bitbucket page.
pub fn page(values: Vec<Value>, start: u64, limit: u64, next: Option<u64>) -> Value {
    let mut p = json!({
        "size": values.len(), "limit": limit, "start": start,
        "isLastPage": next.is_none(), "values": values,
    });
    if let Some(n) = next {
        p["nextPageStart"] = json!(n);
    }
    p
}

/// A project.
pub fn project(key: &str, id: u64) -> Value {
    checked(
        "RestProject",
        json!({
            "key": key, "id": id, "name": format!("Project {key}"), "public": false, "type": "NORMAL",
            "links": {"self": [{"href": format!("https://bb.example/projects/{key}")}]}
        }),
    )
}

/// `value`, after checking it conforms to the reference's schema `name`.
pub fn checked(name: &str, value: Value) -> Value {
    reference::assert_schema(name, &value, "a test fixture");
    value
}

/// A project as a repository embeds it. A personal project (`~JDOE`) is named after its owner (the
/// reference's `RestProject.name` never starts with `~`).
pub fn project_ref(key: &str) -> Value {
    match key.strip_prefix('~') {
        Some(owner) => {
            json!({"key": key, "id": 2, "name": owner.to_lowercase(), "type": "PERSONAL"})
        }
        None => json!({"key": key, "id": 1, "name": key, "type": "NORMAL"}),
    }
}

/// A repository.
pub fn repo(project_key: &str, slug: &str, id: u64) -> Value {
    checked(
        "RestRepository",
        json!({
            "slug": slug, "id": id, "name": slug, "scmId": "git", "state": "AVAILABLE",
            "statusMessage": "Available", "forkable": true, "public": false, "archived": false,
            "project": project_ref(project_key),
            "links": {
                "clone": [{"href": format!("https://bb.example/scm/{project_key}/{slug}.git"), "name": "http"}],
                "self": [{"href": format!("https://bb.example/projects/{project_key}/repos/{slug}/browse")}]
            }
        }),
    )
}

/// The headers of a delivery of event `key` with request id `id`, its `body` signed with
/// `secret` as Bitbucket signs it (`X-Hub-Signature: sha256=<hex HMAC-SHA256>`).
pub fn signed_headers(secret: &str, key: &str, id: &str, body: &[u8]) -> Vec<(String, String)> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    [
        ("X-Event-Key", key),
        ("X-Request-Id", id),
        ("Content-Type", "application/json; charset=utf-8"),
        ("X-Hub-Signature", &signature),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A Bitbucket error body.
pub fn error_body(exception: &str, message: &str) -> Value {
    json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]})
}

/// Epoch ms base for fixtures.
pub const T0: i64 = 1_750_000_000_000;
/// An hour in ms.
pub const HOUR: i64 = 3_600_000;

/// A user object.
pub fn user(slug: &str) -> Value {
    checked(
        "RestApplicationUser",
        json!({"name": slug, "emailAddress": format!("{slug}@example.com"), "active": true, "displayName": slug.to_uppercase(), "id": slug.len(), "slug": slug, "type": "NORMAL"}),
    )
}

/// A repository reference as a pull request's ref carries it.
pub fn repo_ref(key: &str, slug: &str) -> Value {
    checked(
        "RestRepository",
        json!({"slug": slug, "id": 1, "name": slug, "project": project_ref(key)}),
    )
}

/// A pull request list item in project PLAT, repository api; times in hours after T0.
pub fn pr_json(id: u64, version: u32, state: &str, created_h: i64, updated_h: i64) -> Value {
    let mut v = json!({
        "id": id, "version": version, "title": format!("Change {id}"), "description": "Line one\r\nLine two",
        "state": state, "open": state == "OPEN", "closed": state != "OPEN",
        "createdDate": T0 + created_h * HOUR, "updatedDate": T0 + updated_h * HOUR,
        "fromRef": {"id": format!("refs/heads/feature/{id}"), "displayId": format!("feature/{id}"), "latestCommit": format!("{id:040x}"), "type": "BRANCH", "repository": repo_ref("PLAT", "api")},
        "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "f".repeat(40), "type": "BRANCH", "repository": repo_ref("PLAT", "api")},
        "locked": false,
        "author": {"user": user("alice"), "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
        "reviewers": [{"user": user("bob"), "role": "REVIEWER", "approved": true, "status": "APPROVED", "lastReviewedCommit": format!("{id:040x}")}],
        "participants": [{"user": user("carol"), "role": "PARTICIPANT", "approved": false, "status": "UNAPPROVED"}],
        "properties": {"mergeResult": {"outcome": "CLEAN", "current": true}, "resolvedTaskCount": 1, "commentCount": 3, "openTaskCount": 2},
        "links": {"self": [{"href": format!("https://bb.example/projects/PLAT/repos/api/pull-requests/{id}")}]}
    });
    if state != "OPEN" {
        v["closedDate"] = json!(T0 + updated_h * HOUR);
    }
    checked("RestPullRequest", v)
}

/// The activities of a pull request, newest first as the server sends them.
pub fn activities_json(id: u64, merged: bool) -> Vec<Value> {
    let at = |h: i64| T0 + h * HOUR;
    let mut acts = vec![
        json!({"id": id * 100 + 1, "createdDate": at(1), "user": user("alice"), "action": "OPENED"}),
        json!({"id": id * 100 + 2, "createdDate": at(2), "user": user("carol"), "action": "COMMENTED", "commentAction": "ADDED", "comment": {"id": 1, "text": "looks odd"}}),
        json!({"id": id * 100 + 3, "createdDate": at(3), "user": user("alice"), "action": "COMMENTED", "commentAction": "REPLIED", "comment": {"id": 2, "text": "fixed"}}),
        json!({"id": id * 100 + 4, "createdDate": at(4), "user": user("bob"), "action": "REVIEWED"}),
        json!({"id": id * 100 + 5, "createdDate": at(5), "user": user("alice"), "action": "RESCOPED", "fromHash": "a", "previousFromHash": "b"}),
        json!({"id": id * 100 + 6, "createdDate": at(6), "user": user("alice"), "action": "UPDATED", "addedReviewers": [user("dave")], "removedReviewers": []}),
        json!({"id": id * 100 + 7, "createdDate": at(7), "user": user("bob"), "action": "APPROVED"}),
        json!({"id": id * 100 + 8, "createdDate": at(8), "user": user("dave"), "action": "UNAPPROVED"}),
        json!({"id": id * 100 + 9, "createdDate": at(9), "user": user("bob"), "action": "DECLINED"}),
        json!({"id": id * 100 + 10, "createdDate": at(10), "user": user("alice"), "action": "REOPENED"}),
    ];
    if merged {
        acts.push(json!({"id": id * 100 + 11, "createdDate": at(11), "user": user("bob"), "action": "MERGED", "commit": {"id": "9".repeat(40), "displayId": "9999999"}}));
    }
    acts.reverse();
    acts.into_iter()
        .map(|a| checked("RestPullRequestActivity", a))
        .collect()
}

/// A diff with `added` and `removed` lines in one file (line text is source code the connector
/// must never keep), optionally a rename and a truncation flag.
pub fn diff_json(added: usize, removed: usize, rename: bool, truncated: bool) -> Value {
    let lines = |n: usize, kind: &str| -> Vec<Value> {
        (0..n).map(|i| json!({"source": i + 1, "destination": i + 1, "line": format!("SOURCE-CODE-MARKER {kind} {i}"), "truncated": false})).collect()
    };
    let path = |p: &str| json!({"components": p.split('/').collect::<Vec<_>>(), "parent": "", "name": p, "toString": p});
    let mut diffs = vec![json!({
        "source": path("src/lib.rs"), "destination": path("src/lib.rs"),
        "hunks": [{"sourceLine": 1, "sourceSpan": removed, "destinationLine": 1, "destinationSpan": added, "truncated": false,
                   "segments": [{"type": "REMOVED", "lines": lines(removed, "removed"), "truncated": false},
                                {"type": "ADDED", "lines": lines(added, "added"), "truncated": truncated}]}],
        "truncated": false
    })];
    if rename {
        diffs.push(json!({"source": path("docs/old.md"), "destination": path("docs/new.md"), "hunks": [], "truncated": false}));
    }
    let diff = json!({"fromHash": "a", "toHash": "b", "contextLines": 0, "whitespace": "SHOW", "diffs": diffs, "truncated": false});
    reference::assert_response(
        "/rest/api/1.0/projects/PLAT/repos/api/pull-requests/1/diff",
        &diff,
    );
    diff
}

/// A `tracing` writer that keeps everything written, for tests that read the logs.
#[derive(Clone, Default)]
pub struct CapturedLog(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Inside an `impl RecordSink` of a test sink wrapping a `SqliteRecords` as `self.inner`: the
/// methods a test does not change (history, pull requests' commits, repositories gone or moved)
/// handed to it unchanged. (Only some test binaries have such a sink.)
#[allow(unused_macros)]
macro_rules! history_to_inner {
    () => {
        fn commits(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            batch: &bbdc_host::bindings::history::CommitBatch,
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.commits(repo, batch)
        }
        fn ref_page(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            page: &bbdc_jobs::records::RefPage<'_>,
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.ref_page(repo, page)
        }
        fn default_branch_head(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
        ) -> Result<Option<String>, bbdc_host::storage::StoreError> {
            self.inner.default_branch_head(repo)
        }
        fn want_builds(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            commits: &[String],
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.want_builds(repo, commits)
        }
        fn build_queue(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
        ) -> Result<Vec<String>, bbdc_host::storage::StoreError> {
            self.inner.build_queue(repo)
        }
        fn builds(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            asked: &[String],
            builds: &[bbdc_host::bindings::history::Build],
            keep_queued: &[String],
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.builds(repo, asked, builds, keep_queued)
        }
        fn repository_delivery(
            &self,
            d: &bbdc_jobs::records::RepositoryDelivery<'_>,
        ) -> Result<bbdc_jobs::records::Stored, bbdc_host::storage::StoreError> {
            self.inner.repository_delivery(d)
        }
        fn repos_gone(
            &self,
            listed_since: i64,
        ) -> Result<Vec<(bbdc_host::bindings::types::RepoRef, u64)>, bbdc_host::storage::StoreError>
        {
            self.inner.repos_gone(listed_since)
        }
        fn want_pr_commits(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            prs: &[bbdc_jobs::records::PrHeads],
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.want_pr_commits(repo, prs)
        }
        fn pr_commit_queue(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
        ) -> Result<Vec<bbdc_jobs::records::PrHeads>, bbdc_host::storage::StoreError> {
            self.inner.pr_commit_queue(repo)
        }
        fn pr_commits_page(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            page: &bbdc_jobs::records::PrCommitsPage<'_>,
        ) -> Result<Option<i64>, bbdc_host::storage::StoreError> {
            self.inner.pr_commits_page(repo, page)
        }
        fn forget_pr_commits(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            heads: &bbdc_jobs::records::PrHeads,
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.forget_pr_commits(repo, heads)
        }
        fn first_commit_at(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            ids: &[u64],
        ) -> Result<std::collections::HashMap<u64, i64>, bbdc_host::storage::StoreError> {
            self.inner.first_commit_at(repo, ids)
        }
        fn want_refresh(
            &self,
            repo: &bbdc_host::bindings::types::RepoRef,
            pr: Option<u64>,
        ) -> Result<i64, bbdc_host::storage::StoreError> {
            self.inner.want_refresh(repo, pr)
        }
        fn refreshes(
            &self,
        ) -> Result<Vec<bbdc_jobs::records::Refresh>, bbdc_host::storage::StoreError> {
            self.inner.refreshes()
        }
        fn refreshed(
            &self,
            refresh: &bbdc_jobs::records::Refresh,
        ) -> Result<(), bbdc_host::storage::StoreError> {
            self.inner.refreshed(refresh)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use history_to_inner;
