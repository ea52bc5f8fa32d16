//! The simulator's generated Bitbucket: users, projects, repositories, pull requests with
//! reviewers, activities and diffs that agree with each other, and the ground truth a correct
//! sync must reproduce. Everything derives from a seed.
//!
//! Beside the normal projects it holds what real instances hold and a sync must not miss:
//! - two personal projects (`~USER1`, `~USER2`), which `GET /projects` does not list: in the
//!   first a fork of `P1/repo-1` (pull requests into `P1/repo-1` come from it, and it has pull
//!   requests of its own), in the second a personal repository with pull requests;
//! - an archived repository with pull requests (servers before 8.0 have no archiving, and show it
//!   as an ordinary repository).

use crate::history::History;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Size of the generated world.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    /// Seed.
    pub seed: u64,
    /// Normal projects.
    pub projects: usize,
    /// Repositories per project.
    pub repos_per_project: usize,
    /// Pull requests per repository.
    pub prs_per_repo: usize,
    /// Users.
    pub users: usize,
}

impl Default for WorldSpec {
    fn default() -> Self {
        Self {
            seed: 7,
            projects: 3,
            repos_per_project: 3,
            prs_per_repo: 40,
            users: 12,
        }
    }
}

/// Start of simulated time (epoch ms).
pub const EPOCH: i64 = 1_760_000_000_000;
const MINUTE: i64 = 60_000;

/// One activity.
#[derive(Debug, Clone)]
pub struct Activity {
    /// Id.
    pub id: u64,
    /// Time.
    pub at: i64,
    /// Who.
    pub user: String,
    /// Action.
    pub action: &'static str,
}

/// One changed file of a diff.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// Path before (`None`: added).
    pub source: Option<String>,
    /// Path after (`None`: deleted).
    pub destination: Option<String>,
    /// Lines added.
    pub added: u32,
    /// Lines removed.
    pub removed: u32,
}

