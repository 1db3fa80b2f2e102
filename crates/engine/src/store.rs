//! The engine's front door: capture an image file into an index, restore an index into a file
//! (new, or in place writing only what differs). GC, verify and repair are in gc.rs and
//! verify.rs.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::volume_read::{AlignedBuf, VolumeReader};

use crate::backend::local::LocalBackend;
use crate::backend::{Backend, DEFAULT_READ_SPAN};
use crate::capture_dict::CaptureDict;
use crate::chunk_index::{ChunkIndex, Location, MemoryIndex};
use crate::chunk_store::{ChunkStore, SweepStats};
use crate::dict::StoreDict;
use crate::direct::DirectWriter;
use crate::error::{EngineError, IoContext, Result};
use crate::frames::Frames;
use crate::index::{Digest, FixedIndex, ZERO_DIGEST};
use crate::overlap::{Countdown, FirstError};
use crate::pack::{pack_key, PackWriter};
use crate::pin::Pin;
use crate::progress::Progress;
use crate::recycle::Recycler;
use crate::volume_io::{
    data_extents, is_zero, overlaps_data, punch_hole, read_full_at, write_differing_blocks, write_nonzero_blocks,
};

/// Slots a capture hashes before asking the index about them in one query: 8 MiB of reads
/// at 128 KiB chunks, held in memory between hashing and encoding, two batches at once (peak
/// RSS is a budgeted figure). With two batches of 32 a warm 4 GiB full snapshot took 4.4 s
/// against 3.9 s; a larger batch bought nothing measurable.
const CAPTURE_BATCH: usize = 64;
/// verify's threads at most (each holds a whole pack: 4 × 16 MiB).
const MAX_VERIFY_THREADS: usize = 4;
/// Slots a restore handles per batch: the unit of index lookups and of progress. A restore to
/// a new file from a backend whose reads span more than [`DEFAULT_READ_SPAN`] makes
/// proportionally larger batches, so a batch still makes enough reads to keep every reader
/// busy (a batch of 512 slots makes ~16 reads of 2 MiB from a full snapshot's packs).
const RESTORE_BATCH: usize = 512;
/// Neighbouring chunks of one pack are read together when the gap between them is at most this
/// (reading a little unneeded data beats another request), up to [`Backend::read_span`] per
/// read.
const MAX_GAP: u64 = 256 << 10;

/// A pool of `n` (at least 1) threads named `disksnap-{what}-{i}`.
fn pool(n: usize, what: &'static str) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .thread_name(move |i| format!("disksnap-{what}-{i}"))
        .build()
        .expect("a thread pool of a few threads")
}

pub struct Store {
    /// Local state: `store.toml` of a local store, pins (`indexes/*.pending`), and the chunk
    /// files of a store made before packs.
    pub(crate) dir: PathBuf,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) index: Arc<dyn ChunkIndex>,
    /// Chunk files of a store created before pack files: read (never written) until `disksnap
    /// migrate-store` moves them into packs.
    pub(crate) legacy: Option<ChunkStore>,
    chunk_size: usize,
    read_pool: std::sync::OnceLock<rayon::ThreadPool>,
    verify_pool: std::sync::OnceLock<rayon::ThreadPool>,
    /// The dictionary captures compress with, once found in `dicts/` or trained.
    pub(crate) dict: std::sync::Mutex<Option<Arc<StoreDict>>>,
    /// Whether captures use (and train) one at all.
    capture_dictionary: bool,
}

