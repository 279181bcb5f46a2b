CREATE TABLE activity (
    id         TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL
);