/// A pull request as the simulator holds it.
#[derive(Debug, Clone)]
pub struct SimPr {
    /// Id (ids skip, as on real servers).
    pub id: u64,
    /// Version.
    pub version: u32,
    /// Title.
    pub title: String,
    /// `OPEN`, `MERGED`, `DECLINED`.
    pub state: &'static str,
    /// Draft.
    pub draft: bool,
    /// Author slug.
    pub author: String,
    /// Reviewers and their status.
    pub reviewers: Vec<(String, &'static str)>,
    /// Created.
    pub created: i64,
    /// Updated.
    pub updated: i64,
    /// Closed.
    pub closed: Option<i64>,
    /// Source branch.
    pub branch: String,
    /// Source repository when a fork: (project key, slug).
    pub fork: Option<(String, String)>,
    /// Source commit.
    pub from_commit: String,
    /// Target commit.
    pub to_commit: String,
    /// Activities, oldest first.
    pub activities: Vec<Activity>,
    /// The diff.
    pub files: Vec<FileChange>,
    /// Comments.
    pub comments: u32,
}

/// A repository.
#[derive(Debug, Clone)]
pub struct SimRepo {
    /// Project key.
    pub project: String,
    /// Slug.
    pub slug: String,
    /// Id.
    pub id: u64,
    /// Fork origin.
    pub origin: Option<(String, String)>,
    /// Archived (Bitbucket 8.0+).
    pub archived: bool,
    /// Pull requests.
    pub prs: Vec<SimPr>,
    /// Its commits and default branch.
    pub history: History,
}

impl SimRepo {
    /// Whether it lives in a personal project.
    pub fn personal(&self) -> bool {
        self.project.starts_with('~')
    }
}

/// Repositories generated from the seed kept at once (those being synced at the moment), so that
/// the requests of one repository's pass do not generate it again each time.
const RECENT: usize = 64;

/// Where the repositories beyond the normal projects' live (see the module documentation).
const EXTRAS: usize = 3;

/// Latest time a generated pull request can have been updated: created within 60 days of
/// [`EPOCH`], then at most four steps of under 600 minutes each.
const GENERATED_UNTIL: i64 = EPOCH + (60 * 24 * 60 + 4 * 600) * MINUTE;

/// The world: its users and projects, and its repositories, which are generated from the seed
/// when asked for (a repository's pull requests depend only on the seed and the repository's
/// place), so that an instance of 50,000 repositories costs no more memory than one of ten.
/// Repositories changed since ([`World::touch`]) are kept, and the few asked for last.
#[derive(Debug, Clone)]
pub struct World {
    /// What it was generated from.
    pub spec: WorldSpec,
    /// User slugs (the last is a service account).
    pub users: Vec<String>,
    /// Project keys (personal ones start with `~`).
    pub projects: Vec<String>,
    /// Repositories changed since they were generated, by index.
    edited: HashMap<usize, Arc<SimRepo>>,
    /// Repositories deleted, by index: no listing or request finds them.
    deleted: std::collections::HashSet<usize>,
    /// Repositories generated last, newest at the back.
    recent: VecDeque<(usize, Arc<SimRepo>)>,
    /// Next activity id (of activities added after generation).
    pub next_activity: u64,
    /// Simulated clock: later than any generated update.
    pub clock: i64,
}

fn hex(rng: &mut fastrand::Rng) -> String {
    (0..40)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Parses `{prefix}{n}` with `n` ≥ 1.
fn numbered(s: &str, prefix: &str) -> Option<usize> {
    let n: usize = s.strip_prefix(prefix)?.parse().ok()?;
    (n >= 1 && s == format!("{prefix}{n}")).then_some(n)
}

impl World {
    /// The world for `spec` (nothing is generated until asked for).
    pub fn generate(spec: &WorldSpec) -> World {
        let spec = WorldSpec {
            projects: spec.projects.max(1),
            repos_per_project: spec.repos_per_project.max(1),
            users: spec.users.max(3),
            ..spec.clone()
        };
        let mut users: Vec<String> = (1..=spec.users).map(|i| format!("user{i}")).collect();
        users.push("ci-bot".into());
        let mut projects: Vec<String> = (1..=spec.projects).map(|i| format!("P{i}")).collect();
        projects.push(format!("~{}", users[0].to_uppercase()));
        projects.push(format!("~{}", users[1].to_uppercase()));
        World {
            spec,
            users,
            projects,
            edited: HashMap::new(),
            deleted: std::collections::HashSet::new(),
            recent: VecDeque::new(),
            next_activity: 1 << 40,
            clock: GENERATED_UNTIL,
        }
    }

    /// Repositories in the normal projects.
    fn normal(&self) -> usize {
        self.spec.projects * self.spec.repos_per_project
    }

    /// How many repositories there are.
    pub fn repo_count(&self) -> usize {
        self.normal() + EXTRAS
    }

    /// How many pull requests there are, as generated.
    pub fn pr_count(&self) -> usize {
        self.normal() * self.spec.prs_per_repo + EXTRAS * self.spec.prs_per_repo.div_ceil(4)
    }

    /// The personal project of the `n`th user (0-based).
    fn personal(&self, n: usize) -> String {
        format!("~{}", self.users[n].to_uppercase())
    }

    /// Repository `i` without its pull requests: where it lives and what it is.
    fn repo_meta(&self, i: usize) -> SimRepo {
        let normal = self.normal();
        let id = 101 + i as u64;
        let (project, slug, origin, archived) = match i.checked_sub(normal) {
            None => (
                format!("P{}", i / self.spec.repos_per_project + 1),
                format!("repo-{}", i % self.spec.repos_per_project + 1),
                None,
                false,
            ),
            // A personal fork of the first repository: PRs into P1/repo-1 come from it.
            Some(0) => (
                self.personal(0),
                "repo-1".to_owned(),
                Some(("P1".to_owned(), "repo-1".to_owned())),
                false,
            ),
            Some(1) => (self.personal(1), "notes".to_owned(), None, false),
            Some(_) => (
                format!("P{}", self.spec.projects),
                "legacy".to_owned(),
                None,
                true,
            ),
        };
        SimRepo {
            project,
            slug,
            id,
            origin,
            archived,
            prs: Vec::new(),
            history: History::default(),
        }
    }

    /// The index of the one archived repository.
    pub fn archived_index(&self) -> usize {
        self.normal() + 2
    }

    /// Whether repository `i` is archived (without generating it).
    pub fn is_archived(&self, i: usize) -> bool {
        i == self.archived_index()
    }

    /// The index of `project/slug`, if it exists (not deleted, and not renamed away from that
    /// name).
    pub fn repo_index(&self, project: &str, slug: &str) -> Option<usize> {
        let found = self.generated_index(project, slug).or_else(|| {
            self.edited
                .iter()
                .find(|(_, r)| r.project == project && r.slug == slug)
                .map(|(i, _)| *i)
        })?;
        let current = self.edited.get(&found);
        let named = current.is_none_or(|r| r.project == project && r.slug == slug);
        (named && self.is_live(found)).then_some(found)
    }

    /// Whether repository `i` exists (it was not deleted).
    pub fn is_live(&self, i: usize) -> bool {
        !self.deleted.contains(&i)
    }

    /// Renames repository `i` to `slug` (its id stays, as a rename keeps it on a real server);
    /// returns the repository before and after (`None`: no such repository).
    pub fn rename_repo(&mut self, i: usize, slug: &str) -> Option<(Arc<SimRepo>, Arc<SimRepo>)> {
        if i >= self.repo_count() || !self.is_live(i) {
            return None;
        }
        let before = self.repo(i);
        let mut after = (*before).clone();
        after.slug = slug.to_owned();
        let after = Arc::new(after);
        self.recent.retain(|(n, _)| *n != i);
        self.edited.insert(i, Arc::clone(&after));
        Some((before, after))
    }

    /// Deletes repository `i`: it is listed no more, and requests for it answer 404.
    pub fn delete_repo(&mut self, i: usize) {
        self.deleted.insert(i);
    }

    /// The index of `project/slug` as generated (before any rename).
    fn generated_index(&self, project: &str, slug: &str) -> Option<usize> {
        let normal = self.normal();
        if let (Some(p), Some(r)) = (numbered(project, "P"), numbered(slug, "repo-"))
            && p <= self.spec.projects
            && r <= self.spec.repos_per_project
        {
            return Some((p - 1) * self.spec.repos_per_project + r - 1);
        }
        (0..EXTRAS).map(|e| normal + e).find(|&i| {
            let m = self.repo_meta(i);
            m.project == project && m.slug == slug
        })
    }

    /// The indices of the repositories of `project`, in listing order.
    pub fn project_repos(&self, project: &str) -> Vec<usize> {
        let normal = self.normal();
        let mut out: Vec<usize> = match numbered(project, "P") {
            Some(p) if p <= self.spec.projects => {
                let first = (p - 1) * self.spec.repos_per_project;
                (first..first + self.spec.repos_per_project).collect()
            }
            _ => Vec::new(),
        };
        out.extend((normal..normal + EXTRAS).filter(|&i| self.repo_meta(i).project == project));
        out.retain(|&i| self.is_live(i));
        out
    }

    /// Repository `i` with its pull requests, as it is now: changed, generated a moment ago, or
    /// generated afresh (and kept among the recent ones). Valid indices are below
    /// [`World::repo_count`] (or found with [`World::repo_index`]); one past them names the last
    /// (archived) repository again, it never panics.
    pub fn repo(&mut self, i: usize) -> Arc<SimRepo> {
        if let Some(r) = self.edited.get(&i) {
            return Arc::clone(r);
        }
        if let Some((_, r)) = self.recent.iter().find(|(n, _)| *n == i) {
            return Arc::clone(r);
        }
        let r = Arc::new(self.generate_repo(i));
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((i, Arc::clone(&r)));
        r
    }

    /// Repository `i` as it is now, without keeping it (for reading the whole world).
    pub fn repo_now(&self, i: usize) -> Arc<SimRepo> {
        match self.edited.get(&i) {
            Some(r) => Arc::clone(r),
            None => Arc::new(self.generate_repo(i)),
        }
    }

    /// Every repository as it is now, one at a time.
    pub fn repos(&self) -> impl Iterator<Item = Arc<SimRepo>> + '_ {
        (0..self.repo_count())
            .filter(|&i| self.is_live(i))
            .map(|i| self.repo_now(i))
    }

    /// Generates repository `i` from the seed alone: the same seed and place always give the
    /// same pull requests.
    fn generate_repo(&self, i: usize) -> SimRepo {
        let mut repo = self.repo_meta(i);
        let mut rng = fastrand::Rng::with_seed(
            self.spec
                .seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i as u64),
        );
        // The extra repositories have fewer pull requests than the ordinary ones.
        let count = if i < self.normal() {
            self.spec.prs_per_repo
        } else {
            self.spec.prs_per_repo.div_ceil(4)
        };
        // The history has a generator of its own, so that the pull requests are what they were
        // before repositories had commits.
        let history_seed =
            self.spec.seed ^ 0x5eed_c0de_0000_0000 ^ (i as u64).wrapping_mul(0x100_0000_01b3);
        let humans = &self.users[..self.users.len().saturating_sub(1)];
        repo.history = History::generate(history_seed, humans, EPOCH - 90 * 24 * 60 * MINUTE);
        // Activity ids are unique across the world: each repository has its own range.
        let mut activities = ((i as u64) + 1) << 20;
        let mut id = 0u64;
        for n in 0..count {
            id += 1 + u64::from(rng.u32(0..4) == 0);
            let fork = (i == 0 && n % 5 == 0).then(|| (self.personal(0), "repo-1".to_string()));
            repo.prs
                .push(self.new_pr(&mut rng, &mut activities, id, fork));
        }
        repo
    }

