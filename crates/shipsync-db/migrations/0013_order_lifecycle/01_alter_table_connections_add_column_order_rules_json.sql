-- The order lifecycle (issue 14). A connection's import rules for store
-- orders (NULL: the defaults, see shipsync_core::order_rules).
ALTER TABLE connections ADD COLUMN order_rules_json TEXT;
