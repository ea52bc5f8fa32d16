//! The JSON the simulator serves, per server version and shape mode.
//!
//! Every body follows the response schemas of Atlassian's OpenAPI description of DC 9.2
//! (`shared/reference`; `tests/conformance.rs` validates each one against it), changed only where
//! [`ServerVersion`] cites a difference. Fields the reference does not describe but real servers
//! send (a pull request's `author` and `properties`, an activity's `comment` and `commit`, a
//! personal project's `owner`, the diff's wrapper) carry the source they come from.
//!
//! With [`Shapes::Varied`] every body is also rewritten the way plugins and proxies rewrite
//! them (see [`super::vary`]), deterministically per resource, without changing anything a
//! correct sync stores.

use super::builds::SimBuild;
use super::history::{SimCommit, SimPerson, SimTag};
use super::vary::{self, Variation};
use super::version::ServerVersion;
use super::world::{self, Activity, SimPr, SimRepo};
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};

/// Whether bodies are served as the reference shapes them, or varied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shapes {
    /// As the version sends them.
    #[default]
    Reference,
    /// Rewritten in every way a tolerant reader must survive, seeded.
    Varied {
        /// Seed of the rewrites.
        seed: u64,
    },
}

impl std::str::FromStr for Shapes {
    type Err = String;

    /// `reference`, `varied` or `varied:SEED`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "reference" => Ok(Shapes::Reference),
            None if s == "varied" => Ok(Shapes::Varied { seed: 1 }),
            Some(("varied", seed)) => seed
                .parse()
                .map(|seed| Shapes::Varied { seed })
                .map_err(|_| format!("{seed:?} is not a seed")),
            _ => Err(format!("{s:?} is not reference, varied or varied:SEED")),
        }
    }
}

/// How the simulator speaks: which server version, which shape mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dialect {
    /// Server version.
    pub version: ServerVersion,
    /// Shape mode.
    pub shapes: Shapes,
}

/// Web links of the simulated instance.
const WEB: &str = "https://sim.example";

/// A Bitbucket error body.
pub fn error(exception: &str, message: &str) -> String {
    json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]})
        .to_string()
}

/// A user (`RestApplicationUser`).
pub fn user(slug: &str) -> Value {
    json!({
        "name": slug, "emailAddress": format!("{slug}@sim.example"),
        "id": slug.bytes().map(u64::from).sum::<u64>(),
        "displayName": slug.to_uppercase(), "active": true, "slug": slug,
        "type": if slug == "ci-bot" { "SERVICE" } else { "NORMAL" },
        "links": {"self": [{"href": format!("{WEB}/users/{slug}")}]}
    })
}

/// A commit (`RestCommit`): its people as `name` and `emailAddress`, with the matched user's
/// fields beside them where the server matched one (as real servers send them); never a diff.
pub fn commit(c: &SimCommit) -> Value {
    let person = |p: &SimPerson| {
        let mut v = match &p.slug {
            Some(slug) => user(slug),
            None => json!({}),
        };
        v["name"] = json!(p.name);
        v["emailAddress"] = json!(p.email);
        v
    };
    json!({
        "id": c.id, "displayId": &c.id[..c.id.len().min(11)],
        "author": person(&c.author), "authorTimestamp": c.author_time,
        "committer": person(&c.committer), "committerTimestamp": c.commit_time,
        "message": c.message,
        "parents": c.parents.iter().map(|p| json!({"id": p, "displayId": &p[..p.len().min(11)]})).collect::<Vec<_>>(),
    })
}

/// A branch (`RestBranch`); `default_key` is the version's name for its default flag.
pub fn branch(name: &str, commit: &str, is_default: bool, default_key: &str) -> Value {
    let mut v = json!({
        "id": format!("refs/heads/{name}"), "displayId": name, "type": "BRANCH",
        "latestCommit": commit, "latestChangeset": commit,
    });
    v[default_key] = json!(is_default);
    v
}

