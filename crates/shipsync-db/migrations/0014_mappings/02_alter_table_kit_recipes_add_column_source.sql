-- Where a learned kit recipe came from: 'webhook' (a shipment's kit links,
-- by webhook or pull) or 'items' (Deposco's item data). A person's recipes
-- live in the mappings document and win over these.
ALTER TABLE kit_recipes ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
