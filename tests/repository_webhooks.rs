//! Repository deliveries as hostile or unlucky peers send them (issue 28): pushes late and out
//! of order, repositories whose id cannot be read, ids past a Java long. Each through the built
//! component and the host's handler into SQLite, as `serve` and `bbdc webhook` store them.

mod support;

use bbdc_jobs::records::{RecordSink, SqliteRecords};
use bbdc_jobs::webhook::{DEFAULT_MAX_BODY, handle, report_json};
use rusqlite::Connection;
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;

const SECRET: &str = "repo-hook-secret-77c1";
const NO_SERVER: &str = "https://bitbucket.invalid";
const ZERO: &str = "0000000000000000000000000000000000000000";

/// A commit hash made of one repeated hex digit.
fn hash(c: char) -> String {
    c.to_string().repeat(40)
}

struct Db {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    tenant: Arc<bbdc_host::Tenant>,
    records: SqliteRecords,
}

fn db() -> Db {
    let dir = tempfile::tempdir().expect("a folder");
    let path = dir.path().join("hooks.sqlite");
    let records = SqliteRecords::open(&path).expect("records");
    Db {
        _dir: dir,
        path,
        tenant: tenant(NO_SERVER),
        records,
    }
}

/// Delivers `body` as event `key` with request id `id`, signed, raw bytes as given; the report.
fn deliver_bytes(d: &Db, key: &str, id: &str, body: Vec<u8>) -> Value {
    let headers = signed_headers(SECRET, key, id, &body);
    report_json(&handle(
        runtime(),
        &d.tenant,
        Some(SECRET),
        DEFAULT_MAX_BODY,
        headers,
        body,
        Some(&d.records as &dyn RecordSink),
    ))
}

/// Delivers `body` (held against the reference first) as event `key`.
fn deliver(d: &Db, key: &str, id: &str, body: &Value) -> Value {
    reference::assert_webhook(key, body);
    deliver_bytes(d, key, id, body.to_string().into_bytes())
}

/// A push to PLAT/api (repository id `repo_id`) at second `second` of a day: `main` from `from`
/// to `to` (`None`: created, or deleted).
fn push(repo_id: Value, second: u32, from: Option<char>, to: Option<char>) -> Value {
    let kind = match (from, to) {
        (None, _) => "ADD",
        (_, None) => "DELETE",
        _ => "UPDATE",
    };
    let mut repository = repo("PLAT", "api", 109);
    repository["id"] = repo_id;
    json!({
        "eventKey": "repo:refs_changed",
        "date": format!("2026-11-24T10:00:{second:02}+0000"),
        "actor": user("alice"),
        "repository": repository,
        "changes": [{
            "ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
            "refId": "refs/heads/main",
            "fromHash": from.map_or(ZERO.to_owned(), hash),
            "toHash": to.map_or(ZERO.to_owned(), hash),
            "type": kind
        }]
    })
}

/// `main`'s stored head, and whether the repository is marked for a refs listing.
fn main_branch(d: &Db) -> (Option<String>, bool) {
    let conn = Connection::open(&d.path).expect("the database");
    let head = conn
        .query_row(
            "SELECT latest_commit FROM branches WHERE project_key = 'PLAT' AND repo_slug = 'api' AND ref_id = 'refs/heads/main'",
            [],
            |r| r.get(0),
        )
        .ok();
    let marked = conn
        .query_row(
            "SELECT refs_marked_at IS NOT NULL FROM repos WHERE project_key = 'PLAT' AND slug = 'api'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(false);
    (head, marked)
}

fn accepted(report: &Value) {
    assert_eq!(
        (report["http_status"].as_u64(), report["result"].as_str()),
        (Some(200), Some("accepted")),
        "{report}"
    );
}

/// Bitbucket does not promise the order of its deliveries. A push applies only from the head it
/// moved: after B→C, a late A→B leaves the branch at C; after a delete, a late update or create
/// leaves it deleted. Neither needs a listing: the payloads' dates place them.
#[test]
fn late_pushes_never_undo_newer_ones() {
    let d = db();
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "p1",
        &push(json!(109), 1, None, Some('b')),
    ));
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "p3",
        &push(json!(109), 3, Some('b'), Some('c')),
    ));
    assert_eq!(main_branch(&d), (Some(hash('c')), false));
    // Late: A→B, sent at second 2.
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "p2",
        &push(json!(109), 2, Some('a'), Some('b')),
    ));
    assert_eq!(
        main_branch(&d),
        (Some(hash('c')), false),
        "B→C, then a late A→B"
    );
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "p4",
        &push(json!(109), 4, Some('c'), None),
    ));
    assert_eq!(main_branch(&d), (None, false));
    // Late: an update and a create sent before the delete.
    for (id, second, from, to) in [("p2b", 2, Some('a'), Some('b')), ("p0", 0, None, Some('a'))] {
        accepted(&deliver(
            &d,
            "repo:refs_changed",
            id,
            &push(json!(109), second, from, to),
        ));
        assert_eq!(main_branch(&d), (None, false), "deleted, then late {id}");
    }
    // A change that cannot be placed (from a head other than the stored one, and newer than
    // it) is not guessed: the repository is marked for a refs listing.
    let d = db();
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "q1",
        &push(json!(109), 1, None, Some('c')),
    ));
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "q2",
        &push(json!(109), 5, Some('x'), Some('y')),
    ));
    assert_eq!(main_branch(&d), (Some(hash('c')), true));
}

