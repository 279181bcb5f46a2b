-- The daily retention job looks rows up by age, and an event's shipments
-- through their versions.
CREATE INDEX events_received ON events (received_at);