    fn new_pr(
        &self,
        rng: &mut fastrand::Rng,
        activity_ids: &mut u64,
        id: u64,
        fork: Option<(String, String)>,
    ) -> SimPr {
        let humans = self.users.len() - 1;
        let author = self.users[rng.usize(0..humans)].clone();
        let created = EPOCH + i64::from(rng.u32(0..60 * 24 * 60)) * MINUTE;
        let mut reviewers: Vec<(String, &'static str)> = Vec::new();
        for _ in 0..rng.usize(1..4) {
            let r = self.users[rng.usize(0..humans)].clone();
            if r != author && !reviewers.iter().any(|(u, _)| *u == r) {
                reviewers.push((r, "UNAPPROVED"));
            }
        }
        let files = (0..rng.usize(1..6))
            .map(|f| {
                let kind = rng.u32(0..10);
                let path = format!("src/module{f}/file{}.rs", rng.u32(0..1000));
                FileChange {
                    source: (kind != 0).then(|| {
                        if kind == 1 {
                            format!("old/{path}")
                        } else {
                            path.clone()
                        }
                    }),
                    destination: (kind != 9).then(|| path.clone()),
                    added: if kind == 9 { 0 } else { rng.u32(0..120) },
                    removed: if kind == 0 { 0 } else { rng.u32(0..60) },
                }
            })
            .collect();
        let mut pr = SimPr {
            id,
            version: 0,
            title: format!(
                "Change {id}: {}",
                ["fix", "feature", "refactor", "docs"][rng.usize(0..4)]
            ),
            state: "OPEN",
            draft: rng.u32(0..10) == 0,
            author: author.clone(),
            reviewers,
            created,
            updated: created,
            closed: None,
            branch: format!("feature/{id}-{}", rng.u32(0..10_000)),
            fork,
            from_commit: hex(rng),
            to_commit: hex(rng),
            activities: Vec::new(),
            files,
            comments: 0,
        };
        let mut push = |pr: &mut SimPr, at: i64, user: &str, action: &'static str| {
            push_activity(pr, activity_ids, at, user, action)
        };
        push(&mut pr, created, &author, "OPENED");
        let mut t = created;
        for i in 0..pr.reviewers.len() {
            t += i64::from(rng.u32(1..600)) * MINUTE;
            let who = pr.reviewers[i].0.clone();
            match rng.u32(0..4) {
                0 => {
                    // A comment published with the pending-comment review on servers that have
                    // it (rendered as COMMENTED on older ones; see `version`).
                    let action = if rng.bool() {
                        "REVIEW_COMMENTED"
                    } else {
                        "COMMENTED"
                    };
                    push(&mut pr, t, &who, action);
                    pr.comments += 1;
                }
                1 => {
                    push(&mut pr, t, &who, "REVIEWED");
                    pr.reviewers[i].1 = "NEEDS_WORK";
                }
                2 => {
                    push(&mut pr, t, &who, "APPROVED");
                    pr.reviewers[i].1 = "APPROVED";
                }
                _ => {}
            }
        }
        match rng.u32(0..3) {
            0 => {}
            1 => {
                t += i64::from(rng.u32(1..600)) * MINUTE;
                let merger = pr
                    .reviewers
                    .first()
                    .map(|r| r.0.clone())
                    .unwrap_or_else(|| author.clone());
                push(&mut pr, t, &merger, "MERGED");
                pr.state = "MERGED";
                pr.closed = Some(t);
            }
            _ => {
                t += i64::from(rng.u32(1..600)) * MINUTE;
                push(&mut pr, t, &author, "DECLINED");
                pr.state = "DECLINED";
                pr.closed = Some(t);
            }
        }
        pr.updated = t;
        pr.version = u32::try_from(pr.activities.len()).unwrap_or(u32::MAX);
        pr
    }

