ALTER TABLE merchants DROP COLUMN old_key_hash;
