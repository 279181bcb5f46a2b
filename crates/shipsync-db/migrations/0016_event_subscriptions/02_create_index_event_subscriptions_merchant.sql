CREATE INDEX event_subscriptions_merchant ON event_subscriptions (merchant_id);
