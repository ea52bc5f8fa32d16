//! Native tests of the commit pass against the in-memory host, over a small git history that
//! answers `until`/`since` as Bitbucket does (reachable from `until`, not from `since`).

use super::*;
use crate::fake::{Canned, FakeHost, conn, repo};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

const PATH: &str = "/bitbucket/rest/api/1.0/projects/PLAT/repos/api/commits";

/// The id of the `i`th commit of a test history.
fn id(i: u32) -> String {
    format!("{i:040x}")
}

/// A repository's history: commits by id with their parents, in the order they were made, and
/// the default branch's tip.
#[derive(Default)]
struct History {
    parents: BTreeMap<String, Vec<String>>,
    order: Vec<String>,
    tip: Option<String>,
}

impl History {
    /// Commits `id` on the branch with the tip as its parent (and `also` for a merge).
    fn commit(&mut self, id: &str, also: &[&str]) {
        let mut parents: Vec<String> = self.tip.iter().cloned().collect();
        parents.extend(also.iter().map(|s| s.to_string()));
        self.add(id, parents);
        self.tip = Some(id.into());
    }

    /// Adds a commit without moving the tip (a side branch's).
    fn add(&mut self, id: &str, parents: Vec<String>) {
        self.parents.insert(id.into(), parents);
        self.order.push(id.into());
    }

    fn reachable(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(c) = todo.pop() {
            if seen.insert(c.clone()) {
                todo.extend(self.parents.get(&c).into_iter().flatten().cloned());
            }
        }
        seen
    }

    /// `GET .../commits` as the server answers it: newest first.
    fn answer(&self, query: &[(String, String)]) -> Canned {
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let start: usize = get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
        let limit: usize = get("limit").and_then(|s| s.parse().ok()).unwrap_or(25);
        let Some(until) = get("until").or_else(|| self.tip.clone()) else {
            return page(&[], start, limit, None);
        };
        if !self.parents.contains_key(&until) {
            return not_found(&until);
        }
        let mut listed = self.reachable(&until);
        if let Some(since) = get("since") {
            if !self.parents.contains_key(&since) {
                return not_found(&since);
            }
            for c in self.reachable(&since) {
                listed.remove(&c);
            }
        }
        let newest_first: Vec<Value> = self
            .order
            .iter()
            .rev()
            .filter(|c| listed.contains(*c))
            .map(|c| self.json(c))
            .collect();
        let end = (start + limit).min(newest_first.len());
        let items = newest_first.get(start..end).unwrap_or_default();
        let next = (end < newest_first.len()).then_some(end);
        page(items, start, limit, next)
    }

    fn json(&self, id: &str) -> Value {
        let parents: Vec<Value> = self.parents[id]
            .iter()
            .map(|p| json!({"id": p, "displayId": &p[..p.len().min(7)]}))
            .collect();
        json!({
            "id": id, "displayId": &id[..id.len().min(7)],
            "author": {"name": "Ada", "emailAddress": "ada@example.com", "slug": "ada", "displayName": "Ada L"},
            "authorTimestamp": 1_700_000_000_000i64,
            "committer": {"name": "CI", "emailAddress": "ci@example.com"},
            "committerTimestamp": 1_700_000_100_000i64,
            "message": format!("Change {id}\n\nThe body, which is never kept."),
            "parents": parents
        })
    }
}

