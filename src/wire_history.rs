//! Serde mirrors of the history's JSON: a commit (`RestCommit`), its author and committer, a
//! build status (`RestBuildStatus`) with its test results, and a branch or tag
//! (`RestBranch`, `RestTag`). Lenient by the rules of [`crate::wire`]: only a record's
//! identity is required (a commit's `id`, a build status's `key`, a ref's `id`).

use crate::lenient::{Lenient, Millis, buffered};
use crate::wire::WireCommit;
use serde::Deserialize;

/// A commit's author or committer (`RestCommit.author`, `.committer`: `name`, `emailAddress`).
/// A server that matched the identity to a Bitbucket user sends that user's fields as well, its
/// `slug` among them.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WirePerson {
    /// The name in the commit.
    pub name: Option<String>,
    /// The e-mail address in the commit.
    pub email_address: Option<String>,
    /// The matched user's slug.
    pub slug: Option<String>,
}

/// One entry of `GET .../commits` (`RestCommit`). Its identity is a non-empty `id`; a commit
/// without one does not deserialize.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireHistoryCommit {
    /// The full hash (required, non-empty).
    #[serde_with(skip_apply)]
    #[serde(deserialize_with = "non_empty_string")]
    pub id: String,
    /// Who wrote it.
    pub author: Option<WirePerson>,
    /// When it was written.
    pub author_timestamp: Option<Millis>,
    /// Who committed it.
    pub committer: Option<WirePerson>,
    /// When it was committed.
    pub committer_timestamp: Option<Millis>,
    /// The whole message (only its first line is kept).
    pub message: Option<String>,
    /// Its parents (`RestMinimalCommit`); an unreadable entry is dropped.
    pub parents: Vec<WireCommit>,
}

/// One status of `GET /rest/build-status/1.0/commits/{id}` (`RestBuildStatus`). Its identity is
/// a non-empty `key`; a status without one does not deserialize. Everything else is lenient:
/// servers before 7.14 send no `duration`, `buildNumber`, `parent`, `ref` or `testResults`, and
/// the oldest say `dateAdded` where newer ones say `createdDate`.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WireBuildStatus {
    /// The build's key (required, non-empty).
    #[serde_with(skip_apply)]
    #[serde(deserialize_with = "non_empty_key")]
    pub key: String,
    /// `SUCCESSFUL`, `FAILED`, `INPROGRESS`, `CANCELLED`, `UNKNOWN` (or a newer server's).
    pub state: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Where the build can be seen.
    pub url: Option<String>,
    /// First reported.
    pub created_date: Option<Millis>,
    /// First reported, on the oldest servers.
    pub date_added: Option<Millis>,
    /// Last changed.
    pub updated_date: Option<Millis>,
    /// Milliseconds it ran.
    pub duration: Option<i64>,
    /// The CI server's build number.
    pub build_number: Option<String>,
    /// The plan or job it belongs to.
    pub parent: Option<String>,
    /// The ref built.
    #[serde(rename = "ref")]
    pub ref_id: Option<String>,
    /// Test counts.
    pub test_results: Option<WireTestResults>,
}

/// A build's `testResults` (`RestTestResults`). Read from a JSON object only: serde would read
/// an array positionally (`[1, 2]` as 1 passed, 2 failed), which no server means.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WireTestResults {
    /// Passed.
    pub successful: Option<u32>,
    /// Failed.
    pub failed: Option<u32>,
    /// Skipped.
    pub skipped: Option<u32>,
}

/// The fields of [`WireTestResults`], each lenient.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Deserialize)]
struct RawTestResults {
    successful: Option<u32>,
    failed: Option<u32>,
    skipped: Option<u32>,
}

impl<'de> Deserialize<'de> for WireTestResults {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = WireTestResults;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of test counts")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let raw =
                    RawTestResults::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(WireTestResults {
                    successful: raw.successful,
                    failed: raw.failed,
                    skipped: raw.skipped,
                })
            }
        }
        d.deserialize_map(ObjectOnly)
    }
}

/// A branch or tag as the server sends it, before its identity is checked.
#[serde_with::apply(_ => #[serde_as(as = "Lenient")] #[serde(default)])]
#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRefItem {
    id: Option<String>,
    display_id: Option<String>,
    latest_commit: Option<String>,
    latest_changeset: Option<String>,
    default: Option<bool>,
    is_default: Option<bool>,
    hash: Option<String>,
}

/// A branch or tag of `GET .../branches` or `.../tags` (`RestBranch`, `RestTag`). Its identity
/// is its `id` (`refs/heads/main`) or its `displayId` (`main`); one with neither does not
/// deserialize.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(try_from = "RawRefItem")]
pub struct WireRefItem {
    /// The full ref (the display name when the server sent none).
    pub id: String,
    /// The short name (the full ref less `refs/heads/` or `refs/tags/` when the server sent
    /// none).
    pub display_id: String,
    /// The commit it points to (`latestCommit`, or `latestChangeset` on old servers).
    pub latest_commit: Option<String>,
    /// Whether it is the default branch: `default` in the 9.2 reference, `isDefault` on the
    /// servers before it.
    pub is_default: Option<bool>,
    /// An annotated tag's object hash.
    pub hash: Option<String>,
}

impl TryFrom<RawRefItem> for WireRefItem {
    type Error = String;

    fn try_from(r: RawRefItem) -> Result<Self, String> {
        let present = |s: Option<String>| s.filter(|s| !s.is_empty());
        let (id, display_id) = match (present(r.id), present(r.display_id)) {
            (Some(id), Some(d)) => (id, d),
            (Some(id), None) => {
                let short = id
                    .strip_prefix("refs/heads/")
                    .or_else(|| id.strip_prefix("refs/tags/"))
                    .unwrap_or(&id)
                    .to_owned();
                (id, short)
            }
            (None, Some(d)) => (d.clone(), d),
            (None, None) => return Err("the ref has neither `id` nor `displayId`".into()),
        };
        Ok(Self {
            id,
            display_id,
            latest_commit: present(r.latest_commit).or(present(r.latest_changeset)),
            is_default: r.default.or(r.is_default),
            hash: present(r.hash),
        })
    }
}

fn non_empty_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("the commit id is empty"));
    }
    Ok(s)
}

fn non_empty_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Err(serde::de::Error::custom("the build's key is empty"));
    }
    Ok(s)
}

// The nested objects of the history's shapes, read leniently by buffering (see `crate::lenient`).
buffered!(Option<WirePerson>, Option<WireTestResults>);
