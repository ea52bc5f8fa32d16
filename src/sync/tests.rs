//! Native tests of the sync pass against the in-memory host.

use super::*;
use crate::fake::{Canned, FakeHost, conn, repo};
use crate::host::HttpError;
use crate::model::{ContractError, PullRequest, ServerError, SkipStage};
use serde_json::{Value, json};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;
const REPO_PATH: &str = "/bitbucket/rest/api/1.0/projects/PLAT/repos/api/pull-requests";

/// A pull request list item; `updated` and `created` in hours after T0.
fn pr(id: u64, version: u32, created: i64, updated: i64) -> Value {
    json!({
        "id": id, "version": version, "title": format!("PR {id}"), "state": "OPEN", "open": true, "closed": false,
        "createdDate": T0 + created * HOUR, "updatedDate": T0 + updated * HOUR,
        "fromRef": {"id": "refs/heads/f", "displayId": "f", "latestCommit": format!("from{id}-{version}"), "repository": {"slug": "api", "project": {"key": "PLAT"}}},
        "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "main1", "repository": {"slug": "api", "project": {"key": "PLAT"}}},
        "author": {"user": {"name": "author", "slug": "author"}, "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
        "reviewers": [], "participants": [],
        "properties": {"commentCount": 0, "openTaskCount": 0, "resolvedTaskCount": 0},
        "links": {"self": [{"href": format!("https://bb.example/bitbucket/projects/PLAT/repos/api/pull-requests/{id}")}]}
    })
}

/// Serves `prs` (already in list order) in pages of `size`, replacing any earlier listing.
fn serve_list(host: &FakeHost, prs: &[Value], size: usize) {
    let pages: Vec<&[Value]> = if prs.is_empty() {
        vec![&[]]
    } else {
        prs.chunks(size).collect()
    };
    for (i, chunk) in pages.iter().enumerate() {
        let start = i * size;
        let next = start + chunk.len();
        let last = i + 1 == pages.len();
        let mut page = json!({"size": chunk.len(), "limit": size, "start": start, "isLastPage": last, "values": chunk});
        if !last {
            page["nextPageStart"] = json!(next);
        }
        host.json(REPO_PATH, &[("start", &start.to_string())], 200, page);
    }
    // A start past the end answers an empty last page (as after a shift).
    for extra in [pages.len() * size, pages.len() * size + size] {
        host.json(
            REPO_PATH,
            &[("start", &extra.to_string())],
            200,
            json!({"size": 0, "limit": size, "start": extra, "isLastPage": true, "values": []}),
        );
    }
}

fn serve_details(host: &FakeHost, id: u64) {
    host.json(
        &format!("{REPO_PATH}/{id}/activities"),
        &[],
        200,
        json!({"size": 2, "limit": 500, "start": 0, "isLastPage": true, "values": [
            {"id": id * 10 + 1, "createdDate": T0 + 2 * HOUR, "user": {"name": "ann", "slug": "ann"}, "action": "APPROVED"},
            {"id": id * 10, "createdDate": T0, "user": {"name": "author", "slug": "author"}, "action": "OPENED"}
        ]}),
    );
    host.json(
        &format!("{REPO_PATH}/{id}/diff"),
        &[],
        200,
        json!({"diffs": [{"hunks": [{"segments": [{"type": "ADDED", "lines": [{"line": "a"}, {"line": "b"}]}, {"type": "REMOVED", "lines": [{"line": "c"}]}]}]}], "truncated": false}),
    );
}

/// Runs a pass to its end the way a host does: persist each batch, then acknowledge it.
fn run_pass(
    host: &FakeHost,
    conn: &Connection,
    options: &SyncOptions,
) -> (Vec<PullRequest>, Vec<SkippedPullRequest>, usize) {
    let before = host.requests.borrow().len();
    let mut prs = Vec::new();
    let mut skipped = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let b =
            fetch_pull_requests(host, conn, &repo(), options, cursor.as_deref()).expect("batch");
        prs.extend(b.pull_requests);
        skipped.extend(b.skipped);
        match b.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (prs, skipped, host.requests.borrow().len() - before),
        }
    }
    panic!("pass did not end");
}

