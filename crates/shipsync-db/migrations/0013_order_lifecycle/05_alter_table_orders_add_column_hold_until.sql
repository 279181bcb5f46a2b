-- Until when a held order waits (its hold period, microseconds); NULL: no
-- hold period (a tag or a store hold waits for a store change).
ALTER TABLE orders ADD COLUMN hold_until BIGINT;
