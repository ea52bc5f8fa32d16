//! A repository's branches and tags, as two sources write them: listings, page by page, and
//! push deliveries (`repo:refs_changed`), which Bitbucket sends late, twice or out of order.
//!
//! **Listings stream.** Each page is upserted as it arrives, stamped with the listing's start
//! (`written_at`); when the listing completes, the refs of its kind not written since its start
//! are dropped ([`listed`]). A listing that fails part-way drops nothing. A page read before a
//! push but written after it must not undo the push: a ref a delivery wrote or deleted since the
//! listing started keeps what the delivery made of it.
//!
//! **Deliveries apply in order or not at all** ([`apply_change`]). An update or a delete applies
//! only when the stored head is its `fromHash` (or unknown: a listing could not read it, or, for
//! a dated update, no listing ever named the ref); a create only when the ref is absent and not
//! deleted by a delivery dated later (a tombstone, `ref_tombstones`, remembers each delete and
//! its payload `date`). A change that a later delivery already superseded (the stored ref or
//! its tombstone is dated after it) is dropped. Any other change cannot be placed: instead of
//! guessing, it marks the repository (`repos.refs_marked_at`) for a refs listing, which its next
//! pass runs and which clears the mark.

use crate::sql::{ToValue, Tx, Value, col, vals};
use bbdc_host::bindings::history::{Branch, Tag};
use bbdc_host::bindings::repository_events::{RefChange, RefChangeKind};
use bbdc_host::bindings::types::RepoRef;
use bbdc_host::storage::StoreError;

/// Which of a repository's refs a listing names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// `branches`.
    Branch,
    /// `tags`.
    Tag,
}

impl RefKind {
    /// The table, and its column holding the commit the ref points at.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            RefKind::Branch => ("branches", "latest_commit"),
            RefKind::Tag => ("tags", "target"),
        }
    }

    /// The table's column beside the commit, and its SQL type: whether a branch is the
    /// default, a tag's annotated object.
    fn extra(self) -> (&'static str, &'static str) {
        match self {
            RefKind::Branch => ("is_default", "BIGINT"),
            RefKind::Tag => ("object_hash", "TEXT"),
        }
    }
}

/// Upserts a page of a listing that started at `since` (epoch ms, this host's clock). A ref
/// that a delivery wrote since then keeps the delivery's state, and one a delivery deleted since
/// then stays deleted: the page may have been read before the push.
pub fn page(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    since: i64,
    branches: &[Branch],
    tags: &[Tag],
) -> Result<(), StoreError> {
    let rows = branches
        .iter()
        .map(|b| {
            let extra = Value::Int(i64::from(b.is_default));
            (RefKind::Branch, &b.ref_id, &b.name, &b.latest_commit, extra)
        })
        .chain(tags.iter().map(|t| {
            let extra = t.object_hash.to_value();
            (RefKind::Tag, &t.ref_id, &t.name, &t.target, extra)
        }));
    for (kind, ref_id, name, head, extra) in rows {
        let (table, head_column) = kind.table();
        let (extra_column, extra_type) = kind.extra();
        tx.exec(
            &format!(
                "INSERT INTO {table} (project_key, repo_slug, ref_id, name, {head_column}, {extra_column}, written_at)
                 SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS TEXT),
                     CAST($6 AS {extra_type}), CAST($7 AS BIGINT)
                 WHERE NOT EXISTS (SELECT 1 FROM ref_tombstones AS t WHERE t.project_key = $1
                     AND t.repo_slug = $2 AND t.ref_id = $3 AND t.delivered_at >= $7)
                 ON CONFLICT (project_key, repo_slug, ref_id) DO UPDATE SET name = excluded.name,
                 {head_column} = excluded.{head_column}, {extra_column} = excluded.{extra_column},
                 written_at = excluded.written_at, delivered_at = NULL, changed_at = NULL
                 WHERE {table}.delivered_at IS NULL OR {table}.delivered_at < excluded.written_at"
            ),
            &vals![repo.project_key, repo.slug, ref_id, name, head, extra, since],
        )?;
    }
    Ok(())
}

