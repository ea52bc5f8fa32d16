//! Shared test support: one runtime per test binary, tenants pointed at a wiremock server, and
//! Bitbucket-shaped JSON written from the shapes in BITBUCKET.md.
#![allow(dead_code)]

use host_harness::storage::{KvStore, SqliteKv};
use host_harness::{Credentials, Runtime, RuntimeConfig, Tenant, TenantConfig};
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
        })
        .expect("runtime loads the bundled component")
    })
}

/// A tenant with a Bearer token against `base_url`, storage in memory.
pub fn tenant(base_url: &str) -> Arc<Tenant> {
    tenant_with(TenantConfig::new(
        "t1",
        base_url,
        Credentials::Bearer(TOKEN.into()),
    ))
}

/// A tenant from a config, storage in memory.
pub fn tenant_with(config: TenantConfig) -> Arc<Tenant> {
    let kv: Arc<dyn KvStore> = Arc::new(SqliteKv::in_memory().expect("sqlite in memory"));
    Arc::new(Tenant::new(config, kv).expect("tenant"))
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
    json!({
        "key": key, "id": id, "name": format!("Project {key}"), "public": false, "type": "NORMAL",
        "links": {"self": [{"href": format!("https://bb.example/projects/{key}")}]}
    })
}

/// A repository.
pub fn repo(project_key: &str, slug: &str, id: u64) -> Value {
    json!({
        "slug": slug, "id": id, "name": slug, "scmId": "git", "state": "AVAILABLE",
        "statusMessage": "Available", "forkable": true, "public": false, "archived": false,
        "project": {"key": project_key, "id": 1, "name": project_key},
        "links": {
            "clone": [{"href": format!("https://bb.example/scm/{project_key}/{slug}.git"), "name": "http"}],
            "self": [{"href": format!("https://bb.example/projects/{project_key}/repos/{slug}/browse")}]
        }
    })
}

/// A Bitbucket error body.
pub fn error_body(exception: &str, message: &str) -> Value {
    json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]})
}
