//! The faults the simulator injects ([`Faults`]) and the roll that decides, per request, which
//! one (if any) answers it instead of the route.

use std::time::Duration;

/// Faults to inject; each is independent.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of API requests answered 429 with `Retry-After: 1`.
    pub rate_429: f64,
    /// Share of API requests answered 502 or 503.
    pub rate_5xx: f64,
    /// Latency added to every request.
    pub latency: Duration,
    /// Share of responses whose connection is cut halfway through the body.
    pub cut_rate: f64,
    /// Share of 200 responses whose JSON is cut short (still a complete HTTP response).
    pub malformed_rate: f64,
    /// Pull requests whose diff always fails with 500 (permanently broken).
    pub broken_prs: usize,
    /// Touch a random open pull request this often while serving (`None`: never).
    pub update_every: Option<Duration>,
    /// A listing that never ends (a hostile server), `None`: every listing ends.
    pub endless: Option<Endless>,
}

/// A listing the simulator never ends, as the hostile servers of issue 28 did: every page says
/// more follows. Each page holds the listing's first page again (so the items are real,
/// reference-shaped ones), and `nextPageStart` moves as [`Step`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endless {
    /// Which listing.
    pub listing: Listing,
    /// How its `nextPageStart` moves.
    pub step: Step,
}

/// A paged listing of the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `/projects`.
    Projects,
    /// `/repos` and `/projects/{key}/repos`.
    Repos,
    /// `/admin/users` and `/users`.
    Users,
    /// `.../pull-requests`.
    PullRequests,
    /// `.../pull-requests/{id}/activities`.
    Activities,
    /// `.../commits` (a repository's).
    Commits,
    /// `.../pull-requests/{id}/commits`.
    PullRequestCommits,
    /// `.../branches`.
    Branches,
    /// `.../tags`.
    Tags,
    /// `/rest/build-status/1.0/commits/{id}`.
    Builds,
}

/// How an endless listing's `nextPageStart` moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Past the page, as a real server's does: pages of items without end.
    Past,
    /// Forward by one whatever the page held: the pages overlap.
    Creep,
    /// Past the page, every page empty.
    Empty,
}

impl Listing {
    /// Every listing, with the name `bbdc sim --endless` takes.
    pub const ALL: [(&'static str, Listing); 10] = [
        ("projects", Listing::Projects),
        ("repos", Listing::Repos),
        ("users", Listing::Users),
        ("pull-requests", Listing::PullRequests),
        ("activities", Listing::Activities),
        ("commits", Listing::Commits),
        ("pr-commits", Listing::PullRequestCommits),
        ("branches", Listing::Branches),
        ("tags", Listing::Tags),
        ("builds", Listing::Builds),
    ];

    /// Whether the request path (no query) is a page of this listing.
    pub(crate) fn lists(self, path: &str) -> bool {
        if self == Listing::Builds {
            return path.starts_with("/rest/build-status/");
        }
        let Some(rest) = path
            .strip_prefix("/rest/api/1.0/")
            .or_else(|| path.strip_prefix("/rest/api/latest/"))
        else {
            return false;
        };
        let seg: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        matches!(
            (self, seg.as_slice()),
            (Listing::Projects, ["projects"])
                | (Listing::Repos, ["repos"] | ["projects", _, "repos"])
                | (Listing::Users, ["users"] | ["admin", "users"])
                | (
                    Listing::PullRequests,
                    ["projects", _, "repos", _, "pull-requests"]
                )
                | (Listing::Activities, [.., "pull-requests", _, "activities"])
                | (Listing::Commits, ["projects", _, "repos", _, "commits"])
                | (
                    Listing::PullRequestCommits,
                    [.., "pull-requests", _, "commits"]
                )
                | (Listing::Branches, ["projects", _, "repos", _, "branches"])
                | (Listing::Tags, ["projects", _, "repos", _, "tags"])
        )
    }
}

impl Endless {
    /// `LISTING` or `LISTING:past|creep|empty` (`bbdc sim --endless`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, step) = s.split_once(':').unwrap_or((s, "past"));
        let listing = Listing::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
            .ok_or_else(|| {
                let names: Vec<&str> = Listing::ALL.iter().map(|(n, _)| *n).collect();
                format!("{name:?} is not a listing: one of {}", names.join(", "))
            })?;
        let step = match step {
            "past" => Step::Past,
            "creep" => Step::Creep,
            "empty" => Step::Empty,
            other => return Err(format!("{other:?}: past, creep or empty")),
        };
        Ok(Self { listing, step })
    }

    /// The page asked for at `start` of an endless listing whose first page is `first` (a
    /// page as the route answered it): its items again, saying more follows.
    pub(crate) fn page(self, first: &serde_json::Value, start: u64) -> serde_json::Value {
        let mut page = first.clone();
        let values = match self.step {
            Step::Empty => Vec::new(),
            Step::Past | Step::Creep => first["values"].as_array().cloned().unwrap_or_default(),
        };
        let n = values.len() as u64;
        let limit = first["limit"].as_u64().unwrap_or(25).max(1);
        let next = match self.step {
            Step::Creep => start + 1,
            Step::Past if n > 0 => start + n,
            Step::Past | Step::Empty => start + limit,
        };
        page["values"] = serde_json::Value::Array(values);
        page["size"] = n.into();
        page["start"] = start.into();
        page["isLastPage"] = false.into();
        page["nextPageStart"] = next.into();
        page
    }
}

/// What a request gets instead of (or on top of) its route's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Injected {
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 502 or 503 with an HTML body, as a proxy in front of a failing node answers.
    Unavailable(u16),
    /// The whole body promised, half sent, the connection closed.
    Cut,
    /// A complete response whose JSON stops halfway.
    Malformed,
}

impl Faults {
    /// Rolls the faults that replace a request's answer (before the route runs).
    pub(crate) fn before(&self, rng: &mut fastrand::Rng) -> Option<Injected> {
        if roll(rng, self.rate_429) {
            return Some(Injected::RateLimited);
        }
        if roll(rng, self.rate_5xx) {
            return Some(Injected::Unavailable(if roll(rng, 0.5) {
                502
            } else {
                503
            }));
        }
        None
    }

    /// Rolls the faults that damage a successful answer on its way out.
    pub(crate) fn after(&self, rng: &mut fastrand::Rng) -> Option<Injected> {
        if roll(rng, self.cut_rate) {
            return Some(Injected::Cut);
        }
        if roll(rng, self.malformed_rate) {
            return Some(Injected::Malformed);
        }
        None
    }
}

fn roll(rng: &mut fastrand::Rng, p: f64) -> bool {
    p > 0.0 && rng.f64() < p
}
