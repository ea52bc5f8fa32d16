//! The shape-variation property: take valid bodies (a pull-request page, one pull request,
//! activities, a diff, repository, project and user pages, every webhook event, in every server
//! version), rewrite fields outside the identity the ways real servers and proxies do, and check
//! the connector reads the records it must:
//! - a field destroyed (missing, `null`, another type, another shape) reads exactly as if it were
//!   missing: only that field is empty, the record is kept;
//! - a value-preserving rewrite (unknown fields, `null` list entries, ISO 8601 dates) reads
//!   exactly as the original.
//!
//! Every field of every body is tried with every variation; then random combinations of several
//! rewrites at once. Natively, against the connector's own modules; the component and the
//! simulator are exercised end to end by `tests/versions.rs`.

use bbdc_connector::activities;
use bbdc_connector::diffstat::count_reader;
use bbdc_connector::fake::FakeHost;
use bbdc_connector::model::{Connection, RecordKind, RepoRef, WebhookRequest};
use bbdc_connector::normalize;
use bbdc_connector::paging::WirePage;
use bbdc_connector::pull_request_webhook::PullRequestEvents;
use bbdc_connector::webhook::handle;
use bbdc_connector::wire::{WireActivity, WirePullRequest};
use bbdc_sim::render::{Dialect, webhook_events};
use bbdc_sim::vary::{self, Path, Variation};
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::{World, WorldSpec};
use proptest::prelude::*;
use serde_json::Value;

/// What a body is, and so how the connector reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    PullRequestPage,
    PullRequest,
    ActivityPage,
    Diff,
    RepoPage,
    ProjectPage,
    UserPage,
    Webhook(&'static str),
}

/// The fields that make up a record's identity (rewriting them, or anything holding them, may
/// rightly make the record unreadable).
fn identity(kind: Kind) -> Vec<Path> {
    let specs: &[&str] = match kind {
        Kind::PullRequestPage => &["values", "values[].id"],
        Kind::PullRequest => &["id"],
        Kind::ActivityPage => &["values", "values[].action"],
        Kind::Diff => &[],
        Kind::RepoPage => &["values", "values[].slug", "values[].project.key"],
        Kind::ProjectPage => &["values", "values[].key"],
        Kind::UserPage => &["values"],
        Kind::Webhook(_) => &[
            "pullRequest.id",
            "pullRequest.toRef.repository.slug",
            "pullRequest.toRef.repository.project.key",
        ],
    };
    specs.iter().map(|s| vary::path(s)).collect()
}

/// Paging fields are the listing's, not a record's.
fn is_paging(kind: Kind, path: &[vary::Step]) -> bool {
    let page = matches!(
        kind,
        Kind::PullRequestPage
            | Kind::ActivityPage
            | Kind::RepoPage
            | Kind::ProjectPage
            | Kind::UserPage
    );
    page && path.len() == 1 && !vary::starts_with(path, &vary::path("values"))
}

fn listed_repo() -> RepoRef {
    RepoRef {
        project_key: "P1".into(),
        slug: "repo-1".into(),
    }
}

/// What the connector reads from `body`, printed for comparison (records and the number of
/// unidentifiable items; the wording of a parser's reason is not compared).
fn read(kind: Kind, body: &Value) -> String {
    let text = body.to_string();
    match kind {
        Kind::PullRequestPage => read_page(&text, RecordKind::PullRequest, |w: WirePullRequest| {
            normalize::pull_request(&w, &listed_repo())
        }),
        Kind::PullRequest => match serde_json::from_str::<WirePullRequest>(&text) {
            Ok(w) => format!("{:?}", normalize::pull_request(&w, &listed_repo())),
            Err(_) => "unreadable".into(),
        },
        Kind::ActivityPage => match serde_json::from_str::<WirePage<'_>>(&text) {
            Ok(p) => {
                let (acts, bad) = p.decode::<WireActivity>(RecordKind::Activity, "page");
                let base: WirePullRequest = serde_json::from_value(serde_json::json!(
                    {"id": 1, "state": "MERGED", "closedDate": 5, "author": {"user": {"name": "user1"}}}
                ))
                .expect("a minimal pull request");
                let mut pr = normalize::pull_request(&base, &listed_repo());
                activities::apply(&mut pr, acts);
                format!(
                    "{:?} {:?} {:?} {:?} {:?} unreadable={}",
                    pr.reviews,
                    pr.events,
                    pr.merged_by,
                    pr.merge_commit,
                    pr.first_review_at,
                    bad.len()
                )
            }
            Err(e) => format!("page error {e}"),
        },
        Kind::Diff => format!("{:?}", count_reader(text.as_bytes())),
        Kind::RepoPage => read_page(&text, RecordKind::Repository, normalize::repo),
        Kind::ProjectPage => read_page(&text, RecordKind::Project, normalize::project),
        Kind::UserPage => read_page(&text, RecordKind::User, normalize::user),
        Kind::Webhook(key) => {
            let host = FakeHost::new();
            let conn = Connection {
                base_url: "https://bb.example".into(),
                page_size: None,
            };
            let req = WebhookRequest {
                headers: vec![
                    ("X-Event-Key".into(), key.into()),
                    ("X-Request-Id".into(), "r-1".into()),
                ],
                body: text.into_bytes(),
            };
            format!("{:?}", handle::<PullRequestEvents, _>(&host, &conn, &req))
        }
    }
}

