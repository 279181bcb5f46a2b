CREATE INDEX store_fulfillments_order ON store_fulfillments (store_order_id);