    /// Changes an open pull request as a user would (an approval or a comment) at simulated time
    /// `now`; returns the event key of the webhook Bitbucket would send and the reviewer affected
    /// (`None`: repository `repo` has no pull request `pr`, by place).
    pub fn touch(
        &mut self,
        repo: usize,
        pr: usize,
        now: i64,
        rng: &mut fastrand::Rng,
    ) -> Option<(&'static str, Option<String>)> {
        let current = self.repo(repo);
        let mut p = current.prs.get(pr)?.clone();
        let mut ids = self.next_activity;
        let key = match (rng.u32(0..3), p.reviewers.first().cloned()) {
            (0, Some((who, _))) => {
                push_activity(&mut p, &mut ids, now, &who, "APPROVED");
                p.reviewers[0].1 = "APPROVED";
                ("pr:reviewer:approved", Some(who))
            }
            (1, _) => {
                p.version += 1;
                p.title = format!("{} (edited)", p.title);
                ("pr:modified", None)
            }
            _ => {
                let who = self.users[rng.usize(0..self.users.len() - 1)].clone();
                push_activity(&mut p, &mut ids, now, &who, "COMMENTED");
                p.comments += 1;
                ("pr:comment:added", None)
            }
        };
        self.next_activity = ids;
        p.updated = now;
        let mut changed = (*current).clone();
        changed.prs[pr] = p;
        self.recent.retain(|(n, _)| *n != repo);
        self.edited.insert(repo, Arc::new(changed));
        Some(key)
    }

