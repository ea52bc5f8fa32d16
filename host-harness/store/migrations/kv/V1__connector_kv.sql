-- The connector's state, namespaced per tenant (storage::PgKv).
CREATE TABLE IF NOT EXISTS connector_kv (
    tenant TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BYTEA NOT NULL,
    PRIMARY KEY (tenant, key)
);
