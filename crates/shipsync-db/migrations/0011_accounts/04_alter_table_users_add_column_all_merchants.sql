-- Staff "all merchants" is an explicit flag (0/1), no longer an empty
-- user_merchants list: removing a limited Staff user's last merchant leaves
-- them seeing nothing. Today's Staff users without a limit keep seeing every
-- merchant.
ALTER TABLE users ADD COLUMN all_merchants BIGINT NOT NULL DEFAULT 0;
