//! Pull-request sync. Not yet implemented: the calls answer a clear error until it lands.

use crate::error::ConnectorError;
use crate::host::Host;
use crate::model::{Connection, PullRequest, PullRequestBatch, RepoRef, SyncOptions};

fn unavailable(call: &str) -> ConnectorError {
    ConnectorError::InvalidConfig(format!(
        "{call} is not available in this connector build yet"
    ))
}

/// One step of a repository's pull-request sync pass.
pub fn fetch_pull_requests<H: Host + ?Sized>(
    _host: &H,
    _conn: &Connection,
    _repo: &RepoRef,
    _options: &SyncOptions,
    _cursor: Option<&str>,
) -> Result<PullRequestBatch, ConnectorError> {
    Err(unavailable("fetch-pull-requests"))
}

/// One pull request in full.
pub fn fetch_pull_request<H: Host + ?Sized>(
    _host: &H,
    _conn: &Connection,
    _repo: &RepoRef,
    _id: u64,
) -> Result<PullRequest, ConnectorError> {
    Err(unavailable("fetch-pull-request"))
}
