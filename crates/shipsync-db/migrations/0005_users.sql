-- Web-UI users, their sessions, and API tokens that act as a user.
-- role: admin | staff | merchant. merchant_id: the merchant a Merchant user
-- belongs to, or the one merchant a Staff user is limited to (NULL: all).
-- No foreign key on merchant_id: deleting a merchant leaves its users
-- seeing nothing rather than failing.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    merchant_id   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- A session id is a random token given to the browser once; only its hash
-- is stored. csrf_token is echoed in every form of the session.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- NULL user_id: an administrator token (the generated one, or the CLI's).
ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX api_tokens_user ON api_tokens (user_id);
