//! One pull request in full: its snapshot plus activities (reviews, events, merge facts) and diff
//! statistics. Shared by the sync pass and by `fetch-pull-request` (webhook refresh).
//!
//! A diff larger than the host lets through (`too-large` from the body stream) is final for its
//! commit pair: the pull request is delivered without diff statistics, the outcome
//! ([`DiffOutcome::TooLarge`]) is remembered by the sync pass, and the diff is not asked for
//! again until the pull request's commits change.
//!
//! Every request here is sent once: the host's HTTP policy is the only thing that retries a
//! request. A detail that still fails (a cut or garbled body, a 5xx the policy gave up on) fails
//! the pull request, which the sync pass records as skipped and takes up again on its next pass.

use crate::activities;
use crate::client::Client;
use crate::diffstat::{self, DiffError};
use crate::error::{ConnectorError, http_error};
use crate::host::{Host, HttpError, LogLevel};
use crate::model::{
    DiffStats, PrCompleteness, PullRequest, RecordKind, RepoRef, SkipStage, UnreadableRecord,
};
use crate::normalize;
use crate::wire::{WireActivity, WirePullRequest};

/// What a pull request's diff came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Counted.
    Counted(DiffStats),
    /// Larger than the host lets through (its cap, in bytes): not counted, and not worth asking
    /// for again while the commit pair stays the same.
    TooLarge(u64),
}

impl DiffOutcome {
    /// The statistics to report: none for a diff too large to count.
    pub fn stats(self) -> Option<DiffStats> {
        match self {
            DiffOutcome::Counted(d) => Some(d),
            DiffOutcome::TooLarge(_) => None,
        }
    }
}

fn pr_path<'a>(repo: &'a RepoRef, id: &'a str) -> [&'a str; 6] {
    [
        "projects",
        &repo.project_key,
        "repos",
        &repo.slug,
        "pull-requests",
        id,
    ]
}

/// Every activity of a pull request (all pages), and those that could not be identified.
pub fn fetch_activities<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    id: u64,
) -> Result<(Vec<WireActivity>, Vec<UnreadableRecord>), ConnectorError> {
    let id = id.to_string();
    let base = pr_path(repo, &id);
    let segments = [&base[..], &["activities"]].concat();
    client.get_all(RecordKind::Activity, &segments, &[])
}

/// Diff statistics of a pull request, counted while streaming; a diff over the host's cap is
/// [`DiffOutcome::TooLarge`], not an error.
pub fn fetch_diff_stats<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    id: u64,
) -> Result<DiffOutcome, ConnectorError> {
    let id = id.to_string();
    let base = pr_path(repo, &id);
    let segments = [&base[..], &["diff"]].concat();
    let what = format!("GET /{}", segments.join("/"));
    client.get_streamed(
        &segments,
        &[("contextLines", "0"), ("withComments", "false")],
        |body| match diffstat::count_stream(body) {
            Ok(stats) => Ok(DiffOutcome::Counted(stats)),
            Err(DiffError::Transport(HttpError::TooLarge(cap))) => Ok(DiffOutcome::TooLarge(cap)),
            Err(DiffError::Transport(t)) => Err(http_error(&what, t)),
            Err(DiffError::Malformed(m)) => {
                Err(ConnectorError::MalformedResponse(format!("{what}: {m}")))
            }
        },
    )
}

/// Completes a snapshot with activities and (unless `known_diff` is given, because the commit
/// pair has not changed) diff statistics, and says what the diff came to. Activities that cannot
/// be identified are left out and added to `unreadable`. A diff too large to count leaves
/// `diff` empty; the pull request is still complete. Each request is sent once (the host's
/// policy owns retries); the first failure is the pull request's, with the stage it failed in.
pub fn complete<H: Host + ?Sized>(
    client: &Client<'_, H>,
    mut pr: PullRequest,
    known_diff: Option<DiffOutcome>,
    unreadable: &mut Vec<UnreadableRecord>,
) -> Result<(PullRequest, DiffOutcome), (SkipStage, ConnectorError)> {
    let repo = pr.repo.clone();
    let (acts, bad) =
        fetch_activities(client, &repo, pr.id).map_err(|e| (SkipStage::Activities, e))?;
    unreadable.extend(bad);
    activities::apply(&mut pr, acts);
    let diff = match known_diff {
        Some(d) => d,
        None => {
            let d = fetch_diff_stats(client, &repo, pr.id).map_err(|e| (SkipStage::Diff, e))?;
            if let DiffOutcome::TooLarge(cap) = d {
                client.log(
                    LogLevel::Warn,
                    &format!(
                        "{}/{} #{}: the diff is larger than the host lets through ({cap} bytes); \
                         delivered without diff statistics, not asked for again until its commits change",
                        repo.project_key, repo.slug, pr.id
                    ),
                );
            }
            d
        }
    };
    pr.diff = diff.stats();
    pr.completeness = PrCompleteness::Full;
    Ok((pr, diff))
}

/// `GET .../pull-requests/{id}` as a snapshot, with its wire form.
pub fn fetch_snapshot<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    id: u64,
) -> Result<(WirePullRequest, PullRequest), ConnectorError> {
    let id_s = id.to_string();
    let (wire, _) = client.get_json::<WirePullRequest>(&pr_path(repo, &id_s), &[])?;
    let snapshot = normalize::pull_request(&wire, repo);
    Ok((wire, snapshot))
}
