-- PostgreSQL only: webhook bodies compressed with lz4 rather than the
-- default pglz, which took about a tenth of the server's CPU during a
-- burst of 4 KiB webhooks (BENCHMARKS.md, the eighth session); lz4 is
-- several times faster for a similar ratio on JSON. Only new rows are
-- affected. A server built without lz4 (or older than PostgreSQL 14)
-- keeps pglz: the statement is run through EXECUTE so that its refusal
-- (feature_not_supported; syntax_error before 14) is caught here rather
-- than failing the migration; any other error fails it, to be run again.
{POSTGRES ONLY}DO $$
BEGIN
    EXECUTE 'ALTER TABLE events ALTER COLUMN body SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'events.body keeps its compression: %', SQLERRM;
END
$$;
