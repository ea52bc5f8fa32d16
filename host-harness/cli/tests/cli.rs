//! `bbdc check` as a user runs it: the real binary, secrets from the environment, against
//! wiremock.

use serde_json::{Value, json};
use std::process::Command;
use wiremock::matchers::{header, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// The OpenAPI reference check every fixture goes through (shared with the root crate's tests).
mod common;
#[path = "../../../tests/support/reference.rs"]
mod reference;

const API: &str = "/rest/api/1.0";

/// A `200` answer to `GET {API}{path}`, its body first checked against the reference.
fn served(path: &str, body: Value) -> ResponseTemplate {
    reference::assert_response(&format!("{API}{path}"), &body);
    ResponseTemplate::new(200).set_body_json(body)
}

fn page(values: Vec<Value>) -> Value {
    json!({"size": values.len(), "limit": 25, "start": 0, "isLastPage": true, "values": values})
}

async fn server() -> MockServer {
    let s = MockServer::start().await;
    let bearer = || header("authorization", "Bearer cli-secret-token");
    Mock::given(path(format!("{API}/application-properties")))
        .and(bearer())
        .respond_with(
            served(
                "/application-properties",
                json!({"version": "9.2.4", "buildNumber": "9002004", "displayName": "Bitbucket"}),
            )
            .insert_header("X-AUSERNAME", "jdoe"),
        )
        .mount(&s)
        .await;
    Mock::given(path(format!("{API}/projects")))
        .and(bearer())
        .respond_with(served(
            "/projects",
            page(vec![json!({"key": "PLAT", "id": 1, "name": "Platform"})]),
        ))
        .mount(&s)
        .await;
    let repo = json!({"slug": "api", "id": 3, "name": "api", "project": {"key": "PLAT"}});
    Mock::given(path(format!("{API}/repos")))
        .and(bearer())
        .respond_with(served("/repos", page(vec![repo.clone()])))
        .mount(&s)
        .await;
    Mock::given(path(format!("{API}/projects/PLAT/repos")))
        .and(bearer())
        .respond_with(served("/projects/PLAT/repos", page(vec![repo])))
        .mount(&s)
        .await;
    Mock::given(path(format!("{API}/projects/PLAT/repos/api/pull-requests")))
        .and(bearer())
        .respond_with(served(
            "/projects/PLAT/repos/api/pull-requests",
            page(vec![]),
        ))
        .mount(&s)
        .await;
    // Anything without the right token is refused as bad credentials.
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [{"context": null, "message": "Authentication failed. Please check your credentials and try again.", "exceptionName": "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"}]})))
        .with_priority(10)
        .mount(&s).await;
    s
}