/// Ends a complete listing of `kind` that started at `since`: drops the refs of that kind that
/// neither it nor a delivery wrote since then. After the tags (listed last of a pass), the
/// repository's mark for a refs listing is cleared if it was set before the listing started,
/// and tombstones older than `keep_tombstones_ms` go.
pub fn listed(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    kind: RefKind,
    since: i64,
    keep_tombstones_ms: i64,
) -> Result<(), StoreError> {
    let (table, _) = kind.table();
    tx.exec(
        &format!(
            "DELETE FROM {table} WHERE project_key = $1 AND repo_slug = $2
             AND (written_at IS NULL OR written_at < $3)"
        ),
        &vals![repo.project_key, repo.slug, since],
    )?;
    if kind == RefKind::Tag {
        tx.exec(
            "UPDATE repos SET refs_marked_at = NULL WHERE project_key = $1 AND slug = $2
             AND refs_marked_at < $3",
            &vals![repo.project_key, repo.slug, since],
        )?;
        tx.exec(
            "DELETE FROM ref_tombstones WHERE project_key = $1 AND repo_slug = $2 AND delivered_at < $3",
            &vals![
                repo.project_key,
                repo.slug,
                since.saturating_sub(keep_tombstones_ms)
            ],
        )?;
    }
    Ok(())
}

/// What became of one delivered change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// It applied, or the stored state already was its outcome.
    Applied,
    /// A later delivery already superseded it: dropped.
    Superseded,
    /// It cannot be placed in the order of what is stored: the repository is marked for a refs
    /// listing.
    Unplaced,
}

/// A ref as stored: its head and the payload date of the delivery that last set it (`None`:
/// written by a listing, or the payload had no date).
struct Stored {
    head: Option<String>,
    changed_at: Option<i64>,
}

/// Applies one change of a push delivered at `now` (this host's clock) whose payload is dated
/// `date` (epoch ms, `None` when the payload had none), in the delivery's transaction. See the
/// module documentation for the rules; a change that cannot be placed marks the repository.
pub fn apply_change(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    c: &RefChange,
    date: Option<i64>,
    now: i64,
) -> Result<Placed, StoreError> {
    let kind = if c.is_tag {
        RefKind::Tag
    } else {
        RefKind::Branch
    };
    let (table, head_column) = kind.table();
    let key = vals![repo.project_key, repo.slug, c.ref_id];
    let stored = tx
        .row(
            &format!(
                "SELECT {head_column}, changed_at FROM {table}
                 WHERE project_key = $1 AND repo_slug = $2 AND ref_id = $3"
            ),
            &key,
        )?
        .map(|r| Stored {
            head: col(&r, 0).text().map(str::to_owned),
            changed_at: col(&r, 1).int(),
        });
    let tombstone = tx
        .row(
            "SELECT deleted_at FROM ref_tombstones WHERE project_key = $1 AND repo_slug = $2 AND ref_id = $3",
            &key,
        )?
        .map(|r| col(&r, 0).int());
    // Whether something stored is dated strictly after this delivery (equal dates, to the
    // second, cannot be told apart).
    let later = |at: Option<i64>| matches!((date, at), (Some(d), Some(at)) if at > d);
    let earlier = |at: Option<i64>| matches!((date, at), (Some(d), Some(at)) if at < d);
    let to = c.to_hash.as_deref();
    let from = c.from_hash.as_deref();
    // Whether the stored ref is where this change starts: its head is the change's `fromHash`,
    // or unknown (a listing that could not read it), which nothing contradicts; a later
    // delivery's state was told apart above, by its date.
    let moves_from = |s: &Stored| from.is_some() && (s.head.is_none() || s.head.as_deref() == from);
    let deletes = c.kind == RefChangeKind::Delete || to.is_none();
    let placed = match (&stored, deletes) {
        // The stored ref was set by a delivery dated after this one: this change is history.
        (Some(s), _) if later(s.changed_at) => Placed::Superseded,
        // A delete of what is stored.
        (Some(s), true) if moves_from(s) => {
            tx.exec(
                &format!(
                    "DELETE FROM {table} WHERE project_key = $1 AND repo_slug = $2 AND ref_id = $3"
                ),
                &key,
            )?;
            bury(tx, repo, &c.ref_id, date, now)?;
            Placed::Applied
        }
        (Some(_), true) => Placed::Unplaced,
        // Already deleted: remember the latest delete, so that an older create stays out.
        (None, true) => {
            bury(tx, repo, &c.ref_id, date, now)?;
            Placed::Applied
        }
        // Already where this change puts it: the ref is known to be there as of this delivery,
        // so that an older change delivered later is seen to be history.
        (Some(s), false) if s.head.as_deref() == to => {
            if date.is_some() && !later(s.changed_at) {
                tx.exec(
                    &format!(
                        "UPDATE {table} SET changed_at = $4, delivered_at = $5, written_at = $5
                         WHERE project_key = $1 AND repo_slug = $2 AND ref_id = $3"
                    ),
                    &vals![repo.project_key, repo.slug, c.ref_id, date, now],
                )?;
            }
            Placed::Applied
        }
        (Some(s), false) if moves_from(s) => {
            set(tx, repo, kind, c, date, now)?;
            Placed::Applied
        }
        (Some(_), false) => Placed::Unplaced,
        (None, false) => match tombstone {
            Some(deleted_at) if later(deleted_at) => Placed::Superseded,
            // A create of a ref never seen, or an update of one (a ref never listed): nothing
            // contradicts it, and a dated change is told apart from later ones by its date.
            None if from.is_none() || date.is_some() => {
                set(tx, repo, kind, c, date, now)?;
                Placed::Applied
            }
            Some(deleted_at) if from.is_none() && earlier(deleted_at) => {
                set(tx, repo, kind, c, date, now)?;
                tx.exec(
                    "DELETE FROM ref_tombstones WHERE project_key = $1 AND repo_slug = $2 AND ref_id = $3",
                    &key,
                )?;
                Placed::Applied
            }
            _ => Placed::Unplaced,
        },
    };
    if placed == Placed::Unplaced {
        tx.exec(
            "UPDATE repos SET refs_marked_at = $3 WHERE project_key = $1 AND slug = $2",
            &vals![repo.project_key, repo.slug, now],
        )?;
    }
    Ok(placed)
}

