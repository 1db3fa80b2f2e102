//! The chunk store of stores made before pack files: one file per chunk. Kept to read such a
//! store until `disksnap migrate-store` moves its chunks into packs (see verify.rs).
//!
//! Chunks live at `chunks/<first 3 hex digits>/<64 hex digits>`. The 4096 prefix directories
//! are made when the store is created, so the insert path never has to. Three hex digits keep
//! a 4 GiB volume's ~25 000 chunks at about six per directory and a 10 million chunk store at a
//! few thousand, which ext4's hashed directories handle well.
//!
//! This file knows bytes and digests only; which chunks are live is the caller's business.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rayon::prelude::*;

use crate::chunk;
use crate::error::{EngineError, IoContext, Result};
use crate::index::Digest;

const PREFIX_DIRS: usize = 4096;
const LOCK_FILE: &str = ".gc.lock";
const QUARANTINE: &str = "quarantine";
const TMP_PREFIX: &str = ".tmp-";

pub struct ChunkStore {
    dir: PathBuf,
}

/// What happened to one chunk handed to [`Inserter::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The store already had it (its mtime was refreshed so a concurrent GC keeps it).
    Existing { stored: u64 },
    /// Written by this inserter (durable once [`Inserter::commit`] returns).
    Written { stored: u64 },
}

impl Inserted {
    pub fn stored(self) -> u64 {
        match self {
            Inserted::Existing { stored } | Inserted::Written { stored } => stored,
        }
    }
}

