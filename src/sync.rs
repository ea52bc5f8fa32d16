//! Incremental, resumable pull-request sync of one repository.
//!
//! A *pass* lists the repository's pull requests (`state=ALL&order=NEWEST`), newest first, one
//! list page per call, and fetches details (activities, diff) only for pull requests whose
//! fingerprint changed since they were last fetched. The properties that matter:
//!
//! - **Nothing is lost when the host dies.** What a call learns (per-PR fingerprints, the pass's
//!   position, the high-water mark) is staged as *pending* and committed only when the host calls
//!   again with the batch's cursor, which says "I have persisted that batch". A host that dies
//!   before persisting restarts without the cursor; the pending work is dropped and redone.
//! - **The high-water mark moves only when a pass completes**, to the newest `updatedDate` on the
//!   pass's first page. Anything updated after that page was read is newer and is listed by the
//!   next pass; anything updated while a pass runs is therefore not lost, only picked up next time.
//! - **Early stopping is verified.** An incremental pass stops at the first pull request older
//!   than the high-water mark (less a safety margin) only while every page seen is in
//!   non-increasing `updatedDate` order. An out-of-order page (a server that sorts by creation)
//!   makes the pass list everything, and marks the repository so that every later pass does.
//!   A full listing also runs when asked for, on the first pass, and at least daily, to reconcile
//!   anything early stopping could miss; details are still fetched only for changed PRs.
//! - **Small pages while nothing changed.** An incremental pass asks for its first list page
//!   with `limit` [`FIRST_INCREMENTAL_PAGE`] (10): an unchanged repository costs that one small
//!   request, whatever the number of its pull requests, since the early stop is decided on it.
//!   After a page on which every pull request needed work (its fingerprint changed, or it is
//!   left to the retry step), the next page is twice as large, up to the connection's page size
//!   (default [`crate::paging::DEFAULT_PAGE_SIZE`]); after a page with unchanged ones it stays
//!   as large. Bitbucket pages by offset, so pages of different sizes join up: every page
//!   starts at the previous page's `nextPageStart`, and a page read again (see *bounded calls*)
//!   keeps its limit. The limit is part of the pass's persisted [`Progress`], so a resumed pass
//!   goes on with the start and limit it had reached (a pass stored without one, by an older
//!   version, goes on at the connection's page size). A full listing (asked for, first pass,
//!   daily, and every pass on a server seen out of order) asks for the connection's page size
//!   throughout, as does the rest of an incremental pass once it sees the order broken: those
//!   list everything, and large pages cost the fewest requests. Small pages see less of the
//!   order, so a server that sorts by creation is caught by the full listings rather than by
//!   an unchanged repository's one page.
//! - **One bad pull request never fails the repository.** It is reported as skipped, remembered,
//!   and retried at the start of the next pass: every remembered one, in id order, over as many
//!   calls as [`DETAIL_BUDGET`] needs, before the listing goes on. So however many fail, each is
//!   retried once per pass; none waits behind the others.
//! - **The rotation is the only retry above the host.** Every request is sent once; the host's
//!   HTTP policy alone repeats it (429, 5xx, cuts; at most its attempts within one deadline). A
//!   pull request is therefore tried at most once per pass: the retry step walks the remembered
//!   set once (`retried_up_to`), and the listing leaves remembered ones to it. One pass costs a
//!   failing pull request at most one try of each request it needs (snapshot, activity pages,
//!   diff), each at most the policy's attempts. A failure that asking again cannot change
//!   (`denied`, `too-large`: [`ConnectorError::is_final`]) is reported but not remembered for
//!   the rotation; having no memo, the pull request is fetched again only when a later listing
//!   shows it.
//! - **A diff too large for the host is final for its commit pair.** The pull request is
//!   delivered without diff statistics, its memo says so, and the diff is not asked for again
//!   (not by later passes, not by retries) until the commits change.
//! - **Bounded calls.** At most [`DETAIL_BUDGET`] pull requests get details per call; a page with
//!   more changed PRs is read again by the next call, where the ones already done are unchanged.
//! - **Bounded passes.** The pass's listing is counted across calls ([`Tally`]): empty pages
//!   that say more follows, and a listing past [`Bounds::WALKED`], end it with an error within
//!   a bounded number of calls. Nothing is committed by the failing call, so a server that
//!   recovers lets the pass go on from where it was.

