-- Every list filter gets an index whose leading columns are its equalities and whose tail is
-- the list order (create_time DESC, id DESC), so a filtered page of 100 reads about 100 index
-- entries and never sorts, whatever the planner's statistics say.
DROP INDEX snapshots_volume;
DROP INDEX snapshots_status;
DROP INDEX snapshots_instance;
DROP INDEX snapshots_name;
CREATE INDEX snapshots_volume ON snapshots (account, volume_id, create_time DESC, id DESC);
CREATE INDEX snapshots_status ON snapshots (account, status, create_time DESC, id DESC);
CREATE INDEX snapshots_chain ON snapshots (account, root_id, create_time DESC, id DESC);
CREATE INDEX snapshots_full ON snapshots (account, is_full, create_time DESC, id DESC);
CREATE INDEX snapshots_instance ON snapshots (account, instance_id, create_time DESC, id DESC) WHERE instance_id IS NOT NULL;
CREATE INDEX snapshots_name ON snapshots (account, name, create_time DESC, id DESC);
