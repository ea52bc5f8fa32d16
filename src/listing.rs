//! The paged listings: projects, repositories, users. One call returns one page; items that
//! cannot be identified are left out of it and reported in its `unreadable` list. The cursor
//! carries what bounds the listing across calls (see [`Client::get_listed_page`]).

use crate::client::Client;
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use crate::model::{Connection, ProjectPage, RecordKind, RepoFilter, RepoPage, UserPage};
use crate::normalize;
use crate::paging::{PageCursor, decode_cursor, encode_cursor};
use crate::wire::{WireProject, WireRepo, WireUser};

/// One page of the projects the account can see. Personal projects are not among them (the
/// server does not list them); [`list_all_repos`] reaches their repositories.
pub fn list_projects<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    cursor: Option<&str>,
) -> Result<ProjectPage, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let at = decode_cursor(cursor)?;
    let (page, next) =
        client.get_listed_page::<WireProject>(RecordKind::Project, &["projects"], &[], at)?;
    Ok(ProjectPage {
        items: page.items.into_iter().map(normalize::project).collect(),
        next: next.map(encode_cursor),
        unreadable: page.unreadable,
    })
}

/// One page of repositories from `segments` (with `query`), normalised, those `filter` admits.
fn repo_page<H: Host + ?Sized>(
    client: &Client<'_, H>,
    segments: &[&str],
    query: &[(&str, &str)],
    filter: &RepoFilter,
    cursor: Option<&str>,
) -> Result<RepoPage, ConnectorError> {
    let at = decode_cursor(cursor)?;
    let (page, next) =
        client.get_listed_page::<WireRepo>(RecordKind::Repository, segments, query, at)?;
    let mut repos: Vec<_> = page.items.into_iter().map(normalize::repo).collect();
    repos.retain(|r| filter.admits(r));
    Ok(RepoPage {
        items: repos,
        next: next.map(encode_cursor),
        unreadable: page.unreadable,
    })
}

/// One page of a project's repositories (a personal key such as `~JDOE` works too).
pub fn list_repos<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    project_key: &str,
    filter: &RepoFilter,
    cursor: Option<&str>,
) -> Result<RepoPage, ConnectorError> {
    if project_key.is_empty() {
        return Err(ConnectorError::InvalidConfig("empty project key".into()));
    }
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    repo_page(
        &client,
        &["projects", project_key, "repos"],
        &[],
        filter,
        cursor,
    )
}

/// The query that makes `GET /repos` list what `filter` asks for. `archived` is a filter of
/// Bitbucket 8.0+ that defaults to `ACTIVE` there (reference: the `archived` parameter of
/// `/api/latest/repos`); older servers ignore it and have no archived repositories. The personal
/// filter has no server-side form and is applied to the items.
pub fn all_repos_query(filter: &RepoFilter) -> [(&'static str, &'static str); 1] {
    [(
        "archived",
        if filter.include_archived {
            "ALL"
        } else {
            "ACTIVE"
        },
    )]
}

/// One page of every repository the account can see (`GET /repos`), personal ones included,
/// those `filter` admits.
pub fn list_all_repos<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    filter: &RepoFilter,
    cursor: Option<&str>,
) -> Result<RepoPage, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    repo_page(
        &client,
        &["repos"],
        &all_repos_query(filter),
        filter,
        cursor,
    )
}

/// Cursor prefix for pages that come from `/users` after `/admin/users` was refused.
const FALLBACK_PREFIX: &str = "users:";

/// One page of users: `/admin/users` where the account may read it, else `/users`.
///
/// The cursor remembers which endpoint the listing is on, so a listing that fell back stays there.
pub fn list_users<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    cursor: Option<&str>,
) -> Result<UserPage, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let (fallback, at) = match cursor {
        Some(c) => match c.strip_prefix(FALLBACK_PREFIX) {
            Some(rest) => (true, decode_cursor(Some(rest))?),
            None => (false, decode_cursor(Some(c))?),
        },
        None => (false, PageCursor::default()),
    };
    if !fallback {
        match client.get_listed_page::<WireUser>(RecordKind::User, &["admin", "users"], &[], at) {
            Ok((page, next)) => {
                return Ok(UserPage {
                    items: page.items.into_iter().map(normalize::user).collect(),
                    next: next.map(encode_cursor),
                    fallback: false,
                    unreadable: page.unreadable,
                });
            }
            Err(ConnectorError::InvalidPermissions(why)) if at.start == 0 => {
                client.log(
                    LogLevel::Warn,
                    &format!(
                        "{why}; listing the users this account can see through /users instead"
                    ),
                );
            }
            Err(e) => return Err(e),
        }
    }
    let (page, next) = client.get_listed_page::<WireUser>(RecordKind::User, &["users"], &[], at)?;
    Ok(UserPage {
        items: page.items.into_iter().map(normalize::user).collect(),
        next: next.map(|n| format!("{FALLBACK_PREFIX}{}", encode_cursor(n))),
        fallback: true,
        unreadable: page.unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Canned, FakeHost};
    use serde_json::json;

    fn conn() -> Connection {
        Connection {
            base_url: "https://h/bb".into(),
            page_size: Some(25),
        }
    }

    /// Every page empty and saying more follows; past start 1,000 the listing ends, so a
    /// connector without the bound finishes instead of hanging.
    fn empty_forever(host: &FakeHost, path: &str) {
        host.on_query(path, |pairs| {
            let start: u64 = pairs
                .iter()
                .find(|(k, _)| k == "start")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let page = if start > 1000 {
                json!({"isLastPage": true, "values": []})
            } else {
                json!({"isLastPage": false, "values": [], "nextPageStart": start + 25})
            };
            Canned::Response {
                status: 200,
                headers: vec![],
                body: page.to_string().into_bytes(),
            }
        });
    }

    #[test]
    fn empty_pages_end_a_listing_paged_by_the_host() {
        let host = FakeHost::new();
        empty_forever(&host, "/bb/rest/api/1.0/projects");
        let mut cursor: Option<String> = None;
        let mut cursors = Vec::new();
        let err = loop {
            match list_projects(&host, &conn(), cursor.as_deref()) {
                Ok(page) => match page.next {
                    Some(n) => {
                        cursors.push(n.clone());
                        cursor = Some(n);
                    }
                    None => panic!("the listing ended after {cursors:?}"),
                },
                Err(e) => break e,
            }
        };
        assert_eq!(cursors, ["25.1.1.0", "50.2.2.0"]);
        assert_eq!(err.code(), "malformed_response");
        assert!(
            err.to_string()
                .contains("GET /projects: 3 empty pages in a row"),
            "{err}"
        );
    }

    #[test]
    fn the_users_fallback_keeps_the_empty_run_in_its_cursor() {
        let host = FakeHost::new();
        empty_forever(&host, "/bb/rest/api/1.0/users");
        let p = list_users(&host, &conn(), Some("users:50.2"));
        assert!(
            p.unwrap_err()
                .to_string()
                .contains("GET /users: 3 empty pages"),
            "the run carried by the cursor counts"
        );
        let p = list_users(&host, &conn(), Some("users:50")).unwrap();
        assert_eq!(p.next.as_deref(), Some("users:75.1.1.0"));
    }

    #[test]
    fn a_dot_project_key_is_refused_before_any_request() {
        let host = FakeHost::new();
        for key in [".", ".."] {
            let e = list_repos(&host, &conn(), key, &RepoFilter::default(), None).unwrap_err();
            assert_eq!(e.code(), "invalid_config", "{key}");
        }
        assert!(host.requests.borrow().is_empty());
    }
}