fn ids(prs: &[PullRequest]) -> Vec<u64> {
    let mut v: Vec<u64> = prs.iter().map(|p| p.id).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn setup(prs: &[Value], size: usize) -> FakeHost {
    let host = FakeHost::new();
    serve_list(&host, prs, size);
    for p in prs {
        serve_details(&host, p["id"].as_u64().unwrap());
    }
    host
}

#[test]
fn first_pass_fetches_everything_in_full_then_an_unchanged_pass_costs_one_request() {
    let list = [
        pr(4, 0, 4, 40),
        pr(3, 0, 3, 30),
        pr(2, 0, 2, 20),
        pr(1, 0, 1, 10),
    ];
    let host = setup(&list, 2);
    let (prs, skipped, _) = run_pass(&host, &conn(2), &SyncOptions::default());
    assert_eq!(ids(&prs), [1, 2, 3, 4]);
    assert!(skipped.is_empty());
    let p = prs.iter().find(|p| p.id == 4).unwrap();
    assert_eq!(
        p.diff,
        Some(DiffStats {
            additions: 2,
            deletions: 1,
            files_changed: 1,
            truncated: false
        })
    );
    assert_eq!(p.first_approval_at, Some(T0 + 2 * HOUR));
    assert_eq!(p.completeness, crate::model::PrCompleteness::Full);

    let (prs, _, requests) = run_pass(&host, &conn(2), &SyncOptions::default());
    assert!(prs.is_empty(), "nothing changed");
    assert_eq!(
        requests,
        1,
        "an unchanged repository costs one list request: {:?}",
        host.sent()
    );
}

#[test]
fn only_changed_pull_requests_get_details_and_the_diff_only_when_commits_moved() {
    let list = [pr(3, 0, 3, 30), pr(2, 0, 2, 20), pr(1, 0, 1, 10)];
    let host = setup(&list, 10);
    run_pass(&host, &conn(10), &SyncOptions::default());

    // An approval: reviewers change, version and commits do not.
    let mut approved = pr(2, 0, 2, 31);
    approved["reviewers"] = json!([{"user": {"name": "ann", "slug": "ann"}, "role": "REVIEWER", "approved": true, "status": "APPROVED"}]);
    serve_list(
        &host,
        &[approved.clone(), pr(3, 0, 3, 30), pr(1, 0, 1, 10)],
        10,
    );
    let mark = host.requests.borrow().len();
    let (prs, _, _) = run_pass(&host, &conn(10), &SyncOptions::default());
    assert_eq!(ids(&prs), [2]);
    let sent = host.sent()[mark..].to_vec();
    assert!(sent.iter().any(|s| s.contains("/2/activities")), "{sent:?}");
    assert!(
        !sent.iter().any(|s| s.contains("/diff")),
        "same commits: the diff is reused, not fetched: {sent:?}"
    );
    assert_eq!(
        prs[0].diff.map(|d| d.additions),
        Some(2),
        "reused diff statistics are still reported"
    );

    // New commits: the diff is fetched again.
    serve_list(&host, &[pr(3, 1, 3, 32), approved, pr(1, 0, 1, 10)], 10);
    let mark = host.requests.borrow().len();
    let (prs, _, _) = run_pass(&host, &conn(10), &SyncOptions::default());
    assert_eq!(ids(&prs), [3]);
    assert!(host.sent()[mark..].iter().any(|s| s.contains("/3/diff")));
}

#[test]
fn a_pull_request_updated_between_two_pages_is_picked_up() {
    let host = setup(
        &[
            pr(4, 0, 4, 40),
            pr(3, 0, 3, 30),
            pr(2, 0, 2, 20),
            pr(1, 0, 1, 10),
        ],
        2,
    );
    let c = conn(2);
    let opts = SyncOptions::default();
    let first = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap();
    assert_eq!(ids(&first.pull_requests), [3, 4]);
    // PR 1 is updated before the second page is read: it jumps to the front.
    serve_list(
        &host,
        &[
            pr(1, 1, 1, 50),
            pr(4, 0, 4, 40),
            pr(3, 0, 3, 30),
            pr(2, 0, 2, 20),
        ],
        2,
    );
    let mut all = first.pull_requests.clone();
    let mut cursor = first.next_cursor;
    while let Some(cur) = cursor {
        let b = fetch_pull_requests(&host, &c, &repo(), &opts, Some(&cur)).unwrap();
        all.extend(b.pull_requests);
        cursor = b.next_cursor;
    }
    assert!(
        !all.iter().any(|p| p.id == 1),
        "this pass listed before PR 1's update"
    );
    // The next pass finds it: the high-water mark was the newest update on the first page.
    let (prs, _, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), [1]);
    assert_eq!(prs[0].version, 1);
}

#[test]
fn an_unacknowledged_batch_is_redone_after_a_restart() {
    let list = [
        pr(4, 0, 4, 40),
        pr(3, 0, 3, 30),
        pr(2, 0, 2, 20),
        pr(1, 0, 1, 10),
    ];
    let host = setup(&list, 2);
    let c = conn(2);
    let opts = SyncOptions::default();
    let first = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap();
    assert_eq!(ids(&first.pull_requests), [3, 4]);
    assert!(
        host.storage.borrow().keys().all(|k| !k.starts_with("pr/")),
        "nothing is remembered before the host acknowledges"
    );
    // The host died before persisting: it starts again without the cursor.
    let (prs, _, _) = run_pass(&host, &c, &opts);
    assert_eq!(
        ids(&prs),
        [1, 2, 3, 4],
        "the lost batch is delivered again, nothing is lost"
    );
}

#[test]
fn an_acknowledged_pass_resumes_where_it_stopped() {
    let list = [
        pr(4, 0, 4, 40),
        pr(3, 0, 3, 30),
        pr(2, 0, 2, 20),
        pr(1, 0, 1, 10),
    ];
    let host = setup(&list, 2);
    let c = conn(2);
    let opts = SyncOptions::default();
    let first = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap();
    let cursor = first.next_cursor.unwrap();
    // The host persisted batch 1 and acknowledged it, then died during the next call.
    let second = fetch_pull_requests(&host, &c, &repo(), &opts, Some(&cursor)).unwrap();
    assert_eq!(ids(&second.pull_requests), [1, 2]);
    // Restart without a cursor: batch 1 is not fetched again, batch 2 (unacknowledged) is.
    let (prs, _, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), [1, 2]);
    let (prs, _, requests) = run_pass(&host, &c, &opts);
    assert!(prs.is_empty());
    assert_eq!(requests, 1);
}

#[test]
fn a_repeated_call_with_the_same_cursor_is_harmless() {
    let host = setup(&[pr(4, 0, 4, 40), pr(3, 0, 3, 30), pr(2, 0, 2, 20)], 2);
    let c = conn(2);
    let opts = SyncOptions::default();
    let first = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap();
    let cur = first.next_cursor.unwrap();
    let a = fetch_pull_requests(&host, &c, &repo(), &opts, Some(&cur)).unwrap();
    let b = fetch_pull_requests(&host, &c, &repo(), &opts, Some(&cur)).unwrap();
    assert_eq!(ids(&a.pull_requests), ids(&b.pull_requests));
    assert_eq!(a.next_cursor, b.next_cursor);
    let e = fetch_pull_requests(&host, &c, &repo(), &opts, Some("99.1")).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    let e = fetch_pull_requests(&host, &c, &repo(), &opts, Some("garbage")).unwrap_err();
    assert_eq!(e.code(), "invalid_config");
}

#[test]
fn a_server_listing_by_creation_is_detected_and_nothing_is_missed() {
    // Listed by creation (newest created first), not by update.
    let host = setup(
        &[
            pr(6, 0, 6, 6),
            pr(5, 0, 5, 5),
            pr(4, 0, 4, 4),
            pr(3, 0, 3, 3),
            pr(2, 0, 2, 2),
            pr(1, 0, 1, 1),
        ],
        2,
    );
    let c = conn(2);
    let opts = SyncOptions::default();
    run_pass(&host, &c, &opts);
    // PR 5 and PR 1 are updated, but keep their places.
    serve_list(
        &host,
        &[
            pr(6, 0, 6, 6),
            pr(5, 1, 5, 10),
            pr(4, 0, 4, 4),
            pr(3, 0, 3, 3),
            pr(2, 0, 2, 2),
            pr(1, 1, 1, 11),
        ],
        2,
    );
    let (prs, _, _) = run_pass(&host, &c, &opts);
    assert_eq!(
        ids(&prs),
        [1, 5],
        "the out-of-order page disables early stopping"
    );
    let (state, _) = load_state(&host, &state_key(&repo()));
    assert!(state.order_untrusted, "later passes list everything");
}

