//! The tenant's HTTP policy, shared by all of its concurrent calls: a client-side token bucket
//! (the account's budget: told by configuration, or read from the server by
//! [`crate::Tenant::rate_budget`]; `unlimited` lifts it), `Retry-After` on 429 and 503 honoured
//! by every call of the tenant (no request leaves before it expires), and bounded retries with
//! exponential backoff and full jitter on 429, 502, 503, 504 and connection failures. Every REST
//! call is a GET, so retrying is safe.
//!
//! **A told or read budget is trusted.** Requests are paced [`PACE`] of its refill, so that
//! timing jitter does not cost a 429, with its burst. A 429 at it is the server's bucket running
//! dry a moment early (or another client of the account): it is waited out and empties the
//! client's bucket, and the rate stays. Only a run of them ([`TRUSTED_RUN_ROUNDS`] rounds with
//! [`LIMITING_SHARE`] of the answers refused) shows the budget to be wrong: the rate is then
//! lowered to what the server accepts, said once in the log and kept for the summary
//! ([`RefusedBudget`]), and adapts below the budget from there on, as below.
//!
//! **Below a refused budget, or with none (`unlimited`), the rate adapts to the server.** A 429
//! that comes while the server is refusing a real share of requests ([`LIMITING_SHARE`] of the
//! last 64; a stray one is only waited out) and at most once per [`THROTTLE_EPISODE`] (however
//! many concurrent requests were refused together) lowers the rate to the server's budget as
//! the refusal run reads it, less a twentieth, or to half when nothing was accepted. At every
//! 429 the server's bucket is empty, so what it accepted between two of them is its refill;
//! where a `Retry-After` let its bucket fill up (a small bucket refilled fast), the bucket is
//! counted once, as large as the server showed it before its first 429. The client's own burst
//! then mirrors that bucket. While no 429 arrives the rate climbs back quickly (a tenth of the
//! budget per [`RECOVERY_STEP`]) to just below it, then probes above it (a twentieth per
//! [`PROBE_STEP`] under a ceiling; with none, a tenth per [`ADAPTIVE_PROBE_STEP`], since a budget
//! read from 429s may read low), twice as long after each probe refused where the last one
//! was, up to the ceiling; with no ceiling the limit lifts once the rate passes [`LIFT_AT`]
//! times the budget last seen. Remembering what was accepted rather than what was sent matters
//! without a ceiling: a client that met the server's 5/s while sending 40/s would otherwise
//! climb straight back towards 40/s and be refused again.
//!
//! **Finding the budget costs few 429s.** A client with no limit yet whose burst meets a 429
//! cannot read the budget from it (the last second holds the server's bucket, not its refill):
//! requests leave one at a time (each holds an [`Admission`] until it is answered) until the next
//! round of 429s reads it, so that each `Retry-After` round costs one 429 instead of one per
//! request in flight. The same happens when the requests in flight are refused together
//! ([`REFUSED_IN_A_ROUND`]) before anything lowered the rate in the run; the rate is lowered once
//! the run is [`MEASURING_SPAN`] long or a round has read it.

use serde::Deserialize as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Rate and retry settings. In a tenant file (`[http_policy]`) every key is optional; naming
/// `per_second` or `burst` there tells the budget ([`HttpPolicy::told`]).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "PolicyFields")]
pub struct HttpPolicy {
    /// Token-bucket burst (`None`: no client-side limit).
    pub burst: Option<f64>,
    /// Token refill per second: the server's budget, which requests are paced a few per cent
    /// under ([`PACE`]). In a tenant file a number, or `"unlimited"` (stored as infinity) for
    /// no client-side limit until the server limits.
    pub per_second: f64,
    /// Whether `per_second` and `burst` were told (by flags or a tenant file). When they were
    /// not, they are Bitbucket's defaults until [`crate::Tenant::rate_budget`] reads the
    /// account's budget from the server.
    pub told: bool,
    /// Requests sent for one request of the connector, the first included, whatever the reason
    /// for each retry (429, 502/503/504, a cut connection or body). This policy is the only
    /// retry of a request: nothing above it (connector or sync job) sends it again.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with full jitter.
    pub base_backoff: Duration,
    /// Longest single backoff.
    pub max_backoff: Duration,
    /// Longest a request may spend waiting and retrying before the last answer is returned.
    pub total_budget: Duration,
    /// Longest server-requested wait (`Retry-After`) that is honoured. A longer one is not
    /// waited for: the answer goes back at once and the call fails `rate-limited`.
    pub max_wait: Duration,
}

