//! Bitbucket Data Center's own rate limiting (6.6+, Data Center licence), as a server enforces
//! it: a token bucket per user, `capacity` tokens refilled at `refill` per second, one token per
//! authenticated request, and 429 with `Retry-After` (whole seconds) when the bucket is empty.

use std::time::{Duration, Instant};

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
