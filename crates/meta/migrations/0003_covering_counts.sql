-- The total count of a filtered list must not visit the table: each list index carries
-- `status` as a trailing column, so `status <> 'ceased'` (the default filter) is checked in the
-- index and COUNT(*) reads only the index (measured: 8.5 ms -> 1.7 ms for 5 000 matches).
DROP INDEX snapshots_account_time;
DROP INDEX snapshots_volume;
DROP INDEX snapshots_chain;
DROP INDEX snapshots_full;
DROP INDEX snapshots_instance;
DROP INDEX snapshots_name;
CREATE INDEX snapshots_account_time ON snapshots (account, create_time DESC, id DESC, status);
CREATE INDEX snapshots_volume ON snapshots (account, volume_id, create_time DESC, id DESC, status);
CREATE INDEX snapshots_chain ON snapshots (account, root_id, create_time DESC, id DESC, status);
CREATE INDEX snapshots_full ON snapshots (account, is_full, create_time DESC, id DESC, status);
CREATE INDEX snapshots_instance ON snapshots (account, instance_id, create_time DESC, id DESC, status) WHERE instance_id IS NOT NULL;
CREATE INDEX snapshots_name ON snapshots (account, name, create_time DESC, id DESC, status);
