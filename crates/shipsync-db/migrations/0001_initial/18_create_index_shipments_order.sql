CREATE INDEX shipments_order ON shipments (order_id, received_at);
