//! Verify a pack store, rebuild its chunk index from the packs, and move a pre-pack store's
//! chunk files into packs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::chunk_index::Location;
use crate::error::{EngineError, Result};
use crate::index::{Digest, ZERO_DIGEST};
use crate::pack::{footer_range, pack_key, pack_name, parse_trailer, read_trailer, trailer_range, PackWriter};
use crate::progress::Progress;
use crate::store::{coalesce, Store, VerifyReport};

#[derive(Debug, Default, Clone)]
pub struct RebuildStats {
    pub packs: u64,
    pub chunks: u64,
    /// Packs whose trailer is unreadable (name, reason): their chunks are not indexed.
    pub bad_packs: Vec<(String, String)>,
}

/// What verify found in one pack: chunks that check, chunks that do not (with why), and a
/// trailer that cannot be read (pack name, why).
#[derive(Default)]
struct PackVerdict {
    good: Vec<Digest>,
    bad: Vec<(Digest, String)>,
    trailer: Option<(String, String)>,
}

impl PackVerdict {
    fn all_bad(chunks: &[(Digest, Location)], why: String) -> Self {
        PackVerdict { bad: chunks.iter().map(|(d, _)| (*d, why.clone())).collect(), ..Default::default() }
    }
}

#[derive(Debug, Default, Clone)]
pub struct MigrateStats {
    pub chunks: u64,
    pub bytes: u64,
    pub packs: u64,
    /// Chunk files that failed their checks (hex digest, reason): left in place.
    pub bad_chunks: Vec<(String, String)>,
}

impl Store {
    /// Re-read every pack (or, with `sample_percent`, about that share of them), check every
    /// indexed chunk in it (CRC, decompression, BLAKE3), drop corrupt chunks from the index (so
    /// the next capture that meets those bytes writes a good copy), and name the `live`
    /// indexes that a bad or missing chunk breaks.
    pub fn verify(&self, live: &[String], progress: &dyn Progress) -> Result<VerifyReport> {
        self.verify_sample(live, 100, progress)
    }

