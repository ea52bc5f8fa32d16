//! The tenant's [`Limiter`]: the client-side token bucket every request of the tenant passes,
//! the `Retry-After` block, the adaptive rate (see the [policy](super) for how it moves) and the
//! budget shared with other processes.

use super::bucket::{Bucket, RefusalRun};
use super::*;
use std::sync::{Condvar, Mutex};

/// A told or read budget that the server refused: a run of 429s at it (not a stray one) showed
/// that the server accepts less.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefusedBudget {
    /// The budget's rate, requests per second.
    pub configured: f64,
    /// What the server accepted while refusing, requests per second.
    pub accepted: f64,
}

/// A budget's rate as requests are paced to it: [`PACE`] of it (infinite stays infinite).
fn paced(per_second: f64) -> f64 {
    if per_second.is_finite() {
        per_second * PACE
    } else {
        per_second
    }
}

/// A tenant's rate budget shared by every process that calls its server (the workers of a
/// deployment, on one machine or many): a token bucket kept in a shared place, a database
/// (`bbdc_store::postgres::PgBudget`) for instance. With one, each request takes a token from it
/// after the process's own [`Limiter`] let it through, so that adding processes never sends more
/// than the configured rate in all.
pub trait SharedBudget: Send + Sync {
    /// Takes one token of `tenant`'s bucket, which refills at `per_second` and holds at most
    /// `burst`: `Ok(None)` when taken, `Ok(Some(wait))` when the bucket is empty and a token
    /// is due in `wait`.
    fn take(
        &self,
        tenant: &str,
        per_second: f64,
        burst: f64,
    ) -> Result<Option<Duration>, crate::storage::StoreError>;
}

/// The shared limiter.
pub struct Limiter {
    policy: HttpPolicy,
    bucket: Mutex<Bucket>,
    /// Wakes requests waiting for the one out while measuring.
    serial_done: Condvar,
    /// The budget shared with other processes, and the tenant it is kept for.
    shared: std::sync::OnceLock<(std::sync::Arc<dyn SharedBudget>, String)>,
    /// Until when the shared budget is not asked (it could not be read a moment ago): requests
    /// do not each wait for an unreachable database.
    shared_down_until: Mutex<Option<Instant>>,
}

/// How long the shared budget is left alone after it could not be read.
pub const SHARED_BUDGET_RETRY: Duration = Duration::from_secs(5);

/// A request let through by [`Limiter::acquire`]. Hold it until the request is answered (or has
/// failed): while the limiter measures the server's budget one request at a time, the next one
/// leaves when this is dropped.
#[must_use = "dropping the admission at once lets the next request leave before this one is answered"]
pub struct Admission<'a> {
    limiter: &'a Limiter,
    serial: bool,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.serial {
            if let Ok(mut b) = self.limiter.bucket.lock() {
                b.serial_out = false;
            }
            self.limiter.serial_done.notify_all();
        }
    }
}

impl std::fmt::Debug for Admission<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("serial", &self.serial)
            .finish()
    }
}

impl Limiter {
    /// A limiter with a full bucket.
    pub fn new(policy: HttpPolicy) -> Self {
        // One token short of the burst: the server's bucket and the client's start full
        // together, and a request that arrives a moment early would otherwise meet an empty one.
        let tokens = policy.burst.map_or(0.0, |b| (b - 1.0).max(1.0));
        let now = Instant::now();
        let rate = paced(policy.ceiling());
        let burst = policy.burst.filter(|_| rate.is_finite());
        let trusted = policy.told && rate.is_finite();
        Self {
            policy,
            bucket: Mutex::new(Bucket {
                tokens,
                refilled: now,
                blocked_until: None,
                rate,
                lowered_at: None,
                stepped_at: now,
                limit_seen: f64::INFINITY,
                probe_every: PROBE_STEP,
                lone_floor: 0.0,
                accepted: (now, 0, 0),
                window: (now, 0),
                measured: 0.0,
                answers: (0, 0),
                run: None,
                round: (now, 0),
                measuring: None,
                serial_out: false,
                ceiling: rate,
                burst,
                trusted,
                sent: 0,
                rounds_at_ceiling: 0,
                refused_budget: None,
                accepted_total: 0,
                capacity_seen: None,
                fast_probe: false,
            }),
            serial_done: Condvar::new(),
            shared: std::sync::OnceLock::new(),
            shared_down_until: Mutex::new(None),
        }
    }

