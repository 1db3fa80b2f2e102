//! The chunk index: where each stored chunk lives (digest → pack, offset, length).
//!
//! The engine owns this interface; the caller supplies the implementation, so the index is
//! kept wherever the rest of its metadata is (the service keeps it in SQLite next to the
//! volume and snapshot rows, and will keep it in PostgreSQL in a cluster). It is a cache of
//! what the packs say — every pack's trailer lists its chunks — so it can always be rebuilt
//! from the packs alone (`disksnap repair --rebuild-index`).
//!
//! # How GC and dedup stay safe together
//! Every lookup made for dedup *touches* the entries it finds (`used_at = now`) in the same
//! statement. GC removes an entry only with a conditional delete (`… AND used_at < cutoff`),
//! where the cutoff is older than the start of every capture still running. The index store
//! serialises the two statements, so either the touch comes first (the entry survives: GC's
//! condition fails) or the delete does (the capture does not find the chunk and writes a new
//! copy). A capture can therefore never reference a chunk GC is removing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::index::Digest;

/// Where one chunk's frame is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The pack's name (its key is `packs/<first 2 chars>/<name>.pack`).
    pub pack: String,
    pub offset: u64,
    /// The frame's stored length (header + payload).
    pub len: u32,
}

/// One chunk as a pack's trailer lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub digest: Digest,
    pub offset: u64,
    pub len: u32,
    /// The chunk's uncompressed size, for the store's compression and dedup figures. `None`
    /// for chunks of packs written before it was recorded.
    pub raw_len: Option<u32>,
}

/// What the index holds, summed: the distinct chunks and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkTotals {
    pub chunks: u64,
    /// Their stored (framed, compressed) bytes.
    pub stored_bytes: u64,
    /// Their uncompressed bytes, over the chunks whose raw length is known.
    pub raw_bytes: u64,
    /// Chunks whose raw length is not known (from packs older than the v2 trailer).
    pub raw_unknown: u64,
}

/// A pack as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRecord {
    pub name: String,
    /// Object size in bytes (frames + trailer).
    pub size: u64,
    /// When GC found no live chunk left in it (milliseconds since the epoch); the object is deleted
    /// once the grace period has passed since, so a reader that looked its chunks up just
    /// before can still read them.
    pub doomed_at: Option<i64>,
}

/// An index entry with its pack and last use, for GC and verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedChunk {
    pub digest: Digest,
    pub location: Location,
    /// Milliseconds since the epoch.
    pub used_at: i64,
}

/// Milliseconds since the epoch: the unit of `used_at` and `doomed_at`.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub trait ChunkIndex: Send + Sync {
    /// About `lookups` dedup lookups, in random digest order, are coming (a capture that
    /// read its plan): an index kept in a local file may read the file in ahead when that is
    /// cheaper than the random reads the lookups would make on a cold cache. Best effort,
    /// returns at once; the default does nothing.
    fn expect_lookups(&self, _lookups: usize) {}

    /// Where each of `digests` is (`None` for unknown ones), touching every entry found (see
    /// the module doc). For dedup.
    fn find_and_touch(&self, digests: &[Digest]) -> Result<Vec<Option<Location>>>;

    /// Where each of `digests` is, without touching. For reads.
    fn find(&self, digests: &[Digest]) -> Result<Vec<Option<Location>>>;

    /// Record a pack that is durable in the backend, and its chunks. A digest the index
    /// already has keeps its existing location (the first copy wins; a later duplicate is dead
    /// bytes that repack reclaims). New entries are stamped `used_at = now`.
    fn add_pack(&self, pack: &str, size: u64, entries: &[PackEntry]) -> Result<()>;

    /// Every pack the index knows.
    fn packs(&self) -> Result<Vec<PackRecord>>;

    /// Whether the index knows no pack at all (checked at every start: keep it cheap).
    fn is_empty(&self) -> Result<bool> {
        Ok(self.packs()?.is_empty())
    }

    /// Every entry. GC and verify scan it once per run.
    fn chunks(&self) -> Result<Vec<IndexedChunk>>;

    /// The entries summed (one aggregate query on a database-backed index).
    fn totals(&self) -> Result<ChunkTotals>;

    /// Remove the entries of `digests` not used since `cutoff` (milliseconds); returns the digests
    /// removed. Must be one atomic conditional delete per digest (see the module doc).
    fn remove_unused(&self, digests: &[Digest], cutoff: i64) -> Result<Vec<Digest>>;

    /// Remove entries whatever their use (verify found them corrupt: the next capture that
    /// meets those bytes must write a good copy).
    fn remove(&self, digests: &[Digest]) -> Result<()>;

    /// Point entries that are still in pack `from` at their copy in `to` (repack). `to` must
    /// already be recorded with [`ChunkIndex::add_pack`].
    fn move_entries(&self, from: &str, to: &str, entries: &[PackEntry]) -> Result<()>;

    /// Mark a pack with no entries left as doomed at `at` (milliseconds).
    fn doom_pack(&self, pack: &str, at: i64) -> Result<()>;

    /// Forget a pack (its object is gone). Its entries must already be gone.
    fn forget_pack(&self, pack: &str) -> Result<()>;

    /// Drop everything (before a rebuild from the packs).
    fn clear(&self) -> Result<()>;
}

