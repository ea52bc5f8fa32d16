//! One webhook delivery through the connector, as `bbdc webhook` and `bbdc serve` handle it: the
//! host's size cap and header checks, the call, persistence with de-duplication, the HTTP status
//! and the JSON report.
//!
//! De-duplication by `X-Request-Id` is the host's: the record store commits a delivery's records
//! and its mark in one transaction ([`RecordSink::delivery`]), so an answered `accepted` is
//! stored, and a delivery whose storing failed leaves no mark and is stored when retried.

use crate::output;
use crate::records::{DeliveredReview, Delivery, RecordSink, RepositoryDelivery, Stored};
use bbdc_host::bindings::api::WebhookRequest;
use bbdc_host::bindings::repository_events::{
    RefChangeKind, RepositoryEvent, RepositoryWebhookOutcome,
};
use bbdc_host::bindings::types::{WebhookError, WebhookOutcome, WebhookResult};
use bbdc_host::clock::now_ms;
use bbdc_host::runtime::{CallError, Runtime};
use bbdc_host::signature::SignatureCheck;
use bbdc_host::storage::StoreError;
use bbdc_host::tenant::Tenant;
use serde_json::{Value, json};
use std::sync::Arc;

/// Default body cap: Bitbucket payloads are a few KiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The largest body the connector itself accepts (its `MAX_BODY_BYTES`); a host cap above it
/// would only copy bodies into the sandbox to have them refused there.
pub const CONNECTOR_MAX_BODY: usize = 8 << 20;

/// Longest `X-Request-Id` accepted (Bitbucket sends a UUID, 36 characters); longer is a 400.
pub const MAX_REQUEST_ID_CHARS: usize = 200;

/// What became of one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    /// The HTTP status to answer.
    pub http_status: u16,
    /// `accepted`, `ignored`, `duplicate` or `rejected`.
    pub result: &'static str,
    /// The event key, as far as known.
    pub event_key: Option<String>,
    /// The request id, as far as known.
    pub request_id: Option<String>,
    /// Whether the signature was checked.
    pub verified: bool,
    /// The error code when rejected.
    pub error: Option<&'static str>,
    /// The error message when rejected.
    pub message: Option<String>,
    /// The connector's outcome of a pull-request delivery when not rejected.
    pub outcome: Option<WebhookOutcome>,
    /// The connector's outcome of a repository delivery (`repo:*`) when not rejected.
    pub repository: Option<RepositoryWebhookOutcome>,
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

fn rejected(
    status: u16,
    code: &'static str,
    message: String,
    headers: &[(String, String)],
) -> DeliveryReport {
    DeliveryReport {
        http_status: status,
        result: "rejected",
        event_key: header(headers, "x-event-key").map(|k| cut(&k)),
        request_id: header(headers, "x-request-id").map(|k| cut(&k)),
        verified: false,
        error: Some(code),
        message: Some(message),
        outcome: None,
        repository: None,
    }
}

/// At most [`MAX_REQUEST_ID_CHARS`] characters of a header value, for a report.
fn cut(v: &str) -> String {
    v.chars().take(MAX_REQUEST_ID_CHARS).collect()
}

/// A rejection the host decided before the connector saw the delivery.
pub fn unreadable_with(
    status: u16,
    code: &'static str,
    message: String,
    headers: &[(String, String)],
) -> DeliveryReport {
    rejected(status, code, message, headers)
}

