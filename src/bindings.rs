//! The wit-bindgen glue: generated bindings, the [`Host`] implementation over the WIT imports,
//! and conversions between generated types and [`crate::model`]. No logic lives here.

use crate::error::ConnectorError;
use crate::host::{self, BodyStream, Host, HttpError, HttpRequest, LogLevel, ResponseHead};
use crate::model as m;

wit_bindgen::generate!({
    world: "connector-plugin",
    path: "wit",
});

use exports::ingest::bitbucket_dc::connector::Guest;
use ingest::bitbucket_dc::{http, log, storage, types as t};

/// The component's [`Host`]: the WIT imports.
struct WitHost;

fn http_error(e: http::HttpError) -> HttpError {
    match e {
        http::HttpError::Denied(s) => HttpError::Denied(s),
        http::HttpError::Timeout => HttpError::Timeout,
        http::HttpError::Connection(s) => HttpError::Connection(s),
        http::HttpError::TooLarge(n) => HttpError::TooLarge(n),
    }
}

fn wit_request(req: &HttpRequest) -> http::Request {
    http::Request {
        method: match req.method {
            host::Method::Get => http::Method::Get,
            host::Method::Head => http::Method::Head,
        },
        url: req.url.clone(),
        headers: req.headers.clone(),
    }
}

fn head(h: http::ResponseHead) -> ResponseHead {
    ResponseHead {
        status: h.status,
        headers: h.headers,
    }
}

struct WitBody(http::Body);

impl BodyStream for WitBody {
    fn read(&mut self, max_bytes: u32) -> Result<Option<Vec<u8>>, HttpError> {
        self.0.read(max_bytes).map_err(http_error)
    }
}

impl Host for WitHost {
    fn send(&self, req: &HttpRequest) -> Result<(ResponseHead, Vec<u8>), HttpError> {
        http::send(&wit_request(req))
            .map(|(h, b)| (head(h), b))
            .map_err(http_error)
    }

    fn send_streaming(
        &self,
        req: &HttpRequest,
    ) -> Result<(ResponseHead, Box<dyn BodyStream>), HttpError> {
        http::send_streaming(&wit_request(req))
            .map(|(h, b)| (head(h), Box::new(WitBody(b)) as Box<dyn BodyStream>))
            .map_err(http_error)
    }

    fn storage_get(&self, key: &str) -> Option<Vec<u8>> {
        storage::get(key)
    }

    fn storage_set(&self, key: &str, value: &[u8]) {
        storage::set(key, value)
    }

    fn storage_delete(&self, key: &str) {
        storage::delete(key)
    }

    fn storage_compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> bool {
        storage::compare_and_swap(key, expected, value)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        log::log(level, message)
    }
}

// ---- generated → model ----

fn connection(c: t::Connection) -> m::Connection {
    m::Connection {
        base_url: c.base_url,
        page_size: c.page_size,
    }
}

fn repo_ref_in(r: t::RepoRef) -> m::RepoRef {
    m::RepoRef {
        project_key: r.project_key,
        slug: r.slug,
    }
}

fn filter_in(f: t::RepoFilter) -> m::RepoFilter {
    m::RepoFilter {
        include_personal: f.include_personal,
        include_archived: f.include_archived,
    }
}

// ---- model → generated ----

fn error(e: ConnectorError) -> t::ConnectorError {
    match e {
        ConnectorError::InvalidCredentials(s) => t::ConnectorError::InvalidCredentials(s),
        ConnectorError::InvalidPermissions(s) => t::ConnectorError::InvalidPermissions(s),
        ConnectorError::NoResources(s) => t::ConnectorError::NoResources(s),
        ConnectorError::NotFound(s) => t::ConnectorError::NotFound(s),
        ConnectorError::RateLimited {
            retry_after_ms,
            message,
        } => t::ConnectorError::RateLimited(t::RateLimitedError {
            retry_after_ms,
            message,
        }),
        ConnectorError::Server { status, message } => {
            t::ConnectorError::Server(t::ServerError { status, message })
        }
        ConnectorError::Transport(s) => t::ConnectorError::Transport(s),
        ConnectorError::Timeout(s) => t::ConnectorError::Timeout(s),
        ConnectorError::Denied(s) => t::ConnectorError::Denied(s),
        ConnectorError::TooLarge(s) => t::ConnectorError::TooLarge(s),
        ConnectorError::MalformedResponse(s) => t::ConnectorError::MalformedResponse(s),
        ConnectorError::InvalidConfig(s) => t::ConnectorError::InvalidConfig(s),
        ConnectorError::Storage(s) => t::ConnectorError::Storage(s),
    }
}

