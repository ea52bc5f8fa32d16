//! The paged listings: projects, repositories, users. One call returns one page.

use crate::client::Client;
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use crate::model::{Connection, Page, Project, Repo, UserPage};
use crate::normalize;
use crate::paging::{decode_cursor, encode_cursor};
use crate::wire::{WireProject, WireRepo, WireUser};

/// One page of the projects the account can see.
pub fn list_projects<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    cursor: Option<&str>,
) -> Result<Page<Project>, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let start = decode_cursor(cursor)?;
    let (page, _) = client.get_page::<WireProject>(&["projects"], &[], start)?;
    Ok(Page {
        items: page.items.into_iter().map(normalize::project).collect(),
        next: page.next.map(encode_cursor),
    })
}

/// One page of a project's repositories.
pub fn list_repos<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    project_key: &str,
    cursor: Option<&str>,
) -> Result<Page<Repo>, ConnectorError> {
    if project_key.is_empty() {
        return Err(ConnectorError::InvalidConfig("empty project key".into()));
    }
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let start = decode_cursor(cursor)?;
    let (page, _) = client.get_page::<WireRepo>(&["projects", project_key, "repos"], &[], start)?;
    Ok(Page {
        items: page.items.into_iter().map(normalize::repo).collect(),
        next: page.next.map(encode_cursor),
    })
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
        match client.get_page::<WireUser>(&["admin", "users"], &[], start) {
            Ok((page, _)) => {
                return Ok(UserPage {
                    page: Page {
                        items: page.items.into_iter().map(normalize::user).collect(),
                        next: page.next.map(encode_cursor),
                    },
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
    let (page, _) = client.get_page::<WireUser>(&["users"], &[], start)?;
    Ok(UserPage {
        page: Page {
            items: page.items.into_iter().map(normalize::user).collect(),
            next: page
                .next
                .map(|n| format!("{FALLBACK_PREFIX}{}", encode_cursor(n))),
        },
        fallback: true,
    })
}
