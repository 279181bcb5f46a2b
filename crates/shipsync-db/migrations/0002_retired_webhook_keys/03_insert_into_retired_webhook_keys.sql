INSERT INTO retired_webhook_keys (key_hash, merchant_id, expires_at)
    SELECT old_key_hash, id, old_key_expires_at FROM merchants
    WHERE old_key_hash IS NOT NULL AND old_key_expires_at IS NOT NULL;
