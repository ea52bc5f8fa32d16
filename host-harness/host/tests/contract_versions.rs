//! The host loads a component of contract 0.1.0 as well as one of 0.2.0, and runs the same calls
//! on both; the export only 0.2.0 has fails typed on a 0.1.0 component.
//!
//! `tests/fixtures/bbdc_connector-0.1.0.wasm` is the connector as released at contract 0.1.0
//! (built from commit b81e1f6, the last before `wit/0.2.0`, with `cargo build --release --target
//! wasm32-wasip2 -p bbdc-connector`). It is kept as built, so that this test always loads what a
//! platform that never rebuilt it still runs.

use bbdc_host::storage::MemoryKv;
use bbdc_host::{
    CallError, ContractVersion, Credentials, HostError, Runtime, RuntimeConfig, Tenant,
    TenantConfig,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bbdc_connector-0.1.0.wasm")
}

/// A server on loopback that answers every request with `body` (200, JSON) until `requests`
/// have been answered; returns its base URL and the request lines it saw.
fn server(body: &'static str, requests: usize) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("a connection");
            let mut reader = BufReader::new(stream.try_clone().expect("clones"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("a request line");
            seen.push(line.trim_end().to_owned());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).expect("a header") == 0 || header == "\r\n" {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).expect("answers");
        }
        seen
    });
    (url, handle)
}

fn tenant(base_url: &str) -> Arc<Tenant> {
    Arc::new(
        Tenant::new(
            TenantConfig::new("t", base_url, Credentials::None),
            Arc::new(MemoryKv::new()),
        )
        .expect("a tenant"),
    )
}

/// A page of one project, shaped as the 9.2 reference's `RestProject`.
const PROJECTS: &str = r#"{"size":1,"limit":25,"start":0,"isLastPage":true,"values":[{"key":"PLAT","id":1,"name":"Platform","public":false,"type":"NORMAL"}]}"#;

/// An empty page of commits (an empty repository).
const NO_COMMITS: &str = r#"{"size":0,"limit":1,"start":0,"isLastPage":true,"values":[]}"#;

#[test]
fn the_host_runs_a_0_1_0_component_and_a_0_2_0_one_alike() {
    let old = Runtime::new(&RuntimeConfig {
        component_path: Some(fixture()),
        ..RuntimeConfig::default()
    })
    .expect("loads the 0.1.0 component");
    let new = Runtime::new(&RuntimeConfig::default()).expect("loads the bundled component");
    assert_eq!(old.contract_version(), ContractVersion::V0_1);
    assert_eq!(new.contract_version(), ContractVersion::V0_2);

    for runtime in [&old, &new] {
        let version = runtime.contract_version();
        let info = runtime
            .describe(&tenant("https://bitbucket.invalid"))
            .expect("describe");
        assert_eq!(info.name, "bbdc-connector", "{version}");
        // A call through the host's HTTP import, on either version.
        let (url, seen) = server(PROJECTS, 1);
        let page = runtime
            .list_projects(&tenant(&url), None)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(page.items.len(), 1, "{version}");
        assert_eq!(page.items[0].key, "PLAT");
        let seen = seen.join().expect("the server");
        assert!(
            seen[0].starts_with("GET /rest/api/1.0/projects"),
            "{seen:?}"
        );
    }

    let repo = bbdc_host::bindings::types::RepoRef {
        project_key: "PLAT".into(),
        slug: "api".into(),
    };
    match old.fetch_commits(&tenant("https://bitbucket.invalid"), &repo, None) {
        Err(CallError::Host(HostError::Unsupported(u))) => {
            assert_eq!(u.has, ContractVersion::V0_1);
            assert_eq!(u.needs, ContractVersion::V0_2);
            assert!(u.to_string().contains("fetch-commits"), "{u}");
        }
        other => panic!("a 0.1.0 component has no commits: {other:?}"),
    }
    for unsupported in [
        old.list_branches(&tenant("https://bitbucket.invalid"), &repo, None)
            .map(|_| ()),
        old.list_tags(&tenant("https://bitbucket.invalid"), &repo, None)
            .map(|_| ()),
        old.list_pull_request_commits(&tenant("https://bitbucket.invalid"), &repo, 1, None)
            .map(|_| ()),
        old.fetch_builds(&tenant("https://bitbucket.invalid"), &repo, &[])
            .map(|_| ()),
    ] {
        assert!(
            matches!(unsupported, Err(CallError::Host(HostError::Unsupported(_)))),
            "{unsupported:?}"
        );
    }
    let (url, seen) = server(NO_COMMITS, 1);
    let batch = new
        .fetch_commits(&tenant(&url), &repo, None)
        .expect("a 0.2.0 component lists commits");
    assert_eq!(batch.head, None, "an empty repository");
    assert!(batch.commits.is_empty());
    let seen = seen.join().expect("the server");
    assert!(
        seen[0].starts_with("GET /rest/api/1.0/projects/PLAT/repos/api/commits?"),
        "{seen:?}"
    );
}
