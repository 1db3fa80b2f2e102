-- The raw (uncompressed) size of each chunk and the logical bytes of each point: the store's
-- compression ratio is raw / stored bytes of the distinct chunks, its dedup ratio the points'
-- logical bytes / the distinct chunks' raw bytes. NULL: not recorded (chunks of packs written
-- before the v2 pack trailer, points captured before this column), so the figures say "not
-- measured" rather than guess.
ALTER TABLE chunk_index ADD COLUMN raw_len INTEGER;
ALTER TABLE snapshots ADD COLUMN logical_size INTEGER;
