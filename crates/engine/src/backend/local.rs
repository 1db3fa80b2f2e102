//! The embedded default: objects as files under one directory.
//!
//! `put` writes a temp file beside the target, fsyncs it, renames it into place and fsyncs the
//! directory, so a key that exists is always whole: after a crash a reader finds the old state
//! (nothing) or the new one (every byte), never a torn object. Temp files are named
//! `.tmp-<pid>-<random>` so recovery can tell a dead writer's leftovers from a live one's.
//!
//! Packs are written with `O_DIRECT` (direct.rs) where the file system allows it: a pack is
//! written once and read rarely, and a buffered write copied each of its bytes into page-cache
//! pages, then wrote them back, all on the capture's cores.

use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::{Backend, ObjectInfo};
use crate::error::{EngineError, IoContext, Result};

/// Objects at least this big (packs) are written directly. Measured on a 4 GiB full snapshot
/// (2.2 GiB of packs, 2 cores, warm source): 1.5-1.75 s of system CPU against 2.3-2.9 s
/// buffered, 3.45-3.57 s wall against 4.09-4.59 s.
const DIRECT_MIN: usize = 1 << 20;

pub const TMP_PREFIX: &str = ".tmp-";

pub struct LocalBackend {
    root: PathBuf,
    /// Cleared the first time the file system refuses direct I/O (tmpfs, some FUSE and network
    /// file systems): buffered from then on.
    direct: AtomicBool,
}

impl LocalBackend {
    /// An object's file for reading; a missing one is [`EngineError::MissingObject`].
    fn open_object(&self, key: &str) -> Result<(File, PathBuf)> {
        let path = self.path(key)?;
        match File::open(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EngineError::MissingObject { key: key.into() }),
            Err(e) => Err(EngineError::Io { op: "open", path, source: e }),
        }
    }

    pub fn open(root: &Path) -> Result<Self> {
        crate::private::create_dir_all(root).ctx("create", root)?;
        Ok(LocalBackend { root: root.to_path_buf(), direct: AtomicBool::new(true) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let ok = !key.is_empty()
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && !seg.starts_with(TMP_PREFIX)
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if !ok {
            return Err(EngineError::Invalid(format!("object key {key:?} is not a valid store key")));
        }
        Ok(self.root.join(key))
    }
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

impl LocalBackend {
    /// Write `data` whole at `key`: under a temp name, fsynced, renamed, directory fsynced.
    fn write_object(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().expect("a key has a parent: the root");
        if !dir.is_dir() {
            crate::private::create_dir_all(dir).ctx("create", dir)?;
            if let Some(up) = dir.parent() {
                fsync_dir(up)?;
            }
        }
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{:016x}", std::process::id(), rand::random::<u64>()));
        let done = self.write_file(&tmp, data).and_then(|()| fs::rename(&tmp, &path).ctx("rename", &path));
        if done.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        done?;
        fsync_dir(dir)
    }

    /// Create `path` holding `data`, durable.
    fn write_file(&self, path: &Path, data: &[u8]) -> Result<()> {
        if data.len() >= DIRECT_MIN && self.direct.load(Ordering::Relaxed) {
            match crate::direct::write_new_file(path, data) {
                Ok(true) => return Ok(()),
                Ok(false) => self.direct.store(false, Ordering::Relaxed),
                Err(e) => return Err(EngineError::Io { op: "write", path: path.to_path_buf(), source: e }),
            }
        }
        let mut f = crate::private::create(path).ctx("create", path)?;
        f.write_all(data).ctx("write", path)?;
        f.sync_all().ctx("fsync", path)?;
        // Clean now: give its cache back (recycle.rs).
        crate::recycle::forget(&f);
        Ok(())
    }

    #[cfg(test)]
    fn without_direct_writes(self) -> Self {
        self.direct.store(false, Ordering::Relaxed);
        self
    }
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        self.write_object(key, &data)
    }

    fn put_reusable(&self, key: &str, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.write_object(key, &data)?;
        Ok(Some(data))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EngineError::MissingObject { key: key.into() }),
            Err(e) => Err(EngineError::Io { op: "read", path, source: e }),
        }
    }

    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        let (f, path) = self.open_object(key)?;
        ranges
            .iter()
            .map(|r| {
                let mut buf = vec![0; (r.end - r.start) as usize];
                f.read_exact_at(&mut buf, r.start).ctx("read", &path)?;
                Ok(buf)
            })
            .collect()
    }

    fn read_range_into(&self, key: &str, range: Range<u64>, buf: &mut Vec<u8>) -> Result<()> {
        let (f, path) = self.open_object(key)?;
        // A pack's bytes are read once per job (restore, repack, verify): leave the cache as
        // the read found it (residency.rs).
        let cold = crate::residency::Cold::of(&f, range.clone());
        // None of it cached: read past the cache. Filling pages only to drop them again cost
        // more than the read itself once the cache was full of other files (each page evicted,
        // then faulted in from the host: a 4 GiB restore took 6.3-7.0 s after other tools had
        // filled the cache, against 5.0 s with it dropped).
        if self.direct.load(Ordering::Relaxed) && cold.as_ref().is_some_and(|c| c.covers(range.clone())) {
            match crate::direct::read_range(&path, range.clone(), buf) {
                Ok(true) => return Ok(()),
                Ok(false) => self.direct.store(false, Ordering::Relaxed),
                Err(e) => return Err(EngineError::Io { op: "read", path, source: e }),
            }
        }
        // Only the growth of a reused buffer is zeroed; the read overwrites the rest.
        buf.resize((range.end - range.start) as usize, 0);
        f.read_exact_at(buf, range.start).ctx("read", &path)?;
        if let Some(c) = cold {
            c.release(&f, range);
        }
        Ok(())
    }

    fn read_concurrency(&self) -> usize {
        // A restore into a new file writes directly (direct.rs), and a direct write holds its
        // thread until the device has the bytes: four threads a core keep the decoding busy
        // meanwhile. Measured on 2 cores, 4 GiB workload (medians of 3, cold / warm): 2 threads
        // 5.2 / 4.2 s, 4 threads 4.9 / 3.3 s, 8 threads 4.0 / 2.8 s; each thread holds one
        // coalesced read (<= 2 MiB), so 8 cost ~22 MiB more RSS (60 MiB in all). With buffered
        // writes (one writer at a time) more threads than cores only added memory.
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        (4 * cores).clamp(4, 16)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key)?.is_file())
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, prefix, &mut out)?;
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::Io { op: "remove", path, source: e }),
        }
    }

    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }
}

