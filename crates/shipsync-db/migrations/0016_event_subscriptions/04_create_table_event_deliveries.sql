-- One delivery of an event to one subscription. `state` is 'pending',
-- 'delivered' or 'failed'; `tries` counts the failed attempts since it was
-- queued (or replayed), which places it in the retry schedule. Deliveries
-- of one subject (shipment, order) to one subscription go in id order.
CREATE TABLE event_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    state           TEXT NOT NULL,
    tries           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
