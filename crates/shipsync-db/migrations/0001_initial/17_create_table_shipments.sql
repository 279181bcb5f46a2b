CREATE TABLE shipments (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    number          TEXT NOT NULL,
    connection_id   TEXT,
    order_id        TEXT,
    order_name      TEXT NOT NULL,
    status          TEXT NOT NULL,
    error           TEXT,
    sources         TEXT NOT NULL,
    first_seen_via  TEXT NOT NULL,
    version_json    TEXT NOT NULL,
    version_at      TEXT,
    content_hash    TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    UNIQUE (merchant_id, number)
);