/// A page's items decoded as `W` and normalised by `f`, with the count of unidentifiable items.
fn read_page<W: serde::de::DeserializeOwned, T: std::fmt::Debug>(
    text: &str,
    kind: RecordKind,
    f: impl Fn(W) -> T,
) -> String {
    match serde_json::from_str::<WirePage<'_>>(text) {
        Ok(p) => {
            let (items, bad) = p.decode::<W>(kind, "page");
            let records: Vec<T> = items.into_iter().map(f).collect();
            format!("{records:?} unreadable={}", bad.len())
        }
        Err(e) => format!("page error {e}"),
    }
}

/// Every valid body of every kind, for every server version (made once).
fn bodies() -> &'static [(ServerVersion, Kind, Value)] {
    static BODIES: std::sync::OnceLock<Vec<(ServerVersion, Kind, Value)>> =
        std::sync::OnceLock::new();
    BODIES.get_or_init(make_bodies)
}

fn make_bodies() -> Vec<(ServerVersion, Kind, Value)> {
    let world = World::generate(&WorldSpec {
        seed: 3,
        projects: 1,
        repos_per_project: 1,
        prs_per_repo: 3,
        users: 4,
    });
    let mut out = Vec::new();
    for version in ServerVersion::ALL {
        let d = Dialect {
            version,
            ..Dialect::default()
        };
        let r = &*world.repo_now(0);
        let p = &r.prs[0];
        let prs: Vec<Value> = r.prs.iter().map(|p| d.pull_request(r, p, false)).collect();
        out.push((version, Kind::PullRequestPage, d.page(prs, 0, 25, 50)));
        out.push((version, Kind::PullRequest, d.pull_request(r, p, true)));
        let merged = r.prs.iter().find(|p| p.state == "MERGED").unwrap_or(p);
        let acts: Vec<Value> = merged
            .activities
            .iter()
            .rev()
            .map(|a| d.activity(merged, a))
            .collect();
        out.push((version, Kind::ActivityPage, d.page(acts, 0, 25, 50)));
        // A few lines per segment are enough: every line has the same fields.
        let mut small = p.clone();
        for f in &mut small.files {
            f.added = f.added.min(3);
            f.removed = f.removed.min(2);
        }
        out.push((version, Kind::Diff, d.diff(&small)));
        let repos: Vec<Value> = world.repos().map(|r| d.repo(&r)).collect();
        out.push((version, Kind::RepoPage, d.page(repos, 0, 25, 50)));
        let projects: Vec<Value> = world
            .projects
            .iter()
            .map(|k| bbdc_sim::render::project(k))
            .collect();
        out.push((version, Kind::ProjectPage, d.page(projects, 0, 25, 50)));
        let users: Vec<Value> = world
            .users
            .iter()
            .map(|u| bbdc_sim::render::user(u))
            .collect();
        out.push((version, Kind::UserPage, d.page(users, 0, 25, 50)));
        for (key, payload) in webhook_events(&d, r, p) {
            out.push((version, Kind::Webhook(key), payload));
        }
    }
    out
}

/// The fields of `body` a rewrite may touch.
fn variable_paths(kind: Kind, body: &Value) -> Vec<Path> {
    vary::field_paths(body)
        .into_iter()
        .filter(|p| !is_paging(kind, p))
        .collect()
}

/// The fields the exhaustive test rewrites one by one: all of them, except that on a page only
/// the first item's fields are (the others have the same shape, and stay as they are beside the
/// rewritten one), and the pull request every webhook event carries is rewritten field by field
/// in one event only (it is the same record in all of them; the other events have their own
/// fields rewritten).
fn exhaustive_paths(kind: Kind, body: &Value) -> Vec<Path> {
    let pull_request = vary::path("pullRequest");
    let later_items = |p: &Path| {
        matches!(p.get(1), Some(vary::Step::Index(i)) if *i > 0)
            && p.first() == Some(&vary::Step::Key("values".into()))
    };
    variable_paths(kind, body)
        .into_iter()
        .filter(|p| !later_items(p))
        .filter(|p| match kind {
            Kind::Webhook(key) if key != "pr:reviewer:approved" => {
                !vary::starts_with(p, &pull_request) || p.len() == 1
            }
            _ => true,
        })
        .collect()
}

