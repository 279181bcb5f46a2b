CREATE INDEX shipments_connection ON shipments (connection_id, id);
