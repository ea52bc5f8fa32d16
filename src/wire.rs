//! Serde mirrors of the Bitbucket REST and webhook JSON, tolerant by construction.
//!
//! The shapes follow Atlassian's OpenAPI description of the DC 9.2 REST API (`RestPullRequest`,
//! `RestPullRequestRef`, `RestRepository`, `RestProject`, `RestApplicationUser`,
//! `RestPullRequestParticipant`, `RestPullRequestActivity`); the suite checks the simulator and
//! every fixture against that file.
//!
//! Real servers (Bitbucket Server 5.x to Data Center 10.x, plugins, proxies) send more, less and
//! other shapes than the reference, so only a record's identity is required:
//! - a pull request's `id` (a number, or a string of digits);
//! - a repository's `slug` and its project's `key`;
//! - a user's `name` or `slug`;
//! - an activity's `action`.
//!
//! Every other field goes through serde_with's [`DefaultOnError`]: missing, `null`, another JSON
//! type or another shape (an object where a string was expected, or the reverse) leaves that
//! field empty and keeps the record. Lists go through [`VecSkipError`]: a `null` or unreadable
//! entry is dropped and its neighbours kept. Unknown fields are ignored. A record whose identity
//! cannot be read fails to deserialize; [`crate::paging`] then skips and reports it, and the
//! rest of its page goes on.
//!
//! Turning these into contract records is [`crate::normalize`]'s job.

use crate::timestamps::EpochMillis;
use serde::Deserialize;
use serde_with::{DefaultOnError, DisplayFromStr, PickFirst, VecSkipError, serde_as};

/// A Bitbucket id: a Java `long` on the server, so `0..=i64::MAX`, as a number or a string of
/// digits. A larger number cannot be a real id, and would not survive a store with signed 64-bit
/// integers (SQLite, PostgreSQL): it makes its record unreadable instead of colliding with
/// another.
pub struct JavaLongId;

impl<'de> serde_with::DeserializeAs<'de, u64> for JavaLongId {
    fn deserialize_as<D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        use serde::de::Error;
        let n: u64 = PickFirst::<(serde_with::Same, DisplayFromStr)>::deserialize_as(d)?;
        if i64::try_from(n).is_err() {
            return Err(D::Error::custom(format!(
                "id {n} is beyond the signed 64-bit range of Bitbucket ids"
            )));
        }
        Ok(n)
    }
}

/// `{"href": ..., "name": ...}` inside `links`.
#[serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
pub struct Link {
    /// The URL.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub href: Option<String>,
    /// For clone links: `http` or `ssh`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub name: Option<String>,
}

/// The `links` object. Some servers send `"self": [null]`; such entries are dropped.
#[serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
pub struct Links {
    /// Web page links.
    #[serde_as(as = "DefaultOnError<VecSkipError<_>>")]
    #[serde(rename = "self", default)]
    pub self_: Vec<Link>,
    /// Clone links.
    #[serde_as(as = "DefaultOnError<VecSkipError<_>>")]
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

/// `GET /application-properties` (`RestApplicationProperties`).
#[serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProperties {
    /// e.g. `9.2.4`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub version: Option<String>,
    /// Build number, e.g. `9002004`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub build_number: Option<String>,
    /// Display name.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A project (`RestProject`).
#[serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireProject {
    /// Key (required: it names the project everywhere).
    pub key: String,
    /// Numeric id.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub id: Option<u64>,
    /// Name.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub description: Option<String>,
    /// Public.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub public: Option<bool>,
    /// `NORMAL` or `PERSONAL`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Links.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub links: Links,
}

/// A repository (`RestRepository`), wherever it appears: in listings, as a fork's origin and as
/// a pull-request ref's repository.
#[serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireRepo {
    /// Slug (required).
    pub slug: String,
    /// Owning project (required, for its key).
    pub project: WireProject,
    /// Numeric id.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub id: Option<u64>,
    /// Name.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub description: Option<String>,
    /// `git`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub scm_id: Option<String>,
    /// Server state (`AVAILABLE`, ...).
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub state: Option<String>,
    /// Public.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub public: Option<bool>,
    /// Archived (8.0+).
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub archived: Option<bool>,
    /// Forkable.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub forkable: Option<bool>,
    /// Fork origin.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub origin: Option<Box<WireRepo>>,
    /// Links.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub links: Links,
}

/// A user as the server sends it, before its identity is checked.
#[serde_as]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    name: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    slug: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    id: Option<u64>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    display_name: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    email_address: Option<String>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    active: Option<bool>,
    #[serde_as(as = "DefaultOnError")]
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// A user (`RestApplicationUser`). Its identity is the login `name` or, failing that, the `slug`;
/// a user with neither does not deserialize.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(try_from = "RawUser")]
pub struct WireUser {
    /// Login name (the slug when the server sent no name).
    pub name: String,
    /// Slug (the name when the server sent no slug).
    pub slug: String,
    /// Numeric id.
    pub id: Option<u64>,
    /// Display name.
    pub display_name: Option<String>,
    /// E-mail.
    pub email_address: Option<String>,
    /// Active.
    pub active: Option<bool>,
    /// `NORMAL` or `SERVICE`.
    pub kind: Option<String>,
}

