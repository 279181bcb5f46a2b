-- Deposco's order number (prefix + name without '#') and id, once sent.
ALTER TABLE orders ADD COLUMN warehouse_number TEXT;
