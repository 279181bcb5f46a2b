CREATE INDEX orders_name ON orders (connection_id, name);
