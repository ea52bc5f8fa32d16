//! A Bitbucket REST client over the [`Host`] trait: builds URLs, sends GETs, classifies errors,
//! decodes JSON, walks pages and counts requests.

use crate::error::{ConnectorError, classify_status};
use crate::host::{BodyStream, Host, HttpRequest, LogLevel, ResponseHead};
use crate::model::{RecordKind, UnreadableRecord};
use crate::paging::{self, PageAnomaly, WirePage};
use crate::urls::BaseUrl;
use serde::de::DeserializeOwned;
use std::cell::Cell;

/// One decoded page: its items and where the next starts.
#[derive(Debug)]
pub struct FetchedPage<T> {
    /// Items.
    pub items: Vec<T>,
    /// Items that could not be identified, left out of `items`.
    pub unreadable: Vec<UnreadableRecord>,
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
    fn get_body(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(ResponseHead, Vec<u8>, String), ConnectorError> {
        let url = self.base.api(segments, query);
        let what = format!("GET /{}", segments.join("/"));
        self.requests.set(self.requests.get().saturating_add(1));
        self.host.log(LogLevel::Debug, &what);
        let (head, body) = self.host.send(&HttpRequest::get_json(url))?;
        if !(200..300).contains(&head.status) {
            return Err(classify_status(&head, &body, &what));
        }
        Ok((head, body, what))
    }

    /// `GET /rest/api/1.0/{segments}?{query}` read as a stream by `read`, for bodies too large to
    /// hold (diffs). An error answer's body is read (at most 64 KiB) to classify it.
    pub fn get_streamed<T>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        read: impl FnOnce(&mut dyn BodyStream) -> Result<T, ConnectorError>,
    ) -> Result<T, ConnectorError> {
        let url = self.base.api(segments, query);
        let what = format!("GET /{}", segments.join("/"));
        self.requests.set(self.requests.get().saturating_add(1));
        self.host.log(LogLevel::Debug, &what);
        let (head, mut body) = self.host.send_streaming(&HttpRequest::get_json(url))?;
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
    /// records: an item that cannot be identified is reported in `unreadable`, not fatal.
    pub fn get_page<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        start: u64,
    ) -> Result<(FetchedPage<T>, ResponseHead), ConnectorError> {
        let start_s = start.to_string();
        let limit_s = self.page_size.to_string();
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
        if let Some(limit) = page.limit
            && limit < u64::from(self.page_size)
        {
            self.log(
                LogLevel::Debug,
                &format!(
                    "GET /{}: server capped the page at {limit}",
                    segments.join("/")
                ),
            );
        }
        Ok((
            FetchedPage {
                items,
                unreadable,
                next,
                limit: page.limit,
            },
            head,
        ))
    }

    /// Every item of a paged resource, following pages to the end, with the items that could
    /// not be identified.
    pub fn get_all<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(Vec<T>, Vec<UnreadableRecord>), ConnectorError> {
        let mut all = Vec::new();
        let mut unreadable = Vec::new();
        self.for_each_page(kind, segments, query, |page: FetchedPage<T>| {
            all.extend(page.items);
            unreadable.extend(page.unreadable);
        })?;
        Ok((all, unreadable))
    }

    /// Walks every page, handing each page to `f`.
    pub fn for_each_page<T: DeserializeOwned>(
        &self,
        kind: RecordKind,
        segments: &[&str],
        query: &[(&str, &str)],
        mut f: impl FnMut(FetchedPage<T>),
    ) -> Result<(), ConnectorError> {
        let mut start = 0;
        loop {
            let (page, _) = self.get_page::<T>(kind, segments, query, start)?;
            let next = page.next;
            f(page);
            match next {
                Some(n) => start = n,
                None => return Ok(()),
            }
        }
    }
}

fn malformed(what: &str, e: &serde_json::Error) -> ConnectorError {
    ConnectorError::MalformedResponse(format!("{what}: {}", paging::clean_reason(&e.to_string())))
}
