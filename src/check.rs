//! The connection check: server reachable, credentials valid, something to import, and the
//! permissions the sync needs.

use crate::client::{Client, FetchedPage};
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel, ResponseHead};
use crate::listing::all_repos_query;
use crate::model::{Connection, ConnectionReport, ProjectKind, RecordKind, RepoFilter, RepoRef};
use crate::normalize;
use crate::wire::{ApplicationProperties, WireProject, WireRepo};

/// Header in which Bitbucket names the authenticated account.
const USER_HEADER: &str = "x-ausername";

fn user_of(head: &ResponseHead) -> Option<String> {
    head.header(USER_HEADER)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
}

fn refused(e: ConnectorError, what: &str) -> ConnectorError {
    match e {
        ConnectorError::InvalidPermissions(m) | ConnectorError::NotFound(m) => {
            ConnectorError::InvalidPermissions(format!("the account cannot read {what}: {m}"))
        }
        other => other,
    }
}

/// Runs the check. The first failing step decides the error:
/// 1. `/application-properties` (reachability, version; bad credentials fail here);
/// 2. every page of `/projects`, and of `/repos` (every visible repository, personal ones
///    included), counted as the sync with the same `filter` visits them;
/// 3. the first project's repositories and the first repository's pull requests, one item each,
///    so a token that sees projects but may not read their contents is `invalid-permissions`;
/// 4. no visible repository is `no-resources`.
pub fn check_connection<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    filter: &RepoFilter,
) -> Result<ConnectionReport, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let (props, head) =
        client.get_json::<ApplicationProperties>(&["application-properties"], &[])?;
    let mut user = user_of(&head);

    let mut project_count: u32 = 0;
    let mut first_project: Option<String> = None;
    client.for_each_page(
        RecordKind::Project,
        &["projects"],
        &[],
        |page: FetchedPage<WireProject>| {
            project_count = project_count.saturating_add(count(page.items.len()));
            if first_project.is_none() {
                first_project = page.items.into_iter().next().map(|p| p.key);
            }
        },
    )?;
    // Counted with everything visible, so the report can say what the filter left out.
    let everything = RepoFilter::default();
    let mut report = ConnectionReport::default();
    let mut first_repo: Option<RepoRef> = None;
    client.for_each_page(
        RecordKind::Repository,
        &["repos"],
        &all_repos_query(&everything),
        |page: FetchedPage<WireRepo>| {
            for r in page.items.into_iter().map(normalize::repo) {
                if !filter.admits(&r) {
                    report.excluded_repos = report.excluded_repos.saturating_add(1);
                    continue;
                }
                report.repos = report.repos.saturating_add(1);
                if r.project.kind == ProjectKind::Personal {
                    report.personal_repos = report.personal_repos.saturating_add(1);
                }
                if r.archived {
                    report.archived_repos = report.archived_repos.saturating_add(1);
                }
                first_repo.get_or_insert(r.repo_ref);
            }
        },
    )?;

    if let Some(key) = &first_project {
        let (_, head) = client
            .get_json::<serde_json::Value>(&["projects", key, "repos"], &[("limit", "1")])
            .map_err(|e| refused(e, &format!("the repositories of project {key}")))?;
        user = user.or_else(|| user_of(&head));
    }
    if let Some(r) = &first_repo {
        let what = format!("the pull requests of {}/{}", r.project_key, r.slug);
        let (_, head) = client
            .get_json::<serde_json::Value>(
                &[
                    "projects",
                    &r.project_key,
                    "repos",
                    &r.slug,
                    "pull-requests",
                ],
                &[("state", "ALL"), ("limit", "1")],
            )
            .map_err(|e| refused(e, &what))?;
        user = user.or_else(|| user_of(&head));
    }

    if report.repos == 0 {
        let msg = if report.excluded_repos > 0 {
            format!(
                "the filter leaves out all {} repositories the account can see",
                report.excluded_repos
            )
        } else if project_count == 0 {
            "the account can see no project and no repository".to_string()
        } else {
            format!("the account can see {project_count} project(s) but no repository")
        };
        return Err(ConnectorError::NoResources(msg));
    }
    client.log(
        LogLevel::Info,
        &format!(
            "connection ok: Bitbucket {} as {}, {project_count} projects, {} repositories, {} requests",
            props.version.as_deref().unwrap_or("(unknown version)"),
            user.as_deref().unwrap_or("(unnamed account)"),
            report.repos,
            client.requests()
        ),
    );
    Ok(ConnectionReport {
        server_version: props.version,
        build_number: props.build_number,
        server_name: props.display_name,
        user,
        projects: project_count,
        ..report
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
