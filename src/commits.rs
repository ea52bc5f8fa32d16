//! The incremental, resumable pass over a repository's default-branch commits (contract 0.2.0,
//! `fetch-commits`).
//!
//! A pass starts by asking for the branch's tip (`GET .../commits?limit=1`, newest first, the
//! default branch when no `until` is given), unless the host names it (it has just listed the
//! branches: [`fetch_commits_from`]). When the tip is the head the last complete pass
//! ended at, the pass is `unchanged` and costs that one small request. Otherwise it walks
//! `GET .../commits?until={tip}` page by page, one page per call, with `since={last head}` when
//! there is one, so that only the commits new since then are listed. The tip is pinned for the
//! whole pass: a push while it runs is picked up by the next one.
//!
//! - **Force-pushes are found, never skipped.** `since=X&until=T` lists the commits reachable
//!   from T and not from X. When X is an ancestor of T (the branch moved forward), one of them
//!   has X as a parent: the commit right after X on the way from T. When no listed commit has X
//!   as a parent, X is no longer on the branch: the branch was rewritten, and the pass goes on as
//!   `rewritten`, listing the branch from its tip in full so that the host can keep exactly the
//!   commits that listing names. A `since` the server no longer knows (404) is a rewrite too.
//! - **Nothing is lost when the host dies.** As for pull requests ([`crate::sync`]), a batch is
//!   acknowledged by the call with its `next-cursor`; only then does the pass move past it. The
//!   pass's end is a batch too (`complete`, no commits): the host persists it, dropping after a
//!   rewrite the commits the pass did not name, and acknowledges it; only then does the head
//!   move. A host that restarts without the cursor gets the unacknowledged batch again.
//! - **No source code.** Only the listing is asked for: never a diff, a patch or a file. A
//!   commit's message is cut to its first line here, inside the sandbox.
//! - **One bad commit never fails its page.** A listed commit without an `id` is left out and
//!   reported; any other field that cannot be read is empty.

use crate::client::Client;
use crate::error::ConnectorError;
use crate::history_page;
use crate::host::{Host, LogLevel};
use crate::model::{
    Commit, CommitBatch, CommitPassKind, CommitPerson, Connection, HistoryKind, RepoRef,
    UnreadableItem,
};
use crate::paging::{Bounds, Tally};
use crate::wire_history::{WireHistoryCommit, WirePerson};
use serde::{Deserialize, Serialize};

/// The longest commit summary kept, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1000;

/// Storage key of a repository's commit-pass state.
pub fn state_key(repo: &RepoRef) -> String {
    format!("commits/{}/{}", repo.project_key, repo.slug)
}

/// What kind of listing a pass step walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    First,
    Incremental,
    Rewritten,
}

impl Kind {
    fn contract(self) -> CommitPassKind {
        match self {
            Kind::First => CommitPassKind::First,
            Kind::Incremental => CommitPassKind::Incremental,
            Kind::Rewritten => CommitPassKind::Rewritten,
        }
    }
}

/// Where a pass is in its listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Step {
    kind: Kind,
    /// The last pass's head (`since`), for an incremental listing.
    since: Option<String>,
    /// Where the next page starts; `None` once the listing is walked.
    start: Option<u64>,
    /// Whether a listed commit had `since` as a parent (the branch moved forward from it).
    linked: bool,
    /// How far the pass's listing has come (pages, items, empty pages in a row), carried
    /// from step to step so that the listing is bounded across calls (see [`Tally`]).
    #[serde(default)]
    listed: Tally,
    /// The listing is over and its completion was handed out: acknowledging it ends the pass.
    #[serde(default)]
    done: bool,
}

/// A pass going on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pass {
    id: u64,
    /// The tip the pass walks back from.
    tip: String,
    /// Where the pass is, as acknowledged.
    at: Step,
    /// Batches acknowledged.
    acked: u32,
    /// Where the pass will be once the batch handed out is acknowledged.
    pending: Option<Step>,
}

/// A repository's commit-pass state, stored under [`state_key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CommitState {
    /// The tip the last complete pass ended at.
    head: Option<String>,
    /// The pass going on.
    pass: Option<Pass>,
    /// The id the next pass gets.
    next_pass: u64,
    /// The last complete pass's id, so that a repeated final acknowledgement is harmless.
    last_pass: Option<u64>,
}

/// One step of the commit pass of `repo`, finding the branch's tip itself when a pass starts.
pub fn fetch_commits<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    cursor: Option<&str>,
) -> Result<CommitBatch, ConnectorError> {
    fetch_commits_from(host, conn, repo, cursor, None)
}

