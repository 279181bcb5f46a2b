-- The store order as last pulled (ship-to, shipping method, lines), JSON.
ALTER TABLE orders ADD COLUMN store_json TEXT;
