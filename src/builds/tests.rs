//! `fetch-builds` over canned answers. Every well-formed body is held against the reference's
//! declared response for its path; the deliberately odd items are named as such.

use super::*;
use crate::fake::{FakeHost, conn, repo};
use crate::reference::assert_response;
use serde_json::{Value, json};

const C1: &str = "8f2b0c6b4a1e9d3f7c5b2a0e1d4c3b2a19087654";
const C2: &str = "1111111111111111111111111111111111111111";

fn path(commit: &str) -> String {
    format!("/bitbucket/rest/build-status/1.0/commits/{commit}")
}

/// Serves `body` for `commit`'s statuses after checking it against the reference.
fn serve(host: &FakeHost, commit: &str, body: Value) {
    assert_response(&format!("/rest/build-status/1.0/commits/{commit}"), &body);
    host.json(&path(commit), &[], 200, body);
}

fn page(values: Vec<Value>) -> Value {
    json!({"size": values.len(), "limit": 100, "start": 0, "isLastPage": true, "values": values})
}

/// A 9.2 status: every field the reference describes.
fn rich(key: &str, state: &str) -> Value {
    json!({
        "key": key, "state": state, "name": format!("{key} build"),
        "url": format!("https://ci.example/{key}"), "description": "nightly",
        "createdDate": 1_700_000_000_000i64, "updatedDate": 1_700_000_600_000i64,
        "duration": 600_000, "buildNumber": "42", "parent": "PLAN", "ref": "refs/heads/main",
        "testResults": {"successful": 120, "failed": 2, "skipped": 3}
    })
}

#[test]
fn every_field_of_a_rich_status_is_kept_and_an_old_servers_status_keeps_what_it_has() {
    let host = FakeHost::new();
    serve(
        &host,
        C1,
        page(vec![rich("CI-1", "SUCCESSFUL"), rich("CI-2", "INPROGRESS")]),
    );
    // A 5.x status: no duration, number, parent, ref or tests; `dateAdded` (not in the 9.2
    // reference, so this body is served unchecked).
    host.json(
        &path(C2),
        &[],
        200,
        page(vec![
            json!({"key": "OLD", "state": "FAILED", "name": "old", "url": "u", "dateAdded": 5}),
        ]),
    );
    let batch = fetch_builds(&host, &conn(25), &repo(), &[C1.into(), C2.into()]).expect("builds");
    assert_eq!(batch.requests, 2);
    assert_eq!(batch.builds.len(), 3);
    let b = &batch.builds[0];
    assert_eq!((b.commit_id.as_str(), b.key.as_str()), (C1, "CI-1"));
    assert_eq!(b.state, BuildState::Successful);
    assert_eq!(b.name.as_deref(), Some("CI-1 build"));
    assert_eq!(b.url.as_deref(), Some("https://ci.example/CI-1"));
    assert_eq!(
        (b.created_at, b.updated_at),
        (Some(1_700_000_000_000), Some(1_700_000_600_000))
    );
    assert_eq!(b.duration_ms, Some(600_000));
    assert_eq!(b.build_number.as_deref(), Some("42"));
    assert_eq!(b.parent.as_deref(), Some("PLAN"));
    assert_eq!(b.ref_id.as_deref(), Some("refs/heads/main"));
    assert_eq!(
        b.test_results,
        Some(TestResults {
            successful: 120,
            failed: 2,
            skipped: 3
        })
    );
    assert_eq!(batch.builds[1].state, BuildState::InProgress);
    let old = &batch.builds[2];
    assert_eq!(
        (old.commit_id.as_str(), old.state),
        (C2, BuildState::Failed)
    );
    assert_eq!(old.created_at, Some(5));
    assert_eq!((old.duration_ms, old.test_results), (None, None));
    let sent = host.sent();
    assert!(
        sent.iter()
            .all(|s| s.contains("/rest/build-status/1.0/commits/") && s.contains("limit=100")),
        "{sent:?}"
    );
}

#[test]
fn an_odd_status_is_kept_or_reported_and_never_fails_its_page() {
    let host = FakeHost::new();
    // Deliberately outside the reference: a state from a newer server, fields in other shapes,
    // a status without a key, and one key listed twice.
    host.json(
        &path(C1),
        &[],
        200,
        page(vec![
            json!({"key": "A", "state": "PAUSED", "duration": "long", "testResults": [1, 2],
                   "createdDate": "2026-08-19T17:27:55.266Z", "buildNumber": {"n": 1}}),
            json!({"state": "FAILED", "name": "no key"}),
            json!({"key": "", "state": "FAILED"}),
            json!({"key": "B"}),
            json!({"key": "A", "state": "FAILED"}),
        ]),
    );
    let batch = fetch_builds(&host, &conn(25), &repo(), &[C1.into()]).expect("builds");
    let keys: Vec<(&str, BuildState, Option<&str>)> = batch
        .builds
        .iter()
        .map(|b| (b.key.as_str(), b.state, b.state_other.as_deref()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("A", BuildState::Unknown, Some("PAUSED")),
            ("B", BuildState::Unknown, None)
        ]
    );
    let a = &batch.builds[0];
    assert_eq!(a.created_at, Some(1_787_160_475_266));
    assert_eq!(
        (a.duration_ms, a.build_number.clone(), a.test_results),
        (None, None, None)
    );
    assert_eq!(batch.unreadable.len(), 2);
    assert!(
        batch
            .unreadable
            .iter()
            .all(|u| u.kind == HistoryKind::Build)
    );
}

