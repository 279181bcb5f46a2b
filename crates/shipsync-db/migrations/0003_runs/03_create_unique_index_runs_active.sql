-- At most one queued or running run per channel, across nodes.
CREATE UNIQUE INDEX runs_active ON runs (connection_id, channel) WHERE status IN ('queued', 'running');
