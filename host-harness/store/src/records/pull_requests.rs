//! A pull request's writes shared by a sync's batches and webhook deliveries: the upsert that
//! never replaces a newer version, the review history, the deletion mark, and one delivery's
//! writes with its de-duplication mark.

use super::{Delivery, Stored, id_of};
use crate::shape;
use crate::sql::{Tx, col, vals};
use bbdc_host::bindings::types::{PullRequest, RepoRef, ReviewChange, ReviewerStatus};
use bbdc_host::storage::StoreError;

/// Marks delivery `id` as stored; `false` when it was already, within `window` of
/// `received_at`. Expired marks go as deliveries arrive, so the table holds one window at most.
pub(super) fn mark_delivery(
    tx: &mut dyn Tx,
    id: &str,
    received_at: i64,
    window: i64,
) -> Result<bool, StoreError> {
    tx.exec(
        "DELETE FROM webhook_deliveries WHERE received_at < $1",
        &vals![received_at.saturating_sub(window)],
    )?;
    let fresh = tx.exec(
        "INSERT INTO webhook_deliveries (request_id, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &vals![id, received_at],
    )?;
    Ok(fresh > 0)
}

/// One delivery's writes: its de-duplication mark first, then its records.
pub(super) fn store_delivery(
    tx: &mut dyn Tx,
    d: &Delivery<'_>,
    window: i64,
) -> Result<Stored, StoreError> {
    if let Some(id) = d.request_id
        && !mark_delivery(tx, id, d.received_at, window)?
    {
        return Ok(Stored::Duplicate);
    }
    let pr = d.pull_request;
    if !d.stale {
        upsert_pull_request(tx, pr)?;
    }
    if let Some(review) = &d.review {
        append_review(tx, &pr.repo, pr.id, review.change, review.at)?;
    }
    if d.deleted {
        mark_deleted(tx, &pr.repo, pr.id)?;
    }
    Ok(Stored::New)
}

/// Appends a reviewer's status change to a pull request's review history.
pub(super) fn append_review(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    pr_id: u64,
    change: &ReviewChange,
    at: i64,
) -> Result<(), StoreError> {
    let state = match change.status {
        ReviewerStatus::Approved => "approved",
        ReviewerStatus::NeedsWork => "needs_work",
        ReviewerStatus::Unapproved => "unapproved",
    };
    tx.exec(
        "INSERT INTO reviews (project_key, repo_slug, pr_id, seq, \"user\", state, at, activity_id)
         SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), COALESCE(MAX(seq) + 1, 0),
             CAST($4 AS TEXT), CAST($5 AS TEXT), CAST($6 AS BIGINT), CAST(NULL AS BIGINT) FROM reviews
         WHERE project_key = $1 AND repo_slug = $2 AND pr_id = $3",
        &vals![repo.project_key, repo.slug, id_of("pull request", pr_id)?, change.user.slug, state, at],
    )?;
    Ok(())
}

/// Marks a pull request deleted.
pub(super) fn mark_deleted(tx: &mut dyn Tx, repo: &RepoRef, pr_id: u64) -> Result<(), StoreError> {
    tx.exec(
        "UPDATE pull_requests SET deleted = 1 WHERE project_key = $1 AND repo_slug = $2 AND id = $3",
        &vals![repo.project_key, repo.slug, id_of("pull request", pr_id)?],
    )?;
    Ok(())
}

