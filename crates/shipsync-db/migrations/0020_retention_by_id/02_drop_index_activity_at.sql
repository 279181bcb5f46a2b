-- See 01: on SQLite retention selects activity by id range.
{SQLITE ONLY}DROP INDEX IF EXISTS activity_at;
