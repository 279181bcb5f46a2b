ALTER TABLE channels ADD COLUMN cursor_at BIGINT;
