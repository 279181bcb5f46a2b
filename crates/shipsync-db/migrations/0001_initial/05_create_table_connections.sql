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
