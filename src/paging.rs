//! Bitbucket paging: `{size, limit, isLastPage, start, values[], nextPageStart?}`.
//!
//! The rules, from real servers: `nextPageStart` is the only valid next `start` (it is not always
//! `start + size`); the server caps `limit` per resource and answers with the limit it used; and
//! some servers say `isLastPage: false` without a `nextPageStart`. A listing stops when either
//! field says stop, or when `nextPageStart` does not move forward (which would loop forever).
//!
//! A listing that moves forward may still never end: a server (or a proxy) that answers empty
//! pages saying more follows, or a page stream with no end. [`Tally`] bounds every listing: it
//! fails after [`MAX_EMPTY_PAGES`] empty pages in a row that say more follows, and beyond
//! [`Bounds`] of pages and items; no `nextPageStart` may point past [`MAX_LISTING_ITEMS`].

use crate::error::ConnectorError;
use crate::model::{RecordKind, UnreadableRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_with::{DefaultOnError, serde_as};

/// Largest page the connector asks for by default; servers cap lower per resource and say so.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// Longest `reason` kept for an unreadable item: enough for the parser's message, never a page.
const MAX_REASON: usize = 200;

/// Empty pages in a row that say more follows (`isLastPage: false`, an advancing
/// `nextPageStart`, no `values`) after which a listing fails. Bitbucket filters some listings by
/// permission after paging, so one short or empty page can be real; three in a row is a server
/// or proxy that lost its data, and would otherwise be followed forever.
pub const MAX_EMPTY_PAGES: u32 = 3;

/// Most pages one listing follows. The longest listing of a 50,000-repository server, `GET
/// /repos`, is 2,000 pages at the smallest page cap seen in practice (25), and 50,000 even at a
/// cap of one item per page; a pull-request pass counts one page per call. At tens of
/// milliseconds per request, 100,000 pages is about an hour of requests: past that, the stream
/// is not ending and the listing fails instead of running on.
pub const MAX_LISTING_PAGES: u32 = 100_000;

/// Most items one listing yields, and the furthest `start` any page may be asked for. 100 times
/// the repositories of a 50,000-repository server, and far more than the pull requests of any
/// repository or the users of any directory; a listing walked page by page holds one page at a
/// time, so this bounds time, not memory. A `nextPageStart` beyond it fails the listing too, so
/// every `start` the connector sends stays far from any integer limit.
pub const MAX_LISTING_ITEMS: u64 = 5_000_000;

/// Most items a listing collected whole in memory may hold ([`crate::client::Client::get_all`],
/// the activities of one pull request). The busiest real pull requests have some thousands of
/// activities; at a few hundred bytes each, 100,000 stays well inside a call's memory (256 MiB
/// in the reference host), where a never-ending listing would otherwise trap the component.
pub const MAX_COLLECTED_ITEMS: u64 = 100_000;

/// How far a listing may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most pages.
    pub pages: u32,
    /// Most items.
    pub items: u64,
}

impl Bounds {
    /// A listing handed on page by page: [`MAX_LISTING_PAGES`], [`MAX_LISTING_ITEMS`].
    pub const WALKED: Bounds = Bounds {
        pages: MAX_LISTING_PAGES,
        items: MAX_LISTING_ITEMS,
    };
    /// A listing collected whole in memory: [`MAX_LISTING_PAGES`], [`MAX_COLLECTED_ITEMS`].
    pub const COLLECTED: Bounds = Bounds {
        pages: MAX_LISTING_PAGES,
        items: MAX_COLLECTED_ITEMS,
    };
}

/// How far a listing has come: pages read, items received and empty pages in a row. Kept across
/// the calls of a pull-request pass in its progress, hence serialisable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Pages read (a page read again counts again).
    #[serde(default)]
    pub pages: u32,
    /// Items received, identified or not.
    #[serde(default)]
    pub items: u64,
    /// Empty pages in a row that said more follows.
    #[serde(default)]
    pub empty_run: u32,
}

impl Tally {
    /// Counts a page of `received` items after which the listing goes on when `more`. When it
    /// would go on past `bounds` or after [`MAX_EMPTY_PAGES`] empty pages in a row, the error
    /// names the listing (`what`, e.g. `GET /projects`). A listing that ends here never fails.
    pub fn count(
        &mut self,
        received: usize,
        more: bool,
        bounds: Bounds,
        what: &str,
    ) -> Result<(), ConnectorError> {
        self.pages = self.pages.saturating_add(1);
        self.items = self
            .items
            .saturating_add(u64::try_from(received).unwrap_or(u64::MAX));
        self.empty_run = if received == 0 && more {
            self.empty_run.saturating_add(1)
        } else {
            0
        };
        if more {
            self.check(bounds, what)
        } else {
            Ok(())
        }
    }

