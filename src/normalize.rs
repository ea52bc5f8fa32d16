//! Wire JSON → contract records: the one place that decides what each record field means.

use crate::model::{
    PrCompleteness, PrRef, PrReviewer, PrState, Project, ProjectKind, PullRequest, RefKind, Repo,
    RepoRef, ReviewerStatus, User, UserKind,
};
use crate::wire::{WireParticipant, WireProject, WirePullRequest, WireRef, WireRepo, WireUser};

/// A project record.
pub fn project(p: WireProject) -> Project {
    // Personal project keys always start with `~`; trust that as much as the `type` field.
    let kind = if p.kind.as_deref() == Some("PERSONAL") || p.key.starts_with('~') {
        ProjectKind::Personal
    } else {
        ProjectKind::Normal
    };
    Project {
        id: p.id.unwrap_or_default(),
        name: p.name.unwrap_or_else(|| p.key.clone()),
        url: p.links.web(),
        key: p.key,
        description: p.description,
        public: p.public.unwrap_or(false),
        kind,
    }
}

/// A repository reference.
pub fn repo_ref(r: &WireRepo) -> RepoRef {
    RepoRef {
        project_key: r.project.key.clone(),
        slug: r.slug.clone(),
    }
}

/// A repository record.
pub fn repo(r: WireRepo) -> Repo {
    Repo {
        id: r.id.unwrap_or_default(),
        name: r.name.unwrap_or_else(|| r.slug.clone()),
        repo_ref: RepoRef {
            project_key: r.project.key.clone(),
            slug: r.slug,
        },
        description: r.description,
        scm: r.scm_id.unwrap_or_else(|| "git".into()),
        state: r.state,
        public: r.public.unwrap_or(false),
        archived: r.archived.unwrap_or(false),
        project: project(r.project),
        forkable: r.forkable.unwrap_or(false),
        origin: r.origin.as_deref().map(repo_ref),
        url: r.links.web(),
        clone_http: r.links.clone_named("http"),
        clone_ssh: r.links.clone_named("ssh"),
    }
}

/// A user record.
pub fn user(u: WireUser) -> User {
    User {
        id: u.id,
        slug: u.slug,
        name: u.name,
        display_name: u.display_name,
        email: u.email_address,
        active: u.active,
        kind: match u.kind.as_deref() {
            Some("NORMAL") | None => UserKind::Normal,
            Some("SERVICE") => UserKind::Service,
            Some(_) => UserKind::Other,
        },
    }
}

/// A reviewer status from `status`, falling back to the older `approved` flag.
pub fn reviewer_status(status: Option<&str>, approved: Option<bool>) -> ReviewerStatus {
    match status {
        Some("APPROVED") => ReviewerStatus::Approved,
        Some("NEEDS_WORK") | Some("CHANGES_REQUESTED") => ReviewerStatus::NeedsWork,
        Some(_) => ReviewerStatus::Unapproved,
        None if approved == Some(true) => ReviewerStatus::Approved,
        None => ReviewerStatus::Unapproved,
    }
}

/// A reviewer or participant.
pub fn participant(p: &WireParticipant) -> PrReviewer {
    PrReviewer {
        user: user(p.user.clone()),
        status: reviewer_status(p.status.as_deref(), p.approved),
        last_reviewed_commit: p.last_reviewed_commit.clone(),
    }
}

fn pr_ref(r: &WireRef) -> PrRef {
    let id = r.id.clone().unwrap_or_default();
    let declared = r.kind.as_deref();
    let kind = if declared == Some("TAG") || id.starts_with("refs/tags/") {
        RefKind::Tag
    } else if declared == Some("BRANCH") || id.starts_with("refs/heads/") {
        RefKind::Branch
    } else {
        RefKind::Other
    };
    let display_id = r.display_id.clone().unwrap_or_else(|| {
        id.strip_prefix("refs/heads/")
            .or_else(|| id.strip_prefix("refs/tags/"))
            .unwrap_or(&id)
            .to_owned()
    });
    PrRef {
        id,
        display_id,
        kind,
        latest_commit: r.latest_commit.clone(),
        repo: r.repository.as_ref().map(repo_ref),
    }
}

