-- Which events alert, for which merchants and connections, to which
-- channels, grouped how (doc_json: see shipsync_core::alerts::PolicyDoc).
CREATE TABLE alert_policies (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    doc_json    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