#[test]
fn a_full_listing_reconciles_what_early_stopping_cannot_see() {
    let host = setup(
        &[
            pr(4, 0, 4, 4),
            pr(3, 0, 3, 3),
            pr(2, 0, 2, 2),
            pr(1, 0, 1, 1),
        ],
        2,
    );
    let c = conn(2);
    run_pass(&host, &c, &SyncOptions::default());
    // A server sorting by creation, and an update deep in the list that no read page reveals.
    serve_list(
        &host,
        &[
            pr(4, 0, 4, 4),
            pr(3, 0, 3, 3),
            pr(2, 0, 2, 2),
            pr(1, 1, 1, 9),
        ],
        2,
    );
    let (prs, _, _) = run_pass(&host, &c, &SyncOptions::default());
    assert!(
        prs.is_empty(),
        "an incremental pass stops at the high-water mark"
    );
    let (prs, _, _) = run_pass(
        &host,
        &c,
        &SyncOptions {
            since: None,
            full_listing: true,
        },
    );
    assert_eq!(ids(&prs), [1]);
}

#[test]
fn a_pull_request_whose_diff_fails_is_skipped_then_retried() {
    let host = setup(&[pr(3, 0, 3, 30), pr(2, 0, 2, 20), pr(1, 0, 1, 10)], 10);
    host.json(&format!("{REPO_PATH}/2/diff"), &[], 500, json!({"errors": [{"message": "git diff failed", "exceptionName": "com.atlassian.bitbucket.scm.CommandFailedException"}]}));
    let c = conn(10);
    let (prs, skipped, _) = run_pass(&host, &c, &SyncOptions::default());
    assert_eq!(ids(&prs), [1, 3], "the rest of the repository is intact");
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].id, skipped[0].stage), (2, SkipStage::Diff));
    assert!(
        matches!(
            &skipped[0].error,
            ContractError::Server(ServerError { status: 500, message })
                if message.contains("git diff failed")
        ),
        "{:?}",
        skipped[0].error
    );
    // The server recovers: the next pass retries PR 2 even though nothing about it changed.
    serve_details(&host, 2);
    host.json(&format!("{REPO_PATH}/2"), &[], 200, pr(2, 0, 2, 20));
    let (prs, skipped, _) = run_pass(&host, &c, &SyncOptions::default());
    assert_eq!(ids(&prs), [2]);
    assert!(skipped.is_empty());
    let (prs, _, requests) = run_pass(&host, &c, &SyncOptions::default());
    assert!(prs.is_empty());
    assert_eq!(requests, 1);
}

#[test]
fn since_limits_the_pass() {
    let host = setup(&[pr(3, 0, 3, 30), pr(2, 0, 2, 20), pr(1, 0, 1, 10)], 1);
    let opts = SyncOptions {
        since: Some(T0 + 15 * HOUR),
        full_listing: false,
    };
    let (prs, _, _) = run_pass(&host, &conn(1), &opts);
    assert_eq!(ids(&prs), [2, 3]);
    // Page 3 (start=2) holds the first older PR; the listing stops there.
    assert!(host.sent().iter().any(|s| s.contains("start=2&")));
    assert!(
        !host.sent().iter().any(|s| s.contains("start=3&")),
        "listing stops at the first older PR: {:?}",
        host.sent()
    );
}

#[test]
fn a_page_with_more_changes_than_one_call_takes_is_split_across_calls() {
    let list: Vec<Value> = (1..=25)
        .rev()
        .map(|i| pr(i, 0, i as i64, i as i64))
        .collect();
    let host = setup(&list, 100);
    let c = conn(100);
    let opts = SyncOptions::default();
    let first = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap();
    assert_eq!(first.pull_requests.len(), DETAIL_BUDGET);
    let cur = first.next_cursor.unwrap();
    let second = fetch_pull_requests(&host, &c, &repo(), &opts, Some(&cur)).unwrap();
    assert_eq!(second.pull_requests.len(), 25 - DETAIL_BUDGET);
    let mut all = first.pull_requests;
    all.extend(second.pull_requests);
    assert_eq!(ids(&all), (1..=25).collect::<Vec<_>>());
}

#[test]
fn unreadable_state_starts_afresh() {
    let host = setup(&[pr(1, 0, 1, 10)], 10);
    host.storage
        .borrow_mut()
        .insert(state_key(&repo()), b"{not json".to_vec());
    let (prs, _, _) = run_pass(&host, &conn(10), &SyncOptions::default());
    assert_eq!(ids(&prs), [1]);
}

#[test]
fn list_failure_is_an_error_and_changes_nothing() {
    let host = FakeHost::new();
    host.on(REPO_PATH, &[], Canned::Response { status: 404, headers: vec![], body: br#"{"errors":[{"message":"Repository PLAT/api does not exist.","exceptionName":"com.atlassian.bitbucket.repository.NoSuchRepositoryException"}]}"#.to_vec() });
    let e =
        fetch_pull_requests(&host, &conn(10), &repo(), &SyncOptions::default(), None).unwrap_err();
    assert_eq!(e.code(), "not_found");
}

fn ok(body: Value) -> Canned {
    Canned::Response {
        status: 200,
        headers: vec![],
        body: body.to_string().into_bytes(),
    }
}

/// Serves the pull-request list from `page(start)`, for listings no fixed table can hold.
fn serve_pages(host: &FakeHost, page: impl Fn(u64) -> Value + 'static) {
    host.on_query(REPO_PATH, move |pairs| {
        let start = pairs
            .iter()
            .find(|(k, _)| k == "start")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        ok(page(start))
    });
}

/// Diff requests of pull request `id` sent since request number `mark`.
fn diff_requests(host: &FakeHost, mark: usize, id: u64) -> usize {
    host.sent()[mark..]
        .iter()
        .filter(|s| s.starts_with(&format!("{REPO_PATH}/{id}/diff")))
        .count()
}

/// Answers `GET .../pull-requests/{id}` with the pull request `newest_first` lists.
fn serve_single(host: &FakeHost, id: u64) {
    host.json(
        &format!("{REPO_PATH}/{id}"),
        &[],
        200,
        pr(id, 0, id as i64, id as i64),
    );
}

/// Pull requests 1 to `n`, listed newest (highest id, latest update) first.
fn newest_first(n: u64) -> Vec<Value> {
    (1..=n)
        .rev()
        .map(|i| pr(i, 0, i as i64, i as i64))
        .collect()
}

fn mark(host: &FakeHost) -> usize {
    host.requests.borrow().len()
}

#[test]
fn every_failing_pull_request_is_retried_every_pass_however_many_there_are() {
    let budget = DETAIL_BUDGET as u64;
    let n = 3 * budget + 5;
    let list = newest_first(n);
    let host = setup(&list, 100);
    for id in 1..=n {
        host.json(
            &format!("{REPO_PATH}/{id}/diff"),
            &[],
            500,
            json!({"errors": [{"message": "git diff failed"}]}),
        );
        serve_single(&host, id);
    }
    let c = conn(100);
    let opts = SyncOptions::default();
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert!(prs.is_empty());
    assert_eq!(skipped.len() as u64, n);

    // All but the lowest ids heal; those stay broken. A retry step that starts from the lowest
    // ids and stops at the budget would try only them, pass after pass, and never the others
    // (which the listing leaves to the retry step).
    for id in budget + 1..=n {
        serve_details(&host, id);
    }
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), (budget + 1..=n).collect::<Vec<_>>());
    let mut tried: Vec<u64> = skipped.iter().map(|s| s.id).collect();
    tried.sort_unstable();
    assert_eq!(
        tried,
        (1..=budget).collect::<Vec<_>>(),
        "the ones still broken were tried again too, once each"
    );

    // Then they heal too: the next pass delivers them, and nothing is left to retry.
    for id in 1..=budget {
        serve_details(&host, id);
    }
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), (1..=budget).collect::<Vec<_>>());
    assert!(skipped.is_empty());
    let (state, _) = load_state(&host, &state_key(&repo()));
    assert!(state.retry.is_empty());
    let (prs, _, requests) = run_pass(&host, &c, &opts);
    assert!(prs.is_empty());
    assert_eq!(requests, 1);
}

