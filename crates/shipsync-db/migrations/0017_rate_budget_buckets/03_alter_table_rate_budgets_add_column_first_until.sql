-- While the bucket is not described: until when (Unix microseconds on the
-- database's clock) one node's first call to the store is out; the others
-- wait for its answer rather than send unreserved calls of their own.
ALTER TABLE rate_budgets ADD COLUMN first_until BIGINT;