/// Checks one body with one set of rewrites; returns a description of the failure, if any.
fn check(kind: Kind, body: &Value, rewrites: &[(Path, Variation)]) -> Result<(), String> {
    let protected = identity(kind);
    let mut varied = body.clone();
    let mut reference = body.clone();
    let mut applied = Vec::new();
    for (path, variation) in rewrites {
        if variation.is_destroying() && vary::covers_any(path, &protected) {
            continue;
        }
        // Both sides must still hold the field (an earlier rewrite may have removed a parent).
        if vary::get(&varied, path).is_none() || vary::get(&reference, path).is_none() {
            continue;
        }
        if vary::apply(&mut varied, path, *variation) {
            // The reference loses what is destroyed, and takes the value-preserving rewrites
            // too, so that later paths (list positions) point at the same fields on both sides.
            let mirrored = if variation.is_destroying() {
                Variation::Remove
            } else {
                *variation
            };
            vary::apply(&mut reference, path, mirrored);
            applied.push((path.clone(), *variation));
        }
    }
    let (got, want) = (read(kind, &varied), read(kind, &reference));
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{kind:?} with {applied:?}\n  read: {got}\n  want: {want}"
        ))
    }
}

#[test]
fn every_field_in_every_variation_reads_as_missing_or_unchanged() {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (version, kind, body) in bodies() {
        let (version, kind) = (*version, *kind);
        let original = read(kind, body);
        assert!(
            (!original.contains("unreadable=") || original.contains("unreadable=0"))
                && original != "unreadable"
                && !original.starts_with("Err(")
                && !original.starts_with("page error"),
            "{version} {kind:?}: the valid body itself must read: {original}"
        );
        for path in exhaustive_paths(kind, body) {
            for variation in Variation::ALL {
                checked += 1;
                if let Err(e) = check(kind, body, &[(path.clone(), variation)]) {
                    failures.push(format!("{version}: {e}"));
                }
            }
        }
    }
    assert!(checked > 10_000, "only {checked} cases were tried");
    assert!(
        failures.is_empty(),
        "{} of {checked} rewrites changed what was read:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_destroyed_identity_skips_only_that_record() {
    for (version, kind, body) in bodies() {
        let (version, kind) = (*version, *kind);
        let identity_field = match kind {
            Kind::PullRequestPage => "id",
            Kind::RepoPage => "slug",
            Kind::ActivityPage => "action",
            Kind::ProjectPage => "key",
            _ => continue,
        };
        let first = vec![
            vary::Step::Key("values".into()),
            vary::Step::Index(0),
            vary::Step::Key(identity_field.into()),
        ];
        let mut v = body.clone();
        assert!(
            vary::apply(&mut v, &first, Variation::Null),
            "{version} {kind:?}"
        );
        let text = read(kind, &v);
        assert!(
            text.contains("unreadable=1"),
            "{version} {kind:?}: the unidentifiable item is reported: {text}"
        );
        let total = body["values"].as_array().map_or(0, Vec::len);
        let mut kept = v.clone();
        if let Some(items) = kept["values"].as_array_mut() {
            items.remove(0);
        }
        assert_eq!(
            text.replace("unreadable=1", "unreadable=0"),
            read(kind, &kept),
            "{version} {kind:?}: the other {} items are read as without it",
            total - 1
        );
    }
}

/// Up to five rewrites of random fields of a random body.
fn rewrites() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
    (
        0usize..10_000,
        prop::collection::vec((0usize..10_000, 0usize..Variation::ALL.len()), 1..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn several_rewrites_at_once_read_as_those_fields_missing(case in rewrites()) {
        let all = bodies();
        let (version, kind, body) = &all[case.0 % all.len()];
        let (version, kind) = (*version, *kind);
        let paths = variable_paths(kind, body);
        prop_assume!(!paths.is_empty());
        let chosen: Vec<(Path, Variation)> = case
            .1
            .iter()
            .map(|(p, v)| (paths[p % paths.len()].clone(), Variation::ALL[*v]))
            .collect();
        if let Err(e) = check(kind, body, &chosen) {
            return Err(TestCaseError::fail(format!("{version}: {e}")));
        }
    }
}
