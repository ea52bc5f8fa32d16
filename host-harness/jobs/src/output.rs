//! Stable machine-readable shapes for the command line: error codes and JSON records.

use bbdc_host::bindings::history::{Branch, Build, Commit, CommitPerson, Tag};
use bbdc_host::bindings::types::{ConnectionReport, ConnectorError};
use bbdc_host::runtime::{CallError, HostError};
use serde_json::{Value, json};

/// The snake_case code and message of a connector error.
pub fn connector_error(e: &ConnectorError) -> (&'static str, String) {
    match e {
        ConnectorError::InvalidCredentials(m) => ("invalid_credentials", m.clone()),
        ConnectorError::InvalidPermissions(m) => ("invalid_permissions", m.clone()),
        ConnectorError::NoResources(m) => ("no_resources", m.clone()),
        ConnectorError::NotFound(m) => ("not_found", m.clone()),
        ConnectorError::RateLimited(r) => (
            "rate_limited",
            match r.retry_after_ms {
                Some(ms) => format!("{} (retry after {} s)", r.message, ms.div_ceil(1000)),
                None => r.message.clone(),
            },
        ),
        ConnectorError::Server(s) => ("server", s.message.clone()),
        ConnectorError::Transport(m) => ("transport", m.clone()),
        ConnectorError::Timeout(m) => ("timeout", m.clone()),
        ConnectorError::Denied(m) => ("denied", m.clone()),
        ConnectorError::TooLarge(m) => ("too_large", m.clone()),
        ConnectorError::MalformedResponse(m) => ("malformed_response", m.clone()),
        ConnectorError::InvalidConfig(m) => ("invalid_config", m.clone()),
        ConnectorError::Storage(m) => ("storage", m.clone()),
    }
}

/// The code and message of a host failure.
pub fn host_error(e: &HostError) -> (&'static str, String) {
    let code = match e {
        HostError::Deadline(_) => "deadline_exceeded",
        HostError::MemoryLimit(_) => "memory_limit_exceeded",
        HostError::Fuel => "fuel_exhausted",
        HostError::Storage(_) => "storage",
        HostError::Trap(_) => "internal",
        HostError::Load(_) | HostError::Limits(_) => "internal",
        HostError::Unsupported(_) => "unsupported",
    };
    (code, e.to_string())
}

/// The code and message of any call failure.
pub fn call_error(e: &CallError<ConnectorError>) -> (&'static str, String) {
    match e {
        CallError::Connector(c) => connector_error(c),
        CallError::Host(h) => host_error(h),
    }
}

/// `{"ok": false, "error": code, "message": ...}`.
pub fn failure_json(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": code, "message": message})
}

/// The success object of `bbdc check --json`.
pub fn check_json(r: &ConnectionReport) -> Value {
    json!({
        "ok": true,
        "server_version": r.server_version,
        "build_number": r.build_number,
        "server_name": r.server_name,
        "user": r.user,
        "projects": r.projects,
        "repos": r.repos,
        "personal_repos": r.personal_repos,
        "archived_repos": r.archived_repos,
        "excluded_repos": r.excluded_repos,
    })
}

use bbdc_host::bindings::types::{
    PrEventKind, PrState, Project, ProjectKind, PullRequest, RefKind, Repo, RepoRef, ReviewAction,
    ReviewerStatus, SkipStage, User, UserKind,
};

pub use crate::outcome::record_kind;

/// `"OPEN" | "MERGED" | "DECLINED"`.
pub fn pr_state(s: PrState) -> &'static str {
    match s {
        PrState::Open => "OPEN",
        PrState::Merged => "MERGED",
        PrState::Declined => "DECLINED",
    }
}

/// `"APPROVED" | "NEEDS_WORK" | "UNAPPROVED"`.
pub fn reviewer_status(s: ReviewerStatus) -> &'static str {
    match s {
        ReviewerStatus::Approved => "APPROVED",
        ReviewerStatus::NeedsWork => "NEEDS_WORK",
        ReviewerStatus::Unapproved => "UNAPPROVED",
    }
}

/// `"approved" | "unapproved" | "needs_work" | "commented"`.
pub fn review_action(a: ReviewAction) -> &'static str {
    match a {
        ReviewAction::Approved => "approved",
        ReviewAction::Unapproved => "unapproved",
        ReviewAction::NeedsWork => "needs_work",
        ReviewAction::Commented => "commented",
    }
}