#[test]
fn a_retry_step_larger_than_a_call_resumes_where_it_stopped() {
    let budget = DETAIL_BUDGET as u64;
    let n = 2 * budget + 1;
    let list = newest_first(n);
    let host = setup(&list, 100);
    for id in 1..=n {
        host.json(&format!("{REPO_PATH}/{id}/activities"), &[], 500, json!({}));
        serve_single(&host, id);
    }
    let c = conn(100);
    let opts = SyncOptions::default();
    run_pass(&host, &c, &opts);
    // Each call of the next pass retries the next DETAIL_BUDGET ids, and lists nothing until
    // the retry step is over.
    let mut cursor: Option<String> = None;
    let mut per_call = Vec::new();
    loop {
        let before = mark(&host);
        let b = fetch_pull_requests(&host, &c, &repo(), &opts, cursor.as_deref()).unwrap();
        let retried: Vec<u64> = b.skipped.iter().map(|s| s.id).collect();
        let listed = host.sent()[before..]
            .iter()
            .any(|s| s.starts_with(&format!("{REPO_PATH}?")));
        per_call.push((retried, listed));
        match b.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let first: Vec<u64> = (1..=budget).collect();
    let second: Vec<u64> = (budget + 1..=2 * budget).collect();
    assert_eq!(per_call[0], (first, false));
    assert_eq!(per_call[1], (second, false));
    assert_eq!(per_call[2], (vec![n], true));
}

/// A diff the host refuses for its size midway, as `send-streaming` does at its cap.
fn too_large_diff(host: &FakeHost, id: u64) {
    host.on(
        &format!("{REPO_PATH}/{id}/diff"),
        &[],
        Canned::CutBody {
            status: 200,
            body: br#"{"diffs":[{"hunks":[{"segments":[{"type":"ADDED","lines":["#.to_vec(),
            error: HttpError::TooLarge(1 << 30),
        },
    );
}

#[test]
fn a_diff_too_large_for_the_host_is_asked_for_once_per_commit_pair() {
    let host = setup(&[pr(2, 0, 2, 20), pr(1, 0, 1, 10)], 10);
    too_large_diff(&host, 2);
    let c = conn(10);
    let opts = SyncOptions::default();
    let at = mark(&host);
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(ids(&prs), [1, 2]);
    let big = prs.iter().find(|p| p.id == 2).unwrap();
    assert_eq!(
        (big.diff, big.completeness),
        (None, crate::model::PrCompleteness::Full),
        "delivered in full, without diff statistics"
    );
    assert_eq!(big.first_approval_at, Some(T0 + 2 * HOUR));
    assert_eq!(diff_requests(&host, at, 2), 1, "once, not once per attempt");
    let memo = load_memo(&host, &repo(), 2).unwrap();
    assert_eq!((memo.diff, memo.diff_too_large), (None, Some(1 << 30)));

    // Unchanged: one list request, no diff.
    let (prs, _, requests) = run_pass(&host, &c, &opts);
    assert!(prs.is_empty());
    assert_eq!(requests, 1);

    // An approval (same commits) whose activities fail: skipped, still no diff request.
    let mut approved = pr(2, 0, 2, 30);
    approved["reviewers"] = json!([{"user": {"name": "ann", "slug": "ann"}, "role": "REVIEWER", "approved": true, "status": "APPROVED"}]);
    serve_list(&host, &[approved.clone(), pr(1, 0, 1, 10)], 10);
    host.json(&format!("{REPO_PATH}/2/activities"), &[], 500, json!({}));
    let at = mark(&host);
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert!(prs.is_empty());
    assert_eq!(
        (skipped[0].id, skipped[0].stage),
        (2, SkipStage::Activities)
    );
    // The activities heal: the retry delivers it, and does not ask for the diff either.
    serve_details(&host, 2);
    too_large_diff(&host, 2);
    host.json(&format!("{REPO_PATH}/2"), &[], 200, approved);
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(ids(&prs), [2]);
    assert_eq!(prs[0].diff, None);
    assert_eq!(diff_requests(&host, at, 2), 0, "{:?}", &host.sent()[at..]);

    // A webhook refresh of the same commits does not download it again either.
    let at = mark(&host);
    let refreshed = crate::pull_request::fetch_pull_request(&host, &c, &repo(), 2).unwrap();
    assert_eq!(refreshed.diff, None);
    assert_eq!(diff_requests(&host, at, 2), 0);

    // New commits: the diff is asked for again, and counted now that it fits.
    serve_details(&host, 2);
    serve_list(&host, &[pr(2, 1, 2, 40), pr(1, 0, 1, 10)], 10);
    let at = mark(&host);
    let (prs, _, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), [2]);
    assert_eq!(diff_requests(&host, at, 2), 1);
    assert_eq!(prs[0].diff.map(|d| d.additions), Some(2));
    let memo = load_memo(&host, &repo(), 2).unwrap();
    assert_eq!(memo.diff_too_large, None);
}

