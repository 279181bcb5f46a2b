CREATE INDEX orders_connection ON orders (connection_id, id);
