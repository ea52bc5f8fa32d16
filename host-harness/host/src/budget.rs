//! The account's rate budget as the server states it, read before a run when none is told.
//!
//! Bitbucket Data Center (6.6+) limits each user with a token bucket: `capacity` requests at
//! once, refilled at `fillRate` a second. Two resources of the REST API say what the bucket is,
//! and any authenticated user may read them for itself:
//! - `GET /rest/api/latest/admin/rate-limit/settings`: whether limiting is on, and the instance's
//!   default bucket (`RestRateLimitSettings`);
//! - `GET /rest/api/latest/admin/rate-limit/settings/users/{userSlug}`: the user's own bucket,
//!   or its exemption (`whitelisted`), and 404 when it has neither (`RestUserRateLimitSettings`).
//!
//! The account's own settings win over the instance's. Its slug is the one the server names in
//! the `X-AUSERNAME` header of every authenticated answer. Where the resources are absent (a
//! server before 6.6) or refused, the budget is unknown and the client adapts to 429s instead.
//!
//! The host reads the budget, not the connector: the rate is the host's policy, and a sandboxed
//! component must not be able to raise its own.

use crate::http::{HttpError, TenantHttp};
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, Instant};
use url::Url;

/// Where a tenant's rate budget came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetSource {
    /// `--rate`/`--burst`, or the tenant file's `per_second`/`burst`.
    Configured,
    /// The account's own settings on the server.
    Account {
        /// The account's slug.
        slug: String,
    },
    /// The account is exempt from rate limiting (`whitelisted`).
    Exempt {
        /// The account's slug.
        slug: String,
    },
    /// The instance's default settings: the account has none of its own.
    Instance,
    /// Rate limiting is off on the server.
    Disabled,
    /// The server did not say: the client adapts to its 429s.
    Unknown {
        /// Why not.
        reason: String,
    },
}

impl BudgetSource {
    /// A short machine-readable name: `configured`, `account`, `exempt`, `instance`,
    /// `disabled` or `unknown`.
    pub fn code(&self) -> &'static str {
        match self {
            BudgetSource::Configured => "configured",
            BudgetSource::Account { .. } => "account",
            BudgetSource::Exempt { .. } => "exempt",
            BudgetSource::Instance => "instance",
            BudgetSource::Disabled => "disabled",
            BudgetSource::Unknown { .. } => "unknown",
        }
    }
}

impl fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetSource::Configured => {
                f.write_str("configured (--rate/--burst or the tenant file)")
            }
            BudgetSource::Account { slug } => {
                write!(f, "the server's settings for the account {slug:?}")
            }
            BudgetSource::Exempt { slug } => {
                write!(
                    f,
                    "the server exempts the account {slug:?} from rate limiting"
                )
            }
            BudgetSource::Instance => {
                f.write_str("the server's default settings (the account has none of its own)")
            }
            BudgetSource::Disabled => f.write_str("rate limiting is off on the server"),
            BudgetSource::Unknown { reason } => {
                write!(f, "unknown ({reason}); adapting to the server's 429s")
            }
        }
    }
}

/// A tenant's rate budget and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBudget {
    /// Requests per second the server refills (infinite: no limit, or an unknown one).
    pub per_second: f64,
    /// Requests the server's bucket holds (`None` with no limit).
    pub burst: Option<f64>,
    /// Where it came from.
    pub source: BudgetSource,
}

impl RateBudget {
    fn unlimited(source: BudgetSource) -> Self {
        Self {
            per_second: f64::INFINITY,
            burst: None,
            source,
        }
    }

    fn unknown(reason: impl Into<String>) -> Self {
        Self::unlimited(BudgetSource::Unknown {
            reason: reason.into(),
        })
    }
}

/// A bucket as both resources describe it.
#[derive(Debug, Deserialize)]
struct Bucket {
    capacity: Option<i64>,
    #[serde(rename = "fillRate")]
    fill_rate: Option<i64>,
}

impl Bucket {
    /// The bucket as a budget, when both numbers are there and positive.
    fn budget(&self, source: BudgetSource) -> Option<RateBudget> {
        match (self.capacity, self.fill_rate) {
            (Some(capacity), Some(fill)) if capacity > 0 && fill > 0 => Some(RateBudget {
                per_second: fill as f64,
                burst: Some(capacity as f64),
                source,
            }),
            _ => None,
        }
    }
}

/// `RestRateLimitSettings`.
#[derive(Debug, Deserialize)]
struct InstanceSettings {
    enabled: Option<bool>,
    #[serde(rename = "defaultSettings")]
    default_settings: Option<Bucket>,
}

/// `RestUserRateLimitSettings` (its `user` is not needed).
#[derive(Debug, Deserialize)]
struct UserSettings {
    settings: Option<Bucket>,
    whitelisted: Option<bool>,
}

