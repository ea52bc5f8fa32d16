//! The connector's records, mirroring the WIT `types` interface one to one.
//!
//! These are plain Rust types so the core never depends on generated bindings; `bindings.rs`
//! converts them at the boundary. Field docs live on the WIT, which is the user's reference.

use crate::error::ConnectorError;

/// How to reach the server (WIT `connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Base URL including any context path.
    pub base_url: String,
    /// Items per list request; `None` for the connector's default.
    pub page_size: Option<u32>,
}

/// WIT `connection-report`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionReport {
    /// Server version.
    pub server_version: Option<String>,
    /// Server build number.
    pub build_number: Option<String>,
    /// Server display name.
    pub server_name: Option<String>,
    /// The authenticated account, where the server says it.
    pub user: Option<String>,
    /// Visible projects.
    pub projects: u32,
    /// Repositories the filter admits.
    pub repos: u32,
    /// Of those, in personal projects.
    pub personal_repos: u32,
    /// Of those, archived.
    pub archived_repos: u32,
    /// Visible repositories the filter left out.
    pub excluded_repos: u32,
}

/// WIT `repo-filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoFilter {
    /// Include repositories of personal projects.
    pub include_personal: bool,
    /// Include archived repositories.
    pub include_archived: bool,
}

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

/// WIT `record-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A project.
    Project,
    /// A repository.
    Repository,
    /// A user.
    User,
    /// A pull request.
    PullRequest,
    /// A pull-request activity.
    Activity,
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

/// WIT `unreadable-record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    /// What it should have been.
    pub kind: RecordKind,
    /// Request and position.
    pub location: String,
    /// Why.
    pub reason: String,
}

/// WIT `project-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectKind {
    /// Ordinary project.
    Normal,
    /// Personal project.
    Personal,
}

/// WIT `project`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Numeric id.
    pub id: u64,
    /// Key.
    pub key: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Public.
    pub public: bool,
    /// Kind.
    pub kind: ProjectKind,
    /// Web URL.
    pub url: Option<String>,
}

/// WIT `repo-ref`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoRef {
    /// Project key.
    pub project_key: String,
    /// Repository slug.
    pub slug: String,
}

/// WIT `repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// Numeric id.
    pub id: u64,
    /// Project key and slug.
    pub repo_ref: RepoRef,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// SCM id.
    pub scm: String,
    /// Server state.
    pub state: Option<String>,
    /// Public.
    pub public: bool,
    /// Archived.
    pub archived: bool,
    /// The owning project.
    pub project: Project,
    /// Forkable.
    pub forkable: bool,
    /// Fork origin.
    pub origin: Option<RepoRef>,
    /// Web URL.
    pub url: Option<String>,
    /// HTTP clone URL.
    pub clone_http: Option<String>,
    /// SSH clone URL.
    pub clone_ssh: Option<String>,
}

/// WIT `user-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    /// A person.
    Normal,
    /// A service account.
    Service,
    /// Unknown kind.
    Other,
}

/// WIT `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Numeric id.
    pub id: Option<u64>,
    /// Slug.
    pub slug: String,
    /// Login name.
    pub name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Active.
    pub active: Option<bool>,
    /// Kind.
    pub kind: UserKind,
}

/// A page of items with the cursor of the next page (WIT `project-page`, `repo-page`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// Items.
    pub items: Vec<T>,
    /// Next cursor, `None` on the last page.
    pub next: Option<String>,
    /// Items that could not be identified.
    pub unreadable: Vec<UnreadableRecord>,
}

/// WIT `user-page`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// Users and the next cursor.
    pub page: Page<User>,
    /// Whether the page came from `/users` because `/admin/users` was refused.
    pub fallback: bool,
}

/// WIT `pr-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    /// Open.
    Open,
    /// Merged.
    Merged,
    /// Declined.
    Declined,
}

/// WIT `reviewer-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewerStatus {
    /// Unapproved.
    Unapproved,
    /// Needs work.
    NeedsWork,
    /// Approved.
    Approved,
}

/// WIT `ref-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// Branch.
    Branch,
    /// Tag.
    Tag,
    /// Other.
    Other,
}

/// WIT `pr-ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRef {
    /// Full ref name.
    pub id: String,
    /// Short name.
    pub display_id: String,
    /// Branch, tag or other.
    pub kind: RefKind,
    /// Latest commit.
    pub latest_commit: Option<String>,
    /// Repository of the ref.
    pub repo: Option<RepoRef>,
}

/// WIT `pr-reviewer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrReviewer {
    /// Who.
    pub user: User,
    /// Current status.
    pub status: ReviewerStatus,
    /// Last reviewed commit.
    pub last_reviewed_commit: Option<String>,
}

/// WIT `review-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAction {
    /// Approved.
    Approved,
    /// Unapproved.
    Unapproved,
    /// Needs work.
    NeedsWork,
    /// Commented.
    Commented,
}

/// WIT `review-event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewEvent {
    /// Who.
    pub user: User,
    /// What.
    pub action: ReviewAction,
    /// When.
    pub at: i64,
    /// Activity id.
    pub activity_id: Option<u64>,
}