/// Writes the ref `c` creates or moves, as of the delivery dated `date` and handled at `now`.
fn set(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    kind: RefKind,
    c: &RefChange,
    date: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let (table, head) = kind.table();
    // A branch keeps whether it is the default; a tag's object hash is not in the payload, and
    // the next listing brings it.
    let (extra, _) = kind.extra();
    let extra_value = match kind {
        RefKind::Tag => "NULL",
        RefKind::Branch => "0",
    };
    tx.exec(
        &format!(
            "INSERT INTO {table} (project_key, repo_slug, ref_id, name, {head}, {extra}, written_at, delivered_at, changed_at)
             VALUES ($1, $2, $3, $4, $5, {extra_value}, $6, $6, $7)
             ON CONFLICT (project_key, repo_slug, ref_id) DO UPDATE SET
             name = excluded.name, {head} = excluded.{head}, written_at = excluded.written_at,
             delivered_at = excluded.delivered_at, changed_at = excluded.changed_at"
        ),
        &vals![repo.project_key, repo.slug, c.ref_id, c.name, c.to_hash, now, date],
    )?;
    Ok(())
}

/// Remembers that `ref_id` was deleted by a delivery dated `date`, handled at `now`, keeping the
/// later of two deletes.
fn bury(
    tx: &mut dyn Tx,
    repo: &RepoRef,
    ref_id: &str,
    date: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO ref_tombstones (project_key, repo_slug, ref_id, deleted_at, delivered_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (project_key, repo_slug, ref_id) DO UPDATE SET
         deleted_at = CASE WHEN ref_tombstones.deleted_at IS NULL OR excluded.deleted_at > ref_tombstones.deleted_at
             THEN excluded.deleted_at ELSE ref_tombstones.deleted_at END,
         delivered_at = excluded.delivered_at",
        &vals![repo.project_key, repo.slug, ref_id, date, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