    pub fn verify_sample(&self, live: &[String], sample_percent: u8, progress: &dyn Progress) -> Result<VerifyReport> {
        let started = Instant::now();
        let entries = self.index.chunks()?;
        let mut by_pack: HashMap<String, Vec<(Digest, Location)>> = HashMap::new();
        for e in &entries {
            by_pack.entry(e.location.pack.clone()).or_default().push((e.digest, e.location.clone()));
        }
        let existing: HashMap<String, u64> = self
            .backend
            .list("packs/")?
            .into_iter()
            .filter_map(|o| pack_name(&o.key).map(|n| (n.to_string(), o.size)))
            .collect();
        let mut packs: Vec<(String, Vec<(Digest, Location)>)> = by_pack.into_iter().collect();
        if sample_percent < 100 {
            // A random sample: over repeated runs every pack gets checked.
            packs.retain(|_| rand::random::<u8>() % 100 < sample_percent);
        }
        let total = packs.len() as u64;
        progress.start(total);
        let done = AtomicU64::new(0);
        // The backend's read threads (several for S3, whose reads mostly wait; at most 4),
        // each with one reused read buffer and one decode buffer.
        let results: Vec<PackVerdict> = self.verify_pool().install(|| {
            packs
                .par_iter()
                .map_init(
                    || (Vec::new(), Vec::new()),
                    |(buf, raw), (name, chunks)| {
                        let out = match existing.get(name) {
                            None => PackVerdict::all_bad(chunks, format!("its pack {name} is missing")),
                            Some(&size) => self.check_pack(name, size, chunks, buf, raw),
                        };
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_multiple_of(16) {
                            progress.advance(n);
                        }
                        out
                    },
                )
                .collect()
        });
        progress.advance(total);
        let mut good: HashSet<Digest> = HashSet::new();
        let mut bad: Vec<(Digest, String)> = Vec::new();
        let mut report = VerifyReport { checked_packs: total, ..Default::default() };
        for PackVerdict { good: g, bad: b, trailer } in results {
            good.extend(g);
            bad.extend(b);
            // Chunks fine but the trailer broken: the index could not be rebuilt from this
            // pack. Reported; a repack rewrites it once its chunks die or GC moves them.
            report.bad_trailers.extend(trailer);
        }
        if let Some(legacy) = &self.legacy {
            let scan = legacy.verify_all(&|_, _| {})?;
            good.extend(scan.good);
            bad.extend(scan.bad);
        }
        let bad_set: HashSet<Digest> = bad.iter().map(|(d, _)| *d).collect();
        let bad_list: Vec<Digest> = bad_set.iter().copied().collect();
        for part in bad_list.chunks(1000) {
            self.index.remove(part)?;
        }
        report.checked_chunks = (good.len() + bad_set.len()) as u64;
        report.bad_chunks = bad.iter().map(|(d, why)| (hex::encode(d), why.clone())).collect();
        let indexed: HashSet<Digest> = entries.iter().map(|e| e.digest).collect();
        for name in live {
            match self.read_index(name) {
                Ok(idx) => {
                    let (mut n_bad, mut n_missing) = (0, 0);
                    for d in idx.digests.iter().filter(|d| **d != ZERO_DIGEST) {
                        if bad_set.contains(d) {
                            n_bad += 1;
                        } else if !indexed.contains(d) && !good.contains(d) {
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

    /// Check one pack's trailer and every indexed chunk in it, reading from the store itself
    /// (never a read cache) in ranged reads of neighbouring chunks into `buf`. Reading whole
    /// 16 MiB packs instead held 94 MiB of anonymous memory at peak with two threads (local)
    /// and 150-166 MiB RSS on S3, against the 100 MiB budget.
    fn check_pack(
        &self,
        name: &str,
        size: u64,
        chunks: &[(Digest, Location)],
        buf: &mut Vec<u8>,
        raw: &mut Vec<u8>,
    ) -> PackVerdict {
        let key = pack_key(name);
        let read = |range: std::ops::Range<u64>, buf: &mut Vec<u8>| {
            self.backend.read_range_uncached_into(&key, range, buf).map_err(|e| format!("pack {name} unreadable: {e}"))
        };
        let trailer = (|| {
            read(footer_range(size), buf)?;
            let footer = std::mem::take(buf);
            read(trailer_range(size, &footer)?, buf)?;
            parse_trailer(size, &footer, buf).map(drop)
        })()
        .err()
        .map(|why| (name.to_string(), EngineError::CorruptPack { pack: name.to_string(), why }.to_string()));
        let mut sorted = chunks.to_vec();
        sorted.sort_by_key(|(_, l)| l.offset);
        let mut verdict = PackVerdict { trailer, ..Default::default() };
        for r in coalesce(name, sorted, crate::backend::DEFAULT_READ_SPAN) {
            if r.range.end > size {
                verdict.bad.extend(r.chunks.iter().map(|(d, _)| (*d, format!("lies past the end of pack {name}"))));
                continue;
            }
            if let Err(why) = read(r.range.clone(), buf) {
                verdict.bad.extend(r.chunks.iter().map(|(d, _)| (*d, why.clone())));
                continue;
            }
            for (d, l) in &r.chunks {
                let at = (l.offset - r.range.start) as usize;
                match crate::chunk::decode(&buf[at..at + l.len as usize], d, raw) {
                    Ok(()) => verdict.good.push(*d),
                    Err(why) => verdict.bad.push((*d, format!("in pack {name}: {why}"))),
                }
            }
        }
        verdict
    }

    /// Forget the chunk index and read it back from the packs' trailers (`disksnap repair
    /// --rebuild-index`). The first pack listed wins for a chunk stored twice.
    pub fn rebuild_index(&self, progress: &dyn Progress) -> Result<RebuildStats> {
        let objects: Vec<(String, u64)> = self
            .backend
            .list("packs/")?
            .into_iter()
            .filter_map(|o| pack_name(&o.key).map(|n| (n.to_string(), o.size)))
            .collect();
        self.index.clear()?;
        progress.start(objects.len() as u64);
        let results: Vec<(String, Result<u64>)> = objects
            .par_iter()
            .map(|(name, size)| {
                let r = read_trailer(&*self.backend, name, *size).and_then(|entries| {
                    self.index.add_pack(name, *size, &entries)?;
                    Ok(entries.len() as u64)
                });
                (name.clone(), r)
            })
            .collect();
        progress.advance(objects.len() as u64);
        let mut stats = RebuildStats::default();
        for (name, r) in results {
            match r {
                Ok(n) => {
                    stats.packs += 1;
                    stats.chunks += n;
                }
                Err(e @ EngineError::CorruptPack { .. }) => stats.bad_packs.push((name, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        Ok(stats)
    }

    /// Whether chunk files of a store made before packs are still here.
    pub fn has_legacy_chunks(&self) -> bool {
        self.legacy.is_some()
    }

    /// Move the chunk files of a store made before packs into packs (`disksnap
    /// migrate-store`): frames are copied unchanged, packs are durable and indexed before any
    /// file is removed, so an interrupted migration is simply run again.
    pub fn migrate_legacy(&self, progress: &dyn Progress) -> Result<MigrateStats> {
        let Some(legacy) = &self.legacy else { return Ok(MigrateStats::default()) };
        let files = legacy.list_chunks()?;
        progress.start(files.len() as u64);
        let mut stats = MigrateStats::default();
        let writer = PackWriter::new(self.backend.clone(), self.index.clone());
        let mut moved = Vec::new();
        for (i, part) in files.chunks(1024).enumerate() {
            let digests: Vec<Digest> = part.iter().map(|(d, _)| *d).collect();
            let known = self.index.find(&digests)?;
            let results: Vec<(Digest, std::result::Result<Option<u64>, String>)> = part
                .par_iter()
                .zip(known)
                .map_init(Vec::new, |raw, ((d, path), known)| {
                    if known.is_some() {
                        return (*d, Ok(None));
                    }
                    let r = std::fs::read(path).map_err(|e| e.to_string()).and_then(|frame| {
                        crate::chunk::decode(&frame, d, raw)?;
                        if writer.claim(d).is_none() {
                            writer.add(d, &frame).map_err(|e| e.to_string())?;
                        }
                        Ok(Some(frame.len() as u64))
                    });
                    (*d, r)
                })
                .collect();
            for ((d, r), (_, path)) in results.into_iter().zip(part) {
                match r {
                    Ok(n) => {
                        stats.chunks += 1;
                        stats.bytes += n.unwrap_or(0);
                        moved.push(path.clone());
                    }
                    Err(why) => stats.bad_chunks.push((hex::encode(d), why)),
                }
            }
            progress.advance(((i + 1) * 1024).min(files.len()) as u64);
        }
        stats.packs = writer.finish()?.len() as u64;
        for path in moved {
            let _ = std::fs::remove_file(path);
        }
        if stats.bad_chunks.is_empty() {
            legacy.remove_if_empty()?;
        }
        Ok(stats)
    }
}
