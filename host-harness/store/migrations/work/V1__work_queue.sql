-- The work that `bbdc worker` processes share (src/work_queue.rs): one row per tenant's listing
-- (item '') and per repository (item 'KEY/slug'), leased with an expiry.
CREATE TABLE IF NOT EXISTS work_items (
    tenant TEXT NOT NULL,
    item TEXT NOT NULL,
    project_key TEXT,
    slug TEXT,
    -- Passes asked for and passes completed: the item is due while done < wanted.
    wanted BIGINT NOT NULL DEFAULT 1,
    done BIGINT NOT NULL DEFAULT 0,
    -- Not before this (epoch ms): a failed pass waits its backoff here.
    due_at BIGINT NOT NULL,
    -- The worker holding it, until when, and the `wanted` it took.
    lease_owner TEXT,
    lease_until BIGINT,
    lease_wanted BIGINT,
    -- Failed passes in a row, and the last one's error.
    failures BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (tenant, item)
);
CREATE INDEX IF NOT EXISTS work_items_due ON work_items (due_at) WHERE done < wanted;
CREATE SEQUENCE IF NOT EXISTS work_turns;
-- When each tenant was last given a turn (a number of work_turns): the least recently served tenant with due work goes
-- first, so a tenant with 50,000 repositories does not starve one with 10.
CREATE TABLE IF NOT EXISTS work_tenants (
    tenant TEXT PRIMARY KEY,
    last_turn BIGINT NOT NULL DEFAULT 0,
    -- When its last round started (epoch ms, the database's clock): `bbdc worker --every` starts
    -- the next one that long after, however many workers ask.
    round_started_at BIGINT
);
