-- How far the budget's waiting requests have moved so far (microseconds
-- of refill): the refunds of requests that ran for less than they
-- reserved, less what a floor pushed the budget out by (see
-- shipsync-db/src/budgets.rs). A request told to wait compares it with
-- the figure its own reservation returned, as its node last learned it
-- (from its own statements on the budget): the growth since is how much
-- sooner it may go (issue 17: never idle while the store's budget is
-- available).
ALTER TABLE rate_budgets ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0;
