-- Each attempt of a delivery: when, the answer's status (NULL: no answer),
-- how long it took, the start of the answer (at most 1 KiB of UTF-8) and
-- the error (no answer, or not a 2xx).
CREATE TABLE event_delivery_attempts (
    id          TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT NOT NULL,
    excerpt     TEXT,
    error       TEXT
);
