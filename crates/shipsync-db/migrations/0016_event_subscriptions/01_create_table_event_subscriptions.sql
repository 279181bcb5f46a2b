-- Outbound events (issue 16): a merchant's subscriptions. `events` holds the
-- event types, comma-separated; `secret` is the Standard Webhooks key,
-- sealed; `previous_secret` the one it replaced, still signing until
-- `previous_until` (a rotation's grace). `status` is 'active' or 'failing'
-- (a delivery exhausted its retries at `failing_since`).
CREATE TABLE event_subscriptions (
    id              TEXT PRIMARY KEY,
    merchant_id     TEXT NOT NULL,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    enabled         BIGINT NOT NULL DEFAULT 1,
    secret          {BLOB} NOT NULL,
    previous_secret {BLOB},
    previous_until  BIGINT,
    status          TEXT NOT NULL DEFAULT 'active',
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
