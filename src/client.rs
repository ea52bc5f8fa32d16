//! A Bitbucket REST client over the [`Host`] trait: builds URLs, sends GETs, classifies errors,
//! decodes JSON, walks pages (within [`paging::Bounds`]) and counts requests.

use crate::error::{ConnectorError, classify_status, http_error};
use crate::host::{BodyStream, Host, HttpError, HttpRequest, LogLevel, ResponseHead};
use crate::model::{RecordKind, UnreadableRecord};
use crate::paging::{self, Bounds, PageAnomaly, PageCursor, Tally, WirePage};
use crate::urls::BaseUrl;
use serde::de::DeserializeOwned;
use std::cell::Cell;

/// Which REST resource tree a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `/rest/api/1.0`: everything but build statuses.
    Api,
    /// `/rest/build-status/1.0`: a commit's build statuses.
    BuildStatus,
}

/// One decoded page: its items and where the next starts.
#[derive(Debug)]
pub struct FetchedPage<T> {
    /// Items.
    pub items: Vec<T>,
    /// Items that could not be identified, left out of `items`.
    pub unreadable: Vec<UnreadableRecord>,
    /// Items the server sent on this page, identified or not.
    pub received: usize,
    /// Next `start`, `None` when the listing is over.
    pub next: Option<u64>,
    /// The limit the server used.
    pub limit: Option<u64>,
}

/// A client for one call: the host, the server, the page size and a request counter.
pub struct Client<'h, H: Host + ?Sized> {
    host: &'h H,
    base: BaseUrl,
    page_size: u32,
    requests: Cell<u32>,
}

impl<'h, H: Host + ?Sized> Client<'h, H> {
    /// A client for `base_url`, validated.
    pub fn new(
        host: &'h H,
        base_url: &str,
        page_size: Option<u32>,
    ) -> Result<Self, ConnectorError> {
        Ok(Self {
            host,
            base: BaseUrl::parse(base_url)?,
            page_size: paging::page_size(page_size),
            requests: Cell::new(0),
        })
    }

