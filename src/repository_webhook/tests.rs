//! Native tests of repository deliveries against the in-memory host. Every well-formed payload
//! is held against the reference's schemas for its parts (the repository, the refs, the actor).

use super::*;
use crate::fake::FakeHost;
use crate::model::RepoRef;
use crate::model::{Connection, WebhookRequest};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-repo";

/// The export, as the bindings call it.
fn handle_repository_webhook(
    host: &FakeHost,
    conn: &Connection,
    req: &WebhookRequest,
) -> Result<RepositoryWebhookOutcome, WebhookError> {
    crate::webhook::handle::<RepositoryEvents, _>(host, conn, req)
}

fn conn() -> Connection {
    Connection {
        base_url: "https://bb.example".into(),
        page_size: None,
    }
}

fn user(slug: &str) -> Value {
    json!({"name": slug, "emailAddress": format!("{slug}@x"), "id": 7, "displayName": slug, "active": true, "slug": slug, "type": "NORMAL"})
}

fn repository(slug: &str) -> Value {
    json!({"slug": slug, "id": 656, "name": slug, "scmId": "git", "state": "AVAILABLE", "forkable": true, "public": false,
           "project": {"key": "PLAT", "id": 3, "name": "Platform", "public": false, "type": "NORMAL"},
           "links": {"self": [{"href": format!("https://bb.example/projects/PLAT/repos/{slug}/browse")}]}})
}

fn signed(key: &str, body: &Value) -> WebhookRequest {
    crate::reference::assert_webhook(key, body);
    sign(key, body)
}

/// A delivery signed without holding its body against the reference: for bodies that are
/// deliberately not its shape.
fn sign(key: &str, body: &Value) -> WebhookRequest {
    let bytes = body.to_string().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
    mac.update(&bytes);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    WebhookRequest {
        headers: vec![
            ("X-Event-Key".into(), key.into()),
            ("X-Request-Id".into(), "d0b4c1e2".into()),
            ("X-Hub-Signature".into(), signature),
        ],
        body: bytes,
    }
}

/// A change as (ref, name, tag, from, to, kind).
type Seen<'a> = (
    &'a str,
    &'a str,
    bool,
    Option<&'a str>,
    Option<&'a str>,
    RefChangeKind,
);

const A: &str = "1111111111111111111111111111111111111111";
const B: &str = "2222222222222222222222222222222222222222";
const ZERO: &str = "0000000000000000000000000000000000000000";

#[test]
fn a_push_names_each_ref_it_created_moved_or_deleted() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body = json!({
        "eventKey": "repo:refs_changed", "date": "2026-11-24T10:00:00+0000", "actor": user("ada"),
        "repository": repository("api"),
        "changes": [
            {"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"}, "refId": "refs/heads/main",
             "fromHash": A, "toHash": B, "type": "UPDATE"},
            {"ref": {"id": "refs/tags/v2", "displayId": "v2", "type": "TAG"}, "refId": "refs/tags/v2",
             "fromHash": ZERO, "toHash": B, "type": "ADD"},
            {"ref": {"id": "refs/heads/old", "displayId": "old", "type": "BRANCH"}, "refId": "refs/heads/old",
             "fromHash": A, "toHash": ZERO, "type": "DELETE"}
        ]
    });
    let out = handle_repository_webhook(&host, &conn(), &signed("repo:refs_changed", &body))
        .expect("accepted");
    assert_eq!(out.result, WebhookResult::Accepted);
    assert!(out.verified);
    assert_eq!(out.request_id.as_deref(), Some("d0b4c1e2"));
    assert_eq!(out.occurred_at, Some(1_795_514_400_000));
    let repo = out.repo.expect("the repository");
    assert_eq!((repo.id, repo.repo_ref.slug.as_str()), (656, "api"));
    let Some(RepositoryEvent::RefsChanged(changes)) = out.event else {
        panic!("a push: {:?}", out.event);
    };
    let seen: Vec<Seen<'_>> = changes
        .iter()
        .map(|c| {
            (
                c.ref_id.as_str(),
                c.name.as_str(),
                c.is_tag,
                c.from_hash.as_deref(),
                c.to_hash.as_deref(),
                c.kind,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "refs/heads/main",
                "main",
                false,
                Some(A),
                Some(B),
                RefChangeKind::Update
            ),
            (
                "refs/tags/v2",
                "v2",
                true,
                None,
                Some(B),
                RefChangeKind::Add
            ),
            (
                "refs/heads/old",
                "old",
                false,
                Some(A),
                None,
                RefChangeKind::Delete
            ),
        ]
    );
}

#[test]
fn odd_changes_are_left_out_and_the_rest_kept() {
    // Deliberately not the documented shape: changes a proxy or an old server might send.
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body = json!({
        "eventKey": "repo:refs_changed", "repository": repository("api"),
        "changes": [
            "not an object",
            {"refId": "refs/heads/x", "type": "MERGE"},
            {"ref": {"displayId": "nothing"}, "type": "ADD"},
            {"refId": "refs/tags/v1", "toHash": A, "type": "add", "fromHash": 5},
            null
        ]
    });
    let bytes = body.to_string().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
    mac.update(&bytes);
    let req = WebhookRequest {
        headers: vec![
            ("X-Event-Key".into(), "repo:refs_changed".into()),
            (
                "X-Hub-Signature".into(),
                format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
            ),
        ],
        body: bytes,
    };
    let out = handle_repository_webhook(&host, &conn(), &req).expect("accepted");
    let Some(RepositoryEvent::RefsChanged(changes)) = out.event else {
        panic!("a push: {:?}", out.event);
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            changes[0].name.as_str(),
            changes[0].is_tag,
            changes[0].from_hash.as_deref()
        ),
        ("v1", true, None)
    );
}

