ALTER TABLE orders ADD COLUMN store_updated_at TEXT;
