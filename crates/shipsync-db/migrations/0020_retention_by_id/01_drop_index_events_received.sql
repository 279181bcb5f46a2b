-- SQLite: retention finds old rows by their id (a ULID that begins with
-- the time it was made; see shipsync-db/src/retention.rs), through the
-- primary key: an index on the time alone served only the daily retention
-- job, and every delivery paid for it (issue 17: 0.89–0.90× the CPU per
-- shipment at 50/s on one host without the three). PostgreSQL keeps them:
-- there ids compare in the database's collation, where some locales do
-- not sort them by time, and an alert's query reads this one.
{SQLITE ONLY}DROP INDEX IF EXISTS events_received;
