-- The snapshot a volume was restored from (Cinder shows it as `snapshot_id`); before, the
-- OpenStack dialect kept it in memory and a restart forgot it.
ALTER TABLE volumes ADD COLUMN source_snapshot TEXT;
