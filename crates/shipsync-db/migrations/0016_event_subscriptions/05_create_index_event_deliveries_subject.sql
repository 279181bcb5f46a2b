CREATE INDEX event_deliveries_subject ON event_deliveries (subscription_id, subject_id, id);
