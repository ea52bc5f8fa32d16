//! Native tests of webhook handling against the in-memory host.

use super::*;
use crate::fake::FakeHost;
use crate::model::{Connection, SignatureCheck, WebhookRequest};
use crate::model::{PrState, ReviewerStatus};
use crate::webhook::{MAX_BODY_BYTES, PING, verdict};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec-9c2d";

/// The export, as the bindings call it.
fn handle_webhook(
    host: &FakeHost,
    conn: &Connection,
    req: &WebhookRequest,
) -> Result<WebhookOutcome, WebhookError> {
    crate::webhook::handle::<PullRequestEvents, _>(host, conn, req)
}

fn conn() -> Connection {
    Connection {
        base_url: "https://bb.example".into(),
        page_size: None,
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn user(slug: &str) -> Value {
    json!({"name": slug, "emailAddress": format!("{slug}@x"), "id": 1, "displayName": slug, "active": true, "slug": slug, "type": "NORMAL"})
}

fn pull_request(version: u32, state: &str) -> Value {
    let repo = json!({"slug": "api", "id": 1, "name": "api", "project": {"key": "PLAT", "id": 1, "name": "Platform", "type": "NORMAL"}});
    json!({
        "id": 42, "version": version, "title": "Add retries", "description": "why\r\nhow", "state": state,
        "open": state == "OPEN", "closed": state != "OPEN", "draft": false,
        "createdDate": 1_700_000_000_000i64, "updatedDate": 1_700_000_360_000i64,
        "fromRef": {"id": "refs/heads/retries", "displayId": "retries", "latestCommit": "a".repeat(40), "repository": repo},
        "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "b".repeat(40), "repository": repo},
        "locked": false,
        "author": {"user": user("alice"), "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
        "reviewers": [{"user": user("bob"), "role": "REVIEWER", "approved": false, "status": "UNAPPROVED"}],
        "participants": [],
        "links": {"self": [{"href": "https://bb.example/projects/PLAT/repos/api/pull-requests/42"}]}
    })
}

fn envelope(key: &str, version: u32, extra: Value) -> Value {
    let mut v = json!({"eventKey": key, "date": "2026-03-26T15:47:11+0530", "actor": user("bob"), "pullRequest": pull_request(version, "OPEN")});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

fn delivery(key: &str, id: &str, body: &[u8], signature: Option<String>) -> WebhookRequest {
    let mut headers = vec![
        ("X-Event-Key".to_string(), key.to_string()),
        ("X-Request-Id".to_string(), id.to_string()),
        (
            "Content-Type".to_string(),
            "application/json; charset=utf-8".to_string(),
        ),
    ];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature".into(), s));
    }
    WebhookRequest {
        headers,
        body: body.to_vec(),
    }
}

fn signed(key: &str, id: &str, body: &Value) -> WebhookRequest {
    let bytes = body.to_string().into_bytes();
    let sig = sign(&bytes);
    delivery(key, id, &bytes, Some(sig))
}

#[test]
fn every_handled_event_is_accepted_with_a_snapshot_and_a_refresh() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    for (n, key) in PR_EVENTS.iter().enumerate() {
        let extra = if key.starts_with("pr:reviewer:") && *key != "pr:reviewer:updated" {
            json!({"participant": {"user": user("bob"), "role": "REVIEWER", "approved": true, "status": "APPROVED"}, "previousStatus": "UNAPPROVED"})
        } else {
            json!({"comment": {"id": 5, "text": "nice"}, "previousTitle": "old"})
        };
        let req = signed(key, &format!("req-{n}"), &envelope(key, 1, extra));
        let out = handle_webhook(&host, &conn(), &req).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(out.result, WebhookResult::Accepted, "{key}");
        assert!(out.verified);
        assert_eq!(out.event_key, *key);
        let pr = out.pull_request.as_ref().unwrap();
        assert_eq!(
            (
                pr.id,
                pr.repo.project_key.as_str(),
                pr.repo.slug.as_str(),
                pr.version
            ),
            (42, "PLAT", "api", 1)
        );
        assert_eq!(out.occurred_at, Some(1_774_520_231_000), "{key}");
        if *key == "pr:deleted" {
            assert!(out.deleted && out.refresh.is_none());
        } else {
            assert_eq!(
                out.refresh,
                Some(RefreshRequest {
                    repo: pr.repo.clone(),
                    id: 42
                }),
                "{key}"
            );
        }
        if key.starts_with("pr:reviewer:") && *key != "pr:reviewer:updated" {
            let r = out.review.as_ref().unwrap();
            assert_eq!(
                (r.user.slug.as_str(), r.status, r.previous_status),
                (
                    "bob",
                    ReviewerStatus::Approved,
                    Some(ReviewerStatus::Unapproved)
                )
            );
        } else {
            assert!(out.review.is_none(), "{key}");
        }
    }
}

#[test]
fn needs_work_and_changes_requested_map_to_needs_work() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    for (i, (key, status)) in [
        ("pr:reviewer:needs_work", "NEEDS_WORK"),
        ("pr:reviewer:changes_requested", "CHANGES_REQUESTED"),
    ]
    .iter()
    .enumerate()
    {
        let body = envelope(
            key,
            1,
            json!({"participant": {"user": user("bob"), "status": status}, "previousStatus": "APPROVED"}),
        );
        let out = handle_webhook(&host, &conn(), &signed(key, &format!("nw-{i}"), &body)).unwrap();
        let r = out.review.unwrap();
        assert_eq!(
            (r.status, r.previous_status),
            (ReviewerStatus::NeedsWork, Some(ReviewerStatus::Approved))
        );
    }
}

#[test]
fn merged_carries_merge_facts() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let mut body = envelope("pr:merged", 3, json!({}));
    body["pullRequest"] = pull_request(3, "MERGED");
    body["pullRequest"]["closedDate"] = json!(1_700_000_900_000i64);
    body["pullRequest"]["properties"] =
        json!({"mergeCommit": {"displayId": "c0ffee1", "id": "c0ffee1234"}});
    let out = handle_webhook(&host, &conn(), &signed("pr:merged", "m1", &body)).unwrap();
    let pr = out.pull_request.unwrap();
    assert_eq!(pr.state, PrState::Merged);
    assert_eq!(pr.merged_at, Some(1_700_000_900_000));
    assert_eq!(pr.merge_commit.as_deref(), Some("c0ffee1234"));
    assert_eq!(pr.merged_by.map(|u| u.slug), Some("bob".into()));
}

