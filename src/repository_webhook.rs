//! Repository webhook deliveries (contract 0.2.0, `handle-repository-webhook`): a push
//! (`repo:refs_changed`) becomes the refs it changed, a rename or move (`repo:modified`) the
//! repository's key before and the repository now. Verified as a pull request's delivery is
//! ([`crate::webhook::open`]): the host checks the signature and de-duplicates.
//!
//! Lenient as everything read from the network: a change that cannot be read is left out (the
//! host re-reads the refs anyway), and only what identifies the repository is required.

use crate::host::Host;
use crate::model::{
    Connection, RefChange, RefChangeKind, RepositoryEvent, RepositoryWebhookOutcome, WebhookError,
    WebhookRequest, WebhookResult,
};
use crate::normalize;
use crate::paging::clean_reason;
use crate::timestamps::EpochMillis;
use crate::webhook::{EventKey, Opened, open};
use crate::wire::{WireRepo, WireUser};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_with::{DefaultOnError, VecSkipError, serde_as};

/// The repository events this connector interprets; any other key is verified and ignored.
pub const REPOSITORY_EVENTS: &[&str] = &["repo:refs_changed", "repo:modified"];

/// A `repo:*` envelope. The repositories stay raw so that the reason one cannot be read can be
/// told; every other field is lenient.
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
    repository: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old: Option<&'a RawValue>,
    #[serde(borrow, default)]
    new: Option<&'a RawValue>,
    #[serde_as(as = "DefaultOnError<VecSkipError<_>>")]
    #[serde(default)]
    changes: Vec<WireChange>,
}

impl EventKey for Envelope<'_> {
    fn event_key(&self) -> Option<String> {
        self.event_key.clone()
    }
}

/// One entry of `changes`: `{ref: {id, displayId, type}, refId, fromHash, toHash, type}`.
#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChange {
    #[serde_as(as = "DefaultOnError")]
    #[serde(default, rename = "ref")]
    reference: Option<WireChangedRef>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    ref_id: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    from_hash: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    to_hash: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// A change's `ref` (`RestMinimalRef`).
#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireChangedRef {
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    id: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    display_id: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

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

/// Verifies and interprets one repository delivery (WIT `handle-repository-webhook`).
pub fn handle_repository_webhook<H: Host + ?Sized>(
    host: &H,
    _conn: &Connection,
    req: &WebhookRequest,
) -> Result<RepositoryWebhookOutcome, WebhookError> {
    let Opened {
        event_key,
        request_id,
        verified,
        envelope,
    } = open::<_, Envelope>(host, req)?;
    let mut out = RepositoryWebhookOutcome {
        result: WebhookResult::Ignored,
        event_key,
        request_id,
        verified,
        occurred_at: None,
        actor: None,
        repo: None,
        event: None,
    };
    let Some(envelope) = envelope.filter(|_| REPOSITORY_EVENTS.contains(&out.event_key.as_str()))
    else {
        return Ok(out);
    };
    let (repo, event) = if out.event_key == "repo:modified" {
        let old = repository(&out.event_key, "old", envelope.old)?;
        let new = repository(&out.event_key, "new", envelope.new)?;
        let before = normalize::repo_ref(&old);
        (normalize::repo(new), RepositoryEvent::Modified(before))
    } else {
        let repo = repository(&out.event_key, "repository", envelope.repository)?;
        let changes = envelope.changes.into_iter().filter_map(change).collect();
        (normalize::repo(repo), RepositoryEvent::RefsChanged(changes))
    };
    out.result = WebhookResult::Accepted;
    out.occurred_at = envelope.date;
    out.actor = envelope.actor.map(normalize::user);
    out.repo = Some(repo);
    out.event = Some(event);
    Ok(out)
}

#[cfg(test)]
mod tests;
