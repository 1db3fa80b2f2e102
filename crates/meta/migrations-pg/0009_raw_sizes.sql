-- SQLite's 0017: see crates/meta/migrations/0017_raw_sizes.sql.
ALTER TABLE chunk_index ADD COLUMN raw_len BIGINT;
ALTER TABLE snapshots ADD COLUMN logical_size BIGINT;
