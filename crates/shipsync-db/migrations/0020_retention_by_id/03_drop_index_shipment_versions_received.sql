-- See 01: on SQLite retention selects shipment versions by id range.
{SQLITE ONLY}DROP INDEX IF EXISTS shipment_versions_received;
