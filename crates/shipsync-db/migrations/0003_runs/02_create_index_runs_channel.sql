CREATE INDEX runs_channel ON runs (connection_id, channel, id);
