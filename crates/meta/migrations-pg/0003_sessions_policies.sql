-- Web console sessions and automatic snapshot policies: SQLite's 0010_console_sessions.sql and
-- 0011_policies.sql in one step (see there for what each table holds). As in 0001: text
-- COLLATE "C", integers BIGINT, booleans BOOLEAN; WITHOUT ROWID has no PostgreSQL counterpart
-- (a primary key is an index either way).

CREATE TABLE console_sessions (
    token_hash TEXT COLLATE "C" PRIMARY KEY,  -- hex SHA-256 of the session cookie's value
    account    TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,               -- ms since the epoch
    last_seen  BIGINT NOT NULL                -- ms since the epoch; idle sessions are expired by it
);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen);

CREATE TABLE policies (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    time_points     TEXT COLLATE "C" NOT NULL,  -- JSON array of hours of the day (UTC), sorted
    weekdays        TEXT COLLATE "C" NOT NULL,  -- JSON array of ISO weekdays; [] with every_days
    every_days      BIGINT,                     -- every N days counted from create_time's UTC day
    retention_days  BIGINT,                     -- keep automatic points this many days …
    retention_count BIGINT,                     -- … or the last N per volume; both NULL: forever
    enabled         BOOLEAN NOT NULL,
    create_time     BIGINT NOT NULL,            -- ms since the epoch
    schedule_from   BIGINT NOT NULL,            -- ms; no slot before it fires
    UNIQUE (account, name)
);

-- A volume follows at most one policy.
CREATE TABLE policy_volumes (
    volume_id TEXT COLLATE "C" PRIMARY KEY,
    policy_id TEXT COLLATE "C" NOT NULL REFERENCES policies (id) ON DELETE CASCADE
);
CREATE INDEX policy_volumes_by_policy ON policy_volumes (policy_id);

-- One row per slot fired: inserted before any snapshot is taken (the claim).
CREATE TABLE policy_slots (
    policy_id  TEXT COLLATE "C" NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    slot       BIGINT NOT NULL,            -- the slot's time, ms since the epoch
    runner     TEXT COLLATE "C" NOT NULL,  -- the process that claimed it
    claimed_at BIGINT NOT NULL,
    job_id     TEXT COLLATE "C",           -- the snapshot job, once started
    PRIMARY KEY (policy_id, slot)
);

-- The automatic points each slot made: what retention may prune (never a manual point).
CREATE TABLE policy_snapshots (
    snapshot_id TEXT COLLATE "C" PRIMARY KEY,
    policy_id   TEXT COLLATE "C" NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    volume_id   TEXT COLLATE "C" NOT NULL,
    slot        BIGINT NOT NULL
);
CREATE INDEX policy_snapshots_by_policy ON policy_snapshots (policy_id, volume_id, slot);
