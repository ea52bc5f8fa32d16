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
