CREATE INDEX events_body_hash ON events (merchant_id, body_hash, received_at);