use crate::client::Client;
use crate::error::ConnectorError;
use crate::host::{Host, LogLevel};
use crate::model::{
    BatchStats, Connection, DiffStats, PullRequestBatch, RecordKind, RepoRef, SkipStage,
    SkippedPullRequest, SyncOptions,
};
use crate::normalize;
use crate::paging::{Bounds, Tally};
use crate::pulls::{self, DiffOutcome};
use crate::wire::WirePullRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::ops::Bound;

/// Pull requests given details per call.
pub const DETAIL_BUDGET: usize = 20;
/// How far below the high-water mark an incremental pass still looks, for updates that became
/// visible late (milliseconds).
pub const SAFETY_MARGIN_MS: i64 = 10 * 60 * 1000;
/// How often a full listing runs on its own (milliseconds).
pub const RECONCILE_EVERY_MS: i64 = 24 * 60 * 60 * 1000;
/// The `limit` of an incremental pass's first list page. Enough for the early stop to see that
/// nothing changed, so an unchanged repository costs one small page however many pull requests
/// it has; the page doubles from there, up to the connection's page size, while every pull
/// request on it needed work. Ten, not Bitbucket's default of 25: a pull request in a list page
/// is 1.4 to 3 KiB of JSON (its refs, repositories, author, reviewers, participants and links,
/// more with a long description), so 25 of them pass 32 KiB where 10 stay under it; a
/// repository with more than nine changes since the last pass pays one more small request.
pub const FIRST_INCREMENTAL_PAGE: u32 = 10;

/// What the connector remembers about a pull request it fetched in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrMemo {
    /// Fingerprint of everything on the list item that can signal a change.
    pub fp: String,
    /// `fromRef.latestCommit` when the diff was counted.
    pub from: Option<String>,
    /// `toRef.latestCommit` when the diff was counted.
    pub to: Option<String>,
    /// The diff statistics, reused while the commit pair is unchanged.
    pub diff: Option<DiffStats>,
    /// The diff of this commit pair was larger than the host lets through (its cap, in bytes):
    /// not asked for again while the pair is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_too_large: Option<u64>,
}

impl PrMemo {
    /// What the diff of `w` came to when it was last fetched, if its commit pair is still the
    /// one this memo counted (`None`: fetch it).
    pub fn known_diff(&self, w: &WirePullRequest) -> Option<DiffOutcome> {
        if self.from != w.from_ref.latest_commit || self.to != w.to_ref.latest_commit {
            return None;
        }
        match (self.diff_too_large, self.diff) {
            (Some(cap), _) => Some(DiffOutcome::TooLarge(cap)),
            (None, Some(d)) => Some(DiffOutcome::Counted(d)),
            (None, None) => None,
        }
    }
}

/// A repository's sync state, in host storage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepoState {
    /// Newest `updatedDate` of the last completed pass's first page.
    #[serde(default)]
    pub high_water: Option<i64>,
    /// The server was seen listing out of `updatedDate` order: never stop early.
    #[serde(default)]
    pub order_untrusted: bool,
    /// When the last full listing started (epoch ms).
    #[serde(default)]
    pub last_full_at: Option<i64>,
    /// Pull requests that failed and are retried at the start of the next pass.
    #[serde(default)]
    pub retry: BTreeSet<u64>,
    /// Pass counter.
    #[serde(default)]
    pub pass_seq: u64,
    /// The id of the last completed pass.
    #[serde(default)]
    pub last_completed_pass: Option<u64>,
    /// The pass in progress.
    #[serde(default)]
    pub pass: Option<Pass>,
}

/// A pass in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pass {
    /// Pass id (in cursors).
    pub id: u64,
    /// Listing everything (no early stop on the high-water mark).
    pub full: bool,
    /// Stop below this `updatedDate` (while the order holds); `None`: list to the end.
    pub threshold: Option<i64>,
    /// Ignore pull requests updated before this.
    pub since: Option<i64>,
    /// When the pass started.
    pub started_at: i64,
    /// Last committed batch number.
    pub acked: u32,
    /// Progress as of the last committed batch.
    pub progress: Progress,
    /// The batch handed to the host and not yet acknowledged.
    pub pending: Option<Pending>,
}

