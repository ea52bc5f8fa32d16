//! Webhook deliveries, one path for every event: the size, the signature (the host holds the
//! secret and checks it, [`Host::check_signature`]; the connector decides on the host's answer),
//! the body as the envelope every event shares ([`WireEnvelope`]), and the event key. An
//! [`Event`] interprets what is left: pull-request events ([`crate::pull_request_webhook`]) and
//! repository events ([`crate::repository_webhook`]), one export each.
//!
//! - With a secret configured, every delivery but `diagnostics:ping` must carry
//!   `X-Hub-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body bytes. Bitbucket sends the
//!   ping unsigned even when a secret is set; it is answered and nothing else rides on it.
//! - De-duplication by `X-Request-Id` is the host's: only the host can make "seen" and
//!   "stored" one commit, so the connector reports the id and spends nothing (a mark written
//!   here, before the host stored the records, lost every delivery whose storing failed: its
//!   retry was answered as a duplicate).
//! - Anything that is not a Bitbucket payload is a typed [`WebhookError`], never a trap.

use crate::host::Host;
use crate::model::{Connection, SignatureCheck, WebhookError, WebhookRequest};
use crate::wire::WireEnvelope;

/// Largest body the connector reads (hosts cap lower; 1 MiB by default).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The event Bitbucket sends for "Test connection".
pub const PING: &str = "diagnostics:ping";

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

/// What every delivery tells before its event is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The `X-Event-Key`, or the body's `eventKey`.
    pub event_key: String,
    /// The `X-Request-Id`, when present and not empty.
    pub request_id: Option<String>,
    /// Whether the signature was checked against a configured secret.
    pub verified: bool,
}

/// A family of events, and what its export answers.
pub trait Event {
    /// The event keys it interprets; any other key is verified and ignored.
    const KEYS: &'static [&'static str];
    /// What its export answers.
    type Outcome;
    /// The answer to a verified delivery it does not interpret (a ping, another event).
    fn ignored(head: Head) -> Self::Outcome;
    /// Interprets a verified delivery of one of [`Event::KEYS`].
    fn interpret<H: Host + ?Sized>(
        host: &H,
        head: Head,
        envelope: WireEnvelope<'_>,
    ) -> Result<Self::Outcome, WebhookError>;
}

/// Verifies and interprets one delivery as `E`'s export does (WIT `handle-webhook`,
/// `handle-repository-webhook`): the checks every delivery passes, then `E`'s reading.
pub fn handle<E: Event, H: Host + ?Sized>(
    host: &H,
    _conn: &Connection,
    req: &WebhookRequest,
) -> Result<E::Outcome, WebhookError> {
    let (head, envelope) = open(host, req)?;
    match envelope.filter(|_| E::KEYS.contains(&head.event_key.as_str())) {
        Some(envelope) => E::interpret(host, head, envelope),
        None => Ok(E::ignored(head)),
    }
}

/// The checks every delivery passes before its event is read: the size, the signature (the
/// ping is answered unverified: Bitbucket does not sign it), the body as UTF-8 JSON of the
/// envelope, and the event key from the header or the body. No envelope for a ping.
fn open<'a, H: Host + ?Sized>(
    host: &H,
    req: &'a WebhookRequest,
) -> Result<(Head, Option<WireEnvelope<'a>>), WebhookError> {
    if req.body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge(req.body.len() as u64));
    }
    let header_key = header(req, "x-event-key").map(str::to_owned);
    let request_id = header(req, "x-request-id")
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let ping = |verified| Head {
        event_key: PING.to_owned(),
        request_id: request_id.clone(),
        verified,
    };
    if header_key.as_deref() == Some(PING) {
        return Ok((ping(false), None));
    }
    let verified = verdict(host.check_signature(req))?;
    let body = std::str::from_utf8(&req.body)
        .map_err(|e| WebhookError::MalformedPayload(format!("the body is not UTF-8: {e}")))?;
    let envelope: WireEnvelope<'a> = serde_json::from_str(body).map_err(|e| {
        WebhookError::MalformedPayload(format!("the body is not a webhook payload: {e}"))
    })?;
    let event_key = header_key
        .or_else(|| envelope.event_key.clone())
        .ok_or_else(|| {
            WebhookError::MalformedPayload("no X-Event-Key header and no eventKey".into())
        })?;
    if event_key == PING {
        return Ok((ping(verified), None));
    }
    let head = Head {
        event_key,
        request_id,
        verified,
    };
    Ok((head, Some(envelope)))
}