    /// Pushes a commit to the source branch of pull request `pr` (by place) of repository `repo`
    /// at simulated time `now`: its head commit changes, and with it its commits (see
    /// [`crate::pr_commits`]), its version and its update time. Nothing when there is no such
    /// pull request.
    pub fn push_to_pull_request(&mut self, repo: usize, pr: usize, now: i64) {
        if repo >= self.repo_count() {
            return;
        }
        let mut changed = (*self.repo(repo)).clone();
        let Some(p) = changed.prs.get_mut(pr) else {
            return;
        };
        let h = crate::history::hash_str(&format!("{}@{now}", p.from_commit));
        p.from_commit = format!(
            "{:016x}{:016x}{:08x}",
            crate::history::mix(h),
            crate::history::mix(h ^ 1),
            crate::history::mix(h ^ 2) as u32
        );
        p.version += 1;
        p.updated = now;
        self.recent.retain(|(n, _)| *n != repo);
        self.edited.insert(repo, Arc::new(changed));
    }

    /// Pushes `n` commits onto repository `repo`'s default branch at simulated time `now`
    /// (nothing when there is no such repository).
    pub fn push_commits(&mut self, repo: usize, n: usize, now: i64) {
        self.edit_history(repo, |h, users| h.push(n, users, now));
    }

