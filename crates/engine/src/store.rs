//! The engine's front door: capture an image file into an index, restore an index into a file
//! (new, or in place writing only what differs), collect garbage, verify.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rayon::prelude::*;

use crate::chunk_store::{ChunkStore, Inserted, SweepStats};
use crate::error::{EngineError, IoContext, Result};
use crate::index::{write_durably, Digest, FixedIndex, ZERO_DIGEST};
use crate::progress::Progress;
use crate::volume_io::{
    data_extents, is_zero, overlaps_data, punch_hole, read_full_at, write_all_at, write_nonzero_blocks,
};

/// Slots handled per batch: the unit of parallel work, of GC-lock holding and of progress.
const BATCH_SLOTS: usize = 512;

pub struct Store {
    dir: PathBuf,
    chunks: ChunkStore,
    chunk_size: usize,
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
    pub elapsed: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct GcStats {
    pub live_indexes: u64,
    pub removed_indexes: u64,
    pub marked_chunks: u64,
    pub sweep: SweepStats,
    pub elapsed: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub checked_chunks: u64,
    /// Corrupt chunks (hex digest, reason), now in quarantine.
    pub bad_chunks: Vec<(String, String)>,
    /// Indexes that reference a bad or missing chunk, or are themselves unreadable:
    /// (index name, reason).
    pub broken: Vec<(String, String)>,
    pub elapsed: Duration,
}

/// What one slot turned out to be during a capture.
enum Slot {
    Zero,
    Same,
    Changed(Digest, Inserted),
}

impl Store {
    /// Open the store at `dir`, creating it with `chunk_size` (or the default) if it is new.
    /// An existing store keeps the chunk size it was made with.
    pub fn open(dir: &Path, chunk_size_if_new: Option<usize>) -> Result<Self> {
        crate::private::create_dir_all(&dir.join("indexes")).ctx("create", dir)?;
        let conf = dir.join("store.toml");
        let chunk_size = match fs::read_to_string(&conf) {
            Ok(text) => parse_chunk_size(&text).ok_or_else(|| EngineError::BadStore {
                path: conf.clone(),
                why: "expected `chunk_size = <bytes>` (a power of two from 4 KiB to 16 MiB)".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let cs = chunk_size_if_new.unwrap_or(crate::DEFAULT_CHUNK_SIZE);
                if parse_chunk_size(&format!("chunk_size = {cs}")).is_none() {
                    return Err(EngineError::Invalid(format!(
                        "chunk size {cs} is not a power of two from 4 KiB to 16 MiB"
                    )));
                }
                write_durably(
                    &conf,
                    format!("# fixed when the store was created; never edit\nchunk_size = {cs}\n").as_bytes(),
                )?;
                cs
            }
            Err(e) => return Err(EngineError::Io { op: "read", path: conf, source: e }),
        };
        let chunks = ChunkStore::open(&dir.join("chunks"))?;
        Ok(Store { dir: dir.to_path_buf(), chunks, chunk_size })
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub fn chunks(&self) -> &ChunkStore {
        &self.chunks
    }

    fn index_path(&self, name: &str, ext: &str) -> Result<PathBuf> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(EngineError::Invalid(format!("index name {name:?} must be [A-Za-z0-9_-]+")));
        }
        Ok(self.dir.join("indexes").join(format!("{name}.{ext}")))
    }

    pub fn read_index(&self, name: &str) -> Result<FixedIndex> {
        FixedIndex::read(name, &self.index_path(name, "fidx")?)
    }

    pub fn has_index(&self, name: &str) -> bool {
        self.index_path(name, "fidx").map(|p| p.exists()).unwrap_or(false)
    }

    /// Forget an index. Its chunks stay until GC finds nothing else uses them.
    pub fn remove_index(&self, name: &str) -> Result<()> {
        for ext in ["fidx", "pending"] {
            let p = self.index_path(name, ext)?;
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(EngineError::Io { op: "remove", path: p, source: e }),
            }
        }
        Ok(())
    }