/// A build status (`RestBuildStatus`), as `version` sends it.
pub fn build(b: &SimBuild, version: ServerVersion) -> Value {
    if !version.has_rich_build_status() {
        return json!({"key": b.key, "state": b.state, "name": b.name, "url": b.url,
                      "description": "", "dateAdded": b.created});
    }
    let mut v = json!({
        "key": b.key, "state": b.state, "name": b.name, "url": b.url,
        "description": format!("{} for build {}", b.name, b.number),
        "createdDate": b.created, "updatedDate": b.updated, "buildNumber": b.number,
        "parent": b.parent, "ref": "refs/heads/main",
    });
    if let Some(d) = b.duration {
        v["duration"] = json!(d);
    }
    if let Some((successful, failed, skipped)) = b.tests {
        v["testResults"] = json!({"successful": successful, "failed": failed, "skipped": skipped});
    }
    v
}

/// A tag (`RestTag`): `hash` only when it is annotated.
pub fn tag(t: &SimTag) -> Value {
    let mut v = json!({
        "id": format!("refs/tags/{}", t.name), "displayId": t.name, "type": "TAG",
        "latestCommit": t.target, "latestChangeset": t.target,
    });
    if let Some(h) = &t.object {
        v["hash"] = json!(h);
    }
    v
}

/// The user slug owning a personal project key (`~USER1` → `user1`).
fn owner_of(key: &str) -> Option<String> {
    key.strip_prefix('~').map(str::to_lowercase)
}

/// A project (`RestProject`). A personal project is named after its owner and carries an `owner`
/// and a link to the owner's profile; it has no `public` or `description` (a fixture shaped like a
/// real response: chazmcgarvey/WebService-BitbucketServer, t/21-paged-response.t).
pub fn project(key: &str) -> Value {
    match owner_of(key) {
        Some(slug) => json!({
            "key": key, "id": key.len() + 1000, "name": slug.to_uppercase(), "type": "PERSONAL",
            "owner": user(&slug),
            "links": {"self": [{"href": format!("{WEB}/users/{slug}")}]}
        }),
        None => json!({
            "key": key, "id": key.len(), "name": format!("Project {key}"), "public": false,
            "type": "NORMAL",
            "links": {"self": [{"href": format!("{WEB}/projects/{key}")}]}
        }),
    }
}

/// A repository's web page: personal repositories live under the owner's profile.
fn repo_web(project: &str, slug: &str) -> String {
    match owner_of(project) {
        Some(owner) => format!("{WEB}/users/{owner}/repos/{slug}/browse"),
        None => format!("{WEB}/projects/{project}/repos/{slug}/browse"),
    }
}

/// A repository as pull-request refs and fork origins embed it.
fn repo_ref(project: &str, slug: &str) -> Value {
    json!({"slug": slug, "name": slug, "project": self::project(project)})
}

impl Dialect {
    /// `/application-properties` (`RestApplicationProperties`: strings only).
    pub fn application_properties(&self) -> Value {
        json!({"version": self.version.version(), "buildNumber": self.version.build_number(),
               "buildDate": "1731000000000", "displayName": "Bitbucket"})
    }

    /// A repository (`RestRepository`).
    pub fn repo(&self, r: &SimRepo) -> Value {
        let mut v = json!({
            "slug": r.slug, "id": r.id, "name": r.slug, "scmId": "git", "state": "AVAILABLE",
            "statusMessage": "Available", "forkable": true, "public": false,
            "project": project(&r.project),
            "links": {"clone": [{"href": format!("{WEB}/scm/{}/{}.git", r.project.to_lowercase(), r.slug), "name": "http"}],
                      "self": [{"href": repo_web(&r.project, &r.slug)}]}
        });
        if self.version.has_archiving() {
            v["archived"] = json!(r.archived);
        }
        if let Some((k, s)) = &r.origin {
            v["origin"] = repo_ref(k, s);
        }
        v
    }