#[derive(Debug, Default, Clone)]
pub struct CaptureStats {
    /// Image size in bytes.
    pub size: u64,
    pub slots: u64,
    pub zero_slots: u64,
    /// Slots whose digest differs from the parent's (every non-zero slot for a full capture).
    pub changed_slots: u64,
    /// Chunks this capture wrote to the store, and their stored (compressed) bytes.
    pub written_chunks: u64,
    pub written_bytes: u64,
    /// Changed slots whose chunk the store already had (dedup).
    pub reused_chunks: u64,
    /// Stored bytes of the distinct chunks this index references and its parent does not: what
    /// this point adds on top of its chain.
    pub added_bytes: u64,
    /// Bytes actually read from the source (holes are not read).
    pub read_bytes: u64,
    /// Raw bytes of the point's non-zero slots (what a restore of it writes).
    pub logical_bytes: u64,
    /// Slots changed-block tracking vouched for as the parent's: neither read nor hashed.
    pub tracked_slots: u64,
    /// Pack files written.
    pub packs: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct RestoreStats {
    pub size: u64,
    pub written_slots: u64,
    pub written_bytes: u64,
    /// Slots left (or made) holes.
    pub zero_slots: u64,
    /// Slots that already held the right bytes (in-place restore only).
    pub unchanged_slots: u64,
    /// Of those, slots tracking vouched for without reading them.
    pub tracked_slots: u64,
    /// Bytes of the target read to compare (in-place restore only).
    pub compared_bytes: u64,
    /// Reads issued to the backend (neighbouring chunks coalesced).
    pub reads: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct GcStats {
    pub live_indexes: u64,
    pub removed_indexes: u64,
    pub marked_chunks: u64,
    /// Chunk index entries: kept, removed (and their stored bytes).
    pub sweep: SweepStats,
    /// Packs with no live chunk left, marked for deletion after the grace period.
    pub doomed_packs: u64,
    /// Pack objects deleted (doomed longer than the grace, or left unindexed by a dead job).
    pub deleted_packs: u64,
    pub deleted_pack_bytes: u64,
    /// Mostly dead packs whose live chunks were copied to new packs.
    pub repacked_packs: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub checked_chunks: u64,
    pub checked_packs: u64,
    /// Corrupt chunks (hex digest, reason), now dropped from the index so the next capture that
    /// meets their bytes writes a good copy.
    pub bad_chunks: Vec<(String, String)>,
    /// Indexes that reference a bad or missing chunk, or are themselves unreadable:
    /// (index name, reason).
    pub broken: Vec<(String, String)>,
    /// Packs whose chunks are fine but whose trailer is damaged (pack, reason): the index
    /// could not be rebuilt from them.
    pub bad_trailers: Vec<(String, String)>,
    pub elapsed: Duration,
}

/// What one slot turned out to be during a capture.
enum Slot {
    Zero,
    Same,
    Data(Digest),
}

/// A capture's batch, read and hashed: what each slot holds, and where the store already has
/// the chunks it had before the capture.
struct Hashed {
    kinds: Vec<Slot>,
    found: HashMap<Digest, Location>,
}

/// How a changed slot's chunk got into the store.
#[derive(Clone, Copy)]
enum Got {
    Written(u64),
    Reused(u64),
}

impl Store {
    /// Open the store at `dir` on the local disk, creating it with `chunk_size` (or the
    /// default) if it is new, with an in-memory chunk index rebuilt from its packs. The
    /// service uses [`Store::open_with`] and keeps the index in its metadata store.
    pub fn open(dir: &Path, chunk_size_if_new: Option<usize>) -> Result<Self> {
        let backend = Arc::new(LocalBackend::open(dir)?);
        let store = Store::open_with(dir, backend, Arc::new(MemoryIndex::default()), chunk_size_if_new)?;
        store.rebuild_index(&crate::NoProgress)?;
        Ok(store)
    }

    /// Open a store whose objects are in `backend` and whose chunk index is `index`; `dir`
    /// holds local state only (pins; for a local backend it is usually the backend's root).
    /// The chunk size is fixed by the store's `store.toml` object, written on first use.
    pub fn open_with(
        dir: &Path,
        backend: Arc<dyn Backend>,
        index: Arc<dyn ChunkIndex>,
        chunk_size_if_new: Option<usize>,
    ) -> Result<Self> {
        crate::private::create_dir_all(&dir.join("indexes")).ctx("create", dir)?;
        let chunk_size = match backend.get("store.toml") {
            Ok(text) => parse_chunk_size(&String::from_utf8_lossy(&text)).ok_or_else(|| EngineError::BadStore {
                path: dir.join("store.toml"),
                why: "expected `chunk_size = <bytes>` (a power of two from 4 KiB to 16 MiB)".into(),
            })?,
            Err(EngineError::MissingObject { .. }) => {
                let cs = chunk_size_if_new.unwrap_or(crate::DEFAULT_CHUNK_SIZE);
                if parse_chunk_size(&format!("chunk_size = {cs}")).is_none() {
                    return Err(EngineError::Invalid(format!(
                        "chunk size {cs} is not a power of two from 4 KiB to 16 MiB"
                    )));
                }
                let text = format!("# fixed when the store was created; never edit\nchunk_size = {cs}\n");
                backend.put("store.toml", text.into_bytes())?;
                cs
            }
            Err(e) => return Err(e),
        };
        // Frames made with one of this store's dictionaries are decoded by loading it from here.
        crate::dict::register_source(&backend);
        let legacy_dir = dir.join("chunks");
        let legacy = if legacy_dir.join("fff").is_dir() { Some(ChunkStore::open(&legacy_dir)?) } else { None };
        Ok(Store {
            dir: dir.to_path_buf(),
            backend,
            index,
            legacy,
            chunk_size,
            read_pool: Default::default(),
            verify_pool: Default::default(),
            dict: Default::default(),
            capture_dictionary: true,
        })
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Whether captures compress with the store's zstd dictionary, training one if the store
    /// has none (capture_dict.rs; the default), or at plain level 1 (less CPU, a larger store
    /// until `disksnap compact`).
    pub fn set_capture_dictionary(&mut self, on: bool) {
        self.capture_dictionary = on;
    }

    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    pub fn chunk_index(&self) -> &dyn ChunkIndex {
        &*self.index
    }

    fn check_name(name: &str) -> Result<()> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(EngineError::Invalid(format!("index name {name:?} must be [A-Za-z0-9_-]+")));
        }
        Ok(())
    }

    pub(crate) fn index_key(name: &str) -> Result<String> {
        Self::check_name(name)?;
        Ok(format!("indexes/{name}.fidx"))
    }

    pub(crate) fn pin_path(&self, name: &str) -> Result<PathBuf> {
        Self::check_name(name)?;
        Ok(self.dir.join("indexes").join(format!("{name}.pending")))
    }

    pub fn read_index(&self, name: &str) -> Result<FixedIndex> {
        match self.backend.get(&Self::index_key(name)?) {
            Ok(bytes) => FixedIndex::decode(name, &bytes),
            Err(EngineError::MissingObject { .. }) => Err(EngineError::MissingIndex { name: name.to_string() }),
            Err(e) => Err(e),
        }
    }

    pub fn has_index(&self, name: &str) -> bool {
        Self::index_key(name).and_then(|k| self.backend.exists(&k)).unwrap_or(false)
    }

    /// Forget an index. Its chunks stay until GC finds nothing else uses them.
    pub fn remove_index(&self, name: &str) -> Result<()> {
        self.backend.delete(&Self::index_key(name)?)?;
        let p = self.pin_path(name)?;
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::Io { op: "remove", path: p, source: e }),
        }
    }

    /// Capture the image file `source` into a new index `name`.
    ///
    /// With a `parent`, only slots whose digest differs from the parent's are stored, and the
    /// new index is the parent's digest list with those slots overwritten. `on_taken` is called
    /// once every byte has been read: from then on, writes to the source cannot change the
    /// capture. When this returns, the packs, their index entries and the fixed index are
    /// durable, in that order.
    pub fn capture(
        &self,
        name: &str,
        source: &Path,
        parent: Option<&str>,
        progress: &dyn Progress,
        on_taken: &mut dyn FnMut(),
    ) -> Result<CaptureStats> {
        self.capture_tracked(name, source, parent, None, progress, on_taken)
    }

    /// [`Store::capture`] with changed-block tracking: `changed[i] == false` vouches that slot
    /// `i` of `source` holds the parent's bytes, so it is neither read nor hashed (see
    /// points.rs for how a caller knows). The hint is ignored (everything is hashed) unless
    /// there is a parent of the same size with one flag per slot.
    pub fn capture_tracked(
        &self,
        name: &str,
        source: &Path,
        parent: Option<&str>,
        changed: Option<&[bool]>,
        progress: &dyn Progress,
        on_taken: &mut dyn FnMut(),
    ) -> Result<CaptureStats> {
        let started = Instant::now();
        let key = Self::index_key(name)?;
        let file = File::open(source).ctx("open", source)?;
        let size = file.metadata().ctx("stat", source)?.len();
        let parent = parent.map(|p| self.read_index(p)).transpose()?;
        if let Some(p) = &parent {
            if p.chunk_size != self.chunk_size {
                return Err(EngineError::Invalid(format!(
                    "parent index uses {} byte chunks, the store {}",
                    p.chunk_size, self.chunk_size
                )));
            }
        }
        let mut index = match &parent {
            Some(p) => FixedIndex::derived(p, size),
            None => FixedIndex::zeroed(self.chunk_size, size),
        };
        // The pin keeps the parent's chunks marked for a GC that runs meanwhile, and its age
        // bounds GC's cutoff below this capture's start (see chunk_index.rs).
        let pin = Pin::create(&self.pin_path(name)?, &index)?;
        let writer = PackWriter::new(self.backend.clone(), self.index.clone());
        let changed = changed.filter(|c| {
            parent
                .as_ref()
                .is_some_and(|p| p.size == size && p.digests.len() == c.len() && c.len() == index.digests.len())
        });
        let mut dict =
            if self.capture_dictionary { CaptureDict::new(self.store_dictionary()?) } else { CaptureDict::off() };
        let captured =
            self.capture_slots(&file, source, &mut index, parent.as_ref(), changed, &writer, &mut dict, progress);
        let outcome = captured.and_then(|mut stats| {
            on_taken();
            stats.packs = writer.finish()?.len() as u64;
            self.backend.put(&key, index.encode())?;
            stats.logical_bytes = index.logical_bytes();
            Ok(stats)
        });
        drop(pin);
        let mut stats = outcome?;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    // The capture's state, passed apart so the pack writer and index stay owned by `capture`.
    #[allow(clippy::too_many_arguments)]
    fn capture_slots(
        &self,
        file: &File,
        source: &Path,
        index: &mut FixedIndex,
        parent: Option<&FixedIndex>,
        changed: Option<&[bool]>,
        writer: &PackWriter,
        dict: &mut CaptureDict,
        progress: &dyn Progress,
    ) -> Result<CaptureStats> {
        let size = index.size;
        let extents = data_extents(file, size);
        let mut stats = CaptureStats { size, slots: index.digests.len() as u64, ..Default::default() };
        let read_bytes = AtomicU64::new(0);
        progress.start(size);
        let cs = self.chunk_size;
        let slots = index.digests.len();
        // With tracking, only the slots it cannot vouch for are visited, in batches of
        // CAPTURE_BATCH of them; the others keep the parent's digests (FixedIndex::derived).
        let todo: Option<Vec<usize>> = changed.map(|c| (0..slots).filter(|&i| c[i]).collect());
        if let Some(t) = &todo {
            stats.tracked_slots = (slots - t.len()) as u64;
        }
        let batches = todo.as_ref().map_or(slots, Vec::len).div_ceil(CAPTURE_BATCH);
        let batch_of = |b: usize| -> Vec<usize> {
            match &todo {
                Some(t) => t[b * CAPTURE_BATCH..((b + 1) * CAPTURE_BATCH).min(t.len())].to_vec(),
                None => (b * CAPTURE_BATCH..((b + 1) * CAPTURE_BATCH).min(slots)).collect(),
            }
        };
        let span_of = |batch: &[usize]| {
            let (first, last) = (batch[0], batch[batch.len() - 1]);
            first as u64 * cs as u64..((last + 1) as u64 * cs as u64).min(size)
        };
        let slot_len = |i: usize| FixedIndex::slot_len_of(size, cs, i);
        // The byte ranges a tracked incremental will read: its slots that hold data.
        let to_read = todo.as_ref().map(|t| slots_with_data(index, &extents, t.iter().copied()));
        // Each slot read is one dedup lookup: let the index read itself in if that many
        // random lookups would cost more (sqlite/prefetch.rs in the meta crate).
        self.index.expect_lookups(to_read.as_ref().map_or(slots, Vec::len));
        // What of the volume was not cached when the capture began is dropped once read
        // (residency.rs); what a user of the volume keeps cached stays.
        let cold = match &to_read {
            Some(r) => crate::residency::Cold::of_ranges(file, r.iter().cloned()),
            None => crate::residency::Cold::of(file, 0..size),
        };
        // Ask for the slots ahead of the reader (readahead.rs): a tracked incremental's are
        // scattered, and a whole volume's are read by the batch's threads side by side from one
        // file, which the kernel's own read-ahead follows poorly. Asked for in 4 MiB pieces (a
        // whole extent at once had only its first read-ahead window read), a cold 4 GiB full
        // snapshot took 5.7-6.0 s against 6.4-6.5.
        let ranges = to_read.unwrap_or_else(|| extents.iter().map(|&(start, end)| start..end).collect());
        // A whole pass reads what was not cached past the cache (volume_read.rs), and asks
        // read-ahead only for the rest.
        let reader = VolumeReader::new(file, source, cold.as_ref(), todo.is_none());
        let mut ahead = crate::readahead::ReadAhead::new(file, ranges, crate::readahead::AHEAD);
        ahead.retain(|piece| !reader.reads_directly(piece.clone()));
        let mut ahead = Some(ahead);

        // Stage 1: read and hash every slot of `batch` into `buf`, in parallel, then ask the index
        // which of its chunks the store already has. `expect` has the slots' digests in the
        // parent (with one: a slot that still hashes to it is unchanged).
        let read_hash = |batch: &[usize], expect: &[Digest], buf: &mut [u8]| -> Result<Hashed> {
            // A group of neighbouring slots is read together (volume_read.rs), past the page
            // cache where it did not hold them.
            let per_group = (crate::volume_read::GROUP_BYTES / cs).max(1);
            let kinds: Vec<Slot> = buf
                .par_chunks_mut(per_group * cs)
                .zip(batch.par_chunks(per_group))
                .enumerate()
                .map(|(g, (buf, slots))| -> Result<Vec<Slot>> {
                    let wanted: Vec<bool> = slots
                        .iter()
                        .map(|&i| {
                            let start = i as u64 * cs as u64;
                            overlaps_data(&extents, start, start + slot_len(i) as u64)
                        })
                        .collect();
                    let mut kinds: Vec<Slot> = slots.iter().map(|_| Slot::Zero).collect();
                    let read = reader.read_slots(slots, &wanted, cs, slot_len, buf, |k, bytes| {
                        if !is_zero(bytes) {
                            let digest = *blake3::hash(bytes).as_bytes();
                            kinds[k] = if expect.get(g * per_group + k) == Some(&digest) {
                                Slot::Same
                            } else {
                                Slot::Data(digest)
                            };
                        }
                        Ok(())
                    })?;
                    read_bytes.fetch_add(read, Ordering::Relaxed);
                    Ok(kinds)
                })
                .collect::<Result<Vec<Vec<Slot>>>>()?
                .into_iter()
                .flatten()
                .collect();
            // One query for the batch. A chunk another batch of this capture is writing is not
            // in the index yet: the writer's claim (stage 2) finds it.
            let wanted: Vec<Digest> = kinds
                .iter()
                .filter_map(|k| match k {
                    Slot::Data(d) => Some(*d),
                    _ => None,
                })
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let found: HashMap<Digest, Location> = if wanted.is_empty() {
                HashMap::new()
            } else {
                wanted
                    .iter()
                    .copied()
                    .zip(self.index.find_and_touch(&wanted)?)
                    .filter_map(|(d, l)| Some((d, l?)))
                    .collect()
            };
            Ok(Hashed { kinds, found })
        };

        // Stage 2: store a batch's new chunks (its bytes in `buf`) and set its slots in `index`.
        // `move`: the sets below are this stage's alone, and must travel with it to a worker.
        // `parent_set` is built only if a chunk the store already had turns up (see
        // `added_bytes`): hashing a 32 GiB parent's 262 144 digests took 30-45 ms of a
        // scattered incremental.
        let parent_set: std::cell::OnceCell<HashSet<Digest>> = std::cell::OnceCell::new();
        let mut counted: HashSet<Digest> = HashSet::new();
        let mut store_batch = move |index: &mut FixedIndex,
                                    stats: &mut CaptureStats,
                                    batch: &[usize],
                                    hashed: &Hashed,
                                    buf: &[u8]|
              -> Result<()> {
            let Hashed { kinds, found } = hashed;
            // Encode and pack the new ones, in parallel.
            let dict_now = &*dict;
            let got: Vec<Result<Option<Got>>> = buf
                .par_chunks(cs)
                .zip(kinds)
                .zip(batch)
                .map(|((buf, kind), &i)| {
                    let Slot::Data(d) = kind else { return Ok(None) };
                    if let Some(loc) = found.get(d) {
                        return Ok(Some(Got::Reused(loc.len as u64)));
                    }
                    if let Some(stored) = writer.claim(d) {
                        return Ok(Some(Got::Reused(stored)));
                    }
                    crate::chunk::with_encoder(|encoder| {
                        let raw = &buf[..slot_len(i)];
                        let frame = encoder.encode_with(raw, dict_now.current());
                        if crate::chunk::is_plain_zstd(frame) {
                            dict_now.offer(raw);
                        }
                        writer.add(d, frame)?;
                        Ok(Some(Got::Written(frame.len() as u64)))
                    })
                })
                .collect();
            for ((&i, kind), g) in batch.iter().zip(kinds).zip(got) {
                match (kind, g?) {
                    (Slot::Zero, _) => {
                        stats.zero_slots += 1;
                        if index.digests[i] != ZERO_DIGEST {
                            stats.changed_slots += 1;
                        }
                        index.digests[i] = ZERO_DIGEST;
                    }
                    (Slot::Same, _) => {}
                    (&Slot::Data(d), Some(g)) => {
                        stats.changed_slots += 1;
                        let (stored, reused) = match g {
                            Got::Written(n) => {
                                stats.written_chunks += 1;
                                stats.written_bytes += n;
                                (n, false)
                            }
                            Got::Reused(n) => {
                                stats.reused_chunks += 1;
                                (n, true)
                            }
                        };
                        // A chunk new to the store is new to the parent (whose chunks are all
                        // indexed, and pinned); only one found again may be the parent's.
                        let in_parent = reused
                            && parent.is_some_and(|p| {
                                parent_set.get_or_init(|| p.digests.iter().copied().collect()).contains(&d)
                            });
                        if !in_parent && counted.insert(d) {
                            stats.added_bytes += stored;
                        }
                        index.digests[i] = d;
                    }
                    (Slot::Data(_), None) => unreachable!("a data slot always reports how it was stored"),
                }
            }
            if let Some(trained) = dict.train_when_ready(&*self.backend)? {
                *self.dict.lock().unwrap_or_else(|p| p.into_inner()) = Some(trained);
            }
            Ok(())
        };

        // The two stages run side by side on two batches, one buffer each: batch b is read and
        // hashed while batch b - 1 is looked up, encoded and packed. One after the other, the
        // serial steps between them (the index query, the dictionary's training) and the last
        // straggling chunk of each parallel step left a core idle: ~20 % of a warm 4 GiB full
        // snapshot's CPU time (`perf sched timehist`). Two buffers of CAPTURE_BATCH slots.
        let mut bufs = [AlignedBuf::new(CAPTURE_BATCH * cs), AlignedBuf::new(CAPTURE_BATCH * cs)];
        let mut hashed: Option<(Vec<usize>, Hashed)> = None;
        for b in 0..=batches {
            let next = (b < batches).then(|| batch_of(b));
            if let (Some(n), Some(ahead)) = (&next, &mut ahead) {
                ahead.advance(span_of(n).start);
            }
            // Batches are disjoint: storing the one before cannot change these slots' digests.
            let expect: Vec<Digest> = match (&next, parent) {
                (Some(n), Some(_)) => n.iter().map(|&i| index.digests[i]).collect(),
                _ => Vec::new(),
            };
            let [even, odd] = &mut bufs;
            let (read_buf, store_buf) = if b % 2 == 0 { (even, odd) } else { (odd, even) };
            let done = hashed.take();
            let stats = &mut stats;
            let index = &mut *index;
            let store_batch = &mut store_batch;
            let (read, stored) = rayon::join(
                || next.as_deref().map(|n| read_hash(n, &expect, read_buf)).transpose(),
                || match &done {
                    Some((batch, h)) => store_batch(index, stats, batch, h, store_buf).map(|()| Some(batch)),
                    None => Ok(None),
                },
            );
            if let Some(batch) = stored? {
                progress.advance(span_of(batch).end);
            }
            if let (Some(n), Some(h)) = (next, read?) {
                if let Some(c) = &cold {
                    c.release(file, span_of(&n));
                }
                hashed = Some((n, h));
            }
        }
        progress.advance(size);
        stats.read_bytes = read_bytes.into_inner();
        Ok(stats)
    }

    /// The dictionary this store's captures compress with: the one found or trained before,
    /// else the first intact one in `dicts/` (by key: the one compaction uses too). None
    /// while the store has none (the next capture trains one).
    pub(crate) fn store_dictionary(&self) -> Result<Option<Arc<StoreDict>>> {
        let mut slot = self.dict.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = &*slot {
            return Ok(Some(d.clone()));
        }
        let mut keys: Vec<String> = self.backend.list("dicts/")?.into_iter().map(|o| o.key).collect();
        keys.sort();
        for key in keys {
            let Some(id) = crate::dict::dict_id_of_key(&key) else { continue };
            let bytes = self.backend.get(&key)?;
            // One that does not match its id (damaged) is passed by; verify names the chunks
            // that needed it.
            if crate::dict::checked_id(&bytes) == Some(id) {
                crate::dict::load(&bytes)?;
                let d = Arc::new(StoreDict { id, bytes });
                *slot = Some(d.clone());
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Keep the chunks of index `name` marked for GC while the returned guard lives, even if
    /// the index itself is removed meanwhile (a restore reading a point being deleted).
    fn pin(&self, name: &str, index: &FixedIndex) -> Result<Pin> {
        Pin::create(&self.pin_path(&format!("{name}-read-{:016x}", rand::random::<u64>()))?, index)
    }

    /// Restore index `name` into a new file at `target` (which must not exist). Zero slots stay
    /// holes, so the result is sparse. The file is fsynced before this returns; on error it is
    /// removed.
    pub fn restore_new(&self, name: &str, target: &Path, progress: &dyn Progress) -> Result<RestoreStats> {
        let index = self.read_index(name)?;
        let _pin = self.pin(name, &index)?;
        let file =
            crate::private::options().write(true).read(true).create_new(true).open(target).ctx("create", target)?;
        let result = (|| {
            file.set_len(index.size).ctx("resize", target)?;
            self.restore_into(&index, &file, target, false, None, progress)
        })();
        if result.is_err() {
            let _ = fs::remove_file(target);
        }
        result
    }

    /// Make the existing file `target` hold exactly index `name`'s bytes, writing only the
    /// slots that differ (a roll back after a small change writes little). Slots that should be
    /// zero become holes. The file is fsynced before this returns.
    pub fn restore_in_place(&self, name: &str, target: &Path, progress: &dyn Progress) -> Result<RestoreStats> {
        self.restore_in_place_tracked(name, target, None, progress)
    }

    /// [`Store::restore_in_place`] with changed-block tracking: `changed[i] == false` vouches
    /// that slot `i` of `target` already holds the point's bytes, so it is not even read. The
    /// hint is ignored unless it has one flag per slot and `target` is the point's size.
    /// Inside a slot that differs, only the 4 KiB blocks that differ are written (a block that
    /// should be zero is punched), so a roll back after a small change writes little.
    pub fn restore_in_place_tracked(
        &self,
        name: &str,
        target: &Path,
        changed: Option<&[bool]>,
        progress: &dyn Progress,
    ) -> Result<RestoreStats> {
        let index = self.read_index(name)?;
        let _pin = self.pin(name, &index)?;
        self.check_present(&index)?;
        let file = OpenOptions::new().write(true).read(true).open(target).ctx("open", target)?;
        let old_size = file.metadata().ctx("stat", target)?.len();
        let changed = changed.filter(|c| old_size == index.size && c.len() == index.digests.len());
        file.set_len(index.size).ctx("resize", target)?;
        self.restore_into(&index, &file, target, true, changed, progress)
    }

    /// Fail before writing anything if a chunk the index needs is missing, so an in-place
    /// restore does not stop half way for that reason.
    fn check_present(&self, index: &FixedIndex) -> Result<()> {
        let distinct: Vec<Digest> =
            index.digests.iter().filter(|d| **d != ZERO_DIGEST).copied().collect::<HashSet<_>>().into_iter().collect();
        for part in distinct.chunks(4096) {
            for (d, loc) in part.iter().zip(self.index.find(part)?) {
                if loc.is_none() && !self.legacy.as_ref().is_some_and(|l| l.chunk_path(d).exists()) {
                    return Err(EngineError::MissingChunk { digest: hex::encode(d) });
                }
            }
        }
        Ok(())
    }

    /// The threads a restore reads, decodes and writes on: [`Backend::read_concurrency`] of
    /// them, made on first use and kept (a restore is not the only caller, rollbacks are too).
    pub(crate) fn read_pool(&self) -> &rayon::ThreadPool {
        self.read_pool.get_or_init(|| pool(self.backend.read_concurrency(), "read"))
    }

    /// verify's threads: as the read pool, but at most [`MAX_VERIFY_THREADS`], since each
    /// holds a whole pack (~16 MiB) in memory, and peak RSS is a budgeted figure.
    pub(crate) fn verify_pool(&self) -> &rayon::ThreadPool {
        self.verify_pool.get_or_init(|| pool(self.backend.read_concurrency().min(MAX_VERIFY_THREADS), "verify"))
    }

    fn restore_into(
        &self,
        index: &FixedIndex,
        file: &File,
        path: &Path,
        compare: bool,
        changed: Option<&[bool]>,
        progress: &dyn Progress,
    ) -> Result<RestoreStats> {
        let started = Instant::now();
        let compared = AtomicU64::new(0);
        // In place: bytes actually written (the 4 KiB blocks that differed; punching is not
        // writing).
        let touched = AtomicU64::new(0);
        let extents = if compare { data_extents(file, index.size) } else { Vec::new() };
        let cs = self.chunk_size as u64;
        let mut stats = RestoreStats { size: index.size, ..Default::default() };
        progress.start(index.size);
        // A new file is written once and not read back soon: written directly where the file
        // system allows it (direct.rs), else buffered, giving its cache back as it goes
        // (recycle.rs). In place, the volume's cache is its user's, and little is written.
        let direct = if compare { None } else { DirectWriter::open(file, path, index.size, &data_ranges(index, cs))? };
        // A restore to a new file reads everything from the store: with reads that span more,
        // batches grow too. A roll back reads what changed, a little per batch.
        let per_batch = match compare {
            true => RESTORE_BATCH,
            false => RESTORE_BATCH * (self.backend.read_span() / DEFAULT_READ_SPAN).max(1) as usize,
        };
        let mut recycle = (!compare && direct.is_none()).then(|| Recycler::new(per_batch as u64 * cs));
        // A roll back reads the volume's data to compare it (step 1): asked for ahead of the
        // readers (readahead.rs), and what was not cached before given back once its batch is
        // done (residency.rs), as a capture does.
        let to_compare: Vec<std::ops::Range<u64>> = match changed {
            _ if !compare => Vec::new(),
            Some(c) => slots_with_data(index, &extents, (0..index.digests.len()).filter(|&i| c[i])),
            None => extents.iter().map(|&(start, end)| start..end).collect(),
        };
        let cold = if compare { crate::residency::Cold::of_ranges(file, to_compare.iter().cloned()) } else { None };
        // A whole pass (no tracking) reads what was not cached past the cache, and asks
        // read-ahead only for the rest.
        let reader = compare.then(|| VolumeReader::new(file, path, cold.as_ref(), changed.is_none()));
        let mut ahead = crate::readahead::ReadAhead::new(file, to_compare, 2 * RESTORE_BATCH as u64 * cs);
        if let Some(r) = &reader {
            ahead.retain(|piece| !r.reads_directly(piece.clone()));
        }
        let write_lock = std::sync::Mutex::new(());
        let written_slots = AtomicU64::new(0);
        let errors = FirstError::default();
        let check_len = |i: usize, d: &Digest, raw: &[u8]| -> Result<()> {
            let len = index.slot_len(i);
            if raw.len() != len {
                return Err(EngineError::CorruptIndex {
                    name: hex::encode(d),
                    why: format!("slot {i} is {len} bytes but its chunk holds {}", raw.len()),
                });
            }
            Ok(())
        };
        // Write `raw`, the chunk `d`, into each of its `slots`.
        let write_chunk = |slots: &[usize], d: &Digest, raw: &[u8]| -> Result<u64> {
            let mut n = 0;
            for &i in slots {
                check_len(i, d, raw)?;
                let len = raw.len();
                let start = i as u64 * cs;
                if compare {
                    // Only the 4 KiB blocks that differ: the slot differs somewhere, often
                    // in one block of 32 (a scattered write).
                    let mut cur = vec![0u8; len];
                    read_full_at(file, path, &mut cur, start)?;
                    touched.fetch_add(write_differing_blocks(file, path, raw, &cur, start)?, Ordering::Relaxed);
                } else if let Some(direct) = &direct {
                    // Writes into allocated blocks run side by side (direct.rs).
                    direct.write(file, raw, start)?;
                } else {
                    // A new file is all holes: leave zero blocks inside the chunk unwritten
                    // (a 4 KiB write into a hole must not allocate the whole chunk).
                    // One writer at a time: a buffered write holds the file's inode lock
                    // (ext4 and XFS) for its whole copy into the page cache, and the
                    // readers that waited for it spun on that lock instead of decoding
                    // (`rwsem_spin_on_owner`: 15 % of a warm restore's CPU). Here they sleep.
                    let _writing = write_lock.lock().unwrap();
                    write_nonzero_blocks(file, path, raw, start)?;
                }
                n += 1;
            }
            Ok(n)
        };
        // One coalesced read: fetch it, check and decode its chunks as its bytes arrive, write
        // them. Written directly, chunks that fill neighbouring slots go out as one write
        // (Gather).
        let run_read = |read: &Read, slots_of: &HashMap<Digest, Vec<usize>>| -> Result<u64> {
            SCRATCH.with(|scratch| {
                crate::direct::with_gather(|gather| {
                    gather.clear();
                    let (bytes, partial, raw) = &mut *scratch.borrow_mut();
                    let mut n = 0;
                    let mut frames = Frames::new(&read.pack, read.range.start, &read.chunks, partial);
                    let mut each = |d: &Digest, frame: &[u8]| -> Result<()> {
                        let chunk = crate::chunk::decode_ref(frame, d, raw)
                            .map_err(|why| EngineError::CorruptChunk { digest: hex::encode(d), why })?;
                        let slots = &slots_of[d];
                        match &direct {
                            Some(w) => {
                                for &i in slots {
                                    check_len(i, d, chunk)?;
                                    gather.add(w, file, i as u64 * cs, chunk)?;
                                }
                                n += slots.len() as u64;
                            }
                            None => n += write_chunk(slots, d, chunk)?,
                        }
                        Ok(())
                    };
                    self.backend.read_range_streamed(
                        &pack_key(&read.pack),
                        read.range.clone(),
                        bytes,
                        &mut |piece| frames.feed(piece, &mut each),
                    )?;
                    frames.finish()?;
                    if let Some(w) = &direct {
                        gather.flush(w, file)?;
                    }
                    Ok(n)
                })
            })
        };
        // A chunk of a store from before packs (one file per chunk).
        let run_legacy = |d: &Digest, slots_of: &HashMap<Digest, Vec<usize>>| -> Result<u64> {
            let Some(l) = &self.legacy else { return Err(EngineError::MissingChunk { digest: hex::encode(d) }) };
            LEGACY_SCRATCH.with(|scratch| {
                let (file_buf, raw) = &mut *scratch.borrow_mut();
                l.read(d, file_buf, raw)?;
                write_chunk(&slots_of[d], d, raw)
            })
        };
        // A batch whose reads are queued: its bytes, and its tasks still running.
        let mut queued: Option<(std::ops::Range<u64>, Arc<Countdown>)> = None;
        // Close a batch once its tasks are done: progress, page cache, holes.
        let mut close = |(bytes, left): (std::ops::Range<u64>, Arc<Countdown>)| -> Result<()> {
            left.wait();
            let done = bytes.end;
            if let Some(c) = &cold {
                c.release(file, bytes);
            }
            if let Some(r) = &mut recycle {
                r.advance(file, done);
            }
            // Zero blocks inside written chunks are punched once every write has ended (below),
            // unless so many wait that they are punched now. A punch takes the inode's lock
            // exclusively and waits for every direct write in flight, and the next batch's
            // writes are in flight here: punched after each batch, the ~2 700 punches of a 4 GiB
            // restore held the writers up so often that a core sat idle 40-50 % of the time.
            if let Some(d) = &direct {
                if d.holes_waiting() > crate::direct::MAX_HOLES_WAITING {
                    d.punch_holes(file)?;
                }
            }
            progress.advance(done);
            Ok(())
        };
        let mut to_punch: Vec<std::ops::Range<u64>> = Vec::new();
        let punch_all = |ranges: &mut Vec<std::ops::Range<u64>>| -> Result<()> {
            ranges.drain(..).try_for_each(|r| punch_hole(file, path, r.start, (r.end - r.start) as usize))
        };
        let target = Target { index, compare, changed, extents: &extents, reader: reader.as_ref() };
        let (run_read, run_legacy, errors_ref, written) = (&run_read, &run_legacy, &errors, &written_slots);
        self.read_pool().in_place_scope(|scope| {
            let mut queue = || -> Result<()> {
                let slots = index.digests.len();
                let batches: Vec<std::ops::Range<usize>> =
                    (0..slots).step_by(per_batch).map(|s| s..(s + per_batch).min(slots)).collect();
                // Step 1 of a batch runs beside step 2 of the one before: one after the other,
                // the chunk index's answers (step 2) left the readers of a roll back's compare
                // idle between batches.
                let mut compared_batch: Option<(std::ops::Range<usize>, Vec<Need>)> = None;
                for b in 0..=batches.len() {
                    if errors_ref.failed() {
                        break;
                    }
                    let next = batches.get(b).cloned();
                    if let Some(n) = &next {
                        ahead.advance(n.start as u64 * cs);
                    }
                    let done = compared_batch.take();
                    let (needs, planned) = self.read_pool().join(
                        || next.clone().map(|n| self.compare_batch(&target, n, &compared)).transpose(),
                        || done.map(|(r, needs)| self.plan_batch(index, r.clone(), needs).map(|p| (r, p))).transpose(),
                    );
                    if let (Some(n), Some(needs)) = (next, needs?) {
                        compared_batch = Some((n, needs));
                    }
                    let Some((batch, plan)) = planned? else { continue };
                    stats.zero_slots += plan.zero_slots;
                    stats.unchanged_slots += plan.unchanged_slots;
                    stats.tracked_slots += plan.tracked_slots;
                    stats.written_slots += plan.punched_slots;
                    // In place, slots that must become zero are punched once the compare is over
                    // (as a new file's zero blocks are): a punch waits for every direct read in
                    // flight and holds off new ones, and the scattered roll back of the bench
                    // punched ~1 300 slots while the compare read past the cache.
                    to_punch.extend(plan.punch.iter().cloned());
                    if to_punch.len() > crate::direct::MAX_HOLES_WAITING {
                        punch_all(&mut to_punch)?;
                    }
                    stats.written_bytes += plan.written_bytes;
                    stats.reads += plan.reads.len() as u64;
                    // 3. read, check and write, in parallel, queued behind the batch before
                    let plan = Arc::new(plan);
                    let left = Arc::new(Countdown::new(plan.reads.len() + plan.legacy.len()));
                    // Tasks 0.. are the coalesced reads, then the chunk files of a legacy store.
                    for t in 0..plan.reads.len() + plan.legacy.len() {
                        let (plan, left) = (plan.clone(), left.clone());
                        scope.spawn(move |_| {
                            let _done = left.task();
                            if errors_ref.failed() {
                                return;
                            }
                            let wrote = match plan.reads.get(t) {
                                Some(read) => run_read(read, &plan.slots_of),
                                None => run_legacy(&plan.legacy[t - plan.reads.len()], &plan.slots_of),
                            };
                            if let Some(n) = errors_ref.note(wrote) {
                                written.fetch_add(n, Ordering::Relaxed);
                            }
                        });
                    }
                    let bytes = batch.start as u64 * cs..(batch.end as u64 * cs).min(index.size);
                    if let Some(before) = queued.replace((bytes, left)) {
                        close(before)?;
                    }
                }
                if let Some(last) = queued.take() {
                    close(last)?;
                }
                Ok(())
            };
            // A failed plan or close also stops the tasks queued before it.
            errors_ref.note(queue());
        });
        errors.into_result()?;
        punch_all(&mut to_punch)?;
        stats.written_slots += written_slots.into_inner();
        if let Some(d) = &direct {
            d.punch_holes(file)?;
        }
        drop(direct);
        file.sync_all().ctx("fsync", path)?;
        if recycle.is_some() {
            crate::recycle::forget(file);
        }
        stats.compared_bytes = compared.into_inner();
        if compare {
            stats.written_bytes = touched.into_inner();
        }
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Step 1 of a restore batch: which of `slots` need writing (in place: only those whose
    /// bytes differ, read and hashed here; nothing is written).
    fn compare_batch(&self, target: &Target, slots: std::ops::Range<usize>, compared: &AtomicU64) -> Result<Vec<Need>> {
        let Target { index, compare, changed, extents, reader } = *target;
        let cs = self.chunk_size as u64;
        // Neighbouring slots that hold data are read together (volume_read.rs), past the page
        // cache where it did not hold them.
        let no_read = |i: usize| {
            if compare && changed.is_some_and(|c| !c[i]) {
                Need::Tracked
            } else if index.digests[i] == ZERO_DIGEST {
                Need::Zero
            } else {
                Need::Write
            }
        };
        let slot_list: Vec<usize> = slots.clone().collect();
        let per_group = (crate::volume_read::GROUP_BYTES / self.chunk_size).max(1);
        // On the read pool: a direct read holds its thread until the device answers, and with
        // one thread a core the cores sat half idle between reads.
        let needs: Vec<Result<Vec<Need>>> = self.read_pool().install(|| {
            slot_list
                .par_chunks(per_group)
                .map(|group| {
                    let wanted: Vec<bool> = group
                        .iter()
                        .map(|&i| {
                            let start = i as u64 * cs;
                            compare
                                && changed.is_none_or(|c| c[i])
                                && overlaps_data(extents, start, start + index.slot_len(i) as u64)
                        })
                        .collect();
                    let Some(reader) = reader.filter(|_| wanted.contains(&true)) else {
                        return Ok(group.iter().map(|&i| no_read(i)).collect());
                    };
                    COMPARE_BUF.with(|buf| {
                        let mut buf = buf.borrow_mut();
                        let buf = match &mut *buf {
                            Some(b) if b.len() >= group.len() * cs as usize => b,
                            b => b.insert(AlignedBuf::new(group.len() * cs as usize)),
                        };
                        let mut needs: Vec<Need> = group.iter().map(|&i| no_read(i)).collect();
                        let read = reader.read_slots(
                            group,
                            &wanted,
                            cs as usize,
                            |i| index.slot_len(i),
                            buf,
                            |k, cur| {
                                let i = group[k];
                                let want = &index.digests[i];
                                needs[k] = if *want == ZERO_DIGEST {
                                    if is_zero(cur) {
                                        Need::Zero
                                    } else {
                                        Need::Punch
                                    }
                                } else if blake3::hash(cur).as_bytes() == want {
                                    Need::Unchanged
                                } else {
                                    Need::Write
                                };
                                Ok(())
                            },
                        )?;
                        compared.fetch_add(read, Ordering::Relaxed);
                        Ok(needs)
                    })
                })
                .collect()
        });
        Ok(needs.into_iter().collect::<Result<Vec<Vec<Need>>>>()?.into_iter().flatten().collect())
    }

    /// Step 2 of a restore batch: the coalesced reads that fetch the chunks of the slots
    /// `needs` (step 1's answer for `slots`) says to write, and the batch's counts.
    fn plan_batch(&self, index: &FixedIndex, slots: std::ops::Range<usize>, needs: Vec<Need>) -> Result<BatchPlan> {
        let cs = self.chunk_size as u64;
        let mut plan = BatchPlan::default();
        for (i, n) in slots.zip(&needs) {
            match n {
                Need::Zero => plan.zero_slots += 1,
                Need::Unchanged => plan.unchanged_slots += 1,
                Need::Tracked => {
                    plan.unchanged_slots += 1;
                    plan.tracked_slots += 1;
                }
                Need::Punch => {
                    plan.punched_slots += 1;
                    let (start, end) = (i as u64 * cs, i as u64 * cs + index.slot_len(i) as u64);
                    match plan.punch.last_mut() {
                        Some(last) if last.end == start => last.end = end,
                        _ => plan.punch.push(start..end),
                    }
                }
                Need::Write => {
                    plan.written_bytes += index.slot_len(i) as u64;
                    plan.slots_of.entry(index.digests[i]).or_default().push(i);
                }
            }
        }
        // where the chunks are, grouped into coalesced reads
        let digests: Vec<Digest> = plan.slots_of.keys().copied().collect();
        let locations = if digests.is_empty() { Vec::new() } else { self.index.find(&digests)? };
        let mut by_pack: HashMap<String, Vec<(Digest, Location)>> = HashMap::new();
        for (d, loc) in digests.into_iter().zip(locations) {
            match loc {
                Some(l) => by_pack.entry(l.pack.clone()).or_default().push((d, l)),
                None => plan.legacy.push(d),
            }
        }
        for (pack, mut chunks) in by_pack {
            chunks.sort_by_key(|(_, l)| l.offset);
            plan.reads.extend(coalesce(&pack, chunks, self.backend.read_span()));
        }
        Ok(plan)
    }
}

/// What step 1 of a restore batch found a slot needs.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    Zero,
    /// Tracking vouches that it holds the point's bytes.
    Tracked,
    Unchanged,
    /// It holds data and must become zero.
    Punch,
    Write,
}

/// What a restore's batches are planned against.
struct Target<'a> {
    index: &'a FixedIndex,
    /// In place: only slots whose bytes differ are written.
    compare: bool,
    /// Changed-block tracking: `false` vouches that a slot already holds the point's bytes.
    changed: Option<&'a [bool]>,
    /// The file's data extents (in place only).
    extents: &'a [(u64, u64)],
    /// Reads the file's current bytes (in place only).
    reader: Option<&'a VolumeReader<'a>>,
}

/// One restore batch, planned: the work its tasks share, and what it counted.
#[derive(Default)]
struct BatchPlan {
    /// The slots each chunk to write fills.
    slots_of: HashMap<Digest, Vec<usize>>,
    reads: Vec<Read>,
    /// Chunks found in no pack: a store from before packs keeps them as files.
    legacy: Vec<Digest>,
    zero_slots: u64,
    unchanged_slots: u64,
    tracked_slots: u64,
    punched_slots: u64,
    /// Byte ranges of slots that hold data but must become zero (neighbours merged).
    punch: Vec<std::ops::Range<u64>>,
    written_bytes: u64,
}

thread_local! {
    /// A read thread's buffers (a read's bytes when the backend reads whole ranges, a frame
    /// split across streamed pieces, a decoded chunk), kept for the thread's life. With rayon's
    /// `map_init` each split task made fresh ones, and the freed 2 MiB buffers stayed resident
    /// in the allocator until its purge delay: a restore peaked at 85-108 MiB RSS, ~60 with
    /// freed memory purged at once (MIMALLOC_PURGE_DELAY=0).
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
    /// A thread's buffer for the volume's current bytes a roll back compares (a group of
    /// neighbouring slots, aligned for direct reads).
    static COMPARE_BUF: std::cell::RefCell<Option<AlignedBuf>> = const { std::cell::RefCell::new(None) };
    /// The same for a chunk file of a store from before packs (file bytes, decoded chunk).
    static LEGACY_SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The byte ranges of `slots` (ascending) that hold data: what a tracked job reads of a volume.
fn slots_with_data(
    index: &FixedIndex,
    extents: &[(u64, u64)],
    slots: impl Iterator<Item = usize>,
) -> Vec<std::ops::Range<u64>> {
    let cs = index.chunk_size as u64;
    slots
        .map(|i| i as u64 * cs..i as u64 * cs + index.slot_len(i) as u64)
        .filter(|r| overlaps_data(extents, r.start, r.end))
        .collect()
}

/// One read from one pack: a byte range and the chunks inside it.
pub(crate) struct Read {
    pub pack: String,
    pub range: std::ops::Range<u64>,
    pub chunks: Vec<(Digest, Location)>,
}

/// The byte ranges a restore of `index` writes data into: its non-zero slots, neighbours
/// merged (what a direct restore allocates up front).
fn data_ranges(index: &FixedIndex, cs: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (i, d) in index.digests.iter().enumerate() {
        if *d == ZERO_DIGEST {
            continue;
        }
        let (start, end) = (i as u64 * cs, i as u64 * cs + index.slot_len(i) as u64);
        match out.last_mut() {
            Some((_, e)) if *e == start => *e = end,
            _ => out.push((start, end)),
        }
    }
    out
}

/// Group a pack's chunks (sorted by offset) into reads of neighbours, each spanning at most
/// `max_read` bytes (or one chunk).
pub(crate) fn coalesce(pack: &str, chunks: Vec<(Digest, Location)>, max_read: u64) -> Vec<Read> {
    let mut out: Vec<Read> = Vec::new();
    for (d, l) in chunks {
        let end = l.offset + l.len as u64;
        if let Some(r) = out.last_mut() {
            if l.offset >= r.range.end && l.offset - r.range.end <= MAX_GAP && end - r.range.start <= max_read {
                r.range.end = end;
                r.chunks.push((d, l));
                continue;
            }
        }
        out.push(Read { pack: pack.to_string(), range: l.offset..end, chunks: vec![(d, l)] });
    }
    out
}

pub(crate) fn parse_chunk_size(text: &str) -> Option<usize> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with("chunk_size"))?;
    let cs: usize = line.split_once('=')?.1.trim().parse().ok()?;
    (cs.is_power_of_two() && (4096..=crate::chunk::MAX_CHUNK).contains(&cs)).then_some(cs)
}
