//! Bitbucket paging: `{size, limit, isLastPage, start, values[], nextPageStart?}`.
//!
//! The rules, from real servers: `nextPageStart` is the only valid next `start` (it is not always
//! `start + size`); the server caps `limit` per resource and answers with the limit it used; and
//! some servers say `isLastPage: false` without a `nextPageStart`. A listing stops when either
//! field says stop, or when `nextPageStart` does not move forward (which would loop forever).
//!
//! A listing that moves forward may still never end: a server (or a proxy) that answers empty
//! pages saying more follows, a page stream with no end, or a `nextPageStart` that creeps
//! forward by less than the page it read, so that pages overlap and never run out. One guard
//! bounds every listing, the same for each:
//! - [`Tally`] fails after [`MAX_EMPTY_PAGES`] empty pages in a row that say more follows, and
//!   beyond [`Bounds`] of pages and items;
//! - [`check_next`] fails a `nextPageStart` that moves forward by less than the page it read, or
//!   that points past [`MAX_LISTING_ITEMS`].
//!
//! The tally is carried across calls: in the cursor of a listing the host pages through
//! ([`PageCursor`]), and in the stored progress of a pass (pull requests, commits), so that a
//! listing walked one call at a time is bounded exactly as one walked in a single call.

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

/// Most build statuses one commit may have. Bitbucket keeps the latest statuses of a commit
/// and lists them in one page of at most 100; ten times that is far past any real commit, and
/// bounds what the statuses of the 50 commits of one call may hold.
pub const MAX_BUILDS_PER_COMMIT: u64 = 1000;

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
    /// The build statuses of one commit: [`MAX_BUILDS_PER_COMMIT`] items, as many pages.
    pub const BUILDS: Bounds = Bounds {
        pages: MAX_BUILDS_PER_COMMIT as u32,
        items: MAX_BUILDS_PER_COMMIT,
    };
}

/// How far a listing has come: pages read, items received and empty pages in a row. Kept across
/// calls (in a listing's cursor, and in the stored progress of a pull-request or commit pass),
/// hence serialisable.
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

/// Refuses a `nextPageStart` (`next`, as [`next_start`] read it from `page`, asked for at
/// `requested`) that moves forward by less than the page it read (`identified`: its items that
/// could be identified; a `null` or unreadable entry a proxy slipped in is no item), so that
/// pages overlap and a server can keep a listing going for ever while seeming to advance, or
/// that points past [`MAX_LISTING_ITEMS`], where a listing is over its bounds whatever its pages
/// held. Bitbucket's `nextPageStart` is the page's start plus the items it scanned, at least
/// those it returned (more when it filtered some out), so a real server never trips this.
/// `what` names the listing.
pub fn check_next(
    requested: u64,
    page: &WirePage<'_>,
    identified: usize,
    next: Option<u64>,
    what: &str,
) -> Result<(), ConnectorError> {
    let Some(n) = next else {
        return Ok(());
    };
    let gave_up = |why: String| {
        Err(ConnectorError::MalformedResponse(format!(
            "{what}: {why}; the listing was given up"
        )))
    };
    if n > MAX_LISTING_ITEMS {
        return gave_up(format!(
            "nextPageStart {n} is past {MAX_LISTING_ITEMS} items, the most one listing may have"
        ));
    }
    let base = requested.max(page.start.unwrap_or(0));
    let items = u64::try_from(identified).unwrap_or(u64::MAX);
    if n < base.saturating_add(items) {
        return gave_up(format!(
            "nextPageStart {n} after a page of {items} items at start {base} moves forward by less than the page it read (the pages overlap)"
        ));
    }
    Ok(())
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
/// and the listing's [`Tally`] so far (pages, items, empty pages in a row), so that the host's
/// calls are bounded across the whole listing as one call's walk is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCursor {
    /// The `start` of the next page.
    pub start: u64,
    /// The listing so far.
    pub listed: Tally,
}

