//! A hostile connector for the sandbox tests. The last path segment of the connection's base URL
//! picks the misbehaviour; `check-connection` performs it and reports what the host let happen.

wit_bindgen::generate!({ world: "connector-plugin-build", path: "../../wit" });

use exports::ingest::bitbucket_dc::connector::Guest as Connector;
use ingest::bitbucket_dc::types::*;
use ingest::bitbucket_dc::{http, log, storage};

struct Hostile;

fn report(note: String) -> ConnectionReport {
    ConnectionReport {
        server_version: Some(note),
        build_number: None,
        server_name: None,
        user: None,
        projects: 0,
        repos: 0,
        personal_repos: 0,
        archived_repos: 0,
        excluded_repos: 0,
    }
}

fn refuse() -> ConnectorError {
    ConnectorError::InvalidConfig("hostile plugin".into())
}

fn get(url: String, headers: Vec<(String, String)>) -> String {
    match http::send(&http::Request {
        method: http::Method::Get,
        url,
        headers,
    }) {
        Ok((head, _)) => format!("sent:{}", head.status),
        Err(http::HttpError::Denied(why)) => format!("denied:{why}"),
        Err(e) => format!("error:{e:?}"),
    }
}

impl Connector for Hostile {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: "hostile".into(),
            version: "0".into(),
            rest_api: "none".into(),
        }
    }

    fn check_connection(conn: Connection, _: RepoFilter) -> Result<ConnectionReport, ConnectorError> {
        let base = conn.base_url.trim_end_matches('/').to_string();
        let (root, mode) = base.rsplit_once('/').unwrap_or((&base, ""));
        match mode {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile plugin panics"),
            "other-host" => {
                // The URL of another local server is passed in `page-size` as a port number.
                let port = conn.page_size.unwrap_or(9);
                Ok(report(get(
                    format!("http://127.0.0.1:{port}/steal"),
                    vec![],
                )))
            }
            "auth" => Ok(report(get(
                format!("{root}/auth/rest/api/1.0/application-properties"),
                vec![
                    ("Authorization".into(), "Bearer forged-by-plugin".into()),
                    ("authorization".into(), "Basic Zm9yZ2Vk".into()),
                ],
            ))),
            "storage" => {
                let seen =
                    storage::get("shared-name").map(|v| String::from_utf8_lossy(&v).into_owned());
                storage::set("shared-name", conn.base_url.as_bytes());
                Ok(report(format!("seen:{seen:?}")))
            }
            "log-flood" => {
                for i in 0..200_000u32 {
                    log::log(log::Level::Error, &format!("flood {i}"));
                }
                Ok(report("flooded".into()))
            }
            _ => Ok(report("well-behaved".into())),
        }
    }
    fn list_projects(_: Connection, _: PageRequest) -> Result<ProjectPage, ConnectorError> {
        Err(refuse())
    }
    fn list_repos(
        _: Connection,
        _: String,
        _: RepoFilter,
        _: PageRequest,
    ) -> Result<RepoPage, ConnectorError> {
        Err(refuse())
    }
    fn list_all_repos(
        _: Connection,
        _: RepoFilter,
        _: PageRequest,
    ) -> Result<RepoPage, ConnectorError> {
        Err(refuse())
    }
    fn fetch_pull_requests(
        _: Connection,
        _: RepoRef,
        _: SyncOptions,
        _: Option<String>,
    ) -> Result<PullRequestBatch, ConnectorError> {
        Err(refuse())
    }
    fn fetch_pull_request(
        _: Connection,
        _: RepoRef,
        _: u64,
    ) -> Result<PullRequest, ConnectorError> {
        Err(refuse())
    }
    fn list_users(_: Connection, _: PageRequest) -> Result<UserPage, ConnectorError> {
        Err(refuse())
    }
    fn handle_webhook(
        _: Connection,
        _: Option<String>,
        _: WebhookRequest,
    ) -> Result<WebhookOutcome, WebhookError> {
        Err(WebhookError::MalformedPayload("hostile plugin".into()))
    }
}

/// An initialiser that reaches for the host at load time: the host's pre-initialisation must
/// refuse it (every import traps there) and run the component as built.
impl Guest for Hostile {
    fn wizer_initialize() {
        log::log(log::Level::Error, "hostile initialiser reached the host");
    }
}

export!(Hostile);
