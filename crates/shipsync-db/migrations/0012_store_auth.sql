-- Store authentication (issue 12). A connection's store authenticates with a
-- legacy access token (connections.store_token, as before), or with an app's
-- client id (in store_json) and client secret (sealed here), whose tokens
-- live in store_tokens. store_status is 'ok' or 'reconnect_needed' (the store
-- refused the credentials; store_error says why).
ALTER TABLE connections ADD COLUMN store_client_secret {BLOB};
ALTER TABLE connections ADD COLUMN store_status TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE connections ADD COLUMN store_error TEXT;

-- The token an app's credentials obtained (sealed), kept apart from the
-- connection so that refreshing it does not count as editing the
-- connection. refreshing_until is the lease of the one worker, on any node,
-- refreshing it; generation counts the tokens obtained.
CREATE TABLE store_tokens (
    connection_id      TEXT PRIMARY KEY,
    access_token       {BLOB},
    obtained_at        BIGINT,
    expires_at         BIGINT,
    refresh_token      {BLOB},
    refresh_expires_at BIGINT,
    scopes             TEXT,
    refreshing_until   BIGINT,
    generation         BIGINT NOT NULL DEFAULT 0
);

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
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);
