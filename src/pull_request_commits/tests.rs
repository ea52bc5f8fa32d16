//! Native tests of `list-pull-request-commits` against the in-memory host. Every well-formed page
//! is held against the reference's description of `GET .../pull-requests/{id}/commits`.

use super::*;
use crate::fake::{FakeHost, conn, repo};
use serde_json::{Value, json};

const PATH: &str = "/bitbucket/rest/api/1.0/projects/PLAT/repos/api/pull-requests/7/commits";

fn commit(id: &str, parents: &[&str], message: &str) -> Value {
    json!({
        "id": id, "displayId": &id[..7],
        "author": {"name": "Ada", "emailAddress": "ada@example.com", "slug": "ada", "displayName": "Ada L", "type": "NORMAL"},
        "authorTimestamp": 1_700_000_000_000i64,
        "committer": {"name": "Ada", "emailAddress": "ada@example.com"},
        "committerTimestamp": 1_700_000_060_000i64,
        "message": message,
        "parents": parents.iter().map(|p| json!({"id": p, "displayId": &p[..7]})).collect::<Vec<_>>()
    })
}

fn page_body(values: Vec<Value>, start: u64, next: Option<u64>) -> Value {
    let mut body = json!({"size": values.len(), "limit": 2, "start": start, "isLastPage": next.is_none(), "values": values});
    if let Some(n) = next {
        body["nextPageStart"] = json!(n);
    }
    crate::reference::assert_response(
        "/rest/api/1.0/projects/PLAT/repos/api/pull-requests/7/commits",
        &body,
    );
    body
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccccccccccc";
const D: &str = "dddddddddddddddddddddddddddddddddddddddd";

#[test]
fn pages_of_a_pull_requests_commits_become_commit_records_without_their_message_bodies() {
    let host = FakeHost::new();
    host.json(
        PATH,
        &[("start", "0")],
        200,
        page_body(
            vec![
                commit(A, &[B, D], "Merge main\n\nSECRET-BODY-LINE"),
                commit(B, &[C], "Fix the thing"),
            ],
            0,
            Some(2),
        ),
    );
    host.json(
        PATH,
        &[("start", "2")],
        200,
        page_body(vec![commit(C, &[D], "First step")], 2, None),
    );
    let first = list_pull_request_commits(&host, &conn(2), &repo(), 7, None).expect("page 1");
    let summaries: Vec<(&str, &str, u32)> = first
        .items
        .iter()
        .map(|c| (c.id.as_str(), c.summary.as_str(), c.parent_count))
        .collect();
    assert_eq!(
        summaries,
        vec![(A, "Merge main", 2), (B, "Fix the thing", 1)]
    );
    assert_eq!(first.items[0].author.user_slug.as_deref(), Some("ada"));
    assert_eq!(
        first.items[0].author.email.as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(first.items[0].author_timestamp, Some(1_700_000_000_000));
    assert_eq!(first.items[0].repo, repo());
    let cursor = first.next.clone().expect("a second page");
    let second =
        list_pull_request_commits(&host, &conn(2), &repo(), 7, Some(&cursor)).expect("page 2");
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].id, C);
    assert!(second.next.is_none());
    let sent = host.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().all(|s| s.contains("/pull-requests/7/commits?")),
        "{sent:?}"
    );
    assert!(
        !format!("{first:?}{second:?}").contains("SECRET-BODY-LINE"),
        "a message body left the sandbox"
    );
}

#[test]
fn an_odd_commit_is_left_out_or_kept_but_never_fails_its_page() {
    // Deliberately not the reference's shapes: an item without an id, and fields nobody needs
    // in other shapes (a 5.x or proxy oddity) around a readable one.
    let host = FakeHost::new();
    host.json(
        PATH,
        &[],
        200,
        json!({"size": 3, "limit": 25, "start": 0, "isLastPage": true, "values": [
            {"displayId": "nothing", "message": "no id"},
            {"id": A, "author": "not an object", "authorTimestamp": "soon", "parents": {"id": B}, "message": ["x"]},
            commit(B, &[C], "Fine")
        ]}),
    );
    let page = list_pull_request_commits(&host, &conn(25), &repo(), 7, None).expect("the page");
    let ids: Vec<&str> = page.items.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec![A, B]);
    assert_eq!(page.unreadable.len(), 1);
    assert_eq!(page.unreadable[0].kind, HistoryKind::Commit);
    assert_eq!(page.items[1].summary, "Fine");
}

#[test]
fn a_pull_request_the_server_does_not_know_is_not_found_and_a_bad_repository_asks_nothing() {
    let host = FakeHost::new();
    host.json(
        PATH,
        &[],
        404,
        json!({"errors": [{"message": "Pull request 7 does not exist in PLAT/api.", "exceptionName": "com.atlassian.bitbucket.pull.NoSuchPullRequestException"}]}),
    );
    let err = list_pull_request_commits(&host, &conn(25), &repo(), 7, None).expect_err("404");
    assert!(matches!(err, ConnectorError::NotFound(_)), "{err:?}");
    let mut nameless = repo();
    nameless.slug.clear();
    let sent = host.sent().len();
    let err = list_pull_request_commits(&host, &conn(25), &nameless, 7, None).expect_err("no slug");
    assert!(matches!(err, ConnectorError::InvalidConfig(_)), "{err:?}");
    assert_eq!(
        host.sent().len(),
        sent,
        "no request for a repository without a slug"
    );
}