    /// Also takes every request's token from `budget`, kept for `tenant` (once; a later call
    /// changes nothing and returns `false`). A limiter with no rate limit (`unlimited`) has
    /// nothing to share and ignores it.
    pub fn share(&self, budget: std::sync::Arc<dyn SharedBudget>, tenant: &str) -> bool {
        self.shared.set((budget, tenant.to_owned())).is_ok()
    }

    /// Waits for a token of the shared budget, if there is one; `Err` with the time slept when
    /// the token would come past `deadline`. A budget that cannot be read (its database is
    /// down) lets the request through on this process's own limit, with a warning: the work
    /// that needs the database fails on its own, and requests already under way finish.
    fn shared_token(&self, deadline: Instant) -> Result<Duration, Duration> {
        let Some((budget, tenant)) = self.shared.get() else {
            return Ok(Duration::ZERO);
        };
        let Ok((rate, burst)) = self
            .bucket
            .lock()
            .map(|b| (b.ceiling, b.burst.unwrap_or(1.0)))
        else {
            return Ok(Duration::ZERO);
        };
        if !rate.is_finite() {
            return Ok(Duration::ZERO);
        }
        let down = |until: Option<Instant>| until.is_some_and(|u| Instant::now() < u);
        if self
            .shared_down_until
            .lock()
            .map(|u| down(*u))
            .unwrap_or(false)
        {
            return Ok(Duration::ZERO);
        }
        let mut slept = Duration::ZERO;
        loop {
            match budget.take(tenant, rate, burst.max(1.0)) {
                Ok(None) => return Ok(slept),
                Ok(Some(wait)) => sleep_within(wait, deadline, &mut slept)?,
                Err(e) => {
                    tracing::warn!(
                        "the shared rate budget cannot be read; this process's own limit applies for {}s: {}",
                        SHARED_BUDGET_RETRY.as_secs(),
                        crate::errors::chain(&e)
                    );
                    if let Ok(mut until) = self.shared_down_until.lock() {
                        *until = Instant::now().checked_add(SHARED_BUDGET_RETRY);
                    }
                    return Ok(slept);
                }
            }
        }
    }

    /// The rate let through now, in requests per second (infinite: no limit). It is the
    /// configured ceiling unless the server has limited the tenant lately.
    pub fn current_rate(&self) -> f64 {
        self.current_rate_at(Instant::now())
    }

    fn current_rate_at(&self, now: Instant) -> f64 {
        self.bucket
            .lock()
            .map(|mut b| {
                self.recover(&mut b, now);
                b.rate
            })
            .unwrap_or(f64::INFINITY)
    }

    /// Paces requests to a budget read from the server (`per_second` infinite: none, the
    /// adaptive client), in place of the one configured: a few per cent under its refill
    /// ([`PACE`]), with `burst` less the requests already let through (the server counted
    /// them).
    pub fn set_budget(&self, per_second: f64, burst: Option<f64>) {
        let Ok(mut b) = self.bucket.lock() else {
            return;
        };
        let ceiling = paced(per_second);
        b.ceiling = ceiling;
        b.rate = ceiling;
        b.burst = burst.filter(|_| ceiling.is_finite());
        b.trusted = ceiling.is_finite();
        b.tokens = b
            .burst
            .map_or(0.0, |burst| (burst - b.sent as f64).max(0.0));
        b.refilled = Instant::now();
        // What was learned of another budget does not hold for this one.
        b.limit_seen = f64::INFINITY;
        b.lone_floor = 0.0;
        b.probe_every = PROBE_STEP;
        b.fast_probe = false;
        b.lowered_at = None;
        b.run = None;
        b.measuring = None;
        b.rounds_at_ceiling = 0;
        b.refused_budget = None;
    }

    /// The budget the server refused, if a run of 429s at it showed that it accepts less.
    pub fn refused_budget(&self) -> Option<RefusedBudget> {
        self.bucket.lock().ok().and_then(|b| b.refused_budget)
    }

    /// The server answered 429: lower the rate (once per [`THROTTLE_EPISODE`]).
    pub fn throttled(&self) {
        self.throttled_at(Instant::now());
    }

