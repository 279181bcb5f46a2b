CREATE INDEX events_merchant ON events (merchant_id, id);
