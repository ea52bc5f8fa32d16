//! One shape per record: the JSON line `bbdc sync --jsonl` writes for each record type, and the
//! names (states, kinds, actions) that both the JSON lines and the record tables spell. The
//! record sinks store these same values (a pull request's `record` column is its line), so what
//! is stored and what is printed never disagree.

use bbdc_host::bindings::history::{Branch, Build, BuildState, Commit, CommitPerson, Tag};
use bbdc_host::bindings::types::{
    PrEventKind, PrState, Project, ProjectKind, PullRequest, RefKind, Repo, RepoRef, ReviewAction,
    ReviewerStatus, User, UserKind,
};
use serde_json::{Value, json};

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

/// A `{"type": "project", ...}` line.
/// A project's kind as the tables and the JSON lines spell it.
pub fn project_kind(k: ProjectKind) -> &'static str {
    match k {
        ProjectKind::Normal => "normal",
        ProjectKind::Personal => "personal",
    }
}

pub fn project_json(p: &Project) -> Value {
    json!({
        "type": "project", "key": p.key, "id": p.id, "name": p.name, "description": p.description,
        "public": p.public, "kind": project_kind(p.kind),
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

/// A build state as the `builds` table and the JSON lines spell it (the server's own spelling).
pub fn build_state(s: BuildState) -> &'static str {
    match s {
        BuildState::Successful => "SUCCESSFUL",
        BuildState::Failed => "FAILED",
        BuildState::InProgress => "INPROGRESS",
        BuildState::Cancelled => "CANCELLED",
        BuildState::Unknown => "UNKNOWN",
    }
}