#[test]
fn a_commit_without_builds_has_none_and_more_pages_are_followed() {
    let host = FakeHost::new();
    serve(&host, C2, page(vec![]));
    let first = json!({"size": 1, "limit": 1, "start": 0, "isLastPage": false, "nextPageStart": 1,
                       "values": [rich("P1", "FAILED")]});
    let second = json!({"size": 1, "limit": 1, "start": 1, "isLastPage": true,
                        "values": [rich("P2", "CANCELLED")]});
    assert_response(&format!("/rest/build-status/1.0/commits/{C1}"), &first);
    assert_response(&format!("/rest/build-status/1.0/commits/{C1}"), &second);
    host.json(&path(C1), &[("start", "0")], 200, first);
    host.json(&path(C1), &[("start", "1")], 200, second);
    let batch = fetch_builds(&host, &conn(25), &repo(), &[C2.into(), C1.into()]).expect("builds");
    let keys: Vec<&str> = batch.builds.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(keys, vec!["P1", "P2"]);
    assert_eq!(batch.builds[1].state, BuildState::Cancelled);
    assert_eq!(batch.requests, 3);
}

#[test]
fn bad_arguments_are_refused_before_any_request() {
    let host = FakeHost::new();
    let too_many: Vec<String> = (0..=MAX_COMMITS_PER_CALL)
        .map(|i| format!("{i:040x}"))
        .collect();
    for commits in [
        too_many,
        vec!["abc".to_owned()],
        vec![format!("{}/..", &C1[..37])],
    ] {
        let err = fetch_builds(&host, &conn(25), &repo(), &commits).expect_err("refused");
        assert!(matches!(err, ConnectorError::InvalidConfig(_)), "{err:?}");
    }
    assert!(host.sent().is_empty());
    let none = fetch_builds(&host, &conn(25), &repo(), &[]).expect("nothing to do");
    assert_eq!((none.builds.len(), none.requests), (0, 0));
}

#[test]
fn a_commit_whose_answer_cannot_be_read_is_reported_and_the_others_are_kept() {
    let host = FakeHost::new();
    serve(&host, C1, page(vec![rich("OK", "SUCCESSFUL")]));
    host.on(
        &path(C2),
        &[],
        crate::fake::Canned::Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"values": [{"key": "#.to_vec(),
        },
    );
    let batch = fetch_builds(&host, &conn(25), &repo(), &[C2.into(), C1.into()]).expect("builds");
    assert_eq!(batch.builds.len(), 1);
    assert_eq!(batch.builds[0].commit_id, C1);
    assert_eq!(batch.failed.len(), 1);
    assert_eq!(batch.failed[0].commit_id, C2);
    assert!(matches!(
        batch.failed[0].error,
        crate::model::ContractError::MalformedResponse(_)
    ));
}

#[test]
fn a_server_error_fails_the_call_with_its_type() {
    let host = FakeHost::new();
    host.json(
        &path(C1),
        &[],
        401,
        json!({"errors": [{"message": "Authentication failed", "exceptionName": "com.atlassian.bitbucket.AuthorisationException"}]}),
    );
    let err = fetch_builds(&host, &conn(25), &repo(), &[C1.into()]).expect_err("fails");
    assert!(
        matches!(
            err,
            ConnectorError::InvalidCredentials(_) | ConnectorError::InvalidPermissions(_)
        ),
        "{err:?}"
    );
}

/// A commit whose status listing never ends (each page one more status, each saying more
/// follows) is stopped at the bound on one commit's statuses, far past the 100 a server keeps,
/// and reported as failed with the reason; the other commits of the call are kept.
#[test]
fn an_endless_status_listing_of_one_commit_is_stopped_at_its_bound() {
    let host = FakeHost::new();
    serve(&host, C2, page(vec![rich("ONE", "SUCCESSFUL")]));
    host.on_query(&path(C1), |pairs| {
        let start: u64 = pairs
            .iter()
            .find(|(k, _)| k == "start")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body = json!({"size": 1, "limit": 1, "start": start, "isLastPage": false,
                          "nextPageStart": start + 1, "values": [rich(&format!("K{start}"), "FAILED")]});
        crate::fake::Canned::Response {
            status: 200,
            headers: vec![],
            body: body.to_string().into_bytes(),
        }
    });
    let batch = fetch_builds(&host, &conn(25), &repo(), &[C1.into(), C2.into()]).expect("a batch");
    assert_eq!(batch.failed.len(), 1, "{:?}", batch.failed);
    assert_eq!(batch.failed[0].commit_id, C1);
    let why = batch.failed[0].error.to_string();
    assert!(why.contains("the listing was given up"), "{why}");
    assert!(
        host.sent().len() <= crate::paging::MAX_BUILDS_PER_COMMIT as usize + 1,
        "{} requests",
        host.sent().len()
    );
    let kept: Vec<&str> = batch
        .builds
        .iter()
        .filter(|b| b.commit_id == C2)
        .map(|b| b.key.as_str())
        .collect();
    assert_eq!(kept, vec!["ONE"]);
}
