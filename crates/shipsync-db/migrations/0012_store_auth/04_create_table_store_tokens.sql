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
