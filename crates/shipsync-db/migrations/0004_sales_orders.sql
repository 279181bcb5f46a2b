-- The Sales Orders channel: what shipsync knows of each store order it
-- sends to the warehouse. `status` is the merchant-facing state (new, queued,
-- open, partially_shipped, shipped, error, closed, archived).
ALTER TABLE orders ADD COLUMN error TEXT;
-- The store order as last pulled (ship-to, shipping method, lines), JSON.
ALTER TABLE orders ADD COLUMN store_json TEXT;
ALTER TABLE orders ADD COLUMN store_updated_at TEXT;
-- Deposco's order number (prefix + name without '#') and id, once sent.
ALTER TABLE orders ADD COLUMN warehouse_number TEXT;
ALTER TABLE orders ADD COLUMN warehouse_id TEXT;
ALTER TABLE orders ADD COLUMN sent_at BIGINT;
CREATE INDEX orders_connection ON orders (connection_id, id);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_warehouse_number ON orders (warehouse_number);
