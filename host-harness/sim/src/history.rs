//! A simulated repository's git history: commits with their parents, people, times and messages,
//! the default branch's tip, and what `GET .../commits?until=&since=` lists (the commits
//! reachable from `until` and not from `since`, newest first, as git and Bitbucket do).
//! Generated from a seed, with merges; [`History::push`] and [`History::force_push`] change it
//! as a developer would.

use std::collections::HashSet;

/// A commit's author or committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPerson {
    /// The name in the commit.
    pub name: String,
    /// The e-mail address in the commit.
    pub email: String,
    /// The Bitbucket user the server matches the identity to (`None`: no user has it, as for a
    /// build bot).
    pub slug: Option<String>,
}

/// One commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCommit {
    /// Its 40-hex-digit id.
    pub id: String,
    /// Its parents' ids: none for the root, two for a merge.
    pub parents: Vec<String>,
    /// Who wrote it.
    pub author: SimPerson,
    /// When (epoch ms).
    pub author_time: i64,
    /// Who committed it.
    pub committer: SimPerson,
    /// When (epoch ms).
    pub commit_time: i64,
    /// The whole message (several lines).
    pub message: String,
}

/// A repository's commits and its default branch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Every commit, in the order it was made (a force-push leaves the old ones here, off the
    /// branch, as a server keeps them until garbage collection).
    pub commits: Vec<SimCommit>,
    /// The default branch's tip (`None`: an empty repository).
    pub tip: Option<String>,
    /// Branches other than the default one (`main`), with the commit each points to.
    pub branches: Vec<(String, String)>,
    /// Tags: name, the commit, and an annotated tag's object hash.
    pub tags: Vec<SimTag>,
    /// Seeds the ids and choices of the commits made next.
    seed: u64,
    /// Commits made so far (the next id's place).
    made: u64,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTag {
    /// Its name.
    pub name: String,
    /// The commit it points to.
    pub target: String,
    /// The tag object's hash when it is annotated.
    pub object: Option<String>,
}

/// The default branch's name.
pub const DEFAULT_BRANCH: &str = "main";

/// A commit `listing` names that the history does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchCommit(pub String);

