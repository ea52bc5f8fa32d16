//! A loaded connector component of either contract version, behind one interface.
//!
//! A 0.2.0 component exports `ingest:bitbucket-dc/connector@0.2.0`, a 0.1.0 one
//! `ingest:bitbucket-dc/connector@0.1.0`; both import the same 0.1.0 host interfaces and use
//! the same records. [`PluginPre::new`] finds which the component exports, and [`Connector`]
//! calls an export of either: the exports both versions have in the same way, and the ones only
//! 0.2.0 has with [`Unsupported`] for a 0.1.0 component.

use crate::bindings::history::{
    BranchPage, BuildBatch, CommitBatch, PullRequestCommitPage, TagPage,
};
use crate::bindings::repository_events::RepositoryWebhookOutcome;
use crate::bindings::types::{
    Connection, ConnectionReport, ConnectorError, ConnectorInfo, PageRequest, ProjectPage,
    PullRequest, PullRequestBatch, RepoFilter, RepoPage, RepoRef, SyncOptions, UserPage,
    WebhookError, WebhookOutcome, WebhookRequest,
};
use crate::bindings::{v0_1, v0_2};
use crate::imports::CallState;
use wasmtime::AsContextMut;
use wasmtime::component::InstancePre;

/// The contract version a component was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContractVersion {
    /// `ingest:bitbucket-dc@0.1.0`: projects, repositories, users, pull requests, webhooks.
    V0_1,
    /// `ingest:bitbucket-dc@0.2.0`: 0.1.0 and the default branch's commits.
    V0_2,
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        })
    }
}

/// A component linked and ready to instantiate, of either version.
pub enum PluginPre {
    /// A 0.1.0 component.
    V0_1(v0_1::ConnectorPluginPre<CallState>),
    /// A 0.2.0 component.
    V0_2(v0_2::ConnectorPluginPre<CallState>),
}

impl PluginPre {
    /// Finds the contract `pre`'s component exports: 0.2.0 if it has that export, else 0.1.0.
    /// Fails when it exports neither.
    pub fn new(pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        match v0_2::ConnectorPluginPre::new(pre.clone()) {
            Ok(p) => Ok(PluginPre::V0_2(p)),
            Err(newer) => v0_1::ConnectorPluginPre::new(pre)
                .map(PluginPre::V0_1)
                .map_err(|older| {
                    wasmtime::Error::msg(format!(
                        "the component exports no connector this host knows: not 0.2.0 ({newer:#}), not 0.1.0 ({older:#})"
                    ))
                }),
        }
    }

    /// The contract version of the component.
    pub fn version(&self) -> ContractVersion {
        match self {
            PluginPre::V0_1(_) => ContractVersion::V0_1,
            PluginPre::V0_2(_) => ContractVersion::V0_2,
        }
    }

    /// A new instance in `store`.
    pub fn instantiate(
        &self,
        store: impl AsContextMut<Data = CallState>,
    ) -> wasmtime::Result<Plugin> {
        Ok(match self {
            PluginPre::V0_1(p) => Plugin::V0_1(p.instantiate(store)?),
            PluginPre::V0_2(p) => Plugin::V0_2(p.instantiate(store)?),
        })
    }
}

/// An instance of a component, of either version.
pub enum Plugin {
    /// A 0.1.0 component's instance.
    V0_1(v0_1::ConnectorPlugin),
    /// A 0.2.0 component's instance.
    V0_2(v0_2::ConnectorPlugin),
}

impl Plugin {
    /// Its `connector` export.
    pub fn connector(&self) -> Connector<'_> {
        match self {
            Plugin::V0_1(p) => Connector::V0_1(p.ingest_bitbucket_dc_connector()),
            Plugin::V0_2(p) => Connector::V0_2(p.ingest_bitbucket_dc0_2_0_connector()),
        }
    }
}

/// The `connector` export of an instance, of either version.
#[derive(Clone, Copy)]
pub enum Connector<'a> {
    /// 0.1.0's.
    V0_1(&'a v0_1::exports::ingest::bitbucket_dc::connector::Guest),
    /// 0.2.0's.
    V0_2(&'a v0_2::exports::ingest::bitbucket_dc0_2_0::connector::Guest),
}

/// A call of an export the component's contract version does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the component implements contract {has}; `{export}` needs {needs}")]
pub struct Unsupported {
    /// The export.
    pub export: &'static str,
    /// The component's version.
    pub has: ContractVersion,
    /// The first version with the export.
    pub needs: ContractVersion,
}

/// Defines, on [`Connector`], the exports every version has, each calling the instance's own.
macro_rules! shared_exports {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;
    )*) => {
        impl Connector<'_> {
            $(
                $(#[$doc])*
                pub fn $name<S: AsContextMut>(&self, store: S, $($arg: $ty),*) -> wasmtime::Result<$ret>
                where
                    S::Data: Send,
                {
                    match self {
                        Connector::V0_1(g) => g.$name(store, $($arg),*),
                        Connector::V0_2(g) => g.$name(store, $($arg),*),
                    }
                }
            )*
        }
    };
}

