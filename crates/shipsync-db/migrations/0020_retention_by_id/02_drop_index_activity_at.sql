-- See 01: retention selects activity by id range.
DROP INDEX IF EXISTS activity_at;
