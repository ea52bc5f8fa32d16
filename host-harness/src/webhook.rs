//! One webhook delivery through the connector, as `bbdc webhook` and `bbdc serve` handle it: the
//! host's size cap, the call, the HTTP status, persistence and the JSON report.

use crate::bindings::api::WebhookRequest;
use crate::bindings::types::{WebhookError, WebhookOutcome, WebhookResult};
use crate::output;
use crate::records::RecordSink;
use crate::runtime::{CallError, Runtime};
use crate::state::Tenant;
use serde_json::{Value, json};
use std::sync::Arc;

/// Default body cap: Bitbucket payloads are a few KiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

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
    /// The connector's outcome when not rejected.
    pub outcome: Option<WebhookOutcome>,
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
        event_key: header(headers, "x-event-key"),
        request_id: header(headers, "x-request-id"),
        verified: false,
        error: Some(code),
        message: Some(message),
        outcome: None,
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
    if body.len() > max_body {
        return rejected(
            413,
            "too_large",
            format!("the body is {} bytes; the limit is {max_body}", body.len()),
            &headers,
        );
    }
    let req = WebhookRequest { headers, body };
    let outcome = match runtime.handle_webhook(tenant, secret, &req) {
        Ok(o) => o,
        Err(CallError::Connector(e)) => {
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
            return rejected(status, code, message, &req.headers);
        }
        Err(CallError::Host(h)) => {
            let (code, message) = output::host_error(&h);
            let mut r = rejected(500, "internal", message, &req.headers);
            r.error = Some(if code == "internal" { "internal" } else { code });
            return r;
        }
    };
    let mut report = DeliveryReport {
        http_status: 200,
        result: match outcome.result {
            WebhookResult::Accepted => "accepted",
            WebhookResult::Ignored => "ignored",
            WebhookResult::Duplicate => "duplicate",
        },
        event_key: Some(outcome.event_key.clone()),
        request_id: outcome.request_id.clone(),
        verified: outcome.verified,
        error: None,
        message: None,
        outcome: None,
    };
    if let (Some(sink), WebhookResult::Accepted) = (sink, outcome.result)
        && let Err(e) = persist(sink, &outcome)
    {
        // Not persisted: answer 500 so Bitbucket reports a failed delivery.
        report.http_status = 500;
        report.error = Some("storage");
        report.message = Some(e.to_string());
    }
    report.outcome = Some(outcome);
    report
}

fn persist(sink: &dyn RecordSink, o: &WebhookOutcome) -> Result<(), crate::records::RecordError> {
    let Some(pr) = &o.pull_request else {
        return Ok(());
    };
    if !o.stale {
        sink.pull_requests(std::slice::from_ref(pr))?;
    }
    if let Some(change) = &o.review {
        sink.review_change(
            &pr.repo,
            pr.id,
            change,
            o.occurred_at.unwrap_or(pr.updated_at),
        )?;
    }
    if o.deleted {
        sink.pull_request_deleted(&pr.repo, pr.id)?;
    }
    Ok(())
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
        "review": o.and_then(|o| o.review.as_ref()).map(|c| json!({
            "user": c.user.slug,
            "status": output::reviewer_status(c.status),
            "previous_status": c.previous_status.map(output::reviewer_status),
        })),
    })
}