    /// Empties repository `repo`: no commit, branch or tag (its pull requests stay).
    pub fn empty_repo(&mut self, repo: usize) {
        self.edit_history(repo, |h, _| h.clear());
    }

    /// Force-pushes repository `repo`'s default branch: its tip moves `back` commits back and `n`
    /// new commits are pushed on it, at simulated time `now`.
    pub fn force_push(&mut self, repo: usize, back: usize, n: usize, now: i64) {
        self.edit_history(repo, |h, users| h.force_push(back, n, users, now));
    }

    fn edit_history(&mut self, repo: usize, f: impl FnOnce(&mut History, &[String])) {
        if repo >= self.repo_count() {
            return;
        }
        let mut changed = (*self.repo(repo)).clone();
        let humans = &self.users[..self.users.len().saturating_sub(1)];
        f(&mut changed.history, humans);
        self.recent.retain(|(n, _)| *n != repo);
        self.edited.insert(repo, Arc::new(changed));
    }

    /// The pull request's ground truth, in the shape of a `bbdc sync --jsonl` line (the fields a
    /// correct sync must reproduce exactly).
    pub fn truth(repo: &SimRepo, p: &SimPr) -> Value {
        let reviews: Vec<Value> = p
            .activities
            .iter()
            .filter_map(|a| {
                let state = match a.action {
                    "APPROVED" => "approved",
                    "UNAPPROVED" => "unapproved",
                    "REVIEWED" => "needs_work",
                    "COMMENTED" | "REVIEW_COMMENTED" => "commented",
                    _ => return None,
                };
                Some(json!({"user": a.user, "state": state, "at": a.at}))
            })
            .collect();
        let first = |states: &[&str]| {
            p.activities
                .iter()
                .filter(|a| a.user != p.author && states.contains(&a.action))
                .map(|a| a.at)
                .min()
        };
        let merged = p.activities.iter().find(|a| a.action == "MERGED");
        json!({
            "type": "pull_request",
            "id": p.id, "project_key": repo.project, "repo_slug": repo.slug, "version": p.version,
            "title": p.title, "state": p.state, "draft": p.draft, "author": p.author,
            "created_at": p.created, "updated_at": p.updated, "closed_at": p.closed,
            "merged_at": merged.map(|a| a.at), "merged_by": merged.map(|a| a.user.clone()),
            "merge_commit": merged.map(|_| merge_commit(p)),
            "source_branch": p.branch, "target_branch": "main",
            "additions": p.files.iter().map(|f| u64::from(f.added)).sum::<u64>(),
            "deletions": p.files.iter().map(|f| u64::from(f.removed)).sum::<u64>(),
            "files_changed": p.files.len(), "diff_truncated": false,
            "reviewers": p.reviewers.iter().map(|(u, s)| json!({"user": u, "status": s})).collect::<Vec<_>>(),
            "reviews": reviews,
            "first_review_at": first(&["APPROVED", "REVIEWED", "COMMENTED", "REVIEW_COMMENTED"]),
            "first_approval_at": first(&["APPROVED"]),
            "source_repo": p.fork.as_ref().map(|(k, s)| json!({"project_key": k, "slug": s})),
        })
    }
}

/// Appends an activity with the next id of `ids`.
fn push_activity(pr: &mut SimPr, ids: &mut u64, at: i64, user: &str, action: &'static str) {
    pr.activities.push(Activity {
        id: *ids,
        at,
        user: user.to_owned(),
        action,
    });
    *ids += 1;
}