/// An index in memory: for the engine's own tests and for a store opened without a metadata
/// store (it is rebuilt from the packs when opened).
#[derive(Default)]
pub struct MemoryIndex {
    inner: Mutex<Mem>,
}

#[derive(Default)]
struct Mem {
    chunks: HashMap<Digest, (Location, i64)>,
    raw_lens: HashMap<Digest, u32>,
    packs: HashMap<String, PackRecord>,
}

impl ChunkIndex for MemoryIndex {
    fn find_and_touch(&self, digests: &[Digest]) -> Result<Vec<Option<Location>>> {
        let now = now_ms();
        let mut m = self.inner.lock().unwrap();
        Ok(digests
            .iter()
            .map(|d| {
                m.chunks.get_mut(d).map(|(loc, used)| {
                    *used = now;
                    loc.clone()
                })
            })
            .collect())
    }

    fn find(&self, digests: &[Digest]) -> Result<Vec<Option<Location>>> {
        let m = self.inner.lock().unwrap();
        Ok(digests.iter().map(|d| m.chunks.get(d).map(|(l, _)| l.clone())).collect())
    }

    fn add_pack(&self, pack: &str, size: u64, entries: &[PackEntry]) -> Result<()> {
        let now = now_ms();
        let mut m = self.inner.lock().unwrap();
        m.packs.insert(pack.to_string(), PackRecord { name: pack.to_string(), size, doomed_at: None });
        for e in entries {
            if m.chunks.contains_key(&e.digest) {
                continue;
            }
            m.chunks.insert(e.digest, (Location { pack: pack.to_string(), offset: e.offset, len: e.len }, now));
            if let Some(r) = e.raw_len {
                m.raw_lens.insert(e.digest, r);
            }
        }
        Ok(())
    }

    fn packs(&self) -> Result<Vec<PackRecord>> {
        Ok(self.inner.lock().unwrap().packs.values().cloned().collect())
    }

    fn chunks(&self) -> Result<Vec<IndexedChunk>> {
        let m = self.inner.lock().unwrap();
        Ok(m.chunks.iter().map(|(d, (l, u))| IndexedChunk { digest: *d, location: l.clone(), used_at: *u }).collect())
    }

    fn totals(&self) -> Result<ChunkTotals> {
        let m = self.inner.lock().unwrap();
        let mut t = ChunkTotals { chunks: m.chunks.len() as u64, ..Default::default() };
        for (d, (l, _)) in &m.chunks {
            t.stored_bytes += l.len as u64;
            match m.raw_lens.get(d) {
                Some(&r) => t.raw_bytes += r as u64,
                None => t.raw_unknown += 1,
            }
        }
        Ok(t)
    }

    fn remove_unused(&self, digests: &[Digest], cutoff: i64) -> Result<Vec<Digest>> {
        let mut m = self.inner.lock().unwrap();
        let mut out = Vec::new();
        for d in digests {
            if m.chunks.get(d).is_some_and(|(_, used)| *used < cutoff) {
                m.chunks.remove(d);
                m.raw_lens.remove(d);
                out.push(*d);
            }
        }
        Ok(out)
    }

    fn remove(&self, digests: &[Digest]) -> Result<()> {
        let mut m = self.inner.lock().unwrap();
        for d in digests {
            m.chunks.remove(d);
            m.raw_lens.remove(d);
        }
        Ok(())
    }

    fn move_entries(&self, from: &str, to: &str, entries: &[PackEntry]) -> Result<()> {
        let mut guard = self.inner.lock().unwrap();
        let m = &mut *guard;
        for e in entries {
            if let Some((loc, _)) = m.chunks.get_mut(&e.digest) {
                if loc.pack == from {
                    *loc = Location { pack: to.to_string(), offset: e.offset, len: e.len };
                    if let Some(r) = e.raw_len {
                        m.raw_lens.insert(e.digest, r);
                    }
                }
            }
        }
        Ok(())
    }

    fn doom_pack(&self, pack: &str, at: i64) -> Result<()> {
        if let Some(p) = self.inner.lock().unwrap().packs.get_mut(pack) {
            p.doomed_at.get_or_insert(at);
        }
        Ok(())
    }

    fn forget_pack(&self, pack: &str) -> Result<()> {
        self.inner.lock().unwrap().packs.remove(pack);
        Ok(())
    }

    fn clear(&self) -> Result<()> {
        let mut m = self.inner.lock().unwrap();
        m.chunks.clear();
        m.raw_lens.clear();
        m.packs.clear();
        Ok(())
    }
}
