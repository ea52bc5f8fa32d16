//! End-to-end pull-request sync: the component, loaded by the host, against wiremock serving
//! Bitbucket-shaped JSON. Every activity mapping, paging, forks and tags, missing optional fields,
//! diff counting, incremental passes, interruption, and one bad pull request.

mod support;

use bbdc_host::bindings::api::{RepoRef, SyncOptions};
use bbdc_host::bindings::types::{
    PrEventKind, PrState, PullRequest, RefKind, ReviewAction, ReviewerStatus,
};
use bbdc_host::storage::StoreError;
use bbdc_host::tenant::Tenant;
use bbdc_jobs::records::SqliteRecords;
use serde_json::{Value, json};
use std::sync::Arc;
use support::*;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PRS: &str = "/rest/api/1.0/projects/PLAT/repos/api/pull-requests";

fn api_repo() -> RepoRef {
    RepoRef {
        project_key: "PLAT".into(),
        slug: "api".into(),
    }
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Serves `prs` (in list order) in pages of `size`, at a priority that overrides earlier lists.
async fn mount_list(server: &MockServer, prs: &[Value], size: usize, priority: u8) {
    let chunks: Vec<&[Value]> = if prs.is_empty() {
        vec![&[]]
    } else {
        prs.chunks(size).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let start = i * size;
        let next = if i + 1 < chunks.len() {
            Some((start + chunk.len()) as u64)
        } else {
            None
        };
        Mock::given(method("GET"))
            .and(path(PRS))
            .and(query_param("start", start.to_string()))
            .respond_with(ok(page(chunk.to_vec(), start as u64, size as u64, next)))
            .with_priority(priority)
            .mount(server)
            .await;
    }
}

/// Serves a pull request's activities (in pages of `page_size`) and diff.
async fn mount_details(
    server: &MockServer,
    id: u64,
    acts: Vec<Value>,
    page_size: usize,
    diff: Value,
) {
    let mut chunks: Vec<Vec<Value>> = acts.chunks(page_size).map(|c| c.to_vec()).collect();
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    for (i, chunk) in chunks.iter().enumerate() {
        let start = i * page_size;
        let next = if i + 1 < chunks.len() {
            Some((start + chunk.len()) as u64)
        } else {
            None
        };
        Mock::given(path(format!("{PRS}/{id}/activities")))
            .and(query_param("start", start.to_string()))
            .respond_with(ok(page(
                chunk.clone(),
                start as u64,
                page_size as u64,
                next,
            )))
            .mount(server)
            .await;
    }
    Mock::given(path(format!("{PRS}/{id}/diff")))
        .and(query_param("contextLines", "0"))
        .and(query_param("withComments", "false"))
        .respond_with(ok(diff))
        .mount(server)
        .await;
}

async fn pass(t: &Arc<Tenant>, full: bool) -> (Vec<PullRequest>, Vec<(u64, String, String)>) {
    let t = t.clone();
    blocking(move || {
        let rt = runtime();
        let opts = SyncOptions {
            since: None,
            full_listing: full,
        };
        let mut cursor: Option<String> = None;
        let mut prs = Vec::new();
        let mut skipped = Vec::new();
        loop {
            let b = rt
                .fetch_pull_requests(&t, &api_repo(), &opts, cursor.as_deref())
                .expect("batch");
            prs.extend(b.pull_requests);
            skipped.extend(b.skipped.into_iter().map(|s| {
                (
                    s.id,
                    bbdc_jobs::output::skip_stage(s.stage).to_owned(),
                    bbdc_jobs::output::connector_error(&s.error).0.to_owned(),
                )
            }));
            match b.next_cursor {
                Some(c) => cursor = Some(c),
                None => return (prs, skipped),
            }
        }
    })
    .await
}

async fn list_requests(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == PRS)
        .count()
}