#[test]
fn ping_is_answered_unsigned_and_nothing_rides_on_it() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let out = handle_webhook(
        &host,
        &conn(),
        &delivery(PING, "p1", br#"{"test": true}"#, None),
    )
    .unwrap();
    assert_eq!(
        (out.result, out.verified, out.pull_request.is_none()),
        (WebhookResult::Ignored, false, true)
    );
    assert!(host.storage.borrow().is_empty(), "a ping leaves no trace");
}

#[test]
fn other_event_keys_are_verified_then_ignored() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body = json!({"eventKey": "repo:refs_changed", "date": "2026-03-26T15:47:11+0000", "actor": user("bob"), "changes": []});
    let out = handle_webhook(&host, &conn(), &signed("repo:refs_changed", "r1", &body)).unwrap();
    assert_eq!(
        (out.result, out.event_key.as_str()),
        (WebhookResult::Ignored, "repo:refs_changed")
    );
    let unsigned = delivery("repo:refs_changed", "r2", body.to_string().as_bytes(), None);
    assert_eq!(
        handle_webhook(&host, &conn(), &unsigned),
        Err(WebhookError::MissingSignature)
    );
}

#[test]
fn rejections() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body = envelope("pr:opened", 1, json!({})).to_string().into_bytes();
    let missing = delivery("pr:opened", "x1", &body, None);
    assert_eq!(
        handle_webhook(&host, &conn(), &missing),
        Err(WebhookError::MissingSignature)
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let wrong = delivery("pr:opened", "x2", &tampered, Some(sign(&body)));
    assert!(matches!(
        handle_webhook(&host, &conn(), &wrong),
        Err(WebhookError::InvalidSignature(_))
    ));
    for bad in ["sha1=abcdef", "sha256=zz", "sha256", "md5=00"] {
        let req = delivery("pr:opened", "x3", &body, Some(bad.into()));
        assert!(
            matches!(
                handle_webhook(&host, &conn(), &req),
                Err(WebhookError::InvalidSignature(_))
            ),
            "{bad}"
        );
    }
    // Malformed bodies, correctly signed.
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    for bad in [
        &b"not json"[..],
        &[0xff, 0xfe, 0x00][..],
        b"[1,2]",
        br#"{"eventKey": "pr:opened"}"#,
        nested.as_bytes(),
    ] {
        let req = delivery("pr:opened", "x4", bad, Some(sign(bad)));
        assert!(
            matches!(
                handle_webhook(&host, &conn(), &req),
                Err(WebhookError::MalformedPayload(_))
            ),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let huge = vec![b' '; MAX_BODY_BYTES + 1];
    let req = delivery("pr:opened", "x5", &huge, Some(sign(&huge)));
    assert_eq!(
        handle_webhook(&host, &conn(), &req),
        Err(WebhookError::TooLarge(huge.len() as u64))
    );
    assert!(
        host.storage.borrow().is_empty(),
        "rejected deliveries leave no trace"
    );
}

#[test]
fn header_names_are_case_insensitive() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body = envelope("pr:opened", 1, json!({})).to_string().into_bytes();
    let req = WebhookRequest {
        headers: vec![
            ("x-event-key".into(), "pr:opened".into()),
            ("X-REQUEST-ID".into(), "c1".into()),
            ("x-hub-SIGNATURE".into(), sign(&body)),
        ],
        body,
    };
    let out = handle_webhook(&host, &conn(), &req).unwrap();
    assert_eq!(
        (out.result, out.request_id.as_deref(), out.verified),
        (WebhookResult::Accepted, Some("c1"), true)
    );
}

#[test]
fn without_a_secret_deliveries_are_accepted_unverified() {
    let host = FakeHost::new();
    let body = envelope("pr:opened", 1, json!({})).to_string().into_bytes();
    let out = handle_webhook(&host, &conn(), &delivery("pr:opened", "u1", &body, None)).unwrap();
    assert_eq!((out.result, out.verified), (WebhookResult::Accepted, false));
}

#[test]
fn a_replayed_request_id_spends_nothing_in_the_connector() {
    // The host de-duplicates in the commit that stores the records; a mark written here would
    // make the retry of a delivery whose storing failed look like a duplicate.
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let req = signed("pr:opened", "same-id", &envelope("pr:opened", 1, json!({})));
    for _ in 0..2 {
        let out = handle_webhook(&host, &conn(), &req).unwrap();
        assert_eq!(
            (out.result, out.request_id.as_deref()),
            (WebhookResult::Accepted, Some("same-id"))
        );
        assert!(out.pull_request.is_some());
    }
    assert!(
        host.storage.borrow().keys().all(|k| !k.contains("same-id")),
        "no key names the request id: {:?}",
        host.storage.borrow().keys().collect::<Vec<_>>()
    );
}

#[test]
fn an_older_version_after_a_newer_one_is_stale() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let newer = handle_webhook(
        &host,
        &conn(),
        &signed("pr:modified", "v5", &envelope("pr:modified", 5, json!({}))),
    )
    .unwrap();
    assert!(!newer.stale);
    let older = handle_webhook(
        &host,
        &conn(),
        &signed("pr:modified", "v4", &envelope("pr:modified", 4, json!({}))),
    )
    .unwrap();
    assert!(
        older.stale,
        "an older version must not overwrite newer data"
    );
    let same = handle_webhook(
        &host,
        &conn(),
        &signed(
            "pr:reviewer:approved",
            "v5b",
            &envelope(
                "pr:reviewer:approved",
                5,
                json!({"participant": {"user": user("bob"), "status": "APPROVED"}}),
            ),
        ),
    )
    .unwrap();
    assert!(
        !same.stale,
        "an approval does not bump the version and is not stale"
    );
}

