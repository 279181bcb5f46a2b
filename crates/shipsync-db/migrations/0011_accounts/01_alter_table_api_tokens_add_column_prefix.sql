-- API tokens: a recognisable prefix (the start of the token, shown in lists
-- so a person can tell tokens apart; NULL for tokens made before), when it
-- was last used (updated at most once a minute), and an optional expiry.
ALTER TABLE api_tokens ADD COLUMN prefix TEXT;