/// WIT `pr-event-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrEventKind {
    /// Opened.
    Opened,
    /// New commits.
    Rescoped,
    /// Reviewers changed.
    ReviewersUpdated,
    /// Merged.
    Merged,
    /// Declined.
    Declined,
    /// Reopened.
    Reopened,
    /// Deleted.
    Deleted,
    /// Anything else.
    Other,
}

/// WIT `pr-event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrEvent {
    /// What happened.
    pub kind: PrEventKind,
    /// Server action name.
    pub raw_action: String,
    /// Who.
    pub user: Option<User>,
    /// When.
    pub at: i64,
    /// Activity id.
    pub activity_id: Option<u64>,
}

/// WIT `diff-stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiffStats {
    /// Lines added.
    pub additions: u64,
    /// Lines removed.
    pub deletions: u64,
    /// Files changed.
    pub files_changed: u32,
    /// Truncated by the server.
    pub truncated: bool,
}

/// WIT `pr-completeness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrCompleteness {
    /// From a list page or webhook only.
    Snapshot,
    /// With activities and diff.
    Full,
}

/// WIT `pull-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Id within the repository.
    pub id: u64,
    /// Target repository.
    pub repo: RepoRef,
    /// Version.
    pub version: u32,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// State.
    pub state: PrState,
    /// Draft.
    pub draft: bool,
    /// Author.
    pub author: Option<User>,
    /// Created.
    pub created_at: i64,
    /// Updated.
    pub updated_at: i64,
    /// Closed.
    pub closed_at: Option<i64>,
    /// Merged.
    pub merged_at: Option<i64>,
    /// Merged by.
    pub merged_by: Option<User>,
    /// Merge commit.
    pub merge_commit: Option<String>,
    /// Source ref.
    pub source: PrRef,
    /// Target ref.
    pub target: PrRef,
    /// Source repository when a fork.
    pub source_fork: Option<RepoRef>,
    /// Web URL.
    pub url: Option<String>,
    /// Reviewers.
    pub reviewers: Vec<PrReviewer>,
    /// Participants.
    pub participants: Vec<PrReviewer>,
    /// Comment count.
    pub comment_count: Option<u32>,
    /// Open tasks.
    pub open_task_count: Option<u32>,
    /// Resolved tasks.
    pub resolved_task_count: Option<u32>,
    /// Diff statistics.
    pub diff: Option<DiffStats>,
    /// Review events, oldest first.
    pub reviews: Vec<ReviewEvent>,
    /// Lifecycle events, oldest first.
    pub events: Vec<PrEvent>,
    /// First review.
    pub first_review_at: Option<i64>,
    /// First approval.
    pub first_approval_at: Option<i64>,
    /// Snapshot or full.
    pub completeness: PrCompleteness,
}

/// WIT `skipped-pull-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPullRequest {
    /// Id.
    pub id: u64,
    /// Stage that failed.
    pub stage: String,
    /// Why.
    pub error: ConnectorError,
}

/// WIT `sync-options`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Ignore PRs updated before this instant.
    pub since: Option<i64>,
    /// List everything this pass.
    pub full_listing: bool,
}

/// WIT `batch-stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Requests made.
    pub requests: u32,
    /// PRs listed.
    pub listed: u32,
    /// PRs unchanged.
    pub unchanged: u32,
}

/// WIT `pull-request-batch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestBatch {
    /// New or changed PRs.
    pub pull_requests: Vec<PullRequest>,
    /// PRs that failed.
    pub skipped: Vec<SkippedPullRequest>,
    /// Items that could not be identified.
    pub unreadable: Vec<UnreadableRecord>,
    /// Cursor to continue; `None` when the pass is complete.
    pub next_cursor: Option<String>,
    /// Counters.
    pub stats: BatchStats,
}

/// WIT `webhook-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Vec<u8>,
}

/// WIT `webhook-result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// Accepted.
    Accepted,
    /// Ignored.
    Ignored,
}

/// WIT `review-change`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewChange {
    /// Who.
    pub user: User,
    /// Status now.
    pub status: ReviewerStatus,
    /// Status before.
    pub previous_status: Option<ReviewerStatus>,
}

/// WIT `refresh-request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRequest {
    /// Repository.
    pub repo: RepoRef,
    /// PR id.
    pub id: u64,
}

/// WIT `webhook-outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutcome {
    /// Accepted, ignored or duplicate.
    pub result: WebhookResult,
    /// Event key.
    pub event_key: String,
    /// Request id.
    pub request_id: Option<String>,
    /// Signature checked.
    pub verified: bool,
    /// Envelope date.
    pub occurred_at: Option<i64>,
    /// Actor.
    pub actor: Option<User>,
    /// PR snapshot.
    pub pull_request: Option<PullRequest>,
    /// Reviewer change.
    pub review: Option<ReviewChange>,
    /// PR deleted.
    pub deleted: bool,
    /// What to refresh.
    pub refresh: Option<RefreshRequest>,
    /// Older than data already handled.
    pub stale: bool,
}