/// snake_case name of a lifecycle event.
pub fn event_kind(k: PrEventKind) -> &'static str {
    match k {
        PrEventKind::Opened => "opened",
        PrEventKind::Rescoped => "rescoped",
        PrEventKind::ReviewersUpdated => "reviewers_updated",
        PrEventKind::Merged => "merged",
        PrEventKind::Declined => "declined",
        PrEventKind::Reopened => "reopened",
        PrEventKind::Deleted => "deleted",
        PrEventKind::Other => "other",
    }
}

fn ref_kind(k: RefKind) -> &'static str {
    match k {
        RefKind::Branch => "branch",
        RefKind::Tag => "tag",
        RefKind::Other => "other",
    }
}

/// `"details" | "activities" | "diff"`: what failed for a skipped pull request, as stored and
/// printed (the host's own `"identity"`, for a listed pull request without a usable id, is not a
/// connector stage).
pub fn skip_stage(s: SkipStage) -> &'static str {
    match s {
        SkipStage::Details => "details",
        SkipStage::Activities => "activities",
        SkipStage::Diff => "diff",
    }
}

/// A `{"type": "project", ...}` line.
pub fn project_json(p: &Project) -> Value {
    json!({
        "type": "project", "key": p.key, "id": p.id, "name": p.name, "description": p.description,
        "public": p.public, "kind": match p.kind { ProjectKind::Normal => "normal", ProjectKind::Personal => "personal" },
        "url": p.url,
    })
}

/// A `{"type": "repo", ...}` line.
pub fn repo_json(r: &Repo) -> Value {
    json!({
        "type": "repo", "project_key": r.repo_ref.project_key, "slug": r.repo_ref.slug, "id": r.id,
        "name": r.name, "description": r.description, "scm": r.scm, "state": r.state, "public": r.public,
        "archived": r.archived, "forkable": r.forkable,
        "origin": r.origin.as_ref().map(|o| json!({"project_key": o.project_key, "slug": o.slug})),
        "url": r.url, "clone_http": r.clone_http, "clone_ssh": r.clone_ssh,
    })
}

/// A `{"type": "repo", "deleted": true, ...}` line: a repository a complete listing no longer
/// names (deleted, or out of the account's sight), by its key and id.
pub fn deleted_repo_json(r: &RepoRef, id: u64) -> Value {
    json!({"type": "repo", "project_key": r.project_key, "slug": r.slug, "id": id, "deleted": true})
}

/// snake_case user kind.
pub fn user_kind(k: UserKind) -> &'static str {
    match k {
        UserKind::Normal => "normal",
        UserKind::Service => "service",
        UserKind::Other => "other",
    }
}

/// A `{"type": "user", ...}` line.
pub fn user_json(u: &User) -> Value {
    json!({
        "type": "user", "id": u.id, "slug": u.slug, "name": u.name, "display_name": u.display_name,
        "email": u.email, "active": u.active, "kind": user_kind(u.kind),
    })
}

/// A `{"type": "commit", ...}` line: one commit of a repository's default branch.
pub fn commit_json(c: &Commit) -> Value {
    let person =
        |p: &CommitPerson| json!({"name": p.name, "email": p.email, "user_slug": p.user_slug});
    json!({
        "type": "commit",
        "project_key": c.repo.project_key,
        "repo_slug": c.repo.slug,
        "id": c.id,
        "author": person(&c.author),
        "author_timestamp": c.author_timestamp,
        "committer": c.committer.as_ref().map(person),
        "committer_timestamp": c.committer_timestamp,
        "parent_count": c.parent_count,
        "summary": c.summary,
    })
}

/// A `{"type": "pr_commit", ...}` line: one commit of pull request `pr_id`, the fields of a
/// `commit` line with the pull request's id and the commit's place in its list (`position`, 0
/// for the newest).
pub fn pr_commit_json(pr_id: u64, position: usize, c: &Commit) -> Value {
    let mut v = commit_json(c);
    v["type"] = json!("pr_commit");
    v["pr_id"] = json!(pr_id);
    v["position"] = json!(position);
    v
}

/// A `{"type": "branch", ...}` line.
pub fn branch_json(b: &Branch) -> Value {
    json!({
        "type": "branch",
        "project_key": b.repo.project_key,
        "repo_slug": b.repo.slug,
        "name": b.name,
        "ref_id": b.ref_id,
        "latest_commit": b.latest_commit,
        "is_default": b.is_default,
    })
}

