-- A merchant whose warehouse (Deposco) refused its credentials (401/403):
-- kept until the next accepted call.
CREATE TABLE warehouse_refusals (
    merchant_id  TEXT PRIMARY KEY,
    refused_at   BIGINT NOT NULL,
    error        TEXT NOT NULL
);
