CREATE INDEX orders_warehouse_number ON orders (warehouse_number);
