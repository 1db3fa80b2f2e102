//! Pack files: many chunk frames in one immutable object, with a trailer that lists them.
//!
//! ```text
//! frame 0, frame 1, …            chunk frames exactly as chunk.rs writes them (header, CRC, payload)
//! n × 48 bytes                   trailer, one entry per frame: digest (32) | offset u64 LE |
//!                                length u32 LE | raw length u32 LE (the chunk's uncompressed size)
//! 4                              n (u32 LE)
//! 4                              CRC-32 of the trailer entries (u32 LE)
//! 8                              magic b"DSNPPAK2"
//! ```
//! Packs `disksnap compact` wrote end in b"DSNPPAKZ" instead (the same layout; their frames
//! may use the store's dictionary, and compaction passes them by).
//! Packs written before the raw length was recorded end in b"DSNPPAK1" and have 44-byte entries
//! without it; they stay readable (never change either magic), and their chunks' raw lengths
//! are unknown until GC repacks them (the frames' headers carry it).
//! The trailer makes a pack self-describing: the chunk index can be rebuilt from the packs
//! alone. Packs are named by 128 random bits and never rewritten, so two writers (two jobs, two
//! nodes) never collide and no backend needs conditional writes.
//!
//! A capture fills its own pack (never shared with another job while open) up to
//! [`TARGET_PACK`] and hands it to a small pool of uploaders, which put it and then record its
//! chunks in the index: a chunk is in the index only once its pack is durable.

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::backend::Backend;
use crate::chunk_index::{ChunkIndex, PackEntry};
use crate::error::{EngineError, Result};
use crate::index::Digest;

/// A pack is closed once its frames reach this size: restic uses 16 MiB, kopia 20 MiB. On S3
/// that is ~260 PUTs per 4 GiB of new data; locally, ~260 files instead of ~26 000.
pub const TARGET_PACK: usize = 16 << 20;
/// A pack buffer's capacity: a pack closes at the first frame that takes it past
/// [`TARGET_PACK`], so it holds up to one chunk more, and its trailer.
const PACK_CAPACITY: usize = TARGET_PACK + (1 << 20);
/// Uploads at once, each holding its pack in memory: two 16 MiB PUTs keep RGW on loopback busy
/// (one stream ~150 MiB/s measured), and two direct writes a local disk; four cost 64 MiB of
/// RSS.
const MAX_UPLOADS: usize = 2;

const MAGIC: &[u8; 8] = b"DSNPPAK2";
const ENTRY_LEN: usize = 48;
const MAGIC_V1: &[u8; 8] = b"DSNPPAK1";
/// A pack written by compaction (compact.rs): v2's layout. Several bits away from the other
/// magics, so one flipped bit of a footer never reads as another kind of pack.
const MAGIC_COMPACTED: &[u8; 8] = b"DSNPPAKZ";
const ENTRY_LEN_V1: usize = 44;
const FOOTER_LEN: usize = 16;

/// The object key of a pack.
pub fn pack_key(name: &str) -> String {
    format!("packs/{}/{name}.pack", &name[..2])
}

