//! The server generations the simulator can be, and what each one sends differently.
//!
//! The shapes follow Atlassian's OpenAPI description of DC 9.2 (`shared/reference`). A version
//! differs from it only where a source says so; each difference below names its source. Where no
//! source tells (for example whether 7.21 already sends a ref's `type`), the simulator sends the
//! reference shape: a guess dressed as a fact is how the simulator once came to disagree with real
//! servers.

use std::fmt;
use std::str::FromStr;

/// A Bitbucket Server / Data Center release line the simulator imitates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerVersion {
    /// Bitbucket Server 5.16.
    V5_16,
    /// Bitbucket Server 7.21 (the last 7.x long-term release).
    V7_21,
    /// Bitbucket Data Center 8.19.
    V8_19,
    /// Bitbucket Data Center 9.2: the reference (`shared/reference`), and the default.
    #[default]
    V9_2,
    /// Bitbucket Data Center 10.3.
    V10_3,
}

impl ServerVersion {
    /// Every version, oldest first.
    pub const ALL: [ServerVersion; 5] = [
        ServerVersion::V5_16,
        ServerVersion::V7_21,
        ServerVersion::V8_19,
        ServerVersion::V9_2,
        ServerVersion::V10_3,
    ];

    /// (major, minor, patch) as `/application-properties` reports it.
    pub fn triple(self) -> (u32, u32, u32) {
        match self {
            ServerVersion::V5_16 => (5, 16, 0),
            ServerVersion::V7_21 => (7, 21, 0),
            ServerVersion::V8_19 => (8, 19, 0),
            ServerVersion::V9_2 => (9, 2, 4),
            ServerVersion::V10_3 => (10, 3, 0),
        }
    }

    /// `version` of `/application-properties`, e.g. `8.19.0`.
    pub fn version(self) -> String {
        let (a, b, c) = self.triple();
        format!("{a}.{b}.{c}")
    }

    /// `buildNumber`: major·1000000 + minor·1000 + patch, as a string. Seen on real servers:
    /// 4.8.5 → `4008005` (chazmcgarvey/WebService-BitbucketServer, t/20-response.t), 7.11.2 →
    /// `7011002` (sourcegraph/sourcegraph-public-snapshot,
    /// internal/extsvc/bitbucketserver/testdata/vcr/GetVersion.yaml).
    pub fn build_number(self) -> String {
        let (a, b, c) = self.triple();
        (u64::from(a) * 1_000_000 + u64::from(b) * 1000 + u64::from(c)).to_string()
    }

    /// Pull requests carry `draft` from 8.18: "Bitbucket Data Center 8.18 – Draft PR" in
    /// Atlassian's REST API changelog
    /// (https://developer.atlassian.com/server/bitbucket/reference/api-changelog/).
    pub fn has_draft(self) -> bool {
        self >= ServerVersion::V8_19
    }

    /// Repositories carry `archived` from 8.0, when archiving was introduced (BSERV-13577,
    /// https://jira.atlassian.com/browse/BSERV-13577); `GET /repos` takes the `archived` filter,
    /// defaulting to `ACTIVE`, "Available since 8.0" (reference, `/api/latest/repos`). A June 2022
    /// capture of a 7.x server's repository list has no `archived` key
    /// (sourcegraph/sourcegraph-public-snapshot, .../testdata/vcr/ProjectRepos.yaml).
    pub fn has_archiving(self) -> bool {
        self >= ServerVersion::V8_19
    }

    /// The key a branch's default flag goes by: `default` in the 9.2 reference (`RestBranch`);
    /// `isDefault` in the branch listings of older servers that examples and captures show
    /// (an assumption for the versions between, not a fact from a capture of each).
    pub fn branch_default_key(self) -> &'static str {
        if self >= ServerVersion::V9_2 {
            "default"
        } else {
            "isDefault"
        }
    }

    /// Pull-request refs carry `type` (`BRANCH`/`TAG`) in the reference (`RestPullRequestRef`).
    /// Captures of a server up to 7.11.2 (2020 and 2021) have refs with `id`, `displayId`,
    /// `latestCommit` and `repository` only (sourcegraph/sourcegraph-public-snapshot,
    /// .../testdata/vcr/PullRequests-success.yaml, MergePullRequest-success 2.yaml). When `type`
    /// first appeared is not known, so only 5.16 leaves it out.
    pub fn has_ref_type(self) -> bool {
        self > ServerVersion::V5_16
    }

    /// The single pull request (`GET .../pull-requests/{id}`) of an older server may come without
    /// `properties` at all: a 2020 capture of a merged pull request with comments and tasks has
    /// none (sourcegraph/sourcegraph-public-snapshot, .../testdata/vcr/PullRequests-success.yaml).
    /// List pages keep them (`withProperties` defaults to true since 5.x: 5.10 WADL docs in
    /// chazmcgarvey/WebService-BitbucketServer, lib/WebService/BitbucketServer/Core/V1.pm).
    pub fn single_pr_has_properties(self) -> bool {
        self > ServerVersion::V5_16
    }

    /// Build statuses carry `duration`, `buildNumber`, `parent`, `ref`, `testResults`,
    /// `createdDate` and `updatedDate` from 7.14, when the repository-scoped builds resource came
    /// (its reference entry says "Since 7.14"); a 5.x status is `key`, `state`, `name`, `url`,
    /// `description` and `dateAdded` (the Stash-era build-status documentation).
    pub fn has_rich_build_status(self) -> bool {
        self >= ServerVersion::V7_21
    }

    /// The pending-comment review (REVIEW_COMMENTED, REVIEW_FINISHED, REVIEW_DISCARDED activities)
    /// is in the 7.17 `PullRequestAction` javadoc
    /// (https://docs.atlassian.com/bitbucket-server/javadoc/7.17.0/api/com/atlassian/bitbucket/pull/PullRequestAction.html);
    /// its request classes are "Since 7.7". A 5.16 server sends plain COMMENTED instead.
    pub fn has_review_activities(self) -> bool {
        self >= ServerVersion::V7_21
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, _) = self.triple();
        write!(f, "{a}.{b}")
    }
}

impl FromStr for ServerVersion {
    type Err = String;

    /// `5.16`, `7.21`, `8.19`, `9.2` or `10.3` (a patch level is accepted and ignored).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.trim().split('.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        ServerVersion::ALL
            .into_iter()
            .find(|v| {
                let (a, b, _) = v.triple();
                a.to_string() == major && b.to_string() == minor
            })
            .ok_or_else(|| {
                format!("{s:?} is not a simulated version (5.16, 7.21, 8.19, 9.2 or 10.3)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_print() {
        for v in ServerVersion::ALL {
            assert_eq!(v.to_string().parse::<ServerVersion>(), Ok(v));
        }
        assert_eq!("8.19.3".parse::<ServerVersion>(), Ok(ServerVersion::V8_19));
        assert!("6.0".parse::<ServerVersion>().is_err());
        assert_eq!(ServerVersion::V5_16.build_number(), "5016000");
        assert_eq!(ServerVersion::V10_3.build_number(), "10003000");
    }
}
