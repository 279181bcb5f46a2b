CREATE INDEX event_deliveries_subscription ON event_deliveries (subscription_id, id);
