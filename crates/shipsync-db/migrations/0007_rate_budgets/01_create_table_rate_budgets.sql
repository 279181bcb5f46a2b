-- Rate budgets shared by every node on one database (PostgreSQL; on SQLite,
-- always one node, budgets stay in process and this table stays empty).
-- One row per budget key (`deposco:{host}|{principal}`, `shopify:{host}`),
-- kept as GCRA: `tat` is the theoretical arrival time in Unix microseconds
-- on the database's clock, moved by one atomic statement per request (see
-- shipsync-db/src/budgets.rs). `last_wait` is the wait (microseconds, <= 0:
-- go now) the last step computed, returned to its caller.
-- UNLOGGED on PostgreSQL: one write per API request needs no WAL flush
-- (and holds the row lock for microseconds); after a crash the table is
-- empty, which only means every budget starts full again.

CREATE {UNLOGGED}TABLE rate_budgets (
    key       TEXT PRIMARY KEY,
    tat       BIGINT NOT NULL,
    last_wait BIGINT NOT NULL DEFAULT 0
);