/// [`HttpPolicy`] as a tenant file writes it: every key optional, and the budget's keys
/// `None` when not named, so that the policy knows whether it was told one.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyFields {
    burst: Option<f64>,
    #[serde(deserialize_with = "deserialize_rate")]
    per_second: Option<f64>,
    max_attempts: u32,
    #[serde(with = "humantime_serde")]
    base_backoff: Duration,
    #[serde(with = "humantime_serde")]
    max_backoff: Duration,
    #[serde(with = "humantime_serde")]
    total_budget: Duration,
    #[serde(with = "humantime_serde")]
    max_wait: Duration,
}

impl Default for PolicyFields {
    fn default() -> Self {
        let d = HttpPolicy::default();
        Self {
            burst: None,
            per_second: None,
            max_attempts: d.max_attempts,
            base_backoff: d.base_backoff,
            max_backoff: d.max_backoff,
            total_budget: d.total_budget,
            max_wait: d.max_wait,
        }
    }
}

impl From<PolicyFields> for HttpPolicy {
    fn from(f: PolicyFields) -> Self {
        let mut policy = HttpPolicy {
            max_attempts: f.max_attempts,
            base_backoff: f.base_backoff,
            max_backoff: f.max_backoff,
            total_budget: f.total_budget,
            max_wait: f.max_wait,
            ..HttpPolicy::default()
        };
        policy.tell(f.per_second, f.burst);
        policy
    }
}

/// Highest configurable rate: beyond it, say `unlimited`.
pub const MAX_RATE: f64 = 1_000_000.0;

/// Parses a request rate: requests per second (above 0, at most [`MAX_RATE`]), or `unlimited`
/// (infinity: no client-side limit).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(f64::INFINITY);
    }
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= MAX_RATE => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate: give requests per second (above 0, at most {MAX_RATE}) or `unlimited`"
        )),
    }
}

/// Parses a burst: whole requests, 1 to 100000.
pub fn parse_burst(s: &str) -> Result<f64, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(f64::from(n)),
        _ => Err(format!("{s:?} is not a burst: give 1 to 100000 requests")),
    }
}

