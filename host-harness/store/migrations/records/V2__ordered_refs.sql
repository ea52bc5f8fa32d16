-- V2 (issue 28): refs and a pull request's commits written page by page as their listings
-- arrive, and pushes applied in their order. PostgreSQL runs this file as its second migration;
-- SQLite runs it on every open (src/records/sqlite.rs reads `ADD COLUMN IF NOT EXISTS`, which
-- SQLite lacks, as "add the column unless the table has it").

-- When a listing (its start) or a delivery (its arrival) last wrote a ref, on the writing
-- host's clock; when a delivery wrote it, that delivery's arrival and its payload `date`.
ALTER TABLE branches ADD COLUMN IF NOT EXISTS written_at BIGINT;
ALTER TABLE branches ADD COLUMN IF NOT EXISTS delivered_at BIGINT;
ALTER TABLE branches ADD COLUMN IF NOT EXISTS changed_at BIGINT;
ALTER TABLE tags ADD COLUMN IF NOT EXISTS written_at BIGINT;
ALTER TABLE tags ADD COLUMN IF NOT EXISTS delivered_at BIGINT;
ALTER TABLE tags ADD COLUMN IF NOT EXISTS changed_at BIGINT;
-- A ref a delivery deleted: the payload `date` of the latest delete, so that an older create or
-- update delivered late stays out; when the delivery arrived.
CREATE TABLE IF NOT EXISTS ref_tombstones (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, ref_id TEXT NOT NULL,
    deleted_at BIGINT, delivered_at BIGINT NOT NULL,
    PRIMARY KEY (project_key, repo_slug, ref_id)
);
-- Set when a delivered change could not be placed in order: the next pass lists the refs.
ALTER TABLE repos ADD COLUMN IF NOT EXISTS refs_marked_at BIGINT;
-- The start of the listing that last wrote a pull request's commit.
ALTER TABLE pr_commits ADD COLUMN IF NOT EXISTS written_at BIGINT;
-- What `bbdc serve` is to fetch again through the server after an accepted delivery: a pull
-- request (`pr_id`), or a repository's history after a push (`pr_id` -1). Queued when the
-- delivery is accepted and taken off when the refresh is done, so that a refresh not done when
-- serve stops (its drain, a crash) is done by the next serve to start.
CREATE TABLE IF NOT EXISTS refresh_queue (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id BIGINT NOT NULL,
    queued_at BIGINT NOT NULL,
    PRIMARY KEY (project_key, repo_slug, pr_id)
);
