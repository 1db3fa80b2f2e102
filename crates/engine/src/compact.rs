//! Compaction: re-encode the chunks a capture compressed at its own speed (zstd level 1, no
//! dictionary) with the store's dictionary at a higher level, pack by pack (issue 12's store
//! size; `disksnap compact`).
//!
//! It is GC's repack with a different copy step, and as safe against captures, restores and
//! GC for the same reasons (gc.rs): it holds GC's lock; it reads the packs before their
//! entries, so a pack recorded meanwhile is not judged; it moves an entry only while it still
//! points at the old pack; the old pack is doomed and deleted after the grace period, so a
//! reader that found the old location just before still reads it. A chunk's name is the hash
//! of its raw bytes, so a re-encoded chunk is the same chunk: no index of any snapshot changes.
//!
//! Which packs: those not written by compaction (their footer says so) whose trailer shows a
//! compressed live chunk; a pack of incompressible chunks is left unread but for its trailer.
//! The dictionary is the store's (`dicts/`), trained on the first run from ~128 compressed
//! chunks spread over the store, and put before any pack that uses it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use zstd::dict::EncoderDictionary;

use crate::chunk::{self, HEADER_LEN};
use crate::chunk_index::PackEntry;
use crate::dict;
use crate::error::{EngineError, Result};
use crate::pack::{footer_range, is_compacted, pack_key, read_trailer_after, TARGET_PACK};
use crate::progress::Progress;
use crate::store::Store;

/// zstd level of re-encoded chunks: with the dictionary, level 2 gave 2.33:1 on the bench's
/// text at ~150 MB/s a core (level 3: 2.49:1 at ~85 MB/s; level 1 barely uses a dictionary).
const LEVEL: i32 = 2;
/// Chunks sampled to train a dictionary, and the packs they are spread over.
const SAMPLES: usize = 128;
const SAMPLE_PACKS: usize = 32;
/// Fewer compressed chunks than this: no dictionary is worth training yet.
const MIN_SAMPLES: usize = 16;
/// Bytes of a pack's frames read and re-encoded at once.
const READ_BATCH: usize = 4 << 20;

#[derive(Debug, Default, Clone)]
pub struct CompactStats {
    /// The dictionary used (hex id), and whether this run trained it.
    pub dictionary: Option<String>,
    pub trained: bool,
    /// Compressed chunks were found but too few to train a dictionary on: nothing was done.
    pub too_few_to_train: bool,
    /// Packs looked at; rewritten; passed by (written by compaction, or nothing to gain).
    pub packs: u64,
    pub compacted_packs: u64,
    pub skipped_packs: u64,
    /// Chunks re-encoded with the dictionary; copied as they were (incompressible, or no smaller).
    pub reencoded_chunks: u64,
    pub copied_chunks: u64,
    /// Stored bytes of the moved chunks before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub elapsed: Duration,
}

type Scratch = (Option<zstd::zstd_safe::CCtx<'static>>, Vec<u8>, Vec<u8>);

thread_local! {
    /// A thread's compression context and its decode and encode buffers.
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new((None, Vec::new(), Vec::new())) };
}

