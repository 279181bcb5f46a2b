CREATE TABLE shipment_versions (
    id           TEXT PRIMARY KEY,
    shipment_id  TEXT NOT NULL,
    event_id     TEXT,
    source       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    version_json TEXT NOT NULL
);
