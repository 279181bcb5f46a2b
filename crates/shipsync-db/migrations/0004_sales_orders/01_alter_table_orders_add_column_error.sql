-- The Sales Orders channel: what shipsync knows of each store order it
-- sends to the warehouse. `status` is the merchant-facing state (new, queued,
-- open, partially_shipped, shipped, error, closed, archived).
ALTER TABLE orders ADD COLUMN error TEXT;
