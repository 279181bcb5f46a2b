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
