//! Garbage collection of a pack store: mark from the indexes, drop dead index entries, doom
//! packs with nothing live, delete them after the grace period, repack mostly dead ones.
//!
//! Safe against captures deduplicating meanwhile (see chunk_index.rs): entries go only through
//! a conditional delete that a capture's touch defeats, and the cutoff is older than the start
//! of every running capture (its pin's age). A pack object goes only once no entry points at it
//! and the grace period has passed since, so a restore that looked a chunk up just before
//! still finds the bytes; a repacked pack's entries move to the new pack before the old one is
//! doomed.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::chunk_index::{now_ms, PackEntry};
use crate::error::{EngineError, IoContext, Result};
use crate::index::{Digest, FixedIndex, ZERO_DIGEST};
use crate::pack::{new_pack_name, pack_key, pack_name, parse_whole, seal, seal_compacted, TARGET_PACK};
use crate::pin::{held_pins, Pin};
use crate::progress::Progress;
use crate::store::{GcStats, Store};

/// See `index_cutoff` in [`Store::gc`].
const ORPHAN_INDEX_AGE: Duration = Duration::from_secs(3600);

/// A pack whose live chunks fill less than this share of it is repacked.
const REPACK_BELOW: f64 = 0.5;

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Only one GC at a time per store directory (the server's maintenance and a `disksnap gc`).
    pub(crate) fn gc_lock(&self) -> Result<File> {
        let path = self.dir.join(".gc.lock");
        let f = crate::private::options().create(true).truncate(false).write(true).open(&path).ctx("open", &path)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(EngineError::Io { op: "flock", path, source: std::io::Error::last_os_error() });
        }
        Ok(f)
    }

    /// Mark and sweep. `live` names every index the caller still needs. Also kept: indexes of
    /// captures still running (their pins), and indexes younger than `grace` (committed, but
    /// their caller may not have recorded them yet). Other indexes are removed; chunk entries
    /// none of the kept indexes references and nobody used since the cutoff are dropped; packs
    /// left with no entry are doomed, and deleted once doomed for longer than `grace`; packs
    /// mostly dead are repacked.
    pub fn gc(&self, live: &[String], grace: Duration, progress: &dyn Progress) -> Result<GcStats> {
        let started = Instant::now();
        let _lock = self.gc_lock()?;
        let now = SystemTime::now();
        let pins = held_pins(&self.dir.join("indexes"))?;
        // Older than the start of every running capture or restore: their dedup touches and
        // new entries are all newer than this.
        let oldest_pin = pins.iter().map(|(_, t)| *t).min();
        let mut cutoff = now - grace;
        if let Some(t) = oldest_pin {
            cutoff = cutoff.min(t - Duration::from_secs(1));
        }
        let cutoff_s = millis(cutoff);
        // An index not in `live` is removed only when it is older than this as well: between a
        // capture writing its index and its caller recording it there is a window that no
        // grace the caller picks (even 0 s) should be able to cut.
        let index_cutoff = cutoff.min(now - ORPHAN_INDEX_AGE);
        let live: HashSet<&str> = live.iter().map(|s| s.as_str()).collect();
        let mut stats = GcStats::default();
        let mut marked: HashSet<Digest> = HashSet::new();
        let mut read: HashSet<String> = HashSet::new();
        progress.start(4);
        for obj in self.backend.list("indexes/")? {
            let Some(name) = obj.key.strip_prefix("indexes/").and_then(|n| n.strip_suffix(".fidx")) else { continue };
            if !live.contains(name) && obj.modified < index_cutoff {
                self.backend.delete(&obj.key)?;
                stats.removed_indexes += 1;
                continue;
            }
            match self.read_index(name) {
                Ok(idx) => {
                    marked.extend(idx.digests.iter().filter(|d| **d != ZERO_DIGEST));
                    read.insert(name.to_string());
                }
                Err(EngineError::MissingIndex { .. }) => continue, // removed meanwhile
                // A live index that fails to read must stop GC, never shrink the mark set.
                Err(err) => return Err(err),
            }
            stats.live_indexes += 1;
        }
        for (path, _) in &pins {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            match fs::read(path) {
                Ok(bytes) => {
                    marked.extend(FixedIndex::decode(&name, &bytes)?.digests.iter().filter(|d| **d != ZERO_DIGEST))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // its job ended meanwhile
                Err(e) => return Err(EngineError::Io { op: "read", path: path.clone(), source: e }),
            }
        }
        // Every live index must have been read above (a HEAD per name would cost a request per
        // snapshot on S3 for what the listing already said).
        for name in &live {
            if !read.contains(*name) {
                return Err(EngineError::MissingIndex { name: name.to_string() });
            }
        }
        stats.marked_chunks = marked.len() as u64;
        progress.advance(1);

        // Packs first, entries second: a pack recorded meanwhile (with its entries, in one
        // transaction) is then not in `known`, so it cannot look empty below.
        let known = self.index.packs()?;
        // Drop the entries nothing references, unless used since the cutoff.
        let entries = self.index.chunks()?;
        let mut dead: Vec<Digest> = Vec::new();
        let mut dead_bytes: HashMap<Digest, u64> = HashMap::new();
        for e in &entries {
            if marked.contains(&e.digest) {
                stats.sweep.kept += 1;
                stats.sweep.kept_bytes += e.location.len as u64;
            } else if e.used_at >= cutoff_s {
                stats.sweep.kept_recent += 1;
            } else {
                dead.push(e.digest);
                dead_bytes.insert(e.digest, e.location.len as u64);
            }
        }
        let mut removed: HashSet<Digest> = HashSet::new();
        for part in dead.chunks(1000) {
            removed.extend(self.index.remove_unused(part, cutoff_s)?);
        }
        stats.sweep.removed = removed.len() as u64;
        stats.sweep.removed_bytes = removed.iter().map(|d| dead_bytes[d]).sum();
        stats.sweep.kept_recent += (dead.len() - removed.len()) as u64;
        progress.advance(2);

        // Packs: what is still live in each (entries left after the removal above).
        let mut live_in: HashMap<String, (u64, Vec<PackEntry>)> = HashMap::new();
        for e in entries.iter().filter(|e| !removed.contains(&e.digest)) {
            let slot = live_in.entry(e.location.pack.clone()).or_default();
            slot.0 += e.location.len as u64;
            // The raw length is read again from the frame if this pack is repacked.
            slot.1.push(PackEntry { digest: e.digest, offset: e.location.offset, len: e.location.len, raw_len: None });
        }
        let objects: HashMap<String, (u64, SystemTime)> = self
            .backend
            .list("packs/")?
            .into_iter()
            .filter_map(|o| pack_name(&o.key).map(|n| (n.to_string(), (o.size, o.modified))))
            .collect();
        let now_s = now_ms();
        let grace_s = grace.as_millis() as i64;
        let mut to_repack = Vec::new();
        let known_names: HashSet<&str> = known.iter().map(|p| p.name.as_str()).collect();
        for p in &known {
            match (&p.doomed_at, live_in.get(&p.name)) {
                (Some(at), None) if *at <= now_s - grace_s => {
                    self.backend.delete(&pack_key(&p.name))?;
                    self.index.forget_pack(&p.name)?;
                    stats.deleted_packs += 1;
                    stats.deleted_pack_bytes += p.size;
                }
                (Some(_), _) => {}
                (None, None) => {
                    self.index.doom_pack(&p.name, now_s)?;
                    stats.doomed_packs += 1;
                    if grace.is_zero() {
                        self.backend.delete(&pack_key(&p.name))?;
                        self.index.forget_pack(&p.name)?;
                        stats.deleted_packs += 1;
                        stats.deleted_pack_bytes += p.size;
                    }
                }
                (None, Some((bytes, chunks))) => {
                    let old_enough = objects.get(&p.name).is_some_and(|(_, m)| *m < cutoff);
                    if old_enough && (*bytes as f64) < REPACK_BELOW * p.size as f64 {
                        to_repack.push((p.name.clone(), chunks.clone()));
                    }
                }
            }
        }
        // Pack objects no index row names: a job died between its put and its index rows.
        for (name, (size, modified)) in &objects {
            if !known_names.contains(name.as_str()) && *modified < cutoff {
                self.backend.delete(&pack_key(name))?;
                stats.deleted_packs += 1;
                stats.deleted_pack_bytes += size;
            }
        }
        progress.advance(3);
        stats.repacked_packs = self.repack(to_repack, grace)?;
        progress.advance(4);
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// Copy the live chunks of each pack into new packs (frames unchanged), point their entries
    /// there, and doom the old packs (deleted by a later GC once the grace has passed, so a
    /// reader that found the old location meanwhile can still read it).
    fn repack(&self, packs: Vec<(String, Vec<PackEntry>)>, grace: Duration) -> Result<u64> {
        let mut buf: Vec<u8> = Vec::new();
        let mut entries: Vec<PackEntry> = Vec::new();
        let mut sources: Vec<(String, Vec<PackEntry>)> = Vec::new();
        let mut done = 0;
        for (i, (name, live)) in packs.iter().enumerate() {
            let bytes = self.backend.get(&pack_key(name))?;
            parse_whole(name, &bytes)?;
            let mut moved = Vec::new();
            for e in live {
                let frame = bytes.get(e.offset as usize..(e.offset + e.len as u64) as usize).ok_or_else(|| {
                    EngineError::CorruptPack { pack: name.clone(), why: "an entry lies past its end".into() }
                })?;
                // The frame's header has the raw length even when the old (v1) trailer did not.
                let n = PackEntry {
                    digest: e.digest,
                    offset: buf.len() as u64,
                    len: e.len,
                    raw_len: crate::chunk::raw_len_of(frame),
                };
                buf.extend_from_slice(frame);
                entries.push(n);
                moved.push(n);
            }
            sources.push((name.clone(), moved));
            if buf.len() >= TARGET_PACK || i + 1 == packs.len() {
                done += self.flush_repack(&mut buf, &mut entries, &mut sources, grace, false)?;
            }
        }
        Ok(done)
    }

    /// Put `buf` as a new pack (sealed as compaction's when `compacted`), move `sources`'
    /// entries into it, and doom the packs they came from.
    pub(crate) fn flush_repack(
        &self,
        buf: &mut Vec<u8>,
        entries: &mut Vec<PackEntry>,
        sources: &mut Vec<(String, Vec<PackEntry>)>,
        grace: Duration,
        compacted: bool,
    ) -> Result<u64> {
        let name = new_pack_name();
        let mut bytes = std::mem::take(buf);
        let all = std::mem::take(entries);
        if !all.is_empty() {
            if compacted {
                seal_compacted(&mut bytes, &all);
            } else {
                seal(&mut bytes, &all);
            }
            let size = bytes.len() as u64;
            self.backend.put(&pack_key(&name), bytes)?;
            self.index.add_pack(&name, size, &all)?;
        }
        let now = now_ms();
        let n = sources.len() as u64;
        for (old, moved) in sources.drain(..) {
            self.index.move_entries(&old, &name, &moved)?;
            self.index.doom_pack(&old, now)?;
            if grace.is_zero() {
                self.backend.delete(&pack_key(&old))?;
                self.index.forget_pack(&old)?;
            }
        }
        Ok(n)
    }

    /// Remove what processes that died left in the store: temp files named after one of
    /// `dead_pids` (pack and index writes and pins they had not finished) and `.pending` pins
    /// no live process holds (a capture or restore that was killed). Returns how many files
    /// went. Packs a dead job had already put are left to GC (they are unindexed or
    /// unreferenced, and the grace period protects nothing else).
    pub fn remove_dead_temp_files(&self, dead_pids: &HashSet<u32>) -> Result<u64> {
        let mut removed = 0;
        if !dead_pids.is_empty() {
            if let Some(l) = &self.legacy {
                removed += l.remove_temp_of(dead_pids)?;
            }
            removed += crate::chunk_store::remove_temp_files_in(&self.dir, dead_pids)?;
            let packs = self.dir.join("packs");
            if let Ok(dirs) = fs::read_dir(&packs) {
                for d in dirs.flatten() {
                    removed += crate::chunk_store::remove_temp_files_in(&d.path(), dead_pids)?;
                }
            }
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
}