/// Depth-first walk that skips directories no key under `prefix` can be in, and temp files.
fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::Io { op: "list", path: dir.into(), source: e }),
    };
    for e in entries {
        let e = e.ctx("list", dir)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TMP_PREFIX) {
            continue;
        }
        let path = e.path();
        let key = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
        let ft = e.file_type().ctx("stat", &path)?;
        if ft.is_dir() {
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if ft.is_file() && key.starts_with(prefix) {
            let meta = match e.metadata() {
                Ok(m) => m,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(EngineError::Io { op: "stat", path, source: err }),
            };
            out.push(ObjectInfo { key, size: meta.len(), modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_ranges_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(dir.path()).unwrap();
        b.put("packs/ab/abcdef.pack", b"hello world".to_vec()).unwrap();
        b.put("indexes/snap-1.fidx", b"idx".to_vec()).unwrap();
        assert_eq!(b.get("packs/ab/abcdef.pack").unwrap(), b"hello world");
        assert_eq!(
            b.get_ranges("packs/ab/abcdef.pack", &[6..11, 0..5]).unwrap(),
            vec![b"world".to_vec(), b"hello".to_vec()]
        );
        let mut keys: Vec<_> = b.list("packs/").unwrap().into_iter().map(|o| o.key).collect();
        keys.sort();
        assert_eq!(keys, ["packs/ab/abcdef.pack"]);
        assert_eq!(b.list("").unwrap().len(), 2);
        b.delete("packs/ab/abcdef.pack").unwrap();
        b.delete("packs/ab/abcdef.pack").unwrap();
        assert!(matches!(b.get("packs/ab/abcdef.pack"), Err(EngineError::MissingObject { .. })));
        assert!(b.put("../escape", vec![]).is_err());
        assert!(b.put("a/.tmp-1-2", vec![]).is_err());
    }

    /// Packs-sized objects, written directly or (where the file system refuses, here forced)
    /// buffered, come back whole, and no temp file is left beside them.
    #[test]
    fn big_objects_are_whole_either_way() {
        for direct in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut b = LocalBackend::open(dir.path()).unwrap();
            if !direct {
                b = b.without_direct_writes();
            }
            for (i, len) in [DIRECT_MIN, 2 * DIRECT_MIN + 1234].into_iter().enumerate() {
                let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let key = format!("packs/aa/p{i}.pack");
                let back = b.put_reusable(&key, data.clone()).unwrap();
                assert_eq!(back.as_deref(), Some(&data[..]), "the buffer comes back for reuse");
                assert_eq!(b.get(&key).unwrap(), data, "direct: {direct}, {len} bytes");
            }
            let left: Vec<_> =
                fs::read_dir(dir.path().join("packs/aa")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left.len(), 2, "only the two packs: {left:?}");
        }
    }
}
