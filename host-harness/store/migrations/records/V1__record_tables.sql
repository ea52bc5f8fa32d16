-- The record tables, on PostgreSQL (src/records/postgres.rs, this file as its first migration)
-- and on SQLite (src/records/sqlite.rs, this file as its schema): every integer 64-bit, every
-- flag 0 or 1. Later versions are new files here, with the same change in sqlite.rs's
-- ADDED_COLUMNS for SQLite files.
CREATE TABLE IF NOT EXISTS projects (
    key TEXT PRIMARY KEY, id BIGINT, name TEXT, description TEXT, public BIGINT, kind TEXT, url TEXT
);
CREATE TABLE IF NOT EXISTS repos (
    project_key TEXT NOT NULL, slug TEXT NOT NULL, id BIGINT, name TEXT, description TEXT, scm TEXT,
    state TEXT, public BIGINT, archived BIGINT, forkable BIGINT, origin_project_key TEXT,
    origin_slug TEXT, url TEXT, clone_http TEXT, clone_ssh TEXT, listed_at BIGINT,
    deleted BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_key, slug)
);
-- A listed repository is looked up by id (a rename keeps it): one index lookup per repository,
-- not a scan of 50,000.
CREATE INDEX IF NOT EXISTS repos_by_id ON repos (id);
CREATE TABLE IF NOT EXISTS users (
    slug TEXT PRIMARY KEY, id BIGINT, name TEXT, display_name TEXT, email TEXT, active BIGINT, kind TEXT
);
CREATE TABLE IF NOT EXISTS pull_requests (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, id BIGINT NOT NULL, version BIGINT NOT NULL,
    title TEXT, description TEXT, state TEXT, draft BIGINT, author TEXT,
    created_at BIGINT, updated_at BIGINT, closed_at BIGINT, merged_at BIGINT, merged_by TEXT,
    merge_commit TEXT, source_branch TEXT, source_commit TEXT, source_repo TEXT, target_branch TEXT,
    target_commit TEXT, url TEXT, comment_count BIGINT, open_task_count BIGINT,
    resolved_task_count BIGINT, additions BIGINT, deletions BIGINT, files_changed BIGINT,
    diff_truncated BIGINT, first_review_at BIGINT, first_approval_at BIGINT, complete BIGINT,
    reviewers TEXT, participants TEXT, events TEXT, record TEXT, deleted BIGINT NOT NULL DEFAULT 0,
    first_commit_at BIGINT, commits_source TEXT, commits_target TEXT,
    PRIMARY KEY (project_key, repo_slug, id)
);
CREATE TABLE IF NOT EXISTS reviews (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id BIGINT NOT NULL, seq BIGINT NOT NULL,
    "user" TEXT NOT NULL, state TEXT NOT NULL, at BIGINT NOT NULL, activity_id BIGINT,
    PRIMARY KEY (project_key, repo_slug, pr_id, seq)
);
CREATE TABLE IF NOT EXISTS commits (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, id TEXT NOT NULL,
    author_name TEXT, author_email TEXT, author_slug TEXT, author_timestamp BIGINT,
    committer_name TEXT, committer_email TEXT, committer_slug TEXT, committer_timestamp BIGINT,
    parent_count BIGINT NOT NULL, summary TEXT NOT NULL, pass_head TEXT,
    PRIMARY KEY (project_key, repo_slug, id)
);
CREATE TABLE IF NOT EXISTS history_heads (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, head TEXT,
    PRIMARY KEY (project_key, repo_slug)
);
CREATE TABLE IF NOT EXISTS branches (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, ref_id TEXT NOT NULL, name TEXT NOT NULL,
    latest_commit TEXT, is_default BIGINT NOT NULL,
    PRIMARY KEY (project_key, repo_slug, ref_id)
);
CREATE TABLE IF NOT EXISTS tags (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, ref_id TEXT NOT NULL, name TEXT NOT NULL,
    target TEXT, object_hash TEXT,
    PRIMARY KEY (project_key, repo_slug, ref_id)
);
CREATE TABLE IF NOT EXISTS builds (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, commit_id TEXT NOT NULL, key TEXT NOT NULL,
    name TEXT, state TEXT NOT NULL, state_other TEXT, url TEXT, created_at BIGINT, updated_at BIGINT,
    duration_ms BIGINT, build_number TEXT, parent TEXT, ref_id TEXT, tests_successful BIGINT,
    tests_failed BIGINT, tests_skipped BIGINT,
    PRIMARY KEY (project_key, repo_slug, commit_id, key)
);
CREATE TABLE IF NOT EXISTS build_queue (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, commit_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (project_key, repo_slug, commit_id)
);
-- `want_builds` numbers each queued commit after the highest number so far: indexed, that is one
-- lookup per insert instead of a scan of the queue (a first sync queues thousands at once).
CREATE INDEX IF NOT EXISTS build_queue_by_seq ON build_queue (seq);
CREATE TABLE IF NOT EXISTS pr_commits (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id BIGINT NOT NULL, commit_id TEXT NOT NULL,
    position BIGINT NOT NULL, author_name TEXT, author_email TEXT, author_slug TEXT, author_timestamp BIGINT,
    committer_name TEXT, committer_email TEXT, committer_slug TEXT, committer_timestamp BIGINT,
    parent_count BIGINT NOT NULL, summary TEXT NOT NULL,
    PRIMARY KEY (project_key, repo_slug, pr_id, commit_id)
);
CREATE TABLE IF NOT EXISTS pr_commit_queue (
    project_key TEXT NOT NULL, repo_slug TEXT NOT NULL, pr_id BIGINT NOT NULL,
    source_commit TEXT NOT NULL, target_commit TEXT,
    PRIMARY KEY (project_key, repo_slug, pr_id)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    request_id TEXT PRIMARY KEY, received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_age ON webhook_deliveries (received_at);