impl ChunkStore {
    /// Open (creating if needed) the chunk directory.
    pub fn open(dir: &Path) -> Result<Self> {
        crate::private::create_dir_all(&dir.join(QUARANTINE)).ctx("create", dir)?;
        if !dir.join("fff").is_dir() {
            for i in 0..PREFIX_DIRS {
                let p = dir.join(format!("{i:03x}"));
                crate::private::create_dir_all(&p).ctx("create", &p)?;
            }
        }
        let lock = dir.join(LOCK_FILE);
        crate::private::options().create(true).truncate(false).write(true).open(&lock).ctx("create", &lock)?;
        Ok(ChunkStore { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn chunk_path(&self, digest: &Digest) -> PathBuf {
        let hex = hex::encode(digest);
        self.dir.join(&hex[..3]).join(hex)
    }

    /// Read and check one chunk into `raw` (cleared first). `file_buf` is scratch space.
    pub fn read(&self, digest: &Digest, file_buf: &mut Vec<u8>, raw: &mut Vec<u8>) -> Result<()> {
        let path = self.chunk_path(digest);
        file_buf.clear();
        match File::open(&path) {
            Ok(mut f) => std::io::Read::read_to_end(&mut f, file_buf).ctx("read", &path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EngineError::MissingChunk { digest: hex::encode(digest) })
            }
            Err(e) => return Err(EngineError::Io { op: "open", path, source: e }),
        };
        chunk::decode(file_buf, digest, raw)
            .map_err(|why| EngineError::CorruptChunk { digest: hex::encode(digest), why })
    }

    /// Start a batch of inserts that become durable together.
    pub fn inserter(&self) -> Inserter<'_> {
        Inserter { store: self, pending: Mutex::new(HashMap::new()), renames: Mutex::new(Vec::new()) }
    }

    /// Take the GC lock shared (inserts) or exclusive (sweep). Each guard opens its own file
    /// description: flock locks belong to the description, so two threads of one process
    /// sharing one would release each other's locks.
    pub fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new().write(true).open(&path).ctx("open", &path)?;
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        // SAFETY: flock on a valid fd we own.
        if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
            return Err(EngineError::Io { op: "flock", path, source: std::io::Error::last_os_error() });
        }
        Ok(LockGuard(f))
    }

    /// Every prefix directory, for scans.
    fn prefix_dirs(&self) -> Vec<PathBuf> {
        (0..PREFIX_DIRS).map(|i| self.dir.join(format!("{i:03x}"))).collect()
    }

    /// List the chunks of one prefix directory, with their size and mtime, plus temp files.
    fn scan_prefix(dir: &Path) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).ctx("list", dir)? {
            let e = e.ctx("list", dir)?;
            let name = e.file_name();
            let meta = match e.metadata() {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(EngineError::Io { op: "stat", path: e.path(), source: err }),
            };
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let name = name.to_string_lossy();
            let digest = if name.starts_with(TMP_PREFIX) { None } else { parse_digest(&name) };
            out.push(Entry { path: e.path(), digest, size: meta.len(), mtime });
        }
        Ok(out)
    }

    /// Every chunk file: (digest, path).
    pub fn list_chunks(&self) -> Result<Vec<(Digest, PathBuf)>> {
        let mut out = Vec::new();
        for d in self.prefix_dirs() {
            out.extend(Self::scan_prefix(&d)?.into_iter().filter_map(|e| Some((e.digest?, e.path))));
        }
        Ok(out)
    }

    /// Remove the (now empty) chunk directory tree of a migrated store. Leaves it if any
    /// chunk file is still there.
    pub fn remove_if_empty(&self) -> Result<()> {
        if !self.list_chunks()?.is_empty() {
            return Ok(());
        }
        fs::remove_dir_all(&self.dir).ctx("remove", &self.dir)
    }

    /// Delete every chunk not in `marked` whose mtime is before `cutoff`, and temp files older
    /// than `cutoff`. Runs prefix directory by prefix directory under the exclusive lock, so an
    /// insert that has just reused a chunk (and refreshed its mtime) is never raced.
    pub fn sweep(&self, marked: &HashSet<Digest>, cutoff: SystemTime, progress: &dyn Fn(u64)) -> Result<SweepStats> {
        let mut stats = SweepStats::default();
        for (i, dir) in self.prefix_dirs().iter().enumerate() {
            let _guard = self.lock(true)?;
            for e in Self::scan_prefix(dir)? {
                let keep_live = e.digest.map(|d| marked.contains(&d)).unwrap_or(false);
                if keep_live {
                    stats.kept += 1;
                    stats.kept_bytes += e.size;
                } else if e.mtime >= cutoff {
                    stats.kept_recent += 1;
                } else {
                    match fs::remove_file(&e.path) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(EngineError::Io { op: "remove", path: e.path, source: err }),
                    }
                    if e.digest.is_some() {
                        stats.removed += 1;
                        stats.removed_bytes += e.size;
                    } else {
                        stats.removed_temp += 1;
                    }
                }
            }
            if i % 64 == 63 {
                progress(i as u64 + 1);
            }
        }
        progress(PREFIX_DIRS as u64);
        Ok(stats)
    }

    /// Remove the chunk temp files (`.tmp-<pid>-…`) that the processes `dead_pids` left: an
    /// insert they had not committed, which nothing will ever rename. Returns how many went.
    /// The caller must know those processes are gone (see the service's runner locks): a live
    /// process's temp files are its uncommitted chunks.
    pub fn remove_temp_of(&self, dead_pids: &HashSet<u32>) -> Result<u64> {
        let mut removed = 0;
        for dir in self.prefix_dirs() {
            removed += remove_temp_files_in(&dir, dead_pids)?;
        }
        Ok(removed)
    }

    /// Read every chunk back and check it. Corrupt chunks are moved to `quarantine/` (so the
    /// next capture that meets the same bytes writes a good copy) and returned with the reason.
    /// Returns the digests of the good chunks too, so the caller can find missing ones.
    pub fn verify_all(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<VerifyScan> {
        let dirs = self.prefix_dirs();
        let mut entries = Vec::new();
        for d in &dirs {
            entries.extend(Self::scan_prefix(d)?.into_iter().filter(|e| e.digest.is_some()));
        }
        let total = entries.len() as u64;
        progress(0, total);
        let done = std::sync::atomic::AtomicU64::new(0);
        let results: Vec<(Digest, Option<String>)> = entries
            .par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(file_buf, raw), e| {
                    let d = e.digest.unwrap();
                    let verdict = match self.read(&d, file_buf, raw) {
                        Ok(()) => None,
                        Err(EngineError::CorruptChunk { why, .. }) => Some(why),
                        Err(other) => Some(other.to_string()),
                    };
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n.is_multiple_of(1024) {
                        progress(n, total);
                    }
                    (d, verdict)
                },
            )
            .collect();
        progress(total, total);
        let mut scan = VerifyScan::default();
        for (d, verdict) in results {
            match verdict {
                None => {
                    scan.good.insert(d);
                }
                Some(why) => {
                    let from = self.chunk_path(&d);
                    let to = self.dir.join(QUARANTINE).join(format!("{}.bad", hex::encode(d)));
                    fs::rename(&from, &to).ctx("quarantine", &from)?;
                    scan.bad.push((d, why));
                }
            }
        }
        Ok(scan)
    }

    /// One `syncfs` over the filesystem holding the store.
    fn syncfs(&self) -> Result<()> {
        let d = File::open(&self.dir).ctx("open", &self.dir)?;
        // SAFETY: syncfs on a valid fd we own.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(EngineError::Io {
                op: "syncfs",
                path: self.dir.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}

pub struct LockGuard(#[allow(dead_code)] File);

struct Entry {
    path: PathBuf,
    digest: Option<Digest>,
    size: u64,
    mtime: SystemTime,
}

#[derive(Debug, Default, Clone)]
pub struct SweepStats {
    pub kept: u64,
    pub kept_bytes: u64,
    pub kept_recent: u64,
    pub removed: u64,
    pub removed_bytes: u64,
    pub removed_temp: u64,
}

#[derive(Debug, Default)]
pub struct VerifyScan {
    pub good: HashSet<Digest>,
    pub bad: Vec<(Digest, String)>,
}

/// The pid a temp file name `.tmp-<pid>-<random>` carries.
pub(crate) fn temp_file_pid(name: &str) -> Option<u32> {
    name.strip_prefix(TMP_PREFIX)?.split('-').next()?.parse().ok()
}

/// Remove the `.tmp-<pid>-…` files of `dir` whose pid is in `pids`.
pub(crate) fn remove_temp_files_in(dir: &Path, pids: &HashSet<u32>) -> Result<u64> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(EngineError::Io { op: "list", path: dir.to_path_buf(), source: e }),
    };
    for e in entries {
        let e = e.ctx("list", dir)?;
        let name = e.file_name();
        let Some(pid) = temp_file_pid(&name.to_string_lossy()) else { continue };
        if !pids.contains(&pid) {
            continue;
        }
        match fs::remove_file(e.path()) {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(EngineError::Io { op: "remove", path: e.path(), source: err }),
        }
    }
    Ok(removed)
}

