//! The connector's records: the types wit-bindgen generates from the WIT `types` interface.
//!
//! The bindings are generated here once, on every target, and their types are the model the core
//! works with: no hand-written mirror, nothing copied field by field at the boundary. Natively the
//! generated imports are never called (their stubs are unreachable): the core reaches its host
//! only through [`crate::host::Host`], which `bindings.rs` implements over the imports in the
//! component and [`crate::fake`] implements in memory for tests. Field docs live on the WIT, which
//! is the user's reference; rustdoc shows them on the re-exported types.
//!
//! Two types are not the contract's own: the core fails with the typed
//! [`crate::error::ConnectorError`] (its messages and codes are the connector's; the generated
//! `connector-error` would print its `Debug` form), converted into [`ContractError`] by `From`
//! where a record or an export carries it.

/// The generated bindings of the `connector-plugin-build` world (the `connector-plugin` contract
/// plus the `wizer-initialize` export). Only `bindings.rs` (wasm32) uses its
/// imports and exports; everything else sees the types re-exported below.
#[allow(missing_docs, clippy::all)]
pub(crate) mod wit {
    wit_bindgen::generate!({
        world: "connector-plugin-build",
        path: "wit/0.2.0",
        generate_all,
        additional_derives: [PartialEq, Eq],
        additional_type_attributes: {
            "ingest:bitbucket-dc/types@0.1.0/connection-report": [#[derive(Default)]],
            "ingest:bitbucket-dc/types@0.1.0/sync-options": [#[derive(Default)]],
            "ingest:bitbucket-dc/types@0.1.0/batch-stats": [#[derive(Default)]],
            // Stored in the sync state (`pr/...` memos): the field names are the storage format.
            "ingest:bitbucket-dc/types@0.1.0/diff-stats": [
                #[derive(Default, serde::Serialize, serde::Deserialize)]
            ],
            "ingest:bitbucket-dc/types@0.1.0/repo-ref": [#[derive(Hash, PartialOrd, Ord)]],
        },
    });
}

pub use wit::ingest::bitbucket_dc0_1_0::types::{
    BatchStats, Connection, ConnectionReport, ConnectorError as ContractError, ConnectorInfo,
    DiffStats, PageRequest, PrCompleteness, PrEvent, PrEventKind, PrRef, PrReviewer, PrState,
    Project, ProjectKind, ProjectPage, PullRequest, PullRequestBatch, RateLimitedError, RecordKind,
    RefKind, RefreshRequest, Repo, RepoFilter, RepoPage, RepoRef, ReviewAction, ReviewChange,
    ReviewEvent, ReviewerStatus, ServerError, SkipStage, SkippedPullRequest, SyncOptions,
    UnreadableRecord, User, UserKind, UserPage, WebhookError, WebhookOutcome, WebhookRequest,
    WebhookResult,
};

/// The history records of contract 0.2.0 (WIT `history`): commits and their passes.
pub use wit::ingest::bitbucket_dc0_2_0::history::{
    Branch, BranchPage, Build, BuildBatch, BuildFailure, BuildState, Commit, CommitBatch,
    CommitPassKind, CommitPerson, HistoryKind, PullRequestCommitPage, Tag, TagPage, TestResults,
    UnreadableItem,
};

/// The repository events of contract 0.2.0 (WIT `repository-events`).
pub use wit::ingest::bitbucket_dc0_2_0::repository_events::{
    RefChange, RefChangeKind, RepositoryEvent, RepositoryWebhookOutcome,
};

/// What the host found when it checked a webhook delivery's signature (WIT
/// `delivery.signature-check`); [`crate::host::Host::check_signature`] returns it.
pub use wit::ingest::bitbucket_dc0_1_0::delivery::SignatureCheck;

impl Default for RepoFilter {
    /// Everything: nothing is left out unless asked.
    fn default() -> Self {
        Self {
            include_personal: true,
            include_archived: true,
        }
    }
}

impl RepoFilter {
    /// Whether the filter admits `repo`. The one place that decides what a sync visits.
    pub fn admits(&self, repo: &Repo) -> bool {
        (self.include_personal || repo.project.kind != ProjectKind::Personal)
            && (self.include_archived || !repo.archived)
    }
}

impl RecordKind {
    /// The snake_case name `bbdc` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Project => "project",
            RecordKind::Repository => "repository",
            RecordKind::User => "user",
            RecordKind::PullRequest => "pull_request",
            RecordKind::Activity => "activity",
        }
    }
}

impl SkipStage {
    /// The stage's WIT name, as logs say it.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipStage::Details => "details",
            SkipStage::Activities => "activities",
            SkipStage::Diff => "diff",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_stats_keep_their_stored_form() {
        let stats = DiffStats {
            additions: 3,
            deletions: 1,
            files_changed: 2,
            truncated: false,
        };
        let json = serde_json::to_string(&stats).unwrap();
        assert_eq!(
            json,
            r#"{"additions":3,"deletions":1,"files_changed":2,"truncated":false}"#
        );
        assert_eq!(serde_json::from_str::<DiffStats>(&json).unwrap(), stats);
    }
}
