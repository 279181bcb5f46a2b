-- Every refund given back to the budget so far (microseconds of refill,
-- summed; see shipsync-db/src/budgets.rs). A request told to wait for its
-- slot compares it with the figure its own reservation returned: what was
-- given back since then (the requests ahead of it cost less than they
-- reserved) is how much sooner it may go, on whichever node it waits
-- (issue 17: never idle while the store's budget is available).
ALTER TABLE rate_budgets ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0;