fn bbdc(args: &[&str], envs: &[(&str, &str)]) -> (bool, Value, String) {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let out = Command::new(env!("CARGO_BIN_EXE_bbdc"))
        .args(args)
        .envs(envs.iter().copied())
        .env("BBDC_CACHE_DIR", cache)
        .output()
        .expect("bbdc runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), json, stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn check_json_success_and_exit_zero() {
    let s = server().await;
    let uri = s.uri();
    let (ok, json, raw) = tokio::task::spawn_blocking(move || {
        bbdc(
            &[
                "check",
                "--base-url",
                &uri,
                "--token-env",
                "BB_TOKEN",
                "--json",
            ],
            &[("BB_TOKEN", "cli-secret-token")],
        )
    })
    .await
    .unwrap();
    assert!(ok, "exit 0: {raw}");
    assert_eq!(json["ok"], true);
    assert_eq!(json["server_version"], "9.2.4");
    assert_eq!(json["user"], "jdoe");
    assert_eq!(json["projects"], 1);
    assert_eq!(json["repos"], 1);
    assert!(
        !raw.contains("cli-secret-token"),
        "the token is never printed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_file_gives_the_server_credentials_and_limits() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "cli-secret-token\n").unwrap();
    let tenant = dir.path().join("acme.toml");
    std::fs::write(
        &tenant,
        format!(
            "id = \"acme\"\nbase_url = {:?}\npage_size = 7\n[credentials]\ntoken_file = {:?}\n[http_policy]\nmax_wait = \"1m\"\n",
            s.uri(),
            token.display().to_string()
        ),
    )
    .unwrap();
    let misspelt = dir.path().join("typo.json");
    std::fs::write(
        &misspelt,
        format!(
            r#"{{"base_url": {:?}, "limits": {{"deadlin": "1m"}}}}"#,
            s.uri()
        ),
    )
    .unwrap();
    let (tenant, misspelt) = (tenant.display().to_string(), misspelt.display().to_string());
    let ((ok, json, raw), (typo_ok, _, typo_raw), both) = tokio::task::spawn_blocking(move || {
        let good = bbdc(&["check", "--tenant", &tenant, "--json"], &[]);
        let typo = bbdc(&["check", "--tenant", &misspelt, "--json"], &[]);
        let both = Command::new(env!("CARGO_BIN_EXE_bbdc"))
            .args(["check", "--tenant", &tenant, "--base-url", "https://x"])
            .output()
            .unwrap();
        (good, typo, both)
    })
    .await
    .unwrap();
    assert!(ok, "exit 0: {raw}");
    assert_eq!(json["projects"], 1);
    assert!(
        !raw.contains("cli-secret-token"),
        "the token is never printed"
    );
    let asked_limit = s.received_requests().await.unwrap().iter().any(|r| {
        r.url.path().ends_with("/projects") && r.url.query().is_some_and(|q| q.contains("limit=7"))
    });
    assert!(asked_limit, "the file's page size reaches the server");
    assert!(!typo_ok, "a misspelt limit is refused: {typo_raw}");
    assert!(typo_raw.contains("deadlin"), "{typo_raw}");
    assert_eq!(
        both.status.code(),
        Some(2),
        "--tenant and --base-url conflict"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_json_failure_names_the_error_and_exits_non_zero() {
    let s = server().await;
    let uri = s.uri();
    let (ok, json, raw) = tokio::task::spawn_blocking(move || {
        bbdc(
            &[
                "check",
                "--base-url",
                &uri,
                "--token-env",
                "BB_TOKEN",
                "--json",
            ],
            &[("BB_TOKEN", "wrong-token")],
        )
    })
    .await
    .unwrap();
    assert!(!ok, "non-zero exit on failure");
    assert_eq!(json["ok"], false, "{raw}");
    assert_eq!(json["error"], "invalid_credentials");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("Authentication failed")
    );
    assert!(!raw.contains("wrong-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_with_basic_auth_and_human_output() {
    let s = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [{"message": "You are not permitted to access this resource", "exceptionName": "com.atlassian.bitbucket.AuthorisationException"}]})))
        .mount(&s).await;
    let uri = s.uri();
    let (ok, _, raw) = tokio::task::spawn_blocking(move || {
        bbdc(
            &[
                "check",
                "--base-url",
                &uri,
                "--username",
                "jdoe",
                "--password-env",
                "BB_PW",
            ],
            &[("BB_PW", "pw")],
        )
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(raw.is_empty(), "human failure output goes to stderr");
    let auth = s.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(auth, "Basic amRvZTpwdw==");
}

#[test]
fn missing_secret_variable_is_invalid_config() {
    let (ok, json, _) = bbdc(
        &[
            "check",
            "--base-url",
            "https://bb.example",
            "--token-env",
            "BBDC_TEST_UNSET_VAR",
            "--json",
        ],
        &[],
    );
    assert!(!ok);
    assert_eq!(json["error"], "invalid_config");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("BBDC_TEST_UNSET_VAR")
    );
}

#[test]
fn unusable_ca_bundle_is_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, "not a certificate").unwrap();
    let (ok, json, _) = bbdc(
        &[
            "check",
            "--base-url",
            "https://bb.example",
            "--token-env",
            "T",
            "--ca-cert",
            pem.to_str().unwrap(),
            "--json",
        ],
        &[("T", "x")],
    );
    assert!(!ok);
    assert_eq!(json["error"], "invalid_config");
}