    /// Counts a page read again (its items were counted the first time), for a listing that
    /// goes on; an error as for [`Tally::count`] past `bounds`.
    pub fn reread(&mut self, bounds: Bounds, what: &str) -> Result<(), ConnectorError> {
        self.pages = self.pages.saturating_add(1);
        self.check(bounds, what)
    }

    /// Whether another page may be read after those counted.
    fn check(&self, bounds: Bounds, what: &str) -> Result<(), ConnectorError> {
        let fail = |why: String| {
            Err(ConnectorError::MalformedResponse(format!(
                "{what}: {why}; the listing was given up"
            )))
        };
        if self.empty_run >= MAX_EMPTY_PAGES {
            return fail(format!(
                "{} empty pages in a row each said more follows (isLastPage false, nextPageStart advancing)",
                self.empty_run
            ));
        }
        if self.pages >= bounds.pages {
            return fail(format!(
                "the listing goes on past {} pages, the most one listing may have",
                bounds.pages
            ));
        }
        if self.items >= bounds.items {
            return fail(format!(
                "the listing goes on past {} items ({} so far), the most one listing may have",
                bounds.items, self.items
            ));
        }
        Ok(())
    }
}

/// Refuses a `nextPageStart` past [`MAX_LISTING_ITEMS`]: a listing that long is over its bounds,
/// whatever its pages held. `what` names the listing.
pub fn check_next(next: Option<u64>, what: &str) -> Result<(), ConnectorError> {
    match next {
        Some(n) if n > MAX_LISTING_ITEMS => Err(ConnectorError::MalformedResponse(format!(
            "{what}: nextPageStart {n} is past {MAX_LISTING_ITEMS} items, the most one listing may have; the listing was given up"
        ))),
        _ => Ok(()),
    }
}

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
    decode_items_as(raw, location, |location, reason| UnreadableRecord {
        kind,
        location,
        reason,
    })
}

/// Decodes raw items one by one, describing each item that does not decode with `unreadable`
/// (its location, `"{location} item {i}"`, and the parser's cleaned message): the one decoding
/// loop behind every listing, whatever record type reports its unreadable items.
pub fn decode_items_as<T: DeserializeOwned, U>(
    raw: &[&RawValue],
    location: &str,
    unreadable: impl Fn(String, String) -> U,
) -> (Vec<T>, Vec<U>) {
    let mut items = Vec::with_capacity(raw.len());
    let mut left_out = Vec::new();
    for (i, item) in raw.iter().enumerate() {
        match serde_json::from_str::<T>(item.get()) {
            Ok(v) => items.push(v),
            Err(e) => left_out.push(unreadable(
                format!("{location} item {i}"),
                clean_reason(&e.to_string()),
            )),
        }
    }
    (items, left_out)
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

/// Where a listing that the host pages through, one call per page, stands: the next `start`,
/// and how many empty pages in a row that said more follows led there (so that such pages end
/// the listing across calls too; the total is bounded by [`check_next`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCursor {
    /// The `start` of the next page.
    pub start: u64,
    /// Empty pages in a row before it.
    pub empty_run: u32,
}