fn repo_ref(r: m::RepoRef) -> t::RepoRef {
    t::RepoRef {
        project_key: r.project_key,
        slug: r.slug,
    }
}

fn project(p: m::Project) -> t::Project {
    t::Project {
        id: p.id,
        key: p.key,
        name: p.name,
        description: p.description,
        public: p.public,
        kind: match p.kind {
            m::ProjectKind::Normal => t::ProjectKind::Normal,
            m::ProjectKind::Personal => t::ProjectKind::Personal,
        },
        url: p.url,
    }
}

fn unreadable(list: Vec<m::UnreadableRecord>) -> Vec<t::UnreadableRecord> {
    list.into_iter()
        .map(|u| t::UnreadableRecord {
            kind: match u.kind {
                m::RecordKind::Project => t::RecordKind::Project,
                m::RecordKind::Repository => t::RecordKind::Repository,
                m::RecordKind::User => t::RecordKind::User,
                m::RecordKind::PullRequest => t::RecordKind::PullRequest,
                m::RecordKind::Activity => t::RecordKind::Activity,
            },
            location: u.location,
            reason: u.reason,
        })
        .collect()
}

fn repo_page(p: m::Page<m::Repo>) -> t::RepoPage {
    t::RepoPage {
        items: p.items.into_iter().map(repo).collect(),
        next: p.next,
        unreadable: unreadable(p.unreadable),
    }
}

fn repo(r: m::Repo) -> t::Repo {
    t::Repo {
        id: r.id,
        repo_ref: repo_ref(r.repo_ref),
        name: r.name,
        description: r.description,
        scm: r.scm,
        state: r.state,
        public: r.public,
        archived: r.archived,
        project: project(r.project),
        forkable: r.forkable,
        origin: r.origin.map(repo_ref),
        url: r.url,
        clone_http: r.clone_http,
        clone_ssh: r.clone_ssh,
    }
}

fn user(u: m::User) -> t::User {
    t::User {
        id: u.id,
        slug: u.slug,
        name: u.name,
        display_name: u.display_name,
        email: u.email,
        active: u.active,
        kind: match u.kind {
            m::UserKind::Normal => t::UserKind::Normal,
            m::UserKind::Service => t::UserKind::Service,
            m::UserKind::Other => t::UserKind::Other,
        },
    }
}

fn reviewer_status(s: m::ReviewerStatus) -> t::ReviewerStatus {
    match s {
        m::ReviewerStatus::Unapproved => t::ReviewerStatus::Unapproved,
        m::ReviewerStatus::NeedsWork => t::ReviewerStatus::NeedsWork,
        m::ReviewerStatus::Approved => t::ReviewerStatus::Approved,
    }
}

fn pr_ref(r: m::PrRef) -> t::PrRef {
    t::PrRef {
        id: r.id,
        display_id: r.display_id,
        kind: match r.kind {
            m::RefKind::Branch => t::RefKind::Branch,
            m::RefKind::Tag => t::RefKind::Tag,
            m::RefKind::Other => t::RefKind::Other,
        },
        latest_commit: r.latest_commit,
        repo: r.repo.map(repo_ref),
    }
}

fn reviewer(r: m::PrReviewer) -> t::PrReviewer {
    t::PrReviewer {
        user: user(r.user),
        status: reviewer_status(r.status),
        last_reviewed_commit: r.last_reviewed_commit,
    }
}

fn review_event(e: m::ReviewEvent) -> t::ReviewEvent {
    t::ReviewEvent {
        user: user(e.user),
        action: match e.action {
            m::ReviewAction::Approved => t::ReviewAction::Approved,
            m::ReviewAction::Unapproved => t::ReviewAction::Unapproved,
            m::ReviewAction::NeedsWork => t::ReviewAction::NeedsWork,
            m::ReviewAction::Commented => t::ReviewAction::Commented,
        },
        at: e.at,
        activity_id: e.activity_id,
    }
}