    /// The server accepted a request sent at `sent` (any answer but 429): what it accepts is
    /// the rate a 429 lowers to.
    pub fn accepted(&self, sent: Instant) {
        if let Ok(mut b) = self.bucket.lock() {
            b.accept(Instant::now());
            b.accept_sent(sent);
        }
    }

    fn throttled_at(&self, now: Instant) {
        let Ok(mut b) = self.bucket.lock() else {
            return;
        };
        b.answered(true);
        let in_round = b.refused_in_round(now);
        let continued = b
            .run
            .is_some_and(|run| now.saturating_duration_since(run.last) <= REFUSAL_RUN_GAP);
        if !continued && b.rate.is_infinite() {
            // What the server took lately before refusing: its bucket, when it was full.
            b.capacity_seen = Some(b.accepted_lately(now));
        }
        if continued && in_round == 1 {
            b.close_segment(now);
        }
        b.run = Some(match b.run {
            Some(run) if continued => RefusalRun { last: now, ..run },
            _ => {
                b.rounds_at_ceiling = 0;
                RefusalRun::starting(now)
            }
        });
        // At a told or read budget, a 429 is the server's bucket running dry a moment early
        // (timing jitter, or another client of the same account): the requests wait out its
        // `Retry-After` and go on at the budget. The client's own bucket is emptied, since the
        // server's is. Only a run of them ([`TRUSTED_RUN_ROUNDS`] rounds in one refusal run,
        // with [`LIMITING_SHARE`] of the last answers refused) shows that the budget is wrong:
        // then the rate is lowered to what the server accepts, once said in the log.
        let trusted = b.trusted;
        if trusted {
            b.tokens = 0.0;
            b.refilled = now;
            if in_round == 1 {
                b.rounds_at_ceiling = b.rounds_at_ceiling.saturating_add(1);
            }
            if b.rounds_at_ceiling < TRUSTED_RUN_ROUNDS || !b.limiting() {
                return;
            }
        }
        // A stray 429 (a proxy, a node restarting, a server-wide limit hit once) among many
        // accepted requests says nothing about this client's budget: Retry-After covers it.
        // Lowering on it would let a steady trickle of them drag the rate to the floor. A 429
        // met at about the budget last seen, or above it, is that budget's answer, however
        // rare: a rate a few per cent over a token bucket's refill is refused only a few per
        // cent of the time, which the share alone would never catch, and the budget measured
        // over one second may be a few per cent high. Such lone 429s lower the rate only down
        // to [`LONE_429_FLOOR`] of the budget the last share-backed lowering measured, so
        // random 429s after one cost a bounded part of the rate, not all of it.
        self.recover(&mut b, now);
        b.stop_measuring_if_idle(now);
        // The requests in flight refused together, and nothing lowered since the run began:
        // the server's bucket has run dry. The budget cannot be read yet (the run has only
        // begun, and the last second holds what was left of the server's burst), and waiting
        // for an eighth of the answers to be refused costs three or four 429s a round with
        // several requests in flight. Requests leave one at a time instead (`serial_out`), so
        // that each round of the run costs one 429, until the run is long enough to read the
        // budget over.
        let run_started = b.run.map(|r| r.started);
        // With no limit of its own yet, a client's first 429s come when the server's bucket
        // runs dry under a burst: what the server accepted over the last second is then its
        // bucket, not its refill, and lowering to it would halve the rate of a server whose
        // small bucket refills fast. The budget is read first, one request at a time, between
        // two rounds of 429s.
        let unread = b.rate.is_infinite() && b.run_budget(now).is_none() && !trusted;
        let segment_read = b.run.is_some_and(|r| r.segment_budget.is_some());
        let measured = if b.measuring.is_some() {
            b.measuring = Some(now);
            run_started.is_some_and(|s| now.saturating_duration_since(s) >= MEASURING_SPAN)
                || segment_read
        } else if unread {
            b.measuring = Some(now);
            tracing::info!(
                target: "bbdc_host::policy",
                "the server refused a burst: measuring its budget one request at a time"
            );
            false
        } else {
            let lowered_in_run = b
                .lowered_at
                .zip(run_started)
                .is_some_and(|(lowered, started)| lowered >= started);
            if in_round >= REFUSED_IN_A_ROUND && !lowered_in_run && !trusted {
                b.measuring = Some(now);
                tracing::info!(
                    target: "bbdc_host::policy",
                    "the requests in flight refused together: measuring the server's budget one request at a time"
                );
            }
            false
        };
        let limiting = (b.limiting() && !unread) || measured || trusted;
        tracing::debug!(
            target: "bbdc_host::policy",
            refused_of_last_64 = b.answers.0.count_ones(),
            last_answers = format_args!("{:016b}", b.answers.0 & 0xffff),
            measuring = b.measuring.is_some(),
            in_round,
            run_seconds = run_started.map(|s| now.saturating_duration_since(s).as_secs_f64()),
            "429"
        );
        let near_budget = b.limit_seen.is_finite()
            && b.rate >= 0.9 * b.limit_seen
            && b.rate * 0.95 >= b.lone_floor;
        if !limiting && !near_budget {
            return;
        }
        if b.lowered_at
            .is_some_and(|at| now.saturating_duration_since(at) < THROTTLE_EPISODE)
        {
            return;
        }
        let from = if b.rate.is_finite() {
            b.rate
        } else {
            b.recent_rate(now)
        }
        .max(MIN_ADAPTIVE_RATE);
        let accepted = b.accepted_rate(now);
        // The server accepted `accepted` a second: the rate it refused is at least that.
        let from = from.max(accepted);
        // The server's budget: what it accepted over the refusal run, or over the last second
        // while the run is young, while refusing the rest (a saturated token bucket passes its
        // refill rate); when it accepted nothing, only the rate it refused is known.
        let budget = b
            .run_budget(now)
            .or((accepted >= 1.0).then_some(accepted))
            .filter(|r| *r >= 1.0);
        let limit = budget.unwrap_or(from);
        // A probe refused where the last 429 was: the server's budget is there; probe it less.
        let same_place =
            b.limit_seen.is_finite() && (limit - b.limit_seen).abs() <= 0.1 * b.limit_seen;
        // With no ceiling, a budget read over a short run may read low: the rate probes fast
        // above it. Read over a long run, it probes as under a ceiling, so that a server that
        // keeps its budget sees a rare probe refused.
        let read_over = run_started.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        b.fast_probe = !b.ceiling.is_finite() && read_over < COARSE_READING;
        let first_probe = if b.fast_probe {
            ADAPTIVE_PROBE_STEP
        } else {
            PROBE_STEP
        };
        b.probe_every = if same_place {
            (b.probe_every * 2).min(MAX_PROBE_STEP)
        } else {
            first_probe
        };
        b.limit_seen = limit;
        if limiting {
            b.lone_floor = LONE_429_FLOOR * limit;
        }
        b.rate = match budget {
            Some(budget) => budget * 0.95,
            None => from / 2.0,
        }
        .max(MIN_ADAPTIVE_RATE);
        if trusted {
            b.trusted = false;
            let configured = b.ceiling / PACE;
            let took = budget.unwrap_or(0.0);
            b.refused_budget = Some(RefusedBudget {
                configured,
                accepted: took,
            });
            tracing::warn!(
                target: "bbdc_host::policy",
                "the server refuses the rate budget of {configured:.1} requests a second: it accepted about {took:.1} a second over a run of 429s; the rate is lowered to that. Configure at most that (--rate, or per_second in the tenant file), or ask the administrator for the account's budget"
            );
        }
        tracing::info!(
            target: "bbdc_host::policy",
            accepted_per_second = accepted,
            refused_of_last_64 = b.answers.0.count_ones(),
            accepted_over_refusal_run = b.run_budget(now),
            limiting,
            rate = b.rate,
            budget_seen = b.limit_seen,
            "the server is limiting: rate lowered"
        );
        // Measured: requests leave at the rate again, as many at a time as the caller sends.
        b.measuring = None;
        // The server's bucket is empty: the client's holds what it will have refilled, no
        // more (none yet; see `Bucket::adaptive_burst` for how much it may hold).
        b.tokens = 0.0;
        b.refilled = now;
        b.lowered_at = Some(now);
        b.stepped_at = now;
    }

