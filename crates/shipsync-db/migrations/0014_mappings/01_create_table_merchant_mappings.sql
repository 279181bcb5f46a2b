-- A merchant's mappings (issue 15): one JSON document per merchant (see
-- shipsync_core::mappings). No row: the built-in rules of a new merchant,
-- with the carriers of merchants.carrier_overrides.
CREATE TABLE merchant_mappings (
    merchant_id TEXT PRIMARY KEY,
    doc_json    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT
);