impl TryFrom<RawUser> for WireUser {
    type Error = String;

    fn try_from(u: RawUser) -> Result<Self, String> {
        let present = |s: Option<String>| s.filter(|s| !s.is_empty());
        let (name, slug) = match (present(u.name), present(u.slug)) {
            (Some(n), Some(s)) => (n, s),
            (Some(n), None) => (n.clone(), n),
            (None, Some(s)) => (s.clone(), s),
            (None, None) => return Err("a user with neither name nor slug".into()),
        };
        Ok(WireUser {
            name,
            slug,
            id: u.id,
            display_name: u.display_name,
            email_address: u.email_address,
            active: u.active,
            kind: u.kind,
        })
    }
}

/// One end of a pull request (`RestPullRequestRef`).
#[serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireRef {
    /// `refs/heads/...` or `refs/tags/...`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub id: Option<String>,
    /// Short name.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub display_id: Option<String>,
    /// Commit.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub latest_commit: Option<String>,
    /// `BRANCH` or `TAG` (a string in the reference; older servers omit it).
    #[serde_as(as = "DefaultOnError")]
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Repository of the ref.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub repository: Option<WireRepo>,
}

/// The author, a reviewer or a participant of a pull request (`RestPullRequestParticipant`).
#[serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireParticipant {
    /// Who (required: a participant without a user is dropped from its list).
    pub user: WireUser,
    /// `AUTHOR`, `REVIEWER`, `PARTICIPANT`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub role: Option<String>,
    /// Approved flag (older servers).
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub approved: Option<bool>,
    /// `UNAPPROVED`, `NEEDS_WORK`, `APPROVED`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub status: Option<String>,
    /// Last reviewed commit.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub last_reviewed_commit: Option<String>,
}

/// `properties` of a pull request (not in the reference, but sent by servers since 3.x).
#[serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WirePrProperties {
    /// Comments.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub comment_count: Option<u32>,
    /// Open tasks.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub open_task_count: Option<u32>,
    /// Resolved tasks.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub resolved_task_count: Option<u32>,
    /// The merge commit (merged pull requests in webhook payloads of newer servers).
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub merge_commit: Option<WireCommit>,
}

/// A pull request (`RestPullRequest`), from a list page, `GET .../pull-requests/{id}` or a
/// webhook payload.
#[serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WirePullRequest {
    /// Id within the repository (required; a string of digits is accepted too; at most
    /// `i64::MAX`, see [`JavaLongId`]).
    #[serde_as(as = "JavaLongId")]
    pub id: u64,
    /// Version.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub version: Option<u32>,
    /// Title.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub title: Option<String>,
    /// Description.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub description: Option<String>,
    /// `OPEN`, `MERGED`, `DECLINED`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub state: Option<String>,
    /// Draft (8.18+).
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub draft: Option<bool>,
    /// Created.
    #[serde_as(as = "DefaultOnError<Option<EpochMillis>>")]
    #[serde(default)]
    pub created_date: Option<i64>,
    /// Updated.
    #[serde_as(as = "DefaultOnError<Option<EpochMillis>>")]
    #[serde(default)]
    pub updated_date: Option<i64>,
    /// Closed.
    #[serde_as(as = "DefaultOnError<Option<EpochMillis>>")]
    #[serde(default)]
    pub closed_date: Option<i64>,
    /// Source.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub from_ref: WireRef,
    /// Target.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub to_ref: WireRef,
    /// Author.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub author: Option<WireParticipant>,
    /// Reviewers.
    #[serde_as(as = "DefaultOnError<VecSkipError<_>>")]
    #[serde(default)]
    pub reviewers: Vec<WireParticipant>,
    /// Participants.
    #[serde_as(as = "DefaultOnError<VecSkipError<_>>")]
    #[serde(default)]
    pub participants: Vec<WireParticipant>,
    /// Properties.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub properties: Option<WirePrProperties>,
    /// Links.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub links: Links,
}

/// A commit reference (the MERGED activity's `commit`, `properties.mergeCommit`).
#[serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct WireCommit {
    /// The commit hash.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub id: Option<String>,
}

