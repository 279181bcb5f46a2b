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
