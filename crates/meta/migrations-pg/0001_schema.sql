-- disksnap metadata on PostgreSQL: the schema of the SQLite migrations 0001-0008
-- (crates/meta/migrations/) in one step, same tables, columns, indexes and trigger-kept counts.
-- Times are Unix milliseconds (UTC); states are the service's internal words.
--
-- What differs from the SQLite text, and why:
-- - Every TEXT column is COLLATE "C": SQLite compares text byte by byte, and ids order the
--   lists (`ORDER BY create_time DESC, id DESC`) and their keyset cursors; a locale collation
--   would order and page them differently from SQLite and from one server to the next.
-- - Booleans are BOOLEAN (SQLite keeps 0/1), integers BIGINT (Rust's i64).
-- - Search words use a pg_trgm GIN index over id, name and description (SQLite: an FTS5 trigram
--   table kept by the commit); PostgreSQL keeps an expression index itself.
-- - Triggers are PL/pgSQL functions; a missing count group is added by an upsert.
-- - `offset` is a reserved word here: quoted.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE instances (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account     TEXT COLLATE "C" NOT NULL,
    zone        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL DEFAULT '',
    create_time BIGINT NOT NULL
);
CREATE INDEX instances_account ON instances (account, create_time DESC);

CREATE TABLE volumes (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    zone            TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL DEFAULT '',
    description     TEXT COLLATE "C" NOT NULL DEFAULT '',
    size            BIGINT NOT NULL,                      -- bytes
    kind            TEXT COLLATE "C" NOT NULL,            -- system | data
    status          TEXT COLLATE "C" NOT NULL,            -- creating | available | in-use | deleted
    transition      TEXT COLLATE "C" NOT NULL DEFAULT '', -- '' | snapshotting | rolling-back | ...
    instance_id     TEXT COLLATE "C",
    path            TEXT COLLATE "C" NOT NULL,
    head_root       TEXT COLLATE "C",                     -- root snapshot of the volume's head chain
    create_time     BIGINT NOT NULL,
    status_time     BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1,            -- optimistic concurrency (rows.rs)
    source_snapshot TEXT COLLATE "C"                      -- the snapshot it was restored from
);
CREATE INDEX volumes_account ON volumes (account, create_time DESC, id DESC);
CREATE INDEX volumes_instance ON volumes (instance_id);

CREATE TABLE snapshots (
    id              TEXT COLLATE "C" PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    zone            TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL DEFAULT '',
    description     TEXT COLLATE "C" NOT NULL DEFAULT '',
    volume_id       TEXT COLLATE "C" NOT NULL,
    volume_size     BIGINT NOT NULL,
    volume_kind     TEXT COLLATE "C" NOT NULL,
    instance_id     TEXT COLLATE "C",
    is_full         BOOLEAN NOT NULL,
    root_id         TEXT COLLATE "C" NOT NULL,
    parent_id       TEXT COLLATE "C",
    is_head         BOOLEAN NOT NULL DEFAULT FALSE,
    status          TEXT COLLATE "C" NOT NULL,            -- creating | available | deleted | ceased
    transition      TEXT COLLATE "C" NOT NULL DEFAULT '',
    is_taken        BOOLEAN NOT NULL DEFAULT FALSE,
    progress        BIGINT NOT NULL DEFAULT 0,
    snapshot_time   BIGINT NOT NULL,
    create_time     BIGINT NOT NULL,
    status_time     BIGINT NOT NULL,
    deleted_time    BIGINT,
    expire_time     BIGINT,                               -- released when this passes
    size            BIGINT NOT NULL DEFAULT 0,            -- stored bytes this point adds to its chain
    origin          TEXT COLLATE "C" NOT NULL DEFAULT 'user',
    retention_days  BIGINT,
    encrypted       BOOLEAN NOT NULL DEFAULT FALSE,
    used_by_images  BIGINT NOT NULL DEFAULT 0,
    used_by_volumes BIGINT NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL DEFAULT 1
);
-- Every list filter has an index whose leading columns are its equalities and whose tail is the
-- list order, with `status` last so the default `status <> 'ceased'` is checked in the index
-- (SQLite 0002 and 0003).
CREATE INDEX snapshots_account_time ON snapshots (account, create_time DESC, id DESC, status);
CREATE INDEX snapshots_volume ON snapshots (account, volume_id, create_time DESC, id DESC, status);
CREATE INDEX snapshots_chain ON snapshots (account, root_id, create_time DESC, id DESC, status);
CREATE INDEX snapshots_full ON snapshots (account, is_full, create_time DESC, id DESC, status);
CREATE INDEX snapshots_instance ON snapshots (account, instance_id, create_time DESC, id DESC, status)
    WHERE instance_id IS NOT NULL;
CREATE INDEX snapshots_name ON snapshots (account, name, create_time DESC, id DESC, status);
CREATE INDEX snapshots_status ON snapshots (account, status, create_time DESC, id DESC);
CREATE INDEX snapshots_deleted ON snapshots (deleted_time) WHERE deleted_time IS NOT NULL;
CREATE INDEX snapshots_expire ON snapshots (expire_time) WHERE expire_time IS NOT NULL;
-- Chain totals read the index only (SQLite 0004 §3).
CREATE INDEX snapshots_root ON snapshots (root_id, snapshot_time, status, size);
-- Search words (SQLite 0005): the trigrams of id, name and description in one expression (the
-- same text `postgres::sql::SEARCH_TEXT` matches); the exact per-column conditions stay in the
-- query and decide.
CREATE INDEX snapshots_search ON snapshots
    USING gin ((id || chr(10) || name || chr(10) || description) gin_trgm_ops);

CREATE TABLE snapshot_metadata (
    snapshot_id TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);

CREATE TABLE tags (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account     TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL DEFAULT '',
    create_time BIGINT NOT NULL
);
CREATE INDEX tags_account ON tags (account, key, value);

CREATE TABLE resource_tags (
    tag_id      TEXT COLLATE "C" NOT NULL,
    resource_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tag_id, resource_id)
);
CREATE INDEX resource_tags_resource ON resource_tags (resource_id);

