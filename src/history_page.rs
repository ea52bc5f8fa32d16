//! One page of a repository's history listing (`.../commits`, `.../branches`, `.../tags`, and a
//! commit's build statuses):
//! fetched, each item decoded on its own (one that cannot be identified is left out and
//! reported as an [`UnreadableItem`] of its kind), and where the next page starts. The one
//! paging loop behind [`crate::commits`], [`crate::refs`], [`crate::builds`] and
//! [`crate::pull_request_commits`]; [`list`] is the page-per-call form of it.

use crate::client::{Client, Root};
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use crate::model::{Connection, HistoryKind, RepoRef, UnreadableItem};
use crate::paging::{self, PageCursor, WirePage, decode_cursor, encode_cursor};
use serde::de::DeserializeOwned;

/// A page of wire items.
pub struct HistoryPage<T> {
    /// The items that decoded.
    pub items: Vec<T>,
    /// The ones that did not.
    pub unreadable: Vec<UnreadableItem>,
    /// Where the next page starts (`None`: this is the last).
    pub next: Option<u64>,
    /// Items the page held, readable or not.
    pub received: usize,
}

/// The name an item of `kind` goes by in messages.
fn noun(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::Commit => "commit",
        HistoryKind::Branch => "branch",
        HistoryKind::Tag => "tag",
        HistoryKind::Build => "build status",
    }
}

/// Refuses a repository without its project key or slug, before any request.
pub fn checked(repo: &RepoRef) -> Result<(), ConnectorError> {
    if repo.project_key.is_empty() || repo.slug.is_empty() {
        return Err(ConnectorError::InvalidConfig(
            "a repository needs its project key and slug".into(),
        ));
    }
    Ok(())
}

/// One page of `GET /projects/{key}/repos/{slug}/{resource...}` at the contract's `cursor`, and
/// the cursor of the next page: a listing served a page per call (branches, tags, a pull
/// request's commits). The listing's tally (pages, items, empty pages in a row) travels in the
/// cursor, as every listing's does, so a server that never ends its listing is stopped at
/// [`paging::Bounds::WALKED`] however many calls the host makes.
pub fn list<T: DeserializeOwned, H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    resource: &[&str],
    kind: HistoryKind,
    cursor: Option<&str>,
) -> Result<(HistoryPage<T>, Option<String>), ConnectorError> {
    checked(repo)?;
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let at = decode_cursor(cursor)?;
    let limit = client.page_size();
    let mut segments = vec![
        "projects",
        repo.project_key.as_str(),
        "repos",
        repo.slug.as_str(),
    ];
    segments.extend_from_slice(resource);
    let page = fetch_at::<T, _>(&client, Root::Api, &segments, kind, &[], at.start, limit)?;
    let mut listed = at.listed;
    listed.count(
        page.received,
        page.next.is_some(),
        paging::Bounds::WALKED,
        &resource.join("/"),
    )?;
    let next = page
        .next
        .map(|start| encode_cursor(PageCursor { start, listed }));
    Ok((page, next))
}

/// `GET /projects/{key}/repos/{slug}/{resource}?{query}&start={start}&limit={limit}`, its items
/// decoded as `T`.
pub fn fetch<T: DeserializeOwned, H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    resource: &str,
    kind: HistoryKind,
    query: &[(&str, &str)],
    start: u64,
    limit: u32,
) -> Result<HistoryPage<T>, ConnectorError> {
    let segments = [
        "projects",
        repo.project_key.as_str(),
        "repos",
        repo.slug.as_str(),
        resource,
    ];
    fetch_at(client, Root::Api, &segments, kind, query, start, limit)
}

/// [`fetch`] of any paged resource: `GET {root}/{segments}?{query}&start=&limit=`.
pub fn fetch_at<T: DeserializeOwned, H: Host + ?Sized>(
    client: &Client<'_, H>,
    root: Root,
    segments: &[&str],
    kind: HistoryKind,
    query: &[(&str, &str)],
    start: u64,
    limit: u32,
) -> Result<HistoryPage<T>, ConnectorError> {
    let start_s = start.to_string();
    let limit_s = limit.max(1).to_string();
    let mut q: Vec<(&str, &str)> = query.to_vec();
    q.push(("start", &start_s));
    q.push(("limit", &limit_s));
    let (_, body, what) = client.get_body_under(root, segments, &q)?;
    let page: WirePage<'_> = serde_json::from_slice(&body).map_err(|e| {
        ConnectorError::MalformedResponse(format!(
            "{what}: {}",
            paging::clean_reason(&e.to_string())
        ))
    })?;
    let raw = page.values.as_deref().unwrap_or_default();
    let (items, unreadable) = paging::decode_items_as::<T, _>(
        raw,
        &format!("{what} start={start}"),
        |location, reason| UnreadableItem {
            kind,
            location,
            reason,
        },
    );
    for u in &unreadable {
        client.log(
            LogLevel::Warn,
            &format!(
                "{}: left out a {} that cannot be identified: {}",
                u.location,
                noun(kind),
                u.reason
            ),
        );
    }
    let (next, _) = paging::next_start(start, &page);
    paging::check_next(start, &page, items.len(), next, &what)?;
    Ok(HistoryPage {
        items,
        unreadable,
        next,
        received: raw.len(),
    })
}