fn deserialize_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(f64),
        Text(String),
    }
    let text = match Given::deserialize(d)? {
        Given::Number(n) => n.to_string(),
        Given::Text(t) => t,
    };
    parse_rate(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A 429 within this long of the one that lowered the rate belongs to the same episode (the
/// requests in flight when the server's bucket ran dry) and lowers it no further.
pub const THROTTLE_EPISODE: Duration = Duration::from_secs(2);

/// While no 429 arrives, the rate climbs one step per this long back to just below the rate
/// that met the last 429.
pub const RECOVERY_STEP: Duration = Duration::from_secs(2);

/// Above that, the rate probes one step (a twentieth) per this long; each probe that meets a 429
/// at about the rate the last one met doubles the wait, up to [`MAX_PROBE_STEP`].
pub const PROBE_STEP: Duration = Duration::from_secs(30);

/// With no ceiling (`unlimited`) and a budget read over a run shorter than [`COARSE_READING`],
/// the rate probes above the budget last seen this often at first: a budget read from a few
/// 429s may read low, so the rate climbs back toward what the server accepts within seconds;
/// probes refused where the last one was wait twice as long each time, as above.
pub const ADAPTIVE_PROBE_STEP: Duration = Duration::from_secs(2);

/// A budget read over a refusal run shorter than this is coarse (see [`ADAPTIVE_PROBE_STEP`]).
pub const COARSE_READING: Duration = Duration::from_secs(5);

/// With no ceiling, each probe climbs by this factor (a tenth): from a budget read a third
/// low, the rate is back at the server's within about eight seconds.
pub const ADAPTIVE_PROBE_CLIMB: f64 = 1.10;

/// With no ceiling, the limit lifts once the rate has climbed past this many times the budget
/// last seen without a 429 (the server's limit was lifted or raised).
pub const LIFT_AT: f64 = 4.0;

/// The longest wait between probes.
pub const MAX_PROBE_STEP: Duration = Duration::from_secs(8 * 60);

/// The share of the last 64 responses that must be 429s before a 429 lowers the rate. A server
/// refusing a client that sends at `r` against a budget `R` refuses `(r − R) ÷ r` of its
/// requests, so a client 15 % over its budget is caught; 429s that come regardless of the rate
/// (5 % at random, say) rarely reach it.
pub const LIMITING_SHARE: f64 = 0.125;

/// Lone 429s near the budget lower the rate down to this share of the budget that the last
/// lowering backed by [`LIMITING_SHARE`] measured, and no further.
pub const LONE_429_FLOOR: f64 = 0.7;

/// 429s less than this far apart belong to one refusal run (see [`Limiter`]): the server's
/// budget is measured over the whole run. Longer than a Retry-After pause, and than the time a
/// rate a few per cent over the budget takes to meet its next 429 (so that a lowering after the
/// first one measures over the whole run, not over the last second). The measure holds as long
/// as the server's bucket does not fill up between two 429s, which takes a typical bucket (60
/// requests refilled at 5 a second) 12 s of silence, or minutes of a client a little below its
/// budget; a run after such a silence reads low, and the rate climbs back by probing.
pub const REFUSAL_RUN_GAP: Duration = Duration::from_secs(30);

/// A refusal run must be this long before the budget is measured over it; before that, over the
/// last second.
pub const MIN_REFUSAL_RUN: Duration = Duration::from_secs(1);

/// This many 429s in one round (the first, and those answered before its `Retry-After` ended or
/// within [`ROUND_WINDOW`] of it: requests that were in flight together) is a server whose bucket
/// has run dry, not a stray refusal: while no lowering has come of the refusal run yet, the
/// limiter starts measuring the budget (see [`Limiter`]). With four requests in flight and 5 % of
/// random 429s, a random one has two more in its round about once in 140.
pub const REFUSED_IN_A_ROUND: u32 = 3;

/// 429s this close to the first of their round belong to it even when the server sent no
/// `Retry-After`.
pub const ROUND_WINDOW: Duration = Duration::from_millis(100);

/// While measuring, a 429 lowers the rate once the refusal run is this long: the budget is then
/// read within a token in two seconds (±0.5/s), not in one (±1/s).
pub const MEASURING_SPAN: Duration = Duration::from_secs(2);

/// Measuring ends without a lowering when no 429 comes for this long after the last one's
/// `Retry-After` (the refusals were not the server's budget after all).
pub const MEASURING_IDLE: Duration = Duration::from_secs(2);

/// Requests are paced to this share of a told or read budget's refill, so that timing jitter
/// between the client's clock and the server's does not cost a 429: a client exactly at a token
/// bucket's refill meets an empty bucket whenever a request arrives a moment early.
pub const PACE: f64 = 0.97;

/// At a told or read budget, this many rounds of 429s in one refusal run (with
/// [`LIMITING_SHARE`] of the last answers refused) show the budget to be wrong and lower the
/// rate; fewer are waited out.
pub const TRUSTED_RUN_ROUNDS: u32 = 3;

/// The adaptive rate never goes below this many requests per second.
pub const MIN_ADAPTIVE_RATE: f64 = 0.2;

/// Default [`HttpPolicy::max_wait`]: 15 minutes.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            burst: Some(60.0),
            per_second: 5.0,
            told: false,
            max_attempts: 6,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            total_budget: Duration::from_secs(120),
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

impl HttpPolicy {
    /// Tells the budget: a rate (`unlimited` as infinity) and a burst, either of which may be
    /// left out. A rate alone keeps the burst (Bitbucket's default 60 when there is none); a
    /// burst alone keeps the rate; an unlimited rate has no burst. Neither: nothing is told.
    pub fn tell(&mut self, per_second: Option<f64>, burst: Option<f64>) {
        if per_second.is_none() && burst.is_none() {
            return;
        }
        self.told = true;
        if let Some(rate) = per_second {
            self.per_second = rate;
        }
        if let Some(burst) = burst {
            self.burst = Some(burst);
        }
        if self.per_second.is_infinite() {
            self.burst = None;
        } else if self.burst.is_none() {
            self.burst = HttpPolicy::default().burst;
        }
    }

    /// The configured rate, the ceiling the adaptive rate climbs back to (infinite: no
    /// client-side limit, `burst` `None` or `per_second` unlimited).
    pub fn ceiling(&self) -> f64 {
        match self.burst {
            Some(_) if self.per_second > 0.0 => self.per_second,
            _ => f64::INFINITY,
        }
    }
}

/// Statuses worth another attempt.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date, as a duration from `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Counters of a tenant's HTTP.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests sent to the server (retries included).
    pub requests: AtomicU64,
    /// Retries.
    pub retries: AtomicU64,
    /// Requests refused by policy.
    pub denied: AtomicU64,
    /// 429 answers received.
    pub throttled: AtomicU64,
    /// Time spent waiting for the rate limit or a Retry-After, in milliseconds.
    pub waited_ms: AtomicU64,
}

/// The counters of [`HttpCounters`] read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCounts {
    /// Requests sent to the server (retries included).
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    /// Time spent waiting for the rate limit or a Retry-After.
    pub waited: Duration,
}

impl HttpCounts {
    /// What was counted between `earlier` and `self`.
    pub fn since(self, earlier: HttpCounts) -> HttpCounts {
        HttpCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            retries: self.retries.saturating_sub(earlier.retries),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            waited: self.waited.saturating_sub(earlier.waited),
        }
    }
}

impl HttpCounters {
    /// The counters as they are now.
    pub fn snapshot(&self) -> HttpCounts {
        HttpCounts {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            waited: Duration::from_millis(self.waited_ms.load(Ordering::Relaxed)),
        }
    }
}

mod bucket;
mod limiter;

pub use limiter::{Admission, Limiter, RefusedBudget, SHARED_BUDGET_RETRY, SharedBudget};
