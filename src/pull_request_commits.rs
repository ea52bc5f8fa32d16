//! The commits of a pull request, a page per call (contract 0.2.0, `list-pull-request-commits`):
//! `GET .../pull-requests/{id}/commits`, what Bitbucket shows on the pull request's Commits tab.
//!
//! Stateless: the host knows when a pull request's pair of head commits changed (it stores the
//! pair with the commits it read), so it decides when to read them. Each listed commit becomes
//! the same [`Commit`] record a default-branch pass returns ([`crate::commits::commit`]): never a
//! diff, and the message cut to its first line here, inside the sandbox. A listed commit without
//! an `id` is left out and reported; every other field that cannot be read is empty.

use crate::error::ConnectorError;
use crate::history_page;
use crate::host::Host;
use crate::model::{Connection, HistoryKind, PullRequestCommitPage, RepoRef};
use crate::wire_history::WireHistoryCommit;

/// One page of the commits of pull request `id` of `repo`, newest first.
pub fn list_pull_request_commits<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    id: u64,
    cursor: Option<&str>,
) -> Result<PullRequestCommitPage, ConnectorError> {
    let id_s = id.to_string();
    let (page, next) = history_page::list::<WireHistoryCommit, _>(
        host,
        conn,
        repo,
        &["pull-requests", &id_s, "commits"],
        HistoryKind::Commit,
        cursor,
    )?;
    Ok(PullRequestCommitPage {
        items: page
            .items
            .into_iter()
            .map(|w| crate::commits::commit(repo, w))
            .collect(),
        next,
        unreadable: page.unreadable,
    })
}

#[cfg(test)]
mod tests;