shared_exports! {
    /// `describe`.
    fn call_describe() -> ConnectorInfo;
    /// `check-connection`.
    fn call_check_connection(conn: &Connection, filter: RepoFilter) -> Result<ConnectionReport, ConnectorError>;
    /// `list-projects`.
    fn call_list_projects(conn: &Connection, page: &PageRequest) -> Result<ProjectPage, ConnectorError>;
    /// `list-repos`.
    fn call_list_repos(conn: &Connection, project_key: &str, filter: RepoFilter, page: &PageRequest) -> Result<RepoPage, ConnectorError>;
    /// `list-all-repos`.
    fn call_list_all_repos(conn: &Connection, filter: RepoFilter, page: &PageRequest) -> Result<RepoPage, ConnectorError>;
    /// `fetch-pull-requests`.
    fn call_fetch_pull_requests(conn: &Connection, repo: &RepoRef, options: SyncOptions, cursor: Option<&str>) -> Result<PullRequestBatch, ConnectorError>;
    /// `fetch-pull-request`.
    fn call_fetch_pull_request(conn: &Connection, repo: &RepoRef, id: u64) -> Result<PullRequest, ConnectorError>;
    /// `list-users`.
    fn call_list_users(conn: &Connection, page: &PageRequest) -> Result<UserPage, ConnectorError>;
    /// `handle-webhook`.
    fn call_handle_webhook(conn: &Connection, req: &WebhookRequest) -> Result<WebhookOutcome, WebhookError>;
}

impl Connector<'_> {
    /// The component's contract version.
    pub fn version(&self) -> ContractVersion {
        match self {
            Connector::V0_1(_) => ContractVersion::V0_1,
            Connector::V0_2(_) => ContractVersion::V0_2,
        }
    }
}

/// Defines, on [`Connector`], the exports 0.2.0 added: each calls the instance's own, and
/// answers `Ok(Err(Unsupported))` for a 0.1.0 component.
macro_rules! exports_since_0_2 {
    ($(
        $(#[$doc:meta])*
        fn $name:ident = $export:literal ($($arg:ident: $ty:ty),*) -> $ret:ty;
    )*) => {
        impl Connector<'_> {
            $(
                $(#[$doc])*
                pub fn $name<S: AsContextMut>(
                    &self,
                    store: S,
                    $($arg: $ty),*
                ) -> wasmtime::Result<Result<$ret, Unsupported>>
                where
                    S::Data: Send,
                {
                    match self {
                        Connector::V0_2(g) => g.$name(store, $($arg),*).map(Ok),
                        Connector::V0_1(_) => Ok(Err(Unsupported {
                            export: $export,
                            has: ContractVersion::V0_1,
                            needs: ContractVersion::V0_2,
                        })),
                    }
                }
            )*
        }
    };
}

exports_since_0_2! {
    /// `fetch-commits` (0.2.0).
    fn call_fetch_commits = "fetch-commits"(conn: &Connection, repo: &RepoRef, cursor: Option<&str>, tip: Option<&str>) -> Result<CommitBatch, ConnectorError>;
    /// `list-branches` (0.2.0).
    fn call_list_branches = "list-branches"(conn: &Connection, repo: &RepoRef, page: &PageRequest) -> Result<BranchPage, ConnectorError>;
    /// `list-tags` (0.2.0).
    fn call_list_tags = "list-tags"(conn: &Connection, repo: &RepoRef, page: &PageRequest) -> Result<TagPage, ConnectorError>;
    /// `handle-repository-webhook` (0.2.0).
    fn call_handle_repository_webhook = "handle-repository-webhook"(conn: &Connection, req: &WebhookRequest) -> Result<RepositoryWebhookOutcome, WebhookError>;
    /// `list-pull-request-commits` (0.2.0).
    fn call_list_pull_request_commits = "list-pull-request-commits"(conn: &Connection, repo: &RepoRef, id: u64, page: &PageRequest) -> Result<PullRequestCommitPage, ConnectorError>;
    /// `fetch-builds` (0.2.0).
    fn call_fetch_builds = "fetch-builds"(conn: &Connection, repo: &RepoRef, commits: &[String]) -> Result<BuildBatch, ConnectorError>;
}
