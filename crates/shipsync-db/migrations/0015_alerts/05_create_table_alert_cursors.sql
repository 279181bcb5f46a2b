-- Per (policy, channel): the alert changes up to sent_through were sent;
-- the last success and the last error; failures in a row (the retry delay)
-- and when the next try is due after one.
CREATE TABLE alert_cursors (
    policy_id     TEXT NOT NULL,
    channel_id    TEXT NOT NULL,
    sent_through  BIGINT NOT NULL,
    last_sent_at  BIGINT,
    last_error    TEXT,
    failures      BIGINT NOT NULL DEFAULT 0,
    retry_at      BIGINT,
    PRIMARY KEY (policy_id, channel_id)
);