#[test]
fn iso_dates_inside_the_pull_request() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let mut body = envelope("pr:opened", 1, json!({}));
    body["pullRequest"]["createdDate"] = json!("2026-08-19T17:27:55.266Z");
    body["pullRequest"]["updatedDate"] = json!("2026-08-19T17:28:00Z");
    let out = handle_webhook(&host, &conn(), &signed("pr:opened", "iso", &body)).unwrap();
    let pr = out.pull_request.unwrap();
    assert_eq!(
        (pr.created_at, pr.updated_at),
        (1_787_160_475_266, 1_787_160_480_000)
    );
}

#[test]
fn a_pr_event_without_a_pull_request_is_malformed() {
    let host = FakeHost::new().with_webhook_secret(SECRET);
    let body =
        json!({"eventKey": "pr:opened", "date": "2026-03-26T15:47:11+0530", "actor": user("bob")});
    assert!(matches!(
        handle_webhook(&host, &conn(), &signed("pr:opened", "np", &body)),
        Err(WebhookError::MalformedPayload(_))
    ));
}

/// The host's answer decides: the connector accepts only a matching signature, or any delivery
/// when no secret is configured, and says why it refuses the rest.
#[test]
fn the_hosts_signature_check_decides_and_the_reason_is_kept() {
    assert_eq!(verdict(SignatureCheck::Matches), Ok(true));
    assert_eq!(verdict(SignatureCheck::NoSecret), Ok(false));
    assert_eq!(
        verdict(SignatureCheck::Missing),
        Err(WebhookError::MissingSignature)
    );
    assert_eq!(
        verdict(SignatureCheck::Malformed("twice".into())),
        Err(WebhookError::InvalidSignature("twice".into()))
    );
    assert!(matches!(
        verdict(SignatureCheck::Mismatch),
        Err(WebhookError::InvalidSignature(why)) if why.contains("does not match")
    ));
}
