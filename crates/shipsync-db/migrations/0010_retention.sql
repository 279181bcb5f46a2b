-- The daily retention job looks rows up by age, and an event's shipments
-- through their versions.
CREATE INDEX events_received ON events (received_at);
CREATE INDEX activity_at ON activity (at);
CREATE INDEX shipment_versions_event ON shipment_versions (event_id);
CREATE INDEX shipment_versions_received ON shipment_versions (received_at);
