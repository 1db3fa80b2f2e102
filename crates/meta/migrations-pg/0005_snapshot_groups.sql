-- Snapshot groups: SQLite's 0013_snapshot_groups.sql (see there for what the table holds).
CREATE TABLE snapshot_groups (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account     TEXT COLLATE "C" NOT NULL,
    zone        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    instance_id TEXT COLLATE "C",
    members     TEXT COLLATE "C" NOT NULL,  -- JSON array of {"snapshot": id, "volume": id}
    transition  TEXT COLLATE "C" NOT NULL,  -- '' or 'deleting' / 'rolling-back' while a job runs
    create_time BIGINT NOT NULL,
    status_time BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX snapshot_groups_by_account ON snapshot_groups (account, create_time, id);