/// One step of the commit pass of `repo` (see the module documentation and the WIT
/// `fetch-commits`); a pass that starts here starts at `known_tip` when the host gives it.
pub fn fetch_commits_from<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    cursor: Option<&str>,
    known_tip: Option<&str>,
) -> Result<CommitBatch, ConnectorError> {
    history_page::checked(repo)?;
    if let Some(t) = known_tip.filter(|t| !crate::builds::is_full_hash(t)) {
        return Err(ConnectorError::InvalidConfig(format!(
            "{:?} is not a full commit hash",
            t.chars().take(80).collect::<String>()
        )));
    }
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let key = state_key(repo);
    let (mut state, raw) = crate::state::load::<CommitState, _>(host, &key, "commit state");
    // A batch that ends a pass, or ends it at once (nothing to list).
    let batch = |pass: CommitPassKind, head: Option<String>, client: &Client<'_, H>| CommitBatch {
        commits: Vec::new(),
        unreadable: Vec::new(),
        pass,
        head,
        complete: true,
        next_cursor: None,
        requests: client.requests(),
    };

    match cursor {
        Some(c) => {
            let (id, n) = decode_cursor(c)?;
            match state.pass.as_mut() {
                Some(p)
                    if p.id == id && p.pending.is_some() && p.acked.checked_add(1) == Some(n) =>
                {
                    if let Some(step) = p.pending.take() {
                        p.at = step;
                        p.acked = n;
                    }
                }
                // Already acknowledged (a repeated call): redo the step after it.
                Some(p) if p.id == id && p.acked == n => p.pending = None,
                None if state.last_pass == Some(id) => {
                    return Ok(batch(
                        CommitPassKind::Unchanged,
                        state.head.clone(),
                        &client,
                    ));
                }
                _ => return Err(stale(c)),
            }
        }
        None => match state.pass.as_mut() {
            Some(p) => {
                host.log(
                    LogLevel::Info,
                    &format!(
                        "{key}: resuming commit pass {} after batch {}",
                        p.id, p.acked
                    ),
                );
                p.pending = None;
            }
            None => {
                let tip = match known_tip {
                    Some(t) => Some(t.to_owned()),
                    None => branch_tip(&client, repo)?,
                };
                let Some(tip) = tip else {
                    // An empty repository: nothing to list, and no head to remember.
                    if state.head.take().is_some() {
                        save(host, &key, raw.as_deref(), &state)?;
                    }
                    return Ok(batch(CommitPassKind::Unchanged, None, &client));
                };
                if state.head.as_deref() == Some(tip.as_str()) {
                    return Ok(batch(CommitPassKind::Unchanged, Some(tip), &client));
                }
                let kind = if state.head.is_some() {
                    Kind::Incremental
                } else {
                    Kind::First
                };
                state.pass = Some(Pass {
                    id: state.next_pass,
                    tip,
                    at: Step {
                        kind,
                        since: state.head.clone(),
                        start: Some(0),
                        linked: false,
                        listed: Tally::default(),
                        done: false,
                    },
                    acked: 0,
                    pending: None,
                });
                state.next_pass = state.next_pass.saturating_add(1);
            }
        },
    }

    let Some(pass) = state.pass.as_mut() else {
        return Ok(batch(
            CommitPassKind::Unchanged,
            state.head.clone(),
            &client,
        ));
    };
    let n = pass.acked.checked_add(1).ok_or_else(|| {
        ConnectorError::Storage(format!(
            "{key}: pass {} has run out of batch numbers; delete the key to start afresh",
            pass.id
        ))
    })?;
    if pass.at.start.is_none() {
        if pass.at.done {
            // The completion was acknowledged: the pass is over, and its tip is the head.
            let kind = pass.at.kind.contract();
            let tip = pass.tip.clone();
            state.last_pass = Some(pass.id);
            state.head = Some(tip.clone());
            state.pass = None;
            save(host, &key, raw.as_deref(), &state)?;
            return Ok(batch(kind, Some(tip), &client));
        }
        if pass.at.kind == Kind::Incremental && !pass.at.linked {
            host.log(
                LogLevel::Info,
                &format!(
                    "{key}: {} is no longer on the default branch (rewritten); listing the branch in full",
                    pass.at.since.as_deref().unwrap_or("the last head")
                ),
            );
            pass.at = rewritten();
        } else {
            // Everything is listed: the host persists that (and, after a rewrite, drops what
            // the pass did not name) before it acknowledges, and only then does the head move.
            let kind = pass.at.kind.contract();
            pass.pending = Some(Step {
                done: true,
                ..pass.at.clone()
            });
            let (id, tip) = (pass.id, pass.tip.clone());
            save(host, &key, raw.as_deref(), &state)?;
            return Ok(CommitBatch {
                next_cursor: Some(encode_cursor(id, n)),
                ..batch(kind, Some(tip), &client)
            });
        }
    }
    let (page, step) = match walk_step(&client, repo, &pass.tip, &pass.at) {
        Err(ConnectorError::NotFound(why)) if pass.at.since.is_some() => {
            host.log(
                LogLevel::Info,
                &format!("{key}: the last head is gone ({why}); listing the branch in full"),
            );
            pass.at = rewritten();
            walk_step(&client, repo, &pass.tip, &pass.at)?
        }
        other => other?,
    };
    let kind = step.kind.contract();
    pass.pending = Some(step);
    let (id, tip) = (pass.id, pass.tip.clone());
    save(host, &key, raw.as_deref(), &state)?;
    Ok(CommitBatch {
        commits: page.commits,
        unreadable: page.unreadable,
        pass: kind,
        head: Some(tip),
        complete: false,
        next_cursor: Some(encode_cursor(id, n)),
        requests: client.requests(),
    })
}

