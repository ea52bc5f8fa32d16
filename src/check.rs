//! The connection check: server reachable, credentials valid, something to import, and the
//! permissions the sync needs.

use crate::client::Client;
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel, ResponseHead};
use crate::model::{Connection, ConnectionReport};
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
/// 2. every page of `/projects`, and of `/repos` (all repositories, archived included), counted;
/// 3. the first project's repositories and the first repository's pull requests, one item each,
///    so a token that sees projects but may not read their contents is `invalid-permissions`;
/// 4. no visible repository is `no-resources`.
pub fn check_connection<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
) -> Result<ConnectionReport, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let (props, head) =
        client.get_json::<ApplicationProperties>(&["application-properties"], &[])?;
    let mut user = user_of(&head);

    let mut projects: Vec<WireProject> = Vec::new();
    client.for_each_page(&["projects"], &[], |items| projects.extend(items))?;
    let mut repo_count: u32 = 0;
    let mut first_repo: Option<WireRepo> = None;
    client.for_each_page(
        &["repos"],
        &[("archived", "ALL")],
        |items: Vec<WireRepo>| {
            repo_count = repo_count.saturating_add(u32::try_from(items.len()).unwrap_or(u32::MAX));
            if first_repo.is_none() {
                first_repo = items.into_iter().next();
            }
        },
    )?;

    if let Some(p) = projects.first() {
        let (_, head) = client
            .get_json::<serde_json::Value>(&["projects", &p.key, "repos"], &[("limit", "1")])
            .map_err(|e| refused(e, &format!("the repositories of project {}", p.key)))?;
        user = user.or_else(|| user_of(&head));
    }
    if let Some(r) = &first_repo {
        let what = format!("the pull requests of {}/{}", r.project.key, r.slug);
        let (_, head) = client
            .get_json::<serde_json::Value>(
                &[
                    "projects",
                    &r.project.key,
                    "repos",
                    &r.slug,
                    "pull-requests",
                ],
                &[("state", "ALL"), ("limit", "1")],
            )
            .map_err(|e| refused(e, &what))?;
        user = user.or_else(|| user_of(&head));
    }

    let project_count = u32::try_from(projects.len()).unwrap_or(u32::MAX);
    if repo_count == 0 {
        let msg = if project_count == 0 {
            "the account can see no project and no repository".to_string()
        } else {
            format!("the account can see {project_count} project(s) but no repository")
        };
        return Err(ConnectorError::NoResources(msg));
    }
    client.log(
        LogLevel::Info,
        &format!(
            "connection ok: Bitbucket {} as {}, {project_count} projects, {repo_count} repositories, {} requests",
            props.version.as_deref().unwrap_or("(unknown version)"),
            user.as_deref().unwrap_or("(unnamed account)"),
            client.requests()
        ),
    );
    Ok(ConnectionReport {
        server_version: props.version,
        build_number: props.build_number,
        server_name: props.display_name,
        user,
        projects: project_count,
        repos: repo_count,
    })
}
