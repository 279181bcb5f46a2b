-- Points per second, with `capacity`.
ALTER TABLE rate_budgets ADD COLUMN restore_rate DOUBLE PRECISION;