/// A small server for `bbdc sync`: one project, one repository, two users, two pull requests.
async fn sync_server() -> MockServer {
    let s = MockServer::start().await;
    let user = |slug: &str| json!({"name": slug, "slug": slug, "id": 1, "displayName": slug, "active": true, "type": "NORMAL"});
    let rref = json!({"slug": "api", "project": {"key": "PLAT"}});
    let pr = |id: u64, state: &str| {
        let mut v = json!({
            "id": id, "version": 2, "title": format!("T{id}"), "state": state, "createdDate": 1000 * id, "updatedDate": 5000 * id,
            "fromRef": {"id": "refs/heads/f", "displayId": "f", "latestCommit": "a1", "repository": rref},
            "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "b2", "repository": rref},
            "author": {"user": user("alice"), "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
            "reviewers": [{"user": user("bob"), "role": "REVIEWER", "approved": true, "status": "APPROVED"}],
            "links": {"self": [{"href": format!("https://bb/pr/{id}")}]}
        });
        // An open pull request has no `closedDate` (the reference types it as an integer).
        if state != "OPEN" {
            v["closedDate"] = json!(5000 * id);
        }
        v
    };
    let mount = |p: String, body: Value| {
        let s = &s;
        async move {
            Mock::given(path(format!("{API}{p}")))
                .respond_with(served(&p, body))
                .mount(s)
                .await
        }
    };
    mount(
        "/projects".into(),
        page(vec![json!({"key": "PLAT", "id": 1, "name": "Platform"})]),
    )
    .await;
    let repo = json!({"slug": "api", "id": 3, "name": "api", "project": {"key": "PLAT"}});
    mount("/projects/PLAT/repos".into(), page(vec![repo.clone()])).await;
    mount("/repos".into(), page(vec![repo])).await;
    mount(
        "/admin/users".into(),
        page(vec![user("alice"), user("bob")]),
    )
    .await;
    mount(
        "/projects/PLAT/repos/api/pull-requests".into(),
        page(vec![pr(2, "MERGED"), pr(1, "OPEN")]),
    )
    .await;
    for id in [1, 2] {
        mount(
            format!("/projects/PLAT/repos/api/pull-requests/{id}/activities"),
            page(vec![
                json!({"id": 3, "createdDate": 4000, "user": user("bob"), "action": "MERGED", "commit": {"id": "m3"}}),
                json!({"id": 2, "createdDate": 3000, "user": user("bob"), "action": "APPROVED"}),
            ]),
        )
        .await;
        mount(
            format!("/projects/PLAT/repos/api/pull-requests/{id}/diff"),
            json!({"diffs": [{"hunks": [{"segments": [{"type": "ADDED", "lines": [{"line": "x"}]}]}]}]}),
        )
        .await;
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_writes_jsonl_and_sqlite_and_exits_zero() {
    let s = sync_server().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.sqlite");
    let (uri, db_s) = (s.uri(), db.to_str().unwrap().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
        Command::new(env!("CARGO_BIN_EXE_bbdc"))
            .args([
                "sync",
                "--base-url",
                &uri,
                "--token-env",
                "BB_TOKEN",
                "--db",
                &db_s,
                "--jsonl",
                "-",
                "--json",
                // The mock server answers the pull-request resources only.
                "--entities",
                "pull-requests",
            ])
            .env("BB_TOKEN", "cli-secret-token")
            .env("BBDC_CACHE_DIR", cache)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    assert_eq!(
        (of("project"), of("repo"), of("user"), of("pull_request")),
        (1, 1, 2, 2)
    );
    let pr = lines
        .iter()
        .find(|l| l["type"] == "pull_request" && l["id"] == 2)
        .unwrap();
    for field in [
        "id",
        "project_key",
        "repo_slug",
        "title",
        "state",
        "draft",
        "author",
        "created_at",
        "updated_at",
        "closed_at",
        "merged_at",
        "merged_by",
        "merge_commit",
        "source_branch",
        "target_branch",
        "url",
        "version",
        "additions",
        "deletions",
        "files_changed",
        "diff_truncated",
        "reviewers",
        "reviews",
        "first_review_at",
        "first_approval_at",
    ] {
        assert!(
            pr.get(field).is_some(),
            "pull_request line lacks {field}: {pr}"
        );
    }
    assert_eq!(pr["state"], "MERGED");
    assert_eq!(pr["author"], "alice");
    assert_eq!(pr["merged_by"], "bob");
    assert_eq!(pr["merge_commit"], "m3");
    assert_eq!(pr["merged_at"], 4000);
    assert_eq!(pr["additions"], 1);
    assert_eq!(
        pr["reviewers"],
        json!([{"user": "bob", "status": "APPROVED"}])
    );
    assert_eq!(
        pr["reviews"],
        json!([{"user": "bob", "state": "approved", "at": 3000}])
    );
    assert_eq!(pr["first_approval_at"], 3000);
    let summary: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).lines().last().unwrap())
            .expect("summary on stderr");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["records"]["pull_request"], 2);
    assert!(db.exists());
    let raw =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!raw.contains("cli-secret-token"));
}

