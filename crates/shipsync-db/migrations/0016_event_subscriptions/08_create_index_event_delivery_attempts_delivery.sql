CREATE INDEX event_delivery_attempts_delivery ON event_delivery_attempts (delivery_id, at);
