//! The simulator speaks the reference: every JSON body it serves for an endpoint the connector
//! calls, and every webhook event it sends, in every server version it imitates, conforms to the
//! response schemas of Atlassian's OpenAPI description of DC 9.2. The check is shown to fail on a
//! drifted shape, so a simulator or fixture that drifts cannot pass it.

mod support;

use bbdc_sim::render::{Dialect, webhook_events};
use bbdc_sim::version::ServerVersion;
use bbdc_sim::world::WorldSpec;
use bbdc_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::reference;

fn spec() -> WorldSpec {
    WorldSpec {
        seed: 5,
        projects: 2,
        repos_per_project: 2,
        prs_per_repo: 6,
        users: 5,
    }
}

/// GETs `path` (with `query`) from the simulator, checks the body against the reference, and
/// returns it.
fn get_checked(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    query: &str,
    seen: &mut BTreeSet<String>,
) -> Value {
    let url = format!("{base}{path}?{query}");
    let mut resp = agent
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    let text = resp
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    reference::assert_response(path, &body);
    if let Some(t) = reference::path_template(path) {
        seen.insert(t.to_owned());
    }
    body
}

/// Every page of a listing, each page checked.
fn all_pages(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    query: &str,
    seen: &mut BTreeSet<String>,
) -> Vec<Value> {
    let mut start = 0;
    let mut items = Vec::new();
    loop {
        let q = format!(
            "{query}{}start={start}&limit=4",
            if query.is_empty() { "" } else { "&" }
        );
        let page = get_checked(agent, base, path, &q, seen);
        items.extend(page["values"].as_array().cloned().unwrap_or_default());
        match page["nextPageStart"].as_u64() {
            Some(n) if page["isLastPage"] == json!(false) => start = n,
            _ => return items,
        }
    }
}

/// Crawls everything the connector reads from a simulator of `version`, checking each body;
/// returns the reference paths it covered.
fn crawl(version: ServerVersion) -> BTreeSet<String> {
    let sim = Simulator::start(SimConfig {
        spec: spec(),
        dialect: Dialect {
            version,
            ..Dialect::default()
        },
        ..SimConfig::default()
    })
    .expect("simulator");
    let base = sim.base_url();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut seen = BTreeSet::new();
    let api = "/rest/api/1.0";
    get_checked(
        &agent,
        &base,
        &format!("{api}/application-properties"),
        "",
        &mut seen,
    );
    let projects = all_pages(&agent, &base, &format!("{api}/projects"), "", &mut seen);
    let repos = all_pages(
        &agent,
        &base,
        &format!("{api}/repos"),
        "archived=ALL",
        &mut seen,
    );
    all_pages(&agent, &base, &format!("{api}/admin/users"), "", &mut seen);
    all_pages(&agent, &base, &format!("{api}/users"), "", &mut seen);
    let mut keys: BTreeSet<String> = projects
        .iter()
        .filter_map(|p| p["key"].as_str().map(str::to_owned))
        .collect();
    keys.extend(
        repos
            .iter()
            .filter_map(|r| r["project"]["key"].as_str().map(str::to_owned)),
    );
    assert!(
        keys.iter().any(|k| k.starts_with('~')),
        "the instance has personal projects"
    );
    for key in &keys {
        all_pages(
            &agent,
            &base,
            &format!("{api}/projects/{key}/repos"),
            "",
            &mut seen,
        );
    }
    for r in &repos {
        let (k, s) = (
            r["project"]["key"].as_str().unwrap_or(""),
            r["slug"].as_str().unwrap_or(""),
        );
        let commits = all_pages(
            &agent,
            &base,
            &format!("{api}/projects/{k}/repos/{s}/commits"),
            "",
            &mut seen,
        );
        // Build statuses of the branch's commits, in every state (and of none).
        for c in &commits {
            let id = c["id"].as_str().expect("commit id");
            all_pages(
                &agent,
                &base,
                &format!("/rest/build-status/1.0/commits/{id}"),
                "",
                &mut seen,
            );
        }
        for refs in ["branches", "tags"] {
            all_pages(
                &agent,
                &base,
                &format!("{api}/projects/{k}/repos/{s}/{refs}"),
                "",
                &mut seen,
            );
        }
        let prs_path = format!("{api}/projects/{k}/repos/{s}/pull-requests");
        for pr in all_pages(
            &agent,
            &base,
            &prs_path,
            "state=ALL&order=NEWEST",
            &mut seen,
        ) {
            let id = pr["id"].as_u64().expect("pull request id");
            get_checked(&agent, &base, &format!("{prs_path}/{id}"), "", &mut seen);
            all_pages(
                &agent,
                &base,
                &format!("{prs_path}/{id}/activities"),
                "",
                &mut seen,
            );
            all_pages(
                &agent,
                &base,
                &format!("{prs_path}/{id}/commits"),
                "",
                &mut seen,
            );
            get_checked(
                &agent,
                &base,
                &format!("{prs_path}/{id}/diff"),
                "contextLines=0&withComments=false",
                &mut seen,
            );
        }
    }
    // Every webhook event this version sends, for every pull request.
    let world = sim.world();
    let d = sim.dialect();
    let mut keys_sent = BTreeSet::new();
    for r in world.repos() {
        for p in &r.prs {
            for (key, payload) in webhook_events(&d, &r, p) {
                reference::assert_webhook(key, &payload);
                keys_sent.insert(key);
            }
        }
        // The repository events: a push (created, moved, deleted) and a rename.
        let tip = r.history.tip.as_deref();
        for (from, to) in [(None, tip), (tip, tip), (tip, None)] {
            let payload = d.refs_changed(&r, from, to, "user1");
            reference::assert_webhook("repo:refs_changed", &payload);
        }
        let mut renamed = (*r).clone();
        renamed.slug = format!("{}-renamed", r.slug);
        reference::assert_webhook("repo:modified", &d.repo_modified(&r, &renamed, "user1"));
    }
    assert!(keys_sent.contains("pr:opened") && keys_sent.contains("pr:reviewer:needs_work"));
    assert_eq!(
        keys_sent.contains("pr:from_ref_updated"),
        version >= ServerVersion::V7_21
    );
    sim.stop();
    seen
}

