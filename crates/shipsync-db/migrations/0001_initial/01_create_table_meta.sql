-- One schema for SQLite and PostgreSQL. {BLOB} becomes BLOB or BYTEA.
-- Times are Unix microseconds (BIGINT); flags are 0/1 BIGINT.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
