-- Automatic snapshot policies (issue 15): a schedule, a retention, the volumes bound to it,
-- and the slots the scheduler has claimed, so each slot fires exactly once across restarts
-- and across several servers on one data dir (the claim is the primary key's insert).
CREATE TABLE policies (
    id              TEXT PRIMARY KEY,
    account         TEXT NOT NULL,
    name            TEXT NOT NULL,
    time_points     TEXT NOT NULL,     -- JSON array of hours of the day (UTC), 0..=23, sorted
    weekdays        TEXT NOT NULL,     -- JSON array of ISO weekdays 1 (Monday)..=7; [] with every_days
    every_days      INTEGER,           -- every N days counted from the UTC day of create_time
    retention_days  INTEGER,           -- keep automatic points this many days …
    retention_count INTEGER,           -- … or the last N per volume; both NULL: forever
    enabled         INTEGER NOT NULL,
    create_time     INTEGER NOT NULL,  -- ms since the epoch
    schedule_from   INTEGER NOT NULL,  -- ms; no slot before it fires (moved when the schedule changes)
    UNIQUE (account, name)
);

-- A volume follows at most one policy (ECS and CBS bind a disk to one).
CREATE TABLE policy_volumes (
    volume_id TEXT PRIMARY KEY,
    policy_id TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE
);
CREATE INDEX policy_volumes_by_policy ON policy_volumes(policy_id);

-- One row per slot fired: inserted before any snapshot is taken (the claim).
CREATE TABLE policy_slots (
    policy_id  TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    slot       INTEGER NOT NULL,       -- the slot's time, ms since the epoch
    runner     TEXT NOT NULL,          -- the process that claimed it
    claimed_at INTEGER NOT NULL,
    job_id     TEXT,                   -- the snapshot job, once started
    PRIMARY KEY (policy_id, slot)
) WITHOUT ROWID;

-- The automatic points each slot made: what retention may prune (never a manual point).
CREATE TABLE policy_snapshots (
    snapshot_id TEXT PRIMARY KEY,
    policy_id   TEXT NOT NULL REFERENCES policies(id) ON DELETE CASCADE,
    volume_id   TEXT NOT NULL,
    slot        INTEGER NOT NULL
);
CREATE INDEX policy_snapshots_by_policy ON policy_snapshots(policy_id, volume_id, slot);
