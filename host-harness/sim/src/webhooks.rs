//! Webhooks the simulator sends for the changes it makes: the payload of each event, the
//! `X-Hub-Signature` Bitbucket computes, and the signed POST.

use crate::render::user as user_json;
use crate::server::State;
use crate::world;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

impl State {
    /// Touches a random open pull request; sends its webhook if configured.
    pub(crate) fn touch_random(&self) -> Option<(String, String, u64, &'static str)> {
        let mut rng = self.rng.lock().ok()?;
        let mut world = self.world.lock().ok()?;
        let open: Vec<(usize, usize)> = world
            .repos
            .iter()
            .enumerate()
            .flat_map(|(ri, r)| {
                r.prs
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.state == "OPEN")
                    .map(move |(pi, _)| (ri, pi))
            })
            // Archived repositories are read-only.
            .filter(|(ri, _)| !world.repos[*ri].archived)
            .filter(|(ri, pi)| {
                let r = &world.repos[*ri];
                !self
                    .broken
                    .contains(&(r.project.clone(), r.slug.clone(), r.prs[*pi].id))
            })
            .collect();
        if open.is_empty() {
            return None;
        }
        let (ri, pi) = open[rng.usize(0..open.len())];
        let newest = world
            .repos
            .iter()
            .flat_map(|r| r.prs.iter().map(|p| p.updated))
            .max()
            .unwrap_or(world::EPOCH);
        world.clock = world.clock.max(newest) + 60_000;
        let now = world.clock;
        let (key, reviewer) = world.touch(ri, pi, now, &mut rng);
        let r = &world.repos[ri];
        let p = &r.prs[pi];
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
            let payload = d.webhook(key, r, p, actor, extra);
            let body = d.finish(&format!("webhook {key} {}", world.clock), payload);
            send_webhook(url, secret, key, body.as_bytes());
        }
        Some((r.project.clone(), r.slug.clone(), p.id, key))
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