    fn pr_ref(&self, id: String, display: &str, commit: &str, project: &str, slug: &str) -> Value {
        let mut v = json!({"id": id, "displayId": display, "latestCommit": commit,
                           "repository": repo_ref(project, slug)});
        if self.version.has_ref_type() {
            // A string enum in the reference (`RestPullRequestRef.type`), never an object.
            v["type"] = json!("BRANCH");
        }
        v
    }

    /// A pull request (`RestPullRequest`). `single` is `GET .../pull-requests/{id}` rather than
    /// a list item or a webhook payload. `author` and `properties` are not in the reference but
    /// are on every real server's pull requests (captures in rest.md of the research notes:
    /// sourcegraph/sourcegraph-public-snapshot .../vcr/PullRequests-success.yaml; port-labs/port-docs
    /// .../bitbucket-server.md).
    pub fn pull_request(&self, r: &SimRepo, p: &SimPr, single: bool) -> Value {
        let (src_project, src_slug) = p
            .fork
            .clone()
            .unwrap_or_else(|| (r.project.clone(), r.slug.clone()));
        let mut v = json!({
            "id": p.id, "version": p.version, "title": p.title, "description": format!("Why:\r\n{}", p.title),
            "state": p.state, "open": p.state == "OPEN", "closed": p.state != "OPEN",
            "createdDate": p.created, "updatedDate": p.updated, "locked": false,
            "fromRef": self.pr_ref(format!("refs/heads/{}", p.branch), &p.branch, &p.from_commit, &src_project, &src_slug),
            "toRef": self.pr_ref("refs/heads/main".into(), "main", &p.to_commit, &r.project, &r.slug),
            "author": {"user": user(&p.author), "role": "AUTHOR", "approved": false, "status": "UNAPPROVED"},
            "reviewers": p.reviewers.iter().map(|(u, s)| json!({"user": user(u), "role": "REVIEWER", "approved": *s == "APPROVED", "status": s})).collect::<Vec<_>>(),
            "participants": [],
            "links": {"self": [{"href": format!("{WEB}/projects/{}/repos/{}/pull-requests/{}", r.project, r.slug, p.id)}]}
        });
        if self.version.has_draft() {
            v["draft"] = json!(p.draft);
        }
        if !single || self.version.single_pr_has_properties() {
            v["properties"] =
                json!({"commentCount": p.comments, "openTaskCount": 0, "resolvedTaskCount": 0});
        }
        if let Some(c) = p.closed {
            v["closedDate"] = json!(c);
        }
        v
    }