/// Where a pass stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The `start` of the next list page; `None` when the pass is over.
    pub next_start: Option<u64>,
    /// Newest `updatedDate` on the first page.
    pub top_updated: Option<i64>,
    /// `updatedDate` of the last pull request listed, for the order check across pages.
    pub last_updated: Option<i64>,
    /// Whether an out-of-order listing was seen.
    pub order_violation: bool,
    /// Whether the retry step of this pass ran to its end.
    pub retries_done: bool,
    /// The last pull request the retry step of this pass tried; the next call goes on after it.
    #[serde(default)]
    pub retried_up_to: Option<u64>,
    /// How far the pass's listing has come, to bound it (pages read, items, empty pages).
    #[serde(default)]
    pub listed: Tally,
    /// The page at `next_start` was partly processed (more changes than one call fetches): its
    /// already-fetched pull requests are not counted as unchanged when it is read again.
    #[serde(default)]
    pub partial: bool,
    /// The `limit` of the page at `next_start`, at most the connection's page size; `None`:
    /// the connection's page size. An incremental pass starts at [`FIRST_INCREMENTAL_PAGE`]
    /// and grows it; a full listing, and a pass written by a version before pages grew, keep
    /// `None`. A page read again keeps its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Every pull request on the page at `next_start` needed work when the page was first read
    /// (it is `partial`): the page grows after it even though, read again, the pull requests
    /// fetched meanwhile look unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_changed: bool,
}

/// A batch handed to the host, committed when the host acknowledges it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Batch number.
    pub batch: u32,
    /// Progress once committed.
    pub progress: Progress,
    /// Memos to write.
    pub memos: Vec<(u64, PrMemo)>,
    /// Pull requests to retry next pass.
    pub retry_add: Vec<u64>,
    /// Pull requests no longer to retry.
    pub retry_remove: Vec<u64>,
}

/// Storage key of a repository's sync state.
pub fn state_key(repo: &RepoRef) -> String {
    format!("sync/{}/{}", repo.project_key, repo.slug)
}

/// Storage key of a pull request's memo.
pub fn memo_key(repo: &RepoRef, id: u64) -> String {
    format!("pr/{}/{}/{id}", repo.project_key, repo.slug)
}

/// The fingerprint of a list item: everything that can change without `version` changing too
/// (approvals, comments, tasks, pushes) is in it.
pub fn fingerprint(w: &WirePullRequest) -> String {
    let mut h = Sha256::new();
    let counts = w.properties.as_ref();
    put(&mut h, w.version.as_ref());
    put(&mut h, w.updated_date.map(i64::from).as_ref());
    put(&mut h, w.state.as_ref());
    put(&mut h, w.draft.as_ref());
    put(&mut h, w.from_ref.latest_commit.as_ref());
    put(&mut h, w.to_ref.latest_commit.as_ref());
    put(&mut h, counts.and_then(|p| p.comment_count.as_ref()));
    put(&mut h, counts.and_then(|p| p.open_task_count.as_ref()));
    put(&mut h, counts.and_then(|p| p.resolved_task_count.as_ref()));
    for (role, list) in [("r", &w.reviewers), ("p", &w.participants)] {
        for x in list.iter() {
            put(&mut h, Some(&role));
            put(&mut h, Some(&x.user.slug));
            put(&mut h, x.status.as_ref());
            put(&mut h, x.approved.as_ref());
            put(&mut h, x.last_reviewed_commit.as_ref());
        }
    }
    hex::encode(&h.finalize()[..16])
}

