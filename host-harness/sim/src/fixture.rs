//! Repositories rendered as the simulator would serve them, held in memory for benchmarks.

use crate::render::Dialect;
use crate::world::{SimPr, World, WorldSpec};
use serde_json::Value;

/// One repository's responses as the simulator would serve them, for benchmarks that answer
/// the connector from memory: the whole pull-request listing as a single page, and each pull
/// request's activities and diff.
#[derive(Debug, Clone)]
pub struct RepoFixture {
    /// Project key.
    pub project: String,
    /// Repository slug.
    pub slug: String,
    /// Every pull request on one page, newest first (`isLastPage: true`).
    pub list_page: String,
    /// The first pull request's JSON, as webhooks carry it.
    pub first_pull_request: Value,
    /// Activities page of each pull request, by id.
    pub activities: std::collections::HashMap<u64, String>,
    /// Diff of each pull request, by id.
    pub diffs: std::collections::HashMap<u64, String>,
}

/// Generates a repository with `prs` pull requests (seeded, so every run is the same).
pub fn repo_fixture(prs: usize) -> RepoFixture {
    let world = World::generate(&WorldSpec {
        seed: 11,
        projects: 1,
        repos_per_project: 1,
        prs_per_repo: prs,
        users: 12,
    });
    // The first repository of the first normal project.
    let r = world.repo_now(0);
    let d = Dialect::default();
    let mut sorted: Vec<&SimPr> = r.prs.iter().collect();
    sorted.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
    let n = sorted.len().max(1);
    RepoFixture {
        project: r.project.clone(),
        slug: r.slug.clone(),
        list_page: d
            .page(
                sorted
                    .iter()
                    .map(|p| d.pull_request(&r, p, false))
                    .collect(),
                0,
                n,
                n,
            )
            .to_string(),
        first_pull_request: sorted
            .first()
            .map(|p| d.pull_request(&r, p, false))
            .unwrap_or_default(),
        activities: r
            .prs
            .iter()
            .map(|p| {
                let items: Vec<Value> = p
                    .activities
                    .iter()
                    .rev()
                    .map(|a| d.activity(p, a))
                    .collect();
                let n = items.len().max(1);
                (p.id, d.page(items, 0, n, n).to_string())
            })
            .collect(),
        diffs: r
            .prs
            .iter()
            .map(|p| (p.id, d.diff(p).to_string()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_fixture_lists_every_pull_request_on_one_page() {
        let f = repo_fixture(30);
        let page: Value = serde_json::from_str(&f.list_page).unwrap();
        assert_eq!(page["values"].as_array().map(Vec::len), Some(30));
        assert_eq!(page["isLastPage"], json!(true));
        assert_eq!(f.activities.len(), 30);
        assert_eq!(f.diffs.len(), 30);
        assert_eq!(f.first_pull_request["id"], page["values"][0]["id"]);
    }
}
