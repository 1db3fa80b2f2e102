//! A volume's point clones (engine/src/points.rs): where they live, which one a capture or a
//! roll back may trust, and when they go.
//!
//! `<volume file>.points/<snapshot id>.img` is the reflink clone a capture of that snapshot
//! read. After the capture commits, the clone of the volume's newest point is the only one
//! kept: the next incremental compares its own clone against it (changed-block tracking), and a
//! roll back compares the volume against it. A clone is trusted only under its snapshot's
//! name, and only as the clone of the parent the engine is given, so every way of losing
//! track (a crash between clone and commit, a deleted or undone point, a resize, a file
//! system without reflink) ends in hashing everything, never in a wrong point.

use std::path::{Path, PathBuf};

use disksnap_engine::points::{self, CloneOutcome};
use disksnap_meta::{SnapshotRow, VolumeRow};

use crate::error::Result;
use crate::service::Service;

/// How a point's bytes were frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// A reflink clone at one instant (crash-consistent; `is_taken` turned 1 then).
    Instant,
    /// The live volume read from start to end (the file system has no reflink): a volume
    /// written meanwhile yields a mix of before and after.
    ReadPass,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Instant => "instant",
            Consistency::ReadPass => "read-pass",
        }
    }
}

/// What a capture reads, decided when the point is frozen.
#[derive(Debug)]
pub(crate) struct Frozen {
    /// The clone, or the live volume for a read-pass point.
    pub source: PathBuf,
    pub consistency: Consistency,
}

pub(crate) fn points_dir(vol_path: &Path) -> PathBuf {
    let mut s = vol_path.as_os_str().to_owned();
    s.push(".points");
    PathBuf::from(s)
}

pub(crate) fn clone_path(vol_path: &Path, snap_id: &str) -> PathBuf {
    points_dir(vol_path).join(format!("{snap_id}.img"))
}

/// The snapshot id of the clone kept for a volume (its newest committed point), if any.
pub(crate) fn last_point(vol_path: &Path) -> Option<String> {
    let mut found: Vec<String> = std::fs::read_dir(points_dir(vol_path))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".img").map(str::to_string))
        .collect();
    // More than one only between a commit and its prune (or after a crash there): trust none.
    (found.len() == 1).then(|| found.remove(0))
}

/// Remove every clone of the volume but `keep`'s (and any `.tmp` a crash left).
pub(crate) fn prune(vol_path: &Path, keep: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(points_dir(vol_path)) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if keep.is_some_and(|k| name == format!("{k}.img")) {
            continue;
        }
        if let Err(err) = std::fs::remove_file(e.path()) {
            tracing::warn!(path = %e.path().display(), error = %err, "could not remove a stale point clone");
        }
    }
}

/// Freeze `vol` for `snap`: clone it (an instant point), or say the capture must read the
/// live volume (no reflink there).
pub(crate) fn freeze(snap: &SnapshotRow, vol: &VolumeRow) -> disksnap_engine::Result<Frozen> {
    let vol_path = PathBuf::from(&vol.path);
    let dir = points_dir(&vol_path);
    disksnap_engine::private::create_dir_all(&dir).map_err(|e| disksnap_engine::EngineError::Io {
        op: "create",
        path: dir.clone(),
        source: e,
    })?;
    let target = clone_path(&vol_path, &snap.id);
    let _ = std::fs::remove_file(&target); // a clone left by a crashed try of this same job
    match points::clone_file(&vol_path, &target)? {
        CloneOutcome::Cloned => Ok(Frozen { source: target, consistency: Consistency::Instant }),
        CloneOutcome::Unsupported(why) => {
            // No clone will ever be kept here: leave no empty points directory behind either
            // (remove_dir removes only an empty one).
            let _ = std::fs::remove_dir(&dir);
            tracing::info!(volume = %vol.id, error = %why, "no reflink on the volume's file system: a read-pass point");
            Ok(Frozen { source: vol_path, consistency: Consistency::ReadPass })
        }
    }
}

/// Slots of the new clone that may differ from the parent point, or None (hash everything)
/// when the kept clone is not the parent's.
pub(crate) fn tracked_changes(
    vol_path: &Path,
    frozen: &Frozen,
    parent: Option<&str>,
    chunk_size: usize,
) -> Option<Vec<bool>> {
    if frozen.consistency != Consistency::Instant {
        return None;
    }
    let parent = parent?;
    let old = clone_path(vol_path, parent);
    if !old.exists() {
        return None;
    }
    points::changed_between(&old, &frozen.source, chunk_size)
}

impl Service {
    /// Slots of the live volume that may differ from point `target`, or None when nothing can
    /// vouch. The kept clone is of point X: the volume differs from X at most where their block
    /// maps differ, and X differs from `target` at most where their digests do.
    pub(crate) fn rollback_changes(&self, vol_path: &Path, target: &str) -> Option<Vec<bool>> {
        let x = last_point(vol_path)?;
        let store = &self.inner.store;
        let cs = store.chunk_size();
        let mut changed = points::changed_between(&clone_path(vol_path, &x), vol_path, cs)?;
        if x != target {
            let (xi, ti) = (store.read_index(&x).ok()?, store.read_index(target).ok()?);
            if xi.size != ti.size || xi.digests.len() != changed.len() {
                return None;
            }
            for (c, (a, b)) in changed.iter_mut().zip(xi.digests.iter().zip(&ti.digests)) {
                *c |= a != b;
            }
        }
        Some(changed)
    }

    /// Undo's part: the clone a failed capture of `snap_id` made.
    pub(crate) fn drop_clone(&self, vol_path: &Path, snap_id: &str) -> Result<()> {
        let p = clone_path(vol_path, snap_id);
        for f in [p.clone(), p.with_extension("tmp")] {
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(crate::error::ServiceError::Internal(format!("remove {}: {e}", f.display()))),
            }
        }
        Ok(())
    }
}
