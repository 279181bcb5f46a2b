-- Channel runs (scheduled, run-now, CLI) and the pull cursor of a channel.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    channel       TEXT NOT NULL,
    status        TEXT NOT NULL,
    trigger_kind  TEXT NOT NULL,
    slot_at       BIGINT,
    since_at      BIGINT,
    page_href     TEXT,
    counts_json   TEXT NOT NULL DEFAULT '{}',
    error         TEXT,
    created_at    BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT
);
