-- disksnap metadata, version 1. Times are Unix milliseconds (UTC); states are the service's
-- internal words (see disksnap-service), never a vendor's.

CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    zone        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    create_time INTEGER NOT NULL
);
CREATE INDEX instances_account ON instances (account, create_time DESC);

CREATE TABLE volumes (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    zone        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    size        INTEGER NOT NULL,          -- bytes
    kind        TEXT NOT NULL,             -- system | data
    status      TEXT NOT NULL,             -- creating | available | in-use | deleted
    transition  TEXT NOT NULL DEFAULT '',  -- '' | snapshotting | rolling-back | resizing | ...
    instance_id TEXT,
    path        TEXT NOT NULL,
    head_root   TEXT,                      -- root snapshot of the volume's head chain
    create_time INTEGER NOT NULL,
    status_time INTEGER NOT NULL
);
CREATE INDEX volumes_account ON volumes (account, create_time DESC, id DESC);
CREATE INDEX volumes_instance ON volumes (instance_id);

CREATE TABLE snapshots (
    id             TEXT PRIMARY KEY,
    account        TEXT NOT NULL,
    zone           TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT '',
    volume_id      TEXT NOT NULL,
    volume_size    INTEGER NOT NULL,
    volume_kind    TEXT NOT NULL,
    instance_id    TEXT,
    is_full        INTEGER NOT NULL,
    root_id        TEXT NOT NULL,
    parent_id      TEXT,
    is_head        INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL,          -- creating | available | deleted | ceased
    transition     TEXT NOT NULL DEFAULT '',
    is_taken       INTEGER NOT NULL DEFAULT 0,
    progress       INTEGER NOT NULL DEFAULT 0,
    snapshot_time  INTEGER NOT NULL,
    create_time    INTEGER NOT NULL,
    status_time    INTEGER NOT NULL,
    deleted_time   INTEGER,
    expire_time    INTEGER,                -- released when this passes (retention days)
    size           INTEGER NOT NULL DEFAULT 0,  -- stored bytes this point adds to its chain
    origin         TEXT NOT NULL DEFAULT 'user',
    retention_days INTEGER,
    encrypted      INTEGER NOT NULL DEFAULT 0,
    used_by_images  INTEGER NOT NULL DEFAULT 0,
    used_by_volumes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX snapshots_account_time ON snapshots (account, create_time DESC, id DESC);
CREATE INDEX snapshots_volume ON snapshots (account, volume_id, create_time DESC);
CREATE INDEX snapshots_root ON snapshots (root_id, snapshot_time);
CREATE INDEX snapshots_status ON snapshots (account, status, create_time DESC);
CREATE INDEX snapshots_instance ON snapshots (account, instance_id) WHERE instance_id IS NOT NULL;
CREATE INDEX snapshots_name ON snapshots (account, name);
CREATE INDEX snapshots_deleted ON snapshots (deleted_time) WHERE deleted_time IS NOT NULL;
CREATE INDEX snapshots_expire ON snapshots (expire_time) WHERE expire_time IS NOT NULL;

CREATE TABLE snapshot_metadata (
    snapshot_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);

CREATE TABLE tags (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL DEFAULT '',
    create_time INTEGER NOT NULL
);
CREATE INDEX tags_account ON tags (account, key, value);

CREATE TABLE resource_tags (
    tag_id      TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    PRIMARY KEY (tag_id, resource_id)
);
CREATE INDEX resource_tags_resource ON resource_tags (resource_id);

CREATE TABLE images (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    zone        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    snapshot_id TEXT NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    status      TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    status_time INTEGER NOT NULL
);
CREATE INDEX images_account ON images (account, create_time DESC);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL,
    action      TEXT NOT NULL,
    status      TEXT NOT NULL,             -- pending | working | successful | failed
    resources   TEXT NOT NULL,             -- JSON array of resource ids
    params      TEXT NOT NULL DEFAULT '{}',-- JSON: what a resumed job needs
    error       TEXT,
    runner      TEXT,                      -- the process running it (see service::runner)
    create_time INTEGER NOT NULL,
    status_time INTEGER NOT NULL
);
CREATE INDEX jobs_account ON jobs (account, create_time DESC);
CREATE INDEX jobs_open ON jobs (status) WHERE status IN ('pending', 'working');
