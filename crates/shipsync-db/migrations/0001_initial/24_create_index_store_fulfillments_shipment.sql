CREATE INDEX store_fulfillments_shipment ON store_fulfillments (shipment_id);
