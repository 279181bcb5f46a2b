-- latency.high reads the shipments completed in its window.
CREATE INDEX shipments_completed ON shipments (completed_at);