fn pr_event(e: m::PrEvent) -> t::PrEvent {
    t::PrEvent {
        kind: match e.kind {
            m::PrEventKind::Opened => t::PrEventKind::Opened,
            m::PrEventKind::Rescoped => t::PrEventKind::Rescoped,
            m::PrEventKind::ReviewersUpdated => t::PrEventKind::ReviewersUpdated,
            m::PrEventKind::Merged => t::PrEventKind::Merged,
            m::PrEventKind::Declined => t::PrEventKind::Declined,
            m::PrEventKind::Reopened => t::PrEventKind::Reopened,
            m::PrEventKind::Deleted => t::PrEventKind::Deleted,
            m::PrEventKind::Other => t::PrEventKind::Other,
        },
        raw_action: e.raw_action,
        user: e.user.map(user),
        at: e.at,
        activity_id: e.activity_id,
    }
}

fn pull_request(p: m::PullRequest) -> t::PullRequest {
    t::PullRequest {
        id: p.id,
        repo: repo_ref(p.repo),
        version: p.version,
        title: p.title,
        description: p.description,
        state: match p.state {
            m::PrState::Open => t::PrState::Open,
            m::PrState::Merged => t::PrState::Merged,
            m::PrState::Declined => t::PrState::Declined,
        },
        draft: p.draft,
        author: p.author.map(user),
        created_at: p.created_at,
        updated_at: p.updated_at,
        closed_at: p.closed_at,
        merged_at: p.merged_at,
        merged_by: p.merged_by.map(user),
        merge_commit: p.merge_commit,
        source: pr_ref(p.source),
        target: pr_ref(p.target),
        source_fork: p.source_fork.map(repo_ref),
        url: p.url,
        reviewers: p.reviewers.into_iter().map(reviewer).collect(),
        participants: p.participants.into_iter().map(reviewer).collect(),
        comment_count: p.comment_count,
        open_task_count: p.open_task_count,
        resolved_task_count: p.resolved_task_count,
        diff: p.diff.map(|d| t::DiffStats {
            additions: d.additions,
            deletions: d.deletions,
            files_changed: d.files_changed,
            truncated: d.truncated,
        }),
        reviews: p.reviews.into_iter().map(review_event).collect(),
        events: p.events.into_iter().map(pr_event).collect(),
        first_review_at: p.first_review_at,
        first_approval_at: p.first_approval_at,
        completeness: match p.completeness {
            m::PrCompleteness::Snapshot => t::PrCompleteness::Snapshot,
            m::PrCompleteness::Full => t::PrCompleteness::Full,
        },
    }
}

/// The exported component.
struct Component;

