//! Pins: local `.pending` files that keep an index's chunks live for GC while a capture or a
//! restore runs, and tell GC how old the oldest running writer is.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{EngineError, IoContext, Result};
use crate::index::FixedIndex;

/// A `.pending` index: marks its chunks live for GC while its owner runs. The owner holds a
/// shared `flock` on it for its life; GC treats a pending index it can lock exclusively as
/// left by a dead process and removes it. It is locked before it gets its final name, so GC
/// never sees one unlocked while its owner lives. Removed when dropped.
pub(crate) struct Pin {
    path: PathBuf,
    _file: File,
}

impl Pin {
    pub(crate) fn create(path: &Path, index: &FixedIndex) -> Result<Pin> {
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
    pub(crate) fn is_held(path: &Path) -> bool {
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

/// The held pins of `dir`: (path, creation time). Unheld ones (dead owners) are skipped.
pub(crate) fn held_pins(dir: &Path) -> Result<Vec<(PathBuf, SystemTime)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(EngineError::Io { op: "list", path: dir.into(), source: e }),
    };
    for e in entries {
        let e = e.ctx("list", dir)?;
        if !e.file_name().to_string_lossy().ends_with(".pending") || !Pin::is_held(&e.path()) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        out.push((e.path(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
    }
    Ok(out)
}
