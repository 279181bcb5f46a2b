-- What shipsync last knew of the store's order webhook subscriptions
-- (subscribed topics, their ids, when checked, the last error). Kept apart
-- from the settings: checking them is not an edit of the connection.
ALTER TABLE connections ADD COLUMN order_webhooks_json TEXT;
