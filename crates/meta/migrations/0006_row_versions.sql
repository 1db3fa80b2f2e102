-- Optimistic concurrency (rows.rs `version`): every whole-row write of a volume, snapshot or
-- image names the version it read and bumps it, so a job that read a row before another job
-- changed it fails its commit (and retries from fresh rows) instead of writing stale columns
-- back. Existing rows start at 1; 0 is reserved for "a row the caller is creating".
ALTER TABLE volumes ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE snapshots ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE images ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
