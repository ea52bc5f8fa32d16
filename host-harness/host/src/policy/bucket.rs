//! The state of a tenant's [`Limiter`](super::Limiter) and what it measures of the server:
//! its client-side bucket, the answers lately (429 or not), the refusal run and round a 429
//! belongs to, and the rates requests leave and are accepted at.

use super::*;

pub(super) struct Bucket {
    pub(super) tokens: f64,
    pub(super) refilled: Instant,
    /// No request before this (a server's Retry-After).
    pub(super) blocked_until: Option<Instant>,
    /// The rate let through now: the ceiling, or less after a 429 (infinite: no limit).
    pub(super) rate: f64,
    /// When a 429 last lowered the rate.
    pub(super) lowered_at: Option<Instant>,
    /// When the rate last climbed (or was lowered).
    pub(super) stepped_at: Instant,
    /// The server's budget as the last lowering saw it: what it accepted while refusing, or the
    /// rate it refused when it accepted nothing (infinite: no 429 yet).
    pub(super) limit_seen: f64,
    /// How long the rate waits between probes above `limit_seen`.
    pub(super) probe_every: Duration,
    /// Lone 429s (the share not reached) lower the rate no further than this.
    pub(super) lone_floor: f64,
    /// Responses the server accepted (not 429): the previous and the current second's counts,
    /// and when the current second started.
    pub(super) accepted: (Instant, u32, u32),
    /// Requests let through in the current measuring window, and when it started.
    pub(super) window: (Instant, u32),
    /// The rate measured over the last complete window.
    pub(super) measured: f64,
    /// The last responses, newest in the lowest bit: 1 for a 429, 0 for any other answer; and
    /// how many of the 64 bits are responses yet.
    pub(super) answers: (u64, u32),
    /// The current run of 429s, if one is going on.
    pub(super) run: Option<RefusalRun>,
    /// The current round of 429s: its first, and how many.
    pub(super) round: (Instant, u32),
    /// Since when the limiter has been measuring the server's budget one request at a time
    /// (the latest 429 while measuring), if it is.
    pub(super) measuring: Option<Instant>,
    /// While measuring: a request is out, and no other may leave until it is answered.
    pub(super) serial_out: bool,
    /// The budget requests are paced to: the told or read rate, a few per cent under it
    /// ([`PACE`]); infinite without one.
    pub(super) ceiling: f64,
    /// The burst of that budget (`None`: no client-side burst, as with no budget).
    pub(super) burst: Option<f64>,
    /// Whether the ceiling is trusted: told or read, and not yet refused by a run of 429s. A
    /// lone 429 at a trusted ceiling is waited out; at one that is not, it is the adaptive
    /// rate's to answer.
    pub(super) trusted: bool,
    /// Requests let through so far.
    pub(super) sent: u64,
    /// 429 rounds in the current refusal run while the rate was at a trusted ceiling.
    pub(super) rounds_at_ceiling: u32,
    /// The budget the server refused, and what it accepted instead, once a run of 429s at the
    /// ceiling showed the budget to be wrong.
    pub(super) refused_budget: Option<RefusedBudget>,
    /// Answers the server accepted so far.
    pub(super) accepted_total: u64,
    /// What the server accepted before its first 429, while requests left with no client-side
    /// limit: its bucket's capacity, when it started full.
    pub(super) capacity_seen: Option<f64>,
    /// Whether the rate probes fast above the budget last seen (see
    /// [`ADAPTIVE_PROBE_STEP`]): no ceiling, and a budget read over a short run.
    pub(super) fast_probe: bool,
}

/// 429s each less than [`REFUSAL_RUN_GAP`] after the one before. At every 429 the server's
/// bucket is empty, so between the first and any later one it accepted exactly what it refilled:
/// the requests accepted since the first, over the time since, measure its budget, and the
/// measure gets sharper as the run goes on. (A count over the last second holds whatever was
/// left of the server's bucket when the run began, and reads high.)
#[derive(Debug, Clone, Copy)]
pub(super) struct RefusalRun {
    /// Its first 429.
    pub(super) started: Instant,
    /// Its latest 429.
    pub(super) last: Instant,
    /// Requests sent since it started that the server accepted (requests sent before, and
    /// answered after, were let through before the bucket ran dry).
    pub(super) accepted: u64,
    /// Of those, the ones sent since its latest 429.
    pub(super) segment: u64,
    /// The budget read over the span between two of its 429s (see [`Bucket::close_segment`]),
    /// the latest one long enough to read it over.
    pub(super) segment_budget: Option<f64>,
}