fn page(items: &[Value], start: usize, limit: usize, next: Option<usize>) -> Canned {
    let mut body = json!({"size": items.len(), "limit": limit, "start": start, "isLastPage": next.is_none(), "values": items});
    if let Some(n) = next {
        body["nextPageStart"] = json!(n);
    }
    // Every page this model serves is what the reference says the server sends.
    crate::reference::assert_response("/rest/api/1.0/projects/PLAT/repos/api/commits", &body);
    Canned::Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn not_found(id: &str) -> Canned {
    let body = json!({"errors": [{"message": format!("Commit '{id}' does not exist in repository 'api'."), "exceptionName": "com.atlassian.bitbucket.commit.NoSuchCommitException"}]});
    Canned::Response {
        status: 404,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// A host serving `history`, shared so that a test can push to it between passes.
fn host_of(history: &Rc<RefCell<History>>) -> FakeHost {
    let host = FakeHost::new();
    let h = Rc::clone(history);
    host.on_query(PATH, move |q| h.borrow().answer(q));
    host
}

/// Runs a whole pass, acknowledging every batch; returns the batches.
fn pass(host: &FakeHost, page_size: u32) -> Vec<CommitBatch> {
    let mut batches = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let b = fetch_commits(host, &conn(page_size), &repo(), cursor.as_deref()).expect("step");
        cursor = b.next_cursor.clone();
        batches.push(b);
        if cursor.is_none() {
            return batches;
        }
    }
    panic!("the pass did not end");
}

fn ids(batches: &[CommitBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b.commits.iter().map(|c| c.id.clone()))
        .collect()
}

fn linear(n: u32) -> Rc<RefCell<History>> {
    let mut h = History::default();
    for i in 0..n {
        h.commit(&id(i), &[]);
    }
    Rc::new(RefCell::new(h))
}

fn stored(host: &FakeHost) -> CommitState {
    serde_json::from_slice(&host.storage_get(&state_key(&repo())).expect("state"))
        .expect("readable")
}

#[test]
fn the_first_pass_lists_the_branch_and_an_unchanged_one_costs_one_small_request() {
    let history = linear(7);
    let host = host_of(&history);
    let batches = pass(&host, 3);
    let expected: Vec<String> = (0..7).rev().map(id).collect();
    assert_eq!(ids(&batches), expected, "newest first, every commit once");
    assert!(batches.iter().all(|b| b.pass == CommitPassKind::First));
    assert_eq!(batches[0].head.as_deref(), Some(expected[0].as_str()));
    let first = &batches[0].commits[0];
    assert_eq!(
        first.summary,
        format!("Change {}", id(6)),
        "the first line only"
    );
    assert_eq!(first.author.user_slug.as_deref(), Some("ada"));
    assert_eq!(first.author.email.as_deref(), Some("ada@example.com"));
    assert_eq!(first.author_timestamp, Some(1_700_000_000_000));
    assert_eq!(first.parent_count, 1);

    let before = host.sent().len();
    let again = pass(&host, 3);
    let sent = host.sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].pass, CommitPassKind::Unchanged);
    assert!(again[0].commits.is_empty());
    assert_eq!(sent.len() - before, 1, "{:?}", &sent[before..]);
    assert!(sent[before].contains("limit=1"), "{}", sent[before]);
}

#[test]
fn a_pass_told_the_tip_does_not_ask_for_it_and_a_tip_that_is_no_hash_is_refused() {
    let history = linear(5);
    let host = host_of(&history);
    pass(&host, 10);
    history.borrow_mut().commit(&id(5), &[]);
    history.borrow_mut().commit(&id(6), &[]);
    let before = host.sent().len();
    let tip = id(6);
    let first = fetch_commits_from(&host, &conn(10), &repo(), None, Some(&tip)).expect("step");
    assert_eq!(first.pass, CommitPassKind::Incremental);
    assert_eq!(first.head.as_deref(), Some(tip.as_str()));
    let listed: Vec<String> = first.commits.iter().map(|c| c.id.clone()).collect();
    assert_eq!(listed, vec![id(6), id(5)]);
    let sent = host.sent();
    assert!(
        sent[before..]
            .iter()
            .all(|s| !s.contains("limit=1&") && !s.ends_with("limit=1")),
        "no tip request: {:?}",
        &sent[before..]
    );
    assert!(
        sent[before].contains(&format!("until={tip}")),
        "{}",
        sent[before]
    );

    let err =
        fetch_commits_from(&host, &conn(10), &repo(), None, Some("main")).expect_err("no hash");
    assert!(matches!(err, ConnectorError::InvalidConfig(_)), "{err:?}");
}

