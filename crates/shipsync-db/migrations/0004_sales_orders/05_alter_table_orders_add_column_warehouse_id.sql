ALTER TABLE orders ADD COLUMN warehouse_id TEXT;