impl RefusalRun {
    /// A run starting with a 429 at `now`.
    pub(super) fn starting(now: Instant) -> Self {
        Self {
            started: now,
            last: now,
            accepted: 0,
            segment: 0,
            segment_budget: None,
        }
    }
}

/// A reading that counts a filled bucket once is at most this many times the plain one.
const MAX_FILLED_READING: f64 = 2.0;

/// A span between two 429s shorter than this reads the budget too coarsely to be used.
const MIN_SEGMENT: Duration = Duration::from_millis(250);

/// How long the limiter measures the rate requests leave at.
const MEASURE_WINDOW: Duration = Duration::from_secs(1);

impl Bucket {
    /// Counts a request let through at `now`.
    pub(super) fn count(&mut self, now: Instant) {
        let (start, n) = self.window;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= MEASURE_WINDOW {
            self.measured = f64::from(n) / elapsed.as_secs_f64();
            self.window = (now, 1);
        } else {
            self.window = (start, n.saturating_add(1));
        }
    }

    /// Lets a request leave at `now`: counts it, and while measuring marks it the one out.
    /// Returns whether it is.
    pub(super) fn admit(&mut self, now: Instant) -> bool {
        self.count(now);
        self.sent = self.sent.saturating_add(1);
        let serial = self.measuring.is_some();
        self.serial_out |= serial;
        serial
    }

    /// Records one response in [`Bucket::answers`].
    pub(super) fn answered(&mut self, refused: bool) {
        let (bits, n) = self.answers;
        self.answers = ((bits << 1) | u64::from(refused), (n + 1).min(u64::BITS));
    }

    /// Whether the last responses look like a server spending its budget, not a stray 429: at
    /// least [`LIMITING_SHARE`] of them refused.
    pub(super) fn limiting(&self) -> bool {
        let (bits, n) = self.answers;
        let refused = bits.count_ones();
        n > 0 && f64::from(refused) >= LIMITING_SHARE * f64::from(n)
    }

    /// Counts a 429 answered at `now` in its round: the current one while its `Retry-After`
    /// holds or within [`ROUND_WINDOW`] of its first, a new one otherwise. Returns how many the
    /// round has.
    pub(super) fn refused_in_round(&mut self, now: Instant) -> u32 {
        let (first, n) = self.round;
        let blocked = self.blocked_until.is_some_and(|u| u > now);
        self.round = if n > 0 && (blocked || now.saturating_duration_since(first) < ROUND_WINDOW) {
            (first, n.saturating_add(1))
        } else {
            (now, 1)
        };
        self.round.1
    }

    /// Ends measuring when no 429 has come for [`MEASURING_IDLE`] after the last one's
    /// `Retry-After`.
    pub(super) fn stop_measuring_if_idle(&mut self, now: Instant) {
        if let Some(last) = self.measuring {
            let quiet_from = self.blocked_until.map_or(last, |u| u.max(last));
            if now.saturating_duration_since(quiet_from) >= MEASURING_IDLE {
                self.measuring = None;
            }
        }
    }

    /// Counts, for the refusal run, a request sent at `sent` that the server accepted.
    pub(super) fn accept_sent(&mut self, sent: Instant) {
        if let Some(run) = &mut self.run
            && sent >= run.started
        {
            run.accepted = run.accepted.saturating_add(1);
            if sent >= run.last {
                run.segment = run.segment.saturating_add(1);
            }
        }
    }

