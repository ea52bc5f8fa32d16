//! Bitbucket paging: `{size, limit, isLastPage, start, values[], nextPageStart?}`.
//!
//! The rules, from real servers: `nextPageStart` is the only valid next `start` (it is not always
//! `start + size`); the server caps `limit` per resource and answers with the limit it used; and
//! some servers say `isLastPage: false` without a `nextPageStart`. A listing stops when either
//! field says stop, or when `nextPageStart` does not move forward (which would loop forever).

use crate::error::ConnectorError;
use serde::Deserialize;

/// Largest page the connector asks for by default; servers cap lower per resource and say so.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// One page as the server sends it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePage<T> {
    /// The items (absent on some error-ish empty answers: treated as none).
    #[serde(default = "Vec::new")]
    pub values: Vec<T>,
    /// The limit the server actually used.
    #[serde(default)]
    pub limit: Option<u64>,
    /// The start the server actually used.
    #[serde(default)]
    pub start: Option<u64>,
    /// Whether this is the last page.
    #[serde(default)]
    pub is_last_page: Option<bool>,
    /// Where the next page starts.
    #[serde(default)]
    pub next_page_start: Option<u64>,
}

/// Why a listing stopped, when it stopped for a reason other than the server saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAnomaly {
    /// `isLastPage: false` but no `nextPageStart`.
    MissingNextStart,
    /// `nextPageStart` at or behind the page's own start.
    NonAdvancing,
}

/// Where the next page starts, `None` when the listing is over. The anomaly, if any, is returned
/// so the caller can log it.
pub fn next_start<T>(requested: u64, page: &WirePage<T>) -> (Option<u64>, Option<PageAnomaly>) {
    if page.is_last_page == Some(true) {
        return (None, None);
    }
    match page.next_page_start {
        None if page.is_last_page == Some(false) => (None, Some(PageAnomaly::MissingNextStart)),
        None => (None, None),
        Some(next) if next <= requested.max(page.start.unwrap_or(0)) => {
            (None, Some(PageAnomaly::NonAdvancing))
        }
        Some(next) => (Some(next), None),
    }
}

/// Decodes a page cursor (a `start` offset written by [`encode_cursor`]).
pub fn decode_cursor(cursor: Option<&str>) -> Result<u64, ConnectorError> {
    match cursor {
        None => Ok(0),
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ConnectorError::InvalidConfig(format!("not a page cursor: {c:?}"))),
    }
}

/// Encodes a page cursor.
pub fn encode_cursor(start: u64) -> String {
    start.to_string()
}

/// The page size to request: the connection's, else the default, at least 1.
pub fn page_size(configured: Option<u32>) -> u32 {
    configured.unwrap_or(DEFAULT_PAGE_SIZE).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> WirePage<u32> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn follows_next_page_start_even_when_it_jumps() {
        let p = page(
            r#"{"size":2,"limit":2,"start":0,"isLastPage":false,"values":[1,2],"nextPageStart":7}"#,
        );
        assert_eq!(next_start(0, &p), (Some(7), None));
    }

    #[test]
    fn stops_on_last_page_even_with_a_next_start() {
        let p = page(
            r#"{"size":1,"limit":25,"start":0,"isLastPage":true,"values":[1],"nextPageStart":1}"#,
        );
        assert_eq!(next_start(0, &p), (None, None));
    }

    #[test]
    fn stops_when_not_last_but_no_next_start() {
        let p = page(r#"{"size":1,"limit":25,"start":0,"isLastPage":false,"values":[1]}"#);
        assert_eq!(
            next_start(0, &p),
            (None, Some(PageAnomaly::MissingNextStart))
        );
    }

    #[test]
    fn stops_when_next_start_does_not_advance() {
        let p = page(r#"{"start":5,"isLastPage":false,"values":[1],"nextPageStart":5}"#);
        assert_eq!(next_start(5, &p), (None, Some(PageAnomaly::NonAdvancing)));
        let p = page(r#"{"start":5,"isLastPage":false,"values":[1],"nextPageStart":3}"#);
        assert_eq!(next_start(5, &p), (None, Some(PageAnomaly::NonAdvancing)));
    }

    #[test]
    fn missing_flags_mean_last_page() {
        let p = page(r#"{"values":[]}"#);
        assert_eq!(next_start(0, &p), (None, None));
        assert!(p.values.is_empty());
    }

    #[test]
    fn reads_back_the_limit_the_server_used() {
        let p = page(
            r#"{"size":3,"limit":3,"start":0,"isLastPage":false,"values":[1,2,3],"nextPageStart":3}"#,
        );
        assert_eq!(p.limit, Some(3));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(None).unwrap(), 0);
        assert_eq!(decode_cursor(Some(&encode_cursor(1234))).unwrap(), 1234);
        assert_eq!(
            decode_cursor(Some("abc")).unwrap_err().code(),
            "invalid_config"
        );
        assert_eq!(
            decode_cursor(Some("-1")).unwrap_err().code(),
            "invalid_config"
        );
    }

    #[test]
    fn page_size_defaults_and_floors() {
        assert_eq!(page_size(None), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(50)), 50);
    }
}
