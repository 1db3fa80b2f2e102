-- The engine's chunk index (digest → pack, offset, length), kept beside the rest of the
-- metadata so one database coordinates every writer (see crates/engine/src/chunk_index.rs).
-- It is a cache of the packs' trailers: `disksnap repair --rebuild-index` refills it.
CREATE TABLE packs (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL UNIQUE,   -- 32 hex digits; the object is packs/<2>/<name>.pack
    size      INTEGER NOT NULL,       -- object bytes (frames + trailer)
    doomed_at INTEGER                 -- ms since the epoch when GC found it empty; deleted after the grace
);

CREATE TABLE chunk_index (
    digest  BLOB PRIMARY KEY,         -- BLAKE3 of the raw chunk, 32 bytes
    pack_id INTEGER NOT NULL REFERENCES packs(id),
    offset  INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    used_at INTEGER NOT NULL          -- ms since the epoch: written or deduplicated against
) WITHOUT ROWID;

CREATE INDEX chunk_index_by_pack ON chunk_index(pack_id);