    /// At a 429 at `now` that starts a new round of the refusal run: reads the server's budget
    /// over the span since the run's latest 429. The server's bucket was empty at both, so what
    /// it accepted in between is what it refilled, unless its bucket filled up while the
    /// requests waited out the latest `Retry-After` (a small bucket refilled fast fills within
    /// the second Bitbucket asks for): then it accepted a full bucket, as many as it took
    /// before its first 429 ([`Bucket::capacity_seen`]), and its refill over the time requests
    /// were sent. The larger of the two readings is the budget: each is low only where the
    /// other holds.
    pub(super) fn close_segment(&mut self, now: Instant) {
        let capacity = self.capacity_seen;
        let blocked = self.blocked_until;
        let Some(run) = &mut self.run else {
            return;
        };
        let span = now.saturating_duration_since(run.last);
        let resumed = blocked
            .filter(|u| *u > run.last && *u < now)
            .unwrap_or(run.last);
        let sending = now.saturating_duration_since(resumed);
        let accepted = run.segment as f64;
        run.segment = 0;
        if span < MIN_SEGMENT {
            return;
        }
        let plain = accepted / span.as_secs_f64();
        let mut budget = plain;
        if let Some(capacity) = capacity
            && sending >= MIN_SEGMENT
        {
            // Bounded: a bucket that read low (drained by another client before the first
            // 429) would otherwise read the refill far too high.
            let filled = (accepted - capacity) / sending.as_secs_f64();
            budget = budget.max(filled.min(MAX_FILLED_READING * plain));
        }
        if budget >= MIN_ADAPTIVE_RATE {
            run.segment_budget = Some(budget);
        }
    }

    /// The server's budget measured over the refusal run going on at `now`, once it is long
    /// enough ([`MIN_REFUSAL_RUN`]) and the server accepted something in it.
    pub(super) fn run_budget(&self, now: Instant) -> Option<f64> {
        let run = self.run?;
        let span = now.saturating_duration_since(run.started);
        let whole = (span >= MIN_REFUSAL_RUN && run.accepted > 0)
            .then(|| run.accepted as f64 / span.as_secs_f64());
        match (whole, run.segment_budget) {
            (Some(w), Some(s)) => Some(w.max(s)),
            (w, s) => w.or(s),
        }
    }

    /// The burst a client below its ceiling may send: nine tenths of the server's bucket as its
    /// first 429 showed it (the requests it took then include a little refill), so that what
    /// the server refilled during a `Retry-After` is spent at once, as the server allows; one
    /// request when the bucket was not seen.
    pub(super) fn adaptive_burst(&self) -> f64 {
        self.capacity_seen
            .map_or(1.0, |c| (0.9 * c).floor().max(1.0))
    }

    /// Responses accepted over the last two seconds at most (the previous and the current
    /// counting second), and never more than all of them.
    pub(super) fn accepted_lately(&self, now: Instant) -> f64 {
        let (start, previous, current) = self.accepted;
        let lately = if now.saturating_duration_since(start) < 2 * MEASURE_WINDOW {
            f64::from(previous) + f64::from(current)
        } else {
            0.0
        };
        lately.min(self.accepted_total as f64)
    }

    /// Counts a response the server accepted at `now`.
    pub(super) fn accept(&mut self, now: Instant) {
        self.answered(false);
        self.accepted_total = self.accepted_total.saturating_add(1);
        let (start, previous, current) = self.accepted;
        let elapsed = now.saturating_duration_since(start);
        self.accepted = if elapsed >= 2 * MEASURE_WINDOW {
            (now, 0, 1)
        } else if elapsed >= MEASURE_WINDOW {
            (start + MEASURE_WINDOW, current, 1)
        } else {
            (start, previous, current.saturating_add(1))
        };
    }

    /// Responses accepted over the last second (the previous second weighted by how much of it
    /// the last second still covers).
    pub(super) fn accepted_rate(&self, now: Instant) -> f64 {
        let (start, previous, current) = self.accepted;
        let into = now.saturating_duration_since(start).as_secs_f64();
        if into >= 2.0 * MEASURE_WINDOW.as_secs_f64() {
            return 0.0;
        }
        if into >= MEASURE_WINDOW.as_secs_f64() {
            let left = 2.0 - into;
            return f64::from(current) * left;
        }
        f64::from(current) + f64::from(previous) * (1.0 - into)
    }

    /// The rate requests have been leaving at lately: the last complete window's, or the
    /// current window's when it is higher (counted over at least 100 ms, so that a burst just
    /// begun reads as the fast rate it is, not as the idle second before it).
    pub(super) fn recent_rate(&self, now: Instant) -> f64 {
        let (start, n) = self.window;
        let elapsed = now.saturating_duration_since(start).as_secs_f64().max(0.1);
        self.measured.max(f64::from(n) / elapsed)
    }
}