    /// Capture the image file `source` into a new index `name`.
    ///
    /// With a `parent`, only slots whose digest differs from the parent's are stored, and the
    /// new index is the parent's digest list with those slots overwritten. `on_taken` is called
    /// once every byte has been read: from then on, writes to the source cannot change the
    /// capture. The index is durable when this returns.
    pub fn capture(
        &self,
        name: &str,
        source: &Path,
        parent: Option<&str>,
        progress: &dyn Progress,
        on_taken: &mut dyn FnMut(),
    ) -> Result<CaptureStats> {
        let started = Instant::now();
        let final_path = self.index_path(name, "fidx")?;
        let pending_path = self.index_path(name, "pending")?;
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
        // The pending copy keeps the parent's chunks marked for a GC that runs meanwhile.
        let pending = Pin::create(&pending_path, &index)?;
        let result = self.capture_slots(&file, source, &mut index, parent.as_ref(), progress, on_taken);
        let outcome = result.and_then(|(stats, inserter_done)| {
            inserter_done?;
            index.write(&final_path)?;
            Ok(stats)
        });
        drop(pending);
        let mut stats = outcome?;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    #[allow(clippy::type_complexity)]
    fn capture_slots(
        &self,
        file: &File,
        source: &Path,
        index: &mut FixedIndex,
        parent: Option<&FixedIndex>,
        progress: &dyn Progress,
        on_taken: &mut dyn FnMut(),
    ) -> Result<(CaptureStats, Result<()>)> {
        let size = index.size;
        let extents = data_extents(file, size);
        let parent_set: HashSet<Digest> = parent.map(|p| p.digests.iter().copied().collect()).unwrap_or_default();
        let mut counted: HashSet<Digest> = HashSet::new();
        let inserter = self.chunks.inserter();
        let mut stats = CaptureStats { size, slots: index.digests.len() as u64, ..Default::default() };
        let read_bytes = AtomicU64::new(0);
        progress.start(size);
        let cs = self.chunk_size as u64;
        let slots = index.digests.len();
        for batch_start in (0..slots).step_by(BATCH_SLOTS) {
            let batch_end = (batch_start + BATCH_SLOTS).min(slots);
            let guard = self.chunks.lock(false)?;
            let results: Vec<Result<Slot>> = (batch_start..batch_end)
                .into_par_iter()
                .map_init(
                    || (vec![0u8; self.chunk_size], crate::chunk::Encoder::default()),
                    |(buf, encoder), i| {
                        let start = i as u64 * cs;
                        let len = index.slot_len(i);
                        if !overlaps_data(&extents, start, start + len as u64) {
                            return Ok(Slot::Zero);
                        }
                        let buf = &mut buf[..len];
                        read_full_at(file, source, buf, start)?;
                        read_bytes.fetch_add(len as u64, Ordering::Relaxed);
                        if is_zero(buf) {
                            return Ok(Slot::Zero);
                        }
                        let digest = *blake3::hash(buf).as_bytes();
                        if parent.is_some() && index.digests[i] == digest {
                            return Ok(Slot::Same);
                        }
                        Ok(Slot::Changed(digest, inserter.insert(&digest, buf, encoder)?))
                    },
                )
                .collect();
            drop(guard);
            for (i, r) in (batch_start..batch_end).zip(results) {
                match r? {
                    Slot::Zero => {
                        stats.zero_slots += 1;
                        if index.digests[i] != ZERO_DIGEST {
                            stats.changed_slots += 1;
                        }
                        index.digests[i] = ZERO_DIGEST;
                    }
                    Slot::Same => {}
                    Slot::Changed(d, ins) => {
                        stats.changed_slots += 1;
                        match ins {
                            Inserted::Written { stored } => {
                                stats.written_chunks += 1;
                                stats.written_bytes += stored;
                            }
                            Inserted::Existing { .. } => stats.reused_chunks += 1,
                        }
                        if !parent_set.contains(&d) && counted.insert(d) {
                            stats.added_bytes += ins.stored();
                        }
                        index.digests[i] = d;
                    }
                }
            }
            progress.advance((batch_end as u64 * cs).min(size));
        }
        stats.read_bytes = read_bytes.into_inner();
        on_taken();
        Ok((stats, inserter.commit()))
    }

    /// Keep the chunks of index `name` marked for GC while the returned guard lives, even if
    /// the index itself is removed meanwhile (a restore reading a point being deleted).
    fn pin(&self, name: &str, index: &FixedIndex) -> Result<Pin> {
        let path = self.index_path(&format!("{name}-read-{:016x}", rand::random::<u64>()), "pending")?;
        Pin::create(&path, index)
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
            self.restore_into(&index, &file, target, false, progress)
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
        let index = self.read_index(name)?;
        let _pin = self.pin(name, &index)?;
        self.check_present(&index)?;
        let file = OpenOptions::new().write(true).read(true).open(target).ctx("open", target)?;
        file.set_len(index.size).ctx("resize", target)?;
        self.restore_into(&index, &file, target, true, progress)
    }

    /// Fail before writing anything if a chunk the index needs is missing, so an in-place
    /// restore does not stop half way for that reason.
    fn check_present(&self, index: &FixedIndex) -> Result<()> {
        let distinct: HashSet<&Digest> = index.digests.iter().filter(|d| **d != ZERO_DIGEST).collect();
        for d in distinct {
            if !self.chunks.chunk_path(d).exists() {
                return Err(EngineError::MissingChunk { digest: hex::encode(d) });
            }
        }
        Ok(())
    }

    fn restore_into(
        &self,
        index: &FixedIndex,
        file: &File,
        path: &Path,
        compare: bool,
        progress: &dyn Progress,
    ) -> Result<RestoreStats> {
        let started = Instant::now();
        let extents = if compare { data_extents(file, index.size) } else { Vec::new() };
        let cs = self.chunk_size as u64;
        let mut stats = RestoreStats { size: index.size, ..Default::default() };
        progress.start(index.size);
        let slots = index.digests.len();
        for batch_start in (0..slots).step_by(BATCH_SLOTS) {
            let batch_end = (batch_start + BATCH_SLOTS).min(slots);
            #[derive(Clone, Copy)]
            enum Did {
                Zero,
                Unchanged,
                Wrote(u64),
            }
            let results: Vec<Result<Did>> = (batch_start..batch_end)
                .into_par_iter()
                .map_init(
                    || (vec![0u8; self.chunk_size], Vec::new(), Vec::new()),
                    |(cur, file_buf, raw), i| {
                        let start = i as u64 * cs;
                        let len = index.slot_len(i);
                        let want = &index.digests[i];
                        let has_data = compare && overlaps_data(&extents, start, start + len as u64);
                        if has_data {
                            let cur = &mut cur[..len];
                            read_full_at(file, path, cur, start)?;
                            if *want == ZERO_DIGEST {
                                if is_zero(cur) {
                                    return Ok(Did::Zero);
                                }
                                punch_hole(file, path, start, len)?;
                                return Ok(Did::Wrote(0));
                            }
                            if blake3::hash(cur).as_bytes() == want {
                                return Ok(Did::Unchanged);
                            }
                        } else if *want == ZERO_DIGEST {
                            return Ok(Did::Zero);
                        }
                        self.chunks.read(want, file_buf, raw)?;
                        if raw.len() != len {
                            return Err(EngineError::CorruptIndex {
                                name: hex::encode(want),
                                why: format!("slot {i} is {len} bytes but its chunk holds {}", raw.len()),
                            });
                        }
                        if compare {
                            write_all_at(file, path, raw, start)?;
                        } else {
                            // A new file is all holes: leave zero blocks inside the chunk unwritten
                            // (a 4 KiB write into a hole must not allocate the whole chunk).
                            write_nonzero_blocks(file, path, raw, start)?;
                        }
                        Ok(Did::Wrote(len as u64))
                    },
                )
                .collect();
            for r in results {
                match r? {
                    Did::Zero => stats.zero_slots += 1,
                    Did::Unchanged => stats.unchanged_slots += 1,
                    Did::Wrote(n) => {
                        stats.written_slots += 1;
                        stats.written_bytes += n;
                    }
                }
            }
            progress.advance((batch_end as u64 * cs).min(index.size));
        }
        file.sync_all().ctx("fsync", path)?;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Remove what processes that died left in the store: temp files named after one of
    /// `dead_pids` (chunk inserts, index writes and pins they had not finished) and `.pending`
    /// pins no live process holds (a capture or restore that was killed). Returns how many
    /// files went. Called when a crashed process's jobs are recovered, so a full disk is not
    /// left full of a dead job's temp files until a `gc` long after.
    pub fn remove_dead_temp_files(&self, dead_pids: &HashSet<u32>) -> Result<u64> {
        let mut removed = 0;
        if !dead_pids.is_empty() {
            removed += self.chunks.remove_temp_of(dead_pids)?;
        }
        let dir = self.dir.join("indexes");
        removed += crate::chunk_store::remove_temp_files_in(&dir, dead_pids)?;
        for e in fs::read_dir(&dir).ctx("list", &dir)? {
            let e = e.ctx("list", &dir)?;
            // A pending pin is locked before it gets its name, so one that can be locked
            // exclusively belongs to a dead process.
            if e.file_name().to_string_lossy().ends_with(".pending") && !Pin::is_held(&e.path()) {
                match fs::remove_file(e.path()) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(EngineError::Io { op: "remove", path: e.path(), source: err }),
                }
            }
        }
        Ok(removed)
    }

    /// Mark and sweep. `live` names every index the caller still needs. Also kept: indexes of
    /// captures still running (`.pending`), and indexes younger than `grace` (committed, but
    /// their caller may not have recorded them yet). Other index files are removed, and every
    /// chunk none of the kept indexes references and nobody touched within `grace` is deleted.
    pub fn gc(&self, live: &[String], grace: Duration, progress: &dyn Progress) -> Result<GcStats> {
        let started = Instant::now();
        let cutoff = SystemTime::now() - grace;
        let live: HashSet<&str> = live.iter().map(|s| s.as_str()).collect();
        let mut stats = GcStats::default();
        let mut marked: HashSet<Digest> = HashSet::new();
        let dir = self.dir.join("indexes");
        for e in fs::read_dir(&dir).ctx("list", &dir)? {
            let e = e.ctx("list", &dir)?;
            let fname = e.file_name().to_string_lossy().into_owned();
            let Some((name, ext)) = fname.rsplit_once('.') else { continue };
            let young = e.metadata().and_then(|m| m.modified()).map(|t| t >= cutoff).unwrap_or(true);
            let keep = match ext {
                "fidx" => live.contains(name) || young,
                "pending" => Pin::is_held(&e.path()),
                _ => young, // temp files of an index write in progress
            };
            if !keep {
                let _ = fs::remove_file(e.path());
                stats.removed_indexes += 1;
                continue;
            }
            if ext == "fidx" || ext == "pending" {
                match FixedIndex::read(name, &e.path()) {
                    Ok(idx) => marked.extend(idx.digests.iter().filter(|d| **d != ZERO_DIGEST)),
                    Err(EngineError::MissingIndex { .. }) => continue, // finished or dropped meanwhile
                    // A live index that fails to read must stop GC, never shrink the mark set.
                    Err(err) => return Err(err),
                }
                if ext == "fidx" {
                    stats.live_indexes += 1;
                }
            }
        }
        for name in &live {
            if !self.has_index(name) {
                return Err(EngineError::MissingIndex { name: name.to_string() });
            }
        }
        stats.marked_chunks = marked.len() as u64;
        progress.start(4096);
        stats.sweep = self.chunks.sweep(&marked, cutoff, &|n| progress.advance(n))?;
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Re-read every chunk, quarantine corrupt ones, and name the `live` indexes that a bad or
    /// missing chunk breaks.
    pub fn verify(&self, live: &[String], progress: &dyn Progress) -> Result<VerifyReport> {
        let started = Instant::now();
        let scan = self.chunks.verify_all(&|done, total| {
            if done == 0 {
                progress.start(total);
            }
            progress.advance(done);
        })?;
        let bad: HashSet<Digest> = scan.bad.iter().map(|(d, _)| *d).collect();
        let mut report = VerifyReport {
            checked_chunks: (scan.good.len() + scan.bad.len()) as u64,
            bad_chunks: scan.bad.iter().map(|(d, why)| (hex::encode(d), why.clone())).collect(),
            ..Default::default()
        };
        for name in live {
            match self.read_index(name) {
                Ok(idx) => {
                    let (mut n_bad, mut n_missing) = (0, 0);
                    for d in idx.digests.iter().filter(|d| **d != ZERO_DIGEST) {
                        if bad.contains(d) {
                            n_bad += 1;
                        } else if !scan.good.contains(d) {
                            n_missing += 1;
                        }
                    }
                    if n_bad + n_missing > 0 {
                        report.broken.push((
                            name.clone(),
                            format!("{n_bad} slots on corrupt chunks, {n_missing} on missing chunks"),
                        ));
                    }
                }
                Err(e) => report.broken.push((name.clone(), e.to_string())),
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

/// A `.pending` index: marks its chunks live for GC while its owner runs. The owner holds a
/// shared `flock` on it for its life; GC treats a pending index it can lock exclusively as
/// left by a dead process and removes it. It is locked before it gets its final name, so GC
/// never sees one unlocked while its owner lives. Removed when dropped.
struct Pin {
    path: PathBuf,
    _file: File,
}

impl Pin {
    fn create(path: &Path, index: &FixedIndex) -> Result<Pin> {
        // Named like every temp file of the store (`.tmp-<pid>-…`), so the temp file of a
        // process that died here is found by its pid (`Store::remove_dead_temp_files`).
        let tmp = path.with_file_name(format!(".tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
        let mut f = crate::private::create(&tmp).ctx("create", &tmp)?;
        let made = (|| {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH) } != 0 {
                return Err(EngineError::Io {
                    op: "flock",
                    path: tmp.clone(),
                    source: std::io::Error::last_os_error(),
                });
            }
            f.write_all(&index.encode()).ctx("write", &tmp)?;
            fs::rename(&tmp, path).ctx("rename", path)
        })();
        if let Err(e) = made {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Pin { path: path.to_path_buf(), _file: f })
    }

    /// True if a live process holds this pending index (false also when it is gone).
    fn is_held(path: &Path) -> bool {
        let Ok(f) = File::open(path) else { return false };
        // SAFETY: flock on an fd we own.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn parse_chunk_size(text: &str) -> Option<usize> {
    let line = text.lines().map(str::trim).find(|l| l.starts_with("chunk_size"))?;
    let cs: usize = line.split_once('=')?.1.trim().parse().ok()?;
    (cs.is_power_of_two() && (4096..=crate::chunk::MAX_CHUNK).contains(&cs)).then_some(cs)
}