/// Upserts one pull request. A row is never replaced by an older version; a snapshot (from a
/// webhook or a list page) keeps the diff statistics and review history a full fetch stored.
pub(super) fn upsert_pull_request(tx: &mut dyn Tx, p: &PullRequest) -> Result<(), StoreError> {
    let j = shape::pull_request_json(p);
    let text = |v: &serde_json::Value| v.to_string();
    let complete = matches!(
        p.completeness,
        bbdc_host::bindings::types::PrCompleteness::Full
    );
    let pr_id = id_of("pull request", p.id)?;
    tx.exec(
        "INSERT INTO pull_requests (project_key, repo_slug, id, version, title, description, state, draft, author,
            created_at, updated_at, closed_at, merged_at, merged_by, merge_commit, source_branch, source_commit,
            source_repo, target_branch, target_commit, url, comment_count, open_task_count, resolved_task_count,
            additions, deletions, files_changed, diff_truncated, first_review_at, first_approval_at, complete,
            reviewers, participants, events, record)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
            $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35)
         ON CONFLICT (project_key, repo_slug, id) DO UPDATE SET
            version = excluded.version, title = excluded.title, description = excluded.description,
            state = excluded.state, draft = excluded.draft, author = excluded.author,
            created_at = excluded.created_at, updated_at = excluded.updated_at, closed_at = excluded.closed_at,
            merged_at = COALESCE(excluded.merged_at, pull_requests.merged_at),
            merged_by = COALESCE(excluded.merged_by, pull_requests.merged_by),
            merge_commit = COALESCE(excluded.merge_commit, pull_requests.merge_commit),
            source_branch = excluded.source_branch,
            source_commit = excluded.source_commit, source_repo = excluded.source_repo,
            target_branch = excluded.target_branch, target_commit = excluded.target_commit, url = excluded.url,
            comment_count = excluded.comment_count, open_task_count = excluded.open_task_count,
            resolved_task_count = excluded.resolved_task_count,
            additions = CASE WHEN excluded.complete = 1 THEN excluded.additions ELSE pull_requests.additions END,
            deletions = CASE WHEN excluded.complete = 1 THEN excluded.deletions ELSE pull_requests.deletions END,
            files_changed = CASE WHEN excluded.complete = 1 THEN excluded.files_changed ELSE pull_requests.files_changed END,
            diff_truncated = CASE WHEN excluded.complete = 1 THEN excluded.diff_truncated ELSE pull_requests.diff_truncated END,
            first_review_at = CASE WHEN excluded.complete = 1 THEN excluded.first_review_at ELSE pull_requests.first_review_at END,
            first_approval_at = CASE WHEN excluded.complete = 1 THEN excluded.first_approval_at ELSE pull_requests.first_approval_at END,
            events = CASE WHEN excluded.complete = 1 THEN excluded.events ELSE pull_requests.events END,
            complete = CASE WHEN excluded.complete > pull_requests.complete THEN excluded.complete ELSE pull_requests.complete END,
            reviewers = excluded.reviewers, participants = excluded.participants, record = excluded.record
         WHERE excluded.version >= pull_requests.version",
        &vals![
            p.repo.project_key, p.repo.slug, pr_id, p.version, p.title, p.description, shape::pr_state(p.state),
            p.draft, p.author.as_ref().map(|u| &u.slug), p.created_at, p.updated_at, p.closed_at, p.merged_at,
            p.merged_by.as_ref().map(|u| &u.slug),
            p.merge_commit, p.source.display_id, p.source.latest_commit,
            p.source_fork.as_ref().map(|r| format!("{}/{}", r.project_key, r.slug)), p.target.display_id,
            p.target.latest_commit, p.url, p.comment_count, p.open_task_count, p.resolved_task_count,
            p.diff.as_ref().map(|d| d.additions), p.diff.as_ref().map(|d| d.deletions),
            p.diff.as_ref().map(|d| d.files_changed), p.diff.as_ref().map(|d| d.truncated), p.first_review_at,
            p.first_approval_at, complete, text(&j["reviewers"]), text(&j["participants"]), text(&j["events"]), text(&j)
        ],
    )?;
    if complete {
        let current = tx
            .row(
                "SELECT version FROM pull_requests WHERE project_key = $1 AND repo_slug = $2 AND id = $3",
                &vals![p.repo.project_key, p.repo.slug, pr_id],
            )?
            .and_then(|r| col(&r, 0).int());
        if current == Some(i64::from(p.version)) {
            tx.exec(
                "DELETE FROM reviews WHERE project_key = $1 AND repo_slug = $2 AND pr_id = $3",
                &vals![p.repo.project_key, p.repo.slug, pr_id],
            )?;
            for (seq, r) in p.reviews.iter().enumerate() {
                tx.exec(
                    "INSERT INTO reviews (project_key, repo_slug, pr_id, seq, \"user\", state, at, activity_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &vals![
                        p.repo.project_key,
                        p.repo.slug,
                        pr_id,
                        seq,
                        r.user.slug,
                        shape::review_action(r.action),
                        r.at,
                        r.activity_id.map(|n| id_of("activity", n)).transpose()?
                    ],
                )?;
            }
        }
    }
    Ok(())
}