CREATE TABLE images (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account     TEXT COLLATE "C" NOT NULL,
    zone        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL DEFAULT '',
    snapshot_id TEXT COLLATE "C" NOT NULL,
    path        TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    create_time BIGINT NOT NULL,
    status_time BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX images_account ON images (account, create_time DESC);

CREATE TABLE jobs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account     TEXT COLLATE "C" NOT NULL,
    action      TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,              -- pending | working | successful | failed
    resources   TEXT COLLATE "C" NOT NULL,              -- JSON array of resource ids
    params      TEXT COLLATE "C" NOT NULL DEFAULT '{}', -- JSON: what a resumed job needs
    error       TEXT COLLATE "C",
    runner      TEXT COLLATE "C",                       -- the process running it
    create_time BIGINT NOT NULL,
    status_time BIGINT NOT NULL
);
CREATE INDEX jobs_account ON jobs (account, create_time DESC);
CREATE INDEX jobs_open ON jobs (status) WHERE status IN ('pending', 'working');

-- Snapshot list totals (SQLite 0004): counts per group of the unselective filters' columns,
-- kept by triggers in the same transaction as the row change.
CREATE TABLE snapshot_counts (
    account     TEXT COLLATE "C" NOT NULL,
    zone        TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    is_full     BOOLEAN NOT NULL,
    origin      TEXT COLLATE "C" NOT NULL,
    volume_kind TEXT COLLATE "C" NOT NULL,
    encrypted   BOOLEAN NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (account, zone, status, is_full, origin, volume_kind, encrypted)
);

CREATE FUNCTION snapshot_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE snapshot_counts SET n = n - 1
            WHERE account = OLD.account AND zone = OLD.zone AND status = OLD.status AND is_full = OLD.is_full
              AND origin = OLD.origin AND volume_kind = OLD.volume_kind AND encrypted = OLD.encrypted;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO snapshot_counts (account, zone, status, is_full, origin, volume_kind, encrypted, n)
            VALUES (NEW.account, NEW.zone, NEW.status, NEW.is_full, NEW.origin, NEW.volume_kind, NEW.encrypted, 1)
            ON CONFLICT (account, zone, status, is_full, origin, volume_kind, encrypted)
            DO UPDATE SET n = snapshot_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER snapshot_counts_insert AFTER INSERT ON snapshots
    FOR EACH ROW EXECUTE FUNCTION snapshot_counts_keep();
