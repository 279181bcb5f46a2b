CREATE INDEX shipments_status ON shipments (status, id);
