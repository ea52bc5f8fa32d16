//! The HTTP policy's own tests: the limiter against server profiles, retries, budgets.

use super::*;

/// Acquires, drops the admission at once, and returns the time slept.
fn slept(l: &Limiter, deadline: Instant) -> Result<Duration, Duration> {
    l.acquire(deadline).map(|(slept, _)| slept)
}

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
        let waited = slept(&l, far).expect("within the deadline");
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
    assert!(slept(&l, started + Duration::from_millis(50)).is_err());
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
    // It starts a token short of the burst, a margin for a request that reaches the server's
    // bucket (full at the same moment) a moment early.
    for _ in 0..2 {
        assert_eq!(slept(&l, far()), Ok(Duration::ZERO));
    }
    assert!(
        slept(&l, far()).unwrap() > Duration::ZERO,
        "the third request waits for a token"
    );
}

#[test]
fn a_block_holds_requests() {
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    l.block_for(Duration::from_millis(30));
    assert!(slept(&l, far()).unwrap() >= Duration::from_millis(25));
}

#[test]
fn rates_parse_as_numbers_or_unlimited() {
    assert_eq!(parse_rate("20"), Ok(20.0));
    assert_eq!(parse_rate(" 0.5 "), Ok(0.5));
    assert_eq!(parse_rate("Unlimited"), Ok(f64::INFINITY));
    for bad in ["0", "-1", "NaN", "inf", "2000000", "fast", ""] {
        assert!(parse_rate(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_burst("60"), Ok(60.0));
    for bad in ["0", "1.5", "-3", "100001"] {
        assert!(parse_burst(bad).is_err(), "{bad:?}");
    }
}

fn at(start: Instant, secs: f64) -> Instant {
    start + Duration::from_secs_f64(secs)
}

/// A limiter at `per_second` with Bitbucket's typical burst of 60, whose budget a run of 429s
/// has shown to be wrong: the adaptive rate answers 429s under it, up to `per_second`.
fn limiter(per_second: f64) -> Limiter {
    let l = Limiter::new(HttpPolicy {
        burst: Some(60.0),
        per_second,
        ..HttpPolicy::default()
    });
    if let Ok(mut b) = l.bucket.lock() {
        b.trusted = false;
        b.ceiling = per_second;
        b.rate = per_second;
    }
    l
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

#[test]
fn a_429_lowers_the_rate_once_per_episode_and_the_rate_climbs_back_to_the_ceiling() {
    let l = limiter(10.0);
    let t0 = Instant::now();
    assert_eq!(l.current_rate_at(t0), 10.0);
    // Nothing accepted lately: half.
    l.throttled_at(t0);
    // Four requests refused together are one episode.
    l.throttled_at(at(t0, 0.1));
    l.throttled_at(at(t0, 0.2));
    assert_eq!(l.current_rate_at(at(t0, 0.3)), 5.0);
    // After the episode a 429 lowers what the rate had climbed to (one step at 2 s, a
    // tenth of the 10/s that met the 429: 6), and 6 is now the rate that met one.
    l.throttled_at(at(t0, 2.5));
    assert_eq!(l.current_rate_at(at(t0, 2.6)), 3.0);
    // A tenth of 6 per 2 s, up to just below 6 (5.7)...
    assert!(close(l.current_rate_at(at(t0, 4.5)), 3.6));
    assert!(close(l.current_rate_at(at(t0, 12.5)), 5.7));
    assert!(close(l.current_rate_at(at(t0, 40.0)), 5.7));
    // ...then a twentieth per 30 s, never past the ceiling.
    assert!(close(l.current_rate_at(at(t0, 42.5)), 5.7 * 1.05));
    assert_eq!(l.current_rate_at(at(t0, 12.5 + 30.0 * 12.0)), 10.0);
    assert_eq!(l.current_rate_at(at(t0, 3600.0)), 10.0);
}

#[test]
fn probes_refused_where_the_last_429_was_wait_twice_as_long_each_time() {
    let l = limiter(10.0);
    let t0 = Instant::now();
    l.throttled_at(t0);
    // Refused again at about the same rate: the probe interval doubles each time.
    l.throttled_at(at(t0, 10.0));
    l.throttled_at(at(t0, 20.0));
    let every = l.bucket.lock().map(|b| b.probe_every).unwrap();
    assert_eq!(every, PROBE_STEP * 4);
    // Far from it (the server's budget moved): back to the first interval.
    if let Ok(mut b) = l.bucket.lock() {
        b.rate = 10.0;
        b.limit_seen = 1.0;
    }
    l.throttled_at(at(t0, 30.0));
    assert_eq!(l.bucket.lock().map(|b| b.probe_every).unwrap(), PROBE_STEP);
}

/// A limiter at 100/s whose server accepted 100 requests over the second from `t0`.
fn a_second_of_100_accepted() -> (Limiter, Instant) {
    let l = limiter(100.0);
    let t0 = Instant::now();
    if let Ok(mut b) = l.bucket.lock() {
        b.accepted = (t0, 0, 0);
        for i in 0..100 {
            b.accept(at(t0, f64::from(i) * 0.0099));
        }
    }
    (l, t0)
}

#[test]
fn a_lone_429_among_many_accepted_is_waited_out_and_leaves_the_rate() {
    let (l, t0) = a_second_of_100_accepted();
    l.throttled_at(at(t0, 0.99));
    assert_eq!(l.current_rate_at(at(t0, 1.0)), 100.0);
    // A steady 5 % of 429s, as a flaky proxy gives, never lowers it either.
    for i in 0..2000u32 {
        let t = at(t0, 1.0 + f64::from(i) * 0.01);
        if i % 20 == 0 {
            l.throttled_at(t);
        } else if let Ok(mut b) = l.bucket.lock() {
            b.accept(t);
        }
    }
    assert_eq!(l.current_rate_at(at(t0, 21.0)), 100.0);
    assert!(
        !measuring(&l),
        "requests still leave as many at a time as are sent"
    );
}

#[test]
fn a_single_429_while_probing_above_the_last_budget_lowers_the_rate() {
    let (l, t0) = a_second_of_100_accepted();
    if let Ok(mut b) = l.bucket.lock() {
        // An earlier lowering saw a budget of 90/s; the rate has probed up to 100/s since.
        b.limit_seen = 90.0;
        b.stepped_at = at(t0, 1.0);
    }
    l.throttled_at(at(t0, 0.99));
    assert!(close(l.current_rate_at(at(t0, 1.0)), 95.0));
    // Well below the last budget, the same lone 429 is waited out.
    let (l, t0) = a_second_of_100_accepted();
    if let Ok(mut b) = l.bucket.lock() {
        b.limit_seen = 120.0;
    }
    l.throttled_at(at(t0, 0.99));
    assert_eq!(l.current_rate_at(at(t0, 1.0)), 100.0);
}

#[test]
fn lone_429s_at_the_budget_lower_the_rate_no_further_than_the_floor() {
    let l = limiter(100.0);
    let t0 = Instant::now();
    // A share-backed lowering measured a budget of 100/s.
    if let Ok(mut b) = l.bucket.lock() {
        for _ in 0..8 {
            b.answered(true);
        }
    }
    l.throttled_at(t0);
    let floor = l.bucket.lock().map(|b| b.lone_floor).unwrap();
    assert!(floor > 0.0 && floor < 100.0, "{floor}");
    // Then a lone 429 every 3 s (each among many accepted) while the server takes what is
    // sent: each lowers the rate by a twentieth until the floor, then they are waited out.
    let mut t = 0.0;
    for _ in 0..40 {
        t += 3.0;
        if let Ok(mut b) = l.bucket.lock() {
            let sent = b.rate;
            b.accepted = (at(t0, t - 1.0), 0, 0);
            for i in 0..(sent.floor() as u32) {
                b.accept(at(t0, t - 1.0 + f64::from(i) / sent));
            }
            for _ in 0..64 {
                b.answered(false);
            }
        }
        l.throttled_at(at(t0, t));
    }
    let rate = l.current_rate_at(at(t0, t));
    assert!(
        rate >= floor * 0.95 && rate < floor / 0.9,
        "the rate {rate} settles at the floor {floor}"
    );
}

#[test]
fn a_429_while_the_server_refuses_an_eighth_costs_a_twentieth_not_half() {
    let (l, t0) = a_second_of_100_accepted();
    if let Ok(mut b) = l.bucket.lock() {
        // Of the last 64 answers, 7 were refused: one more reaches the share.
        for _ in 0..7 {
            b.answered(true);
        }
    }
    l.throttled_at(at(t0, 0.99));
    assert!(close(l.current_rate_at(at(t0, 1.0)), 95.0));
}

#[test]
fn the_budget_is_measured_over_the_refusal_run_not_a_second_holding_the_burst() {
    // An unlimited client empties a server bucket of 60 refilled at 5/s: 60 accepted in
    // 0.3 s, then the four in flight are refused (three sent before the bucket ran dry are
    // answered 200 just after the first 429).
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    let t0 = Instant::now();
    let accept = |sent: f64, answered: f64| {
        if let Ok(mut b) = l.bucket.lock() {
            b.accept(at(t0, answered));
            b.accept_sent(at(t0, sent));
        }
    };
    if let Ok(mut b) = l.bucket.lock() {
        b.accepted = (t0, 0, 0);
    }
    for i in 0..57 {
        let t = f64::from(i) * 0.005;
        accept(t, t + 0.02);
    }
    for _ in 0..4 {
        l.throttled_at(at(t0, 0.3));
    }
    for _ in 0..3 {
        accept(0.29, 0.31);
    }
    // A stray-looking 429 among 60 accepted: waited out (Retry-After, one second).
    assert_eq!(l.current_rate_at(at(t0, 0.31)), f64::INFINITY);
    // After the pause the bucket holds five: five accepted, then four refused. An eighth of
    // the answers are now 429s: the rate is lowered to the budget measured since the first
    // 429 (5 in 1.05 s), not to the last second's count, which still holds the burst.
    for i in 0..5 {
        let t = 1.3 + f64::from(i) * 0.005;
        accept(t, t + 0.02);
    }
    for _ in 0..4 {
        l.throttled_at(at(t0, 1.35));
    }
    let rate = l.current_rate_at(at(t0, 1.35));
    assert!(close(rate, 0.95 * 5.0 / 1.05), "{rate}");
    let second = l
        .bucket
        .lock()
        .map(|b| b.accepted_rate(at(t0, 1.35)))
        .unwrap();
    assert!(second > 20.0, "the one-second count reads {second}");
    // A 429 more than REFUSAL_RUN_GAP after the last starts a new run.
    l.throttled_at(at(t0, 1.35 + REFUSAL_RUN_GAP.as_secs_f64() + 1.0));
    let run = l.bucket.lock().map(|b| b.run).unwrap();
    assert!(run.is_some_and(|r| r.accepted == 0 && r.started == r.last));
}

/// An unlimited limiter whose server took a burst of 60 by 0.31 s and then refused the
/// four requests in flight together at 0.3 s (three sent before it ran dry were taken).
fn a_burst_then_four_refused_together() -> (Limiter, Instant) {
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    let t0 = Instant::now();
    if let Ok(mut b) = l.bucket.lock() {
        b.accepted = (t0, 0, 0);
        for i in 0..57 {
            let t = f64::from(i) * 0.005;
            b.accept(at(t0, t + 0.02));
            b.accept_sent(at(t0, t));
        }
    }
    for _ in 0..4 {
        l.throttled_at(at(t0, 0.3));
    }
    if let Ok(mut b) = l.bucket.lock() {
        for _ in 0..3 {
            b.accept(at(t0, 0.31));
            b.accept_sent(at(t0, 0.29));
        }
    }
    (l, t0)
}

fn measuring(l: &Limiter) -> bool {
    l.bucket.lock().map(|b| b.measuring.is_some()).unwrap()
}

#[test]
fn every_request_in_flight_refused_lets_requests_leave_one_at_a_time() {
    let (l, t0) = a_burst_then_four_refused_together();
    // Not an eighth of the answers: the rate stands, but the limiter measures.
    assert_eq!(l.current_rate_at(at(t0, 0.31)), f64::INFINITY);
    assert!(measuring(&l));
    let (_, first) = l.acquire(far()).expect("the first request leaves");
    let soon = Instant::now() + Duration::from_millis(50);
    assert!(
        l.acquire(soon).is_err(),
        "a second request waits while the first is out"
    );
    drop(first);
    let (_, second) = l
        .acquire(far())
        .expect("it leaves once the first is answered");
    drop(second);
    // Measuring ends when no 429 comes for a while after the last one.
    if let Ok(mut b) = l.bucket.lock() {
        b.stop_measuring_if_idle(at(t0, 0.3) + MEASURING_IDLE);
    }
    assert!(!measuring(&l));
    let (_, a) = l.acquire(far()).expect("leaves");
    let (_, b) = l.acquire(far()).expect("and so does the next, at once");
    drop((a, b));
}

#[test]
fn requests_refused_in_one_round_are_counted_while_its_retry_after_holds() {
    let (l, t0) = a_second_of_100_accepted();
    // Two refused together (as random 429s sometimes are): waited out, nothing measured.
    l.throttled_at(at(t0, 1.0));
    l.throttled_at(at(t0, 1.05));
    assert!(!measuring(&l));
    // A third, 200 ms after the first but while its Retry-After holds: the same round.
    l.block_for(Duration::from_secs(3600));
    l.throttled_at(at(t0, 1.2));
    assert!(measuring(&l));
    assert_eq!(
        l.current_rate_at(at(t0, 1.2)),
        100.0,
        "measured, not lowered yet"
    );
}

#[test]
fn while_measuring_a_round_costs_one_429_and_the_rate_is_lowered_at_the_next_round() {
    let (l, t0) = a_burst_then_four_refused_together();
    // Each Retry-After second the server refills five; one request at a time takes them,
    // and the sixth is refused: one 429 a round.
    let round = |start: f64| {
        if let Ok(mut b) = l.bucket.lock() {
            for i in 0..5 {
                let t = start + f64::from(i) * 0.021;
                b.accept(at(t0, t + 0.02));
                b.accept_sent(at(t0, t));
            }
        }
        l.throttled_at(at(t0, start + 0.125));
    };
    round(1.3);
    // Between the first round's 429 and this one (1.125 s), the server took 5: its refill,
    // since its bucket was empty at both. Lowered to just below that.
    let rate = l.current_rate_at(at(t0, 1.45));
    assert!(close(rate, 0.95 * 5.0 / 1.125), "{rate}");
    assert!(!measuring(&l), "measured: requests leave at the rate again");
    let refused = l.bucket.lock().map(|b| b.answers.0.count_ones()).unwrap();
    assert_eq!(refused, 5, "four in flight, then one");
}

#[test]
fn a_reading_after_a_retry_after_that_filled_the_bucket_counts_the_bucket_once() {
    // A bucket of 10 refilled at 20 a second: the burst takes 10 before the first 429. The
    // Retry-After second refills it to 10 (not 20); then requests one at a time take those and
    // 0.3 s of refill (6) before the next 429. Over the 1.3 s between the 429s, 16 accepted
    // reads 12/s; the bucket counted once, (16 − 10) over the 0.3 s of sending reads 20/s.
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    let t0 = Instant::now();
    if let Ok(mut b) = l.bucket.lock() {
        for i in 0..10 {
            b.accept(at(t0, 0.005 * f64::from(i)));
        }
    }
    l.throttled_at(at(t0, 0.05));
    assert!(measuring(&l));
    l.block_for(Duration::from_secs(1));
    if let Ok(mut b) = l.bucket.lock() {
        // The block ends one second after the 429, in this test's time.
        b.blocked_until = Some(at(t0, 1.05));
        for i in 0..16 {
            let sent = 1.05 + 0.3 * f64::from(i) / 16.0;
            b.accept(at(t0, sent + 0.01));
            b.accept_sent(at(t0, sent));
        }
    }
    l.throttled_at(at(t0, 1.35));
    let rate = l.current_rate_at(at(t0, 1.36));
    assert!(close(rate, 0.95 * (16.0 - 10.0) / 0.3), "{rate}");
}

#[test]
fn below_the_ceiling_the_client_keeps_no_burst_of_its_own() {
    let l = limiter(10.0);
    l.throttled();
    // At 5/s a token takes 200 ms. The server's bucket is empty, so is the client's: the first
    // request waits for a token, and so does the next.
    assert!(slept(&l, far()).unwrap() > Duration::from_millis(150));
    assert!(slept(&l, far()).unwrap() > Duration::from_millis(150));
}

#[test]
fn without_a_ceiling_the_first_429_measures_before_it_lowers_and_the_limit_lifts_again() {
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    assert_eq!(l.current_rate(), f64::INFINITY);
    let t0 = Instant::now();
    // 40 requests over 0.2 s: 200/s, none of them answered yet.
    if let Ok(mut b) = l.bucket.lock() {
        b.window = (t0, 0);
        b.accepted = (t0, 0, 0);
        for i in 0..40 {
            b.count(at(t0, f64::from(i) * 0.005));
        }
    }
    l.throttled_at(at(t0, 0.2));
    // Nothing to read the budget from yet: not lowered, but measured one request at a time.
    assert_eq!(l.current_rate_at(at(t0, 0.2)), f64::INFINITY);
    assert!(measuring(&l));
    // The next round, 1.5 s later, after 30 accepted: 20 a second.
    if let Ok(mut b) = l.bucket.lock() {
        for i in 0..30 {
            let sent = 0.25 + f64::from(i) * 0.04;
            b.accept(at(t0, sent + 0.02));
            b.accept_sent(at(t0, sent));
        }
    }
    l.throttled_at(at(t0, 1.7));
    let seen = 30.0 / 1.5;
    assert!(close(l.current_rate_at(at(t0, 1.7)), 0.95 * seen));
    // It probes above that by a tenth per 2 s, and the limit lifts past four times it.
    let probes_to_lift = ((LIFT_AT / 0.95).ln() / ADAPTIVE_PROBE_CLIMB.ln()).ceil();
    let step = ADAPTIVE_PROBE_STEP.as_secs_f64();
    assert!(
        l.current_rate_at(at(t0, 1.7 + step * (probes_to_lift - 1.0) + 0.1))
            .is_finite()
    );
    assert_eq!(
        l.current_rate_at(at(t0, 1.7 + step * probes_to_lift + 0.1)),
        f64::INFINITY
    );
}

#[test]
fn a_burst_after_an_idle_start_is_measured_not_lowered_to_the_minimum() {
    // The component loads for seconds before the first request; then nine leave in 50 ms
    // and the next two meet 429s. Read over the idle seconds, the rate would be near zero
    // and the tenant would crawl at the minimum for minutes; read over the last second, it
    // would be the server's bucket (nine), not its refill.
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    let t0 = Instant::now();
    if let Ok(mut b) = l.bucket.lock() {
        b.window = (t0, 0);
        b.accepted = (t0, 0, 0);
        for i in 0..9 {
            let t = at(t0, 3.0 + f64::from(i) * 0.005);
            b.count(t);
            b.accept(t);
        }
    }
    // The tenth and eleventh, in flight together, meet 429s: 2 of 11 refused.
    l.throttled_at(at(t0, 3.05));
    l.throttled_at(at(t0, 3.05));
    // Not lowered at all: requests leave one at a time until the next round reads the refill.
    let rate = l.current_rate_at(at(t0, 3.05));
    assert_eq!(rate, f64::INFINITY);
    assert!(measuring(&l));
    let (_, out) = l.acquire(far()).expect("the first leaves at once");
    assert!(
        l.acquire(Instant::now() + Duration::from_millis(30))
            .is_err(),
        "the next waits for it"
    );
    drop(out);
}

#[test]
fn a_tenant_file_rate_is_a_number_or_unlimited() {
    let p: HttpPolicy = serde_json::from_str(r#"{"per_second": "unlimited"}"#).unwrap();
    assert_eq!(p.ceiling(), f64::INFINITY);
    let p: HttpPolicy = serde_json::from_str(r#"{"per_second": 40, "burst": 200}"#).unwrap();
    assert_eq!((p.ceiling(), p.burst), (40.0, Some(200.0)));
    assert!(serde_json::from_str::<HttpPolicy>(r#"{"per_second": 0}"#).is_err());
    assert!(serde_json::from_str::<HttpPolicy>(r#"{"per_second": "fast"}"#).is_err());
}

/// A limiter told Bitbucket's default budget, 60 refilled at 5 a second.
fn told() -> Limiter {
    let mut policy = HttpPolicy::default();
    policy.tell(Some(5.0), Some(60.0));
    Limiter::new(policy)
}

#[test]
fn a_told_budget_is_paced_a_few_per_cent_under_its_refill() {
    let l = told();
    assert!(close(l.current_rate(), 5.0 * PACE));
    const { assert!(PACE < 1.0 && PACE >= 0.95) };
}

#[test]
fn at_a_told_budget_429s_in_one_round_are_waited_out_and_empty_the_clients_bucket() {
    let l = told();
    let t0 = Instant::now();
    // Four requests in flight refused together, with most of the last answers refused: the
    // server's bucket ran dry a moment early. One round is not a run.
    for i in 0..4 {
        l.throttled_at(at(t0, 0.01 * f64::from(i)));
    }
    assert!(close(l.current_rate_at(at(t0, 0.1)), 5.0 * PACE));
    assert!(l.refused_budget().is_none());
    assert!(
        !measuring(&l),
        "requests leave as many at a time as are sent"
    );
    let tokens = l.bucket.lock().map(|b| b.tokens).unwrap();
    assert_eq!(
        tokens, 0.0,
        "the server's bucket is empty, so is the client's"
    );
    // Two more rounds far apart, among many accepted answers: still waited out.
    for round in [10.0, 20.0] {
        if let Ok(mut b) = l.bucket.lock() {
            for _ in 0..64 {
                b.answered(false);
            }
        }
        l.throttled_at(at(t0, round));
    }
    assert!(close(l.current_rate_at(at(t0, 20.1)), 5.0 * PACE));
    assert!(l.refused_budget().is_none());
}

#[test]
fn a_run_of_429s_at_a_told_budget_lowers_the_rate_to_what_the_server_accepts_and_says_so() {
    let l = told();
    let t0 = Instant::now();
    // The server takes 3 a second, not 5: after each Retry-After second, three are accepted
    // and the fourth is refused, round after round.
    let mut t = 0.0;
    l.throttled_at(at(t0, t));
    for _ in 0..2 {
        if let Ok(mut b) = l.bucket.lock() {
            for i in 0..3 {
                let sent = t + 1.0 + f64::from(i) * 0.2;
                b.accept(at(t0, sent + 0.02));
                b.accept_sent(at(t0, sent));
            }
        }
        t += 1.65;
        l.throttled_at(at(t0, t));
    }
    let refused = l.refused_budget().expect("the told budget is shown wrong");
    assert_eq!(refused.configured, 5.0);
    let accepted = 6.0 / 3.3;
    assert!(close(refused.accepted, accepted), "{refused:?}");
    assert!(close(l.current_rate_at(at(t0, t)), 0.95 * accepted));
}

#[test]
fn a_budget_read_from_the_server_replaces_the_configured_one_less_what_was_sent() {
    let l = Limiter::new(HttpPolicy {
        burst: None,
        ..HttpPolicy::default()
    });
    for _ in 0..2 {
        drop(l.acquire(far()).expect("unlimited"));
    }
    l.set_budget(10.0, Some(5.0));
    assert!(close(l.current_rate(), 10.0 * PACE));
    for _ in 0..3 {
        assert_eq!(slept(&l, far()), Ok(Duration::ZERO));
    }
    assert!(
        slept(&l, far()).unwrap() > Duration::ZERO,
        "the two requests that read the budget took two of its five tokens"
    );
    // Exempt: no client-side limit.
    l.set_budget(f64::INFINITY, None);
    assert_eq!(l.current_rate(), f64::INFINITY);
    for _ in 0..20 {
        assert_eq!(slept(&l, far()), Ok(Duration::ZERO));
    }
}
