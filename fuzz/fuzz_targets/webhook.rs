//! Webhook handling: arbitrary body bytes, with and without a secret, under every handled key.
#![no_main]

use bbdc_connector::fake::FakeHost;
use bbdc_connector::model::{Connection, WebhookRequest};
use bbdc_connector::pull_request_webhook::{PR_EVENTS, PullRequestEvents};
use bbdc_connector::repository_webhook::RepositoryEvents;
use bbdc_connector::webhook::handle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let key = PR_EVENTS.get(usize::from(selector) % (PR_EVENTS.len() + 1)).copied().unwrap_or("diagnostics:ping");
    let conn = Connection { base_url: "https://bb.example".into(), page_size: None };
    let req = WebhookRequest {
        headers: vec![("X-Event-Key".into(), key.into()), ("X-Request-Id".into(), "f".into())],
        body: body.to_vec(),
    };
    for host in [FakeHost::new(), FakeHost::new().with_webhook_secret("secret")] {
        let _ = handle::<PullRequestEvents, _>(&host, &conn, &req);
        let _ = handle::<RepositoryEvents, _>(&host, &conn, &req);
    }
});
