//! The REST API the simulator answers: paths to JSON bodies over the world, with Bitbucket's
//! paging (per-resource caps, `nextPageStart`) and its error bodies.

use crate::history::{DEFAULT_BRANCH, NoSuchCommit};
use crate::render::{self, error as error_json, user as user_json};
use crate::server::State;
use crate::world::SimPr;
use serde_json::Value;

const CAP_PROJECTS: usize = 25;
const CAP_REPOS: usize = 25;
const CAP_USERS: usize = 25;
const CAP_PRS: usize = 50;
const CAP_ACTIVITIES: usize = 20;
/// Commits per page at most (the server's `page.max.commits`; assumed, not from the reference).
const CAP_COMMITS: usize = 100;
/// Build statuses per page at most (the server keeps the 100 most recent of a commit).
const CAP_BUILDS: usize = 100;
/// Branches or tags per page at most (assumed, as for commits).
const CAP_REFS: usize = 100;

fn query(url: &str) -> Vec<(String, String)> {
    url.split_once('?')
        .map(|(_, q)| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// `start` and `limit` of a listing request (Bitbucket's default limit is 25).
fn paging(q: &[(String, String)]) -> (usize, usize) {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    (get("start").unwrap_or(0), get("limit").unwrap_or(25))
}

impl State {
    /// `GET /rest/build-status/1.0/commits/{id}`: a page of the commit's statuses. The server
    /// does not check that the commit exists: an unknown one has none.
    fn build_statuses(&self, url: &str, id: &str, q: &[(String, String)]) -> (u16, String) {
        if id.is_empty() || id.contains('/') {
            return (
                404,
                error_json(
                    "com.atlassian.bitbucket.NoSuchEntityException",
                    "No such resource",
                ),
            );
        }
        if self.failing_builds.lock().is_ok_and(|f| f.contains(id)) {
            return (
                500,
                error_json(
                    "com.atlassian.bitbucket.ServiceException",
                    "The build status of this commit could not be read.",
                ),
            );
        }
        let d = &self.dialect;
        let (start, limit) = paging(q);
        let running = self.running_builds.lock().map(|r| *r).unwrap_or_default();
        let builds = crate::builds::builds_under(id, running);
        let page = d.page_of(builds.iter(), start, limit, CAP_BUILDS, |b| {
            render::build(b, d.version)
        });
        (200, d.finish(url, page))
    }

    pub(crate) fn route(&self, url: &str) -> (u16, String) {
        let path = url.split('?').next().unwrap_or("");
        let q = query(url);
        if let Some(id) = path
            .strip_prefix("/rest/build-status/1.0/commits/")
            .or_else(|| path.strip_prefix("/rest/build-status/latest/commits/"))
        {
            return self.build_statuses(url, id, &q);
        }
        let rest = path
            .strip_prefix("/rest/api/1.0/")
            .or_else(|| path.strip_prefix("/rest/api/latest/"));
        let Some(rest) = rest else {
            return (
                404,
                error_json(
                    "com.atlassian.bitbucket.NoSuchEntityException",
                    "No such resource",
                ),
            );
        };
        if let Some(answer) = crate::rate_limit::settings(
            rest,
            self.dialect.version,
            self.rate_limit,
            self.rate_settings,
        ) {
            return answer;
        }
        let seg: Vec<String> = rest
            .split('/')
            .map(|s| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let seg: Vec<&str> = seg.iter().map(String::as_str).collect();
        let Ok(mut world) = self.world.lock() else {
            return (
                500,
                error_json(
                    "java.lang.IllegalStateException",
                    "simulator state poisoned",
                ),
            );
        };
        let no_repo = |k: &str, s: &str| {
            (
                404,
                error_json(
                    "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
                    &format!("Repository {k}/{s} does not exist."),
                ),
            )
        };
        let d = &self.dialect;
        let (start, limit) = paging(&q);
        let ok = |v: Value| (200, d.finish(url, v));
        match seg.as_slice() {
            ["application-properties"] => ok(d.application_properties()),
            // Personal projects are not listed (research notes rest.md §5; Sourcegraph and
            // Renovate reach personal repositories through `/repos`).
            ["projects"] => ok(d.page_of(
                world.projects.iter().filter(|k| !k.starts_with('~')),
                start,
                limit,
                CAP_PROJECTS,
                |k| render::project(k),
            )),
            ["projects", key, "repos"] => {
                // A personal project exists for every user (it is made on first access: Atlassian
                // KB "Personal projects in Bitbucket Server").
                let personal_of_user = key
                    .strip_prefix('~')
                    .is_some_and(|u| world.users.iter().any(|x| x.eq_ignore_ascii_case(u)));
                if !world.projects.iter().any(|p| p == key) && !personal_of_user {
                    return (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.project.NoSuchProjectException",
                            &format!("Project {key} does not exist."),
                        ),
                    );
                }
                // Archived repositories included: this listing has no `archived` filter (reference).
                let listed = world.project_repos(key);
                ok(d.page_of(listed.into_iter(), start, limit, CAP_REPOS, |i| {
                    d.repo(&world.repo(i))
                }))
            }
            ["repos"] => {
                let wanted = q
                    .iter()
                    .find(|(k, _)| k == "archived")
                    .map(|(_, v)| v.to_ascii_uppercase());
                let admits = |archived: bool| {
                    // 8.0+ filters by `archived`, ACTIVE unless asked (reference); older servers
                    // have no archiving and ignore the parameter.
                    !d.version.has_archiving()
                        || match wanted.as_deref() {
                            Some("ALL") => true,
                            Some("ARCHIVED") => archived,
                            _ => !archived,
                        }
                };
                let archived = world.archived_index();
                let live: Vec<usize> = (0..world.repo_count())
                    .filter(|&i| world.is_live(i))
                    .collect();
                let listed = live.into_iter().filter(move |&i| admits(i == archived));
                ok(d.page_of(listed, start, limit, CAP_REPOS, |i| d.repo(&world.repo(i))))
            }
            ["admin", "users"] | ["users"] => ok(d.page(
                world.users.iter().map(|u| user_json(u)).collect(),
                start,
                limit,
                CAP_USERS,
            )),
            ["projects", k, "repos", s, "pull-requests"] => {
                let Some(r) = world.repo_index(k, s).map(|i| world.repo(i)) else {
                    return no_repo(k, s);
                };
                let mut prs: Vec<&SimPr> = r.prs.iter().collect();
                prs.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
                ok(d.page(
                    prs.into_iter()
                        .map(|p| d.pull_request(&r, p, false))
                        .collect(),
                    start,
                    limit,
                    CAP_PRS,
                ))
            }
            ["projects", k, "repos", s, "commits"] => {
                let Some(r) = world.repo_index(k, s).map(|i| world.repo(i)) else {
                    return no_repo(k, s);
                };
                let arg = |name: &str| q.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                match r.history.listing(arg("until"), arg("since")) {
                    Ok(listed) => ok(d.page_of(
                        listed.into_iter(),
                        start,
                        limit,
                        CAP_COMMITS,
                        render::commit,
                    )),
                    Err(NoSuchCommit(id)) => (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.commit.NoSuchCommitException",
                            &format!("Commit '{id}' does not exist in repository '{s}'."),
                        ),
                    ),
                }
            }
            ["projects", k, "repos", s, "branches"] => {
                let Some(r) = world.repo_index(k, s).map(|i| world.repo(i)) else {
                    return no_repo(k, s);
                };
                let key = d.version.branch_default_key();
                let main = r
                    .history
                    .tip
                    .iter()
                    .map(|tip| (DEFAULT_BRANCH, tip.as_str(), true));
                let others = r
                    .history
                    .branches
                    .iter()
                    .map(|(name, c)| (name.as_str(), c.as_str(), false));
                ok(
                    d.page_of(main.chain(others), start, limit, CAP_REFS, |(n, c, def)| {
                        render::branch(n, c, def, key)
                    }),
                )
            }
            ["projects", k, "repos", s, "tags"] => {
                let Some(r) = world.repo_index(k, s).map(|i| world.repo(i)) else {
                    return no_repo(k, s);
                };
                ok(d.page_of(r.history.tags.iter(), start, limit, CAP_REFS, render::tag))
            }
            ["projects", k, "repos", s, "pull-requests", id, rest @ ..] => {
                let Some(r) = world.repo_index(k, s).map(|i| world.repo(i)) else {
                    return no_repo(k, s);
                };
                let Some(p) = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| r.prs.iter().find(|p| p.id == id))
                else {
                    return (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.pull.NoSuchPullRequestException",
                            &format!("Pull request {id} does not exist in {k}/{s}."),
                        ),
                    );
                };
                match rest {
                    [] => ok(d.pull_request(&r, p, true)),
                    ["activities"] => ok(d.page(
                        p.activities
                            .iter()
                            .rev()
                            .map(|a| d.activity(p, a))
                            .collect(),
                        start,
                        limit,
                        CAP_ACTIVITIES,
                    )),
                    ["diff"] if self.broken.contains(&(k.to_string(), s.to_string(), p.id)) => (
                        500,
                        error_json(
                            "com.atlassian.bitbucket.scm.CommandFailedException",
                            "git diff failed: fatal: bad object",
                        ),
                    ),
                    ["diff"] => ok(d.diff(p)),
                    ["commits"] => ok(d.page_of(
                        crate::pr_commits::commits_of(p).iter(),
                        start,
                        limit,
                        CAP_COMMITS,
                        render::commit,
                    )),
                    _ => (
                        404,
                        error_json(
                            "com.atlassian.bitbucket.NoSuchEntityException",
                            "No such resource",
                        ),
                    ),
                }
            }
            _ => (
                404,
                error_json(
                    "com.atlassian.bitbucket.NoSuchEntityException",
                    "No such resource",
                ),
            ),
        }
    }
}
