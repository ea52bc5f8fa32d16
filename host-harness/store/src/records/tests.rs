//! The record writes, each on SQLite and on PostgreSQL.

use super::*;
use bbdc_host::bindings::history::CommitPerson;
use bbdc_host::bindings::repository_events::{RefChange, RefChangeKind};

/// Runs a check on a fresh SQLite file and on a fresh PostgreSQL database: the writes are
/// one implementation, and both databases must hold them alike.
macro_rules! on_both_backends {
    ($check:ident) => {
        mod $check {
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().expect("a directory");
                let path = dir.path().join("r.db");
                super::$check(&super::SqliteRecords::open(&path).expect("opens"));
            }

            #[test]
            fn postgres() {
                let pg = bbdc_test_postgres::TestPostgres::start_or_panic();
                let options = crate::postgres::PoolOptions::default();
                super::$check(&super::PgRecords::connect(&pg.url(), &options).expect("connects"));
            }
        }
    };
}

fn text(v: &Value) -> String {
    v.text().map(str::to_owned).unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.int().unwrap_or(-1)
}

/// The rows of a query whose columns are all text.
fn texts<B: Backend>(r: &Records<B>, sql: &str) -> Vec<Vec<String>> {
    r.query(sql, &[])
        .expect("rows")
        .iter()
        .map(|row| row.iter().map(text).collect())
        .collect()
}

on_both_backends!(text_holding_a_nul_is_stored_on_either_database);
fn text_holding_a_nul_is_stored_on_either_database<B: Backend>(records: &Records<B>) {
    let user = User {
        slug: "ada".into(),
        id: Some(1),
        name: "ada".into(),
        display_name: Some("Ada\0Lovelace".into()),
        email: None,
        active: Some(true),
        kind: bbdc_host::bindings::types::UserKind::Normal,
    };
    records.users(&[user]).expect("stored, not refused");
    let shown = texts(records, "SELECT display_name FROM users");
    assert!(
        shown == [["Ada\0Lovelace"]] || shown == [["Ada\u{FFFD}Lovelace"]],
        "{shown:?}"
    );
}

fn repo() -> RepoRef {
    RepoRef {
        project_key: "P".into(),
        slug: "r".into(),
    }
}

/// The commits of a pull request, read in one page by a listing that completes.
fn read_pr_commits<B: Backend>(
    records: &Records<B>,
    heads: &PrHeads,
    commits: &[Commit],
) -> Option<i64> {
    records
        .pr_commits_page(
            &repo(),
            &PrCommitsPage {
                heads,
                since: now_ms(),
                position: 0,
                commits,
                ends: true,
            },
        )
        .expect("stored")
}

fn commit(id: &str, at: Option<i64>) -> Commit {
    Commit {
        repo: repo(),
        id: id.into(),
        author: CommitPerson {
            name: "Ada".into(),
            email: None,
            user_slug: Some("ada".into()),
        },
        author_timestamp: at,
        committer: None,
        committer_timestamp: None,
        parent_count: 1,
        summary: "s".into(),
    }
}

fn heads(id: u64, source: &str) -> PrHeads {
    PrHeads {
        id,
        source: source.into(),
        target: Some("t".into()),
    }
}

fn a_repo(slug: &str) -> Repo {
    Repo {
        id: 656,
        repo_ref: RepoRef {
            project_key: "P".into(),
            slug: slug.into(),
        },
        name: slug.into(),
        description: None,
        scm: "git".into(),
        state: None,
        public: false,
        archived: false,
        project: Project {
            key: "P".into(),
            id: 1,
            name: "P".into(),
            description: None,
            public: false,
            kind: bbdc_host::bindings::types::ProjectKind::Normal,
            url: None,
        },
        forkable: true,
        origin: None,
        url: None,
        clone_http: None,
        clone_ssh: None,
    }
}

fn change(
    ref_id: &str,
    is_tag: bool,
    from: Option<&str>,
    to: Option<&str>,
    kind: RefChangeKind,
) -> RefChange {
    RefChange {
        ref_id: ref_id.into(),
        name: ref_id.rsplit('/').next().unwrap_or_default().into(),
        is_tag,
        from_hash: from.map(str::to_owned),
        to_hash: to.map(str::to_owned),
        kind,
    }
}