    /// The host.
    pub fn host(&self) -> &'h H {
        self.host
    }

    /// The page size this client asks for (the connection's, else
    /// [`paging::DEFAULT_PAGE_SIZE`]): the largest `limit` any listing sends.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// Logs through the host.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }

    /// `GET /rest/api/1.0/{segments}?{query}` decoded as `T`, with the response head.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(T, ResponseHead), ConnectorError> {
        let (head, body, what) = self.get_body(segments, query)?;
        let value = serde_json::from_slice(&body).map_err(|e| malformed(&what, &e))?;
        Ok((value, head))
    }

    /// `GET /rest/api/1.0/{segments}?{query}`: a 2xx answer's head and whole body, and the
    /// request's name for messages; any other answer as its typed error.
    pub fn get_body(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(ResponseHead, Vec<u8>, String), ConnectorError> {
        self.get_body_under(Root::Api, segments, query)
    }

    /// [`Client::get_body`] under `root`.
    pub fn get_body_under(
        &self,
        root: Root,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(ResponseHead, Vec<u8>, String), ConnectorError> {
        let url = match root {
            Root::Api => self.base.api(segments, query)?,
            Root::BuildStatus => self.base.build_status(segments, query)?,
        };
        let what = match root {
            Root::Api => request_name(segments),
            Root::BuildStatus => format!("GET /build-status/{}", segments.join("/")),
        };
        self.requests.set(self.requests.get().saturating_add(1));
        self.host.log(LogLevel::Debug, &what);
        let (head, body) = self
            .host
            .send(&HttpRequest::get_json(url))
            .map_err(|e| http_error(&what, e))?;
        if !(200..300).contains(&head.status) {
            return Err(classify_status(&head, &body, &what));
        }
        Ok((head, body, what))
    }

    /// `GET /rest/api/1.0/{segments}?{query}` read as a stream by `read`, for bodies too large to
    /// hold (diffs). An error answer's body is read (at most 64 KiB) to classify it. A body the
    /// host refuses for its size before any of it is read reaches `read` as a stream whose first
    /// read fails with [`HttpError::TooLarge`], as a body over the cap midway does: one case for
    /// the reader.
    pub fn get_streamed<T>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        read: impl FnOnce(&mut dyn BodyStream) -> Result<T, ConnectorError>,
    ) -> Result<T, ConnectorError> {
        let url = self.base.api(segments, query)?;
        let what = request_name(segments);
        self.requests.set(self.requests.get().saturating_add(1));
        self.host.log(LogLevel::Debug, &what);
        let (head, mut body) = match self.host.send_streaming(&HttpRequest::get_json(url)) {
            Ok(answer) => answer,
            Err(HttpError::TooLarge(cap)) => return read(&mut RefusedForSize(cap)),
            Err(e) => return Err(http_error(&what, e)),
        };
        if !(200..300).contains(&head.status) {
            let mut error_body = Vec::new();
            while error_body.len() < 64 * 1024 {
                match body.read(16 * 1024) {
                    Ok(Some(chunk)) => error_body.extend_from_slice(&chunk),
                    Ok(None) | Err(_) => break,
                }
            }
            return Err(classify_status(&head, &error_body, &what));
        }
        read(body.as_mut())
    }

    /// One page of a paged resource starting at `start`, its items decoded one by one as `kind`
    /// records: an item that cannot be identified is reported in `unreadable`, not fatal. A
    /// `nextPageStart` past [`paging::MAX_LISTING_ITEMS`] is an error. Asks for the client's
    /// [`Client::page_size`].
    pub fn get_page<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        start: u64,
    ) -> Result<(FetchedPage<T>, ResponseHead), ConnectorError> {
        self.get_page_sized(kind, segments, query, start, self.page_size)
    }

    /// [`Client::get_page`] asking for `limit` items instead of the client's page size (at
    /// least 1, at most [`Client::page_size`]). Bitbucket pages by offset, so the pages of one
    /// listing may differ in size as long as each starts at the previous `nextPageStart`.
    pub fn get_page_sized<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        start: u64,
        limit: u32,
    ) -> Result<(FetchedPage<T>, ResponseHead), ConnectorError> {
        let limit = limit.min(self.page_size).max(1);
        let start_s = start.to_string();
        let limit_s = limit.to_string();
        let mut q: Vec<(&str, &str)> = query.to_vec();
        q.push(("start", &start_s));
        q.push(("limit", &limit_s));
        let (head, body, what) = self.get_body(segments, &q)?;
        let page: WirePage<'_> = serde_json::from_slice(&body).map_err(|e| malformed(&what, &e))?;
        let (items, unreadable) = page.decode::<T>(kind, &format!("{what} start={start}"));
        for u in &unreadable {
            self.log(
                LogLevel::Warn,
                &format!(
                    "{}: left out a {} that cannot be identified: {}",
                    u.location,
                    kind.as_str(),
                    u.reason
                ),
            );
        }
        let (next, anomaly) = paging::next_start(start, &page);
        paging::check_next(start, &page, items.len(), next, &what)?;
        if let Some(a) = anomaly {
            let why = match a {
                PageAnomaly::MissingNextStart => "isLastPage is false but nextPageStart is missing",
                PageAnomaly::NonAdvancing => "nextPageStart does not advance",
            };
            self.log(
                LogLevel::Warn,
                &format!(
                    "GET /{} at start {start}: {why}; treating it as the last page",
                    segments.join("/")
                ),
            );
        }
        if let Some(used) = page.limit
            && used < u64::from(limit)
        {
            self.log(
                LogLevel::Debug,
                &format!(
                    "GET /{}: server capped the page at {used}",
                    segments.join("/")
                ),
            );
        }
        Ok((
            FetchedPage {
                items,
                unreadable,
                received: page.values.as_ref().map_or(0, Vec::len),
                next,
                limit: page.limit,
            },
            head,
        ))
    }

    /// The page at `cursor` of a listing the host pages through, one call per page, and the
    /// cursor of the page after it (`None` at the end). The listing's [`Tally`] travels in the
    /// cursor, so the listing is bounded across calls by [`Bounds::WALKED`] and
    /// [`paging::MAX_EMPTY_PAGES`] as a walk in one call is.
    pub fn get_listed_page<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        cursor: PageCursor,
    ) -> Result<(FetchedPage<T>, Option<PageCursor>), ConnectorError> {
        let (page, _) = self.get_page::<T>(kind, segments, query, cursor.start)?;
        let mut listed = cursor.listed;
        listed.count(
            page.received,
            page.next.is_some(),
            Bounds::WALKED,
            &request_name(segments),
        )?;
        let next = page.next.map(|start| PageCursor { start, listed });
        Ok((page, next))
    }

    /// Every item of a paged resource, following pages to the end, with the items that could
    /// not be identified; within [`Bounds::COLLECTED`], since it holds them all.
    pub fn get_all<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(Vec<T>, Vec<UnreadableRecord>), ConnectorError> {
        let mut all = Vec::new();
        let mut unreadable = Vec::new();
        self.walk(
            kind,
            segments,
            query,
            Bounds::COLLECTED,
            |page: FetchedPage<T>| {
                all.extend(page.items);
                unreadable.extend(page.unreadable);
            },
        )?;
        Ok((all, unreadable))
    }

    /// Walks every page, handing each page to `f`, within [`Bounds::WALKED`].
    pub fn for_each_page<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        f: impl FnMut(FetchedPage<T>),
    ) -> Result<(), ConnectorError> {
        self.walk(kind, segments, query, Bounds::WALKED, f)
    }

    /// Walks every page within `bounds`, handing each page to `f`: a listing that would go on
    /// past them (or past [`paging::MAX_EMPTY_PAGES`] empty pages in a row) fails before the
    /// page that would.
    fn walk<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        bounds: Bounds,
        mut f: impl FnMut(FetchedPage<T>),
    ) -> Result<(), ConnectorError> {
        let what = request_name(segments);
        let mut tally = Tally::default();
        let mut start = 0;
        loop {
            let (page, _) = self.get_page::<T>(kind, segments, query, start)?;
            let next = page.next;
            tally.count(page.received, next.is_some(), bounds, &what)?;
            f(page);
            match next {
                Some(n) => start = n,
                None => return Ok(()),
            }
        }
    }
}

