CREATE INDEX shipment_versions_received ON shipment_versions (received_at);