CREATE TRIGGER snapshot_counts_delete AFTER DELETE ON snapshots
    FOR EACH ROW EXECUTE FUNCTION snapshot_counts_keep();
CREATE TRIGGER snapshot_counts_update AFTER UPDATE ON snapshots
    FOR EACH ROW
    WHEN ((OLD.account, OLD.zone, OLD.status, OLD.is_full, OLD.origin, OLD.volume_kind, OLD.encrypted)
          IS DISTINCT FROM (NEW.account, NEW.zone, NEW.status, NEW.is_full, NEW.origin, NEW.volume_kind, NEW.encrypted))
    EXECUTE FUNCTION snapshot_counts_keep();

-- The list generation (SQLite 0004 §2): moves on every change a snapshot list filter can see,
-- so a count cached with the generation it was taken at is exact while it stands.
CREATE TABLE list_generation (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    gen BIGINT NOT NULL
);
INSERT INTO list_generation (id, gen) VALUES (0, 0);

CREATE FUNCTION list_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE list_generation SET gen = gen + 1 WHERE id = 0;
    RETURN NULL;
END;
$$;
-- Once per statement, not per row: one bump tells every cached count it is stale.
CREATE TRIGGER list_generation_snapshot_insert AFTER INSERT ON snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION list_generation_bump();
CREATE TRIGGER list_generation_snapshot_delete AFTER DELETE ON snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION list_generation_bump();
CREATE TRIGGER list_generation_snapshot_update AFTER UPDATE ON snapshots
    FOR EACH ROW
    WHEN ((OLD.id, OLD.account, OLD.zone, OLD.name, OLD.description, OLD.volume_id, OLD.volume_kind,
           OLD.instance_id, OLD.is_full, OLD.root_id, OLD.status, OLD.create_time, OLD.origin, OLD.encrypted,
           OLD.used_by_images, OLD.used_by_volumes)
          IS DISTINCT FROM
          (NEW.id, NEW.account, NEW.zone, NEW.name, NEW.description, NEW.volume_id, NEW.volume_kind,
           NEW.instance_id, NEW.is_full, NEW.root_id, NEW.status, NEW.create_time, NEW.origin, NEW.encrypted,
           NEW.used_by_images, NEW.used_by_volumes))
    EXECUTE FUNCTION list_generation_bump();
CREATE TRIGGER list_generation_bind AFTER INSERT ON resource_tags
    FOR EACH STATEMENT EXECUTE FUNCTION list_generation_bump();
CREATE TRIGGER list_generation_unbind AFTER DELETE ON resource_tags
    FOR EACH STATEMENT EXECUTE FUNCTION list_generation_bump();
CREATE TRIGGER list_generation_tag_update AFTER UPDATE ON tags
    FOR EACH STATEMENT EXECUTE FUNCTION list_generation_bump();

-- The engine's chunk index (SQLite 0008): digest -> pack, offset, length. A cache of the packs'
-- trailers (`disksnap repair --rebuild-index` refills it).
CREATE TABLE packs (
    id        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name      TEXT COLLATE "C" NOT NULL UNIQUE, -- 32 hex digits; the object is packs/<2>/<name>.pack
    size      BIGINT NOT NULL,                  -- object bytes (frames + trailer)
    doomed_at BIGINT                            -- ms since the epoch when GC found it empty
);

CREATE TABLE chunk_index (
    digest   BYTEA PRIMARY KEY,                 -- BLAKE3 of the raw chunk, 32 bytes
    pack_id  BIGINT NOT NULL REFERENCES packs(id),
    "offset" BIGINT NOT NULL,
    len      BIGINT NOT NULL,
    used_at  BIGINT NOT NULL                    -- ms since the epoch: written or deduplicated against
);
CREATE INDEX chunk_index_by_pack ON chunk_index (pack_id);
