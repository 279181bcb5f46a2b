-- One condition of one policy for one scope ('installation',
-- 'merchant:<id>', 'connection:<id>'), from when it was seen until none of
-- its subjects is in the condition any more. subjects_json: the records seen
-- in the condition during the alert, each with when it was added. grown_at:
-- when subjects were last added after it opened.
CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    policy_id        TEXT NOT NULL,
    event            TEXT NOT NULL,
    scope_key        TEXT NOT NULL,
    merchant_id      TEXT,
    connection_id    TEXT,
    subjects_json    TEXT NOT NULL,
    status           TEXT NOT NULL,
    summary          TEXT NOT NULL,
    opened_at        BIGINT NOT NULL,
    grown_at         BIGINT,
    acknowledged_at  BIGINT,
    acknowledged_by  TEXT,
    closed_at        BIGINT,
    last_seen_at     BIGINT NOT NULL
);