#[test]
fn a_diff_the_host_refuses_before_reading_is_too_large_as_well() {
    let host = setup(&[pr(1, 0, 1, 10)], 10);
    host.on(
        &format!("{REPO_PATH}/1/diff"),
        &[],
        Canned::Error(HttpError::TooLarge(5)),
    );
    let at = mark(&host);
    let (prs, skipped, _) = run_pass(&host, &conn(10), &SyncOptions::default());
    assert!(skipped.is_empty());
    assert_eq!(prs[0].diff, None);
    assert_eq!(diff_requests(&host, at, 1), 1);
    assert_eq!(
        load_memo(&host, &repo(), 1).unwrap().diff_too_large,
        Some(5)
    );
    // Without a memo (a refresh before any sync), one download finds out.
    let host = setup(&[pr(1, 0, 1, 10)], 10);
    host.json(&format!("{REPO_PATH}/1"), &[], 200, pr(1, 0, 1, 10));
    too_large_diff(&host, 1);
    let pr1 = crate::pull_request::fetch_pull_request(&host, &conn(10), &repo(), 1).unwrap();
    assert_eq!(pr1.diff, None);
    assert_eq!(diff_requests(&host, 0, 1), 1);
}

#[test]
fn a_pass_over_empty_pages_that_say_more_ends_with_an_error_within_three_calls() {
    let host = FakeHost::new();
    // Past start 1,000 the listing ends, so a pass without the bound ends instead of hanging.
    serve_pages(&host, |start| {
        if start > 1000 {
            json!({"isLastPage": true, "values": []})
        } else {
            json!({"isLastPage": false, "values": [], "nextPageStart": start + 10})
        }
    });
    let c = conn(10);
    let opts = SyncOptions::default();
    let mut cursor: Option<String> = None;
    let mut calls = 0;
    let err = loop {
        calls += 1;
        match fetch_pull_requests(&host, &c, &repo(), &opts, cursor.as_deref()) {
            Ok(b) => cursor = Some(b.next_cursor.expect("the pass ended on empty pages")),
            Err(e) => break e,
        }
    };
    assert_eq!(calls, 3);
    assert_eq!(err.code(), "malformed_response");
    assert!(
        err.to_string()
            .contains("GET /projects/PLAT/repos/api/pull-requests: 3 empty pages in a row"),
        "{err}"
    );
    // It keeps failing while the server does...
    let again = fetch_pull_requests(&host, &c, &repo(), &opts, cursor.as_deref()).unwrap_err();
    assert_eq!(again, err);
    // ...and nothing was committed by the failing calls: once the server recovers, the pass
    // goes on from the page where it stood.
    serve_pages(&host, |start| {
        let values = if start == 20 {
            vec![pr(1, 0, 1, 10)]
        } else {
            vec![]
        };
        json!({"isLastPage": true, "values": values})
    });
    serve_details(&host, 1);
    let b = fetch_pull_requests(&host, &c, &repo(), &opts, cursor.as_deref()).unwrap();
    assert_eq!(ids(&b.pull_requests), [1]);
}

#[test]
fn a_pass_whose_listing_never_ends_fails_at_the_page_bound() {
    let host = FakeHost::new();
    // Every page holds one item that cannot be identified (nothing to fetch) and says more
    // follows; far past the bound the listing ends, so a pass without it ends too.
    serve_pages(&host, |start| {
        if start > 10_000_000 {
            json!({"isLastPage": true, "values": []})
        } else {
            json!({"isLastPage": false, "values": [{"title": "no id"}], "nextPageStart": start + 1})
        }
    });
    // A pass that has read all but two pages of the bound.
    let mut state = RepoState::default();
    let mut pass = new_pass(&mut state, &SyncOptions::default(), now_ms());
    pass.progress.listed.pages = crate::paging::MAX_LISTING_PAGES - 2;
    pass.progress.next_start = Some(500);
    pass.progress.retries_done = true;
    state.pass = Some(pass);
    host.storage_set(&state_key(&repo()), &serde_json::to_vec(&state).unwrap());
    let c = conn(10);
    let opts = SyncOptions::default();
    let first = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap();
    assert_eq!(first.unreadable.len(), 1);
    let cursor = first.next_cursor.unwrap();
    let e = fetch_pull_requests(&host, &c, &repo(), &opts, Some(&cursor)).unwrap_err();
    assert_eq!(e.code(), "malformed_response");
    assert!(
        e.to_string().contains(&format!(
            "pull-requests: the listing goes on past {} pages",
            crate::paging::MAX_LISTING_PAGES
        )),
        "{e}"
    );
}

#[test]
fn a_dot_slug_is_refused_before_any_request() {
    let host = FakeHost::new();
    for (key, slug) in [("PLAT", ".."), ("PLAT", "."), ("..", "api")] {
        let r = RepoRef {
            project_key: key.into(),
            slug: slug.into(),
        };
        let e =
            fetch_pull_requests(&host, &conn(10), &r, &SyncOptions::default(), None).unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{key}/{slug}");
        let e = crate::pull_request::fetch_pull_request(&host, &conn(10), &r, 1).unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{key}/{slug}");
    }
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn extreme_timestamps_and_counters_neither_panic_nor_wrap() {
    let mut newest = pr(2, 0, 0, 0);
    newest["updatedDate"] = json!(i64::MAX);
    newest["createdDate"] = json!(i64::MAX);
    let mut oldest = pr(1, 0, 0, 0);
    oldest["updatedDate"] = json!(i64::MIN);
    oldest["createdDate"] = json!(i64::MIN);
    let host = setup(&[newest, oldest], 10);
    let c = conn(10);
    let opts = SyncOptions::default();
    let (prs, _, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), [1, 2]);
    let (state, _) = load_state(&host, &state_key(&repo()));
    assert_eq!(state.high_water, Some(i64::MAX));
    // The next pass stops below i64::MAX less the margin, without overflowing.
    let (prs, _, requests) = run_pass(&host, &c, &opts);
    assert!(prs.is_empty());
    assert_eq!(requests, 1);

    // A pass counter at its end saturates: the pass still runs.
    let (mut state, _) = load_state(&host, &state_key(&repo()));
    state.pass_seq = u64::MAX;
    host.storage_set(&state_key(&repo()), &serde_json::to_vec(&state).unwrap());
    run_pass(&host, &c, &opts);
    // A pass at its last batch number fails with a storage error instead of wrapping.
    let (mut state, _) = load_state(&host, &state_key(&repo()));
    let mut pass = new_pass(&mut state, &opts, now_ms());
    pass.acked = u32::MAX;
    state.pass = Some(pass);
    host.storage_set(&state_key(&repo()), &serde_json::to_vec(&state).unwrap());
    let e = fetch_pull_requests(&host, &c, &repo(), &opts, None).unwrap_err();
    assert_eq!(e.code(), "storage");
}