/// The merge commit the simulator reports for a merged pull request.
pub fn merge_commit(p: &SimPr) -> String {
    format!("{:040x}", p.id * 7919 + u64::from(p.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(projects: usize, repos_per_project: usize) -> WorldSpec {
        WorldSpec {
            seed: 5,
            projects,
            repos_per_project,
            prs_per_repo: 8,
            users: 6,
        }
    }

    #[test]
    fn a_repository_depends_only_on_the_seed_and_its_place() {
        let mut small = World::generate(&spec(3, 4));
        let mut large = World::generate(&spec(3, 4));
        // Asked for in another order, and past the recent ones' bound.
        for i in (0..small.repo_count()).rev() {
            large.repo(i);
        }
        for i in 0..small.repo_count() {
            let (a, b) = (small.repo(i), large.repo_now(i));
            assert_eq!((&a.project, &a.slug, a.id), (&b.project, &b.slug, b.id));
            let ids = |r: &SimRepo| {
                r.prs
                    .iter()
                    .map(|p| (p.id, p.title.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&a), ids(&b));
        }
        let other = World::generate(&WorldSpec {
            seed: 6,
            ..spec(3, 4)
        });
        assert_ne!(
            other.repo_now(0).prs[0].from_commit,
            small.repo(0).prs[0].from_commit
        );
    }

    #[test]
    fn places_names_and_counts_agree() {
        let w = World::generate(&spec(4, 5));
        assert_eq!(w.repo_count(), 4 * 5 + 3);
        let mut prs = 0;
        let mut activity_ids = std::collections::HashSet::new();
        for (i, r) in w.repos().enumerate() {
            assert_eq!(
                w.repo_index(&r.project, &r.slug),
                Some(i),
                "{}/{}",
                r.project,
                r.slug
            );
            assert!(w.project_repos(&r.project).contains(&i));
            assert_eq!(r.archived, w.is_archived(i));
            prs += r.prs.len();
            for a in r.prs.iter().flat_map(|p| &p.activities) {
                assert!(activity_ids.insert(a.id), "activity id {} twice", a.id);
            }
        }
        assert_eq!(prs, w.pr_count());
        assert_eq!(
            w.project_repos("P4").len(),
            5 + 1,
            "the archived repository lives in P4"
        );
        assert_eq!(w.project_repos("~USER1"), vec![20]);
        assert_eq!(w.repo_index("P5", "repo-1"), None);
        assert_eq!(w.repo_index("P1", "repo-6"), None);
        assert_eq!(w.repo_index("P01", "repo-1"), None);
        assert!(w.project_repos("P0").is_empty());
    }

    #[test]
    fn a_large_world_is_generated_only_where_asked() {
        let mut w = World::generate(&WorldSpec {
            prs_per_repo: 20,
            ..spec(2000, 25)
        });
        assert_eq!(w.repo_count(), 50_003);
        assert_eq!(w.pr_count(), 50_000 * 20 + 3 * 5);
        for i in (0..w.repo_count()).step_by(97) {
            assert_eq!(w.repo(i).prs.len(), if i < 50_000 { 20 } else { 5 });
        }
        assert!(w.recent.len() <= RECENT && w.edited.is_empty());
        assert_eq!(w.repo_index("P2000", "repo-25"), Some(49_999));
    }

    #[test]
    fn a_change_is_kept_and_later_than_anything_generated() {
        let mut w = World::generate(&spec(2, 2));
        let newest = w
            .repos()
            .flat_map(|r| r.prs.iter().map(|p| p.updated).collect::<Vec<_>>())
            .max();
        assert!(newest.is_some_and(|n| n < w.clock));
        let before = w.repo(1).prs[0].clone();
        let mut rng = fastrand::Rng::with_seed(1);
        w.clock += MINUTE;
        let now = w.clock;
        assert!(w.touch(1, 0, now, &mut rng).is_some());
        // Pushed out of the recent ones, still there.
        for i in 0..w.repo_count() {
            w.repo(i);
        }
        let after = w.repo_now(1).prs[0].clone();
        assert_eq!((after.id, after.updated), (before.id, now));
        assert_eq!(w.repo(1).prs[0].updated, now);
        assert!(w.touch(1, 999, now, &mut rng).is_none());
    }
}
