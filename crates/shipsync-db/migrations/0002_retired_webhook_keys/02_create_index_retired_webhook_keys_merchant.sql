CREATE INDEX retired_webhook_keys_merchant ON retired_webhook_keys (merchant_id);
