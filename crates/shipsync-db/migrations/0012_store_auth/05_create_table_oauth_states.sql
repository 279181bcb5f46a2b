-- The single-use `state` of an install link (its SHA-256, hex), bound to the
-- connection and the user who asked for the link.
CREATE TABLE oauth_states (
    state_hash    TEXT PRIMARY KEY,
    connection_id TEXT NOT NULL,
    user_id       TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
