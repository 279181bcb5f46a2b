CREATE TABLE merchants (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    warehouse_json      TEXT NOT NULL,
    warehouse_secrets   {BLOB},
    webhooks_enabled    BIGINT NOT NULL DEFAULT 0,
    shared_secret       {BLOB},
    webhook_key         {BLOB} NOT NULL,
    webhook_key_hash    TEXT NOT NULL UNIQUE,
    old_key_hash        TEXT,
    old_key_expires_at  BIGINT,
    kit_policy          TEXT NOT NULL,
    carrier_overrides   TEXT NOT NULL DEFAULT '{}',
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
