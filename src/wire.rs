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
//! Every other field is read leniently ([`crate::lenient`]): missing, `null`, another JSON
//! type or another shape (an object where a string was expected, or the reverse) leaves that
//! field empty and keeps the record. Scalars are read in one pass; nested objects go through
//! serde_with's `DefaultOnError`. Lenience is the default, written once per struct
//! (`serde_with::apply` gives every field `Lenient` and `default`); the identity fields,
//! and fields with a converter of their own, opt out with `#[serde_with(skip_apply)]`. A
//! timestamp is an `Option<Millis>`, read in any of its forms. In a list (serde_with's
//! `VecSkipError`), a `null` or unreadable entry is dropped and its neighbours kept. Unknown fields are ignored. A record whose identity
//! cannot be read fails to deserialize; [`crate::paging`] then skips and reports it, and the
//! rest of its page goes on.
//!
//! The history's shapes (commits, build statuses, branches and tags) are in
//! [`crate::wire_history`]. Turning these into contract records is [`crate::normalize`]'s job.

use crate::lenient::{Lenient, LenientId, Millis, buffered};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_with::{DisplayFromStr, PickFirst};

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
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
pub struct Link {
    /// The URL.
    pub href: Option<String>,
    /// For clone links: `http` or `ssh`.
    pub name: Option<String>,
}

/// The `links` object. Some servers send `"self": [null]`; such entries are dropped.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
pub struct Links {
    /// Web page links.
    #[serde(rename = "self")]
    pub self_: Vec<Link>,
    /// Clone links.
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
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProperties {
    /// e.g. `9.2.4`.
    pub version: Option<String>,
    /// Build number, e.g. `9002004`.
    pub build_number: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// A project (`RestProject`).
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireProject {
    /// Key (required: it names the project everywhere).
    #[serde_with(skip_apply)]
    pub key: String,
    /// Numeric id.
    #[serde_with(skip_apply)]
    #[serde_as(as = "LenientId")]
    #[serde(default)]
    pub id: Option<u64>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Public.
    pub public: Option<bool>,
    /// `NORMAL` or `PERSONAL`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Links.
    pub links: Links,
}

/// A repository (`RestRepository`), wherever it appears: in listings, as a fork's origin and as
/// a pull-request ref's repository.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireRepo {
    /// Slug (required).
    #[serde_with(skip_apply)]
    pub slug: String,
    /// Owning project (required, for its key).
    #[serde_with(skip_apply)]
    pub project: WireProject,
    /// Numeric id.
    #[serde_with(skip_apply)]
    #[serde_as(as = "LenientId")]
    #[serde(default)]
    pub id: Option<u64>,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `git`.
    pub scm_id: Option<String>,
    /// Server state (`AVAILABLE`, ...).
    pub state: Option<String>,
    /// Public.
    pub public: Option<bool>,
    /// Archived (8.0+).
    pub archived: Option<bool>,
    /// Forkable.
    pub forkable: Option<bool>,
    /// Fork origin.
    pub origin: Option<Box<WireRepo>>,
    /// Links.
    pub links: Links,
}

/// A user as the server sends it, before its identity is checked.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    name: Option<String>,
    slug: Option<String>,
    #[serde_with(skip_apply)]
    #[serde_as(as = "LenientId")]
    #[serde(default)]
    id: Option<u64>,
    display_name: Option<String>,
    email_address: Option<String>,
    active: Option<bool>,
    #[serde(rename = "type")]
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
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireRef {
    /// `refs/heads/...` or `refs/tags/...`.
    pub id: Option<String>,
    /// Short name.
    pub display_id: Option<String>,
    /// Commit.
    pub latest_commit: Option<String>,
    /// `BRANCH` or `TAG` (a string in the reference; older servers omit it).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Repository of the ref.
    pub repository: Option<WireRepo>,
}

/// The author, a reviewer or a participant of a pull request (`RestPullRequestParticipant`).
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireParticipant {
    /// Who (required: a participant without a user is dropped from its list).
    #[serde_with(skip_apply)]
    pub user: WireUser,
    /// `AUTHOR`, `REVIEWER`, `PARTICIPANT`.
    pub role: Option<String>,
    /// Approved flag (older servers).
    pub approved: Option<bool>,
    /// `UNAPPROVED`, `NEEDS_WORK`, `APPROVED`.
    pub status: Option<String>,
    /// Last reviewed commit.
    pub last_reviewed_commit: Option<String>,
}

/// `properties` of a pull request (not in the reference, but sent by servers since 3.x).
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WirePrProperties {
    /// Comments.
    pub comment_count: Option<u32>,
    /// Open tasks.
    pub open_task_count: Option<u32>,
    /// Resolved tasks.
    pub resolved_task_count: Option<u32>,
    /// The merge commit (merged pull requests in webhook payloads of newer servers).
    pub merge_commit: Option<WireCommit>,
}

/// A pull request (`RestPullRequest`), from a list page, `GET .../pull-requests/{id}` or a
/// webhook payload.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WirePullRequest {
    /// Id within the repository (required; a string of digits is accepted too; at most
    /// `i64::MAX`, see [`JavaLongId`]).
    #[serde_with(skip_apply)]
    #[serde_as(as = "JavaLongId")]
    pub id: u64,
    /// Version.
    pub version: Option<u32>,
    /// Title.
    pub title: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `OPEN`, `MERGED`, `DECLINED`.
    pub state: Option<String>,
    /// Draft (8.18+).
    pub draft: Option<bool>,
    /// Created.
    pub created_date: Option<Millis>,
    /// Updated.
    pub updated_date: Option<Millis>,
    /// Closed.
    pub closed_date: Option<Millis>,
    /// Source.
    pub from_ref: WireRef,
    /// Target.
    pub to_ref: WireRef,
    /// Author.
    pub author: Option<WireParticipant>,
    /// Reviewers.
    pub reviewers: Vec<WireParticipant>,
    /// Participants.
    pub participants: Vec<WireParticipant>,
    /// Properties.
    pub properties: Option<WirePrProperties>,
    /// Links.
    pub links: Links,
}

