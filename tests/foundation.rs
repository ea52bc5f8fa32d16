//! End-to-end: the built component, loaded by the host harness through wasmtime, against
//! wiremock serving Bitbucket-shaped JSON. Connection check, paging, context paths, the error
//! table, and the host's HTTP policy (base URL only, host-added credentials).

mod support;

use bbdc_host::bindings::api::Connection;
use bbdc_host::bindings::types::{ConnectorError, RepoFilter};
use bbdc_host::{CallError, Credentials, TenantConfig};
use serde_json::json;
use support::*;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const API: &str = "/rest/api/1.0";

fn ok(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A healthy server: version, one project page, repos over two pages, PRs readable.
async fn healthy_server(prefix: &str) -> MockServer {
    let server = MockServer::start().await;
    let p = |s: &str| format!("{prefix}{API}{s}");
    Mock::given(method("GET"))
        .and(path(p("/application-properties")))
        .respond_with(ok(json!({"version": "9.2.4", "buildNumber": "9002004", "buildDate": "1", "displayName": "Bitbucket"}))
            .insert_header("X-AUSERNAME", "jdoe"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("/projects")))
        .respond_with(ok(page(
            vec![project("PLAT", 1), project("WEB", 2)],
            0,
            1000,
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("/repos")))
        .and(query_param("start", "0"))
        .respond_with(ok(page(
            vec![repo("PLAT", "api", 10), repo("PLAT", "web", 11)],
            0,
            2,
            Some(7),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("/repos")))
        .and(query_param("start", "7"))
        .respond_with(ok(page(vec![repo("WEB", "site", 12)], 7, 2, None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("/projects/PLAT/repos")))
        .respond_with(ok(page(vec![repo("PLAT", "api", 10)], 0, 1, Some(1))))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("/projects/PLAT/repos/api/pull-requests")))
        .and(query_param("state", "ALL"))
        .respond_with(ok(page(vec![], 0, 1, None)))
        .mount(&server)
        .await;
    server
}

fn connector_error<T: std::fmt::Debug>(r: Result<T, CallError<ConnectorError>>) -> ConnectorError {
    match r {
        Err(CallError::Connector(e)) => e,
        other => panic!("expected a connector error, got {other:?}"),
    }
}

fn code(e: &ConnectorError) -> &'static str {
    bbdc_jobs::output::connector_error(e).0
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_version_account_and_counts() {
    let server = healthy_server("").await;
    let t = tenant(&server.uri());
    let report = blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING))
        .await
        .expect("check succeeds");
    assert_eq!(report.server_version.as_deref(), Some("9.2.4"));
    assert_eq!(report.build_number.as_deref(), Some("9002004"));
    assert_eq!(report.user.as_deref(), Some("jdoe"));
    assert_eq!(report.projects, 2);
    assert_eq!(
        report.repos, 3,
        "repositories from both pages, following the jumping nextPageStart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn context_path_with_and_without_trailing_slash() {
    let server = healthy_server("/bitbucket").await;
    for base in [
        format!("{}/bitbucket", server.uri()),
        format!("{}/bitbucket/", server.uri()),
    ] {
        let t = tenant(&base);
        let report = blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING))
            .await
            .expect("check succeeds under a context path");
        assert_eq!((report.projects, report.repos), (2, 3));
    }
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.url.path().starts_with("/bitbucket/rest/api/1.0/")),
        "every request keeps the context path"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_adds_the_tenants_bearer_token_to_every_request() {
    let server = healthy_server("").await;
    let t = tenant(&server.uri());
    blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING))
        .await
        .expect("check succeeds");
    let requests = server.received_requests().await.unwrap();
    assert!(!requests.is_empty());
    for r in &requests {
        let auth: Vec<_> = r.headers.get_all("authorization").iter().collect();
        assert_eq!(
            auth.len(),
            1,
            "exactly one Authorization header on {}",
            r.url
        );
        assert_eq!(auth[0].to_str().unwrap(), format!("Bearer {TOKEN}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_credentials_are_sent_as_basic() {
    let server = healthy_server("").await;
    let config = TenantConfig::new(
        "t-basic",
        server.uri(),
        Credentials::Basic {
            username: "jdoe".into(),
            password: "pw".into(),
        },
    );
    let t = tenant_with(config);
    blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING))
        .await
        .expect("check succeeds");
    for r in server.received_requests().await.unwrap() {
        assert_eq!(
            r.headers.get("authorization").unwrap().to_str().unwrap(),
            "Basic amRvZTpwdw=="
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn list_projects_pages_with_capped_limit_and_jumping_next_start() {
    let server = MockServer::start().await;
    let projects = format!("{API}/projects");
    Mock::given(path(projects.clone()))
        .and(query_param("start", "0"))
        .respond_with(ok(page(
            vec![project("A", 1), project("B", 2)],
            0,
            2,
            Some(5),
        )))
        .mount(&server)
        .await;
    Mock::given(path(projects.clone()))
        .and(query_param("start", "5"))
        .respond_with(ok(page(
            vec![project("C", 3), project("~JDOE", 4)],
            5,
            2,
            Some(9),
        )))
        .mount(&server)
        .await;
    // Known server bug: not the last page, but no nextPageStart. The listing must stop here.
    Mock::given(path(projects.clone())).and(query_param("start", "9"))
        .respond_with(ok(json!({"size": 1, "limit": 2, "start": 9, "isLastPage": false, "values": [project("D", 5)]})))
        .mount(&server).await;

    let t = tenant(&server.uri());
    let mut keys = Vec::new();
    let mut cursor = None;
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 10, "listing must end");
        let (t2, c) = (t.clone(), cursor.clone());
        let page = blocking(move || runtime().list_projects(&t2, c))
            .await
            .expect("page");
        keys.extend(page.items.iter().map(|p| p.key.clone()));
        if let Some(personal) = page.items.iter().find(|p| p.key == "~JDOE") {
            assert_eq!(
                personal.kind,
                bbdc_host::bindings::types::ProjectKind::Personal
            );
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(keys, ["A", "B", "C", "~JDOE", "D"]);
    let starts: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "start")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(starts, ["0", "5", "9"], "only nextPageStart is followed");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_stops_when_next_page_start_does_not_advance() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .and(query_param("start", "0"))
        .respond_with(ok(page(vec![repo("PLAT", "a", 1)], 0, 25, Some(3))))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .and(query_param("start", "3"))
        .respond_with(ok(page(vec![repo("PLAT", "b", 2)], 3, 25, Some(3))))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let first = {
        let t = t.clone();
        blocking(move || runtime().list_repos(&t, "PLAT", RepoFilter::EVERYTHING, None))
            .await
            .unwrap()
    };
    // The cursor is opaque (it carries the listing's tally too); following it asks for start 3,
    // the only other page the server answers.
    let cursor = first.next.clone().expect("a next page");
    let second =
        blocking(move || runtime().list_repos(&t, "PLAT", RepoFilter::EVERYTHING, Some(cursor)))
            .await
            .unwrap();
    assert_eq!(second.items[0].repo_ref.slug, "b");
    assert_eq!(
        second.next, None,
        "a nextPageStart that does not advance ends the listing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repos_are_normalised() {
    let server = MockServer::start().await;
    let mut fork = repo("~JDOE", "api", 20);
    fork["origin"] = json!({"slug": "api", "project": {"key": "PLAT"}});
    fork["archived"] = json!(true);
    Mock::given(path(format!("{API}/projects/~JDOE/repos")))
        .respond_with(ok(page(vec![fork], 0, 25, None)))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let page = blocking(move || runtime().list_repos(&t, "~JDOE", RepoFilter::EVERYTHING, None))
        .await
        .unwrap();
    let r = &page.items[0];
    assert_eq!(
        (
            r.repo_ref.project_key.as_str(),
            r.repo_ref.slug.as_str(),
            r.id
        ),
        ("~JDOE", "api", 20)
    );
    assert!(r.archived);
    assert_eq!(
        r.origin
            .as_ref()
            .map(|o| (o.project_key.as_str(), o.slug.as_str())),
        Some(("PLAT", "api"))
    );
    assert_eq!(
        r.clone_http.as_deref(),
        Some("https://bb.example/scm/~JDOE/api.git")
    );
}

/// Serves `status` + `body` for every request and returns the check's error.
async fn check_error(
    status: u16,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> ConnectorError {
    let server = MockServer::start().await;
    let mut resp = ResponseTemplate::new(status).set_body_json(body);
    for (k, v) in headers {
        resp = resp.insert_header(*k, *v);
    }
    Mock::given(method("GET"))
        .respond_with(resp)
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    connector_error(blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING)).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn error_table_end_to_end() {
    let cases: Vec<(u16, serde_json::Value, &str)> = vec![
        (
            401,
            error_body(
                "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
                "Authentication failed",
            ),
            "invalid_credentials",
        ),
        (
            401,
            error_body(
                "com.atlassian.bitbucket.AuthorisationException",
                "You are not permitted to access this resource",
            ),
            "invalid_permissions",
        ),
        (
            403,
            error_body(
                "com.atlassian.bitbucket.AuthorisationException",
                "Forbidden",
            ),
            "invalid_permissions",
        ),
        (
            404,
            error_body("com.atlassian.bitbucket.NoSuchEntityException", "gone"),
            "not_found",
        ),
        (
            500,
            error_body("java.lang.IllegalStateException", "boom"),
            "server",
        ),
        (503, json!({}), "server"),
    ];
    for (status, body, expected) in cases {
        let e = check_error(status, body, &[]).await;
        assert_eq!(code(&e), expected, "status {status}: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_carries_retry_after() {
    let e = check_error(429, json!({}), &[("Retry-After", "12")]).await;
    match e {
        ConnectorError::RateLimited(r) => assert_eq!(r.retry_after_ms, Some(12_000)),
        other => panic!("expected rate-limited, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn error_message_comes_from_the_server() {
    let e = check_error(
        500,
        error_body(
            "com.atlassian.bitbucket.scm.CommandFailedException",
            "git rev-list failed",
        ),
        &[],
    )
    .await;
    match e {
        ConnectorError::Server(s) => {
            assert_eq!(s.status, 500);
            assert!(s.message.contains("git rev-list failed"), "{}", s.message);
        }
        other => panic!("expected server, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"values\": [ oops"))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let e = connector_error(blocking(move || runtime().list_projects(&t, None)).await);
    assert_eq!(code(&e), "malformed_response");
    // An item that cannot be identified is left out and reported; the rest of its page is kept.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ok(page(
            vec![json!({"name": "no key"}), project("PLAT", 1)],
            0,
            25,
            None,
        )))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let page = blocking(move || runtime().list_projects(&t, None))
        .await
        .expect("the page is kept");
    let keys: Vec<&str> = page.items.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["PLAT"]);
    assert_eq!(page.unreadable.len(), 1);
    assert_eq!(page.unreadable[0].location, "GET /projects start=0 item 0");
    assert!(
        page.unreadable[0].reason.contains("key"),
        "{:?}",
        page.unreadable[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_server_is_a_transport_error() {
    // Bind a port, then free it, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = tenant(&format!("http://127.0.0.1:{port}"));
    let e = connector_error(
        blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING)).await,
    );
    assert_eq!(code(&e), "transport");
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_base_url_is_invalid_config() {
    let t = tenant("http://127.0.0.1:9");
    let conn = Connection {
        base_url: "not a url".into(),
        page_size: None,
    };
    let e = connector_error(
        blocking(move || {
            runtime().call_with(&t, |p, s| {
                p.connector()
                    .call_check_connection(s, &conn, RepoFilter::EVERYTHING)
            })
        })
        .await,
    );
    assert_eq!(code(&e), "invalid_config");
    let t = tenant("http://127.0.0.1:9");
    let e = connector_error(
        blocking(move || runtime().list_projects(&t, Some("not-a-cursor".into()))).await,
    );
    assert_eq!(code(&e), "invalid_config");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_projects_and_no_repos_is_no_resources() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{API}/application-properties")))
        .respond_with(ok(json!({"version": "8.19.0"})))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/projects")))
        .respond_with(ok(page(vec![], 0, 25, None)))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/repos")))
        .respond_with(ok(page(vec![], 0, 25, None)))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let e = connector_error(
        blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING)).await,
    );
    assert_eq!(code(&e), "no_resources", "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_visible_but_pull_requests_refused_is_invalid_permissions() {
    let server = healthy_server("").await;
    // Registered later, so it takes precedence over the healthy answer.
    Mock::given(path(format!("{API}/projects/PLAT/repos/api/pull-requests")))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            "com.atlassian.bitbucket.AuthorisationException",
            "You are not permitted to access this resource",
        )))
        .with_priority(1)
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let e = connector_error(
        blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING)).await,
    );
    assert_eq!(code(&e), "invalid_permissions", "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_visible_but_repositories_refused_is_invalid_permissions() {
    let server = healthy_server("").await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .respond_with(ResponseTemplate::new(403).set_body_json(error_body(
            "com.atlassian.bitbucket.AuthorisationException",
            "no",
        )))
        .with_priority(1)
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let e = connector_error(
        blocking(move || runtime().check_connection(&t, RepoFilter::EVERYTHING)).await,
    );
    assert_eq!(code(&e), "invalid_permissions", "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_to_another_host_is_denied_and_never_sent() {
    let allowed = healthy_server("").await;
    let other = healthy_server("").await;
    // The tenant may reach `allowed` only; the connector is pointed at `other`.
    let t = tenant(&allowed.uri());
    let conn = Connection {
        base_url: other.uri(),
        page_size: None,
    };
    let e = connector_error(
        blocking(move || {
            runtime().call_with(&t, |p, s| {
                p.connector()
                    .call_check_connection(s, &conn, RepoFilter::EVERYTHING)
            })
        })
        .await,
    );
    match &e {
        ConnectorError::Denied(m) => assert!(m.contains("outside"), "{m}"),
        other => panic!("expected a denied error (typed, not flattened), got {other:?}"),
    }
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "nothing reached the other host"
    );
    assert!(allowed.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_supplied_authorization_is_replaced_by_the_hosts() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ok(json!({"version": "9.2.4"})))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let url = format!("{}{API}/application-properties", server.uri());
    let (head, _) = blocking(move || {
        t.http.send(
            "GET",
            &url,
            &[
                ("Authorization".into(), "Bearer stolen-elsewhere".into()),
                ("Accept".into(), "application/json".into()),
            ],
            std::time::Instant::now() + std::time::Duration::from_secs(60),
        )
    })
    .await
    .expect("sent");
    assert_eq!(head.status, 200, "matched only with the host's token");
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    let auth: Vec<_> = requests[0]
        .headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(auth, [format!("Bearer {TOKEN}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn list_users_falls_back_to_users_when_admin_listing_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path(format!("{API}/admin/users")))
        .respond_with(ResponseTemplate::new(401).set_body_json(error_body(
            "com.atlassian.bitbucket.AuthorisationException",
            "You are not permitted to access this resource",
        )))
        .mount(&server)
        .await;
    Mock::given(path(format!("{API}/users"))).and(query_param("start", "0"))
        .respond_with(ok(page(vec![json!({"name": "jdoe", "slug": "jdoe", "id": 1, "displayName": "J Doe", "emailAddress": "j@x", "active": true, "type": "NORMAL"})], 0, 1, Some(4))))
        .mount(&server).await;
    Mock::given(path(format!("{API}/users")))
        .and(query_param("start", "4"))
        .respond_with(ok(page(
            vec![json!({"name": "ci", "slug": "ci", "id": 2, "type": "SERVICE"})],
            4,
            1,
            None,
        )))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let t2 = t.clone();
    let first = blocking(move || runtime().list_users(&t2, None))
        .await
        .unwrap();
    assert!(first.fallback);
    assert_eq!(first.items[0].slug, "jdoe");
    let second = blocking(move || runtime().list_users(&t, first.next))
        .await
        .unwrap();
    assert!(second.fallback);
    assert_eq!(
        second.items[0].kind,
        bbdc_host::bindings::types::UserKind::Service
    );
    assert_eq!(second.next, None);
    let admin_calls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/admin/users"))
        .count();
    assert_eq!(admin_calls, 1, "the cursor remembers the fallback");
}