#[test]
fn a_branch_that_moved_forward_lists_only_the_new_commits_merges_included() {
    let history = linear(4);
    let host = host_of(&history);
    pass(&host, 2);
    let side = "5".repeat(40);
    {
        let mut h = history.borrow_mut();
        h.add(&side, vec![id(1)]);
        h.commit(&id(10), &[]);
        h.commit(&id(11), &[side.as_str()]);
    }
    let batches = pass(&host, 2);
    let mut got = ids(&batches);
    got.sort();
    let mut want = vec![id(10), id(11), side.clone()];
    want.sort();
    assert_eq!(got, want);
    assert!(
        batches
            .iter()
            .all(|b| b.pass == CommitPassKind::Incremental)
    );
    let merge = batches
        .iter()
        .flat_map(|b| &b.commits)
        .find(|c| c.id == id(11))
        .expect("the merge");
    assert_eq!(merge.parent_count, 2);
    assert_eq!(stored(&host).head, Some(id(11)));
}

#[test]
fn a_force_push_is_found_and_the_branch_listed_in_full() {
    let history = linear(5);
    let host = host_of(&history);
    pass(&host, 2);
    {
        // Reset to commit 2 and push two new commits: 3 and 4 are gone from the branch.
        let mut h = history.borrow_mut();
        h.tip = Some(id(2));
        h.commit(&"a".repeat(40), &[]);
        h.commit(&"b".repeat(40), &[]);
    }
    let batches = pass(&host, 2);
    let kinds: Vec<CommitPassKind> = batches.iter().map(|b| b.pass).collect();
    assert_eq!(kinds.first(), Some(&CommitPassKind::Incremental));
    assert_eq!(kinds.last(), Some(&CommitPassKind::Rewritten), "{kinds:?}");
    let rewritten: Vec<String> = batches
        .iter()
        .filter(|b| b.pass == CommitPassKind::Rewritten)
        .flat_map(|b| b.commits.iter().map(|c| c.id.clone()))
        .collect();
    let want = vec!["b".repeat(40), "a".repeat(40), id(2), id(1), id(0)];
    assert_eq!(rewritten, want, "the branch as it is now, in full");
    // The next pass starts from the new head.
    let next = pass(&host, 2);
    assert_eq!(next[0].pass, CommitPassKind::Unchanged);
}

#[test]
fn a_last_head_the_server_no_longer_knows_is_a_rewrite() {
    let history = linear(3);
    let host = host_of(&history);
    pass(&host, 10);
    {
        let mut h = history.borrow_mut();
        let old = id(2);
        h.parents.remove(&old);
        h.order.retain(|c| *c != old);
        h.tip = Some(id(1));
        h.commit(&"c".repeat(40), &[]);
    }
    let batches = pass(&host, 10);
    assert_eq!(batches[0].pass, CommitPassKind::Rewritten);
    assert_eq!(ids(&batches), vec!["c".repeat(40), id(1), id(0)]);
}

#[test]
fn an_unacknowledged_batch_is_delivered_again_and_the_head_moves_only_at_the_end() {
    let history = linear(5);
    let host = host_of(&history);
    let c = conn(2);
    let first = fetch_commits(&host, &c, &repo(), None).expect("first batch");
    let second = fetch_commits(&host, &c, &repo(), first.next_cursor.as_deref()).expect("second");
    // The host dies before persisting the second batch: it starts again without a cursor.
    let again = fetch_commits(&host, &c, &repo(), None).expect("resumed");
    assert_eq!(
        ids(std::slice::from_ref(&again)),
        ids(&[second]),
        "the same batch again"
    );
    assert_eq!(
        stored(&host).head,
        None,
        "the head moves only when the pass ends"
    );
    let mut cursor = again.next_cursor.clone();
    let mut rest = Vec::new();
    while let Some(cur) = cursor {
        let b = fetch_commits(&host, &c, &repo(), Some(&cur)).expect("step");
        cursor = b.next_cursor.clone();
        rest.push(b);
    }
    let mut all = ids(&[first, again]);
    all.extend(ids(&rest));
    assert_eq!(all, (0..5).rev().map(id).collect::<Vec<_>>());
    assert_eq!(stored(&host).head, Some(id(4)));
    // The last acknowledgement repeated is harmless; a cursor of a pass that is not the
    // current or the last one, or no cursor at all, is refused.
    let repeated = fetch_commits(&host, &c, &repo(), Some("c0.3")).expect("harmless");
    assert!(repeated.commits.is_empty() && repeated.next_cursor.is_none());
    assert!(fetch_commits(&host, &c, &repo(), Some("c7.1")).is_err());
    assert!(fetch_commits(&host, &c, &repo(), Some("not a cursor")).is_err());
}