impl Store {
    /// Re-encode the store's compressed chunks with its dictionary (see the module doc). Old
    /// packs are deleted by a GC once `grace` has passed (at once when it is zero, safe only
    /// while nothing reads the store).
    pub fn compact(&self, grace: Duration, progress: &dyn Progress) -> Result<CompactStats> {
        let started = Instant::now();
        let _lock = self.gc_lock()?;
        let mut stats = CompactStats::default();
        // Packs first, entries second (see the module doc).
        let known: Vec<_> = self.index.packs()?.into_iter().filter(|p| p.doomed_at.is_none()).collect();
        let mut live: HashMap<String, Vec<PackEntry>> = HashMap::new();
        for e in self.index.chunks()? {
            live.entry(e.location.pack.clone()).or_default().push(PackEntry {
                digest: e.digest,
                offset: e.location.offset,
                len: e.location.len,
                raw_len: None,
            });
        }
        // Progress: the packs looked at, then the packs rewritten.
        progress.start(known.len() as u64);
        // The packs worth reading: not compaction's own, with a compressed live chunk.
        let mut todo: Vec<(String, Vec<PackEntry>)> = Vec::new();
        for p in &known {
            stats.packs += 1;
            progress.advance(stats.packs);
            let Some(entries) = live.remove(&p.name) else { continue };
            let footer = self.backend.get_ranges(&pack_key(&p.name), &[footer_range(p.size)])?.remove(0);
            if is_compacted(&footer) {
                stats.skipped_packs += 1;
                continue;
            }
            let raw_lens: HashMap<_, _> = read_trailer_after(self.backend.as_ref(), &p.name, p.size, &footer)?
                .into_iter()
                .map(|e| (e.offset, e.raw_len))
                .collect();
            // A frame shorter than its raw bytes plus a header is compressed (v1 packs, without
            // raw lengths, are read to find out).
            let compressed = entries.iter().any(|e| match raw_lens.get(&e.offset).copied().flatten() {
                Some(raw) => (e.len as usize) < raw as usize + HEADER_LEN,
                None => true,
            });
            if compressed {
                todo.push((p.name.clone(), entries));
            } else {
                stats.skipped_packs += 1;
            }
        }
        if todo.is_empty() {
            stats.elapsed = started.elapsed();
            return Ok(stats);
        }
        let Some(dictionary) = self.dictionary(&todo, &mut stats)? else {
            stats.too_few_to_train = true;
            stats.skipped_packs += todo.len() as u64;
            stats.elapsed = started.elapsed();
            return Ok(stats);
        };
        let cdict = EncoderDictionary::copy(&dictionary, LEVEL);

        // Room for a full pack and its trailer at once: grown by doubling, it held up to twice that.
        let mut buf: Vec<u8> = Vec::with_capacity(TARGET_PACK + (2 << 20));
        let mut entries: Vec<PackEntry> = Vec::new();
        let mut sources: Vec<(String, Vec<PackEntry>)> = Vec::new();
        let count = todo.len();
        progress.start(count as u64);
        for (i, (name, mut live)) in todo.into_iter().enumerate() {
            live.sort_by_key(|e| e.offset);
            let corrupt = |why: &str| EngineError::CorruptPack { pack: name.clone(), why: why.to_string() };
            // The new pack is put before this pack's chunks could take it past its size (they
            // only shrink): one pack's worth of frames in memory, not two (issue 12's RSS bound).
            let old_len: usize = live.iter().map(|e| e.len as usize).sum();
            if !buf.is_empty() && buf.len() + old_len > TARGET_PACK {
                stats.compacted_packs += self.flush_repack(&mut buf, &mut entries, &mut sources, grace, true)?;
                buf.reserve(TARGET_PACK + (2 << 20)); // the flush took the old one
            }
            let mut moved = Vec::with_capacity(live.len());
            // The live frames in batches of ~READ_BATCH (ranged reads; neighbours coalesce).
            let mut rest = &live[..];
            while !rest.is_empty() {
                let mut n = 0;
                let mut bytes = 0;
                while n < rest.len() && (n == 0 || bytes + rest[n].len as usize <= READ_BATCH) {
                    bytes += rest[n].len as usize;
                    n += 1;
                }
                let (batch, later) = rest.split_at(n);
                rest = later;
                let ranges: Vec<_> = batch.iter().map(|e| e.offset..e.offset + e.len as u64).collect();
                let frames = self.backend.get_ranges(&pack_key(&name), &ranges)?;
                if frames.iter().zip(batch).any(|(f, e)| f.len() != e.len as usize) {
                    return Err(corrupt("an entry lies past its end"));
                }
                // Decode (checked against the chunk's name) and re-encode, one thread per core
                // (rayon's global pool): it is CPU work, and each thread keeps a level-2
                // context with the dictionary (MiBs; the read pool's 8-16 threads cost ~20 MiB).
                let encoded: Vec<std::result::Result<Option<Vec<u8>>, String>> = {
                    frames
                        .par_iter()
                        .zip(batch.par_iter())
                        .map(|(frame, e)| {
                            if !chunk::is_plain_zstd(frame) {
                                return Ok(None);
                            }
                            // The thread's buffers are reused; what is kept is a copy of its
                            // exact size (a frame left in a worst-case buffer holds ~1 KiB per
                            // 1 KiB of raw text).
                            SCRATCH.with(|cell| {
                                let mut guard = cell.borrow_mut();
                                let (cctx, raw, out) = &mut *guard;
                                let cctx = cctx.get_or_insert_with(zstd::zstd_safe::CCtx::create);
                                let bytes = chunk::decode_ref(frame, &e.digest, raw)?;
                                let smaller = chunk::encode_with_dict(cctx, &cdict, bytes, frame.len(), out);
                                Ok(smaller.then(|| out.clone()))
                            })
                        })
                        .collect()
                };
                for ((frame, e), new) in frames.iter().zip(batch).zip(encoded) {
                    let new = new.map_err(|why| corrupt(&format!("chunk {}: {why}", hex::encode(e.digest))))?;
                    let frame: &[u8] = match &new {
                        Some(f) => {
                            stats.reencoded_chunks += 1;
                            f
                        }
                        None => {
                            stats.copied_chunks += 1;
                            frame
                        }
                    };
                    stats.bytes_before += e.len as u64;
                    stats.bytes_after += frame.len() as u64;
                    let n = PackEntry {
                        digest: e.digest,
                        offset: buf.len() as u64,
                        len: frame.len() as u32,
                        raw_len: chunk::raw_len_of(frame),
                    };
                    buf.extend_from_slice(frame);
                    entries.push(n);
                    moved.push(n);
                }
            }
            sources.push((name, moved));
            if buf.len() >= TARGET_PACK || i + 1 == count {
                stats.compacted_packs += self.flush_repack(&mut buf, &mut entries, &mut sources, grace, true)?;
                if i + 1 < count {
                    buf.reserve(TARGET_PACK + (2 << 20));
                }
            }
            progress.advance(i as u64 + 1);
        }
        stats.elapsed = started.elapsed();
        Ok(stats)
    }

