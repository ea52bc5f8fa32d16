//! Repository webhook deliveries (contract 0.2.0, `handle-repository-webhook`): a push
//! (`repo:refs_changed`) becomes the refs it changed, a rename or move (`repo:modified`) the
//! repository's key before and the repository now ([`RepositoryEvents`]). Verified as a pull
//! request's delivery is, on the one path of [`crate::webhook::handle`]: the host checks the
//! signature and de-duplicates.
//!
//! Lenient as everything read from the network: a change that cannot be read is left out (the
//! host re-reads the refs anyway), and only what identifies the repository is required.

use crate::host::Host;
use crate::model::{
    RefChange, RefChangeKind, RepositoryEvent, RepositoryWebhookOutcome, WebhookError,
    WebhookResult,
};
use crate::normalize;
use crate::paging::clean_reason;
use crate::webhook::{Event, Head};
use crate::wire::{WireChange, WireEnvelope, WireRepo};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The repository events this connector interprets; any other key is verified and ignored.
pub const REPOSITORY_EVENTS: &[&str] = &["repo:refs_changed", "repo:modified"];

/// A hash as the payload gives it: `None` when absent, empty or all zeros (git's "no commit",
/// which a created ref has before and a deleted one after).
fn hash(h: Option<String>) -> Option<String> {
    h.filter(|h| !h.is_empty() && !h.bytes().all(|b| b == b'0'))
}

/// A change as a contract record, `None` when it names no ref or an unknown kind.
fn change(w: WireChange) -> Option<RefChange> {
    let kind = match w.kind.as_deref()?.to_ascii_uppercase().as_str() {
        "ADD" => RefChangeKind::Add,
        "UPDATE" => RefChangeKind::Update,
        "DELETE" => RefChangeKind::Delete,
        _ => return None,
    };
    let reference = w.reference;
    let ref_id = w
        .ref_id
        .filter(|r| !r.is_empty())
        .or_else(|| reference.as_ref().and_then(|r| r.id.clone()))
        .filter(|r| !r.is_empty())?;
    let is_tag = reference
        .as_ref()
        .and_then(|r| r.kind.as_deref())
        .map_or(ref_id.starts_with("refs/tags/"), |k| {
            k.eq_ignore_ascii_case("TAG")
        });
    let name = reference
        .and_then(|r| r.display_id)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            ref_id
                .strip_prefix("refs/heads/")
                .or_else(|| ref_id.strip_prefix("refs/tags/"))
                .unwrap_or(&ref_id)
                .to_owned()
        });
    Some(RefChange {
        ref_id,
        name,
        is_tag,
        from_hash: hash(w.from_hash),
        to_hash: hash(w.to_hash),
        kind,
    })
}

/// The repository in `field` of a `key` payload. An `id` that cannot be read (missing, `null`,
/// negative, a string, a fraction) leaves the repository without one, and the host keeps the id
/// it stored; an integer past a Java `long`, which no Bitbucket sends, refuses the payload (a
/// 400: sent again, it would fail the same way).
fn repository(key: &str, field: &str, raw: Option<&RawValue>) -> Result<WireRepo, WebhookError> {
    let raw = raw
        .filter(|r| r.get() != "null")
        .ok_or_else(|| WebhookError::MalformedPayload(format!("{key} without {field}")))?;
    if let Some(id) = out_of_range_id(raw) {
        return Err(WebhookError::MalformedPayload(format!(
            "{key}: {field}.id {id} is beyond the signed 64-bit range of Bitbucket ids"
        )));
    }
    serde_json::from_str(raw.get()).map_err(|e| {
        WebhookError::MalformedPayload(format!(
            "{key}: {field} cannot be identified: {}",
            clean_reason(&e.to_string())
        ))
    })
}

/// The `id` of a repository object when it is a JSON integer past `i64::MAX` (shortened to 40
/// characters), `None` otherwise.
fn out_of_range_id(repository: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
    }
    let probe: Probe<'_> = serde_json::from_str(repository.get()).ok()?;
    let text = probe.id?.get().trim();
    let integer = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    (integer && text.parse::<i64>().is_err()).then(|| text.chars().take(40).collect())
}

/// The repository events: the export `handle-repository-webhook` (contract 0.2.0).
pub struct RepositoryEvents;

impl Event for RepositoryEvents {
    const KEYS: &'static [&'static str] = REPOSITORY_EVENTS;
    type Outcome = RepositoryWebhookOutcome;

    fn ignored(head: Head) -> RepositoryWebhookOutcome {
        RepositoryWebhookOutcome {
            result: WebhookResult::Ignored,
            event_key: head.event_key,
            request_id: head.request_id,
            verified: head.verified,
            occurred_at: None,
            actor: None,
            repo: None,
            event: None,
        }
    }

    fn interpret<H: Host + ?Sized>(
        _host: &H,
        head: Head,
        envelope: WireEnvelope<'_>,
    ) -> Result<RepositoryWebhookOutcome, WebhookError> {
        let key = head.event_key.as_str();
        let (repo, event) = if key == "repo:modified" {
            let old = repository(key, "old", envelope.old)?;
            let new = repository(key, "new", envelope.new)?;
            let before = normalize::repo_ref(&old);
            (normalize::repo(new), RepositoryEvent::Modified(before))
        } else {
            let repo = repository(key, "repository", envelope.repository)?;
            let changes = envelope.changes.into_iter().filter_map(change).collect();
            (normalize::repo(repo), RepositoryEvent::RefsChanged(changes))
        };
        Ok(RepositoryWebhookOutcome {
            result: WebhookResult::Accepted,
            occurred_at: envelope.date.map(i64::from),
            actor: envelope.actor.map(normalize::user),
            repo: Some(repo),
            event: Some(event),
            ..Self::ignored(head)
        })
    }
}

#[cfg(test)]
mod tests;