/// Decodes a page cursor written by [`encode_cursor`]: `start`, `start.empty_run` (as written by
/// releases before the tally was carried; pages and items count from there), or
/// `start.empty_run.pages.items`.
pub fn decode_cursor(cursor: Option<&str>) -> Result<PageCursor, ConnectorError> {
    let Some(c) = cursor else {
        return Ok(PageCursor::default());
    };
    let bad = || ConnectorError::InvalidConfig(format!("not a page cursor: {c:?}"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = c.split('.').collect();
    if !matches!(parts.len(), 1 | 2 | 4) || !parts.iter().all(|p| digits(p)) {
        return Err(bad());
    }
    let at = |i: usize| parts.get(i).copied().unwrap_or("0");
    Ok(PageCursor {
        start: at(0).parse().map_err(|_| bad())?,
        listed: Tally {
            empty_run: at(1).parse().map_err(|_| bad())?,
            pages: at(2).parse().map_err(|_| bad())?,
            items: at(3).parse().map_err(|_| bad())?,
        },
    })
}

/// Encodes a page cursor: the plain `start` at a listing's beginning, else
/// `start.empty_run.pages.items`.
pub fn encode_cursor(cursor: PageCursor) -> String {
    let t = cursor.listed;
    if t == Tally::default() {
        cursor.start.to_string()
    } else {
        format!("{}.{}.{}.{}", cursor.start, t.empty_run, t.pages, t.items)
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
            listed: Tally::default(),
        };
        assert_eq!(
            encode_cursor(plain),
            "1234",
            "a fresh listing: the plain start"
        );
        assert_eq!(decode_cursor(Some(&encode_cursor(plain))).unwrap(), plain);
        let far = PageCursor {
            start: u64::MAX,
            listed: Tally {
                pages: u32::MAX,
                items: u64::MAX,
                empty_run: 2,
            },
        };
        assert_eq!(decode_cursor(Some(&encode_cursor(far))).unwrap(), far);
        // A cursor of a release before the tally was carried: its empty run, nothing counted.
        let old = decode_cursor(Some("50.2")).unwrap();
        assert_eq!(
            (old.start, old.listed.empty_run, old.listed.pages),
            (50, 2, 0)
        );
        for bad in [
            "abc",
            "-1",
            "+1",
            "",
            "1.",
            ".1",
            "1.2.3",
            "1.2.3.4.5",
            "1e3",
            "18446744073709551616",
            "1.4294967296",
            "1.0.4294967296.0",
            "1.0.0.18446744073709551616",
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
        let p = page(r#"{"start":0,"isLastPage":false,"values":[1]}"#);
        assert!(check_next(0, &p, 1, None, "GET /x").is_ok());
        assert!(check_next(0, &p, 1, Some(MAX_LISTING_ITEMS), "GET /x").is_ok());
        for n in [MAX_LISTING_ITEMS + 1, u64::MAX] {
            let e = check_next(0, &p, 1, Some(n), "GET /repos").unwrap_err();
            assert_eq!(e.code(), "malformed_response");
            assert!(
                e.to_string()
                    .contains(&format!("GET /repos: nextPageStart {n}")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_next_page_start_must_move_past_the_page_it_read() {
        // A server that creeps forward by one while sending full pages: the pages overlap, and
        // the listing would go on for ever. Refused at the first such page.
        let full =
            page(r#"{"start":100,"isLastPage":false,"values":[1,2,3,4],"nextPageStart":101}"#);
        let (next, anomaly) = next_start(100, &full);
        assert_eq!((next, anomaly), (Some(101), None));
        let e = check_next(100, &full, 4, next, "GET .../commits").unwrap_err();
        assert_eq!(e.code(), "malformed_response");
        assert!(
            e.to_string()
                .contains("nextPageStart 101 after a page of 4 items at start 100"),
            "{e}"
        );
        // Exactly past the page, or further (the server skipped items it filtered out): fine.
        assert!(check_next(100, &full, 4, Some(104), "GET /x").is_ok());
        assert!(check_next(100, &full, 4, Some(1000), "GET /x").is_ok());
        // The page's own start counts when it is further than the one asked for.
        let moved = page(r#"{"start":200,"isLastPage":false,"values":[1,2],"nextPageStart":201}"#);
        assert!(check_next(100, &moved, 2, Some(201), "GET /x").is_err());
        assert!(check_next(100, &moved, 2, Some(202), "GET /x").is_ok());
        // Entries that are no items (`null`, unreadable) do not count: a proxy that slips them
        // in does not make a real page look short.
        let padded =
            page(r#"{"start":0,"isLastPage":false,"values":[null,1,2,null],"nextPageStart":2}"#);
        assert!(check_next(0, &padded, 2, Some(2), "GET /x").is_ok());
        // An empty page that says more must still move (next_start stops one that does not).
        let empty = page(r#"{"start":5,"isLastPage":false,"values":[],"nextPageStart":6}"#);
        assert!(check_next(5, &empty, 0, Some(6), "GET /x").is_ok());
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