#[test]
fn a_request_the_host_denies_is_sent_once_and_never_rotated_into_the_next_pass() {
    let host = setup(&[pr(3, 0, 3, 30), pr(2, 0, 2, 20), pr(1, 0, 1, 10)], 10);
    host.on(
        &format!("{REPO_PATH}/2/activities"),
        &[],
        Canned::Error(HttpError::Denied("policy".into())),
    );
    serve_single(&host, 2);
    let c = conn(10);
    let opts = SyncOptions::default();
    let (prs, skipped, _) = run_pass(&host, &c, &opts);
    assert_eq!(ids(&prs), [1, 3], "the rest of the repository is intact");
    assert_eq!(
        skipped
            .iter()
            .map(|s| (s.id, s.stage, s.error.clone()))
            .collect::<Vec<_>>(),
        [(
            2,
            SkipStage::Activities,
            ContractError::Denied(
                "GET /projects/PLAT/repos/api/pull-requests/2/activities: policy".into()
            )
        )]
    );
    let activities = |host: &FakeHost| {
        host.sent()
            .iter()
            .filter(|s| s.starts_with(&format!("{REPO_PATH}/2/activities")))
            .count()
    };
    assert_eq!(activities(&host), 1, "sent once, not repeated");
    let (state, _) = load_state(&host, &state_key(&repo()));
    assert!(state.retry.is_empty(), "a final failure is not rotated");
}

#[test]
fn a_fingerprint_is_written_out_field_by_field_so_every_build_computes_the_same() {
    let wire: crate::wire::WirePullRequest = serde_json::from_value(serde_json::json!({
        "id": 7, "version": 3, "state": "OPEN", "updatedDate": 1_700_000_000_000_i64,
        "fromRef": {"id": "refs/heads/f", "latestCommit": "abc"},
        "toRef": {"id": "refs/heads/main", "latestCommit": "def"},
        "reviewers": [{"user": {"name": "bob", "slug": "bob"}, "role": "REVIEWER",
                       "status": "APPROVED", "approved": true, "lastReviewedCommit": "abc"}],
        "properties": {"commentCount": 2}
    }))
    .unwrap();
    // Computed independently (Python's hashlib over the documented encoding: `-` or `+value`,
    // then NUL, per field), so a change of encoding, or a return to `Debug`, fails here.
    assert_eq!(fingerprint(&wire), "200d01270fa3103d5a089c862d73d46b");
    let mut approved_later = wire.clone();
    approved_later.reviewers[0].approved = Some(false);
    assert_ne!(fingerprint(&approved_later), fingerprint(&wire));
}

/// A pull-request listing served as Bitbucket serves it: from the request's `start`, as many
/// items as its `limit` asks for (at most `cap`, the server's own page cap, which it answers
/// with), and `nextPageStart` after them. The items can be replaced between calls; the size of
/// every list body served is recorded.
struct Listing {
    items: std::rc::Rc<std::cell::RefCell<Vec<Value>>>,
    bodies: std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
}

fn serve_window(host: &FakeHost, items: Vec<Value>, cap: usize) -> Listing {
    let listing = Listing {
        items: std::rc::Rc::new(std::cell::RefCell::new(items)),
        bodies: std::rc::Rc::default(),
    };
    let (items, bodies) = (listing.items.clone(), listing.bodies.clone());
    host.on_query(REPO_PATH, move |pairs| {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.parse::<usize>().ok())
        };
        let start = get("start").unwrap_or(0);
        let limit = get("limit").unwrap_or(25).clamp(1, cap);
        let all = items.borrow();
        let chunk: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
        let end = start + chunk.len();
        let last = end >= all.len();
        let mut page = json!({"size": chunk.len(), "limit": limit, "start": start, "isLastPage": last, "values": chunk});
        if !last {
            page["nextPageStart"] = json!(end);
        }
        let body = page.to_string().into_bytes();
        bodies.borrow_mut().push(body.len());
        ok_bytes(body)
    });
    listing
}

fn ok_bytes(body: Vec<u8>) -> Canned {
    Canned::Response {
        status: 200,
        headers: vec![],
        body,
    }
}

/// `(start, limit)` of every pull-request list request sent since request number `from`.
fn list_pages(host: &FakeHost, from: usize) -> Vec<(u64, u32)> {
    host.requests.borrow()[from..]
        .iter()
        .filter_map(|r| {
            let u = url::Url::parse(&r.url).ok()?;
            if u.path() != REPO_PATH {
                return None;
            }
            let get = |k: &str| {
                u.query_pairs()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
            };
            Some((get("start")?.parse().ok()?, get("limit")?.parse().ok()?))
        })
        .collect()
}

/// The connection with no page size of its own: the connector's default.
fn default_conn() -> Connection {
    Connection {
        base_url: "https://bb.example/bitbucket".into(),
        page_size: None,
    }
}

/// Pull requests 1 to `n`, newest first, of which the newest `changed` were updated (a new
/// version and commit) after every earlier pass, in the same order.
fn with_changes(n: u64, changed: u64) -> Vec<Value> {
    (1..=n)
        .rev()
        .map(|i| {
            if i > n - changed {
                pr(i, 1, i as i64, 10_000 + i as i64)
            } else {
                pr(i, 0, i as i64, i as i64)
            }
        })
        .collect()
}

/// A host serving `n` pull requests (details included) under a page cap of `cap`, after one
/// completed pass (a full listing, the repository's first).
fn synced(n: u64, cap: usize) -> (FakeHost, Listing) {
    let host = FakeHost::new();
    let listing = serve_window(&host, newest_first(n), cap);
    for id in 1..=n {
        serve_details(&host, id);
    }
    let (prs, _, _) = run_pass(&host, &default_conn(), &SyncOptions::default());
    assert_eq!(prs.len() as u64, n);
    (host, listing)
}

