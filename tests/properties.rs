//! Property tests of the connector core, run natively in the normal suite with a bounded number
//! of cases: no input may panic, and what can be checked exactly is.

use bbdc_connector::diffstat::{DiffError, count_reader};
use bbdc_connector::fake::FakeHost;
use bbdc_connector::model::{Connection, DiffStats, WebhookRequest};
use bbdc_connector::paging::{WirePage, next_start};
use bbdc_connector::pull_request_webhook::PullRequestEvents;
use bbdc_connector::repository_webhook::RepositoryEvents;
use bbdc_connector::webhook::handle;
use bbdc_connector::wire::{WireActivity, WirePullRequest};
use proptest::prelude::*;
use serde_json::{Value, json};

fn conn() -> Connection {
    Connection {
        base_url: "https://bb.example".into(),
        page_size: None,
    }
}

/// Arbitrary JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9:+._ -]{0,12}".prop_map(Value::from),
        // Any Unicode, dates included: cargo-fuzz found a panic that ASCII strings could not reach.
        "\\PC{0,10}".prop_map(Value::from),
        "\\PC{0,3}[+-][0-9]{3,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::hash_map("[a-zA-Z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid diff with known counts: files × segments of (kind, lines).
fn diff_with_counts() -> impl Strategy<Value = (Value, DiffStats)> {
    let segment = (
        prop_oneof![Just("ADDED"), Just("REMOVED"), Just("CONTEXT")],
        0u64..20,
    );
    let file = prop::collection::vec(prop::collection::vec(segment, 0..4), 0..3);
    (prop::collection::vec(file, 0..5), any::<bool>()).prop_map(|(files, truncated)| {
        let mut stats = DiffStats { truncated, ..DiffStats::default() };
        let diffs: Vec<Value> = files
            .iter()
            .map(|hunks| {
                stats.files_changed += 1;
                let hunks: Vec<Value> = hunks
                    .iter()
                    .map(|segs| {
                        let segments: Vec<Value> = segs
                            .iter()
                            .map(|(kind, n)| {
                                match *kind {
                                    "ADDED" => stats.additions += n,
                                    "REMOVED" => stats.deletions += n,
                                    _ => {}
                                }
                                let lines: Vec<Value> = (0..*n).map(|i| json!({"line": format!("x{i} \"quoted\" \\ {{}}"), "source": i})).collect();
                                json!({"type": kind, "lines": lines})
                            })
                            .collect();
                        json!({"segments": segments})
                    })
                    .collect();
                json!({"source": {"toString": "a"}, "destination": {"toString": "b"}, "hunks": hunks})
            })
            .collect();
        (json!({"diffs": diffs, "truncated": truncated}), stats)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn diff_counts_are_exact(case in diff_with_counts()) {
        let (diff, expected) = case;
        prop_assert_eq!(count_reader(diff.to_string().as_bytes()).unwrap(), expected);
    }

    #[test]
    fn diff_counting_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = count_reader(&bytes[..]);
    }

    #[test]
    fn diff_counting_rejects_or_counts_any_json(v in any_json()) {
        match count_reader(v.to_string().as_bytes()) {
            Ok(_) | Err(DiffError::Malformed(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }

    #[test]
    fn page_parsing_never_panics_and_never_loops(v in any_json(), start in 0u64..1000) {
        let text = v.to_string();
        if let Ok(page) = serde_json::from_str::<WirePage<'_>>(&text)
            && let (Some(next), _) = next_start(start, &page)
        {
            prop_assert!(next > start, "the next start always moves forward");
        }
    }

    #[test]
    fn pull_request_and_activity_parsing_never_panic(v in any_json()) {
        let _ = serde_json::from_value::<WirePullRequest>(v.clone());
        let _ = serde_json::from_value::<WireActivity>(v);
    }

    #[test]
    fn webhook_handling_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..256),
        key in prop_oneof![Just("pr:opened".to_string()), Just("pr:reviewer:approved".to_string()), Just("repo:refs_changed".to_string()), Just("repo:modified".to_string()), Just("diagnostics:ping".to_string()), "[a-z:]{0,20}"],
        signed in any::<bool>(),
    ) {
        let with_secret = FakeHost::new().with_webhook_secret("s");
        let without = FakeHost::new();
        let mut headers = vec![("X-Event-Key".to_string(), key), ("X-Request-Id".to_string(), "r".to_string())];
        if signed {
            headers.push(("X-Hub-Signature".to_string(), "sha256=00".to_string()));
        }
        let req = WebhookRequest { headers, body };
        for host in [&with_secret, &without] {
            let _ = handle::<PullRequestEvents, _>(host, &conn(), &req);
            let _ = handle::<RepositoryEvents, _>(host, &conn(), &req);
        }
    }

    #[test]
    fn webhook_handling_never_panics_on_json_shaped_payloads(v in any_json(), pr in any_json(), date in "\\PC{0,4}[+-]?[0-9]{0,4}") {
        let host = FakeHost::new();
        let mut payload = json!({"eventKey": "pr:modified", "date": date, "pullRequest": pr});
        if let (Value::Object(extra), Some(o)) = (v, payload.as_object_mut()) {
            o.extend(extra);
        }
        let req = WebhookRequest { headers: vec![("X-Event-Key".into(), "pr:modified".into())], body: payload.to_string().into_bytes() };
        let _ = handle::<PullRequestEvents, _>(&host, &conn(), &req);
    }
}
