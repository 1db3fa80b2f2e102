-- Snapshot groups (issue 15): several volumes captured at one snapshot time as one object
-- with its own id. The member points are ordinary snapshots; the group keeps their ids (and
-- their volumes') as a JSON array, written in the same batch as the points it is made with.
-- Its status is the members' (read from their rows), so it is never written twice.
CREATE TABLE snapshot_groups (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    zone        TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    instance_id TEXT,                  -- the instance it was taken of, if one was named
    members     TEXT NOT NULL,         -- JSON array of {"snapshot": id, "volume": id}
    transition  TEXT NOT NULL,         -- '' or 'deleting' / 'rolling-back' while a job runs
    create_time INTEGER NOT NULL,      -- ms since the epoch (the members' snapshot time)
    status_time INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX snapshot_groups_by_account ON snapshot_groups(account, create_time, id);