/// A `{"type": "tag", ...}` line.
pub fn tag_json(t: &Tag) -> Value {
    json!({
        "type": "tag",
        "project_key": t.repo.project_key,
        "repo_slug": t.repo.slug,
        "name": t.name,
        "ref_id": t.ref_id,
        "target": t.target,
        "object_hash": t.object_hash,
    })
}

/// A `{"type": "build", ...}` line: one build status of a commit.
pub fn build_json(b: &Build) -> Value {
    json!({
        "type": "build",
        "project_key": b.repo.project_key,
        "repo_slug": b.repo.slug,
        "commit_id": b.commit_id,
        "key": b.key,
        "name": b.name,
        "state": build_state(b.state),
        "state_other": b.state_other,
        "url": b.url,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
        "duration_ms": b.duration_ms,
        "build_number": b.build_number,
        "parent": b.parent,
        "ref_id": b.ref_id,
        "test_results": b.test_results.as_ref().map(|t| json!({
            "successful": t.successful, "failed": t.failed, "skipped": t.skipped
        })),
    })
}

/// A `{"type": "pull_request", ...}` line: the fields of `bbdc sync --jsonl`.
pub fn pull_request_json(p: &PullRequest) -> Value {
    let diff = p.diff.as_ref();
    json!({
        "type": "pull_request",
        "id": p.id,
        "project_key": p.repo.project_key,
        "repo_slug": p.repo.slug,
        "version": p.version,
        "title": p.title,
        "description": p.description,
        "state": pr_state(p.state),
        "draft": p.draft,
        "author": p.author.as_ref().map(|u| u.slug.clone()),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "closed_at": p.closed_at,
        "merged_at": p.merged_at,
        "merged_by": p.merged_by.as_ref().map(|u| u.slug.clone()),
        "merge_commit": p.merge_commit,
        "source_branch": p.source.display_id,
        "source_ref": p.source.id,
        "source_ref_kind": ref_kind(p.source.kind),
        "source_commit": p.source.latest_commit,
        "source_repo": p.source_fork.as_ref().map(|r| json!({"project_key": r.project_key, "slug": r.slug})),
        "target_branch": p.target.display_id,
        "target_commit": p.target.latest_commit,
        "url": p.url,
        "comment_count": p.comment_count,
        "open_task_count": p.open_task_count,
        "resolved_task_count": p.resolved_task_count,
        "additions": diff.map(|d| d.additions),
        "deletions": diff.map(|d| d.deletions),
        "files_changed": diff.map(|d| d.files_changed),
        "diff_truncated": diff.map(|d| d.truncated),
        "reviewers": p.reviewers.iter().map(|r| json!({"user": r.user.slug, "status": reviewer_status(r.status)})).collect::<Vec<_>>(),
        "participants": p.participants.iter().map(|r| json!({"user": r.user.slug, "status": reviewer_status(r.status)})).collect::<Vec<_>>(),
        "reviews": p.reviews.iter().map(|r| json!({"user": r.user.slug, "state": review_action(r.action), "at": r.at})).collect::<Vec<_>>(),
        "events": p.events.iter().map(|e| json!({"kind": event_kind(e.kind), "action": e.raw_action, "user": e.user.as_ref().map(|u| u.slug.clone()), "at": e.at})).collect::<Vec<_>>(),
        "first_review_at": p.first_review_at,
        "first_approval_at": p.first_approval_at,
        "complete": matches!(p.completeness, bbdc_host::bindings::types::PrCompleteness::Full),
    })
}

/// The closing summary of a sync as JSON. `db` is the database as shown (a path, or a URL
/// without its password: [`crate::database::Database::display`]).
pub fn sync_summary_json(r: &crate::outcome::SyncReport, db: &str) -> Value {
    json!({
        "ok": r.status() == crate::outcome::SyncStatus::Complete,
        "status": r.status().name(),
        "db": db,
        "records": r.records,
        "unchanged_pull_requests": r.unchanged,
        "requests": r.requests,
        "retries": r.retries,
        "throttled": r.throttled,
        "rate_limit_wait_seconds": r.rate_limit_wait.as_secs_f64(),
        "users_fallback": r.users_fallback,
        "skipped": r.skipped.iter().map(|s| json!({"repo": s.repo, "id": s.id, "stage": s.stage, "error": s.code, "message": s.message})).collect::<Vec<_>>(),
        "unreadable": r.unreadable.iter().map(|u| json!({"kind": u.kind, "location": u.location, "reason": u.reason})).collect::<Vec<_>>(),
        "failed_projects": r.failed_projects.iter().map(|f| json!({"project": f.name, "error": f.code, "message": f.message})).collect::<Vec<_>>(),
        "failed_repos": r.failed_repos.iter().map(|f| json!({"repo": f.name, "error": f.code, "message": f.message})).collect::<Vec<_>>(),
        "seconds": r.elapsed.as_secs_f64(),
    })
}

