//! What a sync, or one repository's pass, comes to: the report ([`SyncReport`], its
//! [`SyncStatus`] and exit status), what it could not do ([`Failure`], [`SkippedPr`],
//! [`Unreadable`]) and why a job could not run at all ([`SyncError`]). Shared by the listing,
//! the repository pass and the job, below all three, so that none of them imports another back.

use bbdc_host::bindings::types::{RecordKind, UnreadableRecord};
use std::collections::BTreeMap;
use std::time::Duration;

/// A record kind as the report and the JSON lines name it.
pub fn record_kind(k: RecordKind) -> &'static str {
    match k {
        RecordKind::Project => "project",
        RecordKind::Repository => "repository",
        RecordKind::User => "user",
        RecordKind::PullRequest => "pull_request",
        RecordKind::Activity => "activity",
    }
}

/// A pull request the connector could not fetch in full, or could not even identify.
#[derive(Debug, Clone)]
pub struct SkippedPr {
    /// `KEY/slug`.
    pub repo: String,
    /// PR id; `None` for a listed pull request whose id could not be read (stage `identity`).
    pub id: Option<u64>,
    /// What failed.
    pub stage: String,
    /// Error code.
    pub code: String,
    /// Error message.
    pub message: String,
}

/// The outcome of a sync.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// Records written, by type.
    pub records: BTreeMap<&'static str, u64>,
    /// Pull requests listed but unchanged.
    pub unchanged: u64,
    /// HTTP requests sent to the server (retries included).
    pub requests: u64,
    /// Requests retried (429, 502, 503, 504, connection failures).
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Time spent waiting for the rate limit and Retry-After.
    pub rate_limit_wait: Duration,
    /// The rate budget requests were paced to, and where it came from.
    pub budget: Option<bbdc_host::budget::RateBudget>,
    /// The budget the server refused, when a run of 429s showed that it accepts less.
    pub refused_budget: Option<bbdc_host::policy::RefusedBudget>,
    /// Pull requests skipped, with reasons.
    pub skipped: Vec<SkippedPr>,
    /// Other listed records that could not be identified (projects, repositories, users,
    /// activities). Unreadable pull requests are in `skipped`.
    pub unreadable: Vec<Unreadable>,
    /// Repositories that failed (`name` is `KEY/slug`).
    pub failed_repos: Vec<Failure>,
    /// Projects named with `--project` (or by a `--repo`) whose repositories could not be
    /// listed (`name` is the key); the other projects were synced.
    pub failed_projects: Vec<Failure>,
    /// Whether users came from `/users` because `/admin/users` was refused.
    pub users_fallback: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// A listed record other than a pull request (project, repository, user, activity) that could
/// not be identified, so it was left out; the rest of its page was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What it should have been: `project`, `repository`, `user`, `activity`, `commit`,
    /// `branch`, `tag`, `build` or `pr_commit`.
    pub kind: String,
    /// Where it was listed, as the connector names it.
    pub location: String,
    /// Why it could not be read.
    pub reason: String,
}

impl From<UnreadableRecord> for Unreadable {
    fn from(u: UnreadableRecord) -> Self {
        Self {
            kind: record_kind(u.kind).to_owned(),
            location: u.location,
            reason: u.reason,
        }
    }
}

/// A project or repository the job could not sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// The project key, or `KEY/slug` for a repository.
    pub name: String,
    /// The error code (`not_found`, `deadline_exceeded`, …).
    pub code: String,
    /// What went wrong, as the server or host said it.
    pub message: String,
}

impl Failure {
    pub(crate) fn new(
        name: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Failure> for SyncError {
    /// A failure that leaves nothing to do: the job's error.
    fn from(f: Failure) -> Self {
        SyncError::Listing {
            what: f.name,
            code: f.code,
            message: f.message,
        }
    }
}

/// How a sync ended, as `bbdc sync`'s exit status tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Everything asked for was synced (skipped pull requests are listed and retried by the next
    /// sync). Exit status 0.
    Complete,
    /// Some projects or repositories failed and are listed; the rest was synced. Exit status 3.
    Partial,
}

impl SyncStatus {
    /// `complete` or `partial`, as the JSON summary's `status`.
    pub fn name(self) -> &'static str {
        match self {
            SyncStatus::Complete => "complete",
            SyncStatus::Partial => "partial",
        }
    }

    /// The process exit status: 0 complete, 3 partial. (1 is "nothing done": the job could not
    /// run at all; 2 is a command-line usage error.)
    pub fn exit_code(self) -> u8 {
        match self {
            SyncStatus::Complete => 0,
            SyncStatus::Partial => PARTIAL_EXIT,
        }
    }
}

/// Exit status of a sync that synced part of what was asked for.
pub const PARTIAL_EXIT: u8 = 3;

impl SyncReport {
    /// Whether everything asked for was synced.
    pub fn status(&self) -> SyncStatus {
        if self.failed_repos.is_empty() && self.failed_projects.is_empty() {
            SyncStatus::Complete
        } else {
            SyncStatus::Partial
        }
    }
}

/// Why the job could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A listing (projects, repositories, users) failed.
    #[error("{what} failed: {code}: {message}")]
    Listing {
        /// What was being listed.
        what: String,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Writing records failed.
    #[error(transparent)]
    Records(#[from] bbdc_host::storage::StoreError),
    /// Writing JSON lines failed.
    #[error("writing JSON lines: {0}")]
    Output(#[from] std::io::Error),
    /// The work was asked to stop and stopped between two calls; what it acknowledged is kept,
    /// and the next run goes on from there.
    #[error("stopped before it was done; the next run goes on from where it stopped")]
    Cancelled,
}
