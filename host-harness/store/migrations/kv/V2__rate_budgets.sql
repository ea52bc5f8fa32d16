-- Each tenant's rate budget, shared by every process calling its server (postgres::PgBudget):
-- a token bucket, refilled by the database's own clock.
CREATE TABLE IF NOT EXISTS rate_budgets (
    tenant TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    -- Epoch ms of the last refill, by the database's clock.
    refilled_at BIGINT NOT NULL
);
