-- Alerts (issue 16, part A). Where alert messages go: an email address list
-- over SMTP or an HTTP webhook (Slack or plain JSON). config_json holds the
-- kind's settings without secrets; the SMTP password is sealed apart.
CREATE TABLE notification_channels (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    smtp_password {BLOB},
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
