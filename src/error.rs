//! Typed errors, and the table that turns a Bitbucket HTTP answer into one.
//!
//! Bitbucket answers 401 both for bad credentials and, on many endpoints, for missing permissions;
//! only the `exceptionName` in its error body tells them apart. [`classify_status`] is the one
//! place that knows this.

use crate::host::{HttpError, ResponseHead};
use serde::Deserialize;

/// Why a connector call failed (WIT `connector-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The credentials are not valid.
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    /// The credentials lack a needed permission.
    #[error("insufficient permissions: {0}")]
    InvalidPermissions(String),
    /// The account can see nothing to import.
    #[error("no resources: {0}")]
    NoResources(String),
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Rate-limited.
    #[error("rate limited: {message}")]
    RateLimited {
        /// Retry-After in milliseconds, when the server said.
        retry_after_ms: Option<u64>,
        /// Detail.
        message: String,
    },
    /// The server failed.
    #[error("server error {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Detail.
        message: String,
    },
    /// No answer: the connection was refused, reset or cut, or TLS or the protocol failed
    /// (`http-error.connection`).
    #[error("transport error: {0}")]
    Transport(String),
    /// No answer within the host's deadline (`http-error.timeout`).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The host refused to send the request (`http-error.denied`). Final: sending it again
    /// cannot succeed, so nothing retries it.
    #[error("denied by the host: {0}")]
    Denied(String),
    /// The response was larger than the host lets through (`http-error.too-large`). Final for
    /// the resource as it stands: nothing retries it.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Not the documented shape.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// Unusable settings or arguments.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Storage trouble.
    #[error("storage error: {0}")]
    Storage(String),
}

impl ConnectorError {
    /// The variant's name in snake_case (`malformed_response`), for tests to name what they
    /// expect. Derived from the variant's name, not a second table: the one table of stable
    /// codes is the host's, over the WIT type (`bbdc_jobs::output::connector_error`).
    #[cfg(test)]
    pub(crate) fn code(&self) -> String {
        let debug = format!("{self:?}");
        let name = debug
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        let mut code = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        }
        code
    }

    /// Whether asking again can never give another answer: the host refused the request, or
    /// its answer is larger than the host lets through. Such a failure is not retried, not even
    /// by the next pass's rotation of skipped pull requests.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Denied(_) | Self::TooLarge(_))
    }
}

/// Why request `what` (e.g. `"GET /projects"`) got no response, as a typed error: each
/// [`HttpError`] keeps its own case, so that `denied` and `too-large` stay final and
/// distinguishable from a cut connection.
pub fn http_error(what: &str, e: HttpError) -> ConnectorError {
    match e {
        HttpError::Denied(why) => ConnectorError::Denied(format!("{what}: {why}")),
        HttpError::Timeout => {
            ConnectorError::Timeout(format!("{what}: no answer within the host's deadline"))
        }
        HttpError::Connection(why) => {
            ConnectorError::Transport(format!("{what}: connection failed: {why}"))
        }
        HttpError::TooLarge(cap) => ConnectorError::TooLarge(format!(
            "{what}: the response is larger than the host allows ({cap} bytes)"
        )),
    }
}

/// Bitbucket's error body: `{"errors":[{"context":..,"message":..,"exceptionName":..}]}`.
#[derive(Debug, Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorEntry {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    exception_name: Option<String>,
}

/// The first message and exception name of a Bitbucket error body, if it is one.
fn error_details(body: &[u8]) -> (Option<String>, Option<String>) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b
            .errors
            .into_iter()
            .next()
            .map(|e| (e.message, e.exception_name))
            .unwrap_or_default(),
        Err(_) => (None, None),
    }
}

/// Whether an exception name says "authenticated, but not allowed".
fn is_authorisation_exception(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("authorisation") || n.contains("authorization") || n.contains("permission")
}

/// Whether an exception name says "who are you?".
fn is_authentication_exception(name: &str) -> bool {
    name.to_ascii_lowercase().contains("authentication")
}

/// Parses `Retry-After` given in seconds into milliseconds, saturating: a number of seconds too
/// large for the counters (even beyond `u64`) is `u64::MAX` milliseconds, "a very long time",
/// never a wrapped short wait. A sign, a fraction or anything else is no delay at all. (HTTP-date
/// values are resolved by the host, which owns the clock and the retry policy; the connector
/// only reports.)
pub fn retry_after_ms(head: &ResponseHead) -> Option<u64> {
    let v = head.header("retry-after")?.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000))
}

