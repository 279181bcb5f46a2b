ALTER TABLE connections ADD COLUMN store_error TEXT;
