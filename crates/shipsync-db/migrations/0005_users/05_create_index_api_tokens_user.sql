CREATE INDEX api_tokens_user ON api_tokens (user_id);
