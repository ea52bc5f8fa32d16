//! Webhook deliveries: verification, interpretation and de-duplication.
//!
//! - With a secret configured, every delivery but `diagnostics:ping` must carry
//!   `X-Hub-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body bytes. The host holds the
//!   secret and checks the signature ([`Host::check_signature`]); the connector never sees the
//!   secret, and decides on the host's answer. Bitbucket sends the ping unsigned even when a
//!   secret is set; it is answered and nothing else rides on it.
//! - Pull-request events become the same pull-request record as sync (a snapshot from the
//!   payload), plus the reviewer's status change for reviewer events, the deletion for
//!   `pr:deleted`, and what the host should refresh with `fetch-pull-request`.
//! - A payload whose pull-request version is older than one already handled is marked `stale`
//!   so it never overwrites newer data. De-duplication by `X-Request-Id` is the host's: only the
//!   host can make "seen" and "stored" one commit, so the connector reports the id and spends
//!   nothing (a mark written here, before the host stored the records, lost every delivery
//!   whose storing failed: its retry was answered as a duplicate).
//! - Anything that is not a Bitbucket payload is a typed [`WebhookError`], never a trap.

use crate::host::Host;
use crate::model::{
    Connection, PrCompleteness, PullRequest, RefreshRequest, ReviewChange, SignatureCheck, User,
    WebhookError, WebhookOutcome, WebhookRequest, WebhookResult,
};
use crate::normalize;
use crate::paging::clean_reason;
use crate::timestamps::EpochMillis;
use crate::wire::{WireParticipant, WirePullRequest, WireUser};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_with::{DefaultOnError, serde_as};

/// Largest body the connector reads (hosts cap lower; 1 MiB by default).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The event Bitbucket sends for "Test connection".
pub const PING: &str = "diagnostics:ping";

/// Pull-request events the connector interprets; any other key is verified and ignored.
pub const PR_EVENTS: &[&str] = &[
    "pr:opened",
    "pr:modified",
    "pr:from_ref_updated",
    "pr:reviewer:approved",
    "pr:reviewer:unapproved",
    "pr:reviewer:needs_work",
    "pr:reviewer:changes_requested",
    "pr:reviewer:updated",
    "pr:declined",
    "pr:merged",
    "pr:deleted",
    "pr:comment:added",
    "pr:comment:edited",
    "pr:comment:deleted",
];

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// What the connector makes of the host's signature check: whether the delivery is verified
/// (`false`: no secret is configured, so it is accepted unverified), or why it is refused.
pub fn verdict(check: SignatureCheck) -> Result<bool, WebhookError> {
    match check {
        SignatureCheck::Matches => Ok(true),
        SignatureCheck::NoSecret => Ok(false),
        SignatureCheck::Missing => Err(WebhookError::MissingSignature),
        SignatureCheck::Malformed(why) => Err(WebhookError::InvalidSignature(why)),
        SignatureCheck::Mismatch => Err(WebhookError::InvalidSignature(
            "the signature does not match the body".into(),
        )),
    }
}

/// The envelope every event shares, plus the per-event fields the connector reads. Like the
/// wire model, every field is lenient; the pull request stays raw so that the reason it cannot
/// be read (its identity) can be told.
#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    event_key: Option<String>,
    #[serde_as(as = "DefaultOnError<Option<EpochMillis>>")]
    #[serde(default)]
    date: Option<i64>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    actor: Option<WireUser>,
    #[serde(borrow, default)]
    pull_request: Option<&'a RawValue>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    participant: Option<WireParticipant>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    previous_status: Option<String>,
}

fn version_key(pr: &PullRequest) -> String {
    format!(
        "webhook/version/{}/{}/{}",
        pr.repo.project_key, pr.repo.slug, pr.id
    )
}

/// Records `version` as the newest seen for the pull request; returns whether an even newer one
/// was seen before (the delivery is stale).
fn is_stale<H: Host + ?Sized>(host: &H, pr: &PullRequest) -> bool {
    let key = version_key(pr);
    for _ in 0..8 {
        let current = host.storage_get(&key);
        let known = current
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<u32>().ok());
        if known.is_some_and(|k| k > pr.version) {
            return true;
        }
        if known == Some(pr.version) {
            return false;
        }
        if host.storage_compare_and_swap(
            &key,
            current.as_deref(),
            pr.version.to_string().as_bytes(),
        ) {
            return false;
        }
    }
    false
}

fn outcome(
    result: WebhookResult,
    event_key: &str,
    request_id: Option<&str>,
    verified: bool,
) -> WebhookOutcome {
    WebhookOutcome {
        result,
        event_key: event_key.to_owned(),
        request_id: request_id.map(str::to_owned),
        verified,
        occurred_at: None,
        actor: None,
        pull_request: None,
        review: None,
        deleted: false,
        refresh: None,
        stale: false,
    }
}