pub fn parse_digest(hex_name: &str) -> Option<Digest> {
    if hex_name.len() != 64 {
        return None;
    }
    let mut d = [0u8; 32];
    hex::decode_to_slice(hex_name, &mut d).ok()?;
    Some(d)
}

/// A batch of inserts that become durable together at [`Inserter::commit`]. Dropping it
/// without committing removes the temp files it wrote.
pub struct Inserter<'a> {
    store: &'a ChunkStore,
    /// Digests this batch has written or found, with their stored size: a chunk that repeats
    /// inside one image is written once.
    pending: Mutex<HashMap<Digest, u64>>,
    /// (temp file, final name) pairs to rename at commit.
    renames: Mutex<Vec<(PathBuf, PathBuf)>>,
}

impl Inserter<'_> {
    /// Store `raw` under `digest` unless the store already has it. Call while holding the
    /// shared GC lock. `encoder` is the calling thread's, reused across calls.
    pub fn insert(&self, digest: &Digest, raw: &[u8], encoder: &mut chunk::Encoder) -> Result<Inserted> {
        if let Some(&stored) = self.pending.lock().unwrap().get(digest) {
            return Ok(Inserted::Existing { stored });
        }
        let path = self.store.chunk_path(digest);
        if let Some(stored) = touch(&path)? {
            self.pending.lock().unwrap().insert(*digest, stored);
            return Ok(Inserted::Existing { stored });
        }
        let encoded = encoder.encode(raw);
        let tmp = path.with_file_name(format!("{TMP_PREFIX}{}-{:016x}", std::process::id(), rand::random::<u64>()));
        let mut f = match crate::private::create(&tmp) {
            Ok(f) => f,
            // A prefix directory removed behind our back: make it again rather than fail.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::private::create_dir_all(tmp.parent().unwrap()).ctx("create", tmp.parent().unwrap())?;
                crate::private::create(&tmp).ctx("create", &tmp)?
            }
            Err(e) => return Err(EngineError::Io { op: "create", path: tmp, source: e }),
        };
        if let Err(e) = f.write_all(encoded) {
            // A full disk fails here: leave no temp file behind for GC to find hours later.
            drop(f);
            let _ = fs::remove_file(&tmp);
            return Err(EngineError::Io { op: "write", path: tmp, source: e });
        }
        // Start writeback now so the sync at commit has little left to wait for.
        // SAFETY: valid fd; flags are a documented combination.
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        let stored = encoded.len() as u64;
        let mut pending = self.pending.lock().unwrap();
        if let Some(&stored) = pending.get(digest) {
            // Another worker of this batch wrote the same chunk meanwhile.
            drop(pending);
            let _ = fs::remove_file(&tmp);
            return Ok(Inserted::Existing { stored });
        }
        pending.insert(*digest, stored);
        self.renames.lock().unwrap().push((tmp, path));
        Ok(Inserted::Written { stored })
    }

    /// Make every chunk of this batch durable under its digest name: sync the data, rename,
    /// sync the renames.
    pub fn commit(self) -> Result<()> {
        let renames = std::mem::take(&mut *self.renames.lock().unwrap());
        if renames.is_empty() {
            return Ok(());
        }
        let result = (|| {
            self.store.syncfs()?;
            for (tmp, path) in &renames {
                fs::rename(tmp, path).ctx("rename", path)?;
            }
            self.store.syncfs()
        })();
        if result.is_err() {
            // A temp file not renamed now never will be: remove it rather than leave it for a
            // GC hours later (renamed ones are complete chunks; GC frees them if unreferenced).
            for (tmp, _) in &renames {
                let _ = fs::remove_file(tmp);
            }
        }
        result
    }
}

impl Drop for Inserter<'_> {
    fn drop(&mut self) {
        for (tmp, _) in self.renames.lock().unwrap().drain(..) {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Refresh a chunk's mtime to now; returns its size, or None if it does not exist.
fn touch(path: &Path) -> Result<Option<u64>> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("store paths have no NUL");
    let now = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
    ];
    // SAFETY: valid C string and a two-element timespec array, as utimensat requires.
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), now.as_ptr(), 0) } != 0 {
        let err = std::io::Error::last_os_error();
        return match err.kind() {
            std::io::ErrorKind::NotFound => Ok(None),
            _ => Err(EngineError::Io { op: "touch", path: path.to_path_buf(), source: err }),
        };
    }
    match fs::metadata(path) {
        Ok(m) if m.len() > chunk::HEADER_LEN as u64 => Ok(Some(m.len())),
        // Truncated by something outside our control: write a fresh copy.
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EngineError::Io { op: "stat", path: path.to_path_buf(), source: e }),
    }
}