    /// The action a simulated activity is sent as: review comments are `REVIEW_COMMENTED` on
    /// servers with the pending-comment review ([`ServerVersion::has_review_activities`]).
    fn action(&self, a: &Activity) -> &'static str {
        match a.action {
            "REVIEW_COMMENTED" if !self.version.has_review_activities() => "COMMENTED",
            other => other,
        }
    }

    /// One activity (`RestPullRequestActivity`). `commentAction`, `comment` and the MERGED
    /// activity's `commit` are not in the reference; real servers send them (capture:
    /// sourcegraph/sourcegraph-public-snapshot .../vcr/PullRequestActivities.yaml).
    pub fn activity(&self, p: &SimPr, a: &Activity) -> Value {
        let action = self.action(a);
        let mut v =
            json!({"id": a.id, "createdDate": a.at, "user": user(&a.user), "action": action});
        if matches!(action, "COMMENTED" | "REVIEW_COMMENTED") {
            v["commentAction"] = json!("ADDED");
            v["comment"] = json!({"id": a.id, "version": 0, "text": "Looks fine to me",
                                  "author": user(&a.user), "createdDate": a.at, "updatedDate": a.at});
        }
        if action == "MERGED" {
            let id = world::merge_commit(p);
            v["commit"] = json!({"id": id, "displayId": &id[..11]});
        }
        v
    }

    /// A pull request's diff: the wrapper real servers send (`fromHash`, `toHash`,
    /// `contextLines`, `whitespace`, `diffs`, `truncated`; the reference declares the response as
    /// one `RestDiff`) around `RestDiff` entries. An added file has no `source` and a deleted one
    /// no `destination`: the reference types both as objects, so they are left out, never `null`.
    pub fn diff(&self, p: &SimPr) -> Value {
        let path = |x: &str| {
            let parent = x.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let name = x.rsplit('/').next().unwrap_or(x);
            json!({"components": x.split('/').collect::<Vec<_>>(), "parent": parent, "name": name,
                   "extension": name.rsplit_once('.').map(|(_, e)| e).unwrap_or(""), "toString": x})
        };
        let lines = |n: u32, kind: &str| -> Vec<Value> {
            (0..n).map(|i| json!({"source": i + 1, "destination": i + 1, "line": format!("SIM-SOURCE-LINE {kind} let x{i} = {i};"), "truncated": false})).collect()
        };
        let diffs: Vec<Value> = p.files.iter().map(|f| {
            let mut d = json!({
                "truncated": false,
                "hunks": [{"sourceLine": 1, "sourceSpan": f.removed, "destinationLine": 1, "destinationSpan": f.added, "truncated": false,
                           "segments": [{"type": "CONTEXT", "lines": lines(1, "context"), "truncated": false},
                                        {"type": "REMOVED", "lines": lines(f.removed, "removed"), "truncated": false},
                                        {"type": "ADDED", "lines": lines(f.added, "added"), "truncated": false}]}]
            });
            if let Some(s) = &f.source {
                d["source"] = path(s);
            }
            if let Some(s) = &f.destination {
                d["destination"] = path(s);
            }
            d
        }).collect();
        json!({"fromHash": p.to_commit, "toHash": p.from_commit, "contextLines": 0, "whitespace": "SHOW", "diffs": diffs, "truncated": false})
    }

    /// A page of `values` as `start`/`limit` ask (the limit capped at `cap`, answered back).
    pub fn page(&self, values: Vec<Value>, start: usize, limit: usize, cap: usize) -> Value {
        self.page_of(values.into_iter(), start, limit, cap, |v| v)
    }

    /// A page of a listing given as an iterator of its items in order, rendering only the
    /// items on the page (`render`), so that a listing of 50,000 repositories costs a page's
    /// rendering, not the whole listing's.
    pub fn page_of<T>(
        &self,
        mut items: impl Iterator<Item = T>,
        start: usize,
        limit: usize,
        cap: usize,
        render: impl FnMut(T) -> Value,
    ) -> Value {
        let limit = limit.clamp(1, cap);
        let values: Vec<Value> = items.by_ref().skip(start).take(limit).map(render).collect();
        let last = items.next().is_none();
        let mut v = json!({"size": values.len(), "limit": limit, "start": start, "isLastPage": last, "values": values});
        if !last {
            v["nextPageStart"] = json!(start + limit);
        }
        v
    }

    /// A body ready to send: `value` as it is, or varied (seeded by `resource`, so that the same
    /// resource always gets the same rewrites).
    pub fn finish(&self, resource: &str, mut value: Value) -> String {
        if let Shapes::Varied { seed } = self.shapes {
            vary_safely(&mut value, seed, resource);
        }
        value.to_string()
    }

    /// The `repo:refs_changed` payload of a push to `r`'s default branch that moved it from
    /// `from` to `to` (`None`: the branch did not exist, or was deleted), by `actor`.
    pub fn refs_changed(
        &self,
        r: &SimRepo,
        from: Option<&str>,
        to: Option<&str>,
        actor: &str,
    ) -> Value {
        const NONE: &str = "0000000000000000000000000000000000000000";
        let kind = match (from, to) {
            (None, _) => "ADD",
            (_, None) => "DELETE",
            _ => "UPDATE",
        };
        json!({"eventKey": "repo:refs_changed", "date": "2026-11-24T10:00:00+0000", "actor": user(actor),
               "repository": self.repo(r),
               "changes": [{"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
                            "refId": "refs/heads/main", "fromHash": from.unwrap_or(NONE),
                            "toHash": to.unwrap_or(NONE), "type": kind}]})
    }

    /// The `repo:modified` payload of `before` renamed to `after`, by `actor`.
    pub fn repo_modified(&self, before: &SimRepo, after: &SimRepo, actor: &str) -> Value {
        json!({"eventKey": "repo:modified", "date": "2026-11-24T10:00:00+0000", "actor": user(actor),
               "old": self.repo(before), "new": self.repo(after)})
    }

    /// The webhook payload of `key` for `p` (see [`webhook_events`] for every key): the envelope
    /// `{eventKey, date, actor, pullRequest}` plus the event's own fields in `extra`. The `date`
    /// has an offset without a colon (`2017-09-19T09:58:11+1000` on every stored version of
    /// Atlassian's "Event payload" page, 5.0 to current). The pull request in a payload carries no
    /// comment or task counts: in captures from 2018 to 2025 `properties` appears only on
    /// `pr:merged`, holding the `mergeCommit` (runatlantis/atlantis
    /// server/events/testdata/bitbucket-server-pull-event-merged.json; go-playground/webhooks
    /// testdata/bitbucket-server/pr-merged.json; woodpecker-ci/woodpecker
    /// server/forge/bitbucketdatacenter/fixtures/HookPullRequestMerged.json).
    pub fn webhook(&self, key: &str, r: &SimRepo, p: &SimPr, actor: &str, extra: Value) -> Value {
        let mut pr = self.pull_request(r, p, false);
        if let Some(o) = pr.as_object_mut() {
            o.remove("properties");
        }
        if key == "pr:merged" {
            let id = world::merge_commit(p);
            pr["properties"] = json!({"mergeCommit": {"id": id, "displayId": &id[..11]}});
        }
        let mut v = json!({"eventKey": key, "date": "2026-11-24T10:00:00+0000",
                           "actor": user(actor), "pullRequest": pr});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v
    }
}