/// Turns a non-2xx answer into a typed error. `what` names the request for the message, e.g.
/// `"GET /projects"`.
pub fn classify_status(head: &ResponseHead, body: &[u8], what: &str) -> ConnectorError {
    let status = head.status;
    let (message, exception) = error_details(body);
    let exception = exception.unwrap_or_default();
    let detail = match &message {
        Some(m) => format!("{what}: {m}"),
        None => format!("{what}: HTTP {status}"),
    };
    match status {
        401 if is_authorisation_exception(&exception) => ConnectorError::InvalidPermissions(detail),
        401 => ConnectorError::InvalidCredentials(detail),
        403 if is_authentication_exception(&exception) => {
            ConnectorError::InvalidCredentials(detail)
        }
        403 => ConnectorError::InvalidPermissions(detail),
        404 => ConnectorError::NotFound(detail),
        429 => ConnectorError::RateLimited {
            retry_after_ms: retry_after_ms(head),
            message: detail,
        },
        300..=399 => ConnectorError::InvalidConfig(format!(
            "{what}: the server redirected to {} (is the base URL right?)",
            head.header("location").unwrap_or("another location")
        )),
        _ => ConnectorError::Server {
            status,
            message: detail,
        },
    }
}

impl From<ConnectorError> for crate::model::ContractError {
    /// The contract's form of a typed error: the same case, the same detail.
    fn from(e: ConnectorError) -> Self {
        match e {
            ConnectorError::InvalidCredentials(s) => Self::InvalidCredentials(s),
            ConnectorError::InvalidPermissions(s) => Self::InvalidPermissions(s),
            ConnectorError::NoResources(s) => Self::NoResources(s),
            ConnectorError::NotFound(s) => Self::NotFound(s),
            ConnectorError::RateLimited {
                retry_after_ms,
                message,
            } => Self::RateLimited(crate::model::RateLimitedError {
                retry_after_ms,
                message,
            }),
            ConnectorError::Server { status, message } => {
                Self::Server(crate::model::ServerError { status, message })
            }
            ConnectorError::Transport(s) => Self::Transport(s),
            ConnectorError::Timeout(s) => Self::Timeout(s),
            ConnectorError::Denied(s) => Self::Denied(s),
            ConnectorError::TooLarge(s) => Self::TooLarge(s),
            ConnectorError::MalformedResponse(s) => Self::MalformedResponse(s),
            ConnectorError::InvalidConfig(s) => Self::InvalidConfig(s),
            ConnectorError::Storage(s) => Self::Storage(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_error_keeps_its_case_and_detail_in_the_contract() {
        assert_eq!(
            crate::model::ContractError::from(ConnectorError::RateLimited {
                retry_after_ms: Some(2000),
                message: "GET /repos: slow down".into(),
            }),
            crate::model::ContractError::RateLimited(crate::model::RateLimitedError {
                retry_after_ms: Some(2000),
                message: "GET /repos: slow down".into(),
            })
        );
        assert_eq!(
            crate::model::ContractError::from(ConnectorError::Server {
                status: 502,
                message: "bad gateway".into(),
            }),
            crate::model::ContractError::Server(crate::model::ServerError {
                status: 502,
                message: "bad gateway".into(),
            })
        );
        assert_eq!(
            crate::model::ContractError::from(ConnectorError::Storage("lost".into())),
            crate::model::ContractError::Storage("lost".into())
        );
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        ResponseHead {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn body(exception: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"errors": [{"context": null, "message": message, "exceptionName": exception}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn error_table() {
        let cases: Vec<(u16, Vec<u8>, &str)> = vec![
            (
                401,
                body(
                    "com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
                    "Bad password",
                ),
                "invalid_credentials",
            ),
            (
                401,
                body(
                    "com.atlassian.bitbucket.AuthorisationException",
                    "You are not permitted to access this resource",
                ),
                "invalid_permissions",
            ),
            (401, b"".to_vec(), "invalid_credentials"),
            (401, b"<html>login</html>".to_vec(), "invalid_credentials"),
            (
                403,
                body("com.atlassian.bitbucket.AuthorisationException", "nope"),
                "invalid_permissions",
            ),
            (403, b"".to_vec(), "invalid_permissions"),
            (
                403,
                body(
                    "com.atlassian.bitbucket.auth.CaptchaRequiredAuthenticationException",
                    "captcha",
                ),
                "invalid_credentials",
            ),
            (
                404,
                body(
                    "com.atlassian.bitbucket.project.NoSuchProjectException",
                    "Project FOO does not exist.",
                ),
                "not_found",
            ),
            (
                404,
                body(
                    "com.atlassian.bitbucket.repository.NoSuchRepositoryException",
                    "gone",
                ),
                "not_found",
            ),
            (429, b"".to_vec(), "rate_limited"),
            (
                500,
                body(
                    "com.atlassian.bitbucket.scm.CommandFailedException",
                    "git failed",
                ),
                "server",
            ),
            (502, b"bad gateway".to_vec(), "server"),
            (
                400,
                body(
                    "com.atlassian.bitbucket.validation.ArgumentValidationException",
                    "bad",
                ),
                "server",
            ),
            (302, b"".to_vec(), "invalid_config"),
        ];
        for (status, b, code) in cases {
            let e = classify_status(&head(status, &[]), &b, "GET /x");
            assert_eq!(
                e.code(),
                code,
                "status {status} body {:?}",
                String::from_utf8_lossy(&b)
            );
        }
    }

    #[test]
    fn message_comes_from_the_error_body() {
        let e = classify_status(
            &head(404, &[]),
            &body("x.NoSuchProjectException", "Project FOO does not exist."),
            "GET /projects/FOO",
        );
        assert_eq!(
            e,
            ConnectorError::NotFound("GET /projects/FOO: Project FOO does not exist.".into())
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let e = classify_status(&head(429, &[("Retry-After", "7")]), b"", "GET /x");
        assert_eq!(
            e,
            ConnectorError::RateLimited {
                retry_after_ms: Some(7000),
                message: "GET /x: HTTP 429".into()
            }
        );
        let e = classify_status(
            &head(429, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            b"",
            "GET /x",
        );
        assert!(matches!(
            e,
            ConnectorError::RateLimited {
                retry_after_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn extreme_retry_after_values_saturate_and_bad_ones_are_absent() {
        let ms = |v: &str| retry_after_ms(&head(429, &[("Retry-After", v)]));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms(" 120 "), Some(120_000));
        assert_eq!(ms("18446744073709551"), Some(18_446_744_073_709_551_000));
        assert_eq!(
            ms("18446744073709552"),
            Some(u64::MAX),
            "seconds whose ms overflow"
        );
        assert_eq!(ms("18446744073709551615"), Some(u64::MAX));
        assert_eq!(
            ms("99999999999999999999999999999999"),
            Some(u64::MAX),
            "beyond u64 is a very long wait, not none"
        );
        for bad in [
            "-1",
            "-9223372036854775808",
            "+5",
            "1.5",
            "1e3",
            "",
            "  ",
            "5s",
        ] {
            assert_eq!(ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_http_error_keeps_its_own_case_and_only_denied_and_too_large_are_final() {
        let cases = [
            (
                HttpError::Denied("outside the base URL".into()),
                "denied",
                true,
            ),
            (HttpError::Timeout, "timeout", false),
            (HttpError::Connection("reset".into()), "transport", false),
            (HttpError::TooLarge(1024), "too_large", true),
        ];
        for (e, code, is_final) in cases {
            let c = http_error("GET /x", e.clone());
            assert_eq!((c.code().as_str(), c.is_final()), (code, is_final), "{e:?}");
            assert!(c.to_string().contains("GET /x"), "{c}");
        }
        assert!(
            http_error("GET /x", HttpError::TooLarge(1024))
                .to_string()
                .contains("1024 bytes")
        );
        for c in [
            classify_status(&head(503, &[]), b"", "GET /x"),
            classify_status(&head(429, &[]), b"", "GET /x"),
            ConnectorError::MalformedResponse("cut".into()),
        ] {
            assert!(!c.is_final(), "{c}");
        }
    }

    #[test]
    fn server_error_keeps_status() {
        let e = classify_status(&head(503, &[]), b"", "GET /x");
        assert_eq!(
            e,
            ConnectorError::Server {
                status: 503,
                message: "GET /x: HTTP 503".into()
            }
        );
    }

    #[test]
    fn redirect_names_the_location() {
        let e = classify_status(
            &head(301, &[("Location", "https://other/login")]),
            b"",
            "GET /x",
        );
        assert!(e.to_string().contains("https://other/login"), "{e}");
    }
}
