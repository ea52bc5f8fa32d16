//! A hostile connector for the sandbox tests. The last path segment of the connection's base URL
//! picks the misbehaviour; `check-connection` performs it and reports what the host let happen.

wit_bindgen::generate!({ world: "connector-plugin-build", path: "../../wit/0.1.0" });

use exports::ingest::bitbucket_dc::connector::Guest as Connector;
use ingest::bitbucket_dc::types::*;
use ingest::bitbucket_dc::{delivery, http, log, storage};

struct Hostile;

thread_local! {
    /// The base URL of this instance's previous `memo` call: shows which calls share an instance.
    static LAST_SEEN: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// A response body kept open past the end of a `keep-body` call.
    static KEPT_BODY: std::cell::RefCell<Option<http::Body>> = const { std::cell::RefCell::new(None) };
}

/// The misbehaviour the base URL's last segment names, and the URL before it.
fn mode(conn: &Connection) -> (String, String) {
    let base = conn.base_url.trim_end_matches('/');
    let (root, mode) = base.rsplit_once('/').unwrap_or((base, ""));
    (root.to_string(), mode.to_string())
}

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
        let (root, mode) = mode(&conn);
        match mode.as_str() {
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
            "delivery" => Ok(report(format!("check:{:?}", delivery::check_signature()))),
            "memo" => {
                let previous = LAST_SEEN.with(|l| l.replace(Some(conn.base_url.clone())));
                Ok(report(format!("previous:{previous:?}")))
            }
            "keep-body" => {
                if KEPT_BODY.with(|k| k.borrow().is_some()) {
                    return Ok(report("holding a body from an earlier call".into()));
                }
                let request = http::Request {
                    method: http::Method::Get,
                    url: format!("{root}/keep-body/rest/api/1.0/application-properties"),
                    headers: vec![],
                };
                match http::send_streaming(&request) {
                    Ok((_, body)) => {
                        KEPT_BODY.with(|k| k.replace(Some(body)));
                        Ok(report("kept a body".into()))
                    }
                    Err(e) => Ok(report(format!("error:{e:?}"))),
                }
            }
            _ => Ok(report("well-behaved".into())),
        }
    }
    /// Traps in `memo` mode, so a test can see what follows a trap.
    fn list_projects(conn: Connection, _: PageRequest) -> Result<ProjectPage, ConnectorError> {
        if mode(&conn).1 == "memo" {
            panic!("hostile plugin traps after a memo");
        }
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
    /// Reports everything a delivery lets it see: the connection, every header, the body and
    /// the host's signature check (and a second check, which must answer the same).
    fn handle_webhook(conn: Connection, req: WebhookRequest) -> Result<WebhookOutcome, WebhookError> {
        let first = delivery::check_signature();
        let second = delivery::check_signature();
        Err(WebhookError::MalformedPayload(format!(
            "conn:{conn:?} headers:{:?} body:{} check:{first:?} again:{second:?}",
            req.headers,
            String::from_utf8_lossy(&req.body),
        )))
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
