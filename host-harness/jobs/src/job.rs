//! What a sync job is asked to do: which repositories ([`SyncJob`]), what to import from each
//! ([`Entities`]), how far each listing may run, and the connector's options for the passes.

use crate::guard::{ListingBounds, MAX_LISTING_ITEMS, MAX_LISTING_PAGES};
use bbdc_host::bindings::api::{RepoRef, SyncOptions as WitSyncOptions};
use bbdc_host::bindings::types::RepoFilter;

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// Only these project keys (empty: every visible project).
    pub projects: Vec<String>,
    /// Only these repositories (empty: every repository of the projects).
    pub repos: Vec<RepoRef>,
    /// Which visible repositories to visit (personal, archived).
    pub filter: RepoFilter,
    /// Ignore pull requests last updated before this instant (epoch ms).
    pub since: Option<i64>,
    /// List every pull request this run (reconciliation), not just what changed.
    pub full: bool,
    /// Repositories synced at once.
    pub concurrency: usize,
    /// Draw progress bars (on stderr, when it is a terminal).
    pub progress: bool,
    /// Most pages (calls) one listing may take before it is stopped with an error: the
    /// projects, repositories and users, and each repository's pull requests, commits,
    /// branches, tags and pull requests' commits.
    pub max_listing_pages: u64,
    /// Most items one listing may bring before it is stopped with an error.
    pub max_listing_items: u64,
    /// What each repository's pass imports.
    pub entities: Entities,
}

impl SyncJob {
    /// How far each listing of the job may run.
    pub fn bounds(&self) -> ListingBounds {
        ListingBounds {
            pages: self.max_listing_pages,
            items: self.max_listing_items,
        }
    }
}

impl Default for SyncJob {
    /// Every visible repository, personal and archived ones included, four at a time.
    fn default() -> Self {
        Self {
            projects: Vec::new(),
            repos: Vec::new(),
            filter: RepoFilter {
                include_personal: true,
                include_archived: true,
            },
            since: None,
            full: false,
            concurrency: 4,
            progress: false,
            max_listing_pages: MAX_LISTING_PAGES,
            max_listing_items: MAX_LISTING_ITEMS,
            entities: Entities::default(),
        }
    }
}

/// What a sync imports from each repository (projects, repositories and users always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entities {
    /// Pull requests with their reviews and diff statistics.
    pub pull_requests: bool,
    /// The default branch's commits, with the repository's branches and tags (contract 0.2.0):
    /// an unchanged repository costs its branch and tag listings, and a commit pass runs only
    /// when the default branch moved. With `pull_requests`, also each pull request's commits
    /// (read when its pair of head commits changed) and its `first_commit_at`.
    pub commits: bool,
    /// The build statuses of the commits the other passes bring: the default branch's new
    /// commits and the head commits of changed pull requests (contract 0.2.0). Needs
    /// `pull_requests` or `commits`.
    pub builds: bool,
}

impl Default for Entities {
    /// Everything: [`Entities::ALL`].
    fn default() -> Self {
        Self::ALL
    }
}

impl Entities {
    /// Pull requests, commits (with branches, tags and pull requests' commits) and builds.
    pub const ALL: Entities = Entities {
        pull_requests: true,
        commits: true,
        builds: true,
    };

    /// Pull requests alone: the scope before commits and builds existed, at its cost.
    pub const PULL_REQUESTS: Entities = Entities {
        pull_requests: true,
        commits: false,
        builds: false,
    };

    /// Whether pull requests' commits are read: when both pull requests and commits are.
    pub fn pr_commits(self) -> bool {
        self.pull_requests && self.commits
    }

    /// Parses a comma-separated list of `pull-requests`, `commits`, `builds` and `all`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut e = Entities {
            pull_requests: false,
            commits: false,
            builds: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "pull-requests" => e.pull_requests = true,
                "commits" => e.commits = true,
                "builds" => e.builds = true,
                "all" => {
                    e.pull_requests = true;
                    e.commits = true;
                    e.builds = true;
                }
                other => {
                    return Err(format!(
                        "{other:?} is not an entity: give pull-requests, commits, builds or all"
                    ));
                }
            }
        }
        if !e.pull_requests && !e.commits {
            return Err(if e.builds {
                "builds are read for the commits of pull requests or of the default branch: \
                 give builds with pull-requests or commits"
                    .into()
            } else {
                "no entity given: give pull-requests, commits, builds or all".into()
            });
        }
        Ok(e)
    }
}

/// The connector's options for a job's repository passes (`--since`, `--full`).
pub(crate) fn wit_options(job: &SyncJob) -> WitSyncOptions {
    WitSyncOptions {
        since: job.since,
        full_listing: job.full,
    }
}
