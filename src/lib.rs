//! The Bitbucket Data Center ingestion connector.
//!
//! Compiled to `wasm32-wasip2`, this crate is a WebAssembly component implementing the
//! `connector-plugin` world of contract 0.2.0 in `wit/0.2.0/`. Everything but `bindings.rs` is plain Rust over the small
//! [`host::Host`] trait, so it is unit-tested natively with `fake::FakeHost` (the `fake` feature,
//! off in the shipped component).
//!
//! Where each concern lives:
//! - [`host`]: the trait the connector sees its host through (HTTP, storage, log);
//! - [`model`]: the contract records, the types wit-bindgen generates from the WIT;
//! - [`error`]: typed errors and the HTTP status / `exceptionName` table;
//! - [`urls`]: base URL validation and REST URL joining (context paths);
//! - [`paging`]: Bitbucket's paging rules and page cursors;
//! - [`wire`]: serde mirrors of the REST and webhook JSON;
//! - [`wire_history`]: the same for commits, build statuses, branches and tags;
//! - [`normalize`]: wire JSON → contract records;
//! - [`timestamps`]: epoch-ms and ISO 8601 timestamps;
//! - [`client`]: GET + classify + decode + page walking over the host;
//! - [`check`]: the connection check;
//! - [`activities`]: activities → review events, lifecycle events, merge facts;
//! - [`diffstat`]: diff statistics counted while streaming, no source kept;
//! - [`pulls`]: a pull request made whole (snapshot + activities + diff), for the sync pass and
//!   for [`pull_request`], the `fetch-pull-request` export;
//! - [`sync`]: the incremental, resumable pull-request sync pass;
//! - [`commits`]: the incremental, resumable pass over the default branch's commits;
//! - [`refs`]: a repository's branches and tags, a page per call;
//! - [`pull_request_commits`]: a pull request's commits, a page per call;
//! - [`builds`]: the build statuses of the commits a host names;
//! - [`history_page`]: one page of a history listing (commits, branches, tags, build statuses,
//!   a pull request's commits);
//! - [`state`]: a pass's state in host storage (JSON, compare-and-swap);
//! - [`listing`]: projects, repositories and users, a page per call;
//! - [`webhook`]: one path for every webhook delivery (size, signature, envelope, event key);
//! - [`pull_request_webhook`]: pull-request events from webhooks;
//! - [`repository_webhook`]: repository events (pushes, renames) from webhooks.

pub mod activities;
pub mod builds;
pub mod check;
pub mod client;
pub mod commits;
pub mod diffstat;
pub mod error;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod history_page;
pub mod host;
pub mod lenient;
pub mod listing;
pub mod model;
pub mod normalize;
pub mod paging;
pub mod pull_request;
pub mod pull_request_commits;
pub mod pull_request_webhook;
pub mod pulls;
/// The reference check of `tests/support`, for the unit tests' fixtures: every well-formed
/// body a unit test serves is held against Atlassian's OpenAPI description.
#[cfg(test)]
#[path = "../tests/support/reference.rs"]
pub(crate) mod reference;
pub mod refs;
pub mod repository_webhook;
pub mod state;
pub mod sync;
pub mod timestamps;
pub mod urls;
pub mod webhook;
pub mod wire;
pub mod wire_history;

#[cfg(target_arch = "wasm32")]
mod bindings;
