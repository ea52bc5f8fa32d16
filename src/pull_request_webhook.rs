//! Pull-request deliveries (`handle-webhook`, [`PullRequestEvents`]): the same pull-request
//! record as sync (a snapshot from the payload), plus the reviewer's status change for reviewer
//! events, the deletion for `pr:deleted`, and what the host should refresh with
//! `fetch-pull-request`. A payload whose pull-request version is older than one already handled
//! is marked `stale` so it never overwrites newer data.

use crate::host::Host;
use crate::model::{
    PrCompleteness, PullRequest, RefreshRequest, ReviewChange, User, WebhookError, WebhookOutcome,
    WebhookResult,
};
use crate::normalize;
use crate::paging::clean_reason;
use crate::webhook::{Event, Head};
use crate::wire::{WireEnvelope, WirePullRequest};

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

/// The pull-request events: the export `handle-webhook`.
pub struct PullRequestEvents;

impl Event for PullRequestEvents {
    const KEYS: &'static [&'static str] = PR_EVENTS;
    type Outcome = WebhookOutcome;

    fn ignored(head: Head) -> WebhookOutcome {
        WebhookOutcome {
            result: WebhookResult::Ignored,
            event_key: head.event_key,
            request_id: head.request_id,
            verified: head.verified,
            occurred_at: None,
            actor: None,
            pull_request: None,
            review: None,
            deleted: false,
            refresh: None,
            stale: false,
        }
    }

    fn interpret<H: Host + ?Sized>(
        host: &H,
        head: Head,
        envelope: WireEnvelope<'_>,
    ) -> Result<WebhookOutcome, WebhookError> {
        let Head {
            event_key,
            request_id,
            verified,
        } = head;
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
                WebhookError::MalformedPayload(
                    "the pull request does not name its repository".into(),
                )
            })?;
        let mut pr = normalize::pull_request(wire, &target);
        pr.completeness = PrCompleteness::Snapshot;
        let actor: Option<User> = envelope.actor.clone().map(normalize::user);
        if event_key == "pr:merged" {
            pr.merged_by = actor.clone();
            pr.merged_at = pr.closed_at.or(envelope.date.map(i64::from));
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
            occurred_at: envelope.date.map(i64::from),
            actor,
            pull_request: Some(pr),
            review,
            deleted,
            refresh,
            stale,
        })
    }
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

#[cfg(test)]
mod tests;
