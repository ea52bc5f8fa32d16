//! Serde mirrors of the Bitbucket REST JSON, as lenient as the data allows.
//!
//! Only identifying fields are required; anything a server version may omit is an `Option` or
//! defaulted, so one missing optional field never fails a page. Turning these into contract
//! records is [`crate::normalize`]'s job.

use serde::Deserialize;

/// `{"href": ..., "name": ...}` inside `links`.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Link {
    /// The URL.
    #[serde(default)]
    pub href: Option<String>,
    /// For clone links: `http` or `ssh`.
    #[serde(default)]
    pub name: Option<String>,
}

/// The `links` object.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct Links {
    /// Web page links.
    #[serde(rename = "self", default)]
    pub self_: Vec<Link>,
    /// Clone links.
    #[serde(default)]
    pub clone: Vec<Link>,
}

impl Links {
    /// The first web link.
    pub fn web(&self) -> Option<String> {
        self.self_.iter().find_map(|l| l.href.clone())
    }

    /// The clone link named `name` (`http` or `ssh`).
    pub fn clone_named(&self, name: &str) -> Option<String> {
        self.clone
            .iter()
            .find(|l| l.name.as_deref() == Some(name))
            .and_then(|l| l.href.clone())
    }
}

/// `GET /application-properties`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProperties {
    /// e.g. `9.2.4`.
    #[serde(default)]
    pub version: Option<String>,
    /// Build number.
    #[serde(default)]
    pub build_number: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A project.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WireProject {
    /// Key (required: it names the project everywhere).
    pub key: String,
    /// Numeric id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Public.
    #[serde(default)]
    pub public: Option<bool>,
    /// `NORMAL` or `PERSONAL`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Links.
    #[serde(default)]
    pub links: Links,
}

/// The project reference inside a repository.
#[derive(Debug, Deserialize, Clone)]
pub struct WireProjectRef {
    /// Key.
    pub key: String,
}

/// A repository.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WireRepo {
    /// Slug (required).
    pub slug: String,
    /// Owning project (required).
    pub project: WireProjectRef,
    /// Numeric id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `git`.
    #[serde(default)]
    pub scm_id: Option<String>,
    /// Server state.
    #[serde(default)]
    pub state: Option<String>,
    /// Public.
    #[serde(default)]
    pub public: Option<bool>,
    /// Archived (8.0+).
    #[serde(default)]
    pub archived: Option<bool>,
    /// Forkable.
    #[serde(default)]
    pub forkable: Option<bool>,
    /// Fork origin.
    #[serde(default)]
    pub origin: Option<Box<WireRepoRef>>,
    /// Links.
    #[serde(default)]
    pub links: Links,
}

/// A repository as referenced from elsewhere (fork origin, PR refs).
#[derive(Debug, Deserialize, Clone)]
pub struct WireRepoRef {
    /// Slug.
    pub slug: String,
    /// Project.
    pub project: WireProjectRef,
}

/// A user.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WireUser {
    /// Login name (required).
    pub name: String,
    /// Slug (falls back to the name when absent).
    #[serde(default)]
    pub slug: Option<String>,
    /// Numeric id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email_address: Option<String>,
    /// Active.
    #[serde(default)]
    pub active: Option<bool>,
    /// `NORMAL` or `SERVICE`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// `{"id": "TAG"}` inside a ref's `type`.
#[derive(Debug, Deserialize, Default, Clone)]
pub struct WireRefType {
    /// `BRANCH` or `TAG`.
    #[serde(default)]
    pub id: Option<String>,
}

/// One end of a pull request.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WireRef {
    /// `refs/heads/...`.
    #[serde(default)]
    pub id: Option<String>,
    /// Short name.
    #[serde(default)]
    pub display_id: Option<String>,
    /// Commit.
    #[serde(default)]
    pub latest_commit: Option<String>,
    /// Branch or tag (newer servers).
    #[serde(rename = "type", default)]
    pub kind: Option<WireRefType>,
    /// Repository of the ref.
    #[serde(default)]
    pub repository: Option<WireRepoRef>,
}

/// The author, a reviewer or a participant of a pull request.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WireParticipant {
    /// Who.
    pub user: WireUser,
    /// `AUTHOR`, `REVIEWER`, `PARTICIPANT`.
    #[serde(default)]
    pub role: Option<String>,
    /// Approved flag (older servers).
    #[serde(default)]
    pub approved: Option<bool>,
    /// `UNAPPROVED`, `NEEDS_WORK`, `APPROVED`.
    #[serde(default)]
    pub status: Option<String>,
    /// Last reviewed commit.
    #[serde(default)]
    pub last_reviewed_commit: Option<String>,
}

/// `properties` of a pull request.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WirePrProperties {
    /// Comments.
    #[serde(default)]
    pub comment_count: Option<u32>,
    /// Open tasks.
    #[serde(default)]
    pub open_task_count: Option<u32>,
    /// Resolved tasks.
    #[serde(default)]
    pub resolved_task_count: Option<u32>,
    /// The merge commit (merged pull requests in webhook payloads of newer servers).
    #[serde(default)]
    pub merge_commit: Option<WireCommit>,
}

/// A pull request, from a list page, `GET .../pull-requests/{id}` or a webhook payload.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WirePullRequest {
    /// Id within the repository (required).
    pub id: u64,
    /// Version.
    #[serde(default)]
    pub version: Option<u32>,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `OPEN`, `MERGED`, `DECLINED`.
    #[serde(default)]
    pub state: Option<String>,
    /// Draft (8.18+).
    #[serde(default)]
    pub draft: Option<bool>,
    /// Created.
    #[serde(default, deserialize_with = "crate::timestamps::opt_millis")]
    pub created_date: Option<i64>,
    /// Updated.
    #[serde(default, deserialize_with = "crate::timestamps::opt_millis")]
    pub updated_date: Option<i64>,
    /// Closed.
    #[serde(default, deserialize_with = "crate::timestamps::opt_millis")]
    pub closed_date: Option<i64>,
    /// Source.
    #[serde(default)]
    pub from_ref: WireRef,
    /// Target.
    #[serde(default)]
    pub to_ref: WireRef,
    /// Author.
    #[serde(default)]
    pub author: Option<WireParticipant>,
    /// Reviewers.
    #[serde(default)]
    pub reviewers: Vec<WireParticipant>,
    /// Participants.
    #[serde(default)]
    pub participants: Vec<WireParticipant>,
    /// Properties.
    #[serde(default)]
    pub properties: Option<WirePrProperties>,
    /// Links.
    #[serde(default)]
    pub links: Links,
}

/// A commit reference inside an activity.
#[derive(Debug, Deserialize, Clone)]
pub struct WireCommit {
    /// The commit hash.
    #[serde(default)]
    pub id: Option<String>,
}

/// One entry of `GET .../pull-requests/{id}/activities`.
#[derive(Debug, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct WireActivity {
    /// Activity id.
    #[serde(default)]
    pub id: Option<u64>,
    /// When.
    #[serde(default, deserialize_with = "crate::timestamps::opt_millis")]
    pub created_date: Option<i64>,
    /// Who.
    #[serde(default)]
    pub user: Option<WireUser>,
    /// What (`APPROVED`, `COMMENTED`, `MERGED`, ...).
    pub action: String,
    /// For COMMENTED: `ADDED`, `EDITED`, `DELETED`, `REPLIED`.
    #[serde(default)]
    pub comment_action: Option<String>,
    /// For MERGED: the merge commit.
    #[serde(default)]
    pub commit: Option<WireCommit>,
}
