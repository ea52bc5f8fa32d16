//! Benchmarks 1, 2, 3 and 5: the component against the same core compiled natively (webhooks,
//! a 1000-PR page), the cost of a call itself, and guest memory while counting a large diff.

use super::fixtures::{BASE_URL, FixtureResponder, NativeHost, big_diff};
use super::{BenchOptions, Figure, Target, micros, side_by_side};
use anyhow::{Context, Result, anyhow, bail, ensure};
use bbdc_connector::model as native;
use bbdc_host::bindings::api::{RepoRef, SyncOptions, WebhookRequest};
use bbdc_host::bindings::types::WebhookResult;
use bbdc_host::runtime::CallStats;
use bbdc_host::storage::MemoryKv;
use bbdc_host::{
    Credentials, InstanceReuse, PreInitialize, Runtime, RuntimeConfig, Tenant, TenantConfig,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a diff-counting call used, and what it counted (added, removed, files).
type Counted = (CallStats, Option<(u64, u64, u32)>);

/// The webhook secret of the benchmarks.
pub const SECRET: &str = "bench-webhook-secret";
const MIB: f64 = 1024.0 * 1024.0;

/// Signs `body` as Bitbucket does (the simulator's signer).
pub use bbdc_sim::signature;

/// A `pr:modified` delivery for `pull_request` of at least `size` bytes (the description is
/// padded with prose, as long descriptions are what make real deliveries large).
pub fn webhook_body(pull_request: &serde_json::Value, size: usize) -> Vec<u8> {
    let mut pr = pull_request.clone();
    let mut payload = json!({
        "eventKey": "pr:modified",
        "date": "2026-11-24T10:15:30+0000",
        "actor": pr["author"]["user"].clone(),
        "pullRequest": pr.clone(),
        "previousTitle": "Earlier title",
        "previousDescription": "Earlier description",
        "previousTarget": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
    });
    let base = payload.to_string().len();
    if base < size {
        let sentence = "This change moves the retry policy into the client and adds tests. ";
        let pad: String = sentence.chars().cycle().take(size - base).collect();
        pr["description"] = json!(format!("{}{pad}", pr["description"].as_str().unwrap_or("")));
        payload["pullRequest"] = pr;
    }
    payload.to_string().into_bytes()
}

/// Delivery headers with a unique request id.
pub fn webhook_headers(request_id: &str, signature: &str) -> Vec<(String, String)> {
    vec![
        ("X-Event-Key".into(), "pr:modified".into()),
        ("X-Request-Id".into(), request_id.into()),
        ("X-Hub-Signature".into(), signature.into()),
        (
            "Content-Type".into(),
            "application/json; charset=UTF-8".into(),
        ),
    ]
}

/// A tenant whose requests are answered by `responder`, with storage in memory.
pub fn memory_tenant(id: &str, responder: Arc<FixtureResponder>) -> Result<Arc<Tenant>> {
    let mut config = TenantConfig::new(id, BASE_URL, Credentials::None);
    config.http_policy.burst = None;
    config.page_size = Some(1000);
    let mut tenant = Tenant::new(config, Arc::new(MemoryKv::new()))?;
    tenant.http.answer_from(responder);
    Ok(Arc::new(tenant))
}

/// Shared state of the core benchmarks: the runtime and the options.
pub struct CoreBench {
    runtime: Arc<Runtime>,
    options: BenchOptions,
}

impl CoreBench {
    /// Loads the component as `bbdc` does by default: on-demand allocator, pre-initialised,
    /// instances reused between calls of a tenant.
    pub fn new(options: &BenchOptions) -> Result<Self> {
        let runtime = Runtime::new(&RuntimeConfig {
            component_path: options.component.clone(),
            cache_dir: RuntimeConfig::default_cache_dir(),
            fuel: None,
            pooling_slots: None,
            pre_initialize: PreInitialize::WhenExported,
            reuse: InstanceReuse::default(),
        })?;
        Ok(Self {
            runtime: Arc::new(runtime),
            options: options.clone(),
        })
    }

    /// The runtime the other benchmarks share.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// `(rounds, iterations per round)` for a workload of roughly `cost` per iteration.
    fn plan(&self, cost: Duration) -> (usize, usize) {
        if self.options.quick {
            return (3, 3);
        }
        // About 40 ms per side per round, 15 rounds.
        let iters =
            (Duration::from_millis(40).as_secs_f64() / cost.as_secs_f64().max(1e-7)) as usize;
        (15, iters.clamp(1, 20_000))
    }

    /// 1. Verify + parse + normalise a 10 KB signed delivery: component (the tenant's warm
    ///    instance, as `bbdc serve` runs it) against native.
    pub fn webhook_vs_native(&self) -> Result<Vec<Figure>> {
        let responder = Arc::new(FixtureResponder::new(20));
        let body = webhook_body(&responder.fixture().first_pull_request, 10 * 1024);
        let sig = signature(SECRET, &body);
        let tenant = memory_tenant("bench-webhook", Arc::clone(&responder))?;
        let native_host = NativeHost::new(responder);
        let conn = native::Connection {
            base_url: BASE_URL.into(),
            page_size: None,
        };
        let mut n = 0u64;
        let mut next_id = || {
            n += 1;
            format!("bench-{n}")
        };
        let wasm_once = |id: String| {
            let req = WebhookRequest {
                headers: webhook_headers(&id, &sig),
                body: body.clone(),
            };
            self.runtime.handle_webhook(&tenant, Some(SECRET), &req)
        };
        // The native side does what the component's host and guest do between them: the host
        // checks the signature natively, and the core decides on that check.
        let native_once = |id: String| {
            let req = native::WebhookRequest {
                headers: webhook_headers(&id, &sig),
                body: body.clone(),
            };
            native_host.set_signature(bbdc_host::signature::check(
                Some(SECRET),
                &req.headers,
                &req.body,
            ));
            bbdc_connector::webhook::handle::<
                bbdc_connector::pull_request_webhook::PullRequestEvents,
                _,
            >(&native_host, &conn, &req)
        };
        // Both sides must do the whole job before they are timed.
        let w = wasm_once(next_id()).map_err(|e| anyhow!("component webhook: {e:?}"))?;
        let nat = native_once(next_id()).map_err(|e| anyhow!("native webhook: {e:?}"))?;
        ensure!(
            w.result == WebhookResult::Accepted
                && nat.result == native::WebhookResult::Accepted
                && w.verified
                && nat.verified
                && w.pull_request.is_some()
                && nat.pull_request.is_some(),
            "a benchmark delivery was not verified and accepted on both sides"
        );
        let start = Instant::now();
        let _ = wasm_once(next_id());
        let (rounds, iters) = self.plan(start.elapsed());
        let ids = std::cell::RefCell::new(next_id);
        let before = self.runtime.instance_counts();
        let (wasm, nat) = side_by_side(
            rounds,
            iters,
            || {
                let id = (ids.borrow_mut())();
                let _ = wasm_once(id);
            },
            || {
                let id = (ids.borrow_mut())();
                let _ = native_once(id);
            },
        );
        // What `bbdc serve` pays is a warm instance's call: the deliveries must have reused.
        let created = self.runtime.instance_counts().created - before.created;
        let calls = u64::try_from(rounds * iters).unwrap_or(u64::MAX);
        ensure!(
            created <= 1 + calls / u64::from(InstanceReuse::default().max_calls),
            "{created} instances for {calls} deliveries of one tenant: the warm instance was not reused"
        );
        Ok(vec![Figure {
            bench: 1,
            name: "Webhook: 10 KB signed delivery, wasm ÷ native".into(),
            value: ratio(wasm, nat),
            unit: "×",
            target: Target::AtMost(2.0),
            detail: format!(
                "{} B `pr:modified`, verify + parse + normalise + dedupe; wasm {:.1} µs per delivery (the tenant's warm instance, reused as by default; storage in memory) vs native {:.1} µs; median of {rounds} rounds × {iters}",
                body.len(),
                micros(wasm),
                micros(nat)
            ),
        }])
    }

    /// 2. One `fetch-pull-requests` call over a 1000-PR page whose pull requests are all known:
    ///    parse, normalise and fingerprint every item, compare with storage. Component against
    ///    native.
    pub fn page_vs_native(&self) -> Result<Vec<Figure>> {
        let prs = if self.options.quick { 100 } else { 1000 };
        let responder = Arc::new(FixtureResponder::new(prs));
        let f = responder.fixture().clone();
        let page_bytes = f.list_page.len();
        let tenant = memory_tenant("bench-page", Arc::clone(&responder))?;
        let native_host = NativeHost::new(responder);
        let conn = native::Connection {
            base_url: BASE_URL.into(),
            page_size: Some(1000),
        };
        let nrepo = native::RepoRef {
            project_key: f.project.clone(),
            slug: f.slug.clone(),
        };
        // A first pass fetches every pull request in full, so that the timed calls find them
        // all unchanged: the list page is then the only work.
        let mut cursor: Option<String> = None;
        let mut fetched = 0usize;
        loop {
            let opts = native::SyncOptions {
                since: None,
                full_listing: false,
            };
            let b = bbdc_connector::sync::fetch_pull_requests(
                &native_host,
                &conn,
                &nrepo,
                &opts,
                cursor.as_deref(),
            )
            .map_err(|e| anyhow!("native first pass: {e:?}"))?;
            fetched += b.pull_requests.len();
            match b.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        ensure!(fetched == prs, "the first pass fetched {fetched} of {prs}");
        // The component starts from the same storage.
        for (k, v) in native_host.stored().iter() {
            tenant.kv.set(&tenant.config.id, k, v)?;
        }
        let repo = RepoRef {
            project_key: f.project.clone(),
            slug: f.slug.clone(),
        };
        let wopts = SyncOptions {
            since: None,
            full_listing: true,
        };
        let nopts = native::SyncOptions {
            since: None,
            full_listing: true,
        };
        let wasm_once = || {
            self.runtime
                .fetch_pull_requests(&tenant, &repo, &wopts, None)
        };
        let native_once =
            || bbdc_connector::sync::fetch_pull_requests(&native_host, &conn, &nrepo, &nopts, None);
        let (w, page_stats) = self.runtime.call_measured(&tenant, |p, s| {
            p.connector().call_fetch_pull_requests(
                s,
                &Runtime::connection(&tenant),
                &repo,
                wopts,
                None,
            )
        });
        let w = w.map_err(|e| anyhow!("component page: {e:?}"))?;
        let n = native_once().map_err(|e| anyhow!("native page: {e:?}"))?;
        ensure!(
            w.stats.listed as usize == prs
                && w.stats.unchanged as usize == prs
                && w.stats.requests == 1
                && w.pull_requests.is_empty()
                && n.stats.listed == w.stats.listed
                && n.stats.unchanged == w.stats.unchanged
                && n.stats.requests == 1,
            "the page call did not list {prs} unchanged pull requests in one request on both sides (wasm {:?}, native {:?})",
            w.stats,
            n.stats
        );
        let start = Instant::now();
        let _ = wasm_once();
        let (rounds, iters) = self.plan(start.elapsed());
        let (wasm, nat) = side_by_side(
            rounds,
            iters,
            || {
                let _ = wasm_once();
            },
            || {
                let _ = native_once();
            },
        );
        Ok(vec![Figure {
            bench: 2,
            name: format!("Page: {prs} pull requests, wasm ÷ native"),
            value: ratio(wasm, nat),
            unit: "×",
            target: Target::AtMost(1.5),
            detail: format!(
                "one `fetch-pull-requests` call over a {:.2} MB page: parse, normalise and fingerprint every item, read their memos from storage in one `get-many` (all unchanged); the call's linear memory peaks at {:.1} MiB; wasm {:.2} ms vs native {:.2} ms; median of {rounds} rounds × {iters}",
                page_bytes as f64 / 1e6,
                page_stats.peak_memory as f64 / MIB,
                wasm.as_secs_f64() * 1e3,
                nat.as_secs_f64() * 1e3
            ),
        }])
    }

    /// 3. The cost of a call itself (`describe`, no I/O): on the tenant's warm instance (the
    ///    default) and on a new `Store` and instance each time, with the on-demand and the
    ///    pooling allocator, the component pre-initialised (the default) and as built.
    pub fn call_overhead(&self) -> Result<Vec<Figure>> {
        let runtime = |pooling_slots, pre_initialize, reuse| {
            Runtime::new(&RuntimeConfig {
                component_path: self.options.component.clone(),
                cache_dir: RuntimeConfig::default_cache_dir(),
                fuel: None,
                pooling_slots,
                pre_initialize,
                reuse,
            })
        };
        let warm = InstanceReuse::default();
        let fresh = InstanceReuse::OFF;
        let pooled = runtime(Some(64), PreInitialize::WhenExported, warm)?;
        let fresh_on_demand = runtime(None, PreInitialize::WhenExported, fresh)?;
        let fresh_pooled = runtime(Some(64), PreInitialize::WhenExported, fresh)?;
        let as_built = runtime(None, PreInitialize::Never, fresh)?;
        let pooled_as_built = runtime(Some(64), PreInitialize::Never, fresh)?;
        let responder = Arc::new(FixtureResponder::new(1));
        let tenant = memory_tenant("bench-overhead", responder)?;
        let all = [
            ("on-demand, reused", &*self.runtime),
            ("pooling, reused", &pooled),
            ("on-demand, fresh", &fresh_on_demand),
            ("pooling, fresh", &fresh_pooled),
            ("as built", &as_built),
            ("pooling, as built", &pooled_as_built),
        ];
        for (label, rt) in all {
            let info = rt
                .describe(&tenant)
                .map_err(|e| anyhow!("describe ({label}): {e:?}"))?;
            ensure!(
                info.name == "bbdc-connector",
                "describe ({label}) named {:?}",
                info.name
            );
        }
        let (rounds, iters) = if self.options.quick {
            (3, 3)
        } else {
            (21, 2000)
        };
        let before = [self.runtime.instance_counts(), pooled.instance_counts()];
        let describe = |rt: &Runtime| {
            let _ = rt.describe(&tenant);
        };
        let instantiate = |rt: &Runtime| {
            let _ = rt.call_with::<(), ()>(&tenant, |_, _| Ok(Ok(())));
        };
        let (reused, reused_pooled) = side_by_side(
            rounds,
            iters,
            || describe(&self.runtime),
            || describe(&pooled),
        );
        // The warm lines are only warm if the calls did reuse: one instance per tenant and
        // runtime, retired every `max_calls`.
        let calls = u64::try_from(rounds * iters).unwrap_or(u64::MAX);
        for (label, rt, before) in [
            ("on-demand", &*self.runtime, before[0]),
            ("pooling", &pooled, before[1]),
        ] {
            let now = rt.instance_counts();
            let created = now.created - before.created;
            ensure!(
                created <= 1 + calls / u64::from(warm.max_calls),
                "the {label} runtime made {created} instances for {calls} calls of one tenant"
            );
        }
        let (on_demand, pooling) = side_by_side(
            rounds,
            iters,
            || describe(&fresh_on_demand),
            || describe(&fresh_pooled),
        );
        let (built, pooled_built) = side_by_side(
            rounds,
            iters,
            || describe(&as_built),
            || describe(&pooled_as_built),
        );
        let (instantiate_only, instantiate_pooled) = side_by_side(
            rounds,
            iters,
            || instantiate(&fresh_on_demand),
            || instantiate(&fresh_pooled),
        );
        let how = format!("median of {rounds} rounds × {iters}, side by side");
        Ok(vec![
            Figure {
                bench: 3,
                name: "Per call: `describe` on the tenant's warm instance (on-demand allocator, pre-initialised, instances reused: the default)".into(),
                value: micros(reused),
                unit: "µs",
                target: Target::AtMost(20.0),
                detail: format!(
                    "the call's deadline, fuel and log allowance are set afresh; a new instance (Store + instantiate) every {} calls is included; {how}",
                    warm.max_calls
                ),
            },
            Figure {
                bench: 3,
                name: "Per call: the same with the pooling allocator (`pooling_slots`)".into(),
                value: micros(reused_pooled),
                unit: "µs",
                target: Target::AtMost(20.0),
                detail: format!("64 slots; {how}"),
            },
            Figure {
                bench: 3,
                name: "Per call, new Store + instance each time (`InstanceReuse::OFF`): on-demand allocator".into(),
                value: micros(on_demand),
                unit: "µs",
                target: Target::None,
                detail: format!(
                    "of which Store + instantiate alone {:.1} µs; pre-initialised; {how}",
                    micros(instantiate_only)
                ),
            },
            Figure {
                bench: 3,
                name: "Per call, new Store + instance each time: pooling allocator".into(),
                value: micros(pooling),
                unit: "µs",
                target: Target::None,
                detail: format!(
                    "64 slots; Store + instantiate alone {:.1} µs; {how}",
                    micros(instantiate_pooled)
                ),
            },
            Figure {
                bench: 3,
                name: "Per call, new instance each time, component as built (`PreInitialize::Never`): on-demand allocator"
                    .into(),
                value: micros(built),
                unit: "µs",
                target: Target::None,
                detail: format!(
                    "every call runs the start-up (the language runtime's constructors); {how}"
                ),
            },
            Figure {
                bench: 3,
                name: "Per call, new instance each time, component as built: pooling allocator".into(),
                value: micros(pooled_built),
                unit: "µs",
                target: Target::None,
                detail: format!("64 slots; {how}"),
            },
        ])
    }

    /// 5. Peak guest memory while `fetch-pull-request` counts a 50 MB diff, and counting speed
    ///    against native.
    pub fn diff_memory(&self) -> Result<Vec<Figure>> {
        // Quick mode still streams a diff several times the guest's baseline memory, so the
        // test of the quick suite tells a streamed diff from a buffered one.
        let size = if self.options.quick {
            8_000_000
        } else {
            50_000_000
        };
        let diff = big_diff(size);
        let small = Arc::new(FixtureResponder::new(3));
        let responder = Arc::new(FixtureResponder::new(3).with_diff(diff.clone()));
        let f = responder.fixture().clone();
        let id = f.first_pull_request["id"]
            .as_u64()
            .context("the fixture has no pull request")?;
        let repo = RepoRef {
            project_key: f.project.clone(),
            slug: f.slug.clone(),
        };
        let measure = |responder: Arc<FixtureResponder>| -> Result<Counted> {
            let tenant = memory_tenant("bench-diff", responder)?;
            let (result, stats) = self.runtime.call_measured(&tenant, |p, s| {
                p.connector()
                    .call_fetch_pull_request(s, &Runtime::connection(&tenant), &repo, id)
            });
            let pr = result.map_err(|e| anyhow!("fetch-pull-request: {e:?}"))?;
            Ok((
                stats,
                pr.diff.map(|d| (d.additions, d.deletions, d.files_changed)),
            ))
        };
        let (baseline, _) = measure(small)?;
        let start = Instant::now();
        let (stats, counted) = measure(Arc::clone(&responder))?;
        let wasm_time = start.elapsed();
        let expected = (
            diff.added,
            diff.removed,
            u32::try_from(diff.files).unwrap_or(u32::MAX),
        );
        if counted != Some(expected) {
            bail!("the component counted {counted:?}, the diff holds {expected:?}");
        }
        let native_host = NativeHost::new(responder);
        let conn = native::Connection {
            base_url: BASE_URL.into(),
            page_size: None,
        };
        let nrepo = native::RepoRef {
            project_key: f.project.clone(),
            slug: f.slug.clone(),
        };
        let start = Instant::now();
        let pr = bbdc_connector::pull_request::fetch_pull_request(&native_host, &conn, &nrepo, id)
            .map_err(|e| anyhow!("native fetch-pull-request: {e:?}"))?;
        let native_time = start.elapsed();
        ensure!(
            pr.diff.map(|d| (d.additions, d.deletions, d.files_changed)) == Some(expected),
            "native counted differently"
        );
        let mb = diff.body.len() as f64 / 1e6;
        Ok(vec![
            Figure {
                bench: 5,
                name: format!("Peak guest memory counting a {mb:.0} MB diff"),
                value: stats.peak_memory as f64 / MIB,
                unit: "MiB",
                target: Target::AtMost(16.0),
                detail: format!(
                    "largest linear memory of the `fetch-pull-request` call (`CallStats::peak_memory`); the same call over the pull request's own small diff peaks at {:.2} MiB; counted {} added, {} removed in {} files, equal to the generator's totals",
                    baseline.peak_memory as f64 / MIB,
                    expected.0,
                    expected.1,
                    expected.2
                ),
            },
            Figure {
                bench: 5,
                name: "Diff counting speed, wasm ÷ native time".into(),
                value: ratio(wasm_time, native_time),
                unit: "×",
                target: Target::None,
                detail: format!(
                    "wasm {:.0} MB/s vs native {:.0} MB/s (one run each, streamed in 64 KiB chunks)",
                    mb / wasm_time.as_secs_f64(),
                    mb / native_time.as_secs_f64()
                ),
            },
        ])
    }
}

/// `a ÷ b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}