/// A well-mixed hash of a string (FNV-1a, then a SplitMix64 step): what the simulator derives
/// per-commit facts from, so that the same id always gives the same facts.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// A step of SplitMix64: the same input always gives the same well-mixed output.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl History {
    /// A history of 5 to 24 commits from `seed`, a merge every sixth, by `users` (and now and
    /// then a build bot no user matches), one every few hours from `from` (epoch ms).
    pub fn generate(seed: u64, users: &[String], from: i64) -> History {
        let mut h = History {
            seed,
            ..History::default()
        };
        let count = 5 + (mix(seed) % 20) as usize;
        let mut at = from;
        for n in 0..count {
            at += 1 + (mix(seed ^ n as u64) % (6 * 3_600_000)) as i64;
            if n % 6 == 5 {
                // A side commit off the branch three commits back, merged in.
                let base = h.first_parents().nth(2).map(|c| c.id.clone());
                let side = h.make(base.into_iter().collect(), users, at, "Side work");
                at += 60_000;
                let parents = h.tip.iter().cloned().chain([side.clone()]).collect();
                let merge = h.make(parents, users, at, "Merge branch 'feature'");
                h.tip = Some(merge);
                // The feature branch is kept after its merge, as they often are.
                h.branches.push((format!("feature/{n}"), side));
            } else {
                h.commit_on_tip(users, at);
            }
            if n % 4 == 3
                && let Some(target) = h.tip.clone()
            {
                let object = (n % 8 == 7)
                    .then(|| format!("{:040x}", u128::from(mix(seed ^ 0x7a6) ^ n as u64)));
                h.tags.push(SimTag {
                    name: format!("v0.{}", n / 4),
                    target,
                    object,
                });
            }
        }
        h
    }

    /// Makes a commit with `parents` (not moving the tip) and returns its id.
    fn make(&mut self, parents: Vec<String>, users: &[String], at: i64, title: &str) -> String {
        self.made += 1;
        let r = mix(self
            .seed
            .wrapping_add(self.made.wrapping_mul(0x2545_f491_4f6c_dd1d)));
        let id = format!(
            "{:016x}{:016x}{:08x}",
            mix(r),
            mix(r ^ 1),
            mix(r ^ 2) as u32
        );
        let author = match users.get((r % (users.len() as u64 + 1)) as usize) {
            Some(u) => SimPerson {
                name: u.clone(),
                email: format!("{u}@sim.example"),
                slug: Some(u.clone()),
            },
            None => SimPerson {
                name: "Build Bot".into(),
                email: "ci@build.example".into(),
                slug: None,
            },
        };
        self.commits.push(SimCommit {
            id: id.clone(),
            parents,
            committer: author.clone(),
            author,
            author_time: at - 60_000,
            commit_time: at,
            // The body below the first line carries the source canary the hygiene test looks
            // for: a connector keeps a commit's first line only.
            message: format!(
                "{title} {}\n\nWhat changed and why, over\nseveral lines:\n    SIM-SOURCE-LINE let x = {};",
                self.made, self.made
            ),
        });
        id
    }

    fn commit_on_tip(&mut self, users: &[String], at: i64) {
        let parents = self.tip.iter().cloned().collect();
        let id = self.make(parents, users, at, "Change");
        self.tip = Some(id);
    }

    /// Pushes `n` new commits onto the branch, the last at `at`.
    /// Empties the repository: no commit, branch or tag, as one created and never pushed to.
    pub fn clear(&mut self) {
        self.commits.clear();
        self.tip = None;
        self.branches.clear();
        self.tags.clear();
    }

    /// Pushes `n` commits onto the default branch (the first ones of an empty repository).
    pub fn push(&mut self, n: usize, users: &[String], at: i64) {
        for k in 0..n {
            self.commit_on_tip(users, at - (n - 1 - k) as i64 * 60_000);
        }
    }

    /// Rewrites the branch: its tip moves `back` commits back along first parents (to the root
    /// at most), and `n` new commits are pushed on it. The commits left behind stay in the
    /// history, off the branch.
    pub fn force_push(&mut self, back: usize, n: usize, users: &[String], at: i64) {
        let to = self.first_parents().nth(back).map(|c| c.id.clone());
        let to = to.or_else(|| self.first_parents().last().map(|c| c.id.clone()));
        self.tip = to;
        self.push(n, users, at);
    }

    /// The commit with `id`.
    pub fn get(&self, id: &str) -> Option<&SimCommit> {
        self.commits.iter().find(|c| c.id == id)
    }

    /// From the tip back along first parents.
    fn first_parents(&self) -> impl Iterator<Item = &SimCommit> {
        let mut next = self.tip.clone();
        std::iter::from_fn(move || {
            let c = self.get(next.as_deref()?)?;
            next = c.parents.first().cloned();
            Some(c)
        })
    }

    fn reachable(&self, from: &str) -> HashSet<&str> {
        let mut seen = HashSet::new();
        let mut todo = vec![from];
        while let Some(id) = todo.pop() {
            if let Some(c) = self.get(id)
                && seen.insert(c.id.as_str())
            {
                todo.extend(c.parents.iter().map(String::as_str));
            }
        }
        seen
    }

    /// The commits reachable from `until` (the tip when `None`) and not from `since`, newest
    /// first; a commit either names that the history does not have is an error.
    pub fn listing(
        &self,
        until: Option<&str>,
        since: Option<&str>,
    ) -> Result<Vec<&SimCommit>, NoSuchCommit> {
        let Some(until) = until.or(self.tip.as_deref()) else {
            return Ok(Vec::new());
        };
        for id in [Some(until), since].into_iter().flatten() {
            if self.get(id).is_none() {
                return Err(NoSuchCommit(id.to_owned()));
            }
        }
        let mut listed = self.reachable(until);
        if let Some(since) = since {
            for id in self.reachable(since) {
                listed.remove(id);
            }
        }
        Ok(self
            .commits
            .iter()
            .rev()
            .filter(|c| listed.contains(c.id.as_str()))
            .collect())
    }

    /// The default branch's commits, newest first: what a sync must end up with.
    pub fn branch(&self) -> Vec<&SimCommit> {
        self.listing(None, None).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<String> {
        vec!["alice".into(), "bob".into()]
    }

    #[test]
    fn a_generated_history_has_merges_and_lists_newest_first() {
        let h = History::generate(7, &users(), 0);
        assert_eq!(h, History::generate(7, &users(), 0), "the seed decides");
        let branch = h.branch();
        assert!(branch.len() >= 5);
        assert_eq!(Some(branch[0].id.as_str()), h.tip.as_deref());
        assert!(branch.iter().filter(|c| c.parents.is_empty()).count() == 1);
        let h = (0..50)
            .map(|s| History::generate(s, &users(), 0))
            .find(|h| h.commits.len() >= 6)
            .expect("a history long enough for a merge");
        assert!(h.branch().iter().any(|c| c.parents.len() == 2));
    }

    #[test]
    fn since_lists_only_what_is_new_and_a_force_push_leaves_commits_behind() {
        let mut h = History::generate(3, &users(), 0);
        let old_tip = h.tip.clone().expect("a tip");
        h.push(3, &users(), 1_000_000_000);
        let new = h.listing(None, Some(&old_tip)).expect("lists");
        assert_eq!(new.len(), 3);
        assert!(new[2].parents.contains(&old_tip));
        // Two back: the old tip is still an ancestor.
        let mut kept = h.clone();
        kept.force_push(2, 1, &users(), 2_000_000_000);
        assert!(kept.branch().iter().any(|c| c.id == old_tip));
        // Four back (the three pushed and the old tip): it is gone from the branch, and no
        // commit listed since it has it as a parent.
        h.force_push(4, 1, &users(), 2_000_000_000);
        assert!(h.branch().iter().all(|c| c.id != old_tip));
        assert!(h.get(&old_tip).is_some(), "kept off the branch");
        let gone = h.listing(None, Some(&old_tip)).expect("lists");
        assert_eq!(gone.len(), 1);
        assert!(gone.iter().all(|c| !c.parents.contains(&old_tip)));
        assert_eq!(
            h.listing(Some("f00"), None),
            Err(NoSuchCommit("f00".into()))
        );
    }
}
