//! Build statuses: what CI servers reported for a commit, as `GET /rest/build-status/1.0/commits/{id}`
//! lists them. Bitbucket keeps them per commit, for every repository holding it, so they are a
//! pure function of the commit id here: the same id always has the same builds, whichever
//! repository or pull request it was reached from. About one commit in five has none; the others
//! have one to three builds, in every state the reference names.

/// One build status of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBuild {
    /// Unique for the commit.
    pub key: String,
    /// Display name.
    pub name: String,
    /// `SUCCESSFUL`, `FAILED`, `INPROGRESS`, `CANCELLED` or `UNKNOWN`.
    pub state: &'static str,
    /// Where it can be seen.
    pub url: String,
    /// First reported (epoch ms).
    pub created: i64,
    /// Last changed (epoch ms).
    pub updated: i64,
    /// How long it ran (ms); none while it runs.
    pub duration: Option<i64>,
    /// The CI server's number.
    pub number: String,
    /// The plan it belongs to.
    pub parent: String,
    /// Test counts (passed, failed, skipped); unit builds only.
    pub tests: Option<(u32, u32, u32)>,
}

/// Every state of the reference's `RestBuildStatus.state`.
pub const STATES: [&str; 5] = ["SUCCESSFUL", "FAILED", "INPROGRESS", "CANCELLED", "UNKNOWN"];

/// The CI jobs that report builds.
const JOBS: [(&str, &str); 3] = [
    ("ci-unit", "Unit tests"),
    ("ci-integration", "Integration tests"),
    ("ci-package", "Package"),
];

/// Where the simulator's running builds (`INPROGRESS`) stand. Generated dates are years old;
/// a test of how a connector re-reads running builds moves them to the present, then lets them
/// finish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunningBuilds {
    /// As generated: running, with their old dates.
    #[default]
    AsGenerated,
    /// Running, started and last changed at this time (epoch ms).
    Since(i64),
    /// Finished: every running build is now `SUCCESSFUL`, changed at this time (epoch ms).
    FinishedAt(i64),
}

/// The build statuses of commit `id` with its running builds where `running` says.
pub fn builds_under(id: &str, running: RunningBuilds) -> Vec<SimBuild> {
    let mut builds = builds_of(id);
    for b in builds.iter_mut().filter(|b| b.state == "INPROGRESS") {
        match running {
            RunningBuilds::AsGenerated => {}
            RunningBuilds::Since(at) => {
                b.created = at;
                b.updated = at;
            }
            RunningBuilds::FinishedAt(at) => {
                b.state = "SUCCESSFUL";
                b.created = at - 600_000;
                b.updated = at;
                b.duration = Some(600_000);
            }
        }
    }
    builds.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.key.cmp(&b.key)));
    builds
}

/// The build statuses of commit `id`, newest first (as the server lists them).
pub fn builds_of(id: &str) -> Vec<SimBuild> {
    let h = crate::history::hash_str(id);
    let count = match h % 5 {
        0 => 0,
        n => 1 + (n as usize % 3),
    };
    let base = 1_600_000_000_000 + (h >> 24) as i64 % 150_000_000_000;
    let mut builds: Vec<SimBuild> = (0..count)
        .map(|i| {
            let (key, name) = JOBS[i];
            let state = STATES[((h >> (8 + 3 * i)) % STATES.len() as u64) as usize];
            let created = base + i as i64 * 30_000;
            let running = state == "INPROGRESS";
            let duration = (!running).then_some(60_000 + ((h >> (20 + i)) % 900_000) as i64);
            SimBuild {
                key: key.to_owned(),
                name: name.to_owned(),
                state,
                url: format!("https://ci.sim.example/{key}/{}", &id[..id.len().min(12)]),
                created,
                updated: created + duration.unwrap_or(5_000),
                duration,
                number: format!("{}", 100 + (h >> 40) % 900),
                parent: key.to_owned(),
                tests: (key == "ci-unit" && !running).then(|| {
                    let failed = u32::from(state == "FAILED") * (1 + (h % 4) as u32);
                    (200 + (h % 50) as u32, failed, (h % 3) as u32)
                }),
            }
        })
        .collect();
    builds.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.key.cmp(&b.key)));
    builds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_stable_per_commit_and_cover_every_state_and_commits_without_any() {
        let ids: Vec<String> = (0..400u64).map(|i| format!("{:040x}", i * 7919)).collect();
        assert_eq!(builds_of(&ids[3]), builds_of(&ids[3]));
        let all: Vec<SimBuild> = ids.iter().flat_map(|id| builds_of(id)).collect();
        for s in STATES {
            assert!(all.iter().any(|b| b.state == s), "no build is {s}");
        }
        assert!(ids.iter().any(|id| builds_of(id).is_empty()));
        assert!(ids.iter().any(|id| builds_of(id).len() == 3));
        assert!(
            all.iter()
                .all(|b| (b.state == "INPROGRESS") == b.duration.is_none())
        );
    }
}