/// A pull-request state: `MERGED` and `DECLINED` as such; `OPEN`, a missing state and any state
/// this connector does not know are open.
pub fn pr_state(state: Option<&str>) -> PrState {
    match state {
        Some("MERGED") => PrState::Merged,
        Some("DECLINED") => PrState::Declined,
        _ => PrState::Open,
    }
}

/// A pull-request snapshot (no activities, no diff) from its JSON. `repo` is the repository it
/// was listed under, used when the payload does not name its target repository.
pub fn pull_request(p: &WirePullRequest, repo: &RepoRef) -> PullRequest {
    let source = pr_ref(&p.from_ref);
    let target = pr_ref(&p.to_ref);
    let repo = target.repo.clone().unwrap_or_else(|| repo.clone());
    let source_fork = source.repo.clone().filter(|s| *s != repo);
    let state = pr_state(p.state.as_deref());
    let created_at = p.created_date.map(i64::from).unwrap_or_default();
    let props = p.properties.clone().unwrap_or_default();
    PullRequest {
        id: p.id,
        repo,
        version: p.version.unwrap_or_default(),
        title: p.title.clone().unwrap_or_default(),
        description: p.description.clone(),
        state,
        draft: p.draft.unwrap_or(false),
        author: p.author.as_ref().map(|a| user(a.user.clone())),
        created_at,
        updated_at: p.updated_date.map(i64::from).unwrap_or(created_at),
        closed_at: p.closed_date.map(i64::from),
        merged_at: if state == PrState::Merged {
            p.closed_date.map(i64::from)
        } else {
            None
        },
        merged_by: None,
        merge_commit: props.merge_commit.as_ref().and_then(|c| c.id.clone()),
        source,
        target,
        source_fork,
        url: p.links.web(),
        reviewers: p.reviewers.iter().map(participant).collect(),
        participants: p.participants.iter().map(participant).collect(),
        comment_count: props.comment_count,
        open_task_count: props.open_task_count,
        resolved_task_count: props.resolved_task_count,
        diff: None,
        reviews: Vec::new(),
        events: Vec::new(),
        first_review_at: None,
        first_approval_at: None,
        completeness: PrCompleteness::Snapshot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_repo_with_fork_origin_and_links() {
        let r: WireRepo = serde_json::from_value(serde_json::json!({
            "slug": "api", "id": 12, "name": "API", "scmId": "git", "state": "AVAILABLE",
            "forkable": true, "public": false, "archived": true,
            "project": {"key": "~JDOE", "id": 3, "type": "PERSONAL"},
            "origin": {"slug": "api", "project": {"key": "PLAT"}},
            "links": {"clone": [{"href": "ssh://git@h:7999/~jdoe/api.git", "name": "ssh"},
                                {"href": "https://h/scm/~jdoe/api.git", "name": "http"}],
                      "self": [{"href": "https://h/users/jdoe/repos/api/browse"}]}
        }))
        .unwrap();
        let r = repo(r);
        assert_eq!(
            r.repo_ref,
            RepoRef {
                project_key: "~JDOE".into(),
                slug: "api".into()
            }
        );
        assert_eq!(
            r.origin,
            Some(RepoRef {
                project_key: "PLAT".into(),
                slug: "api".into()
            })
        );
        assert_eq!(r.clone_http.as_deref(), Some("https://h/scm/~jdoe/api.git"));
        assert_eq!(
            r.clone_ssh.as_deref(),
            Some("ssh://git@h:7999/~jdoe/api.git")
        );
        assert_eq!(
            r.url.as_deref(),
            Some("https://h/users/jdoe/repos/api/browse")
        );
        assert!(r.archived && r.forkable && !r.public);
    }

    #[test]
    fn minimal_repo_gets_defaults() {
        let r: WireRepo =
            serde_json::from_value(serde_json::json!({"slug": "x", "project": {"key": "P"}}))
                .unwrap();
        let r = repo(r);
        assert_eq!(
            (
                r.name.as_str(),
                r.scm.as_str(),
                r.archived,
                r.origin.is_none()
            ),
            ("x", "git", false, true)
        );
    }

    #[test]
    fn personal_project_detected_by_type_or_key() {
        let p: WireProject =
            serde_json::from_value(serde_json::json!({"key": "~JDOE", "id": 1})).unwrap();
        assert_eq!(project(p).kind, ProjectKind::Personal);
        let p: WireProject = serde_json::from_value(serde_json::json!({"key": "PLAT", "id": 2, "name": "Platform", "type": "NORMAL", "public": true})).unwrap();
        let p = project(p);
        assert_eq!(
            (p.kind, p.name.as_str(), p.public),
            (ProjectKind::Normal, "Platform", true)
        );
    }

    fn wire_pr(v: serde_json::Value) -> WirePullRequest {
        serde_json::from_value(v).unwrap()
    }

    fn repo_json(key: &str, slug: &str) -> serde_json::Value {
        serde_json::json!({"slug": slug, "project": {"key": key}})
    }

    #[test]
    fn fork_pull_request_names_its_source_repository() {
        let p = wire_pr(serde_json::json!({
            "id": 7, "version": 3, "title": "Fix", "state": "MERGED", "createdDate": 1000, "updatedDate": 3000, "closedDate": 2500,
            "fromRef": {"id": "refs/heads/fix", "displayId": "fix", "latestCommit": "aaa", "repository": repo_json("~JDOE", "api")},
            "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "bbb", "repository": repo_json("PLAT", "api")},
            "author": {"user": {"name": "jdoe", "slug": "jdoe"}, "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
            "reviewers": [{"user": {"name": "ann", "slug": "ann"}, "role": "REVIEWER", "approved": true, "status": "APPROVED", "lastReviewedCommit": "aaa"}],
            "properties": {"commentCount": 2, "openTaskCount": 1, "resolvedTaskCount": 0},
            "links": {"self": [{"href": "https://bb/projects/PLAT/repos/api/pull-requests/7"}]}
        }));
        let r = pull_request(
            &p,
            &RepoRef {
                project_key: "PLAT".into(),
                slug: "api".into(),
            },
        );
        assert_eq!(
            r.source_fork,
            Some(RepoRef {
                project_key: "~JDOE".into(),
                slug: "api".into()
            })
        );
        assert_eq!(
            (r.state, r.merged_at, r.closed_at),
            (PrState::Merged, Some(2500), Some(2500))
        );
        assert_eq!(r.reviewers[0].status, ReviewerStatus::Approved);
        assert_eq!((r.comment_count, r.open_task_count), (Some(2), Some(1)));
        assert_eq!(r.author.unwrap().slug, "jdoe");
        assert_eq!(r.source.kind, RefKind::Branch);
    }

    #[test]
    fn tag_source_and_missing_optionals() {
        let p = wire_pr(serde_json::json!({
            "id": 1, "version": 0, "title": "Release", "state": "OPEN", "createdDate": 5, "updatedDate": 6,
            "fromRef": {"id": "refs/tags/v1.0", "latestCommit": "ccc"},
            "toRef": {"id": "refs/heads/main", "latestCommit": "ddd"}
        }));
        let r = pull_request(
            &p,
            &RepoRef {
                project_key: "P".into(),
                slug: "r".into(),
            },
        );
        assert_eq!(
            (r.source.kind, r.source.display_id.as_str()),
            (RefKind::Tag, "v1.0")
        );
        assert_eq!(
            (r.draft, r.closed_at, r.comment_count, r.source_fork.clone()),
            (false, None, None, None)
        );
        assert_eq!(
            r.repo,
            RepoRef {
                project_key: "P".into(),
                slug: "r".into()
            }
        );
    }

    #[test]
    fn reviewer_status_falls_back_to_approved_flag() {
        assert_eq!(reviewer_status(None, Some(true)), ReviewerStatus::Approved);
        assert_eq!(
            reviewer_status(Some("NEEDS_WORK"), Some(false)),
            ReviewerStatus::NeedsWork
        );
        assert_eq!(reviewer_status(None, None), ReviewerStatus::Unapproved);
    }

    #[test]
    fn user_kinds_and_slug_fallback() {
        let u: WireUser = serde_json::from_value(
            serde_json::json!({"name": "ci-bot", "type": "SERVICE", "id": 9}),
        )
        .unwrap();
        let u = user(u);
        assert_eq!(
            (u.slug.as_str(), u.kind, u.id),
            ("ci-bot", UserKind::Service, Some(9))
        );
    }
}