/// One entry of `GET .../pull-requests/{id}/activities` (`RestPullRequestActivity`).
#[serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireActivity {
    /// What (`APPROVED`, `COMMENTED`, `MERGED`, ...; required).
    pub action: String,
    /// Activity id.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub id: Option<u64>,
    /// When.
    #[serde_as(as = "DefaultOnError<Option<EpochMillis>>")]
    #[serde(default)]
    pub created_date: Option<i64>,
    /// Who.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub user: Option<WireUser>,
    /// For COMMENTED: `ADDED`, `EDITED`, `DELETED`, `REPLIED`.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub comment_action: Option<String>,
    /// For MERGED: the merge commit.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub commit: Option<WireCommit>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pr(v: serde_json::Value) -> Result<WirePullRequest, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn ids_beyond_a_java_long_make_the_record_unreadable_instead_of_colliding() {
        for id in [
            json!(9_223_372_036_854_775_808u64),
            json!(u64::MAX),
            json!("9223372036854775809"),
        ] {
            let e = pr(json!({"id": id})).expect_err("refused");
            assert!(e.to_string().contains("signed 64-bit"), "{e}");
        }
        assert_eq!(pr(json!({"id": i64::MAX})).unwrap().id, i64::MAX as u64);
        assert_eq!(pr(json!({"id": "17"})).unwrap().id, 17);
        assert!(pr(json!({"id": -1})).is_err());
    }

    #[test]
    fn a_ref_type_is_a_string_as_the_reference_says() {
        let p = pr(json!({"id": 1, "fromRef": {"id": "refs/heads/a", "type": "BRANCH"}})).unwrap();
        assert_eq!(p.from_ref.kind.as_deref(), Some("BRANCH"));
        assert_eq!(p.from_ref.id.as_deref(), Some("refs/heads/a"));
    }

    #[test]
    fn a_field_in_another_shape_is_empty_and_the_record_kept() {
        let p = pr(json!({
            "id": 9, "title": {"text": "x"}, "version": "three", "draft": "no",
            "createdDate": [1], "fromRef": {"id": 5, "type": {"id": "BRANCH"}, "latestCommit": "abc"},
            "toRef": "refs/heads/main", "author": [], "reviewers": {"user": {}},
            "properties": {"commentCount": -1, "openTaskCount": 2}, "links": {"self": [null, {"href": "u"}]},
            "somethingNew": {"deep": [1, 2, {"x": null}]}
        }))
        .unwrap();
        assert_eq!(p.id, 9);
        assert_eq!(
            (p.title, p.version, p.draft, p.created_date),
            (None, None, None, None)
        );
        assert_eq!((p.from_ref.id, p.from_ref.kind), (None, None));
        assert_eq!(p.from_ref.latest_commit.as_deref(), Some("abc"));
        assert_eq!(p.to_ref, WireRef::default());
        assert!(p.author.is_none() && p.reviewers.is_empty());
        let props = p.properties.unwrap();
        assert_eq!(
            (props.comment_count, props.open_task_count),
            (None, Some(2))
        );
        assert_eq!(p.links.web().as_deref(), Some("u"));
    }

    #[test]
    fn list_entries_that_cannot_be_read_are_dropped_alone() {
        let p = pr(json!({"id": 2, "reviewers": [
            null,
            {"user": {"name": "ann"}, "status": "APPROVED"},
            {"user": {"displayName": "nobody"}},
            {"role": "REVIEWER"},
            {"user": {"slug": "bob"}, "status": 7}
        ]}))
        .unwrap();
        let who: Vec<_> = p
            .reviewers
            .iter()
            .map(|r| (r.user.name.as_str(), r.status.as_deref()))
            .collect();
        assert_eq!(who, vec![("ann", Some("APPROVED")), ("bob", None)]);
    }

    #[test]
    fn identity_is_required_and_read_leniently() {
        assert!(pr(json!({"title": "no id"})).is_err());
        assert!(pr(json!({"id": null})).is_err());
        assert!(pr(json!({"id": "x1"})).is_err());
        assert_eq!(pr(json!({"id": "42"})).unwrap().id, 42);
        let repo: Result<WireRepo, _> =
            serde_json::from_value(json!({"slug": "r", "project": {"name": "no key"}}));
        assert!(repo.is_err());
        let act: Result<WireActivity, _> = serde_json::from_value(json!({"id": 1}));
        assert!(act.is_err());
        let u: WireUser = serde_json::from_value(json!({"slug": "ann", "name": null})).unwrap();
        assert_eq!((u.name.as_str(), u.slug.as_str()), ("ann", "ann"));
        assert!(serde_json::from_value::<WireUser>(json!({"name": ""})).is_err());
    }

    #[test]
    fn dates_in_either_form_and_garbage_dates_are_empty() {
        let p = pr(json!({"id": 3, "createdDate": "2026-08-19T17:27:55.266Z", "updatedDate": 1_787_160_475_266_i64, "closedDate": "soon"})).unwrap();
        assert_eq!(p.created_date, Some(1_787_160_475_266));
        assert_eq!(p.updated_date, Some(1_787_160_475_266));
        assert_eq!(p.closed_date, None);
    }
}