/// The closing summary of a sync for people. Every text that came from the server is shown
/// escaped ([`crate::printable`]).
pub fn sync_summary_text(r: &crate::outcome::SyncReport, db: &str) -> String {
    use crate::printable::shown;
    use std::fmt::Write;
    let mut s = String::new();
    let n = |k: &str| r.records.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "sync {} in {:.1} s",
        if r.status() == crate::outcome::SyncStatus::Complete {
            "complete"
        } else {
            "finished with failures"
        },
        r.elapsed.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "  records:  {} projects, {} repositories, {} users{}, {} pull requests new or changed ({} unchanged)",
        n("project"),
        n("repo"),
        n("user"),
        if r.users_fallback {
            " (visible users only: /admin/users was refused)"
        } else {
            ""
        },
        n("pull_request"),
        r.unchanged
    );
    if let Some(commits) = r.records.get("commit") {
        let _ = writeln!(
            s,
            "  history:  {commits} commits new on default branches, {} branches, {} tags",
            n("branch"),
            n("tag")
        );
    }
    let _ = writeln!(
        s,
        "  requests: {} ({} retried, {} rate-limited by the server, {:.1} s waiting for the rate limit)",
        r.requests,
        r.retries,
        r.throttled,
        r.rate_limit_wait.as_secs_f64()
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(
            s,
            "  skipped pull requests ({}), retried on the next sync:",
            r.skipped.len()
        );
        for k in &r.skipped {
            match k.id {
                Some(id) => writeln!(
                    s,
                    "    {} #{id}: {} failed: {}: {}",
                    shown(&k.repo),
                    k.stage,
                    k.code,
                    shown(&k.message)
                ),
                None => writeln!(
                    s,
                    "    {}: a pull request without a readable id: {}",
                    shown(&k.repo),
                    shown(&k.message)
                ),
            }
            .ok();
        }
    }
    if !r.unreadable.is_empty() {
        let _ = writeln!(
            s,
            "  records left out because they cannot be identified ({}):",
            r.unreadable.len()
        );
        for u in &r.unreadable {
            let _ = writeln!(
                s,
                "    {} at {}: {}",
                u.kind,
                shown(&u.location),
                shown(&u.reason)
            );
        }
    }
    let failures = [
        (
            &r.failed_projects,
            "failed projects",
            ", their repositories not synced",
        ),
        (&r.failed_repos, "failed repositories", ""),
    ];
    for (list, heading, tail) in failures.into_iter().filter(|(l, _, _)| !l.is_empty()) {
        let _ = writeln!(s, "  {heading} ({}){tail}:", list.len());
        for f in list {
            let _ = writeln!(
                s,
                "    {}: {}: {}",
                shown(&f.name),
                f.code,
                shown(&f.message)
            );
        }
    }
    let _ = write!(s, "  database: {db}");
    s
}

/// Writes JSON lines, shared by the workers.
pub type JsonlOut = std::sync::Mutex<Box<dyn std::io::Write + Send>>;

/// Writes `values` to `out` (when there is one), a line each, and flushes.
pub fn emit(
    out: Option<&JsonlOut>,
    values: impl IntoIterator<Item = Value>,
) -> Result<(), std::io::Error> {
    use std::io::Write;
    let Some(out) = out else { return Ok(()) };
    let mut w = out
        .lock()
        .map_err(|_| std::io::Error::other("output lock poisoned"))?;
    for v in values {
        writeln!(w, "{v}")?;
    }
    w.flush()
}

/// A build state as the `builds` table and the JSON lines spell it (the server's own spelling).
pub fn build_state(s: bbdc_host::bindings::history::BuildState) -> &'static str {
    match s {
        bbdc_host::bindings::history::BuildState::Successful => "SUCCESSFUL",
        bbdc_host::bindings::history::BuildState::Failed => "FAILED",
        bbdc_host::bindings::history::BuildState::InProgress => "INPROGRESS",
        bbdc_host::bindings::history::BuildState::Cancelled => "CANCELLED",
        bbdc_host::bindings::history::BuildState::Unknown => "UNKNOWN",
    }
}
