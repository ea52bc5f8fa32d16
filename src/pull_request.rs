//! One pull request in full (contract `fetch-pull-request`), as a host asks for it after a
//! webhook: its snapshot, activities and diff statistics ([`crate::pulls`]), with the one thing
//! it reads of the sync's memory ([`crate::sync::known_diff`]).

use crate::client::Client;
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use crate::model::{Connection, PullRequest, RepoRef};
use crate::pulls::{DiffOutcome, complete, fetch_snapshot};

/// One pull request in full, e.g. after a webhook. It does not change the sync state: the next
/// sync pass still fetches the pull request if it changed since that pass last saw it. It only
/// reads it for one thing: a diff the sync found too large for this commit pair is not
/// downloaded again (its outcome cannot change, and it can be as large as the host's cap).
pub fn fetch_pull_request<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    id: u64,
) -> Result<PullRequest, ConnectorError> {
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let (wire, snapshot) = fetch_snapshot(&client, repo, id)?;
    let known = crate::sync::known_diff(host, repo, &wire)
        .filter(|d| matches!(d, DiffOutcome::TooLarge(_)));
    // The contract's single pull request has no list to report them in; they were logged.
    let mut unreadable = Vec::new();
    let (pr, _) = complete(&client, snapshot, known, &mut unreadable).map_err(|(_, e)| e)?;
    if !unreadable.is_empty() {
        client.log(
            LogLevel::Warn,
            &format!(
                "{}/{} #{id}: {} activities left out",
                repo.project_key,
                repo.slug,
                unreadable.len()
            ),
        );
    }
    Ok(pr)
}