/// A commit reference (the MERGED activity's `commit`, `properties.mergeCommit`).
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct WireCommit {
    /// The commit hash.
    pub id: Option<String>,
}

/// One entry of `GET .../pull-requests/{id}/activities` (`RestPullRequestActivity`).
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireActivity {
    /// What (`APPROVED`, `COMMENTED`, `MERGED`, ...; required).
    #[serde_with(skip_apply)]
    pub action: String,
    /// Activity id.
    #[serde_with(skip_apply)]
    #[serde_as(as = "LenientId")]
    #[serde(default)]
    pub id: Option<u64>,
    /// When.
    pub created_date: Option<Millis>,
    /// Who.
    pub user: Option<WireUser>,
    /// For COMMENTED: `ADDED`, `EDITED`, `DELETED`, `REPLIED`.
    pub comment_action: Option<String>,
    /// For MERGED: the merge commit.
    pub commit: Option<WireCommit>,
}

/// A webhook delivery's body: the envelope every event shares, with the fields each event
/// reads: a pull request's event its `pullRequest` (with `participant` and `previousStatus` for
/// a reviewer's), a push its
/// `repository` and `changes`, a rename or move its `old` and `new` repository. Like the wire
/// model, every field is lenient; the pull request and the repositories stay raw so that the
/// reason one cannot be read (its identity) can be told.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEnvelope<'a> {
    /// The event key, when the header does not give it.
    pub event_key: Option<String>,
    /// When it happened.
    pub date: Option<Millis>,
    /// Who did it.
    pub actor: Option<WireUser>,
    /// A pull request's event: the pull request.
    #[serde_with(skip_apply)]
    #[serde(borrow, default)]
    pub pull_request: Option<&'a RawValue>,
    /// A reviewer's event: the reviewer.
    pub participant: Option<WireParticipant>,
    /// A reviewer's event: the status before.
    pub previous_status: Option<String>,
    /// A push: the repository.
    #[serde_with(skip_apply)]
    #[serde(borrow, default)]
    pub repository: Option<&'a RawValue>,
    /// A rename or move: the repository before.
    #[serde_with(skip_apply)]
    #[serde(borrow, default)]
    pub old: Option<&'a RawValue>,
    /// A rename or move: the repository after.
    #[serde_with(skip_apply)]
    #[serde(borrow, default)]
    pub new: Option<&'a RawValue>,
    /// A push: the refs it changed.
    pub changes: Vec<WireChange>,
}

/// One entry of a push's `changes` (`repo:refs_changed`):
/// `{ref: {id, displayId, type}, refId, fromHash, toHash, type}`.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireChange {
    /// The ref changed.
    #[serde(rename = "ref")]
    pub reference: Option<WireChangedRef>,
    /// The ref's full name (`refs/heads/main`).
    pub ref_id: Option<String>,
    /// Its head before (all zeros for a created ref).
    pub from_hash: Option<String>,
    /// Its head after (all zeros for a deleted ref).
    pub to_hash: Option<String>,
    /// `ADD`, `UPDATE` or `DELETE`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A change's `ref` (`RestMinimalRef`).
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireChangedRef {
    /// Full name.
    pub id: Option<String>,
    /// Short name.
    pub display_id: Option<String>,
    /// `BRANCH` or `TAG`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

// The nested objects of the wire model, read leniently by buffering (see `crate::lenient`).
buffered!(
    Links,
    WireRef,
    Option<WireRepo>,
    Option<Box<WireRepo>>,
    Option<WireUser>,
    Option<WireParticipant>,
    Option<WireCommit>,
    Option<WirePrProperties>,
    Option<WireChangedRef>,
);

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
        assert_eq!(p.created_date, Some(Millis(1_787_160_475_266)));
        assert_eq!(p.updated_date, Some(Millis(1_787_160_475_266)));
        assert_eq!(p.closed_date, None);
    }
}
