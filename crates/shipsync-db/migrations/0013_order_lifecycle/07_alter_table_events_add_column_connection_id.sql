-- The connection of a store (Shopify) webhook delivery; NULL for the
-- merchant's Deposco deliveries.
ALTER TABLE events ADD COLUMN connection_id TEXT;
