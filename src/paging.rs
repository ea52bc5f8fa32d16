//! Bitbucket paging: `{size, limit, isLastPage, start, values[], nextPageStart?}`.
//!
//! The rules, from real servers: `nextPageStart` is the only valid next `start` (it is not always
//! `start + size`); the server caps `limit` per resource and answers with the limit it used; and
//! some servers say `isLastPage: false` without a `nextPageStart`. A listing stops when either
//! field says stop, or when `nextPageStart` does not move forward (which would loop forever).

use crate::error::ConnectorError;
use crate::model::{RecordKind, UnreadableRecord};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_with::{DefaultOnError, serde_as};

/// Largest page the connector asks for by default; servers cap lower per resource and say so.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// Longest `reason` kept for an unreadable item: enough for the parser's message, never a page.
const MAX_REASON: usize = 200;

/// One page as the server sends it. The paging fields are read leniently (an unreadable one is
/// absent, and absent fields mean "last page"); the items stay raw JSON, borrowed from the body,
/// so that each is decoded on its own and one bad item cannot fail the page.
#[serde_as]
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WirePage<'a> {
    /// The items, undecoded (absent or `null`: none).
    #[serde(borrow, default)]
    pub values: Option<Vec<&'a RawValue>>,
    /// The limit the server actually used.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub limit: Option<u64>,
    /// The start the server actually used.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub start: Option<u64>,
    /// Whether this is the last page.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub is_last_page: Option<bool>,
    /// Where the next page starts.
    #[serde_as(as = "DefaultOnError")]
    #[serde(default)]
    pub next_page_start: Option<u64>,
}

impl WirePage<'_> {
    /// Decodes every item as `T`. Items that do not decode (their identity is missing or
    /// unreadable, or the item is not an object at all) are left out and described in the
    /// second list; `location` names the request for those descriptions.
    pub fn decode<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        location: &str,
    ) -> (Vec<T>, Vec<UnreadableRecord>) {
        decode_items(self.values.as_deref().unwrap_or_default(), kind, location)
    }
}

/// Decodes raw items one by one; see [`WirePage::decode`].
pub fn decode_items<T: DeserializeOwned>(
    raw: &[&RawValue],
    kind: RecordKind,
    location: &str,
) -> (Vec<T>, Vec<UnreadableRecord>) {
    let mut items = Vec::with_capacity(raw.len());
    let mut unreadable = Vec::new();
    for (i, item) in raw.iter().enumerate() {
        match serde_json::from_str::<T>(item.get()) {
            Ok(v) => items.push(v),
            Err(e) => unreadable.push(UnreadableRecord {
                kind,
                location: format!("{location} item {i}"),
                reason: clean_reason(&e.to_string()),
            }),
        }
    }
    (items, unreadable)
}

/// A parser message made safe to show: control characters (terminal escapes) replaced and the
/// length bounded.
pub fn clean_reason(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .take(MAX_REASON)
        .collect();
    if message.chars().count() > MAX_REASON {
        out.push('…');
    }
    out
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
pub fn next_start(requested: u64, page: &WirePage<'_>) -> (Option<u64>, Option<PageAnomaly>) {
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

    fn page(json: &str) -> WirePage<'_> {
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
        assert_eq!(p.values.map(|v| v.len()), Some(0));
    }

    #[test]
    fn paging_fields_in_another_shape_mean_last_page() {
        let p = page(r#"{"values":[1],"isLastPage":"no","nextPageStart":"25","limit":null}"#);
        assert_eq!(next_start(0, &p), (None, None));
        assert_eq!(p.limit, None);
    }

    #[test]
    fn one_bad_item_is_reported_and_the_rest_kept() {
        let p = page(
            r#"{"values":[{"id":1},null,{"title":"no id"},{"id":"x"},{"id":4,"extra":{"a":[null]}}],"isLastPage":true}"#,
        );
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Item {
            id: u64,
        }
        let (items, bad) = p.decode::<Item>(RecordKind::PullRequest, "GET /x start=0");
        assert_eq!(items, vec![Item { id: 1 }, Item { id: 4 }]);
        let at: Vec<_> = bad.iter().map(|b| b.location.as_str()).collect();
        assert_eq!(
            at,
            vec![
                "GET /x start=0 item 1",
                "GET /x start=0 item 2",
                "GET /x start=0 item 3"
            ]
        );
        assert!(
            bad.iter()
                .all(|b| b.kind == RecordKind::PullRequest && !b.reason.is_empty())
        );
    }

    #[test]
    fn reasons_carry_no_escape_codes_and_stay_short() {
        let r = clean_reason(&format!("bad \u{1b}]0;owned\u{7} {}", "x".repeat(500)));
        assert!(!r.chars().any(char::is_control));
        assert!(r.chars().count() <= MAX_REASON + 1);
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