/// The keys a destroying rewrite may touch in varied mode: fields no record field the ground
/// truth checks comes from. (Identities, titles, states, dates, refs, reviewers' statuses,
/// activity actions and users, and the diff's counted parts are left intact; they are varied only
/// in value-preserving ways.)
const UNNEEDED: &[&str] = &[
    "description",
    "open",
    "closed",
    "locked",
    "links",
    "emailAddress",
    "displayName",
    "active",
    "statusMessage",
    "scmId",
    "forkable",
    "public",
    "role",
    "approved",
    "lastReviewedCommit",
    "participants",
    "openTaskCount",
    "resolvedTaskCount",
    "commentAction",
    "comment",
    "displayId",
    "source",
    "destination",
    "sourceLine",
    "sourceSpan",
    "destinationLine",
    "destinationSpan",
    "line",
    "contextLines",
    "whitespace",
    "fromHash",
    "toHash",
    "buildDate",
    "owner",
    "origin",
    "size",
];

/// Applies seeded rewrites to about one field in six: value-preserving ones anywhere but the
/// page's own `values` list, destroying ones only on [`UNNEEDED`] keys.
fn vary_safely(value: &mut Value, seed: u64, resource: &str) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (seed, resource).hash(&mut h);
    let mut rng = fastrand::Rng::with_seed(h.finish());
    for path in vary::field_paths(value) {
        if rng.u8(..6) != 0 || path == vary::path("values") {
            continue;
        }
        let Some(current) = vary::get(value, &path) else {
            continue;
        };
        let key = vary::last_key(&path);
        let allowed: Vec<Variation> = Variation::ALL
            .into_iter()
            .filter(|v| v.applies_to(key, current))
            .filter(|v| !v.is_destroying() || vary::last_key_in(&path, UNNEEDED))
            .collect();
        if let Some(v) = allowed.get(rng.usize(..allowed.len().max(1))) {
            vary::apply(value, &path, *v);
        }
    }
}

