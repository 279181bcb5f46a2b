-- API tokens: a recognisable prefix (the start of the token, shown in lists
-- so a person can tell tokens apart; NULL for tokens made before), when it
-- was last used (updated at most once a minute), and an optional expiry.
ALTER TABLE api_tokens ADD COLUMN prefix TEXT;
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- Staff "all merchants" is an explicit flag (0/1), no longer an empty
-- user_merchants list: removing a limited Staff user's last merchant leaves
-- them seeing nothing. Today's Staff users without a limit keep seeing every
-- merchant.
ALTER TABLE users ADD COLUMN all_merchants BIGINT NOT NULL DEFAULT 0;
UPDATE users SET all_merchants = 1
    WHERE role = 'staff'
      AND NOT EXISTS (SELECT 1 FROM user_merchants um WHERE um.user_id = users.id);