#[test]
fn a_commit_without_an_id_is_left_out_and_its_neighbours_kept() {
    let host = FakeHost::new();
    let good = |id: &str| {
        json!({"id": id, "message": "Fix the thing\r\nmore", "parents": [{"id": "p"}, 7, null],
               "author": {"name": "Bo", "emailAddress": ""}, "authorTimestamp": "soon", "committer": "nobody"})
    };
    let items = [
        good("1111"),
        json!({"message": "no id"}),
        json!({"id": ""}),
        json!(42),
        good("2222"),
    ];
    host.json(
        PATH,
        &[("limit", "1")],
        200,
        json!({"values": [good("1111")], "isLastPage": false, "nextPageStart": 1}),
    );
    host.json(
        PATH,
        &[("until", "1111")],
        200,
        json!({"values": items, "isLastPage": true, "start": 0, "limit": 25}),
    );
    let b = fetch_commits(&host, &conn(25), &repo(), None).expect("a page");
    assert_eq!(
        ids(std::slice::from_ref(&b)),
        vec!["1111".to_string(), "2222".to_string()]
    );
    assert_eq!(b.unreadable.len(), 3);
    assert!(b.unreadable.iter().all(|u| u.kind == HistoryKind::Commit));
    let c = &b.commits[0];
    assert_eq!(c.summary, "Fix the thing");
    assert_eq!(c.parent_count, 1, "unreadable parents are dropped");
    assert_eq!(c.author.name, "Bo");
    assert_eq!(c.author.email, None);
    assert_eq!(c.author_timestamp, None);
    assert_eq!(c.committer, None);
}

#[test]
fn an_empty_repository_has_no_head_and_costs_one_request() {
    let history = Rc::new(RefCell::new(History::default()));
    let host = host_of(&history);
    let batches = pass(&host, 5);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].head, None);
    assert_eq!(batches[0].pass, CommitPassKind::Unchanged);
    assert_eq!(host.sent().len(), 1);
}

#[test]
fn no_request_asks_for_a_diff_a_patch_or_a_file() {
    let history = linear(6);
    let host = host_of(&history);
    pass(&host, 2);
    history.borrow_mut().commit(&id(9), &[]);
    pass(&host, 2);
    let sent = host.sent();
    assert!(!sent.is_empty());
    for s in &sent {
        let path = s.split('?').next().unwrap_or_default();
        assert!(path.ends_with("/commits"), "{s}");
    }
}

#[test]
fn a_summary_is_the_first_line_and_bounded() {
    assert_eq!(summary("one\ntwo"), "one");
    assert_eq!(summary(""), "");
    assert_eq!(summary("\nsecond"), "");
    let long = "é".repeat(MAX_SUMMARY_CHARS + 10);
    assert_eq!(summary(&long).chars().count(), MAX_SUMMARY_CHARS);
}

#[test]
fn the_end_of_a_pass_is_acknowledged_before_the_head_moves() {
    let history = linear(3);
    let host = host_of(&history);
    let c = conn(10);
    let listed = fetch_commits(&host, &c, &repo(), None).expect("the listing");
    assert_eq!(listed.commits.len(), 3);
    assert!(!listed.complete);
    let end = fetch_commits(&host, &c, &repo(), listed.next_cursor.as_deref()).expect("the end");
    assert!(end.complete && end.commits.is_empty());
    assert!(end.next_cursor.is_some(), "the end is acknowledged too");
    // The host dies before persisting the end: it gets the end again, and the head has not
    // moved.
    let again = fetch_commits(&host, &c, &repo(), None).expect("the end again");
    assert!(again.complete && again.commits.is_empty());
    assert_eq!(stored(&host).head, None);
    let last = fetch_commits(&host, &c, &repo(), again.next_cursor.as_deref()).expect("ended");
    assert!(last.complete && last.next_cursor.is_none());
    assert_eq!(stored(&host).head, Some(id(2)));
    assert!(history.borrow().tip.as_deref() == Some(id(2).as_str()));
}
