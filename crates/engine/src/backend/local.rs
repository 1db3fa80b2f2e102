//! The embedded default: objects as files under one directory.
//!
//! `put` writes a temp file beside the target, fsyncs it, renames it into place and fsyncs the
//! directory, so a key that exists is always whole: after a crash a reader finds the old state
//! (nothing) or the new one (every byte), never a torn object. Temp files are named
//! `.tmp-<pid>-<random>` so recovery can tell a dead writer's leftovers from a live one's.

use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Backend, ObjectInfo, ObjectWriter};
use crate::error::{EngineError, IoContext, Result};
use crate::recycle::Recycler;

/// Writeback is started every this many bytes written and the cache behind it given back
/// (recycle.rs) without waiting: a capture's threads write packs under one lock, and waiting
/// there stalled them all; what is not yet written back goes at `finish`, after the fsync.
const WRITEBACK_STEP: u64 = 4 << 20;

pub const TMP_PREFIX: &str = ".tmp-";

pub struct LocalBackend {
    root: PathBuf,
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
        Ok(LocalBackend { root: root.to_path_buf() })
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

/// A file being written under a temp name beside its key (see [`Backend::open_writer`]).
pub struct LocalWriter {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
    written: u64,
    recycle: Recycler,
}

impl LocalWriter {
    fn create(path: PathBuf) -> Result<Self> {
        let dir = path.parent().expect("a key has a parent: the root");
        if !dir.is_dir() {
            crate::private::create_dir_all(dir).ctx("create", dir)?;
            if let Some(up) = dir.parent() {
                fsync_dir(up)?;
            }
        }
        let tmp = dir.join(format!("{TMP_PREFIX}{}-{:016x}", std::process::id(), rand::random::<u64>()));
        let file = crate::private::create(&tmp).ctx("create", &tmp)?;
        Ok(LocalWriter { file: Some(file), tmp, path, written: 0, recycle: Recycler::without_wait(WRITEBACK_STEP) })
    }
}

impl ObjectWriter for LocalWriter {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        let f = self.file.as_mut().expect("open until finish");
        f.write_all(data).ctx("write", &self.tmp)?;
        self.written += data.len() as u64;
        self.recycle.advance(f, self.written);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let f = self.file.take().expect("open until finish");
        let done = f.sync_all().ctx("fsync", &self.tmp).and_then(|()| {
            // Clean now: give the rest of its cache back too.
            crate::recycle::forget(&f);
            drop(f);
            fs::rename(&self.tmp, &self.path).ctx("rename", &self.path)
        });
        if done.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        done?;
        fsync_dir(self.path.parent().expect("has a parent"))
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp); // abandoned (an error, or a failed capture)
        }
    }
}

impl Backend for LocalBackend {
    fn put(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let mut w = Box::new(LocalWriter::create(self.path(key)?)?);
        w.write(&data)?;
        w.finish()
    }

    fn open_writer_is_buffered(&self) -> bool {
        false
    }

    fn open_writer(&self, key: &str) -> Result<Option<Box<dyn ObjectWriter>>> {
        Ok(Some(Box::new(LocalWriter::create(self.path(key)?)?)))
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
        // Only the growth of a reused buffer is zeroed; the read overwrites the rest.
        buf.resize((range.end - range.start) as usize, 0);
        // A pack's bytes are read once per job (restore, repack, verify): leave the cache as
        // the read found it (residency.rs).
        let cold = crate::residency::Cold::of(&f, range.clone());
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
}