/// How a request to `segments` is named in logs and messages: `GET /projects/PLAT/repos`.
fn request_name(segments: &[&str]) -> String {
    format!("GET /{}", segments.join("/"))
}

/// The body of a response the host refused for its size: every read fails with the cap.
struct RefusedForSize(u64);

impl BodyStream for RefusedForSize {
    fn read(&mut self, _max_bytes: u32) -> Result<Option<Vec<u8>>, HttpError> {
        Err(HttpError::TooLarge(self.0))
    }
}

fn malformed(what: &str, e: &serde_json::Error) -> ConnectorError {
    ConnectorError::MalformedResponse(format!("{what}: {}", paging::clean_reason(&e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Canned, FakeHost};
    use crate::paging::{MAX_COLLECTED_ITEMS, MAX_EMPTY_PAGES, MAX_LISTING_PAGES};
    use crate::wire::{WireActivity, WireProject};
    use serde_json::{Value, json};

    const PROJECTS: &str = "/bb/rest/api/1.0/projects";

    fn client(host: &FakeHost) -> Client<'_, FakeHost> {
        Client::new(host, "https://h/bb", Some(25)).unwrap()
    }

    fn ok(body: Value) -> Canned {
        Canned::Response {
            status: 200,
            headers: vec![],
            body: body.to_string().into_bytes(),
        }
    }

    fn start_of(pairs: &[(String, String)]) -> u64 {
        pairs
            .iter()
            .find(|(k, _)| k == "start")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    /// A server whose pages come from `page(start)`; past `give_up_at` it ends the listing, so
    /// that a client without bounds finishes (and the test fails) instead of hanging.
    fn serve(host: &FakeHost, path: &str, give_up_at: u64, page: impl Fn(u64) -> Value + 'static) {
        host.on_query(path, move |pairs| {
            let start = start_of(pairs);
            if start > give_up_at {
                ok(json!({"start": start, "isLastPage": true, "values": []}))
            } else {
                ok(page(start))
            }
        });
    }

    fn walk_projects(host: &FakeHost) -> Result<u64, ConnectorError> {
        let mut n = 0u64;
        client(host).for_each_page(
            RecordKind::Project,
            &["projects"],
            &[],
            |p: FetchedPage<WireProject>| n += p.items.len() as u64,
        )?;
        Ok(n)
    }

    #[test]
    fn empty_pages_that_say_more_end_a_walk_with_an_error() {
        let host = FakeHost::new();
        serve(
            &host,
            PROJECTS,
            10_000,
            |start| json!({"start": start, "limit": 25, "size": 0, "isLastPage": false, "values": [], "nextPageStart": start + 25}),
        );
        let e = walk_projects(&host).unwrap_err();
        assert_eq!(e.code(), "malformed_response");
        assert!(
            e.to_string()
                .contains("GET /projects: 3 empty pages in a row"),
            "{e}"
        );
        assert_eq!(host.requests.borrow().len(), MAX_EMPTY_PAGES as usize);

        // Collected listings (a pull request's activities) end the same way.
        let e = client(&host)
            .get_all::<WireActivity>(RecordKind::Activity, &["projects"], &[])
            .unwrap_err();
        assert!(e.to_string().contains("3 empty pages in a row"), "{e}");
    }

    #[test]
    fn empty_pages_between_full_ones_are_followed() {
        let host = FakeHost::new();
        serve(&host, PROJECTS, 10_000, |start| match start {
            0 | 1 | 3 | 4 => json!({"isLastPage": false, "values": [], "nextPageStart": start + 1}),
            2 => json!({"isLastPage": false, "values": [{"key": "A"}], "nextPageStart": 3}),
            _ => json!({"isLastPage": true, "values": [{"key": "B"}]}),
        });
        assert_eq!(walk_projects(&host).unwrap(), 2);
    }

    #[test]
    fn a_page_stream_that_never_ends_fails_at_the_page_bound() {
        let host = FakeHost::new();
        let bound = u64::from(MAX_LISTING_PAGES);
        serve(
            &host,
            PROJECTS,
            bound + 10,
            |start| json!({"start": start, "isLastPage": false, "values": [{"key": format!("P{start}")}], "nextPageStart": start + 1}),
        );
        let e = walk_projects(&host).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "GET /projects: the listing goes on past {bound} pages"
            )),
            "{e}"
        );
        assert_eq!(host.requests.borrow().len() as u64, bound);
    }

    #[test]
    fn a_collected_listing_fails_at_the_item_bound_instead_of_filling_memory() {
        let host = FakeHost::new();
        let path = "/bb/rest/api/1.0/projects/P/repos/r/pull-requests/1/activities";
        let values: Vec<Value> = (0..1000)
            .map(|i| json!({"id": i, "action": "COMMENTED"}))
            .collect();
        serve(
            &host,
            path,
            10 * MAX_COLLECTED_ITEMS,
            move |start| json!({"start": start, "isLastPage": false, "values": values, "nextPageStart": start + 1000}),
        );
        let e = client(&host)
            .get_all::<WireActivity>(
                RecordKind::Activity,
                &[
                    "projects",
                    "P",
                    "repos",
                    "r",
                    "pull-requests",
                    "1",
                    "activities",
                ],
                &[],
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("past {MAX_COLLECTED_ITEMS} items")),
            "{e}"
        );
        assert_eq!(
            host.requests.borrow().len() as u64,
            MAX_COLLECTED_ITEMS / 1000
        );
    }

    #[test]
    fn a_next_page_start_at_the_end_of_the_range_is_refused_not_requested() {
        let host = FakeHost::new();
        host.on(
            PROJECTS,
            &[],
            ok(json!({"start": 0, "isLastPage": false, "values": [{"key": "A"}], "nextPageStart": u64::MAX})),
        );
        let e = walk_projects(&host).unwrap_err();
        assert_eq!(e.code(), "malformed_response");
        assert!(
            e.to_string()
                .contains("GET /projects: nextPageStart 18446744073709551615"),
            "{e}"
        );
        assert_eq!(host.requests.borrow().len(), 1);
    }

    #[test]
    fn a_listed_page_carries_the_listing_tally_in_its_cursor() {
        let host = FakeHost::new();
        serve(
            &host,
            PROJECTS,
            10_000,
            |start| json!({"isLastPage": false, "values": [], "nextPageStart": start + 25}),
        );
        let c = client(&host);
        let listed = |pages, empty_run| Tally {
            pages,
            items: 0,
            empty_run,
        };
        let (_, next) = c
            .get_listed_page::<WireProject>(
                RecordKind::Project,
                &["projects"],
                &[],
                PageCursor::default(),
            )
            .unwrap();
        assert_eq!(
            next,
            Some(PageCursor {
                start: 25,
                listed: listed(1, 1)
            })
        );
        let (_, next) = c
            .get_listed_page::<WireProject>(RecordKind::Project, &["projects"], &[], next.unwrap())
            .unwrap();
        assert_eq!(
            next,
            Some(PageCursor {
                start: 50,
                listed: listed(2, 2)
            })
        );
        let e = c
            .get_listed_page::<WireProject>(RecordKind::Project, &["projects"], &[], next.unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("3 empty pages in a row"), "{e}");
    }

    #[test]
    fn a_listing_paged_by_the_host_is_bounded_across_calls() {
        // Full pages that never end: each call reads one, and the pages and items counted in
        // the cursor end the listing at its bounds, however many calls that took.
        let host = FakeHost::new();
        serve(
            &host,
            PROJECTS,
            u64::MAX,
            |start| json!({"isLastPage": false, "values": [{"key": format!("P{start}")}], "nextPageStart": start + 1}),
        );
        let c = client(&host);
        let near_the_end = PageCursor {
            start: 7,
            listed: Tally {
                pages: paging::MAX_LISTING_PAGES - 2,
                items: 7,
                empty_run: 0,
            },
        };
        let (page, next) = c
            .get_listed_page::<WireProject>(RecordKind::Project, &["projects"], &[], near_the_end)
            .unwrap();
        assert_eq!(page.items.len(), 1);
        let next = next.expect("one more page allowed");
        assert_eq!(next.listed.pages, paging::MAX_LISTING_PAGES - 1);
        let e = c
            .get_listed_page::<WireProject>(RecordKind::Project, &["projects"], &[], next)
            .unwrap_err();
        assert_eq!(e.code(), "malformed_response");
        assert!(e.to_string().contains("past 100000 pages"), "{e}");
        let items_spent = PageCursor {
            start: 9,
            listed: Tally {
                pages: 9,
                items: paging::MAX_LISTING_ITEMS - 1,
                empty_run: 0,
            },
        };
        let e = c
            .get_listed_page::<WireProject>(RecordKind::Project, &["projects"], &[], items_spent)
            .unwrap_err();
        assert!(e.to_string().contains("past 5000000 items"), "{e}");
    }

    #[test]
    fn dot_segments_never_leave_the_connector() {
        let host = FakeHost::new();
        for bad in [".", ".."] {
            let e = client(&host)
                .get_json::<Value>(&["projects", bad, "repos"], &[])
                .unwrap_err();
            assert_eq!(e.code(), "invalid_config");
            let e = client(&host)
                .get_streamed(&["projects", "P", "repos", bad, "diff"], &[], |_| Ok(()))
                .unwrap_err();
            assert_eq!(e.code(), "invalid_config");
        }
        assert!(host.requests.borrow().is_empty());
        // A slug of three dots is a name, and reaches its own path.
        host.on(
            "/bb/rest/api/1.0/projects/P/repos/...",
            &[],
            ok(json!({"slug": "..."})),
        );
        let (v, _) = client(&host)
            .get_json::<Value>(&["projects", "P", "repos", "..."], &[])
            .unwrap();
        assert_eq!(v["slug"], "...");
    }
}
