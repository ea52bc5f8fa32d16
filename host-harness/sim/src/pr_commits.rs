//! The commits of a pull request, as `GET .../pull-requests/{id}/commits` lists them: those its
//! source branch holds and its target does not, newest first, the newest being the source's
//! head. A pure function of the pull request's pair of head commits, as on a real server (a push
//! to the source branch changes the pair and the list): one to four commits, authored by the
//! pull request's author before it was opened, and the newest a merge of the target when there
//! are three or more.

use crate::history::{SimCommit, SimPerson, hash_str, mix};
use crate::world::SimPr;

/// The commits of `p`, newest first.
pub fn commits_of(p: &SimPr) -> Vec<SimCommit> {
    let h = hash_str(&format!("{}..{}", p.to_commit, p.from_commit));
    let count = 1 + (h % 4) as usize;
    let ids: Vec<String> = (0..count)
        .map(|i| {
            if i == 0 {
                p.from_commit.clone()
            } else {
                let r = mix(h.wrapping_add(i as u64));
                format!(
                    "{:016x}{:016x}{:08x}",
                    mix(r),
                    mix(r ^ 1),
                    mix(r ^ 2) as u32
                )
            }
        })
        .collect();
    let author = SimPerson {
        name: p.author.clone(),
        email: format!("{}@sim.example", p.author),
        slug: Some(p.author.clone()),
    };
    (0..count)
        .map(|i| {
            let mut parents = vec![ids.get(i + 1).unwrap_or(&p.to_commit).clone()];
            if i == 0 && count >= 3 {
                parents.push(p.to_commit.clone());
            }
            let at = p.created - (i as i64 + 1) * 3_600_000;
            SimCommit {
                id: ids[i].clone(),
                parents,
                author: author.clone(),
                author_time: at - 60_000,
                committer: author.clone(),
                commit_time: at,
                // The body carries the source canary, as the default branch's commits do.
                message: format!(
                    "Work on #{} step {}\n\nDetails:\n    SIM-SOURCE-LINE let pr = {};",
                    p.id,
                    count - i,
                    p.id
                ),
            }
        })
        .collect()
}

/// The earliest author time of `p`'s commits: its `first_commit_at`.
pub fn first_commit_at(p: &SimPr) -> Option<i64> {
    commits_of(p).iter().map(|c| c.author_time).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(from: &str) -> SimPr {
        SimPr {
            id: 3,
            version: 0,
            title: "t".into(),
            state: "OPEN",
            draft: false,
            author: "ada".into(),
            reviewers: vec![],
            created: 1_700_000_000_000,
            updated: 1_700_000_000_000,
            closed: None,
            branch: "feature".into(),
            fork: None,
            from_commit: from.into(),
            to_commit: "0".repeat(40),
            activities: vec![],
            files: vec![],
            comments: 0,
        }
    }

    #[test]
    fn the_newest_commit_is_the_source_head_and_the_list_follows_the_pair() {
        let mut sizes = std::collections::BTreeSet::new();
        for i in 0..40u32 {
            let p = pr(&format!("{i:040x}"));
            let commits = commits_of(&p);
            assert_eq!(commits[0].id, p.from_commit);
            assert_eq!(commits_of(&p), commits, "a pure function of the pair");
            assert!(
                commits
                    .iter()
                    .all(|c| c.id.len() == 40 && c.author_time < p.created)
            );
            assert_eq!(
                commits.last().map(|c| c.parents[0].clone()),
                Some(p.to_commit.clone())
            );
            assert_eq!(first_commit_at(&p), commits.last().map(|c| c.author_time));
            sizes.insert(commits.len());
        }
        assert_eq!(sizes.len(), 4, "one to four commits: {sizes:?}");
    }
}
