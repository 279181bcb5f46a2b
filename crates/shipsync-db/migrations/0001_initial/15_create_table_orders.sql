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
