-- Rotated-out webhook keys keep working for a grace period; several may be
-- in their grace period at once (rotating twice in a day).
CREATE TABLE retired_webhook_keys (
    key_hash    TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX retired_webhook_keys_merchant ON retired_webhook_keys (merchant_id);
INSERT INTO retired_webhook_keys (key_hash, merchant_id, expires_at)
    SELECT old_key_hash, id, old_key_expires_at FROM merchants
    WHERE old_key_hash IS NOT NULL AND old_key_expires_at IS NOT NULL;
DROP INDEX merchants_old_key;
ALTER TABLE merchants DROP COLUMN old_key_hash;
ALTER TABLE merchants DROP COLUMN old_key_expires_at;