/// Feeds one field of a [`fingerprint`]: `-` when absent, `+` and the value written out when
/// present, then a NUL. Written out rather than through `Debug`, whose format is no stable
/// contract: the fingerprints one build stores must be the ones the next build computes.
fn put<T: std::fmt::Display + ?Sized>(h: &mut Sha256, value: Option<&T>) {
    match value {
        Some(v) => {
            h.update(b"+");
            h.update(v.to_string().as_bytes());
        }
        None => h.update(b"-"),
    }
    h.update([0u8]);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn encode_cursor(pass: u64, batch: u32) -> String {
    format!("{pass}.{batch}")
}

fn decode_cursor(c: &str) -> Result<(u64, u32), ConnectorError> {
    let bad = || ConnectorError::InvalidConfig(format!("not a pull-request sync cursor: {c:?}"));
    let (p, b) = c.split_once('.').ok_or_else(bad)?;
    Ok((p.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

fn stale(c: &str) -> ConnectorError {
    ConnectorError::InvalidConfig(format!(
        "cursor {c:?} belongs to a pass that is no longer current; start again without a cursor"
    ))
}

/// Reads the state; unreadable state is logged and replaced by a fresh one (a full re-sync
/// loses nothing).
fn load_state<H: Host + ?Sized>(host: &H, key: &str) -> (RepoState, Option<Vec<u8>>) {
    crate::state::load(host, key, "sync state")
}

fn save_state<H: Host + ?Sized>(
    host: &H,
    key: &str,
    old: Option<&[u8]>,
    state: &RepoState,
) -> Result<(), ConnectorError> {
    crate::state::save(host, key, old, state, "sync")
}

fn load_memo<H: Host + ?Sized>(host: &H, repo: &RepoRef, id: u64) -> Option<PrMemo> {
    host.storage_get(&memo_key(repo, id))
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The memos of the pull requests on a page, in its order, read in one storage call: a page
/// of a thousand costs one crossing into the host, not a thousand. An unreadable memo reads as
/// none (the pull request is fetched again). A host whose `get-many` does not answer one value
/// per key breaks the contract: read as "no memo", every pass would fetch the same pull
/// requests again for ever, so it is a `storage` error instead.
fn load_memos<H: Host + ?Sized>(
    host: &H,
    repo: &RepoRef,
    items: &[WirePullRequest],
) -> Result<Vec<Option<PrMemo>>, ConnectorError> {
    let keys: Vec<String> = items.iter().map(|w| memo_key(repo, w.id)).collect();
    let values = host.storage_get_many(&keys);
    if values.len() != keys.len() {
        return Err(ConnectorError::Storage(format!(
            "the host's storage get-many answered {} values for {} keys; it must answer one per key, in order",
            values.len(),
            keys.len()
        )));
    }
    Ok(values
        .into_iter()
        .map(|b| b.and_then(|b| serde_json::from_slice(&b).ok()))
        .collect())
}

/// What the diff of pull request `w` came to when the sync last fetched it, if its commit pair
/// has not changed since (see [`PrMemo::known_diff`]).
pub fn known_diff<H: Host + ?Sized>(
    host: &H,
    repo: &RepoRef,
    w: &WirePullRequest,
) -> Option<DiffOutcome> {
    load_memo(host, repo, w.id).and_then(|m| m.known_diff(w))
}

/// Applies an acknowledged batch: memos, retries, progress; completes the pass if it is over.
fn commit<H: Host + ?Sized>(
    host: &H,
    repo: &RepoRef,
    state: &mut RepoState,
    p: Pending,
) -> Result<(), ConnectorError> {
    let memos = p
        .memos
        .iter()
        .map(|(id, memo)| {
            serde_json::to_vec(memo)
                .map(|bytes| (memo_key(repo, *id), bytes))
                .map_err(|e| ConnectorError::Storage(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !memos.is_empty() {
        host.storage_set_many(&memos);
    }
    for id in &p.retry_remove {
        state.retry.remove(id);
    }
    state.retry.extend(p.retry_add.iter().copied());
    let Some(pass) = state.pass.as_mut() else {
        return Ok(());
    };
    pass.acked = p.batch;
    pass.progress = p.progress;
    pass.pending = None;
    if pass.progress.next_start.is_none() {
        finish_pass(state);
    }
    Ok(())
}

fn finish_pass(state: &mut RepoState) {
    let Some(pass) = state.pass.take() else {
        return;
    };
    if pass.progress.order_violation {
        state.order_untrusted = true;
    }
    if let Some(top) = pass.progress.top_updated {
        state.high_water = Some(state.high_water.map_or(top, |h| h.max(top)));
    }
    if pass.full {
        state.last_full_at = Some(pass.started_at);
    }
    state.last_completed_pass = Some(pass.id);
}

fn new_pass(state: &mut RepoState, options: &SyncOptions, now: i64) -> Pass {
    state.pass_seq = state.pass_seq.saturating_add(1);
    let reconcile_due = state
        .last_full_at
        .is_none_or(|t| now.saturating_sub(t) >= RECONCILE_EVERY_MS);
    let full = options.full_listing
        || state.order_untrusted
        || state.high_water.is_none()
        || reconcile_due;
    let threshold = if full {
        options.since
    } else {
        let hw = state.high_water.map(|h| h.saturating_sub(SAFETY_MARGIN_MS));
        hw.max(options.since)
    };
    Pass {
        id: state.pass_seq,
        full,
        threshold,
        since: options.since,
        started_at: now,
        acked: 0,
        progress: Progress {
            next_start: Some(0),
            limit: (!full).then_some(FIRST_INCREMENTAL_PAGE),
            ..Progress::default()
        },
        pending: None,
    }
}

/// What one call produced before it is staged.
struct Work {
    batch: PullRequestBatch,
    pending: Pending,
}

fn skipped(id: u64, stage: SkipStage, error: ConnectorError) -> SkippedPullRequest {
    SkippedPullRequest {
        id,
        stage,
        error: error.into(),
    }
}

fn memo_for(w: &WirePullRequest, diff: DiffOutcome) -> PrMemo {
    PrMemo {
        fp: fingerprint(w),
        from: w.from_ref.latest_commit.clone(),
        to: w.to_ref.latest_commit.clone(),
        diff: diff.stats(),
        diff_too_large: match diff {
            DiffOutcome::TooLarge(cap) => Some(cap),
            DiffOutcome::Counted(_) => None,
        },
    }
}

/// Retries pull requests that failed in earlier passes, in id order from the one after
/// `after`, while the budget lasts; answers whether every one was tried. The progress records
/// the last one tried, so the next call of the pass goes on from there: each is tried once per
/// pass. One that fails for good ([`ConnectorError::is_final`]) leaves the set.
fn run_retries<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    retry: &BTreeSet<u64>,
    after: Option<u64>,
    budget: &mut usize,
    work: &mut Work,
) -> bool {
    let from = after.map_or(Bound::Unbounded, Bound::Excluded);
    for &id in retry.range((from, Bound::Unbounded)) {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        work.pending.progress.retried_up_to = Some(id);
        match pulls::fetch_snapshot(client, repo, id) {
            Ok((wire, snap)) => {
                let known = known_diff(client.host(), repo, &wire);
                match pulls::complete(client, snap, known, &mut work.batch.unreadable) {
                    Ok((pr, diff)) => {
                        work.pending.memos.push((id, memo_for(&wire, diff)));
                        work.pending.retry_remove.push(id);
                        work.batch.pull_requests.push(pr);
                    }
                    Err((stage, e)) => {
                        if e.is_final() {
                            work.pending.retry_remove.push(id);
                        }
                        work.batch.skipped.push(skipped(id, stage, e));
                    }
                }
            }
            Err(e @ ConnectorError::NotFound(_)) => {
                // Deleted since it failed: nothing left to fetch.
                work.pending.retry_remove.push(id);
                work.batch.skipped.push(skipped(id, SkipStage::Details, e));
            }
            Err(e) => {
                if e.is_final() {
                    work.pending.retry_remove.push(id);
                }
                work.batch.skipped.push(skipped(id, SkipStage::Details, e));
            }
        }
    }
    true
}

/// One step of a repository's pull-request sync pass (WIT `fetch-pull-requests`).
pub fn fetch_pull_requests<H: Host + ?Sized>(
    host: &H,
    conn: &Connection,
    repo: &RepoRef,
    options: &SyncOptions,
    cursor: Option<&str>,
) -> Result<PullRequestBatch, ConnectorError> {
    if repo.project_key.is_empty() || repo.slug.is_empty() {
        return Err(ConnectorError::InvalidConfig(
            "empty project key or repository slug".into(),
        ));
    }
    let client = Client::new(host, &conn.base_url, conn.page_size)?;
    let key = state_key(repo);
    let (mut state, raw) = load_state(host, &key);
    let empty = |requests| PullRequestBatch {
        pull_requests: Vec::new(),
        skipped: Vec::new(),
        unreadable: Vec::new(),
        next_cursor: None,
        stats: BatchStats {
            requests,
            ..BatchStats::default()
        },
    };

    match cursor {
        Some(c) => {
            let (pass_id, batch) = decode_cursor(c)?;
            let current = state
                .pass
                .as_ref()
                .map(|p| (p.id, p.acked, p.pending.as_ref().map(|x| x.batch)));
            match current {
                Some((id, _, Some(pending))) if id == pass_id && pending == batch => {
                    let p = state.pass.as_mut().and_then(|p| p.pending.take());
                    if let Some(p) = p {
                        commit(host, repo, &mut state, p)?;
                    }
                }
                Some((id, acked, _)) if id == pass_id && acked == batch => {
                    // Already committed (a repeated call): redo the step after it.
                    if let Some(p) = state.pass.as_mut() {
                        p.pending = None;
                    }
                }
                None if state.last_completed_pass == Some(pass_id) => return Ok(empty(0)),
                _ => return Err(stale(c)),
            }
            if state.pass.is_none() {
                save_state(host, &key, raw.as_deref(), &state)?;
                return Ok(empty(0));
            }
        }
        None => match state.pass.as_mut() {
            Some(p) => {
                host.log(
                    LogLevel::Info,
                    &format!("{key}: resuming pass {} after batch {}", p.id, p.acked),
                );
                p.pending = None;
            }
            None => {
                let pass = new_pass(&mut state, options, now_ms());
                host.log(
                    LogLevel::Debug,
                    &format!(
                        "{key}: pass {} ({})",
                        pass.id,
                        if pass.full {
                            "full listing"
                        } else {
                            "incremental"
                        }
                    ),
                );
                state.pass = Some(pass);
            }
        },
    }
    let Some(pass) = state.pass.clone() else {
        return Ok(empty(0));
    };

    let batch_no = pass.acked.checked_add(1).ok_or_else(|| {
        ConnectorError::Storage(format!(
            "{key}: pass {} has run out of batch numbers; delete the key to start afresh",
            pass.id
        ))
    })?;
    let mut work = Work {
        batch: empty(0),
        pending: Pending {
            batch: batch_no,
            progress: pass.progress.clone(),
            memos: Vec::new(),
            retry_add: Vec::new(),
            retry_remove: Vec::new(),
        },
    };
    let mut budget = DETAIL_BUDGET;
    if !pass.progress.retries_done {
        work.pending.progress.retries_done = run_retries(
            &client,
            repo,
            &state.retry,
            pass.progress.retried_up_to,
            &mut budget,
            &mut work,
        );
    }
    // The listing goes on once every pull request to retry was tried.
    if let Some(start) = pass
        .progress
        .next_start
        .filter(|_| work.pending.progress.retries_done)
    {
        list_page(
            &client,
            repo,
            &pass,
            &state.retry,
            start,
            &mut budget,
            &mut work,
        )?;
    }

    let Work { mut batch, pending } = work;
    let needs_ack = !batch.pull_requests.is_empty()
        || !pending.retry_add.is_empty()
        || !pending.retry_remove.is_empty();
    let pass_id = pass.id;
    if needs_ack {
        let n = pending.batch;
        if let Some(p) = state.pass.as_mut() {
            p.pending = Some(pending);
        }
        batch.next_cursor = Some(encode_cursor(pass_id, n));
    } else {
        let n = pending.batch;
        commit(host, repo, &mut state, pending)?;
        batch.next_cursor = state.pass.as_ref().map(|_| encode_cursor(pass_id, n));
    }
    save_state(host, &key, raw.as_deref(), &state)?;
    batch.stats.requests = client.requests();
    Ok(batch)
}

/// Reads one list page and fetches details of the changed pull requests on it.
fn list_page<H: Host + ?Sized>(
    client: &Client<'_, H>,
    repo: &RepoRef,
    pass: &Pass,
    retry: &BTreeSet<u64>,
    start: u64,
    budget: &mut usize,
    work: &mut Work,
) -> Result<(), ConnectorError> {
    let host = client.host();
    let segments = [
        "projects",
        &repo.project_key,
        "repos",
        &repo.slug,
        "pull-requests",
    ];
    let limit = pass
        .progress
        .limit
        .map_or(client.page_size(), |l| l.min(client.page_size()).max(1));
    let (page, _) = client.get_page_sized::<WirePullRequest>(
        RecordKind::PullRequest,
        &segments,
        &[("state", "ALL"), ("order", "NEWEST")],
        start,
        limit,
    )?;
    let progress = &mut work.pending.progress;
    // Counted before any detail is fetched: a listing over its bounds fails this call with
    // nothing staged, and the next call reads the same page again.
    let what = format!("GET /{}", segments.join("/"));
    if pass.progress.partial {
        progress.listed.reread(Bounds::WALKED, &what)?;
    } else {
        progress
            .listed
            .count(page.received, page.next.is_some(), Bounds::WALKED, &what)?;
    }
    let before = progress.last_updated;
    let mut stop = false;
    let mut exhausted = false;
    let mut page_max: Option<i64> = None;
    // Whether every pull request on the page needs work (none is unchanged); on a page read
    // again, what its first reading found.
    let mut all_changed = if pass.progress.partial {
        pass.progress.all_changed
    } else {
        !page.items.is_empty()
    };
    work.batch.stats.listed = u32::try_from(page.items.len()).unwrap_or(u32::MAX);
    if !pass.progress.partial {
        work.batch
            .unreadable
            .extend(page.unreadable.iter().cloned());
    }
    let mut memos = load_memos(host, repo, &page.items)?.into_iter();
    for wire in &page.items {
        let old = memos.next().flatten();
        let updated = wire
            .updated_date
            .map(i64::from)
            .or(wire.created_date.map(i64::from))
            .unwrap_or(0);
        page_max = page_max.max(Some(updated));
        if progress.last_updated.is_some_and(|prev| updated > prev) && !progress.order_violation {
            progress.order_violation = true;
            host.log(
                LogLevel::Warn,
                &format!(
                    "{}/{}: pull requests are not listed newest-updated first; listing everything from now on",
                    repo.project_key, repo.slug
                ),
            );
        }
        progress.last_updated = Some(updated);
        if !progress.order_violation && pass.threshold.is_some_and(|t| updated < t) {
            stop = true;
        }
        if pass.since.is_some_and(|s| updated < s)
            || retry.contains(&wire.id)
            || work.pending.memos.iter().any(|(id, _)| *id == wire.id)
        {
            continue;
        }
        let fp = fingerprint(wire);
        if old.as_ref().is_some_and(|m| m.fp == fp) {
            if !pass.progress.partial {
                work.batch.stats.unchanged = work.batch.stats.unchanged.saturating_add(1);
                all_changed = false;
            }
            continue;
        }
        if *budget == 0 {
            exhausted = true;
            continue;
        }
        *budget -= 1;
        let known_diff = old.and_then(|m| m.known_diff(wire));
        match pulls::complete(
            client,
            normalize::pull_request(wire, repo),
            known_diff,
            &mut work.batch.unreadable,
        ) {
            Ok((pr, diff)) => {
                work.pending.memos.push((wire.id, memo_for(wire, diff)));
                work.batch.pull_requests.push(pr);
            }
            Err((stage, e)) => {
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "{}/{} #{}: skipped, {} failed: {e}",
                        repo.project_key,
                        repo.slug,
                        wire.id,
                        stage.as_str()
                    ),
                );
                if !e.is_final() {
                    work.pending.retry_add.push(wire.id);
                }
                work.batch.skipped.push(skipped(wire.id, stage, e));
            }
        }
    }
    if exhausted {
        // More changed pull requests on this page than one call may fetch: the next call reads
        // the same page again (its limit stays), where the ones done now are unchanged.
        progress.last_updated = before;
        progress.next_start = Some(start);
        progress.partial = true;
        progress.all_changed = all_changed;
        return Ok(());
    }
    progress.partial = false;
    progress.all_changed = false;
    if start == 0 {
        progress.top_updated = progress.top_updated.max(page_max);
    }
    progress.next_start = if stop { None } else { page.next };
    progress.limit = next_limit(
        pass.progress.limit,
        limit,
        all_changed,
        progress.order_violation,
        client.page_size(),
    );
    Ok(())
}

/// The `limit` of the page after one read with `limit` (`asked`: what the progress said). A
/// full listing (`None`) stays at the connection's page size, `page_size`. An incremental pass
/// doubles the page, up to that size, after a page on which every pull request needed work
/// (the change goes deeper, so fewer, larger pages reach its end), keeps it after a page with
/// unchanged ones, and lists the rest at the connection's page size once the order is seen
/// broken (it then lists everything, as a full listing does).
fn next_limit(
    asked: Option<u32>,
    limit: u32,
    all_changed: bool,
    order_violation: bool,
    page_size: u32,
) -> Option<u32> {
    asked?;
    if order_violation {
        None
    } else if all_changed {
        Some(limit.saturating_mul(2).min(page_size))
    } else {
        Some(limit)
    }
}

#[cfg(test)]
mod tests;