/// Why the host refuses a delivery before the connector sees it: the HTTP status, the error
/// code and the message.
pub type Refusal = (u16, &'static str, String);

/// What the host can refuse without the connector: an oversized request id, and (with a
/// secret) a missing, malformed or wrong signature, so such a body is never copied into a
/// sandbox. Otherwise the signature check, made once here in the host
/// ([`bbdc_host::signature::check`]), for the connector to decide on
/// ([`Runtime::handle_checked_webhook`]). Public for hosts that run their own endpoint (the
/// benchmark's native baseline uses it).
pub fn precheck(
    secret: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<SignatureCheck, Refusal> {
    if let Some(id) = header(headers, "x-request-id")
        && id.chars().count() > MAX_REQUEST_ID_CHARS
    {
        return Err((
            400,
            "invalid_request_id",
            format!(
                "X-Request-Id is {} bytes; at most {MAX_REQUEST_ID_CHARS} characters are accepted",
                id.len()
            ),
        ));
    }
    let check = bbdc_host::signature::check(secret, headers, body);
    // Bitbucket never signs the ping: the connector answers it, and nothing rides on it.
    if header(headers, "x-event-key").as_deref() == Some("diagnostics:ping") {
        return Ok(check);
    }
    match check {
        SignatureCheck::Missing => Err((
            401,
            "missing_signature",
            "a secret is configured but the delivery is not signed".into(),
        )),
        SignatureCheck::Malformed(why) => Err((403, "invalid_signature", why)),
        SignatureCheck::Mismatch => Err((
            403,
            "invalid_signature",
            "the signature does not match the body".into(),
        )),
        check @ (SignatureCheck::Matches | SignatureCheck::NoSecret) => Ok(check),
    }
}

/// The report for a body over the cap, when the host stopped reading it.
pub fn too_large(max_body: usize, headers: &[(String, String)]) -> DeliveryReport {
    rejected(
        413,
        "too_large",
        format!("the body is over the limit of {max_body} bytes"),
        headers,
    )
}

/// The report for a body that could not be read.
pub fn unreadable(message: String, headers: &[(String, String)]) -> DeliveryReport {
    rejected(400, "malformed_payload", message, headers)
}

/// Handles one delivery. With a `sink`, accepted deliveries are persisted: the snapshot (unless
/// stale), the review change, the deletion.
pub fn handle(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    secret: Option<&str>,
    max_body: usize,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    sink: Option<&dyn RecordSink>,
) -> DeliveryReport {
    let max_body = max_body.min(CONNECTOR_MAX_BODY);
    if body.len() > max_body {
        return rejected(
            413,
            "too_large",
            format!("the body is {} bytes; the limit is {max_body}", body.len()),
            &headers,
        );
    }
    let check = match precheck(secret, &headers, &body) {
        Ok(check) => check,
        Err((status, code, message)) => return rejected(status, code, message, &headers),
    };
    let req = WebhookRequest { headers, body };
    let answer = match ask(runtime, tenant, check, &req) {
        Ok(answer) => answer,
        Err(report) => return *report,
    };
    let (result, event_key, request_id, verified) = answer.head();
    let mut report = answered(result, event_key, request_id, verified);
    if let (Some(sink), WebhookResult::Accepted) = (sink, result)
        && let Some(outcome) = answer.store(sink)
        && !stored(&mut report, outcome)
    {
        return report;
    }
    match answer {
        Answer::PullRequest(o) => report.outcome = Some(*o),
        Answer::Repository(o) => report.repository = Some(*o),
    }
    report
}

/// The connector's answer to a delivery: each family of events has its export.
enum Answer {
    /// `handle-webhook`'s.
    PullRequest(Box<WebhookOutcome>),
    /// `handle-repository-webhook`'s (`repo:*`).
    Repository(Box<RepositoryWebhookOutcome>),
}

impl Answer {
    /// What every answer tells: the result, the event key, the request id, whether verified.
    fn head(&self) -> (WebhookResult, &str, Option<&str>, bool) {
        match self {
            Answer::PullRequest(o) => (o.result, &o.event_key, o.request_id.as_deref(), o.verified),
            Answer::Repository(o) => (o.result, &o.event_key, o.request_id.as_deref(), o.verified),
        }
    }

    /// Stores an accepted answer's records with the delivery's mark, in one transaction: the
    /// pull request's snapshot (unless stale), review change and deletion, or the repository
    /// and its changed refs. `None` when the answer holds nothing to store.
    fn store(&self, sink: &dyn RecordSink) -> Option<Result<Stored, StoreError>> {
        match self {
            Answer::PullRequest(o) => {
                let pr = o.pull_request.as_ref()?;
                Some(sink.delivery(&Delivery {
                    request_id: o.request_id.as_deref(),
                    received_at: now_ms(),
                    pull_request: pr,
                    stale: o.stale,
                    review: o.review.as_ref().map(|change| DeliveredReview {
                        change,
                        at: o.occurred_at.unwrap_or(pr.updated_at),
                    }),
                    deleted: o.deleted,
                }))
            }
            Answer::Repository(o) => {
                let (repo, event) = (o.repo.as_ref()?, o.event.as_ref()?);
                Some(sink.repository_delivery(&RepositoryDelivery {
                    request_id: o.request_id.as_deref(),
                    received_at: now_ms(),
                    occurred_at: o.occurred_at,
                    repo,
                    event,
                }))
            }
        }
    }
}

/// The connector's answer to `req`, from the export for its event key; the report to send
/// instead when the connector refused it or the host failed. A 0.1.0 component, which cannot
/// read repository events, has a repository delivery answered `ignored` (Bitbucket would retry
/// an error forever).
fn ask(
    runtime: &Runtime,
    tenant: &Arc<Tenant>,
    check: SignatureCheck,
    req: &WebhookRequest,
) -> Result<Answer, Box<DeliveryReport>> {
    let event_key = header(&req.headers, "x-event-key");
    let answer = if event_key.as_deref().is_some_and(|k| k.starts_with("repo:")) {
        runtime
            .handle_checked_repository_webhook(tenant, check, req)
            .map(|o| Answer::Repository(Box::new(o)))
    } else {
        runtime
            .handle_checked_webhook(tenant, check, req)
            .map(|o| Answer::PullRequest(Box::new(o)))
    };
    answer.map_err(|e| {
        Box::new(match e {
            CallError::Host(bbdc_host::runtime::HostError::Unsupported(u)) => {
                tracing::info!("repository event ignored: {u}");
                answered(
                    WebhookResult::Ignored,
                    &event_key.unwrap_or_default(),
                    header(&req.headers, "x-request-id").as_deref(),
                    false,
                )
            }
            e => call_rejected(e, &req.headers),
        })
    })
}

/// The report of a delivery the connector answered with `result`.
fn answered(
    result: WebhookResult,
    event_key: &str,
    request_id: Option<&str>,
    verified: bool,
) -> DeliveryReport {
    DeliveryReport {
        http_status: 200,
        result: match result {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Ignored => "ignored",
        },
        event_key: Some(cut(event_key)),
        request_id: request_id.map(cut),
        verified,
        error: None,
        message: None,
        outcome: None,
        repository: None,
    }
}

/// Notes in `report` what storing a delivery came to; `false` when nothing more may be done
/// with it: a duplicate (stored before: no second effect, and nothing to refresh), or not
/// stored and no mark (answered 500 so that Bitbucket retries and the retry stores it; nothing
/// of the outcome is acted on, so no refresh is queued for what was not stored).
fn stored(report: &mut DeliveryReport, result: Result<Stored, StoreError>) -> bool {
    match result {
        Ok(Stored::New) => true,
        Ok(Stored::Duplicate) => {
            report.result = "duplicate";
            false
        }
        Err(e) => {
            report.http_status = 500;
            report.result = "rejected";
            report.error = Some("storage");
            report.message = Some(bbdc_host::errors::chain(&e));
            false
        }
    }
}

/// The report of a delivery the connector refused, or the host failed.
fn call_rejected(e: CallError<WebhookError>, headers: &[(String, String)]) -> DeliveryReport {
    match e {
        CallError::Connector(e) => {
            let (status, code, message) = match e {
                WebhookError::MissingSignature => (
                    401,
                    "missing_signature",
                    "a secret is configured but the delivery is not signed".to_string(),
                ),
                WebhookError::InvalidSignature(m) => (403, "invalid_signature", m),
                WebhookError::MalformedPayload(m) => (400, "malformed_payload", m),
                WebhookError::TooLarge(n) => (413, "too_large", format!("{n} bytes")),
            };
            rejected(status, code, message, headers)
        }
        CallError::Host(h) => {
            let (code, message) = output::host_error(&h);
            let mut r = rejected(500, "internal", message, headers);
            r.error = Some(code);
            r
        }
    }
}

/// The `repository` object of a report: the repository and what happened to it.
fn repository_json(o: &RepositoryWebhookOutcome) -> Value {
    let repo = o.repo.as_ref();
    let mut v = json!({
        "project_key": repo.map(|r| &r.repo_ref.project_key),
        "slug": repo.map(|r| &r.repo_ref.slug),
        "id": repo.map(|r| r.id),
    });
    match &o.event {
        Some(RepositoryEvent::Modified(before)) => {
            v["previous"] = json!({"project_key": before.project_key, "slug": before.slug});
        }
        Some(RepositoryEvent::RefsChanged(changes)) => {
            v["changes"] = changes
                .iter()
                .map(|c| {
                    json!({
                        "ref_id": c.ref_id, "name": c.name, "is_tag": c.is_tag,
                        "from": c.from_hash, "to": c.to_hash,
                        "kind": match c.kind {
                            RefChangeKind::Add => "add",
                            RefChangeKind::Update => "update",
                            RefChangeKind::Delete => "delete",
                        },
                    })
                })
                .collect();
        }
        None => {}
    }
    v
}

/// The JSON object `bbdc webhook --json` prints (and `bbdc serve` answers).
pub fn report_json(r: &DeliveryReport) -> Value {
    let o = r.outcome.as_ref();
    json!({
        "http_status": r.http_status,
        "result": r.result,
        "event_key": r.event_key,
        "request_id": r.request_id,
        "verified": r.verified,
        "error": r.error,
        "message": r.message,
        "stale": o.map(|o| o.stale),
        "deleted": o.map(|o| o.deleted),
        "pull_request": o.and_then(|o| o.pull_request.as_ref()).map(output::pull_request_json),
        "repository": r.repository.as_ref().map(repository_json),
        "review": o.and_then(|o| o.review.as_ref()).map(|c| json!({
            "user": c.user.slug,
            "status": output::reviewer_status(c.status),
            "previous_status": c.previous_status.map(output::reviewer_status),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(secret: &str, body: &[u8]) -> String {
        bbdc_sim::signature(secret, body)
    }

    fn with(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_host_refuses_what_it_can_tell_before_the_sandbox_sees_it() {
        let body = br#"{"eventKey":"pr:opened"}"#;
        let good = signed("s", body);
        let code = |h: &[(&str, &str)]| {
            precheck(Some("s"), &with(h), body)
                .map_err(|r| (r.0, r.1))
                .err()
        };
        assert_eq!(
            code(&[("X-Event-Key", "pr:opened")]),
            Some((401, "missing_signature"))
        );
        assert_eq!(
            code(&[("X-Hub-Signature", "sha1=abc")]),
            Some((403, "invalid_signature"))
        );
        let wrong = signed("other", body);
        assert_eq!(
            code(&[("X-Hub-Signature", wrong.as_str())]),
            Some((403, "invalid_signature"))
        );
        assert_eq!(
            code(&[
                ("X-Hub-Signature", good.as_str()),
                ("X-Hub-Signature", good.as_str())
            ]),
            Some((403, "invalid_signature")),
            "an ambiguous signature"
        );
        assert_eq!(
            precheck(
                Some("s"),
                &with(&[("x-hub-signature", good.as_str())]),
                body
            ),
            Ok(SignatureCheck::Matches),
            "the check is handed on, not made again"
        );
        // A ping is never signed: it goes on to the connector, which answers it.
        assert_eq!(
            precheck(
                Some("s"),
                &with(&[("X-Event-Key", "diagnostics:ping")]),
                body
            ),
            Ok(SignatureCheck::Missing)
        );
        assert_eq!(
            precheck(None, &with(&[]), body),
            Ok(SignatureCheck::NoSecret)
        );
        let long = "x".repeat(MAX_REQUEST_ID_CHARS + 1);
        assert_eq!(
            code(&[
                ("X-Request-Id", long.as_str()),
                ("X-Hub-Signature", good.as_str())
            ]),
            Some((400, "invalid_request_id"))
        );
    }

    #[test]
    fn the_cap_matches_the_connectors_own() {
        assert_eq!(CONNECTOR_MAX_BODY, bbdc_connector::webhook::MAX_BODY_BYTES);
    }
}
