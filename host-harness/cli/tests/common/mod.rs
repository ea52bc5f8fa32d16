//! Fixtures shared by the host's CLI tests (each test file declares `mod reference` beside this).

use serde_json::{Value, json};

/// A `pr:reviewer:approved` payload for pull request `pr` at `version` of PLAT/api, checked
/// against the reference's webhook schema.
pub fn approval(pr: u64, version: u32) -> Value {
    let repo = json!({"slug": "api", "project": {"key": "PLAT"}});
    let body = json!({
        "eventKey": "pr:reviewer:approved", "date": "2026-03-26T15:47:11+0530",
        "actor": {"name": "bob", "slug": "bob"},
        "participant": {"user": {"name": "bob", "slug": "bob"}, "role": "REVIEWER", "approved": true, "status": "APPROVED"},
        "previousStatus": "UNAPPROVED",
        "pullRequest": {"id": pr, "version": version, "title": "T", "state": "OPEN", "createdDate": 1, "updatedDate": 2,
            "fromRef": {"id": "refs/heads/f", "displayId": "f", "latestCommit": "a", "repository": repo},
            "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "b", "repository": repo},
            "author": {"user": {"name": "alice", "slug": "alice"}}}
    });
    crate::reference::assert_webhook("pr:reviewer:approved", &body);
    body
}

/// The bytes of `approval(pr, version)` and their `X-Hub-Signature` under `secret`.
pub fn signed_approval(secret: &str, pr: u64, version: u32) -> (Vec<u8>, String) {
    let body = approval(pr, version).to_string().into_bytes();
    let sig = bbdc_sim::signature(secret, &body);
    (body, sig)
}
