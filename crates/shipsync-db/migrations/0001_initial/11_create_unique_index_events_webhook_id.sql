CREATE UNIQUE INDEX events_webhook_id ON events (merchant_id, webhook_id);