fn by_id(prs: &[PullRequest], id: u64) -> &PullRequest {
    prs.iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("PR {id} missing"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_record_with_every_activity_mapping_across_pages() {
    let server = MockServer::start().await;
    mount_list(&server, &[pr_json(7, 4, "MERGED", 0, 11)], 25, 5).await;
    mount_details(
        &server,
        7,
        activities_json(7, true),
        4,
        diff_json(5, 3, true, false),
    )
    .await;
    let t = tenant(&server.uri());
    let (prs, skipped) = pass(&t, false).await;
    assert!(skipped.is_empty());
    let p = by_id(&prs, 7);
    assert_eq!(
        (p.state, p.version, p.title.as_str()),
        (PrState::Merged, 4, "Change 7")
    );
    assert_eq!(p.description.as_deref(), Some("Line one\r\nLine two"));
    assert_eq!(p.author.as_ref().map(|u| u.slug.as_str()), Some("alice"));
    assert_eq!(
        (p.source.display_id.as_str(), p.target.display_id.as_str()),
        ("feature/7", "main")
    );
    assert_eq!(
        p.reviewers
            .iter()
            .map(|r| (r.user.slug.as_str(), r.status))
            .collect::<Vec<_>>(),
        [("bob", ReviewerStatus::Approved)]
    );
    assert_eq!(p.participants[0].user.slug, "carol");
    assert_eq!(
        (p.comment_count, p.open_task_count, p.resolved_task_count),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(
        p.url.as_deref(),
        Some("https://bb.example/projects/PLAT/repos/api/pull-requests/7")
    );
    let reviews: Vec<_> = p
        .reviews
        .iter()
        .map(|r| (r.user.slug.as_str(), r.action, r.at))
        .collect();
    assert_eq!(
        reviews,
        [
            ("carol", ReviewAction::Commented, T0 + 2 * HOUR),
            ("alice", ReviewAction::Commented, T0 + 3 * HOUR),
            ("bob", ReviewAction::NeedsWork, T0 + 4 * HOUR),
            ("bob", ReviewAction::Approved, T0 + 7 * HOUR),
            ("dave", ReviewAction::Unapproved, T0 + 8 * HOUR),
        ],
        "activities over three pages, oldest first, replies included"
    );
    let events: Vec<_> = p.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        [
            PrEventKind::Opened,
            PrEventKind::Rescoped,
            PrEventKind::ReviewersUpdated,
            PrEventKind::Declined,
            PrEventKind::Reopened,
            PrEventKind::Merged
        ]
    );
    assert_eq!(p.merged_at, Some(T0 + 11 * HOUR));
    assert_eq!(p.merged_by.as_ref().map(|u| u.slug.as_str()), Some("bob"));
    assert_eq!(p.merge_commit.as_deref(), Some("9".repeat(40).as_str()));
    assert_eq!(
        p.first_review_at,
        Some(T0 + 2 * HOUR),
        "carol's comment is the first review"
    );
    assert_eq!(p.first_approval_at, Some(T0 + 7 * HOUR));
    let d = p.diff.expect("diff statistics");
    assert_eq!(
        (d.additions, d.deletions, d.files_changed, d.truncated),
        (5, 3, 2, false),
        "a rename counts once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fork_tag_missing_optionals_and_truncated_diff() {
    let server = MockServer::start().await;
    let mut fork = pr_json(3, 1, "OPEN", 3, 30);
    fork["fromRef"]["repository"] = repo_ref("~ALICE", "api");
    let mut tag = pr_json(2, 0, "DECLINED", 2, 20);
    tag["fromRef"] = json!({"id": "refs/tags/v2.0", "displayId": "v2.0", "latestCommit": "c".repeat(40), "type": "TAG", "repository": repo_ref("PLAT", "api")});
    let mut bare = pr_json(1, 0, "OPEN", 1, 10);
    for k in [
        "properties",
        "closedDate",
        "draft",
        "description",
        "participants",
        "links",
    ] {
        bare.as_object_mut().unwrap().remove(k);
    }
    mount_list(&server, &[fork, tag, bare], 2, 5).await;
    mount_details(
        &server,
        3,
        activities_json(3, false),
        50,
        diff_json(1, 0, false, false),
    )
    .await;
    mount_details(&server, 2, vec![], 50, diff_json(0, 0, false, false)).await;
    mount_details(&server, 1, vec![], 50, diff_json(100, 50, false, true)).await;
    let t = tenant(&server.uri());
    let (prs, skipped) = pass(&t, false).await;
    assert!(skipped.is_empty(), "{skipped:?}");
    let fork = by_id(&prs, 3);
    assert_eq!(
        fork.source_fork
            .as_ref()
            .map(|r| (r.project_key.as_str(), r.slug.as_str())),
        Some(("~ALICE", "api"))
    );
    let tag = by_id(&prs, 2);
    assert_eq!(
        (tag.source.kind, tag.source.display_id.as_str(), tag.state),
        (RefKind::Tag, "v2.0", PrState::Declined)
    );
    assert!(tag.source_fork.is_none());
    let bare = by_id(&prs, 1);
    assert_eq!(
        (
            bare.draft,
            bare.closed_at,
            bare.comment_count,
            bare.url.as_deref()
        ),
        (false, None, None, None)
    );
    let d = bare.diff.unwrap();
    assert!(d.truncated, "truncation inside a segment is reported");
    assert_eq!((d.additions, d.deletions), (100, 50));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_second_sync_makes_exactly_one_list_request() {
    let server = MockServer::start().await;
    let list: Vec<Value> = (1..=5)
        .rev()
        .map(|i| pr_json(i, 0, "OPEN", i as i64, i as i64 * 10))
        .collect();
    mount_list(&server, &list, 2, 5).await;
    for i in 1..=5 {
        mount_details(&server, i, vec![], 50, diff_json(1, 1, false, false)).await;
    }
    let t = tenant(&server.uri());
    let (prs, _) = pass(&t, false).await;
    assert_eq!(prs.len(), 5);
    assert_eq!(
        list_requests(&server).await,
        3,
        "first sync lists all three pages"
    );
    let total_before = server.received_requests().await.unwrap().len();
    let (prs, _) = pass(&t, false).await;
    assert!(prs.is_empty());
    let total_after = server.received_requests().await.unwrap().len();
    assert_eq!(
        total_after - total_before,
        1,
        "an unchanged repository costs exactly one request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pr_updated_between_two_pages_of_a_pass_is_not_lost() {
    let server = MockServer::start().await;
    let list = [
        pr_json(4, 0, "OPEN", 4, 40),
        pr_json(3, 0, "OPEN", 3, 30),
        pr_json(2, 0, "OPEN", 2, 20),
        pr_json(1, 0, "OPEN", 1, 10),
    ];
    mount_list(&server, &list, 2, 5).await;
    for i in 1..=4 {
        mount_details(&server, i, vec![], 50, diff_json(1, 0, false, false)).await;
    }
    let t = tenant(&server.uri());
    let t2 = t.clone();
    let first = blocking(move || {
        runtime().fetch_pull_requests(
            &t2,
            &api_repo(),
            &SyncOptions {
                since: None,
                full_listing: false,
            },
            None,
        )
    })
    .await
    .unwrap();
    assert_eq!(
        first.pull_requests.iter().map(|p| p.id).collect::<Vec<_>>(),
        [4, 3]
    );
    // PR 1 is approved between the two pages and moves to the front of the listing.
    let mut updated = pr_json(1, 1, "OPEN", 1, 50);
    updated["reviewers"][0]["status"] = json!("NEEDS_WORK");
    mount_list(
        &server,
        &[updated, list[0].clone(), list[1].clone(), list[2].clone()],
        2,
        1,
    )
    .await;
    let mut seen: Vec<PullRequest> = first.pull_requests.clone();
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let t2 = t.clone();
        let b = blocking(move || {
            runtime().fetch_pull_requests(
                &t2,
                &api_repo(),
                &SyncOptions {
                    since: None,
                    full_listing: false,
                },
                Some(&c),
            )
        })
        .await
        .unwrap();
        seen.extend(b.pull_requests);
        cursor = b.next_cursor;
    }
    let (next, _) = pass(&t, false).await;
    seen.extend(next);
    let latest_1 = seen
        .iter()
        .filter(|p| p.id == 1)
        .max_by_key(|p| p.version)
        .expect("PR 1 is not lost");
    assert_eq!(latest_1.version, 1);
    assert_eq!(latest_1.reviewers[0].status, ReviewerStatus::NeedsWork);
    let mut ids: Vec<u64> = seen.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_interrupted_after_its_first_page_and_resumed_loses_nothing() {
    let server = MockServer::start().await;
    let list: Vec<Value> = (1..=6)
        .rev()
        .map(|i| pr_json(i, 0, "OPEN", i as i64, i as i64 * 10))
        .collect();
    mount_list(&server, &list, 2, 5).await;
    for i in 1..=6 {
        mount_details(&server, i, vec![], 50, diff_json(2, 1, false, false)).await;
    }
    let t = tenant(&server.uri());
    let t2 = t.clone();
    // The first batch is handed over, and the host dies before persisting it.
    let lost = blocking(move || {
        runtime().fetch_pull_requests(
            &t2,
            &api_repo(),
            &SyncOptions {
                since: None,
                full_listing: false,
            },
            None,
        )
    })
    .await
    .unwrap();
    assert_eq!(lost.pull_requests.len(), 2);
    assert!(lost.next_cursor.is_some());
    // A new process starts the sync again without a cursor.
    let (prs, _) = pass(&t, false).await;
    let mut ids: Vec<u64> = prs.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5, 6],
        "the unacknowledged first page is delivered again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pr_whose_diff_fails_is_skipped_and_the_rest_is_intact() {
    let server = MockServer::start().await;
    mount_list(
        &server,
        &[
            pr_json(3, 0, "OPEN", 3, 30),
            pr_json(2, 0, "OPEN", 2, 20),
            pr_json(1, 0, "OPEN", 1, 10),
        ],
        25,
        5,
    )
    .await;
    mount_details(&server, 3, vec![], 50, diff_json(1, 0, false, false)).await;
    mount_details(&server, 1, vec![], 50, diff_json(1, 0, false, false)).await;
    Mock::given(path(format!("{PRS}/2/activities")))
        .respond_with(ok(page(vec![], 0, 50, None)))
        .mount(&server)
        .await;
    Mock::given(path(format!("{PRS}/2/diff")))
        .respond_with(ResponseTemplate::new(500).set_body_json(error_body(
            "com.atlassian.bitbucket.scm.CommandFailedException",
            "git diff exited with 128",
        )))
        .mount(&server)
        .await;
    let t = tenant(&server.uri());
    let (prs, skipped) = pass(&t, false).await;
    let mut ids: Vec<u64> = prs.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 3]);
    assert_eq!(skipped, [(2, "diff".to_string(), "server".to_string())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bbdc_sync_job_writes_sqlite_and_a_second_run_is_incremental() {
    use rusqlite::Connection;
    let server = MockServer::start().await;
    Mock::given(path("/rest/api/1.0/projects"))
        .respond_with(ok(page(vec![project("PLAT", 1)], 0, 25, None)))
        .mount(&server)
        .await;
    Mock::given(path("/rest/api/1.0/projects/PLAT/repos"))
        .respond_with(ok(page(vec![repo("PLAT", "api", 10)], 0, 25, None)))
        .mount(&server)
        .await;
    Mock::given(path("/rest/api/1.0/repos"))
        .and(wiremock::matchers::query_param("archived", "ALL"))
        .respond_with(ok(page(vec![repo("PLAT", "api", 10)], 0, 25, None)))
        .mount(&server)
        .await;
    Mock::given(path("/rest/api/1.0/admin/users"))
        .respond_with(ok(page(vec![user("alice"), user("bob")], 0, 25, None)))
        .mount(&server)
        .await;
    mount_list(
        &server,
        &[pr_json(2, 0, "MERGED", 2, 20), pr_json(1, 0, "OPEN", 1, 10)],
        25,
        5,
    )
    .await;
    mount_details(
        &server,
        2,
        activities_json(2, true),
        50,
        diff_json(4, 2, false, false),
    )
    .await;
    mount_details(
        &server,
        1,
        activities_json(1, false),
        50,
        diff_json(1, 1, false, false),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bbdc.sqlite");
    let kv = Arc::new(bbdc_store::kv::SqliteKv::open(&db).unwrap());
    let t = Arc::new(
        Tenant::new(
            bbdc_host::TenantConfig::new(
                "t1",
                server.uri(),
                bbdc_host::Credentials::Bearer(TOKEN.into()),
            ),
            kv,
        )
        .unwrap(),
    );
    let records = SqliteRecords::open(&db).unwrap();
    let job = bbdc_jobs::sync::SyncJob {
        concurrency: 2,
        ..support::pull_requests_job()
    };
    let (t2, db2) = (t.clone(), db.clone());
    let report = blocking(move || bbdc_jobs::sync::run(runtime(), &t2, &records, None, &job))
        .await
        .unwrap();
    assert_eq!(report.records.get("pull_request"), Some(&2));
    assert!(report.failed_repos.is_empty() && report.skipped.is_empty());

    let conn = Connection::open(&db2).unwrap();
    let row: (String, i64, i64, i64, Option<String>, Option<i64>) = conn.query_row(
        "SELECT state, additions, deletions, files_changed, merged_by, first_approval_at FROM pull_requests WHERE project_key='PLAT' AND repo_slug='api' AND id=2",
        [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))).unwrap();
    assert_eq!(
        row,
        (
            "MERGED".into(),
            4,
            2,
            1,
            Some("bob".into()),
            Some(T0 + 7 * HOUR)
        )
    );
    let reviews: i64 = conn
        .query_row("SELECT COUNT(*) FROM reviews WHERE pr_id = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(reviews, 5);
    let counts: (i64, i64, i64) = conn.query_row("SELECT (SELECT COUNT(*) FROM projects), (SELECT COUNT(*) FROM repos), (SELECT COUNT(*) FROM users)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    assert_eq!(counts, (1, 1, 2));
    let stored: String = conn
        .query_row("SELECT group_concat(record) FROM pull_requests", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        !stored.contains("SOURCE-CODE-MARKER"),
        "no line of the diff reaches the database"
    );

    // Second run: incremental, nothing new, one list request for the repository.
    let before = list_requests(&server).await;
    let records = SqliteRecords::open(&db).unwrap();
    let job = bbdc_jobs::sync::SyncJob {
        concurrency: 2,
        ..support::pull_requests_job()
    };
    let report = blocking(move || bbdc_jobs::sync::run(runtime(), &t, &records, None, &job))
        .await
        .unwrap();
    assert_eq!(report.records.get("pull_request"), Some(&0));
    assert_eq!(report.unchanged, 2);
    assert_eq!(list_requests(&server).await - before, 1);
}

/// The shapes that lost pull requests in the first real-server trial, on one page through the
/// component and the sync job: a ref's `type` as the invented object, `"links": {"self": [null]}`,
/// ISO dates, an unknown field in an unexpected shape, a reviewer without a user, and a pull
/// request whose id cannot be read. Every identifiable pull request is stored; the one without an
/// id is reported in the skipped list with its reason, and the sync succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn odd_fields_never_fail_a_page_and_an_unidentifiable_pull_request_is_reported() {
    let server = MockServer::start().await;
    Mock::given(path("/rest/api/1.0/projects"))
        .respond_with(ok(page(vec![project("PLAT", 1)], 0, 25, None)))
        .mount(&server)
        .await;
    Mock::given(path("/rest/api/1.0/repos"))
        .respond_with(ok(page(vec![repo("PLAT", "api", 10)], 0, 25, None)))
        .mount(&server)
        .await;
    Mock::given(path("/rest/api/1.0/admin/users"))
        .respond_with(ok(page(vec![user("alice")], 0, 25, None)))
        .mount(&server)
        .await;
    // Deliberately off the reference: these are the shapes real servers and proxies sent.
    let mut odd = pr_json(3, 1, "OPEN", 1, 3);
    odd["fromRef"]["type"] = json!({"id": "BRANCH"});
    odd["links"] = json!({"self": [null]});
    odd["createdDate"] = json!("2025-06-15T15:06:40.000+00:00");
    odd["reviewers"] =
        json!([null, {"role": "REVIEWER"}, {"user": user("bob"), "status": "APPROVED"}]);
    odd["somePluginField"] = json!([{"nested": null}]);
    let unidentifiable = json!({"title": "no id", "state": "OPEN"});
    let items = vec![odd, unidentifiable, pr_json(1, 0, "OPEN", 1, 2)];
    Mock::given(method("GET"))
        .and(path(PRS))
        .respond_with(ok(page(items, 0, 25, None)))
        .mount(&server)
        .await;
    for id in [1, 3] {
        mount_details(
            &server,
            id,
            activities_json(id, false),
            50,
            diff_json(2, 1, false, false),
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("odd.sqlite");
    let kv = Arc::new(bbdc_store::kv::SqliteKv::open(&db).unwrap());
    let mut config = bbdc_host::TenantConfig::new(
        "t1",
        server.uri(),
        bbdc_host::Credentials::Bearer(TOKEN.into()),
    );
    config.http_policy.burst = None;
    let t = Arc::new(Tenant::new(config, kv).unwrap());
    let records = SqliteRecords::open(&db).unwrap();
    let report = blocking(move || {
        bbdc_jobs::sync::run(runtime(), &t, &records, None, &support::pull_requests_job())
    })
    .await
    .unwrap();
    assert!(report.failed_repos.is_empty(), "{:?}", report.failed_repos);
    assert_eq!(report.records.get("pull_request"), Some(&2));
    let unidentified: Vec<_> = report.skipped.iter().filter(|s| s.id.is_none()).collect();
    assert_eq!(unidentified.len(), 1, "{:?}", report.skipped);
    assert_eq!(unidentified[0].stage, "identity");
    assert!(
        unidentified[0].message.contains("item 1") && unidentified[0].message.contains("id"),
        "{:?}",
        unidentified[0]
    );
    let summary = bbdc_jobs::output::sync_summary_json(&report, &db.display().to_string());
    assert_eq!(summary["ok"], json!(true));
    assert_eq!(summary["skipped"][0]["stage"], json!("identity"));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (created, reviewers, url): (i64, String, Option<String>) = conn
        .query_row(
            "SELECT created_at, reviewers, url FROM pull_requests WHERE id = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(created, 1_750_000_000_000);
    assert!(
        reviewers.contains("bob") && !reviewers.contains("null"),
        "{reviewers}"
    );
    assert_eq!(url, None, "a link list of nulls is an empty link");
}

/// Answers every page of a listing with `items(start)` and a next page, forever; each body is
/// checked against the reference for `path`.
struct Endless {
    path: &'static str,
    items: fn(u64) -> Vec<Value>,
}

impl wiremock::Respond for Endless {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let start: u64 = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "start")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body = page((self.items)(start), start, 25, Some(start + 25));
        support::reference::assert_response(self.path, &body);
        ok(body)
    }
}

async fn endless(server: &MockServer, path_: &'static str, items: fn(u64) -> Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(path_))
        .respond_with(Endless { path: path_, items })
        .mount(server)
        .await;
}

fn sync_into(
    uri: &str,
    job: bbdc_jobs::sync::SyncJob,
) -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("endless.sqlite");
    let records = SqliteRecords::open(&db).unwrap();
    let t = tenant(uri);
    let e = bbdc_jobs::sync::run(runtime(), &t, &records, None, &job)
        .map(|_| ())
        .expect_err("a listing that never ends fails");
    (e.to_string(), db, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_pages_that_keep_promising_more_end_the_listing_with_an_error() {
    let server = MockServer::start().await;
    endless(&server, "/rest/api/1.0/projects", |_| Vec::new()).await;
    let uri = server.uri();
    let (e, _, _dir) = blocking(move || sync_into(&uri, support::pull_requests_job())).await;
    assert!(e.contains("listing projects"), "{e}");
    assert!(e.contains("empty"), "{e}");
    let asked = server.received_requests().await.unwrap().len();
    assert!(asked <= 16, "stopped after a few empty pages, not {asked}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_listing_is_capped_and_its_pages_are_written_as_they_arrive() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/1.0/projects"))
        .respond_with(ok(page(vec![project("PLAT", 1)], 0, 25, None)))
        .mount(&server)
        .await;
    endless(&server, "/rest/api/1.0/repos", |start| {
        vec![
            repo("PLAT", &format!("r{start}-a"), start * 2 + 1),
            repo("PLAT", &format!("r{start}-b"), start * 2 + 2),
        ]
    })
    .await;
    let uri = server.uri();
    let (e, db, _dir) = blocking(move || {
        sync_into(
            &uri,
            bbdc_jobs::sync::SyncJob {
                max_listing_pages: 20,
                ..support::pull_requests_job()
            },
        )
    })
    .await;
    assert!(e.contains("listing repositories"), "{e}");
    assert!(e.contains("did not end after 20 pages"), "{e}");
    let written: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM repos", [], |r| r.get(0))
        .unwrap();
    assert_eq!(written, 40, "every page was written as it arrived");
}

/// A record store that notes the order of what it is given, and can refuse pull requests as
/// a full disk would.
struct OrderedSink {
    inner: SqliteRecords,
    events: std::sync::Mutex<Vec<&'static str>>,
    repos: std::sync::atomic::AtomicUsize,
    refuse_pull_requests: bool,
}

impl OrderedSink {
    fn new(db: &std::path::Path, refuse_pull_requests: bool) -> Self {
        Self {
            inner: SqliteRecords::open(db).expect("records"),
            events: std::sync::Mutex::new(Vec::new()),
            repos: std::sync::atomic::AtomicUsize::new(0),
            refuse_pull_requests,
        }
    }

    fn note(&self, what: &'static str) {
        self.events.lock().expect("events").push(what);
    }
}

impl bbdc_jobs::records::RecordSink for OrderedSink {
    fn projects(&self, i: &[bbdc_host::bindings::types::Project]) -> Result<(), StoreError> {
        self.inner.projects(i)
    }
    fn repos(&self, i: &[bbdc_host::bindings::types::Repo]) -> Result<(), StoreError> {
        self.note("repos");
        self.repos
            .fetch_add(i.len(), std::sync::atomic::Ordering::SeqCst);
        self.inner.repos(i)
    }
    fn users(&self, i: &[bbdc_host::bindings::types::User]) -> Result<(), StoreError> {
        self.inner.users(i)
    }
    fn pull_requests(&self, i: &[PullRequest]) -> Result<(), StoreError> {
        if self.refuse_pull_requests {
            return Err(StoreError::new("database or disk is full"));
        }
        if !i.is_empty() {
            self.note("pull_requests");
        }
        self.inner.pull_requests(i)
    }
    support::history_to_inner!();
    fn delivery(
        &self,
        d: &bbdc_jobs::records::Delivery<'_>,
    ) -> Result<bbdc_jobs::records::Stored, StoreError> {
        self.inner.delivery(d)
    }
}

/// A simulated instance of 503 repositories (21 pages of the simulator's 25), one pull request
/// each, and a tenant of it.
fn many_repositories() -> (bbdc_sim::Simulator, SimRun) {
    let sim = bbdc_sim::Simulator::start(bbdc_sim::SimConfig {
        spec: bbdc_sim::world::WorldSpec {
            seed: 9,
            projects: 20,
            repos_per_project: 25,
            prs_per_repo: 1,
            users: 4,
        },
        token: Some("stream-token".into()),
        ..bbdc_sim::SimConfig::default()
    })
    .expect("simulator");
    let run = sim_run(&sim.base_url(), "stream-token", |c| {
        c.http_policy.burst = None;
    });
    (sim, run)
}

#[test]
fn repositories_are_synced_as_they_are_listed_not_after_the_whole_listing() {
    let (sim, run) = many_repositories();
    let sink = OrderedSink::new(&run.db, false);
    let job = bbdc_jobs::sync::SyncJob {
        concurrency: 4,
        ..bbdc_jobs::sync::SyncJob::default()
    };
    let report = bbdc_jobs::sync::run(runtime(), &run.tenant, &sink, None, &job).expect("sync");
    assert_eq!(report.records.get("repo"), Some(&503));
    assert_eq!(report.records.get("pull_request"), Some(&503));
    // More repositories than the listing may run ahead of the workers: pull requests were
    // written before the last page of repositories was.
    let events = sink.events.lock().expect("events");
    let first_prs = events.iter().position(|e| *e == "pull_requests");
    let last_repos = events.iter().rposition(|e| *e == "repos");
    assert!(
        matches!((first_prs, last_repos), (Some(p), Some(r)) if p < r),
        "pull requests first written at event {first_prs:?}, repositories last at {last_repos:?}"
    );
    sim.stop();
}

#[test]
fn records_that_cannot_be_written_stop_the_listing_too() {
    let (sim, run) = many_repositories();
    let sink = OrderedSink::new(&run.db, true);
    let job = bbdc_jobs::sync::SyncJob {
        concurrency: 2,
        ..bbdc_jobs::sync::SyncJob::default()
    };
    let err = bbdc_jobs::sync::run(runtime(), &run.tenant, &sink, None, &job)
        .expect_err("a full disk fails the job");
    assert!(
        matches!(err, bbdc_jobs::sync::SyncError::Records(_)),
        "{err}"
    );
    // The listing stopped once the workers did, far short of the 503 repositories.
    let listed = sink.repos.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        listed < 400,
        "{listed} repositories listed after the failure"
    );
    sim.stop();
}

/// Mounts a server listing project PLAT, one user and `repos` (each with no pull request).
async fn listing(server: &MockServer, repos: Vec<Value>) {
    server.reset().await;
    Mock::given(path("/rest/api/1.0/projects"))
        .respond_with(ok(page(vec![project("PLAT", 1)], 0, 25, None)))
        .mount(server)
        .await;
    Mock::given(path("/rest/api/1.0/repos"))
        .respond_with(ok(page(repos, 0, 25, None)))
        .mount(server)
        .await;
    Mock::given(path("/rest/api/1.0/admin/users"))
        .respond_with(ok(page(vec![user("alice")], 0, 25, None)))
        .mount(server)
        .await;
    for slug in ["api", "web"] {
        Mock::given(path(format!(
            "/rest/api/1.0/projects/PLAT/repos/{slug}/pull-requests"
        )))
        .respond_with(ok(page(vec![], 0, 25, None)))
        .mount(server)
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repository_is_recorded_deleted_only_by_a_listing_that_read_every_repository() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gone.sqlite");
    let t = tenant(&server.uri());
    let run = |t: Arc<Tenant>, db: std::path::PathBuf| {
        blocking(move || {
            let records = SqliteRecords::open(&db).unwrap();
            bbdc_jobs::sync::run(runtime(), &t, &records, None, &support::pull_requests_job())
        })
    };
    let deleted = |db: &std::path::Path| -> Vec<(String, i64)> {
        rusqlite::Connection::open(db)
            .unwrap()
            .prepare("SELECT slug, deleted FROM repos ORDER BY slug")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    listing(
        &server,
        vec![repo("PLAT", "api", 10), repo("PLAT", "web", 11)],
    )
    .await;
    run(t.clone(), db.clone()).await.unwrap();
    assert_eq!(deleted(&db), vec![("api".into(), 0), ("web".into(), 0)]);

    // `web` is not listed, but one listed repository cannot be read: it may be `web`, so
    // nothing is marked (deliberately off the reference: a repository without its slug).
    listing(
        &server,
        vec![json!({"id": 11, "name": "web"}), repo("PLAT", "api", 10)],
    )
    .await;
    let report = run(t.clone(), db.clone()).await.unwrap();
    assert!(
        report.unreadable.iter().any(|u| u.kind == "repository"),
        "{:?}",
        report.unreadable
    );
    assert_eq!(report.records.get("repo_deleted"), None);
    assert_eq!(deleted(&db), vec![("api".into(), 0), ("web".into(), 0)]);

    // A listing that read every repository and no longer names `web`: it is recorded deleted.
    listing(&server, vec![repo("PLAT", "api", 10)]).await;
    let report = run(t, db.clone()).await.unwrap();
    assert_eq!(report.records.get("repo_deleted"), Some(&1));
    assert_eq!(deleted(&db), vec![("api".into(), 0), ("web".into(), 1)]);
}