/// Runs `bbdc sync` against `uri` with `extra` arguments.
fn run_sync(uri: &str, db: &str, extra: &[&str]) -> std::process::Output {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    let mut args = vec![
        "sync",
        "--base-url",
        uri,
        "--token-env",
        "BB_TOKEN",
        "--db",
        db,
        // The mock servers answer the pull-request resources only.
        "--entities",
        "pull-requests",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_bbdc"))
        .args(&args)
        .env("BB_TOKEN", "cli-secret-token")
        .env("BBDC_CACHE_DIR", cache)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_project_that_cannot_be_listed_leaves_the_others_synced_and_exits_partial() {
    let s = sync_server().await;
    // Its message carries terminal escapes: a title change (OSC) and red text (CSI).
    let gone = json!({"errors": [{
        "message": "Project GONE does not exist.\u{1b}]0;pwned\u{7}\u{1b}[31m",
        "exceptionName": "com.atlassian.bitbucket.project.NoSuchProjectException"}]});
    reference::assert_schema("RestErrors", &gone, "the 404 body");
    Mock::given(path(format!("{API}/projects/GONE/repos")))
        .respond_with(ResponseTemplate::new(404).set_body_json(gone))
        .mount(&s)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("out.sqlite");
    let (uri, db_s) = (s.uri(), db.to_str().unwrap().to_owned());
    let (json_out, text_out) = tokio::task::spawn_blocking(move || {
        let projects = ["--project", "GONE", "--project", "PLAT"];
        let mut json_args = projects.to_vec();
        json_args.push("--json");
        (
            run_sync(&uri, &db_s, &json_args),
            run_sync(&uri, &db_s, &projects),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        json_out.status.code(),
        Some(3),
        "partial: {}",
        String::from_utf8_lossy(&json_out.stderr)
    );
    let summary: Value = serde_json::from_slice(&json_out.stdout).expect("one JSON summary");
    assert_eq!(summary["status"], "partial", "{summary}");
    assert_eq!(
        summary["failed_projects"][0]["project"], "GONE",
        "{summary}"
    );
    assert_eq!(
        summary["failed_projects"][0]["error"], "not_found",
        "{summary}"
    );
    assert_eq!(
        summary["records"]["pull_request"], 2,
        "PLAT was synced: {summary}"
    );
    let stored: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM pull_requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 2);

    assert_eq!(text_out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&text_out.stdout).into_owned()
        + &String::from_utf8_lossy(&text_out.stderr);
    assert!(text.contains("failed projects (1)"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "no escape reaches the terminal raw: {text:?}"
    );
    assert!(
        text.contains("\\u{1b}]0;pwned"),
        "the escape is shown: {text}"
    );
}

#[test]
fn sync_rejects_a_bad_repo_filter_and_date() {
    let (ok, _, _) = bbdc(
        &[
            "sync",
            "--base-url",
            "https://bb.example",
            "--token-env",
            "T",
            "--repo",
            "noslash",
        ],
        &[("T", "x")],
    );
    assert!(!ok);
    let (ok, _, _) = bbdc(
        &[
            "sync",
            "--base-url",
            "https://bb.example",
            "--token-env",
            "T",
            "--since",
            "2026-13-01",
        ],
        &[("T", "x")],
    );
    assert!(!ok);
}

#[test]
fn flags_past_their_limits_are_usage_errors() {
    let code = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bbdc"))
            .args(args)
            .env("T", "x")
            .output()
            .expect("bbdc runs")
            .status
            .code()
    };
    let server = ["--base-url", "https://bb.example", "--token-env", "T"];
    let with = |cmd: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec![cmd];
        v.extend_from_slice(&server);
        v.extend_from_slice(extra);
        v
    };
    assert_eq!(code(&with("sync", &["--concurrency", "1000000"])), Some(2));
    assert_eq!(code(&with("sync", &["--concurrency", "0"])), Some(2));
    assert_eq!(
        code(&["serve", "--allow-unsigned", "--max-body", "999999999"]),
        Some(2),
        "a body cap above the connector's own is refused"
    );
    assert_eq!(
        code(&["serve", "--allow-unsigned", "--workers", "100000"]),
        Some(2)
    );
    assert_eq!(
        code(&["serve", "--allow-unsigned", "--idle-timeout", "0s"]),
        Some(2)
    );
    assert_eq!(code(&["webhook", "--max-body", "99999999999"]), Some(2));
    assert_eq!(
        code(&[
            "serve",
            "--allow-unsigned",
            "--base-url",
            "https://bb.example",
            "--token-env",
            "T",
            "--username",
            "u",
            "--password-env",
            "T",
        ]),
        Some(2),
        "serve refuses a token and Basic credentials together, as check and sync do"
    );
}

#[test]
fn webhook_command_reads_no_more_than_the_cap_of_an_endless_stdin() {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    // /dev/zero never ends: reading it whole would never return.
    let out = Command::new(env!("CARGO_BIN_EXE_bbdc"))
        .args([
            "webhook",
            "--max-body",
            "4096",
            "-H",
            "X-Event-Key: pr:opened",
            "--json",
        ])
        .env("BBDC_CACHE_DIR", cache)
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .expect("bbdc runs");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["http_status"], 413, "{report}");
    assert_eq!(report["error"], "too_large", "{report}");
}

fn signed_body() -> (Vec<u8>, String) {
    common::signed_approval("s3cret", 9, 4)
}

/// `signed_body` written to a file in a fresh directory, and its signature header.
fn signed_body_file() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (body, sig) = signed_body();
    let file = dir.path().join("body.json");
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap().to_owned();
    (dir, file, format!("X-Hub-Signature: {sig}"))
}