    /// Climbs the rate: a step per [`RECOVERY_STEP`] up to just below the budget the last
    /// lowering saw, then a step per [`PROBE_STEP`] beyond it, up to the ceiling.
    fn recover(&self, b: &mut Bucket, now: Instant) {
        let ceiling = b.ceiling;
        while b.rate < ceiling {
            let safe = b.limit_seen * 0.95;
            let below = b.rate < safe;
            let step = if below { RECOVERY_STEP } else { b.probe_every };
            let Some(next) = b.stepped_at.checked_add(step) else {
                return;
            };
            if next > now {
                return;
            }
            b.stepped_at = next;
            let climbed = if below {
                (b.rate + b.limit_seen / 10.0).min(safe)
            } else if b.fast_probe {
                b.rate * ADAPTIVE_PROBE_CLIMB
            } else {
                b.rate * 1.05
            };
            b.rate = if ceiling.is_finite() {
                climbed.min(ceiling)
            } else if climbed > LIFT_AT * b.limit_seen {
                f64::INFINITY
            } else {
                climbed
            };
        }
    }

    /// The policy.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Waits until a request may leave (Retry-After, the request out while the budget is being
    /// measured, then a token); returns how long it slept and the [`Admission`] to hold until
    /// the request is answered, or `Err` with the time slept when leaving would take past
    /// `deadline` (a wait for a token or a Retry-After is not started then).
    ///
    /// With a [shared budget](Limiter::share), a token of it is taken after this process's own
    /// limit let the request through.
    pub fn acquire(&self, deadline: Instant) -> Result<(Duration, Admission<'_>), Duration> {
        let (slept, admission) = self.acquire_here(deadline)?;
        match self.shared_token(deadline) {
            Ok(more) => Ok((slept + more, admission)),
            Err(more) => Err(slept + more),
        }
    }