/// Runs a pass to its end like [`run_pass`], returning every pull request delivered, in
/// delivery order and with repeats.
fn run_pass_all(host: &FakeHost, conn: &Connection) -> Vec<u64> {
    let (prs, skipped, _) = run_pass(host, conn, &SyncOptions::default());
    assert!(skipped.is_empty(), "{skipped:?}");
    prs.iter().map(|p| p.id).collect()
}

#[test]
fn an_unchanged_repository_with_many_pull_requests_costs_one_small_request() {
    let host = FakeHost::new();
    let listing = serve_window(&host, newest_first(1000), 1000);
    for id in 1..=1000 {
        serve_details(&host, id);
    }
    let c = default_conn();
    let (prs, _, _) = run_pass(&host, &c, &SyncOptions::default());
    assert_eq!(prs.len(), 1000);
    let first = list_pages(&host, 0);
    assert!(
        first
            .iter()
            .all(|&(start, limit)| start == 0 && limit == crate::paging::DEFAULT_PAGE_SIZE),
        "the first pass is a full listing, in pages of the connection's size: {first:?}"
    );

    let at = mark(&host);
    let served = listing.bodies.borrow().len();
    let (prs, _, requests) = run_pass(&host, &c, &SyncOptions::default());
    assert!(prs.is_empty());
    assert_eq!(requests, 1, "{:?}", &host.sent()[at..]);
    assert_eq!(list_pages(&host, at), [(0, FIRST_INCREMENTAL_PAGE)]);
    let body = listing.bodies.borrow()[served..].to_vec();
    assert_eq!(body.len(), 1);
    assert!(
        body[0] <= 32 * 1024,
        "an unchanged repository's page is small: {} bytes",
        body[0]
    );
}

#[test]
fn a_change_deeper_than_the_first_page_grows_the_page() {
    let (host, listing) = synced(300, 1000);
    // The newest 75 changed; the rest did not.
    *listing.items.borrow_mut() = with_changes(300, 75);
    let at = mark(&host);
    let delivered = run_pass_all(&host, &default_conn());
    assert_eq!(delivered.len(), 75);
    // The page after a page of changes only is twice as large: 10, 20, 40 changed ones. A page
    // with more than DETAIL_BUDGET (20) of them takes two calls, reading the same page with the
    // same limit. The fourth page holds the first unchanged one, below the high-water mark, and
    // the pass stops there.
    assert_eq!(
        list_pages(&host, at),
        [(0, 10), (10, 20), (30, 40), (30, 40), (70, 80)]
    );
}

#[test]
fn a_page_with_unchanged_pull_requests_above_the_mark_does_not_grow() {
    // The newest 30 pull requests were all updated at the same moment (a bulk change): every
    // later pass finds them above the high-water mark less its margin.
    let bulk = |list: &mut Vec<Value>| {
        for item in list.iter_mut().filter(|p| p["id"].as_u64() > Some(270)) {
            item["updatedDate"] = json!(T0 + 300 * HOUR);
        }
    };
    let host = FakeHost::new();
    let mut list = newest_first(300);
    bulk(&mut list);
    let listing = serve_window(&host, list, 1000);
    for id in 1..=300 {
        serve_details(&host, id);
    }
    let c = default_conn();
    run_pass(&host, &c, &SyncOptions::default());
    // Then five more change: the first page holds them and 5 of the unchanged bulk.
    let mut list: Vec<Value> = (296..=300)
        .rev()
        .map(|i| pr(i, 1, i as i64, 10_000 + i as i64))
        .collect();
    let mut rest = newest_first(295);
    bulk(&mut rest);
    list.extend(rest);
    *listing.items.borrow_mut() = list;
    let at = mark(&host);
    let mut delivered = run_pass_all(&host, &c);
    delivered.sort_unstable();
    assert_eq!(delivered, (296..=300).collect::<Vec<_>>());
    // The 25 bulk ones fill the rest of the first page and the next two; the fourth page goes
    // below the mark.
    assert_eq!(
        list_pages(&host, at),
        [(0, 10), (10, 10), (20, 10), (30, 10)],
        "after a page with unchanged pull requests the next is no larger"
    );
}

#[test]
fn every_changed_pull_request_is_delivered_once_over_growing_pages() {
    // 333 of 1000 changed: the pages grow 10, 20, 40, 80, 160 and would reach 320, but the
    // server caps its pages at 150 and says so; each page starts at the previous one's
    // nextPageStart.
    let (host, listing) = synced(1000, 150);
    *listing.items.borrow_mut() = with_changes(1000, 333);
    let at = mark(&host);
    let mut delivered = run_pass_all(&host, &default_conn());
    assert_eq!(delivered.len(), 333, "each exactly once");
    delivered.sort_unstable();
    assert_eq!(delivered, (668..=1000).collect::<Vec<_>>());
    let mut distinct = list_pages(&host, at);
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            (0, 10),
            (10, 20),
            (30, 40),
            (70, 80),
            (150, 160),
            (300, 320)
        ],
        "asked sizes double; starts follow the capped pages (the last holds the first unchanged one)"
    );
    // The next pass finds nothing and costs one small request.
    let at = mark(&host);
    assert!(run_pass_all(&host, &default_conn()).is_empty());
    assert_eq!(list_pages(&host, at), [(0, FIRST_INCREMENTAL_PAGE)]);
}

#[test]
fn a_resumed_pass_goes_on_with_the_start_and_limit_it_had_reached() {
    let (host, listing) = synced(300, 1000);
    *listing.items.borrow_mut() = with_changes(300, 75);
    let c = default_conn();
    let opts = SyncOptions::default();
    let at = mark(&host);
    let mut delivered = Vec::new();
    // Two batches read the first two pages (10, then 20 changed), the host acknowledges both.
    let mut cursor: Option<String> = None;
    for _ in 0..2 {
        let b = fetch_pull_requests(&host, &c, &repo(), &opts, cursor.as_deref()).unwrap();
        delivered.extend(b.pull_requests.iter().map(|p| p.id));
        cursor = b.next_cursor;
    }
    // The third call acknowledges the second batch and reads the next page, twice as large;
    // then the host dies before persisting what it got.
    let b = fetch_pull_requests(&host, &c, &repo(), &opts, cursor.as_deref()).unwrap();
    assert_eq!(b.pull_requests.len(), DETAIL_BUDGET);
    assert_eq!(list_pages(&host, at), [(0, 10), (10, 20), (30, 40)]);
    let (state, _) = load_state(&host, &state_key(&repo()));
    let progress = state.pass.map(|p| p.progress).unwrap();
    assert_eq!(
        (progress.next_start, progress.limit),
        (Some(30), Some(40)),
        "what was acknowledged: the page after the second, at its grown size"
    );
    // A new process starts again without a cursor: the unacknowledged batch is redone from
    // the acknowledged position, at the same limit.
    let at = mark(&host);
    delivered.extend(run_pass_all(&host, &c));
    assert_eq!(list_pages(&host, at), [(30, 40), (30, 40), (70, 80)]);
    delivered.sort_unstable();
    assert_eq!(delivered, (226..=300).collect::<Vec<_>>(), "nothing lost");
}