/// A delivery as every event sees it first: its key, request id and whether it was verified,
/// and its body, or a ping (answered, nothing riding on it).
pub(crate) struct Opened<E> {
    /// The `X-Event-Key`, or the body's `eventKey`.
    pub event_key: String,
    /// The `X-Request-Id`, when present and not empty.
    pub request_id: Option<String>,
    /// Whether the signature was checked against a configured secret.
    pub verified: bool,
    /// The body's envelope as the event reads it (`None` for a ping).
    pub envelope: Option<E>,
}

/// What each event's envelope tells about the key.
pub(crate) trait EventKey {
    /// The body's `eventKey`.
    fn event_key(&self) -> Option<String>;
}

/// The checks every delivery passes before its event is read: the size, the signature (the
/// ping is answered unverified: Bitbucket does not sign it), the body as UTF-8 JSON of the
/// envelope `E`, and the event key from the header or the body.
pub(crate) fn open<'a, H: Host + ?Sized, E: Deserialize<'a> + EventKey>(
    host: &H,
    req: &'a WebhookRequest,
) -> Result<Opened<E>, WebhookError> {
    if req.body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge(req.body.len() as u64));
    }
    let header_key = header(req, "x-event-key").map(str::to_owned);
    let request_id = header(req, "x-request-id")
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let ping = |verified| Opened {
        event_key: PING.to_owned(),
        request_id: request_id.clone(),
        verified,
        envelope: None,
    };
    if header_key.as_deref() == Some(PING) {
        return Ok(ping(false));
    }
    let verified = verdict(host.check_signature(req))?;
    let body = std::str::from_utf8(&req.body)
        .map_err(|e| WebhookError::MalformedPayload(format!("the body is not UTF-8: {e}")))?;
    let envelope: E = serde_json::from_str(body).map_err(|e| {
        WebhookError::MalformedPayload(format!("the body is not a webhook payload: {e}"))
    })?;
    let event_key = header_key.or_else(|| envelope.event_key()).ok_or_else(|| {
        WebhookError::MalformedPayload("no X-Event-Key header and no eventKey".into())
    })?;
    if event_key == PING {
        return Ok(ping(verified));
    }
    Ok(Opened {
        event_key,
        request_id,
        verified,
        envelope: Some(envelope),
    })
}

impl EventKey for Envelope<'_> {
    fn event_key(&self) -> Option<String> {
        self.event_key.clone()
    }
}

/// Verifies and interprets one delivery (WIT `handle-webhook`).
pub fn handle_webhook<H: Host + ?Sized>(
    host: &H,
    _conn: &Connection,
    req: &WebhookRequest,
) -> Result<WebhookOutcome, WebhookError> {
    let Opened {
        event_key,
        request_id,
        verified,
        envelope,
    } = open::<_, Envelope>(host, req)?;
    let Some(envelope) = envelope.filter(|_| PR_EVENTS.contains(&event_key.as_str())) else {
        return Ok(outcome(
            WebhookResult::Ignored,
            &event_key,
            request_id.as_deref(),
            verified,
        ));
    };
    let raw = envelope
        .pull_request
        .filter(|r| r.get() != "null")
        .ok_or_else(|| {
            WebhookError::MalformedPayload(format!("{event_key} without a pullRequest"))
        })?;
    let wire: WirePullRequest = serde_json::from_str(raw.get()).map_err(|e| {
        WebhookError::MalformedPayload(format!(
            "{event_key}: the pull request cannot be identified: {}",
            clean_reason(&e.to_string())
        ))
    })?;
    let wire = &wire;
    let target = wire
        .to_ref
        .repository
        .as_ref()
        .map(normalize::repo_ref)
        .ok_or_else(|| {
            WebhookError::MalformedPayload("the pull request does not name its repository".into())
        })?;
    let mut pr = normalize::pull_request(wire, &target);
    pr.completeness = PrCompleteness::Snapshot;
    let actor: Option<User> = envelope.actor.clone().map(normalize::user);
    if event_key == "pr:merged" {
        pr.merged_by = actor.clone();
        pr.merged_at = pr.closed_at.or(envelope.date);
    }
    // A reviewer event whose participant cannot be read still carries the pull request; the
    // refresh it asks for brings the reviewers' statuses.
    let review = envelope
        .participant
        .as_ref()
        .filter(|_| event_key.starts_with("pr:reviewer:") && event_key != "pr:reviewer:updated")
        .map(|p| ReviewChange {
            user: normalize::user(p.user.clone()),
            status: normalize::reviewer_status(p.status.as_deref(), p.approved),
            previous_status: envelope
                .previous_status
                .as_deref()
                .map(|s| normalize::reviewer_status(Some(s), None)),
        });

    let stale = is_stale(host, &pr);
    let deleted = event_key == "pr:deleted";
    let refresh = (!deleted).then(|| RefreshRequest {
        repo: pr.repo.clone(),
        id: pr.id,
    });
    Ok(WebhookOutcome {
        result: WebhookResult::Accepted,
        event_key,
        request_id,
        verified,
        occurred_at: envelope.date,
        actor,
        pull_request: Some(pr),
        review,
        deleted,
        refresh,
        stale,
    })
}

#[cfg(test)]
mod tests;