/// Every pull-request webhook event the simulator can send for `p`, as (key, payload): the
/// envelope of each event with its own fields.
pub fn webhook_events(d: &Dialect, r: &SimRepo, p: &SimPr) -> Vec<(&'static str, Value)> {
    let reviewer = p
        .reviewers
        .first()
        .map(|(u, _)| u.clone())
        .unwrap_or_else(|| p.author.clone());
    let participant = |status: &str| {
        json!({"participant": {"user": user(&reviewer), "role": "REVIEWER", "approved": status == "APPROVED", "status": status},
               "previousStatus": "UNAPPROVED"})
    };
    let comment = json!({"comment": {"id": 1, "version": 0, "text": "A comment", "author": user(&reviewer),
                                     "createdDate": p.updated, "updatedDate": p.updated}});
    let mut out = vec![
        ("pr:opened", d.webhook("pr:opened", r, p, &p.author, json!({}))),
        (
            "pr:modified",
            d.webhook("pr:modified", r, p, &p.author, json!({"previousTitle": "Earlier title", "previousDescription": "Earlier description",
                "previousTarget": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH", "latestCommit": p.to_commit}})),
        ),
        (
            "pr:from_ref_updated",
            d.webhook("pr:from_ref_updated", r, p, &p.author, json!({"previousFromHash": "0".repeat(40)})),
        ),
        ("pr:reviewer:approved", d.webhook("pr:reviewer:approved", r, p, &reviewer, participant("APPROVED"))),
        ("pr:reviewer:unapproved", d.webhook("pr:reviewer:unapproved", r, p, &reviewer, participant("UNAPPROVED"))),
        ("pr:reviewer:needs_work", d.webhook("pr:reviewer:needs_work", r, p, &reviewer, participant("NEEDS_WORK"))),
        (
            "pr:reviewer:updated",
            d.webhook("pr:reviewer:updated", r, p, &p.author, json!({"addedReviewers": [user(&reviewer)], "removedReviewers": []})),
        ),
        ("pr:merged", d.webhook("pr:merged", r, p, &reviewer, json!({}))),
        ("pr:declined", d.webhook("pr:declined", r, p, &p.author, json!({}))),
        ("pr:deleted", d.webhook("pr:deleted", r, p, &p.author, json!({}))),
        ("pr:comment:added", d.webhook("pr:comment:added", r, p, &reviewer, comment.clone())),
        ("pr:comment:edited", d.webhook("pr:comment:edited", r, p, &reviewer, {
            let mut c = comment.clone();
            c["previousComment"] = json!("An earlier comment");
            c
        })),
        ("pr:comment:deleted", d.webhook("pr:comment:deleted", r, p, &reviewer, comment)),
    ];
    out.retain(|(key, _)| d.sends_event(key));
    out
}

impl Dialect {
    /// Whether this version sends webhook `key`. Native webhooks came with 5.4 (`pr:opened`,
    /// `pr:merged`, `pr:declined`, `pr:deleted`), `pr:modified` and `pr:reviewer:updated` with
    /// 5.10, `pr:from_ref_updated` with 7.0 (jenkinsci/bitbucket-branch-source-plugin,
    /// src/main/java/com/cloudbees/jenkins/plugins/bitbucket/hooks/HookEventType.java, each key
    /// tagged with its version and linked to that version's "Event payload" page). Reviewer and
    /// comment events are in 5.x captures (go-playground/webhooks testdata/bitbucket-server, 2019).
    /// No version sends `pr:reviewer:changes_requested`: "Changes requested" is the label of
    /// `pr:reviewer:needs_work` in the documentation from 8.11, and a 10.x server refuses the
    /// other key (vriesdemichael/bitbucket-data-center-cli,
    /// internal/cli/completion/source_vocabulary.go).
    pub fn sends_event(&self, key: &str) -> bool {
        match key {
            "pr:from_ref_updated" => self.version >= ServerVersion::V7_21,
            _ => true,
        }
    }
}