#[test]
fn every_body_of_every_version_conforms_to_the_reference() {
    let endpoints = [
        "/api/latest/application-properties",
        "/api/latest/projects",
        "/api/latest/repos",
        "/api/latest/admin/users",
        "/api/latest/users",
        "/api/latest/projects/{projectKey}/repos",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/commits",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/branches",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/tags",
        "/build-status/latest/commits/{commitId}",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/pull-requests",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/pull-requests/{pullRequestId}",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/pull-requests/{pullRequestId}/activities",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/pull-requests/{pullRequestId}/commits",
        "/api/latest/projects/{projectKey}/repos/{repositorySlug}/pull-requests/{pullRequestId}/diff/{path}",
    ];
    for version in ServerVersion::ALL {
        let seen = crawl(version);
        for e in endpoints {
            assert!(
                seen.contains(e),
                "{version}: the crawl never reached {e} (saw {seen:?})"
            );
        }
    }
}

/// A valid body from the simulator, for the drift cases below.
fn valid_pull_request() -> Value {
    let world = bbdc_sim::world::World::generate(&spec());
    let r = world.repo_now(0);
    Dialect::default().pull_request(&r, &r.prs[0], false)
}

/// A rewrite of a valid body into a shape the reference does not allow.
type Drift = Box<dyn Fn(&mut Value)>;