/// How long reading the budget may take in all, at most (a tenant's call deadline, when
/// shorter, bounds it too).
pub const READ_DEADLINE: Duration = Duration::from_secs(60);

/// One answer: its status, the account the server named, and the body.
struct Answer {
    status: u16,
    user: Option<String>,
    body: Vec<u8>,
}

fn get(http: &TenantHttp, url: &Url, deadline: Instant) -> Result<Answer, HttpError> {
    let (head, body) = http.send("GET", url.as_str(), &[], deadline)?;
    let user = head
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-ausername"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    Ok(Answer {
        status: head.status,
        user,
        body,
    })
}

/// `base` joined with the settings resource, the user's slug as one path segment.
fn settings_url(base: &Url, slug: Option<&str>) -> Option<Url> {
    let mut url = base.clone();
    {
        let mut path = url.path_segments_mut().ok()?;
        path.pop_if_empty()
            .extend(["rest", "api", "latest", "admin", "rate-limit", "settings"]);
        if let Some(slug) = slug {
            path.extend(["users", slug]);
        }
    }
    Some(url)
}

/// Reads the account's budget from the server: its own settings, or the instance's. The
/// `X-AUSERNAME` header of the first answer names the account. Nothing outlives `deadline`. Never fails: what cannot be read is
/// [`BudgetSource::Unknown`].
pub fn read(http: &TenantHttp, deadline: Instant) -> RateBudget {
    let Some(url) = settings_url(http.base(), None) else {
        return RateBudget::unknown("the base URL cannot take a path");
    };
    let instance = match get(http, &url, deadline) {
        Ok(answer) => answer,
        Err(e) => return RateBudget::unknown(format!("the settings could not be read: {e}")),
    };
    let slug = instance.user.clone();
    let instance_budget = match instance.status {
        200 => match serde_json::from_slice::<InstanceSettings>(&instance.body) {
            // Nothing is enforced: no settings of the account's matter.
            Ok(InstanceSettings {
                enabled: Some(false),
                ..
            }) => return RateBudget::unlimited(BudgetSource::Disabled),
            Ok(s) => s
                .default_settings
                .and_then(|b| b.budget(BudgetSource::Instance))
                .ok_or_else(|| "the instance's settings name no bucket".to_owned()),
            Err(e) => Err(format!(
                "the instance's settings are not JSON of the expected shape: {e}"
            )),
        },
        404 => {
            return RateBudget::unknown(
                "the server has no rate-limit settings resource (Bitbucket before 6.6)",
            );
        }
        status => Err(format!("the instance's settings were refused ({status})")),
    };
    // The instance's bucket applies only once the account is known to have none of its own
    // (404): a budget held too low would be trusted for the whole run, so anything else the
    // account's resource answers leaves the budget unknown.
    let Some(slug) = slug else {
        return RateBudget::unknown("the server named no account (no X-AUSERNAME header)");
    };
    let Some(url) = settings_url(http.base(), Some(&slug)) else {
        return RateBudget::unknown("the base URL cannot take a path");
    };
    let answer = match get(http, &url, deadline) {
        Ok(answer) => answer,
        Err(e) => {
            return RateBudget::unknown(format!("the account's settings could not be read: {e}"));
        }
    };
    match answer.status {
        200 => match serde_json::from_slice::<UserSettings>(&answer.body) {
            Ok(UserSettings {
                whitelisted: Some(true),
                ..
            }) => RateBudget::unlimited(BudgetSource::Exempt { slug }),
            Ok(UserSettings {
                settings: Some(bucket),
                ..
            }) => bucket
                .budget(BudgetSource::Account { slug: slug.clone() })
                .unwrap_or_else(|| {
                    RateBudget::unknown(format!("the settings of {slug:?} name no bucket"))
                }),
            Ok(_) => RateBudget::unknown(format!("the settings of {slug:?} name no bucket")),
            Err(e) => RateBudget::unknown(format!(
                "the settings of {slug:?} are not JSON of the expected shape: {e}"
            )),
        },
        404 => instance_budget.unwrap_or_else(RateBudget::unknown),
        status => RateBudget::unknown(format!("the settings of {slug:?} were refused ({status})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_urls_keep_the_context_path_and_encode_the_slug() {
        let base = Url::parse("https://h/bitbucket/").unwrap();
        assert_eq!(
            settings_url(&base, None).unwrap().as_str(),
            "https://h/bitbucket/rest/api/latest/admin/rate-limit/settings"
        );
        assert_eq!(
            settings_url(&base, Some("svc/ingest ?")).unwrap().as_str(),
            "https://h/bitbucket/rest/api/latest/admin/rate-limit/settings/users/svc%2Fingest%20%3F"
        );
    }

    /// A server whose two settings resources answer `instance` and `account` (status and body),
    /// naming the account `svc` in `X-AUSERNAME`.
    struct Settings {
        instance: (u16, &'static str),
        account: (u16, &'static str),
    }

    impl crate::http::Responder for Settings {
        fn respond(&self, _method: &str, url: &Url) -> crate::http::CannedResponse {
            let (status, body) = if url.path().ends_with("/settings/users/svc") {
                self.account
            } else if url.path().ends_with("/admin/rate-limit/settings") {
                self.instance
            } else {
                (404, "{}")
            };
            let mut answer = crate::http::CannedResponse::json(body);
            answer.status = status;
            answer.headers.push(("X-AUSERNAME".into(), "svc".into()));
            answer
        }
    }

    fn read_from(instance: (u16, &'static str), account: (u16, &'static str)) -> RateBudget {
        let config = crate::TenantConfig::new(
            "t",
            "https://bitbucket.example",
            crate::Credentials::Bearer("x".into()),
        );
        let mut http = TenantHttp::new(&config).expect("client");
        http.answer_from(std::sync::Arc::new(Settings { instance, account }));
        read(&http, Instant::now() + Duration::from_secs(30))
    }

    const DEFAULT: &str =
        r#"{"enabled": true, "defaultSettings": {"capacity": 60, "fillRate": 5}}"#;

    #[test]
    fn the_accounts_own_settings_win_and_a_404_means_the_instances() {
        let own = r#"{"settings": {"capacity": 500, "fillRate": 50}, "whitelisted": false, "user": {"slug": "svc"}}"#;
        let got = read_from((200, DEFAULT), (200, own));
        assert_eq!((got.per_second, got.burst), (50.0, Some(500.0)));
        assert_eq!(got.source, BudgetSource::Account { slug: "svc".into() });
        let got = read_from((200, DEFAULT), (404, r#"{"errors": []}"#));
        assert_eq!((got.per_second, got.burst), (5.0, Some(60.0)));
        assert_eq!(got.source, BudgetSource::Instance);
    }

    #[test]
    fn exempt_or_switched_off_is_unlimited() {
        let exempt = r#"{"whitelisted": true}"#;
        let got = read_from((200, DEFAULT), (200, exempt));
        assert!(got.per_second.is_infinite() && got.burst.is_none());
        assert_eq!(got.source.code(), "exempt");
        let off = r#"{"enabled": false, "defaultSettings": {"capacity": 60, "fillRate": 5}}"#;
        let own = r#"{"settings": {"capacity": 20, "fillRate": 2}}"#;
        let got = read_from((200, off), (200, own));
        assert!(got.per_second.is_infinite());
        assert_eq!(got.source, BudgetSource::Disabled);
    }

    #[test]
    fn absent_refused_or_malformed_settings_leave_the_budget_unknown() {
        for (instance, account) in [
            ((404, "{}"), (404, "{}")),
            ((401, r#"{"errors": []}"#), (401, r#"{"errors": []}"#)),
            ((200, "not json"), (404, "{}")),
            (
                (
                    200,
                    r#"{"enabled": true, "defaultSettings": {"capacity": 0}}"#,
                ),
                (404, "{}"),
            ),
            (
                (200, r#"{"enabled": "yes"}"#),
                (200, r#"{"settings": "many"}"#),
            ),
        ] {
            let got = read_from(instance, account);
            assert_eq!(
                got.source.code(),
                "unknown",
                "{instance:?} {account:?}: {got:?}"
            );
            assert!(got.per_second.is_infinite());
        }
        // A refused instance resource with the account's own settings readable: those.
        let own = r#"{"settings": {"capacity": 20, "fillRate": 2}}"#;
        let got = read_from((401, "{}"), (200, own));
        assert_eq!(got.source.code(), "account");
        // The account's resource refused or failing: not the instance's bucket, which could
        // hold an exempt account to the default for the whole run.
        for account in [(401, "{}"), (500, "{}"), (200, "[]")] {
            let got = read_from((200, DEFAULT), account);
            assert_eq!(got.source.code(), "unknown", "{account:?}: {got:?}");
        }
    }

    #[test]
    fn a_bucket_needs_both_numbers_positive() {
        let b = |c, f| Bucket {
            capacity: c,
            fill_rate: f,
        };
        let got = b(Some(60), Some(5)).budget(BudgetSource::Instance).unwrap();
        assert_eq!((got.per_second, got.burst), (5.0, Some(60.0)));
        for bad in [
            b(None, Some(5)),
            b(Some(60), None),
            b(Some(0), Some(5)),
            b(Some(60), Some(-1)),
        ] {
            assert!(bad.budget(BudgetSource::Instance).is_none(), "{bad:?}");
        }
    }
}
