//! The wasm32 glue: the [`Host`] implementation over the WIT imports, and the export that
//! forwards each call to the core. The records are the generated ones already (see
//! [`crate::model`]), so only the typed errors are converted here. No logic lives here.

use crate::host::{self, BodyStream, Host, HttpError, HttpRequest, LogLevel, ResponseHead};
use crate::model::wit::exports::ingest::bitbucket_dc0_2_0::connector::Guest;
use crate::model::wit::ingest::bitbucket_dc0_1_0::{delivery, http, log, storage};
use crate::model::{
    BranchPage, BuildBatch, CommitBatch, Connection, ConnectionReport, ConnectorInfo,
    ContractError, PageRequest, ProjectPage, PullRequest, PullRequestBatch, PullRequestCommitPage,
    RepoFilter, RepoPage, RepoRef, RepositoryWebhookOutcome, SignatureCheck, SyncOptions, TagPage,
    UserPage, WebhookError, WebhookOutcome, WebhookRequest,
};
use crate::pull_request_webhook::PullRequestEvents;
use crate::repository_webhook::RepositoryEvents;

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

    fn storage_get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        storage::get_many(keys)
    }

    fn storage_set_many(&self, entries: &[(String, Vec<u8>)]) {
        storage::set_many(entries)
    }

    /// The host checks the delivery as it received it; `_req` is the connector's copy.
    fn check_signature(&self, _req: &WebhookRequest) -> SignatureCheck {
        delivery::check_signature()
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

/// The exported component.
struct Component;

impl Guest for Component {
    fn describe() -> ConnectorInfo {
        ConnectorInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            rest_api: "1.0".into(),
        }
    }

    fn check_connection(
        conn: Connection,
        filter: RepoFilter,
    ) -> Result<ConnectionReport, ContractError> {
        Ok(crate::check::check_connection(&WitHost, &conn, &filter)?)
    }

    fn list_projects(conn: Connection, page: PageRequest) -> Result<ProjectPage, ContractError> {
        Ok(crate::listing::list_projects(
            &WitHost,
            &conn,
            page.cursor.as_deref(),
        )?)
    }

    fn list_repos(
        conn: Connection,
        project_key: String,
        filter: RepoFilter,
        page: PageRequest,
    ) -> Result<RepoPage, ContractError> {
        Ok(crate::listing::list_repos(
            &WitHost,
            &conn,
            &project_key,
            &filter,
            page.cursor.as_deref(),
        )?)
    }

    fn list_all_repos(
        conn: Connection,
        filter: RepoFilter,
        page: PageRequest,
    ) -> Result<RepoPage, ContractError> {
        Ok(crate::listing::list_all_repos(
            &WitHost,
            &conn,
            &filter,
            page.cursor.as_deref(),
        )?)
    }

    fn fetch_commits(
        conn: Connection,
        repo: RepoRef,
        cursor: Option<String>,
        tip: Option<String>,
    ) -> Result<CommitBatch, ContractError> {
        Ok(crate::commits::fetch_commits_from(
            &WitHost,
            &conn,
            &repo,
            cursor.as_deref(),
            tip.as_deref(),
        )?)
    }

    fn list_branches(
        conn: Connection,
        repo: RepoRef,
        page: PageRequest,
    ) -> Result<BranchPage, ContractError> {
        Ok(crate::refs::list_branches(
            &WitHost,
            &conn,
            &repo,
            page.cursor.as_deref(),
        )?)
    }

    fn list_tags(
        conn: Connection,
        repo: RepoRef,
        page: PageRequest,
    ) -> Result<TagPage, ContractError> {
        Ok(crate::refs::list_tags(
            &WitHost,
            &conn,
            &repo,
            page.cursor.as_deref(),
        )?)
    }

    fn list_pull_request_commits(
        conn: Connection,
        repo: RepoRef,
        id: u64,
        page: PageRequest,
    ) -> Result<PullRequestCommitPage, ContractError> {
        Ok(crate::pull_request_commits::list_pull_request_commits(
            &WitHost,
            &conn,
            &repo,
            id,
            page.cursor.as_deref(),
        )?)
    }

    fn fetch_builds(
        conn: Connection,
        repo: RepoRef,
        commits: Vec<String>,
    ) -> Result<BuildBatch, ContractError> {
        Ok(crate::builds::fetch_builds(
            &WitHost, &conn, &repo, &commits,
        )?)
    }

    fn fetch_pull_requests(
        conn: Connection,
        repo: RepoRef,
        options: SyncOptions,
        cursor: Option<String>,
    ) -> Result<PullRequestBatch, ContractError> {
        Ok(crate::sync::fetch_pull_requests(
            &WitHost,
            &conn,
            &repo,
            &options,
            cursor.as_deref(),
        )?)
    }

    fn fetch_pull_request(
        conn: Connection,
        repo: RepoRef,
        id: u64,
    ) -> Result<PullRequest, ContractError> {
        Ok(crate::pull_request::fetch_pull_request(
            &WitHost, &conn, &repo, id,
        )?)
    }

    fn list_users(conn: Connection, page: PageRequest) -> Result<UserPage, ContractError> {
        Ok(crate::listing::list_users(
            &WitHost,
            &conn,
            page.cursor.as_deref(),
        )?)
    }

    fn handle_webhook(
        conn: Connection,
        req: WebhookRequest,
    ) -> Result<WebhookOutcome, WebhookError> {
        crate::webhook::handle::<PullRequestEvents, _>(&WitHost, &conn, &req)
    }

    fn handle_repository_webhook(
        conn: Connection,
        req: WebhookRequest,
    ) -> Result<RepositoryWebhookOutcome, WebhookError> {
        crate::webhook::handle::<RepositoryEvents, _>(&WitHost, &conn, &req)
    }
}

/// How much heap `wizer-initialize` grows before the snapshot, so that calls larger than
/// `describe` (which fits in the initial 1.2 MiB of linear memory) find heap already in place.
/// Pages of untouched heap cost a snapshot nothing (they are zero, so no data is written).
const PRE_INITIALISED_HEAP: usize = 2 << 20;

impl crate::model::wit::Guest for Component {
    /// The glue has run the constructors before this body runs; growing the heap once here puts
    /// that growth in the snapshot too. Nothing here reads input or calls an import.
    fn wizer_initialize() {
        drop(std::hint::black_box(Vec::<u8>::with_capacity(
            PRE_INITIALISED_HEAP,
        )));
    }
}

crate::model::wit::export!(Component with_types_in crate::model::wit);
