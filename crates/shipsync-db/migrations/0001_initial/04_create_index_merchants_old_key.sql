CREATE INDEX merchants_old_key ON merchants (old_key_hash);
