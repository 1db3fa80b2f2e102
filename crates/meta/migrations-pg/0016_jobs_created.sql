-- See the SQLite migration 0024_jobs_created.sql: finished jobs past their retention are
-- purged oldest first.
CREATE INDEX jobs_created ON jobs (create_time);
