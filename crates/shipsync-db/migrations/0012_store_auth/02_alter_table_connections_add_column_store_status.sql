ALTER TABLE connections ADD COLUMN store_status TEXT NOT NULL DEFAULT 'ok';