#[test]
fn a_drifted_shape_fails_the_check() {
    let pr = valid_pull_request();
    assert!(reference::problems(reference::schema("RestPullRequest"), &pr).is_empty());
    let drifts: Vec<(&str, Drift)> = vec![
        // The shape the simulator once invented.
        (
            "a ref's type as an object",
            Box::new(|v: &mut Value| v["fromRef"]["type"] = json!({"id": "BRANCH"})),
        ),
        (
            "a ref's type outside its enum",
            Box::new(|v: &mut Value| v["toRef"]["type"] = json!("BOOKMARK")),
        ),
        (
            "an id as a string",
            Box::new(|v: &mut Value| v["id"] = json!("7")),
        ),
        (
            "a date as a string",
            Box::new(|v: &mut Value| v["createdDate"] = json!("2026-01-01T00:00:00Z")),
        ),
        (
            "a state outside its enum",
            Box::new(|v: &mut Value| v["state"] = json!("SUPERSEDED")),
        ),
        (
            "a reviewer status outside its enum",
            Box::new(|v: &mut Value| {
                v["reviewers"] = json!([{"user": {"name": "a"}, "status": "CHANGES_REQUESTED"}])
            }),
        ),
        (
            "a null ref",
            Box::new(|v: &mut Value| v["toRef"] = Value::Null),
        ),
        (
            "a reviewer's name as a number",
            Box::new(|v: &mut Value| v["reviewers"][0]["user"]["name"] = json!(5)),
        ),
    ];
    for (what, drift) in drifts {
        let mut v = pr.clone();
        drift(&mut v);
        assert!(
            !reference::problems(reference::schema("RestPullRequest"), &v).is_empty(),
            "the check let {what} through"
        );
    }
    // A diff file with `source: null` (an added file written the invented way) fails too.
    let diff =
        json!({"diffs": [{"source": null, "destination": {"toString": "a.rs"}, "hunks": []}]});
    let path = "/rest/api/1.0/projects/P/repos/r/pull-requests/1/diff";
    let template = reference::path_template(path).expect("the diff is in the reference");
    assert!(
        std::panic::catch_unwind(|| reference::assert_response(path, &diff)).is_err(),
        "a null source passed {template}"
    );
    // And so does a webhook whose pull request drifted.
    let mut payload =
        json!({"eventKey": "pr:opened", "date": "2026-01-01T00:00:00+0000", "pullRequest": pr});
    payload["pullRequest"]["fromRef"]["type"] = json!({"id": "BRANCH"});
    assert!(std::panic::catch_unwind(|| reference::assert_webhook("pr:opened", &payload)).is_err());
}

#[test]
fn the_reference_is_read_from_the_shared_folder_not_a_copy() {
    let path = reference::reference_path();
    assert!(path.exists(), "{} is missing", path.display());
    assert_eq!(reference::document()["info"]["version"], json!("9.2"));
}

/// The rate-limit settings resources, as each description of the account's bucket answers
/// them (from 7.21; 5.16 has neither), conform to the reference; 5.16 answers 404.
#[test]
fn the_rate_limit_settings_conform_in_every_description_and_version() {
    use bbdc_sim::{RateSettings, ServerRateLimit};
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let bucket = Some(ServerRateLimit {
        capacity: 1000.0,
        refill: 500.0,
    });
    let instance = "/rest/api/1.0/admin/rate-limit/settings";
    let account = "/rest/api/latest/admin/rate-limit/settings/users/sim-user";
    for version in ServerVersion::ALL {
        for (described, rate_limit) in [
            (RateSettings::Instance, bucket),
            (RateSettings::Instance, None),
            (RateSettings::Account, bucket),
            (RateSettings::Account, None),
        ] {
            let sim = Simulator::start(SimConfig {
                spec: spec(),
                dialect: Dialect {
                    version,
                    ..Dialect::default()
                },
                rate_limit,
                rate_settings: described,
                ..SimConfig::default()
            })
            .expect("simulator");
            let base = sim.base_url();
            let status = |path: &str| {
                agent
                    .get(format!("{base}{path}"))
                    .call()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            };
            if version == ServerVersion::V5_16 {
                assert_eq!((status(instance), status(account)), (404, 404), "{version}");
            } else {
                let mut seen = BTreeSet::new();
                let body = get_checked(&agent, &base, instance, "", &mut seen);
                assert_eq!(
                    body["enabled"],
                    json!(described == RateSettings::Account || rate_limit.is_some())
                );
                if described == RateSettings::Account {
                    let body = get_checked(&agent, &base, account, "", &mut seen);
                    assert_eq!(body["whitelisted"], json!(rate_limit.is_none()), "{body}");
                } else {
                    assert_eq!(status(account), 404, "no settings of its own");
                }
            }
            sim.stop();
        }
    }
}
