-- Orders what the statements on a budget return: each sets it above its
-- last value and at least to now (Unix microseconds on the database's
-- clock), so that a node keeps the newest `refunded` it was told even when
-- it handles two answers out of order (`refunded` can also go down), and a
-- table emptied by a crash (UNLOGGED) starts above everything seen before.
ALTER TABLE rate_budgets ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
