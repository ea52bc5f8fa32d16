//! The paged listings: projects, repositories, users. One call returns one page; items that
//! cannot be identified are left out of it and reported in its `unreadable` list.

use crate::client::{Client, FetchedPage};
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use crate::model::{Connection, Page, Project, RecordKind, Repo, RepoFilter, UserPage};
use crate::normalize;
use crate::paging::{decode_cursor, encode_cursor};
use crate::wire::{WireProject, WireRepo, WireUser};

fn page_of<W, T>(page: FetchedPage<W>, next: Option<String>, f: impl Fn(W) -> T) -> Page<T> {
    Page {
        items: page.items.into_iter().map(f).collect(),
        next,
        unreadable: page.unreadable,
    }
}

/// One page of the projects the account can see. Personal projects are not among them (the
/// server does not list them); [`list_all_repos`] reaches their repositories.
pub fn list_projects<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    cursor: Option<&str>,
) -> Result<Page<Project>, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let start = decode_cursor(cursor)?;
    let (page, _) =
        client.get_page::<WireProject>(RecordKind::Project, &["projects"], &[], start)?;
    let next = page.next.map(encode_cursor);
    Ok(page_of(page, next, normalize::project))
}

/// One page of repositories from `segments` (with `query`), normalised, those `filter` admits.
fn repo_page<H: Host + ?Sized>(
    client: &Client<'_, H>,
    segments: &[&str],
    query: &[(&str, &str)],
    filter: &RepoFilter,
    cursor: Option<&str>,
) -> Result<Page<Repo>, ConnectorError> {
    let start = decode_cursor(cursor)?;
    let (page, _) = client.get_page::<WireRepo>(RecordKind::Repository, segments, query, start)?;
    let next = page.next.map(encode_cursor);
    let mut page = page_of(page, next, normalize::repo);
    page.items.retain(|r| filter.admits(r));
    Ok(page)
}

/// One page of a project's repositories (a personal key such as `~JDOE` works too).
pub fn list_repos<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    project_key: &str,
    filter: &RepoFilter,
    cursor: Option<&str>,
) -> Result<Page<Repo>, ConnectorError> {
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
) -> Result<Page<Repo>, ConnectorError> {
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
    let (fallback, start) = match cursor {
        Some(c) => match c.strip_prefix(FALLBACK_PREFIX) {
            Some(rest) => (true, decode_cursor(Some(rest))?),
            None => (false, decode_cursor(Some(c))?),
        },
        None => (false, 0),
    };
    if !fallback {
        match client.get_page::<WireUser>(RecordKind::User, &["admin", "users"], &[], start) {
            Ok((page, _)) => {
                let next = page.next.map(encode_cursor);
                return Ok(UserPage {
                    page: page_of(page, next, normalize::user),
                    fallback: false,
                });
            }
            Err(ConnectorError::InvalidPermissions(why)) if start == 0 => {
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
    let (page, _) = client.get_page::<WireUser>(RecordKind::User, &["users"], &[], start)?;
    let next = page
        .next
        .map(|n| format!("{FALLBACK_PREFIX}{}", encode_cursor(n)));
    Ok(UserPage {
        page: page_of(page, next, normalize::user),
        fallback: true,
    })
}
