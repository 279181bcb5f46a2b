CREATE INDEX events_outcome ON events (outcome, id);
