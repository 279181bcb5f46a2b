-- Rotated-out webhook keys keep working for a grace period; several may be
-- in their grace period at once (rotating twice in a day).
CREATE TABLE retired_webhook_keys (
    key_hash    TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
