-- A subject whose job gave up after the engine's max_attempts (not one
-- refused for good at once): kind 'shipment' or 'order' (active while the
-- subject is in error), or any other kind a flow records (active until it
-- clears the row).
CREATE TABLE retries_exhausted (
    subject_id     TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    merchant_id    TEXT,
    connection_id  TEXT,
    error          TEXT NOT NULL,
    at             BIGINT NOT NULL
);
