CREATE INDEX connections_merchant ON connections (merchant_id);
