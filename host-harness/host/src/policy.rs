//! The tenant's HTTP policy, shared by all of its concurrent calls: a client-side token bucket
//! (Bitbucket's typical 60-token burst refilled at 5 per second by default), `Retry-After` on 429
//! and 503 honoured by every call of the tenant (no request leaves before it expires), and
//! bounded retries with exponential backoff and full jitter on 429, 502, 503, 504 and connection
//! failures. Every REST call is a GET, so retrying is safe.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Rate and retry settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpPolicy {
    /// Token-bucket burst (`None`: no client-side limit).
    pub burst: Option<f64>,
    /// Token refill per second.
    pub per_second: f64,
    /// Requests sent for one request of the connector, the first included, whatever the reason
    /// for each retry (429, 502/503/504, a cut connection or body). This policy is the only
    /// retry of a request: nothing above it (connector or sync job) sends it again.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with full jitter.
    #[serde(with = "humantime_serde")]
    pub base_backoff: Duration,
    /// Longest single backoff.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Longest a request may spend waiting and retrying before the last answer is returned.
    #[serde(with = "humantime_serde")]
    pub total_budget: Duration,
    /// Longest server-requested wait (`Retry-After`) that is honoured. A longer one is not
    /// waited for: the answer goes back at once and the call fails `rate-limited`.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

/// Default [`HttpPolicy::max_wait`]: 15 minutes.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            burst: Some(60.0),
            per_second: 5.0,
            max_attempts: 6,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            total_budget: Duration::from_secs(120),
            max_wait: DEFAULT_MAX_WAIT,
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

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// No request before this (a server's Retry-After).
    blocked_until: Option<Instant>,
}

/// The shared limiter.
pub struct Limiter {
    policy: HttpPolicy,
    bucket: Mutex<Bucket>,
}

impl Limiter {
    /// A limiter with a full bucket.
    pub fn new(policy: HttpPolicy) -> Self {
        let tokens = policy.burst.unwrap_or(0.0);
        Self {
            policy,
            bucket: Mutex::new(Bucket {
                tokens,
                refilled: Instant::now(),
                blocked_until: None,
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Waits until a request may leave (Retry-After, then a token); returns how long it slept,
    /// or `Err` with the time slept when leaving would take past `deadline` (the wait is not
    /// started then).
    pub fn acquire(&self, deadline: Instant) -> Result<Duration, Duration> {
        let mut slept = Duration::ZERO;
        loop {
            let wait = {
                let Ok(mut b) = self.bucket.lock() else {
                    return Ok(slept);
                };
                let now = Instant::now();
                if let Some(until) = b.blocked_until.filter(|u| *u > now) {
                    until - now
                } else if let Some(burst) = self.policy.burst {
                    let elapsed = now.duration_since(b.refilled).as_secs_f64();
                    b.tokens = (b.tokens + elapsed * self.policy.per_second).min(burst);
                    b.refilled = now;
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        return Ok(slept);
                    }
                    Duration::try_from_secs_f64(
                        (1.0 - b.tokens) / self.policy.per_second.max(0.001),
                    )
                    .unwrap_or(Duration::MAX)
                } else {
                    return Ok(slept);
                }
            };
            if Instant::now()
                .checked_add(wait)
                .is_none_or(|t| t > deadline)
            {
                return Err(slept);
            }
            std::thread::sleep(wait);
            slept += wait;
        }
    }

    /// Holds every request of the tenant until `delay` from now has passed; a delay longer
    /// than [`HttpPolicy::max_wait`] holds them for `max_wait`.
    pub fn block_for(&self, delay: Duration) {
        let delay = delay.min(self.policy.max_wait);
        if let Ok(mut b) = self.bucket.lock()
            && let Some(until) = Instant::now().checked_add(delay)
        {
            b.blocked_until = Some(b.blocked_until.map_or(until, |u| u.max(until)));
        }
    }

    /// Backoff before attempt `attempt` (1 = the first retry): up to `base_backoff` before the
    /// first retry, doubling per retry up to `max_backoff`, with full jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .policy
            .base_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.policy.max_backoff);
        cap.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_of_any_size_or_sign_never_panics() {
        let now = SystemTime::now();
        for v in [
            "18446744073709551615",
            "9223372036854775807",
            "99999999999999999999999",
            "-1",
            "-9223372036854775808",
            "1e9",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            let parsed = parse_retry_after(v, now);
            let l = Limiter::new(HttpPolicy {
                burst: None,
                max_wait: Duration::from_millis(20),
                ..HttpPolicy::default()
            });
            if let Some(d) = parsed {
                l.block_for(d);
            }
            let far = Instant::now() + Duration::from_secs(3600);
            let waited = l.acquire(far).expect("within the deadline");
            assert!(waited <= Duration::from_secs(1), "{v}: waited {waited:?}");
        }
    }

    #[test]
    fn a_wait_past_the_deadline_is_not_started() {
        let l = Limiter::new(HttpPolicy {
            burst: None,
            ..HttpPolicy::default()
        });
        l.block_for(Duration::from_secs(60));
        let started = Instant::now();
        assert!(l.acquire(started + Duration::from_millis(50)).is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 502, 503, 504] {
            assert!(is_retryable_status(s));
        }
        for s in [200, 400, 401, 403, 404, 500] {
            assert!(!is_retryable_status(s));
        }
    }

    #[test]
    fn the_first_retry_waits_at_most_the_base_backoff() {
        let l = Limiter::new(HttpPolicy::default());
        let base = HttpPolicy::default().base_backoff;
        for _ in 0..200 {
            assert!(l.backoff(1) <= base);
            assert!(l.backoff(2) <= base * 2);
        }
    }

    #[test]
    fn backoff_is_bounded() {
        let l = Limiter::new(HttpPolicy::default());
        for attempt in 0..40 {
            assert!(l.backoff(attempt) <= HttpPolicy::default().max_backoff);
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_waits() {
        let l = Limiter::new(HttpPolicy {
            burst: Some(3.0),
            per_second: 50.0,
            ..HttpPolicy::default()
        });
        for _ in 0..3 {
            assert_eq!(l.acquire(far()), Ok(Duration::ZERO));
        }
        assert!(
            l.acquire(far()).unwrap() > Duration::ZERO,
            "the fourth request waits for a token"
        );
    }

    #[test]
    fn a_block_holds_requests() {
        let l = Limiter::new(HttpPolicy {
            burst: None,
            ..HttpPolicy::default()
        });
        l.block_for(Duration::from_millis(30));
        assert!(l.acquire(far()).unwrap() >= Duration::from_millis(25));
    }
}
