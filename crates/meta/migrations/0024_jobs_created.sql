-- Finished jobs older than the configured job retention are purged (MetaStore::purge_jobs): the
-- purge walks the jobs by creation time, oldest first. Jobs are created once and never change
-- their create_time, so this index costs each job one insert.
CREATE INDEX jobs_created ON jobs (create_time);
