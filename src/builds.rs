//! The build statuses of commits (contract 0.2.0, `fetch-builds`): for each commit the host
//! names, every status the server holds, read from `GET /rest/build-status/1.0/commits/{id}`.
//!
//! That resource is the only one that lists a commit's builds on every server version: the 7.14+
//! `.../repos/{slug}/commits/{id}/builds` needs a build's `key` and returns that one build, and the
//! bulk `POST .../commits/stats` counts states without naming the builds (see `BITBUCKET.md`). So
//! a commit costs one request (the server keeps the 100 most recent statuses of a commit, one
//! page at this page size). Stateless: the host decides which commits need their builds read.

use crate::client::{Client, Root};
use crate::error::ConnectorError;
use crate::history_page;
use crate::host::Host;
use crate::model::{
    Build, BuildBatch, BuildFailure, BuildState, Connection, HistoryKind, RepoRef, TestResults,
    UnreadableItem,
};
use crate::paging::{Bounds, Tally};
use crate::wire_history::{WireBuildStatus, WireTestResults};
use std::collections::HashSet;

/// Most commits one call may name: each is a request, and a call should stay short.
pub const MAX_COMMITS_PER_CALL: usize = 50;

/// Statuses asked for per page: the server holds at most 100 per commit, so one page has all.
const STATUS_PAGE: u32 = 100;

/// Whether `id` is a full commit hash (SHA-1 or SHA-256, hexadecimal).
pub fn is_full_hash(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The build statuses of `commits` of `repo`: every status of each, newest first as the server
/// lists them, one per key.
pub fn fetch_builds<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    commits: &[String],
) -> Result<BuildBatch, ConnectorError> {
    history_page::checked(repo)?;
    if commits.len() > MAX_COMMITS_PER_CALL {
        return Err(ConnectorError::InvalidConfig(format!(
            "{} commits in one call: at most {MAX_COMMITS_PER_CALL}",
            commits.len()
        )));
    }
    if let Some(bad) = commits.iter().find(|c| !is_full_hash(c)) {
        return Err(ConnectorError::InvalidConfig(format!(
            "{:?} is not a full commit hash",
            bad.chars().take(80).collect::<String>()
        )));
    }
    let client = Client::new(host, &conn.base_url, Some(STATUS_PAGE))?;
    let mut batch = BuildBatch {
        builds: Vec::new(),
        failed: Vec::new(),
        unreadable: Vec::new(),
        requests: 0,
    };
    for commit in commits {
        match commit_builds(&client, repo, commit) {
            Ok((builds, unreadable)) => {
                batch.builds.extend(builds);
                batch.unreadable.extend(unreadable);
            }
            Err(e) if fails_every_commit(&e) => return Err(e),
            Err(e) => batch.failed.push(BuildFailure {
                commit_id: commit.clone(),
                error: e.into(),
            }),
        }
    }
    batch.requests = client.requests();
    Ok(batch)
}

/// Whether `e` would fail every other commit's request too, so the call fails: credentials,
/// permissions, the rate limit, the host's refusal, a bad configuration or storage.
fn fails_every_commit(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::InvalidCredentials(_)
            | ConnectorError::InvalidPermissions(_)
            | ConnectorError::RateLimited { .. }
            | ConnectorError::Denied(_)
            | ConnectorError::InvalidConfig(_)
            | ConnectorError::Storage(_)
    )
}

/// Every status of one commit, one per key.
fn commit_builds<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    commit: &str,
) -> Result<(Vec<Build>, Vec<UnreadableItem>), ConnectorError> {
    let mut builds = Vec::new();
    let mut unreadable = Vec::new();
    let mut seen = HashSet::new();
    let mut tally = Tally::default();
    let mut start = 0;
    loop {
        let page = history_page::fetch_at::<WireBuildStatus, _>(
            client,
            Root::BuildStatus,
            &["commits", commit],
            HistoryKind::Build,
            &[],
            start,
            client.page_size(),
        )?;
        unreadable.extend(page.unreadable);
        builds.extend(
            page.items
                .into_iter()
                // A key listed twice (a page boundary moving under a rebuild) is one build:
                // the first, newest, is kept.
                .filter(|w| seen.insert(w.key.clone()))
                .map(|w| build(repo, commit, w)),
        );
        tally.count(
            page.received,
            page.next.is_some(),
            Bounds::BUILDS,
            &format!("GET /build-status/commits/{commit}"),
        )?;
        match page.next {
            Some(next) => start = next,
            None => return Ok((builds, unreadable)),
        }
    }
}

/// A status's state, and the server's spelling when this connector does not know it.
fn state(raw: Option<String>) -> (BuildState, Option<String>) {
    match raw.as_deref().map(str::trim) {
        Some("SUCCESSFUL") => (BuildState::Successful, None),
        Some("FAILED") => (BuildState::Failed, None),
        Some("INPROGRESS") => (BuildState::InProgress, None),
        Some("CANCELLED") => (BuildState::Cancelled, None),
        Some("UNKNOWN") | None => (BuildState::Unknown, None),
        Some(other) => (BuildState::Unknown, Some(other.chars().take(64).collect())),
    }
}

/// The record of one wire status.
fn build(repo: &RepoRef, commit: &str, w: WireBuildStatus) -> Build {
    let (state, state_other) = state(w.state);
    Build {
        repo: repo.clone(),
        commit_id: commit.to_owned(),
        key: w.key,
        name: w.name,
        state,
        state_other,
        url: w.url,
        created_at: w
            .created_date
            .map(i64::from)
            .or(w.date_added.map(i64::from)),
        updated_at: w.updated_date.map(i64::from),
        duration_ms: w.duration.filter(|d| *d >= 0),
        build_number: w.build_number,
        parent: w.parent,
        ref_id: w.ref_id,
        test_results: w.test_results.and_then(test_results),
    }
}

/// Test counts, when the server sent any.
fn test_results(t: WireTestResults) -> Option<TestResults> {
    if t == WireTestResults::default() {
        return None;
    }
    Some(TestResults {
        successful: t.successful.unwrap_or(0),
        failed: t.failed.unwrap_or(0),
        skipped: t.skipped.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
