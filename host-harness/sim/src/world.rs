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

use serde_json::{Value, json};

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
}

impl SimRepo {
    /// Whether it lives in a personal project.
    pub fn personal(&self) -> bool {
        self.project.starts_with('~')
    }
}

/// The world.
#[derive(Debug, Clone)]
pub struct World {
    /// User slugs (the last is a service account).
    pub users: Vec<String>,
    /// Project keys (personal ones start with `~`).
    pub projects: Vec<String>,
    /// Repositories.
    pub repos: Vec<SimRepo>,
    /// Next activity id.
    pub next_activity: u64,
    /// Simulated clock.
    pub clock: i64,
}

fn hex(rng: &mut fastrand::Rng) -> String {
    (0..40)
        .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
        .collect()
}

impl World {
    /// Generates the world for `spec`.
    pub fn generate(spec: &WorldSpec) -> World {
        let mut rng = fastrand::Rng::with_seed(spec.seed);
        let mut users: Vec<String> = (1..=spec.users.max(3))
            .map(|i| format!("user{i}"))
            .collect();
        users.push("ci-bot".into());
        let mut projects: Vec<String> = (1..=spec.projects.max(1))
            .map(|i| format!("P{i}"))
            .collect();
        let personal = format!("~{}", users[0].to_uppercase());
        let personal2 = format!("~{}", users[1].to_uppercase());
        projects.push(personal.clone());
        projects.push(personal2.clone());
        let mut world = World {
            users,
            projects,
            repos: Vec::new(),
            next_activity: 1,
            clock: EPOCH,
        };
        let mut repo_id = 100;
        for p in 0..spec.projects.max(1) {
            for r in 0..spec.repos_per_project.max(1) {
                repo_id += 1;
                world.repos.push(SimRepo {
                    project: format!("P{}", p + 1),
                    slug: format!("repo-{}", r + 1),
                    id: repo_id,
                    origin: None,
                    archived: false,
                    prs: Vec::new(),
                });
            }
        }
        let last_project = format!("P{}", spec.projects.max(1));
        let extras = [
            // A personal fork of the first repository: PRs into P1/repo-1 come from it.
            (
                personal.clone(),
                "repo-1",
                Some(("P1".to_string(), "repo-1".to_string())),
                false,
            ),
            (personal2, "notes", None, false),
            (last_project, "legacy", None, true),
        ];
        for (project, slug, origin, archived) in extras {
            repo_id += 1;
            world.repos.push(SimRepo {
                project,
                slug: slug.into(),
                id: repo_id,
                origin,
                archived,
                prs: Vec::new(),
            });
        }
        // The extra repositories have fewer pull requests than the ordinary ones.
        let normal = spec.projects.max(1) * spec.repos_per_project.max(1);
        for ri in 0..world.repos.len() {
            let count = if ri < normal {
                spec.prs_per_repo
            } else {
                spec.prs_per_repo.div_ceil(4)
            };
            let mut id = 0u64;
            for n in 0..count {
                id += 1 + u64::from(rng.u32(0..4) == 0);
                let fork =
                    (ri == 0 && n % 5 == 0).then(|| (personal.clone(), "repo-1".to_string()));
                let pr = world.new_pr(&mut rng, id, fork);
                world.repos[ri].prs.push(pr);
            }
        }
        world
    }

    fn new_pr(
        &mut self,
        rng: &mut fastrand::Rng,
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
        self.push_activity(&mut pr, created, &author, "OPENED");
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
                    self.push_activity(&mut pr, t, &who, action);
                    pr.comments += 1;
                }
                1 => {
                    self.push_activity(&mut pr, t, &who, "REVIEWED");
                    pr.reviewers[i].1 = "NEEDS_WORK";
                }
                2 => {
                    self.push_activity(&mut pr, t, &who, "APPROVED");
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
                self.push_activity(&mut pr, t, &merger, "MERGED");
                pr.state = "MERGED";
                pr.closed = Some(t);
            }
            _ => {
                t += i64::from(rng.u32(1..600)) * MINUTE;
                self.push_activity(&mut pr, t, &author, "DECLINED");
                pr.state = "DECLINED";
                pr.closed = Some(t);
            }
        }
        pr.updated = t;
        pr.version = u32::try_from(pr.activities.len()).unwrap_or(u32::MAX);
        pr
    }

    fn push_activity(&mut self, pr: &mut SimPr, at: i64, user: &str, action: &'static str) {
        pr.activities.push(Activity {
            id: self.next_activity,
            at,
            user: user.to_owned(),
            action,
        });
        self.next_activity += 1;
    }

    /// Changes an open pull request as a user would (an approval or a comment) at simulated time
    /// `now`; returns the event key of the webhook Bitbucket would send and the reviewer affected.
    pub fn touch(
        &mut self,
        repo: usize,
        pr: usize,
        now: i64,
        rng: &mut fastrand::Rng,
    ) -> (&'static str, Option<String>) {
        let mut p = self.repos[repo].prs[pr].clone();
        let key = match (rng.u32(0..3), p.reviewers.first().cloned()) {
            (0, Some((who, _))) => {
                self.push_activity(&mut p, now, &who, "APPROVED");
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
                self.push_activity(&mut p, now, &who, "COMMENTED");
                p.comments += 1;
                ("pr:comment:added", None)
            }
        };
        p.updated = now;
        self.repos[repo].prs[pr] = p;
        key
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

/// The merge commit the simulator reports for a merged pull request.
pub fn merge_commit(p: &SimPr) -> String {
    format!("{:040x}", p.id * 7919 + u64::from(p.version))
}