    /// [`Limiter::acquire`] on this process's own limit.
    fn acquire_here(&self, deadline: Instant) -> Result<(Duration, Admission<'_>), Duration> {
        let mut slept = Duration::ZERO;
        let admitted = |slept, serial| {
            Ok((
                slept,
                Admission {
                    limiter: self,
                    serial,
                },
            ))
        };
        loop {
            let wait = {
                let Ok(mut b) = self.bucket.lock() else {
                    return admitted(slept, false);
                };
                let now = Instant::now();
                self.recover(&mut b, now);
                b.stop_measuring_if_idle(now);
                if let Some(until) = b.blocked_until.filter(|u| *u > now) {
                    until - now
                } else if b.serial_out {
                    // One request at a time while measuring: wait for the one out.
                    let left = deadline.saturating_duration_since(now);
                    if left.is_zero() {
                        return Err(slept);
                    }
                    let Ok((b, _)) = self.serial_done.wait_timeout(b, left) else {
                        return admitted(slept, false);
                    };
                    drop(b);
                    slept += now.elapsed();
                    continue;
                } else if b.rate.is_finite() {
                    // Below the ceiling (after a 429) the burst is the server's bucket as the
                    // client saw it, or one request: the server's bucket is what is being
                    // refilled.
                    let burst = match b.burst {
                        Some(burst) if b.rate >= b.ceiling => burst,
                        _ => b.adaptive_burst(),
                    };
                    let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
                    b.tokens = (b.tokens + elapsed * b.rate).min(burst);
                    b.refilled = now;
                    if b.tokens >= 1.0 {
                        b.tokens -= 1.0;
                        return admitted(slept, b.admit(now));
                    }
                    Duration::try_from_secs_f64((1.0 - b.tokens) / b.rate.max(0.001))
                        .unwrap_or(Duration::MAX)
                } else {
                    return admitted(slept, b.admit(now));
                }
            };
            sleep_within(wait, deadline, &mut slept)?;
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

/// Sleeps `wait` and adds it to `slept`, unless waking would come past `deadline`: then the
/// time slept so far is the error, and nothing is slept.
fn sleep_within(wait: Duration, deadline: Instant, slept: &mut Duration) -> Result<(), Duration> {
    if Instant::now()
        .checked_add(wait)
        .is_none_or(|t| t > deadline)
    {
        return Err(*slept);
    }
    std::thread::sleep(wait);
    *slept += wait;
    Ok(())
}

#[cfg(test)]
mod tests;
