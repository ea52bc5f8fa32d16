//! The host's side of the WIT `delivery` interface: checking a webhook delivery's
//! `X-Hub-Signature` against the tenant's webhook secret.
//!
//! The secret stays in the host. A host computes the [`SignatureCheck`] once per delivery, over
//! the body as it received it, and hands it to the call ([`crate::Runtime::handle_webhook`]);
//! the connector asks for it with `delivery.check-signature` and decides what it accepts. An
//! endpoint can use the same check to refuse a delivery before any of it enters a sandbox.

pub use crate::bindings::wit_delivery::SignatureCheck;
use hmac::Mac;

/// The header Bitbucket signs deliveries in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature";

/// Checks the `X-Hub-Signature` among `headers` (names in any case): `sha256=` and 64
/// hexadecimal digits, the HMAC-SHA256 of `body` under `secret`, compared in constant time.
/// Without a secret (`None` or empty) there is nothing to check: [`SignatureCheck::NoSecret`].
pub fn check(secret: Option<&str>, headers: &[(String, String)], body: &[u8]) -> SignatureCheck {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return SignatureCheck::NoSecret;
    };
    let mut values = headers
        .iter()
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(SIGNATURE_HEADER))
        .map(|(_, v)| v.trim());
    let Some(value) = values.next() else {
        return SignatureCheck::Missing;
    };
    if values.next().is_some() {
        return SignatureCheck::Malformed("X-Hub-Signature is sent more than once".into());
    }
    let Some(mac) = sha256_mac(value) else {
        return SignatureCheck::Malformed(
            "X-Hub-Signature is not sha256= and 64 hexadecimal digits".into(),
        );
    };
    let Ok(hmac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes a key of any length; this cannot happen, and it would not verify.
        return SignatureCheck::Mismatch;
    };
    if hmac.chain_update(body).verify_slice(&mac).is_ok() {
        SignatureCheck::Matches
    } else {
        SignatureCheck::Mismatch
    }
}

/// The MAC of a header value of the form `sha256=<64 hex digits>` (the algorithm's name in any
/// case, as some proxies rewrite it).
fn sha256_mac(value: &str) -> Option<[u8; 32]> {
    let (algorithm, digits) = value.split_once('=')?;
    if !algorithm.trim().eq_ignore_ascii_case("sha256") {
        return None;
    }
    let mut mac = [0u8; 32];
    hex::decode_to_slice(digits.trim(), &mut mac).ok()?;
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec-test";

    /// The signature computed independently of [`check`]: HMAC-SHA256 as RFC 2104 defines it,
    /// over SHA-256 alone.
    fn sign(secret: &str, body: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let mut key = [0u8; 64];
        key[..secret.len()].copy_from_slice(secret.as_bytes());
        let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(body)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        format!("sha256={}", hex::encode(outer))
    }

    fn with(signatures: &[&str]) -> Vec<(String, String)> {
        let mut headers = vec![("X-Event-Key".to_string(), "pr:opened".to_string())];
        headers.extend(
            signatures
                .iter()
                .map(|s| ("X-Hub-Signature".to_string(), s.to_string())),
        );
        headers
    }

    #[test]
    fn a_signature_of_the_body_under_the_secret_matches() {
        let body = br#"{"eventKey":"pr:opened"}"#;
        let good = sign(SECRET, body);
        assert_eq!(
            check(Some(SECRET), &with(&[&good]), body),
            SignatureCheck::Matches
        );
        // Header name in any case, algorithm in any case, digits in either case.
        let headers = vec![("x-HUB-signature".to_string(), good.to_uppercase())];
        assert_eq!(check(Some(SECRET), &headers, body), SignatureCheck::Matches);
    }

    #[test]
    fn anything_else_is_told_apart() {
        let body = b"{}";
        let good = sign(SECRET, body);
        assert_eq!(check(None, &with(&[]), body), SignatureCheck::NoSecret);
        assert_eq!(
            check(Some(""), &with(&[&good]), body),
            SignatureCheck::NoSecret
        );
        assert_eq!(
            check(Some(SECRET), &with(&[]), body),
            SignatureCheck::Missing
        );
        assert_eq!(
            check(Some(SECRET), &with(&[&good]), b"{ }"),
            SignatureCheck::Mismatch,
            "the body changed after signing"
        );
        assert_eq!(
            check(Some("another"), &with(&[&good]), body),
            SignatureCheck::Mismatch
        );
        for malformed in [
            "sha1=0123",
            "sha256=nothex",
            "sha256=abcd",
            &good[7..],
            &format!("md5={}", &good[7..]),
        ] {
            assert!(
                matches!(
                    check(Some(SECRET), &with(&[malformed]), body),
                    SignatureCheck::Malformed(_)
                ),
                "{malformed}"
            );
        }
        assert!(matches!(
            check(Some(SECRET), &with(&[&good, &good]), body),
            SignatureCheck::Malformed(why) if why.contains("more than once")
        ));
    }
}