on_both_backends!(a_repository_delivery_moves_refs_once_and_a_rename_moves_the_records);
fn a_repository_delivery_moves_refs_once_and_a_rename_moves_the_records<B: Backend>(
    records: &Records<B>,
) {
    let api = a_repo("r");
    records.repos(std::slice::from_ref(&api)).expect("listed");
    let refs = |r: &Records<B>, table: &str| -> Vec<(String, String, String)> {
        let column = if table == "tags" {
            "target"
        } else {
            "latest_commit"
        };
        texts(
            r,
            &format!("SELECT repo_slug, ref_id, {column} FROM {table} ORDER BY ref_id"),
        )
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone(), row[2].clone()))
        .collect()
    };
    let push = RepositoryEvent::RefsChanged(vec![
        change(
            "refs/heads/main",
            false,
            Some("c1"),
            Some("c2"),
            RefChangeKind::Update,
        ),
        change(
            "refs/heads/gone",
            false,
            Some("c0"),
            None,
            RefChangeKind::Delete,
        ),
        change("refs/tags/v1", true, None, Some("c1"), RefChangeKind::Add),
    ]);
    records
        .ref_page(
            &api.repo_ref,
            &RefPage {
                since: 0,
                branches: &[
                    Branch {
                        repo: api.repo_ref.clone(),
                        name: "gone".into(),
                        ref_id: "refs/heads/gone".into(),
                        latest_commit: Some("c0".into()),
                        is_default: false,
                    },
                    Branch {
                        repo: api.repo_ref.clone(),
                        name: "main".into(),
                        ref_id: "refs/heads/main".into(),
                        latest_commit: Some("c1".into()),
                        is_default: true,
                    },
                ],
                tags: &[],
                ends: Some(RefKind::Branch),
            },
        )
        .expect("refs");
    let delivery = RepositoryDelivery {
        request_id: Some("req-1"),
        received_at: 1,
        occurred_at: Some(1_780_000_000_000),
        repo: &api,
        event: &push,
    };
    assert_eq!(
        records.repository_delivery(&delivery).expect("stored"),
        Stored::New
    );
    let branches = vec![("r".into(), "refs/heads/main".into(), "c2".into())];
    let tags = vec![("r".into(), "refs/tags/v1".into(), "c1".into())];
    assert_eq!(refs(records, "branches"), branches);
    assert_eq!(refs(records, "tags"), tags);
    // The same delivery again changes nothing.
    assert_eq!(
        records.repository_delivery(&delivery).expect("answered"),
        Stored::Duplicate
    );
    // A rename: the refs follow the repository to its new slug.
    let renamed = a_repo("r2");
    let rename = RepositoryEvent::Modified(api.repo_ref.clone());
    records
        .repository_delivery(&RepositoryDelivery {
            request_id: Some("req-2"),
            received_at: 2,
            occurred_at: None,
            repo: &renamed,
            event: &rename,
        })
        .expect("stored");
    assert_eq!(refs(records, "branches")[0].0, "r2");
    assert_eq!(refs(records, "tags")[0].0, "r2");
    assert_eq!(
        texts(records, "SELECT slug FROM repos"),
        vec![vec!["r2".to_owned()]]
    );
}

/// (slug, id, deleted) of every stored repository, and (slug, pull request id) of every
/// stored pull request, sorted.
#[allow(clippy::type_complexity)]
fn keys<B: Backend>(r: &Records<B>) -> (Vec<(String, i64, i64)>, Vec<(String, i64)>) {
    let rows = |sql: &str| r.query(sql, &[]).expect("rows");
    let repos = rows("SELECT slug, id, deleted FROM repos ORDER BY 1")
        .into_iter()
        .map(|row| (text(&row[0]), int(&row[1]), int(&row[2])))
        .collect();
    let prs = rows("SELECT repo_slug, id FROM pull_requests ORDER BY 1, 2")
        .into_iter()
        .map(|row| (text(&row[0]), int(&row[1])))
        .collect();
    (repos, prs)
}

