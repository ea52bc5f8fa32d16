//! Webhook verification and interpretation. Not yet implemented: deliveries are rejected with a
//! clear error until it lands.

use crate::host::Host;
use crate::model::{Connection, WebhookOutcome, WebhookRequest};

/// Why a delivery was rejected (WIT `webhook-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A secret is configured but no signature came.
    #[error("missing signature")]
    MissingSignature,
    /// The signature does not verify.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// Not a Bitbucket webhook payload.
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
    /// Too large.
    #[error("payload too large ({0} bytes)")]
    TooLarge(u64),
}

/// Verifies and interprets one delivery.
pub fn handle_webhook<H: Host + ?Sized>(
    _host: &H,
    _conn: &Connection,
    _secret: Option<&str>,
    _req: &WebhookRequest,
) -> Result<WebhookOutcome, WebhookError> {
    Err(WebhookError::MalformedPayload(
        "webhook handling is not available in this connector build yet".into(),
    ))
}