#[test]
fn a_rename_gives_the_key_before_and_the_repository_now() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body = json!({"eventKey": "repo:modified", "date": "2026-11-24T10:00:00+0000", "actor": user("ada"),
                      "old": repository("api"), "new": repository("api-gateway")});
    let out = handle_repository_webhook(&host, &conn(), &signed("repo:modified", &body))
        .expect("accepted");
    assert_eq!(out.result, WebhookResult::Accepted);
    let repo = out.repo.expect("the repository now");
    assert_eq!((repo.id, repo.repo_ref.slug.as_str()), (656, "api-gateway"));
    assert_eq!(
        out.event,
        Some(RepositoryEvent::Modified(RepoRef {
            project_key: "PLAT".into(),
            slug: "api".into()
        }))
    );
}

#[test]
fn bad_deliveries_are_typed_errors_and_other_events_are_ignored() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    // Unsigned while a secret is configured.
    let mut req = signed(
        "repo:refs_changed",
        &json!({"eventKey": "repo:refs_changed", "repository": repository("api"), "changes": []}),
    );
    req.headers.retain(|(k, _)| k != "X-Hub-Signature");
    assert_eq!(
        handle_repository_webhook(&host, &conn(), &req),
        Err(WebhookError::MissingSignature)
    );
    // No repository to name.
    let req = signed(
        "repo:refs_changed",
        &json!({"eventKey": "repo:refs_changed", "changes": []}),
    );
    assert!(matches!(
        handle_repository_webhook(&host, &conn(), &req),
        Err(WebhookError::MalformedPayload(_))
    ));
    let req = signed(
        "repo:modified",
        &json!({"eventKey": "repo:modified", "old": repository("a"), "new": {"slug": "b"}}),
    );
    assert!(matches!(
        handle_repository_webhook(&host, &conn(), &req),
        Err(WebhookError::MalformedPayload(_))
    ));
    // A fork is verified and ignored; so is a pull request's event sent here.
    for key in ["repo:forked", "pr:opened"] {
        let req = signed(
            key,
            &json!({"eventKey": key, "repository": repository("api")}),
        );
        let out = handle_repository_webhook(&host, &conn(), &req).expect("verified");
        assert_eq!(
            (out.result, out.event),
            (WebhookResult::Ignored, None),
            "{key}"
        );
    }
    // The ping, unsigned, is answered.
    let ping = WebhookRequest {
        headers: vec![("X-Event-Key".into(), "diagnostics:ping".into())],
        body: b"{\"test\": true}".to_vec(),
    };
    let out = handle_repository_webhook(&host, &conn(), &ping).expect("the ping");
    assert_eq!(out.result, WebhookResult::Ignored);
}

/// A repository id that cannot be read leaves the repository without one (the host keeps what
/// it stored); an integer past a Java long is refused as malformed, a 400 that Bitbucket does
/// not send again, instead of a failure to store it that it would retry for ever.
#[test]
fn an_unreadable_repository_id_is_missing_and_one_out_of_range_is_refused() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let push = |id: Value| {
        let mut repo = repository("api");
        repo["id"] = id;
        sign(
            "repo:refs_changed",
            &json!({"eventKey": "repo:refs_changed", "repository": repo, "changes": []}),
        )
    };
    for unreadable in [
        Value::Null,
        json!(-109),
        json!("109"),
        json!(109.5),
        json!({"id": 109}),
    ] {
        let out = handle_repository_webhook(&host, &conn(), &push(unreadable.clone()))
            .expect("accepted without an id");
        let repo = out.repo.expect("the repository");
        assert_eq!(repo.id, 0, "{unreadable}: no id, rather than a wrong one");
        assert_eq!(repo.repo_ref.slug, "api");
    }
    let mut missing = repository("api");
    missing.as_object_mut().expect("an object").remove("id");
    let req = sign(
        "repo:refs_changed",
        &json!({"eventKey": "repo:refs_changed", "repository": missing, "changes": []}),
    );
    assert_eq!(
        handle_repository_webhook(&host, &conn(), &req)
            .expect("accepted")
            .repo
            .map(|r| r.id),
        Some(0)
    );
    for (out_of_range, shown) in [
        ("9223372036854775808", "9223372036854775808"),
        ("18446744073709551615", "18446744073709551615"),
        (
            "123456789012345678901234567890123456789012345",
            "1234567890123456789012345678901234567890",
        ),
    ] {
        let body = format!(
            r#"{{"eventKey": "repo:refs_changed", "changes": [], "repository": {{"slug": "api", "id": {out_of_range}, "project": {{"key": "PLAT"}}}}}}"#
        );
        let mut req = sign("repo:refs_changed", &json!(null));
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        req.headers.retain(|(k, _)| k != "X-Hub-Signature");
        req.headers.push(("X-Hub-Signature".into(), signature));
        req.body = body.into_bytes();
        match handle_repository_webhook(&host, &conn(), &req) {
            Err(WebhookError::MalformedPayload(why)) => assert!(
                why.contains(&format!("repository.id {shown} is beyond")),
                "{why}"
            ),
            other => panic!("{out_of_range}: {other:?}"),
        }
    }
    // The largest real id is kept as it is.
    let out = handle_repository_webhook(&host, &conn(), &push(json!(i64::MAX))).expect("accepted");
    assert_eq!(out.repo.map(|r| r.id), Some(i64::MAX as u64));
}
