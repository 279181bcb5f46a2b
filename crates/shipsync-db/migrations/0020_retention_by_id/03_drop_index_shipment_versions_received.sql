-- See 01: retention selects shipment versions by id range.
DROP INDEX IF EXISTS shipment_versions_received;
