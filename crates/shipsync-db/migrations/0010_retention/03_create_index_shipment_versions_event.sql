CREATE INDEX shipment_versions_event ON shipment_versions (event_id);
