-- A Shopify store's cost bucket as Shopify last described it
-- (`throttleStatus.maximumAvailable` and `restoreRate`), shared so that a
-- node that has not had an answer from the store yet reserves in the
-- shared bucket from its first call (issue 17). NULL: not described yet
-- (and always for Deposco keys, whose rate is fixed).
ALTER TABLE rate_budgets ADD COLUMN capacity DOUBLE PRECISION;
