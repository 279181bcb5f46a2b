-- The Shopify app's API secret key (sealed) that signs order webhooks, for a
-- connection with a legacy access token (the other kinds of store
-- authentication sign with their client secret).
ALTER TABLE connections ADD COLUMN store_api_secret {BLOB};