/// The pack name in an object key, if the key is a pack's.
pub fn pack_name(key: &str) -> Option<&str> {
    let name = key.strip_prefix("packs/")?.split_once('/')?.1.strip_suffix(".pack")?;
    (name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

pub fn new_pack_name() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Append the trailer and footer to a pack's frames.
pub fn seal(buf: &mut Vec<u8>, entries: &[PackEntry]) {
    seal_as(buf, entries, MAGIC)
}

/// [`seal`] for a pack compaction wrote.
pub fn seal_compacted(buf: &mut Vec<u8>, entries: &[PackEntry]) {
    seal_as(buf, entries, MAGIC_COMPACTED)
}

/// Whether a pack's footer says compaction wrote it.
pub fn is_compacted(footer: &[u8]) -> bool {
    footer.len() == FOOTER_LEN && &footer[8..] == MAGIC_COMPACTED
}

fn seal_as(buf: &mut Vec<u8>, entries: &[PackEntry], magic: &[u8; 8]) {
    let start = buf.len();
    for e in entries {
        buf.extend_from_slice(&e.digest);
        buf.extend_from_slice(&e.offset.to_le_bytes());
        buf.extend_from_slice(&e.len.to_le_bytes());
        buf.extend_from_slice(&e.raw_len.unwrap_or(0).to_le_bytes());
    }
    let crc = crc32fast::hash(&buf[start..]);
    buf.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(magic);
}

/// The byte range of the footer of a pack of `size` bytes.
pub fn footer_range(size: u64) -> std::ops::Range<u64> {
    size.saturating_sub(FOOTER_LEN as u64)..size
}

/// From a footer: the range of the trailer entries, or why the pack is not readable.
pub fn trailer_range(size: u64, footer: &[u8]) -> std::result::Result<std::ops::Range<u64>, String> {
    let n = u32::from_le_bytes(footer.get(..4).ok_or("no pack footer (truncated)")?.try_into().unwrap()) as u64;
    let len = n * entry_len(footer)? as u64;
    if len + FOOTER_LEN as u64 > size {
        return Err(format!("footer lists {n} chunks, more than the pack can hold"));
    }
    let end = size - FOOTER_LEN as u64;
    Ok(end - len..end)
}

/// The trailer entry size the footer's magic says, or why it is not a pack.
fn entry_len(footer: &[u8]) -> std::result::Result<usize, String> {
    match footer.get(8..) {
        Some(m) if footer.len() == FOOTER_LEN && (m == MAGIC || m == MAGIC_COMPACTED) => Ok(ENTRY_LEN),
        Some(m) if footer.len() == FOOTER_LEN && m == MAGIC_V1 => Ok(ENTRY_LEN_V1),
        _ => Err("no pack footer (truncated or not a pack)".into()),
    }
}

/// Parse trailer entries (checked against the footer's CRC and the pack's size).
pub fn parse_trailer(size: u64, footer: &[u8], trailer: &[u8]) -> std::result::Result<Vec<PackEntry>, String> {
    let range = trailer_range(size, footer)?;
    if trailer.len() as u64 != range.end - range.start {
        return Err("trailer length does not match the footer".into());
    }
    let crc = u32::from_le_bytes(footer[4..8].try_into().unwrap());
    if crc32fast::hash(trailer) != crc {
        return Err("trailer CRC mismatch".into());
    }
    let entries: Vec<PackEntry> = trailer
        .chunks_exact(entry_len(footer)?)
        .map(|e| PackEntry {
            digest: e[..32].try_into().unwrap(),
            offset: u64::from_le_bytes(e[32..40].try_into().unwrap()),
            len: u32::from_le_bytes(e[40..44].try_into().unwrap()),
            // 0 is what a v2 entry holds when the raw length was not known; a v1 entry has none.
            raw_len: e.get(44..48).map(|r| u32::from_le_bytes(r.try_into().unwrap())).filter(|&r| r > 0),
        })
        .collect();
    if entries.iter().any(|e| e.offset + e.len as u64 > range.start) {
        return Err("trailer names bytes outside the pack's frames".into());
    }
    Ok(entries)
}

/// Read a pack's trailer from the backend (two ranged reads: footer, then entries).
pub fn read_trailer(backend: &dyn Backend, name: &str, size: u64) -> Result<Vec<PackEntry>> {
    let footer = backend.get_ranges(&pack_key(name), &[footer_range(size)])?.remove(0);
    read_trailer_after(backend, name, size, &footer)
}

/// [`read_trailer`] for a caller that has read the pack's footer already (one read fewer).
pub fn read_trailer_after(backend: &dyn Backend, name: &str, size: u64, footer: &[u8]) -> Result<Vec<PackEntry>> {
    let corrupt = |why: String| EngineError::CorruptPack { pack: name.to_string(), why };
    let range = trailer_range(size, footer).map_err(corrupt)?;
    let trailer = backend.get_ranges(&pack_key(name), &[range])?.remove(0);
    parse_trailer(size, footer, &trailer).map_err(corrupt)
}

/// Split a whole pack object into its entries (checked), for verify and repack.
pub fn parse_whole(name: &str, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let size = bytes.len() as u64;
    let corrupt = |why: String| EngineError::CorruptPack { pack: name.to_string(), why };
    let footer = &bytes[footer_range(size).start as usize..];
    let range = trailer_range(size, footer).map_err(corrupt)?;
    parse_trailer(size, footer, &bytes[range.start as usize..range.end as usize]).map_err(corrupt)
}

/// A bound on the packs a writer holds in memory at once (being filled, waiting for an
/// uploader, being put), and the buffers they are filled in, kept for the next packs.
/// Without the bound, while one full pack waits for a free uploader the capture's other
/// threads start the next one: four 16 MiB packs in memory where two keep the uploaders about
/// as busy (heaptrack: 71 MiB peak in `PackWriter::add` on S3).
#[derive(Clone)]
struct Buffers(Arc<(Mutex<Pool>, Condvar)>);

struct Pool {
    /// Packs that may still be started.
    free: usize,
    /// Buffers a backend gave back ([`Backend::put_reusable`]), at most one per place.
    spare: Vec<Vec<u8>>,
}

/// One of [`Buffers`]' places; given back when the pack's bytes are dropped (put, or given up).
struct Permit(Buffers);

impl Buffers {
    fn new(n: usize) -> Self {
        Buffers(Arc::new((Mutex::new(Pool { free: n, spare: Vec::new() }), Condvar::new())))
    }

    /// Wait for a place, and take an empty buffer for the pack.
    fn acquire(&self) -> (Permit, Vec<u8>) {
        let (pool, cv) = &*self.0;
        let mut pool = pool.lock().unwrap();
        while pool.free == 0 {
            pool = cv.wait(pool).unwrap();
        }
        pool.free -= 1;
        let buf = match pool.spare.pop() {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(PACK_CAPACITY),
        };
        (Permit(self.clone()), buf)
    }
}

impl Permit {
    /// Give the place back with a buffer the next pack can be filled in.
    fn recycle(self, buf: Vec<u8>) {
        (self.0).0 .0.lock().unwrap().spare.push(buf);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let (pool, cv) = &*(self.0).0;
        pool.lock().unwrap().free += 1;
        cv.notify_one();
    }
}

struct Open {
    name: String,
    /// The pack's bytes so far, and its place among the packs the writer may hold at once.
    buf: Vec<u8>,
    permit: Permit,
    entries: Vec<PackEntry>,
}

struct Sealed {
    name: String,
    /// The whole pack, trailer included.
    buf: Vec<u8>,
    permit: Permit,
    entries: Vec<PackEntry>,
}

/// Collects one job's new chunk frames into packs and uploads them in the background.
pub struct PackWriter {
    open: Mutex<Option<Open>>,
    /// Digests this writer has taken (written or waiting in a pack), with their stored size:
    /// a chunk that repeats inside one capture is stored once.
    taken: Mutex<HashMap<Digest, u64>>,
    tx: Option<SyncSender<Sealed>>,
    workers: Vec<JoinHandle<()>>,
    failed: Arc<Mutex<Option<EngineError>>>,
    uploaded: Arc<Mutex<Vec<String>>>,
    buffers: Buffers,
}

impl PackWriter {
    pub fn new(backend: Arc<dyn Backend>, index: Arc<dyn ChunkIndex>) -> Self {
        // A pack is held in memory until its put ends (`buffers` below bounds the packs held:
        // peak RSS is a budgeted figure).
        let uploaders = backend.upload_concurrency().clamp(1, MAX_UPLOADS);
        let (tx, rx) = sync_channel::<Sealed>(0);
        let rx = Arc::new(Mutex::new(rx));
        let failed = Arc::new(Mutex::new(None));
        let uploaded = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..uploaders)
            .map(|_| {
                let (rx, backend, index, failed, uploaded) =
                    (rx.clone(), backend.clone(), index.clone(), failed.clone(), uploaded.clone());
                std::thread::spawn(move || upload_loop(&rx, &*backend, &*index, &failed, &uploaded))
            })
            .collect();
        PackWriter {
            open: Mutex::new(None),
            taken: Mutex::new(HashMap::new()),
            tx: Some(tx),
            workers,
            failed,
            uploaded,
            // As many packs in memory as uploaders: while every uploader is busy the next pack
            // waits to be started. One more, filled while both upload, cost 17 MiB of a
            // capture's peak RSS (S3 full snapshot of the 4 GiB bench image: 104-110 MiB with
            // three, 88-89 with two, the target 100) and gained no time: RGW's CPU, not the
            // overlap, bounds the upload (10.8-12.8 s with two against 11.4-14.4 with three).
            buffers: Buffers::new(uploaders),
        }
    }

    /// Claim `digest` for this writer. `Some(stored)` if it already took it (nothing to
    /// write), `None` if the caller must encode and [`PackWriter::add`] it.
    pub fn claim(&self, digest: &Digest) -> Option<u64> {
        let mut taken = self.taken.lock().unwrap();
        if let Some(&s) = taken.get(digest) {
            return Some(s);
        }
        taken.insert(*digest, 0);
        None
    }

    /// Append one encoded frame. May block while a full pack waits for an uploader.
    pub fn add(&self, digest: &Digest, frame: &[u8]) -> Result<()> {
        self.check()?;
        self.taken.lock().unwrap().insert(*digest, frame.len() as u64);
        let full = {
            let mut slot = self.open.lock().unwrap();
            if slot.is_none() {
                // A new pack may first wait for an upload to end (the writer's memory bound);
                // other adders wait on `open` meanwhile, the back-pressure wanted.
                let (permit, buf) = self.buffers.acquire();
                *slot = Some(Open { name: new_pack_name(), buf, permit, entries: Vec::new() });
            }
            let open = slot.as_mut().expect("just made");
            open.entries.push(PackEntry {
                digest: *digest,
                offset: open.buf.len() as u64,
                len: frame.len() as u32,
                raw_len: crate::chunk::raw_len_of(frame),
            });
            open.buf.extend_from_slice(frame);
            if open.buf.len() >= TARGET_PACK {
                slot.take()
            } else {
                None
            }
        };
        if let Some(full) = full {
            self.send(full)?;
        }
        Ok(())
    }

    fn send(&self, open: Open) -> Result<()> {
        let Open { name, mut buf, permit, entries } = open;
        seal(&mut buf, &entries);
        let sealed = Sealed { name, buf, permit, entries };
        if self.tx.as_ref().expect("not finished").send(sealed).is_err() {
            self.check()?;
            return Err(EngineError::Invalid("pack uploaders stopped".into()));
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        match self.failed.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Upload what is left and wait until every pack is durable and indexed. Returns the
    /// names of the packs written.
    pub fn finish(mut self) -> Result<Vec<String>> {
        let last = self.open.lock().unwrap().take();
        let sent = match last {
            Some(open) if !open.entries.is_empty() => self.send(open),
            _ => Ok(()),
        };
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        sent?;
        self.check()?;
        Ok(std::mem::take(&mut *self.uploaded.lock().unwrap()))
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // An abandoned writer (an error elsewhere in the capture): stop the uploaders. An open
        // streamed pack is dropped unfinished (its temp file goes); packs already put stay
        // until GC finds them unreferenced.
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn upload_loop(
    rx: &Mutex<Receiver<Sealed>>,
    backend: &dyn Backend,
    index: &dyn ChunkIndex,
    failed: &Mutex<Option<EngineError>>,
    uploaded: &Mutex<Vec<String>>,
) {
    loop {
        let next = rx.lock().unwrap().recv();
        let Ok(pack) = next else { return };
        if failed.lock().unwrap().is_some() {
            continue; // drain: the capture is failing anyway
        }
        let size = pack.buf.len() as u64;
        // The place goes when the put returns, not after the index write below.
        let done = match backend.put_reusable(&pack_key(&pack.name), pack.buf) {
            Ok(spare) => {
                match spare {
                    Some(buf) => pack.permit.recycle(buf),
                    None => drop(pack.permit),
                }
                index.add_pack(&pack.name, size, &pack.entries)
            }
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => uploaded.lock().unwrap().push(pack.name),
            Err(e) => {
                failed.lock().unwrap().get_or_insert(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffered backend (an object store's shape) whose puts wait until the test lets them
    /// end, counting the puts under way.
    #[derive(Default)]
    struct GatedStore {
        state: Mutex<(usize, bool)>,
        cv: Condvar,
    }

    impl Backend for GatedStore {
        fn put(&self, _key: &str, _data: Vec<u8>) -> Result<()> {
            let mut st = self.state.lock().unwrap();
            st.0 += 1;
            self.cv.notify_all();
            while !st.1 {
                st = self.cv.wait(st).unwrap();
            }
            st.0 -= 1;
            Ok(())
        }
        fn get(&self, key: &str) -> Result<Vec<u8>> {
            Err(EngineError::Invalid(format!("no {key}")))
        }
        fn get_ranges(&self, key: &str, _ranges: &[std::ops::Range<u64>]) -> Result<Vec<Vec<u8>>> {
            self.get(key).map(|b| vec![b])
        }
        fn list(&self, _prefix: &str) -> Result<Vec<crate::backend::ObjectInfo>> {
            Ok(Vec::new())
        }
        fn delete(&self, _key: &str) -> Result<()> {
            Ok(())
        }
        fn describe(&self) -> String {
            "gated".into()
        }
        fn upload_concurrency(&self) -> usize {
            MAX_UPLOADS
        }
    }

    #[test]
    fn a_buffered_writer_holds_no_more_packs_than_uploaders() {
        let store = Arc::new(GatedStore::default());
        let writer = Arc::new(PackWriter::new(store.clone(), Arc::new(crate::chunk_index::MemoryIndex::default())));
        let frame = vec![7u8; 1 << 20];
        let (tx, rx) = std::sync::mpsc::channel();
        let adder = {
            let (writer, frame) = (writer.clone(), frame.clone());
            std::thread::spawn(move || {
                // enough for five packs: the third must wait for a put to end
                for i in 0..5 * (TARGET_PACK >> 20) {
                    let mut digest = [0u8; 32];
                    digest[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    writer.add(&digest, &frame).unwrap();
                    tx.send(i).unwrap();
                }
            })
        };
        // both uploaders take a pack and hold it in their puts
        {
            let mut st = store.state.lock().unwrap();
            while st.0 < MAX_UPLOADS {
                st = store.cv.wait(st).unwrap();
            }
        }
        let added = rx.try_iter().count();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let added = added + rx.try_iter().count();
        // the frames of the two packs being put, and the first frame of the next, which waits
        // for one of them to end before it starts a third pack in memory
        assert_eq!(added, MAX_UPLOADS * (TARGET_PACK >> 20));
        assert_eq!(store.state.lock().unwrap().0, MAX_UPLOADS);
        store.state.lock().unwrap().1 = true;
        store.cv.notify_all();
        adder.join().unwrap();
        let writer = Arc::into_inner(writer).expect("the adder is done");
        assert_eq!(writer.finish().unwrap().len(), 5);
    }

    #[test]
    fn trailer_roundtrip_and_damage() {
        let mut buf = b"frame-one!frame-two".to_vec();
        let entries = vec![
            PackEntry { digest: [1; 32], offset: 0, len: 10, raw_len: Some(4096) },
            PackEntry { digest: [2; 32], offset: 10, len: 9, raw_len: None },
        ];
        seal(&mut buf, &entries);
        assert_eq!(parse_whole("p", &buf).unwrap(), entries);
        let mut compacted = b"frame-one!frame-two".to_vec();
        seal_compacted(&mut compacted, &entries);
        assert_eq!(parse_whole("p", &compacted).unwrap(), entries);
        assert!(is_compacted(&compacted[compacted.len() - 16..]) && !is_compacted(&buf[buf.len() - 16..]));
        for pos in [20, buf.len() - 1, buf.len() - 9] {
            let mut bad = buf.clone();
            bad[pos] ^= 1;
            assert!(parse_whole("p", &bad).is_err(), "flip at {pos}");
        }
        assert!(parse_whole("p", &buf[..buf.len() - 3]).is_err());
        assert!(parse_whole("p", b"short").is_err());
        let name = new_pack_name();
        assert_eq!(pack_name(&pack_key(&name)), Some(name.as_str()));
        assert_eq!(pack_name("packs/ab/zz.pack"), None);
    }

    /// A pack written before raw lengths were recorded (44-byte entries, magic DSNPPAK1) still
    /// reads, its raw lengths unknown.
    #[test]
    fn v1_packs_still_read() {
        let mut buf = b"frame-one!frame-two".to_vec();
        let start = buf.len();
        for (d, off, len) in [([1u8; 32], 0u64, 10u32), ([2; 32], 10, 9)] {
            buf.extend_from_slice(&d);
            buf.extend_from_slice(&off.to_le_bytes());
            buf.extend_from_slice(&len.to_le_bytes());
        }
        let crc = crc32fast::hash(&buf[start..]);
        buf.extend_from_slice(&2u32.to_le_bytes());
        buf.extend_from_slice(&crc.to_le_bytes());
        buf.extend_from_slice(b"DSNPPAK1");
        let got = parse_whole("old", &buf).unwrap();
        assert_eq!(got[1], PackEntry { digest: [2; 32], offset: 10, len: 9, raw_len: None });
    }
}
