-- NULL user_id: an administrator token (the generated one, or the CLI's).
ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE CASCADE;
