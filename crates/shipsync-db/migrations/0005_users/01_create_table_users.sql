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