/// `bbdc webhook` delivering `file` as request 7d1e, with the secret from `HOOK_SECRET`.
fn webhook_args<'a>(file: &'a str, sig_header: &'a str) -> Vec<&'a str> {
    vec![
        "webhook",
        "--secret-env",
        "HOOK_SECRET",
        "-H",
        "X-Event-Key: pr:reviewer:approved",
        "-H",
        "X-Request-Id: 7d1e",
        "-H",
        sig_header,
        "--body",
        file,
    ]
}

#[test]
fn webhook_command_accepts_a_signed_delivery_and_rejects_a_forged_one() {
    let (dir, file, sig_header) = signed_body_file();
    let db = dir.path().join("hooks.sqlite");
    let mut args = webhook_args(&file, &sig_header);
    args.extend(["--db", db.to_str().unwrap(), "--json"]);
    let (ok, out, raw) = bbdc(&args, &[("HOOK_SECRET", "s3cret")]);
    assert!(ok, "{raw}");
    assert_eq!(
        (
            out["http_status"].as_u64(),
            out["result"].as_str(),
            out["verified"].as_bool()
        ),
        (Some(200), Some("accepted"), Some(true)),
        "{out}"
    );
    assert_eq!(out["event_key"], "pr:reviewer:approved");
    assert_eq!(out["request_id"], "7d1e");
    assert_eq!(out["error"], Value::Null);
    assert_eq!(out["pull_request"]["id"], 9);
    assert_eq!(out["pull_request"]["state"], "OPEN");
    assert_eq!(
        out["review"],
        json!({"user": "bob", "status": "APPROVED", "previous_status": "UNAPPROVED"})
    );
    assert!(!raw.contains("s3cret"));

    // The same delivery again: a duplicate, thanks to the database.
    let (ok, out, _) = bbdc(&args, &[("HOOK_SECRET", "s3cret")]);
    assert!(ok);
    assert_eq!(out["result"], "duplicate");

    // The wrong secret: rejected with 403 and a non-zero exit.
    let (ok, out, _) = bbdc(&args, &[("HOOK_SECRET", "other")]);
    assert!(!ok);
    assert_eq!(
        (
            out["http_status"].as_u64(),
            out["result"].as_str(),
            out["error"].as_str()
        ),
        (Some(403), Some("rejected"), Some("invalid_signature"))
    );
}

#[test]
fn serve_refuses_to_start_without_a_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_bbdc"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "/nonexistent/never-created.sqlite",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-unsigned"));
}

#[test]
fn webhook_command_prints_one_line_for_people_unless_json_is_asked_for() {
    let (_dir, file, sig_header) = signed_body_file();
    let args = webhook_args(&file, &sig_header);
    let (ok, json, raw) = bbdc(&args, &[("HOOK_SECRET", "wrong")]);
    assert!(!ok);
    assert_eq!(json, Value::Null, "not JSON: {raw}");
    assert!(
        raw.starts_with("403 rejected pr:reviewer:approved 7d1e: invalid_signature: "),
        "{raw}"
    );
    assert_eq!(raw.lines().count(), 1, "{raw}");
}
