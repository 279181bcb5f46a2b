-- The outbox: one row per event (its id, `msg_…`, is the `webhook-id`),
-- written in the transaction that changed the shipment's or order's state.
-- `body` is the JSON sent, byte for byte (a replay signs the same bytes).
CREATE TABLE outbound_events (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    type        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
