CREATE INDEX shipment_versions_shipment ON shipment_versions (shipment_id, id);