#[test]
fn a_pass_stored_before_pages_grew_goes_on_at_the_connection_page_size() {
    let (host, listing) = synced(300, 1000);
    *listing.items.borrow_mut() = with_changes(300, 75);
    // A pass in progress as an older version wrote it: its progress has no limit.
    let (mut state, _) = load_state(&host, &state_key(&repo()));
    let high_water = state.high_water.unwrap();
    let pass = json!({
        "id": state.pass_seq + 1, "full": false, "threshold": high_water - SAFETY_MARGIN_MS,
        "since": null, "started_at": now_ms(), "acked": 2,
        "progress": {"next_start": 25, "top_updated": T0 + 10_300 * HOUR,
                     "last_updated": T0 + 10_276 * HOUR, "order_violation": false,
                     "retries_done": true, "retried_up_to": null,
                     "listed": {"pages": 2, "items": 50, "empty_run": 0}, "partial": false},
        "pending": null
    });
    state.pass_seq += 1;
    let mut raw = serde_json::to_value(&state).unwrap();
    raw["pass"] = pass;
    host.storage_set(&state_key(&repo()), raw.to_string().as_bytes());
    let at = mark(&host);
    let delivered = run_pass_all(&host, &default_conn());
    assert_eq!(
        delivered.len(),
        50,
        "the rest of that pass: the 50 after the first page"
    );
    let mut distinct = list_pages(&host, at);
    distinct.dedup();
    assert_eq!(distinct, [(25, crate::paging::DEFAULT_PAGE_SIZE)]);
}

#[test]
fn full_listings_and_out_of_order_servers_keep_large_pages() {
    let (host, listing) = synced(300, 1000);
    let c = default_conn();
    let big = crate::paging::DEFAULT_PAGE_SIZE;
    // Asked for: every page at the connection's size.
    let at = mark(&host);
    let (prs, _, _) = run_pass(
        &host,
        &c,
        &SyncOptions {
            since: None,
            full_listing: true,
        },
    );
    assert!(prs.is_empty());
    assert_eq!(list_pages(&host, at), [(0, big)]);

    // An out-of-order page during an incremental pass: the rest of the listing is at the
    // connection's size too, and so is every later pass.
    let mut list = with_changes(300, 75);
    list.swap(30, 40);
    *listing.items.borrow_mut() = list;
    let at = mark(&host);
    let mut delivered = run_pass_all(&host, &c);
    delivered.sort_unstable();
    assert_eq!(delivered, (226..=300).collect::<Vec<_>>());
    let mut distinct = list_pages(&host, at);
    distinct.dedup();
    assert_eq!(distinct, [(0, 10), (10, 20), (30, 40), (70, big)]);
    let (state, _) = load_state(&host, &state_key(&repo()));
    assert!(state.order_untrusted);
    let at = mark(&host);
    run_pass_all(&host, &c);
    assert_eq!(list_pages(&host, at), [(0, big)]);
}

/// A page costs a handful of storage calls however many pull requests it holds: their memos
/// are read in one call and each acknowledged batch's written in one, since each storage call
/// crosses into the host in the component.
#[test]
fn a_page_reads_and_writes_its_memos_in_one_storage_call_each() {
    let calls = |n: u64| {
        let list: Vec<Value> = (1..=n)
            .rev()
            .map(|i| pr(i, 0, i as i64, i as i64))
            .collect();
        let host = setup(&list, 1000);
        let c = conn(1000);
        // The first pass: each call's batch of memos is written in one call, so no call's
        // storage calls grow with the pull requests it fetched.
        let (mut fetched, mut cursor) = (0u64, None::<String>);
        loop {
            host.storage_calls.set(0);
            let b = fetch_pull_requests(
                &host,
                &c,
                &repo(),
                &SyncOptions::default(),
                cursor.as_deref(),
            )
            .expect("batch");
            assert!(
                host.storage_calls.get() <= 6,
                "{} storage calls for a batch of {}",
                host.storage_calls.get(),
                b.pull_requests.len()
            );
            fetched += b.pull_requests.len() as u64;
            match b.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(fetched, n);
        assert_eq!(
            host.storage
                .borrow()
                .keys()
                .filter(|k| k.starts_with("pr/"))
                .count() as u64,
            n,
            "a memo per pull request"
        );
        let full = SyncOptions {
            since: None,
            full_listing: true,
        };
        host.storage_calls.set(0);
        let (prs, _, requests) = run_pass(&host, &c, &full);
        assert!(prs.is_empty() && requests == 1);
        host.storage_calls.get()
    };
    let (small, large) = (calls(5), calls(300));
    assert_eq!(small, large, "storage calls grow with the page");
    assert!(large <= 6, "{large} storage calls for one unchanged page");
}

/// A host whose `get-many` answers fewer values than keys breaks the storage contract: read as
/// "no memo", every pass would fetch the same pull requests again, for ever, with no error. It
/// is a `storage` error instead, naming what the host did.
#[test]
fn a_host_whose_get_many_answers_short_gets_a_storage_error_not_a_loop() {
    let list = [pr(2, 0, 2, 20), pr(1, 0, 1, 10)];
    let host = setup(&list, 10);
    let (prs, _, _) = run_pass(&host, &conn(10), &SyncOptions::default());
    assert_eq!(ids(&prs), [1, 2]);
    host.short_get_many.set(true);
    let e = fetch_pull_requests(&host, &conn(10), &repo(), &SyncOptions::default(), None)
        .expect_err("a storage error");
    assert_eq!(e.code(), "storage");
    assert!(
        e.to_string()
            .contains("get-many answered 1 values for 2 keys"),
        "{e}"
    );
    // A host that keeps its contract again is served as before: nothing changed.
    host.short_get_many.set(false);
    let (prs, _, requests) = run_pass(&host, &conn(10), &SyncOptions::default());
    assert!(prs.is_empty());
    assert_eq!(requests, 1);
}
