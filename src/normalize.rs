//! Wire JSON → contract records: the one place that decides what each record field means.

use crate::model::{Project, ProjectKind, Repo, RepoRef, User, UserKind};
use crate::wire::{WireProject, WireRepo, WireRepoRef, WireUser};

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
pub fn repo_ref(r: &WireRepoRef) -> RepoRef {
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
            project_key: r.project.key,
            slug: r.slug,
        },
        description: r.description,
        scm: r.scm_id.unwrap_or_else(|| "git".into()),
        state: r.state,
        public: r.public.unwrap_or(false),
        archived: r.archived.unwrap_or(false),
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
        slug: u.slug.unwrap_or_else(|| u.name.clone()),
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
