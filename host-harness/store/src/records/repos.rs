//! A repository's identity across renames and moves: the tables holding its records
//! ([`REPO_TABLES`]), which move with it to its new key, and its own row.

use crate::sql::{Tx, Value, col, vals};
use bbdc_host::bindings::types::{Repo, RepoRef};
use bbdc_host::storage::StoreError;

/// A table holding a repository's records: what moves with a renamed repository.
#[derive(Debug, Clone, Copy)]
pub struct RepoTable {
    /// The table.
    pub name: &'static str,
    /// The column naming the repository's slug (`project_key` is beside it).
    pub slug_column: &'static str,
    /// The rest of the table's key, after the project key and slug.
    pub rest_of_key: &'static [&'static str],
}

const fn repo_table(
    name: &'static str,
    slug_column: &'static str,
    rest_of_key: &'static [&'static str],
) -> RepoTable {
    RepoTable {
        name,
        slug_column,
        rest_of_key,
    }
}

/// Every table holding a repository's records.
pub const REPO_TABLES: [RepoTable; 13] = [
    repo_table("history_heads", "repo_slug", &[]),
    repo_table("repos", "slug", &[]),
    repo_table("pull_requests", "repo_slug", &["id"]),
    repo_table("reviews", "repo_slug", &["pr_id", "seq"]),
    repo_table("commits", "repo_slug", &["id"]),
    repo_table("branches", "repo_slug", &["ref_id"]),
    repo_table("tags", "repo_slug", &["ref_id"]),
    repo_table("ref_tombstones", "repo_slug", &["ref_id"]),
    repo_table("builds", "repo_slug", &["commit_id", "key"]),
    repo_table("build_queue", "repo_slug", &["commit_id"]),
    repo_table("pr_commits", "repo_slug", &["pr_id", "commit_id"]),
    repo_table("pr_commit_queue", "repo_slug", &["pr_id"]),
    repo_table("refresh_queue", "repo_slug", &["pr_id"]),
];

/// Moves the records of repository `id`, when it is stored under another key than `now`, to
/// `now` (a rename or a move to another project keeps the repository's identity). A row already
/// stored under the new key for the same thing is replaced by the moved one.
///
/// Before that, a different repository stored at `now` (its key reused after a rename or a
/// deletion) is moved aside to a key no real repository has (`slug#id`, marked deleted), where a
/// later listing finds it by its id. Id 0 (a repository whose id could not be read) identifies
/// nothing and moves nothing.
pub(super) fn move_repo_by_id(tx: &mut dyn Tx, id: i64, now: &RepoRef) -> Result<(), StoreError> {
    if id == 0 {
        return Ok(());
    }
    let occupant = tx
        .row(
            "SELECT id FROM repos WHERE project_key = $1 AND slug = $2",
            &vals![now.project_key, now.slug],
        )?
        .and_then(|r| col(&r, 0).int());
    if let Some(other) = occupant.filter(|other| *other != id && *other != 0) {
        let aside = RepoRef {
            project_key: now.project_key.clone(),
            slug: format!("{}#{other}", now.slug),
        };
        move_repo(tx, now, &aside)?;
        tx.exec(
            "UPDATE repos SET deleted = 1 WHERE project_key = $1 AND slug = $2",
            &vals![aside.project_key, aside.slug],
        )?;
    }
    // Every other key the id is stored under (one, unless an older `bbdc` stored it twice).
    loop {
        let before = tx.row(
            "SELECT project_key, slug FROM repos WHERE id = $1 AND NOT (project_key = $2 AND slug = $3) LIMIT 1",
            &vals![id, now.project_key, now.slug],
        )?;
        match before {
            Some(row) => {
                let mut row = row.into_iter();
                let project_key = row.next().and_then(Value::into_text).unwrap_or_default();
                let slug = row.next().and_then(Value::into_text).unwrap_or_default();
                move_repo(tx, &RepoRef { project_key, slug }, now)?;
            }
            None => return Ok(()),
        }
    }
}

/// Moves every record of repository `before` to `now` (nothing when they are the same). What
/// is stored at `now` already wins over what comes from `before` (it was written later: by the
/// sync of the new name), and what could not move is dropped with the old key.
pub(super) fn move_repo(
    tx: &mut dyn Tx,
    before: &RepoRef,
    now: &RepoRef,
) -> Result<(), StoreError> {
    if before == now {
        return Ok(());
    }
    for t in REPO_TABLES {
        let (table, slug) = (t.name, t.slug_column);
        let same_rest: String = t
            .rest_of_key
            .iter()
            .map(|c| format!(" AND taken.{c} = {table}.{c}"))
            .collect();
        tx.exec(
            &format!(
                "UPDATE {table} SET project_key = $3, {slug} = $4
                 WHERE project_key = $1 AND {slug} = $2 AND NOT EXISTS (SELECT 1 FROM {table} AS taken
                     WHERE taken.project_key = $3 AND taken.{slug} = $4{same_rest})"
            ),
            &vals![before.project_key, before.slug, now.project_key, now.slug],
        )?;
        tx.exec(
            &format!("DELETE FROM {table} WHERE project_key = $1 AND {slug} = $2"),
            &vals![before.project_key, before.slug],
        )?;
    }
    tracing::info!(
        from = %format!("{}/{}", before.project_key, before.slug),
        to = %format!("{}/{}", now.project_key, now.slug),
        "repository renamed or moved: its records follow it"
    );
    Ok(())
}

/// An id outside a record's identity (a repository's, a project's, a user's) as stored: `None`
/// when it is unknown (0, the contract's "could not be read") or past the signed 64-bit range
/// (no real id), so that the stored one is kept rather than replaced by nothing.
pub(super) fn known_id(n: u64) -> Option<i64> {
    i64::try_from(n).ok().filter(|n| *n > 0)
}

/// Upserts one repository as listed (or described by a webhook) at `now`, not deleted. An id
/// that could not be read keeps the stored one.
pub(super) fn upsert_repo(tx: &mut dyn Tx, r: &Repo, now: i64) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO repos (project_key, slug, id, name, description, scm, state, public, archived,
         forkable, origin_project_key, origin_slug, url, clone_http, clone_ssh, listed_at, deleted)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0)
         ON CONFLICT (project_key, slug) DO UPDATE SET id = COALESCE(excluded.id, repos.id), name = excluded.name,
         description = excluded.description, scm = excluded.scm, state = excluded.state,
         public = excluded.public, archived = excluded.archived, forkable = excluded.forkable,
         origin_project_key = excluded.origin_project_key, origin_slug = excluded.origin_slug,
         url = excluded.url, clone_http = excluded.clone_http, clone_ssh = excluded.clone_ssh,
         listed_at = excluded.listed_at, deleted = 0",
        &vals![
            r.repo_ref.project_key,
            r.repo_ref.slug,
            known_id(r.id),
            r.name,
            r.description,
            r.scm,
            r.state,
            r.public,
            r.archived,
            r.forkable,
            r.origin.as_ref().map(|o| &o.project_key),
            r.origin.as_ref().map(|o| &o.slug),
            r.url,
            r.clone_http,
            r.clone_ssh,
            now
        ],
    )?;
    Ok(())
}