on_both_backends!(a_reused_key_never_merges_two_repositories);
fn a_reused_key_never_merges_two_repositories<B: Backend>(records: &Records<B>) {
    let with_id = |slug: &str, id: u64| Repo { id, ..a_repo(slug) };
    records.repos(&[with_id("api", 1)]).expect("listed");
    let pr = |slug: &str, id: i64| {
        records
            .execute(
                "INSERT INTO pull_requests (project_key, repo_slug, id, version) VALUES ('P', $1, $2, 0)",
                &vals![slug, id],
            )
            .expect("a pull request");
    };
    pr("api", 7);
    // Repository 1 renamed to `api-legacy`, and a new repository 2 created as `api`; the
    // listing names the new one first. Repository 1's records step aside, kept.
    records.repos(&[with_id("api", 2)]).expect("listed");
    assert_eq!(
        keys(records),
        (
            vec![("api".into(), 2, 0), ("api#1".into(), 1, 1)],
            vec![("api#1".into(), 7)]
        )
    );
    pr("api", 1);
    // Then the renamed one: found by its id, its records follow it.
    records.repos(&[with_id("api-legacy", 1)]).expect("listed");
    assert_eq!(
        keys(records),
        (
            vec![("api".into(), 2, 0), ("api-legacy".into(), 1, 0)],
            vec![("api".into(), 1), ("api-legacy".into(), 7)]
        )
    );
    // A repository whose id could not be read (0) moves nothing.
    records.repos(&[with_id("other", 0)]).expect("listed");
    assert_eq!(keys(records).1.len(), 2);
    assert!(keys(records).0.contains(&("api".into(), 2, 0)));
}

#[test]
fn a_file_from_before_the_pull_request_commit_columns_gains_them_on_open() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("old.db");
    rusqlite::Connection::open(&path)
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE pull_requests (project_key TEXT NOT NULL, repo_slug TEXT NOT NULL,
                 id INTEGER NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (project_key, repo_slug, id));
                 INSERT INTO pull_requests VALUES ('P', 'r', 1, 0);",
            )
        })
        .expect("an old file");
    let records = SqliteRecords::open(&path).expect("opens");
    read_pr_commits(&records, &heads(1, "s1"), &[commit("c1", Some(5))]);
    assert_eq!(
        records.first_commit_at(&repo(), &[1]).expect("read"),
        [(1, 5)].into_iter().collect()
    );
    // Opening it again adds nothing twice.
    drop(records);
    SqliteRecords::open(&path).expect("opens again");
}

on_both_backends!(a_pull_request_is_queued_for_its_commits_only_when_its_pair_changed);
fn a_pull_request_is_queued_for_its_commits_only_when_its_pair_changed<B: Backend>(
    records: &Records<B>,
) {
    records
        .execute(
            "INSERT INTO pull_requests (project_key, repo_slug, id, version) VALUES ('P', 'r', 1, 0), ('P', 'r', 2, 0)",
            &[],
        )
        .expect("two pull requests");
    records
        .want_pr_commits(&repo(), &[heads(1, "a"), heads(2, "b")])
        .expect("queued");
    assert_eq!(
        records.pr_commit_queue(&repo()).expect("the queue"),
        vec![heads(1, "a"), heads(2, "b")]
    );
    // Read for pair `a`, with the earliest author time kept; one commit has none.
    let first = read_pr_commits(
        records,
        &heads(1, "a"),
        &[
            commit("c2", Some(20)),
            commit("c1", Some(10)),
            commit("c0", None),
        ],
    );
    assert_eq!(first, Some(10));
    assert_eq!(
        records.pr_commit_queue(&repo()).expect("the queue"),
        vec![heads(2, "b")]
    );
    // The same pair again: nothing to read.
    records
        .want_pr_commits(&repo(), &[heads(1, "a")])
        .expect("queued");
    assert_eq!(
        records.pr_commit_queue(&repo()).expect("the queue").len(),
        1
    );
    // A newer pair queued while an older one was read stays queued.
    records
        .want_pr_commits(&repo(), &[heads(2, "b2")])
        .expect("queued");
    read_pr_commits(records, &heads(2, "b"), &[commit("x", Some(1))]);
    assert_eq!(
        records.pr_commit_queue(&repo()).expect("the queue"),
        vec![heads(2, "b2")]
    );
    let stored = records
        .query("SELECT COUNT(*) FROM pr_commits WHERE pr_id = 1", &[])
        .expect("a count");
    assert_eq!(stored, vec![vec![Value::Int(3)]]);
}
