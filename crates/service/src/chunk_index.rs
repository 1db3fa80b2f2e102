//! The engine's chunk index kept in the metadata store: the engine calls it from its worker
//! threads (rayon, `spawn_blocking`), the rows live behind async sqlx, so each call blocks
//! that worker thread on the runtime's handle. Never called from an async task.

use std::sync::Arc;

use disksnap_engine::chunk_index::{ChunkIndex, ChunkTotals, IndexedChunk, Location, PackEntry, PackRecord};
use disksnap_engine::{Digest, EngineError};
use disksnap_meta::{ChunkIndexRows, ChunkLocation};
use tokio::runtime::Handle;

pub struct MetaChunkIndex {
    rows: Arc<dyn ChunkIndexRows>,
    rt: Handle,
}

impl MetaChunkIndex {
    /// `rt` must be the runtime the metadata store's pool was made on.
    pub fn new(rows: Arc<dyn ChunkIndexRows>, rt: Handle) -> Self {
        MetaChunkIndex { rows, rt }
    }

    fn run<T>(&self, f: impl std::future::Future<Output = disksnap_meta::Result<T>>) -> disksnap_engine::Result<T> {
        self.rt.block_on(f).map_err(|e| EngineError::Index(e.to_string()))
    }
}

fn loc(l: ChunkLocation) -> Location {
    Location { pack: l.pack, offset: l.offset, len: l.len }
}

fn rows(entries: &[PackEntry]) -> Vec<(Digest, u64, u32, Option<u32>)> {
    entries.iter().map(|e| (e.digest, e.offset, e.len, e.raw_len)).collect()
}

impl ChunkIndex for MetaChunkIndex {
    fn expect_lookups(&self, lookups: usize) {
        self.rows.chunk_expect_lookups(lookups);
    }

    fn find_and_touch(&self, digests: &[Digest]) -> disksnap_engine::Result<Vec<Option<Location>>> {
        let now = disksnap_engine::chunk_index::now_ms();
        Ok(self.run(self.rows.chunk_find(digests, Some(now)))?.into_iter().map(|l| l.map(loc)).collect())
    }

    fn find(&self, digests: &[Digest]) -> disksnap_engine::Result<Vec<Option<Location>>> {
        Ok(self.run(self.rows.chunk_find(digests, None))?.into_iter().map(|l| l.map(loc)).collect())
    }

    fn add_pack(&self, pack: &str, size: u64, entries: &[PackEntry]) -> disksnap_engine::Result<()> {
        let now = disksnap_engine::chunk_index::now_ms();
        self.run(self.rows.chunk_add_pack(pack, size, &rows(entries), now))
    }

    fn packs(&self) -> disksnap_engine::Result<Vec<PackRecord>> {
        Ok(self
            .run(self.rows.chunk_packs())?
            .into_iter()
            .map(|p| PackRecord { name: p.name, size: p.size, doomed_at: p.doomed_at })
            .collect())
    }

    fn is_empty(&self) -> disksnap_engine::Result<bool> {
        self.run(self.rows.chunk_no_packs())
    }

    fn chunks(&self) -> disksnap_engine::Result<Vec<IndexedChunk>> {
        Ok(self
            .run(self.rows.chunk_all())?
            .into_iter()
            .map(|c| IndexedChunk { digest: c.digest, location: loc(c.location), used_at: c.used_at })
            .collect())
    }

    fn totals(&self) -> disksnap_engine::Result<ChunkTotals> {
        let s = self.run(self.rows.chunk_sums())?;
        Ok(ChunkTotals {
            chunks: s.chunks,
            stored_bytes: s.stored_bytes,
            raw_bytes: s.raw_bytes,
            raw_unknown: s.raw_unknown,
        })
    }

    fn remove_unused(&self, digests: &[Digest], cutoff: i64) -> disksnap_engine::Result<Vec<Digest>> {
        self.run(self.rows.chunk_remove_unused(digests, cutoff))
    }

    fn remove(&self, digests: &[Digest]) -> disksnap_engine::Result<()> {
        self.run(self.rows.chunk_remove(digests))
    }

    fn move_entries(&self, from: &str, to: &str, entries: &[PackEntry]) -> disksnap_engine::Result<()> {
        self.run(self.rows.chunk_move(from, to, &rows(entries)))
    }

    fn doom_pack(&self, pack: &str, at: i64) -> disksnap_engine::Result<()> {
        self.run(self.rows.pack_doom(pack, at))
    }

    fn forget_pack(&self, pack: &str) -> disksnap_engine::Result<()> {
        self.run(self.rows.pack_forget(pack))
    }

    fn clear(&self) -> disksnap_engine::Result<()> {
        self.run(self.rows.chunk_clear())
    }
}
