CREATE TABLE channels (
    connection_id     TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    channel           TEXT NOT NULL,
    enabled           BIGINT NOT NULL DEFAULT 0,
    schedules_json    TEXT NOT NULL DEFAULT '[]',
    last_completed_at BIGINT,
    next_run_at       BIGINT,
    PRIMARY KEY (connection_id, channel)
);