/// The stored id of a repository.
fn stored_id(d: &Db, slug: &str) -> Option<i64> {
    Connection::open(&d.path)
        .expect("the database")
        .query_row(
            "SELECT id FROM repos WHERE project_key = 'PLAT' AND slug = ?1",
            [slug],
            |r| r.get(0),
        )
        .ok()
}

/// Pull requests stored under `slug`.
fn pull_requests_under(d: &Db, slug: &str) -> i64 {
    Connection::open(&d.path)
        .expect("the database")
        .query_row(
            "SELECT COUNT(*) FROM pull_requests WHERE project_key = 'PLAT' AND repo_slug = ?1",
            [slug],
            |r| r.get(0),
        )
        .expect("a count")
}

/// A push whose repository id cannot be read (missing, null, negative, a string, a fraction)
/// keeps the stored id, so that a later rename, which finds the repository by its id, moves its
/// pull requests with it. On main the id became 0, and the rename left them behind.
#[test]
fn an_unreadable_repository_id_never_replaces_the_stored_one() {
    let d = db();
    accepted(&deliver(
        &d,
        "repo:refs_changed",
        "known",
        &push(json!(109), 1, None, Some('a')),
    ));
    let opened = json!({"eventKey": "pr:opened", "date": "2026-11-24T10:00:02+0000",
        "actor": user("alice"), "pullRequest": pr_json(7, 0, "OPEN", 1, 1)});
    accepted(&deliver(&d, "pr:opened", "pr-7", &opened));
    assert_eq!(stored_id(&d, "api"), Some(109));
    let mut missing = push(json!(0), 3, Some('a'), Some('b'));
    if let Some(r) = missing["repository"].as_object_mut() {
        r.remove("id");
    }
    let unreadable = [
        missing,
        push(Value::Null, 4, Some('b'), Some('c')),
        push(json!(-109), 5, Some('c'), Some('d')),
        push(json!("109"), 6, Some('d'), Some('e')),
        push(json!(109.5), 7, Some('e'), Some('f')),
    ];
    for (i, body) in unreadable.iter().enumerate() {
        // Deliberately off the reference's shape: delivered as raw bytes.
        let report = deliver_bytes(
            &d,
            "repo:refs_changed",
            &format!("odd-{i}"),
            body.to_string().into_bytes(),
        );
        accepted(&report);
        assert_eq!(
            stored_id(&d, "api"),
            Some(109),
            "{}: the stored id is kept",
            body["repository"]["id"]
        );
    }
    assert_eq!(
        main_branch(&d).0,
        Some(hash('f')),
        "the pushes themselves apply"
    );
    let mut renamed = repo("PLAT", "api-2", 109);
    renamed["name"] = json!("api-2");
    let modified = json!({"eventKey": "repo:modified", "date": "2026-11-24T10:00:09+0000",
        "actor": user("alice"), "old": repo("PLAT", "api", 109), "new": renamed});
    accepted(&deliver(&d, "repo:modified", "rename", &modified));
    assert_eq!(pull_requests_under(&d, "api"), 0, "nothing left behind");
    assert_eq!(
        pull_requests_under(&d, "api-2"),
        1,
        "the pull request moved"
    );
    assert_eq!(stored_id(&d, "api"), None, "no empty row at the old key");
    assert_eq!(stored_id(&d, "api-2"), Some(109));
}

/// A repository id past a Java long can never be stored: the delivery is answered 400 with the
/// reason, which Bitbucket does not retry, rather than 500, which it retries for ever.
#[test]
fn a_repository_id_out_of_range_is_answered_400_with_the_reason() {
    let d = db();
    for attempt in 0..2 {
        let body = push(json!(0), 1, None, Some('a'))
            .to_string()
            .replace(r#""id":0,"#, r#""id":9223372036854775808,"#);
        assert!(body.contains("9223372036854775808"));
        let report = deliver_bytes(&d, "repo:refs_changed", "huge", body.into_bytes());
        assert_eq!(
            (report["http_status"].as_u64(), report["error"].as_str()),
            (Some(400), Some("malformed_payload")),
            "attempt {attempt}: {report}"
        );
        assert!(
            report["message"]
                .as_str()
                .is_some_and(|m| m.contains("9223372036854775808 is beyond")),
            "{report}"
        );
    }
    assert_eq!(stored_id(&d, "api"), None, "nothing stored");
}
