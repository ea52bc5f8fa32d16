//! The host's guard over every listing it follows call by call: projects, repositories and
//! users; a repository's pull-request pass, commit pass, branches and tags; a pull request's
//! commits. One [`Guard`] per listing counts its pages and items and stops it with an error
//! past its [`ListingBounds`], after [`MAX_EMPTY_PAGES`] empty pages in a row that each promise
//! more, or when a cursor comes back unchanged.
//!
//! The connector bounds each of its listings too (in the cursor it hands out, so across calls);
//! this guard is the host's own, which holds whatever component it runs and whatever cursors
//! that component hands out.

/// Default [`ListingBounds::pages`]: the connector's own bound on a listing. Far beyond any real
/// server (the longest listing of a 50,000-repository instance, `GET /repos`, is 2,000 pages at
/// a cap of 25), so a page stream that never ends fails instead of running for ever.
pub const MAX_LISTING_PAGES: u64 = 100_000;
/// Default [`ListingBounds::items`]: the connector's own bound, 100 times the repositories of a
/// 50,000-repository instance.
pub const MAX_LISTING_ITEMS: u64 = 5_000_000;
/// Pages in a row that bring nothing but another cursor before a listing is declared stuck.
pub const MAX_EMPTY_PAGES: u32 = 3;

/// How far one listing may run before it is stopped with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingBounds {
    /// Most pages (calls).
    pub pages: u64,
    /// Most items, readable or not.
    pub items: u64,
}

impl Default for ListingBounds {
    /// [`MAX_LISTING_PAGES`] and [`MAX_LISTING_ITEMS`].
    fn default() -> Self {
        Self {
            pages: MAX_LISTING_PAGES,
            items: MAX_LISTING_ITEMS,
        }
    }
}

/// Why a listing was stopped: it made no progress, or never ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}; stopped")]
pub struct Runaway {
    /// The listing (`GET /repos`, `branches of PLAT/api`, ...).
    pub what: String,
    /// What it did.
    pub why: String,
}

impl Runaway {
    /// The error code a stopped listing is reported with: a server that answers such pages
    /// answers nonsense, as the connector's own guard reports it.
    pub const CODE: &'static str = "malformed_response";
}

/// One listing's count so far.
#[derive(Debug, Clone)]
pub struct Guard {
    what: String,
    bounds: ListingBounds,
    pages: u64,
    items: u64,
    empty: u32,
    /// The cursor of the page just read (`None` for the first).
    at: Option<String>,
}

impl Guard {
    /// A guard for the listing `what`, within `bounds`.
    pub fn new(what: impl Into<String>, bounds: ListingBounds) -> Self {
        Self {
            what: what.into(),
            bounds,
            pages: 0,
            items: 0,
            empty: 0,
            at: None,
        }
    }

    /// Pages counted so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Counts a page of `received` items (readable or not) after which the listing goes on at
    /// `next` (`None`: it ended). Fails when it would go on past the bounds, with the cursor it
    /// was just read at, or after [`MAX_EMPTY_PAGES`] empty pages in a row; a listing that ends
    /// here never fails.
    pub fn page(&mut self, received: usize, next: Option<&str>) -> Result<(), Runaway> {
        self.count(received, next, true)
    }

    /// Counts one call of a pass whose batches may legitimately be empty (a pull-request batch
    /// of unchanged pull requests, a commit pass's completion), as [`Guard::page`] does but
    /// without the empty-page rule: the connector applies it to the pages it reads.
    pub fn count_calls(&mut self, received: usize, next: Option<&str>) -> Result<(), Runaway> {
        self.count(received, next, false)
    }

    fn count(
        &mut self,
        received: usize,
        next: Option<&str>,
        empty_rule: bool,
    ) -> Result<(), Runaway> {
        self.pages = self.pages.saturating_add(1);
        self.items = self
            .items
            .saturating_add(u64::try_from(received).unwrap_or(u64::MAX));
        self.empty = if received == 0 {
            self.empty.saturating_add(1)
        } else {
            0
        };
        let Some(next) = next else {
            return Ok(());
        };
        let why = if empty_rule && self.empty >= MAX_EMPTY_PAGES {
            Some(format!(
                "the listing answered {} empty pages in a row that each promised more",
                self.empty
            ))
        } else if self.at.as_deref() == Some(next) {
            Some("the listing repeated its cursor".to_owned())
        } else if self.pages >= self.bounds.pages || self.items >= self.bounds.items {
            Some(format!(
                "the listing did not end after {} pages and {} items (at most {} pages and {} items)",
                self.pages, self.items, self.bounds.pages, self.bounds.items
            ))
        } else {
            None
        };
        match why {
            Some(why) => Err(Runaway {
                what: self.what.clone(),
                why,
            }),
            None => {
                self.at = Some(next.to_owned());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ListingBounds {
        ListingBounds {
            pages: 3,
            items: 10,
        }
    }

    #[test]
    fn a_listing_that_ends_within_its_bounds_passes() {
        let mut g = Guard::new("GET /x", small());
        g.page(4, Some("4")).unwrap();
        g.page(4, Some("8")).unwrap();
        g.page(4, None).unwrap();
        assert_eq!(g.pages(), 3);
    }

    #[test]
    fn a_listing_past_its_pages_or_items_is_stopped() {
        let mut g = Guard::new("GET /x", small());
        g.page(1, Some("1")).unwrap();
        g.page(1, Some("2")).unwrap();
        let e = g.page(1, Some("3")).unwrap_err();
        assert_eq!(e.what, "GET /x");
        assert!(e.why.contains("did not end after 3 pages"), "{e}");
        let mut g = Guard::new("GET /x", small());
        g.page(6, Some("6")).unwrap();
        let e = g.page(6, Some("12")).unwrap_err();
        assert!(e.why.contains("2 pages and 12 items"), "{e}");
    }

    #[test]
    fn empty_pages_and_a_repeated_cursor_stop_a_listing() {
        let mut g = Guard::new("GET /x", ListingBounds::default());
        g.page(0, Some("a")).unwrap();
        g.page(0, Some("b")).unwrap();
        let e = g.page(0, Some("c")).unwrap_err();
        assert!(e.why.contains("3 empty pages in a row"), "{e}");
        // A page with items in between starts the count again.
        let mut g = Guard::new("GET /x", ListingBounds::default());
        for (n, c) in [(0, "a"), (0, "b"), (1, "c"), (0, "d"), (0, "e")] {
            g.page(n, Some(c)).unwrap();
        }
        let mut g = Guard::new("GET /x", ListingBounds::default());
        g.page(1, Some("a")).unwrap();
        let e = g.page(1, Some("a")).unwrap_err();
        assert!(e.why.contains("repeated its cursor"), "{e}");
        assert_eq!(
            e.to_string(),
            "GET /x: the listing repeated its cursor; stopped"
        );
    }
}