/// The step that lists the branch from its tip in full, after a rewrite.
fn rewritten() -> Step {
    Step {
        kind: Kind::Rewritten,
        since: None,
        start: Some(0),
        linked: false,
        listed: Tally::default(),
        done: false,
    }
}

/// The default branch's tip: the first commit the listing names (`None`: an empty repository).
fn branch_tip<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
) -> Result<Option<String>, ConnectorError> {
    let page = commit_page(client, repo, &[], 0, 1)?;
    Ok(page.commits.into_iter().next().map(|c| c.id))
}

/// One page of commits, normalised.
struct CommitPage {
    commits: Vec<Commit>,
    unreadable: Vec<UnreadableItem>,
    /// Parent hashes of every listed commit, for the rewrite check.
    parents: Vec<String>,
    next: Option<u64>,
    received: usize,
}

/// Fetches the page `at` points to and returns it with the step after it.
fn walk_step<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    tip: &str,
    at: &Step,
) -> Result<(CommitPage, Step), ConnectorError> {
    let start = at.start.unwrap_or(0);
    let mut query: Vec<(&str, &str)> = vec![("until", tip)];
    if let Some(since) = at.since.as_deref() {
        query.push(("since", since));
    }
    let limit = client.page_size();
    let page = commit_page(client, repo, &query, start, limit)?;
    let mut listed = at.listed;
    listed.count(
        page.received,
        page.next.is_some(),
        Bounds::WALKED,
        "GET .../commits",
    )?;
    let linked = at.linked
        || at
            .since
            .as_deref()
            .is_some_and(|since| page.parents.iter().any(|p| p == since));
    let step = Step {
        kind: at.kind,
        since: at.since.clone(),
        start: page.next,
        linked,
        listed,
        done: false,
    };
    Ok((page, step))
}

/// `GET .../commits?{query}&start={start}&limit={limit}`, each item decoded on its own.
fn commit_page<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    query: &[(&str, &str)],
    start: u64,
    limit: u32,
) -> Result<CommitPage, ConnectorError> {
    let page = history_page::fetch::<WireHistoryCommit, _>(
        client,
        repo,
        "commits",
        HistoryKind::Commit,
        query,
        start,
        limit,
    )?;
    let parents = page
        .items
        .iter()
        .flat_map(|c| c.parents.iter().filter_map(|p| p.id.clone()))
        .collect();
    Ok(CommitPage {
        commits: page.items.into_iter().map(|w| commit(repo, w)).collect(),
        unreadable: page.unreadable,
        parents,
        next: page.next,
        received: page.received,
    })
}

/// A listed commit as a contract record.
pub fn commit(repo: &RepoRef, w: WireHistoryCommit) -> Commit {
    Commit {
        repo: repo.clone(),
        id: w.id,
        author: person(w.author.unwrap_or_default()),
        author_timestamp: w.author_timestamp.map(i64::from),
        committer: w.committer.map(person),
        committer_timestamp: w.committer_timestamp.map(i64::from),
        parent_count: u32::try_from(w.parents.len()).unwrap_or(u32::MAX),
        summary: summary(w.message.as_deref().unwrap_or_default()),
    }
}

fn person(p: WirePerson) -> CommitPerson {
    let present = |s: Option<String>| s.filter(|s| !s.is_empty());
    CommitPerson {
        name: p.name.unwrap_or_default(),
        email: present(p.email_address),
        user_slug: present(p.slug),
    }
}

/// A message's first line, without its line break, at most [`MAX_SUMMARY_CHARS`] characters.
pub fn summary(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.chars().take(MAX_SUMMARY_CHARS).collect()
}

fn encode_cursor(pass: u64, batch: u32) -> String {
    format!("c{pass}.{batch}")
}

fn decode_cursor(c: &str) -> Result<(u64, u32), ConnectorError> {
    let bad = || ConnectorError::InvalidConfig(format!("not a commit pass cursor: {c:?}"));
    let (p, b) = c
        .strip_prefix('c')
        .and_then(|r| r.split_once('.'))
        .ok_or_else(bad)?;
    Ok((p.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn stale(c: &str) -> ConnectorError {
    ConnectorError::InvalidConfig(format!(
        "cursor {c:?} belongs to a commit pass that is no longer current; start again without a cursor"
    ))
}

fn save<H: Host + ?Sized>(
    host: &H,
    key: &str,
    old: Option<&[u8]>,
    state: &CommitState,
) -> Result<(), ConnectorError> {
    crate::state::save(host, key, old, state, "commit pass")
}

#[cfg(test)]
mod tests;