    /// The store's dictionary: the one in `dicts/`, else one trained now from compressed chunks
    /// of `todo`'s packs and put before it is used. None: too few compressed chunks yet.
    fn dictionary(&self, todo: &[(String, Vec<PackEntry>)], stats: &mut CompactStats) -> Result<Option<Vec<u8>>> {
        if let Some(d) = self.store_dictionary()? {
            stats.dictionary = Some(format!("{:08x}", d.id));
            return Ok(Some(d.bytes.clone()));
        }
        // Up to SAMPLES frames, a few from each of up to SAMPLE_PACKS packs spread over the store.
        let step = todo.len().div_ceil(SAMPLE_PACKS).max(1);
        let per_pack = SAMPLES.div_ceil(todo.len().div_ceil(step)).max(1);
        let (mut samples, mut sizes) = (Vec::new(), Vec::new());
        let mut raw = Vec::new();
        for (name, live) in todo.iter().step_by(step) {
            let pick: Vec<&PackEntry> = live.iter().step_by((live.len() / per_pack).max(1)).take(per_pack).collect();
            let ranges: Vec<_> = pick.iter().map(|e| e.offset..e.offset + e.len as u64).collect();
            for (frame, e) in self.backend.get_ranges(&pack_key(name), &ranges)?.iter().zip(pick) {
                if chunk::is_plain_zstd(frame) && chunk::decode(frame, &e.digest, &mut raw).is_ok() {
                    samples.extend_from_slice(&raw);
                    sizes.push(raw.len());
                }
            }
        }
        if sizes.len() < MIN_SAMPLES {
            return Ok(None);
        }
        let Some(bytes) = dict::train(&samples, &sizes) else { return Ok(None) };
        drop(samples);
        let published = Arc::new(dict::publish(&*self.backend, bytes)?);
        *self.dict.lock().unwrap_or_else(|p| p.into_inner()) = Some(published.clone());
        stats.dictionary = Some(format!("{:08x}", published.id));
        stats.trained = true;
        Ok(Some(published.bytes.clone()))
    }
}