/// Decodes a page cursor written by [`encode_cursor`]: `start`, or `start.empty_run`.
pub fn decode_cursor(cursor: Option<&str>) -> Result<PageCursor, ConnectorError> {
    let Some(c) = cursor else {
        return Ok(PageCursor::default());
    };
    let bad = || ConnectorError::InvalidConfig(format!("not a page cursor: {c:?}"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (start, run) = c.split_once('.').unwrap_or((c, "0"));
    if !digits(start) || !digits(run) {
        return Err(bad());
    }
    Ok(PageCursor {
        start: start.parse().map_err(|_| bad())?,
        empty_run: run.parse().map_err(|_| bad())?,
    })
}

/// Encodes a page cursor: the plain `start` unless empty pages led to it.
pub fn encode_cursor(cursor: PageCursor) -> String {
    match cursor.empty_run {
        0 => cursor.start.to_string(),
        n => format!("{}.{n}", cursor.start),
    }
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
        assert_eq!(decode_cursor(None).unwrap(), PageCursor::default());
        let plain = PageCursor {
            start: 1234,
            empty_run: 0,
        };
        assert_eq!(
            encode_cursor(plain),
            "1234",
            "no empty pages: the plain start"
        );
        assert_eq!(decode_cursor(Some(&encode_cursor(plain))).unwrap(), plain);
        let after_empties = PageCursor {
            start: u64::MAX,
            empty_run: 2,
        };
        assert_eq!(
            decode_cursor(Some(&encode_cursor(after_empties))).unwrap(),
            after_empties
        );
        for bad in [
            "abc",
            "-1",
            "+1",
            "",
            "1.",
            ".1",
            "1.2.3",
            "1e3",
            "18446744073709551616",
            "1.4294967296",
        ] {
            assert_eq!(
                decode_cursor(Some(bad)).unwrap_err().code(),
                "invalid_config",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn three_empty_pages_in_a_row_that_say_more_end_the_listing() {
        let mut t = Tally::default();
        t.count(0, true, Bounds::WALKED, "GET /projects").unwrap();
        t.count(0, true, Bounds::WALKED, "GET /projects").unwrap();
        let e = t
            .count(0, true, Bounds::WALKED, "GET /projects")
            .unwrap_err();
        assert_eq!(e.code(), "malformed_response");
        let msg = e.to_string();
        assert!(
            msg.contains("GET /projects") && msg.contains("3 empty pages in a row"),
            "{msg}"
        );

        // A page with items in between starts the count again; an empty last page is no anomaly.
        let mut t = Tally::default();
        for (received, more) in [
            (0, true),
            (0, true),
            (1, true),
            (0, true),
            (0, true),
            (0, false),
        ] {
            t.count(received, more, Bounds::WALKED, "GET /x").unwrap();
        }
        assert_eq!((t.pages, t.items, t.empty_run), (6, 1, 0));
    }

    #[test]
    fn a_listing_past_its_bounds_fails_and_one_ending_there_does_not() {
        let small = Bounds {
            pages: 3,
            items: 10,
        };
        let mut t = Tally::default();
        t.count(1, true, small, "GET /x").unwrap();
        t.count(1, true, small, "GET /x").unwrap();
        let e = t.count(1, true, small, "GET /x").unwrap_err();
        assert!(e.to_string().contains("past 3 pages"), "{e}");
        let mut t = Tally::default();
        t.count(1, true, small, "GET /x").unwrap();
        t.count(1, true, small, "GET /x").unwrap();
        t.count(1, false, small, "GET /x").unwrap();

        let mut t = Tally::default();
        t.count(6, true, small, "GET /x").unwrap();
        let e = t.count(6, true, small, "GET /x").unwrap_err();
        assert!(e.to_string().contains("past 10 items (12 so far)"), "{e}");
        let mut t = Tally::default();
        t.count(6, true, small, "GET /x").unwrap();
        t.count(6, false, small, "GET /x").unwrap();

        // Reading a page again counts as a page, not as more items.
        let mut t = Tally::default();
        t.count(5, true, small, "GET /x").unwrap();
        t.reread(small, "GET /x").unwrap();
        assert!(t.reread(small, "GET /x").is_err());
        assert_eq!(t.items, 5);

        // The counters saturate instead of wrapping.
        let mut t = Tally {
            pages: u32::MAX,
            items: u64::MAX,
            empty_run: u32::MAX,
        };
        t.count(usize::MAX, false, small, "GET /x").unwrap();
        assert_eq!((t.pages, t.items, t.empty_run), (u32::MAX, u64::MAX, 0));
    }

    #[test]
    fn a_next_page_start_past_the_item_bound_ends_the_listing() {
        assert!(check_next(None, "GET /x").is_ok());
        assert!(check_next(Some(MAX_LISTING_ITEMS), "GET /x").is_ok());
        for n in [MAX_LISTING_ITEMS + 1, u64::MAX] {
            let e = check_next(Some(n), "GET /repos").unwrap_err();
            assert_eq!(e.code(), "malformed_response");
            assert!(
                e.to_string()
                    .contains(&format!("GET /repos: nextPageStart {n}")),
                "{e}"
            );
        }
    }

    #[test]
    fn extreme_paging_fields() {
        // The largest number is followed as such (and refused by `check_next`), never wrapped.
        let p = page(
            r#"{"start":0,"isLastPage":false,"values":[1],"nextPageStart":18446744073709551615}"#,
        );
        assert_eq!(next_start(0, &p), (Some(u64::MAX), None));
        // Negative, fractional or too large for u64: unreadable, so absent.
        for next in [
            "-1",
            "1e30",
            "2.5",
            "18446744073709551616",
            "-9223372036854775808",
        ] {
            let json = format!(r#"{{"isLastPage":false,"values":[1],"nextPageStart":{next}}}"#);
            let p = page(&json);
            assert_eq!(
                next_start(0, &p),
                (None, Some(PageAnomaly::MissingNextStart)),
                "{next}"
            );
        }
        // A page claiming to start at the end of the range cannot advance.
        let p = page(
            r#"{"start":18446744073709551615,"isLastPage":false,"values":[1],"nextPageStart":5}"#,
        );
        assert_eq!(
            next_start(u64::MAX, &p),
            (None, Some(PageAnomaly::NonAdvancing))
        );
        let p = page(r#"{"start":-5,"isLastPage":false,"values":[1],"nextPageStart":5}"#);
        assert_eq!(next_start(0, &p), (Some(5), None));
    }

    #[test]
    fn page_size_defaults_and_floors() {
        assert_eq!(page_size(None), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some(0)), 1);
        assert_eq!(page_size(Some(50)), 50);
    }
}
