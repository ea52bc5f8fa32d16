//! [`RequestCounts`]: the requests the simulator answered, by kind of resource, and the response
//! body bytes they cost.

/// Requests answered, by kind of resource, and the bytes of the bodies answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Pull-request list pages (`.../pull-requests`).
    pub pull_request_lists: u64,
    /// Single pull requests (`.../pull-requests/{id}`).
    pub pull_requests: u64,
    /// Activity pages (`.../pull-requests/{id}/activities`).
    pub activities: u64,
    /// Diffs (`.../pull-requests/{id}/diff`).
    pub diffs: u64,
    /// Commit list pages (`.../commits`).
    pub commit_lists: u64,
    /// Pages of a pull request's commits (`.../pull-requests/{id}/commits`).
    pub pr_commit_lists: u64,
    /// Build-status pages of a commit (`/rest/build-status/1.0/commits/{id}`).
    pub build_lists: u64,
    /// Everything else: projects, repositories, users, server properties.
    pub other: u64,
    /// Response body bytes answered to the four pull-request kinds above: what a repository's
    /// pull requests cost the server and the connector.
    pub pull_request_bytes: u64,
    /// Response body bytes answered to everything else.
    pub other_bytes: u64,
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.pull_request_lists
            + self.pull_requests
            + self.activities
            + self.diffs
            + self.commit_lists
            + self.pr_commit_lists
            + self.build_lists
            + self.other
    }

    /// Every request's counts minus `before`'s: what happened between two readings.
    pub fn since(&self, before: &RequestCounts) -> RequestCounts {
        RequestCounts {
            pull_request_lists: self.pull_request_lists - before.pull_request_lists,
            pull_requests: self.pull_requests - before.pull_requests,
            activities: self.activities - before.activities,
            diffs: self.diffs - before.diffs,
            commit_lists: self.commit_lists - before.commit_lists,
            pr_commit_lists: self.pr_commit_lists - before.pr_commit_lists,
            build_lists: self.build_lists - before.build_lists,
            other: self.other - before.other,
            pull_request_bytes: self.pull_request_bytes - before.pull_request_bytes,
            other_bytes: self.other_bytes - before.other_bytes,
        }
    }

    /// Counts one request to `url` answered with `body_bytes` of body.
    pub(crate) fn count(&mut self, url: &str, body_bytes: u64) {
        let path = url.split('?').next().unwrap_or("").trim_end_matches('/');
        let mut seg = path.rsplit('/');
        let (last, before) = (seg.next().unwrap_or(""), seg.next().unwrap_or(""));
        let (counter, bytes) = match (before, last) {
            ("commits", _) if path.contains("/build-status/") => {
                (&mut self.build_lists, &mut self.other_bytes)
            }
            (_, "pull-requests") => (&mut self.pull_request_lists, &mut self.pull_request_bytes),
            ("pull-requests", _) => (&mut self.pull_requests, &mut self.pull_request_bytes),
            (_, "activities") => (&mut self.activities, &mut self.pull_request_bytes),
            (_, "diff") => (&mut self.diffs, &mut self.pull_request_bytes),
            (_, "commits") if path.contains("/pull-requests/") => {
                (&mut self.pr_commit_lists, &mut self.other_bytes)
            }
            (_, "commits") => (&mut self.commit_lists, &mut self.other_bytes),
            _ => (&mut self.other, &mut self.other_bytes),
        };
        *counter += 1;
        *bytes += body_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_kind() {
        let mut c = RequestCounts::default();
        let base = "/rest/api/1.0/projects/P/repos/r/pull-requests";
        c.count(&format!("{base}?state=ALL&limit=50"), 1000);
        c.count(&format!("{base}/7"), 200);
        c.count(&format!("{base}/7/activities?start=0"), 30);
        c.count(&format!("{base}/7/diff?contextLines=0"), 4);
        c.count("/rest/api/1.0/projects/P/repos/r/commits?until=abc", 9);
        c.count(&format!("{base}/7/commits?start=0&limit=25"), 5);
        c.count(
            &format!("/rest/build-status/1.0/commits/{:040}?limit=100", 0),
            3,
        );
        c.count("/rest/api/1.0/projects?limit=25", 50);
        c.count("/rest/api/1.0/projects/P/repos", 7);
        assert_eq!(
            c,
            RequestCounts {
                pull_request_lists: 1,
                pull_requests: 1,
                activities: 1,
                diffs: 1,
                commit_lists: 1,
                pr_commit_lists: 1,
                build_lists: 1,
                other: 2,
                pull_request_bytes: 1234,
                other_bytes: 74,
            }
        );
        assert_eq!(c.total(), 9);
        let before = c;
        c.count(&format!("{base}/8"), 100);
        assert_eq!(
            c.since(&before),
            RequestCounts {
                pull_requests: 1,
                pull_request_bytes: 100,
                ..RequestCounts::default()
            }
        );
    }
}
