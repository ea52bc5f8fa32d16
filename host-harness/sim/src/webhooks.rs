//! Webhooks the simulator sends for the changes it makes: the payload of each event, the
//! `X-Hub-Signature` Bitbucket computes, and the signed POST.

use crate::render::user as user_json;
use crate::server::State;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

impl State {
    /// Touches a random open pull request; sends its webhook if configured.
    pub(crate) fn touch_random(&self) -> Option<(String, String, u64, &'static str)> {
        let mut rng = self.rng.lock().ok()?;
        let mut world = self.world.lock().ok()?;
        // A random repository that is not archived (archived ones are read-only), then a random
        // open pull request in it that is not permanently broken; a few repositories are tried,
        // so that the cost does not grow with the world.
        let mut chosen = None;
        for _ in 0..64 {
            let ri = rng.usize(0..world.repo_count());
            if world.is_archived(ri) {
                continue;
            }
            let r = world.repo(ri);
            let open: Vec<usize> = r
                .prs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.state == "OPEN")
                .filter(|(_, p)| {
                    !self
                        .broken
                        .contains(&(r.project.clone(), r.slug.clone(), p.id))
                })
                .map(|(pi, _)| pi)
                .collect();
            if !open.is_empty() {
                chosen = Some((ri, open[rng.usize(0..open.len())]));
                break;
            }
        }
        let (ri, pi) = chosen?;
        world.clock += 60_000;
        let now = world.clock;
        let (key, reviewer) = world.touch(ri, pi, now, &mut rng)?;
        let r = world.repo(ri);
        let p = r.prs.get(pi)?;
        let target = self.webhook.lock().ok().and_then(|w| w.clone());
        if let Some((url, secret)) = &target {
            let d = &self.dialect;
            let actor = reviewer.as_deref().unwrap_or(&p.author);
            let extra = match &reviewer {
                Some(who) => {
                    json!({"participant": {"user": user_json(who), "role": "REVIEWER", "approved": true, "status": "APPROVED"},
                                    "previousStatus": "UNAPPROVED"})
                }
                None => json!({}),
            };
            let payload = d.webhook(key, &r, p, actor, extra);
            let body = d.finish(&format!("webhook {key} {}", world.clock), payload);
            send_webhook(url, secret, key, body.as_bytes());
        }
        Some((r.project.clone(), r.slug.clone(), p.id, key))
    }
}

impl State {
    /// Sends the repository event `payload` of `key`, signed, when a webhook is configured;
    /// returns the answer's status.
    pub(crate) fn send_repository_event(
        &self,
        key: &str,
        payload: serde_json::Value,
    ) -> Option<u16> {
        let (url, secret) = self.webhook.lock().ok().and_then(|w| w.clone())?;
        let body = self.dialect.finish(&format!("webhook {key}"), payload);
        send_webhook(&url, &secret, key, body.as_bytes())
    }
}

/// The `X-Hub-Signature` Bitbucket sends for `body` under `secret`: `sha256=` and the hex
/// HMAC-SHA256.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map(|m| m.chain_update(body).finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("sha256={}", hex::encode(mac))
}

/// POSTs a signed webhook delivery of `body`.
pub fn send_webhook(url: &str, secret: &str, key: &str, body: &[u8]) -> Option<u16> {
    let sig = signature(secret, body);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .post(url)
        .header("X-Event-Key", key)
        .header("X-Request-Id", format!("sim-{:032x}", fastrand::u128(..)))
        .header("X-Hub-Signature", sig)
        .header("Content-Type", "application/json; charset=utf-8")
        .send(body)
        .ok()?;
    Some(resp.status().as_u16())
}
