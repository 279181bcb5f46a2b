-- One schema for SQLite and PostgreSQL. {BLOB} becomes BLOB or BYTEA.
-- Times are Unix microseconds (BIGINT); flags are 0/1 BIGINT.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE merchants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    warehouse_json      TEXT NOT NULL,
    warehouse_secrets   {BLOB},
    webhooks_enabled    BIGINT NOT NULL DEFAULT 0,
    shared_secret       {BLOB},
    webhook_key         {BLOB} NOT NULL,
    webhook_key_hash    TEXT NOT NULL UNIQUE,
    old_key_hash        TEXT,
    old_key_expires_at  BIGINT,
    kit_policy          TEXT NOT NULL,
    carrier_overrides   TEXT NOT NULL DEFAULT '{}',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX merchants_old_key ON merchants (old_key_hash);

CREATE TABLE connections (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    enabled      BIGINT NOT NULL DEFAULT 0,
    order_prefix TEXT NOT NULL DEFAULT '',
    store_json   TEXT NOT NULL,
    store_token  {BLOB},
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX connections_merchant ON connections (merchant_id);

CREATE TABLE channels (
    connection_id     TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    channel           TEXT NOT NULL,
    enabled           BIGINT NOT NULL DEFAULT 0,
    schedules_json    TEXT NOT NULL DEFAULT '[]',
    last_completed_at BIGINT,
    next_run_at       BIGINT,
    PRIMARY KEY (connection_id, channel)
);

CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    merchant_id   TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    headers_json  TEXT NOT NULL,
    body          {BLOB},
    body_size     BIGINT NOT NULL,
    body_hash     TEXT,
    webhook_id    TEXT,
    verified      BIGINT NOT NULL DEFAULT 0,
    outcome       TEXT NOT NULL,
    detail        TEXT,
    repeat_count  BIGINT NOT NULL DEFAULT 0,
    shipment_ids  TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX events_merchant ON events (merchant_id, id);
CREATE INDEX events_outcome ON events (outcome, id);
CREATE UNIQUE INDEX events_webhook_id ON events (merchant_id, webhook_id);
CREATE INDEX events_body_hash ON events (merchant_id, body_hash, received_at);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    dedupe_key  TEXT UNIQUE,
    payload     TEXT NOT NULL,
    run_at      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    rerun       BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (run_at);

CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    connection_id  TEXT NOT NULL,
    store_order_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    lines_json     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (connection_id, store_order_id)
);
CREATE INDEX orders_name ON orders (connection_id, name);

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
CREATE INDEX shipments_order ON shipments (order_id, received_at);
CREATE INDEX shipments_status ON shipments (status, id);
CREATE INDEX shipments_connection ON shipments (connection_id, id);

CREATE TABLE shipment_versions (
    id           TEXT PRIMARY KEY,
    shipment_id  TEXT NOT NULL,
    event_id     TEXT,
    source       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    version_json TEXT NOT NULL
);
CREATE INDEX shipment_versions_shipment ON shipment_versions (shipment_id, id);

CREATE TABLE store_fulfillments (
    id                   TEXT PRIMARY KEY,
    shipment_id          TEXT NOT NULL,
    connection_id        TEXT NOT NULL,
    store_order_id       TEXT NOT NULL,
    fulfillment_order_id TEXT NOT NULL,
    store_fulfillment_id TEXT,
    carrier              TEXT,
    lines_json           TEXT NOT NULL,
    items_json           TEXT NOT NULL,
    tracking_json        TEXT NOT NULL,
    state                TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX store_fulfillments_shipment ON store_fulfillments (shipment_id);
CREATE INDEX store_fulfillments_order ON store_fulfillments (store_order_id);

CREATE TABLE activity (
    id         TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL
);
CREATE INDEX activity_subject ON activity (subject_id, id);

CREATE TABLE kit_recipes (
    merchant_id   TEXT NOT NULL,
    kit_sku       TEXT NOT NULL,
    component_sku TEXT NOT NULL,
    per_kit       BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, kit_sku, component_sku)
);
