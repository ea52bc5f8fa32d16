//! Bitbucket Data Center's own rate limiting (6.6+, Data Center licence), as a server enforces
//! it: a token bucket per user, `capacity` tokens refilled at `refill` per second, one token per
//! authenticated request, and 429 with `Retry-After` (whole seconds) when the bucket is empty;
//! and as it describes it, in the two settings resources any authenticated user may read
//! (`RestRateLimitSettings` and `RestUserRateLimitSettings` in the 9.2 reference).

use crate::version::ServerVersion;
use serde_json::json;
use std::time::{Duration, Instant};

/// What the simulator's rate-limit settings resources say about the bucket it enforces
/// ([`crate::SimConfig::rate_limit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateSettings {
    /// The bucket is the instance's default (limiting is off when there is none); the account
    /// has no settings of its own, so its resource answers 404.
    #[default]
    Instance,
    /// The bucket is the account's own; the instance's default is Bitbucket's (60 and 5). With
    /// no bucket, the account is exempt (`whitelisted`).
    Account,
    /// Both resources answer 401, as a server that does not let the account read them.
    Refused,
}

impl std::str::FromStr for RateSettings {
    type Err = String;

    /// `instance`, `account` or `refused`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "instance" => Ok(RateSettings::Instance),
            "account" => Ok(RateSettings::Account),
            "refused" => Ok(RateSettings::Refused),
            _ => Err(format!("{s:?} is not instance, account or refused")),
        }
    }
}

/// The account the simulator's token belongs to, named in `X-AUSERNAME`.
pub(crate) const ACCOUNT: &str = "sim-user";

/// A bucket as both resources write it: whole numbers (`int32` in the reference).
fn bucket_json(l: ServerRateLimit) -> serde_json::Value {
    json!({"capacity": l.capacity.round() as i64, "fillRate": l.refill.round() as i64})
}

/// The answer to `rest` (the path after `/rest/api/{1.0|latest}/`) when it names a rate-limit
/// settings resource that `version` has (6.6+), or `None` for any other path.
pub(crate) fn settings(
    rest: &str,
    version: ServerVersion,
    limit: Option<ServerRateLimit>,
    described: RateSettings,
) -> Option<(u16, String)> {
    let seg: Vec<&str> = rest.split('/').collect();
    let user = match seg.as_slice() {
        ["admin", "rate-limit", "settings"] => None,
        ["admin", "rate-limit", "settings", "users", slug] => Some(*slug),
        _ => return None,
    };
    if version < ServerVersion::V7_21 {
        return None;
    }
    if described == RateSettings::Refused {
        return Some((
            401,
            crate::render::error(
                "com.atlassian.bitbucket.AuthorisationException",
                "You are not permitted to access this resource",
            ),
        ));
    }
    let bitbucket_default = ServerRateLimit {
        capacity: 60.0,
        refill: 5.0,
    };
    let body = match (user, described) {
        (None, RateSettings::Instance) => json!({
            "enabled": limit.is_some(),
            "defaultSettings": bucket_json(limit.unwrap_or(bitbucket_default)),
        }),
        (None, _) => json!({"enabled": true, "defaultSettings": bucket_json(bitbucket_default)}),
        (Some(ACCOUNT), RateSettings::Account) => match limit {
            Some(l) => json!({
                "settings": bucket_json(l),
                "user": crate::render::user(ACCOUNT),
                "whitelisted": false,
            }),
            None => json!({"user": crate::render::user(ACCOUNT), "whitelisted": true}),
        },
        (Some(_), _) => {
            return Some((
                404,
                crate::render::error(
                    "com.atlassian.bitbucket.user.NoSuchUserException",
                    "The user has no rate limit settings of their own.",
                ),
            ));
        }
    };
    Some((200, body.to_string()))
}

/// The server's token bucket settings (Bitbucket's defaults are 60 and 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerRateLimit {
    /// Tokens the bucket holds (the burst a client may send at once).
    pub capacity: f64,
    /// Tokens added per second.
    pub refill: f64,
}

/// The bucket of the simulated user, full at the start.
#[derive(Debug)]
pub(crate) struct ServerBucket {
    limit: ServerRateLimit,
    tokens: f64,
    refilled: Instant,
}

impl ServerBucket {
    pub(crate) fn new(limit: ServerRateLimit) -> Self {
        Self {
            limit,
            tokens: limit.capacity,
            refilled: Instant::now(),
        }
    }

    /// Takes a token for a request arriving at `now`, or says how long until one is there.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.limit.refill).min(self.limit.capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let secs = (1.0 - self.tokens) / self.limit.refill.max(f64::MIN_POSITIVE);
        Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }
}

impl ServerBucket {
    /// Spends up to `n` tokens as another client of the same account would.
    pub(crate) fn spend(&mut self, n: u32, now: Instant) {
        for _ in 0..n {
            if self.take(now).is_err() {
                return;
            }
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1 (as Bitbucket sends it).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_its_capacity_through_then_refills_at_its_rate() {
        let start = Instant::now();
        let mut b = ServerBucket::new(ServerRateLimit {
            capacity: 3.0,
            refill: 2.0,
        });
        for _ in 0..3 {
            assert_eq!(b.take(start), Ok(()));
        }
        let wait = b.take(start).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        assert_eq!(b.take(start + Duration::from_millis(500)), Ok(()));
        assert!(b.take(start + Duration::from_millis(500)).is_err());
        // Never more than the capacity, however long it rested.
        let later = start + Duration::from_secs(3600);
        assert_eq!(
            (0..5).filter(|_| b.take(later).is_ok()).count(),
            3,
            "capacity caps the burst"
        );
    }
}