impl Guest for Component {
    fn describe() -> t::ConnectorInfo {
        t::ConnectorInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            rest_api: "1.0".into(),
        }
    }

    fn check_connection(
        conn: t::Connection,
        filter: t::RepoFilter,
    ) -> Result<t::ConnectionReport, t::ConnectorError> {
        crate::check::check_connection(&WitHost, &connection(conn), &filter_in(filter))
            .map(|r| t::ConnectionReport {
                server_version: r.server_version,
                build_number: r.build_number,
                server_name: r.server_name,
                user: r.user,
                projects: r.projects,
                repos: r.repos,
                personal_repos: r.personal_repos,
                archived_repos: r.archived_repos,
                excluded_repos: r.excluded_repos,
            })
            .map_err(error)
    }

    fn list_projects(
        conn: t::Connection,
        page: t::PageRequest,
    ) -> Result<t::ProjectPage, t::ConnectorError> {
        crate::listing::list_projects(&WitHost, &connection(conn), page.cursor.as_deref())
            .map(|p| t::ProjectPage {
                items: p.items.into_iter().map(project).collect(),
                next: p.next,
                unreadable: unreadable(p.unreadable),
            })
            .map_err(error)
    }

    fn list_repos(
        conn: t::Connection,
        project_key: String,
        filter: t::RepoFilter,
        page: t::PageRequest,
    ) -> Result<t::RepoPage, t::ConnectorError> {
        crate::listing::list_repos(
            &WitHost,
            &connection(conn),
            &project_key,
            &filter_in(filter),
            page.cursor.as_deref(),
        )
        .map(repo_page)
        .map_err(error)
    }

    fn list_all_repos(
        conn: t::Connection,
        filter: t::RepoFilter,
        page: t::PageRequest,
    ) -> Result<t::RepoPage, t::ConnectorError> {
        crate::listing::list_all_repos(
            &WitHost,
            &connection(conn),
            &filter_in(filter),
            page.cursor.as_deref(),
        )
        .map(repo_page)
        .map_err(error)
    }

    fn fetch_pull_requests(
        conn: t::Connection,
        repo: t::RepoRef,
        options: t::SyncOptions,
        cursor: Option<String>,
    ) -> Result<t::PullRequestBatch, t::ConnectorError> {
        let options = m::SyncOptions {
            since: options.since,
            full_listing: options.full_listing,
        };
        crate::pulls::fetch_pull_requests(
            &WitHost,
            &connection(conn),
            &repo_ref_in(repo),
            &options,
            cursor.as_deref(),
        )
        .map(|b| t::PullRequestBatch {
            pull_requests: b.pull_requests.into_iter().map(pull_request).collect(),
            skipped: b
                .skipped
                .into_iter()
                .map(|s| t::SkippedPullRequest {
                    id: s.id,
                    stage: s.stage,
                    error: error(s.error),
                })
                .collect(),
            unreadable: unreadable(b.unreadable),
            next_cursor: b.next_cursor,
            stats: t::BatchStats {
                requests: b.stats.requests,
                listed: b.stats.listed,
                unchanged: b.stats.unchanged,
            },
        })
        .map_err(error)
    }

    fn fetch_pull_request(
        conn: t::Connection,
        repo: t::RepoRef,
        id: u64,
    ) -> Result<t::PullRequest, t::ConnectorError> {
        crate::pulls::fetch_pull_request(&WitHost, &connection(conn), &repo_ref_in(repo), id)
            .map(pull_request)
            .map_err(error)
    }

    fn list_users(
        conn: t::Connection,
        page: t::PageRequest,
    ) -> Result<t::UserPage, t::ConnectorError> {
        crate::listing::list_users(&WitHost, &connection(conn), page.cursor.as_deref())
            .map(|p| t::UserPage {
                items: p.page.items.into_iter().map(user).collect(),
                next: p.page.next,
                fallback: p.fallback,
                unreadable: unreadable(p.page.unreadable),
            })
            .map_err(error)
    }

    fn handle_webhook(
        conn: t::Connection,
        secret: Option<String>,
        req: t::WebhookRequest,
    ) -> Result<t::WebhookOutcome, t::WebhookError> {
        let req = m::WebhookRequest {
            headers: req.headers,
            body: req.body,
        };
        crate::webhook::handle_webhook(&WitHost, &connection(conn), secret.as_deref(), &req)
            .map(|o| t::WebhookOutcome {
                result: match o.result {
                    m::WebhookResult::Accepted => t::WebhookResult::Accepted,
                    m::WebhookResult::Ignored => t::WebhookResult::Ignored,
                },
                event_key: o.event_key,
                request_id: o.request_id,
                verified: o.verified,
                occurred_at: o.occurred_at,
                actor: o.actor.map(user),
                pull_request: o.pull_request.map(pull_request),
                review: o.review.map(|r| t::ReviewChange {
                    user: user(r.user),
                    status: reviewer_status(r.status),
                    previous_status: r.previous_status.map(reviewer_status),
                }),
                deleted: o.deleted,
                refresh: o.refresh.map(|r| t::RefreshRequest {
                    repo: repo_ref(r.repo),
                    id: r.id,
                }),
                stale: o.stale,
            })
            .map_err(|e| match e {
                crate::webhook::WebhookError::MissingSignature => t::WebhookError::MissingSignature,
                crate::webhook::WebhookError::InvalidSignature(s) => {
                    t::WebhookError::InvalidSignature(s)
                }
                crate::webhook::WebhookError::MalformedPayload(s) => {
                    t::WebhookError::MalformedPayload(s)
                }
                crate::webhook::WebhookError::TooLarge(n) => t::WebhookError::TooLarge(n),
            })
    }
}

export!(Component);
