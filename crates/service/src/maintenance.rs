//! Store-wide maintenance: garbage collection, verification, and the periodic tick that ceases
//! expired points.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::service::Service;

/// What `disksnap compact` did (the engine's compact.rs).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompactReport {
    /// The store dictionary's id (hex), and whether this run trained it.
    pub dictionary: Option<String>,
    pub trained: bool,
    /// Compressed chunks were found, too few to train a dictionary on: nothing was done.
    pub too_few_to_train: bool,
    pub packs: u64,
    pub compacted_packs: u64,
    pub skipped_packs: u64,
    pub reencoded_chunks: u64,
    pub copied_chunks: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    pub live_snapshots: u64,
    pub removed_indexes: u64,
    pub marked_chunks: u64,
    pub kept_chunks: u64,
    pub kept_bytes: u64,
    /// Unreferenced but younger than the grace period (a running job may need them).
    pub kept_recent_chunks: u64,
    pub removed_chunks: u64,
    pub removed_bytes: u64,
    pub removed_temp_files: u64,
    /// Packs left with no live chunk (deleted once the grace period has passed since).
    pub doomed_packs: u64,
    pub deleted_packs: u64,
    pub deleted_pack_bytes: u64,
    /// Mostly dead packs whose live chunks moved to new packs.
    pub repacked_packs: u64,
    /// Snapshots the database says hold data but whose index is gone (see `verify`).
    pub missing_indexes: Vec<String>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyOutcome {
    pub checked_chunks: u64,
    pub checked_packs: u64,
    /// (pack, reason) of packs whose chunks are fine but whose trailer is damaged.
    pub bad_trailers: Vec<(String, String)>,
    /// (digest, reason) of each corrupt chunk, now quarantined.
    pub bad_chunks: Vec<(String, String)>,
    /// (snapshot id, reason) of each snapshot that cannot be restored as it stands.
    pub broken_snapshots: Vec<(String, String)>,
    pub seconds: f64,
}

impl VerifyOutcome {
    pub fn ok(&self) -> bool {
        self.bad_chunks.is_empty() && self.broken_snapshots.is_empty()
    }
}

impl Service {
    /// Remove the runner lock files of processes that died, and the temp files those
    /// processes left in the store (chunk inserts and index writes they never committed,
    /// pins of restores and captures they never finished). [`Service::recover`] calls it first,
    /// so a job killed mid-write (or failed by a full disk and then killed) does not keep its
    /// space until a manual `gc --grace 0s`. Returns how many temp files went.
    ///
    /// A runner is dead when its lock can be taken. Its file is created just before it is
    /// locked, so a lock file that can be taken while its pid still runs is left alone until
    /// it is a few seconds old. A dead pid that a live runner now reuses is not swept (its
    /// temp files would be the live runner's).
    pub async fn reap_dead_runners(&self) -> Result<u64> {
        let dir = self.inner.runners_dir.clone();
        let own = self.inner.runner.clone();
        let store = self.inner.store.clone();
        self.blocking(move || {
            let mut dead = HashSet::new();
            let mut live = HashSet::new();
            let entries = std::fs::read_dir(&dir).map_err(|e| disksnap_engine::EngineError::Io {
                op: "list",
                path: dir.clone(),
                source: e,
            })?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(runner) = name.strip_suffix(".lock") else { continue };
                let Some(pid) = runner.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
                if runner == own {
                    live.insert(pid);
                    continue;
                }
                let Ok(f) = OpenOptions::new().write(true).open(e.path()) else { continue };
                // SAFETY: flock on an fd we own; released when `f` is dropped.
                let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
                if !free {
                    live.insert(pid);
                    continue;
                }
                // SAFETY: signal 0 only checks whether the pid exists.
                let pid_runs = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(5))
                    .unwrap_or(true);
                if pid_runs && !old {
                    continue; // perhaps a runner between creating its lock file and locking it
                }
                let _ = std::fs::remove_file(e.path());
                dead.insert(pid);
            }
            dead.retain(|p| !live.contains(p));
            store.remove_dead_temp_files(&dead)
        })
        .await
    }

    /// Mark and sweep the chunk store; safe while jobs run (see the engine's locking rules).
    pub async fn gc(
        &self,
        grace: Option<std::time::Duration>,
        progress: Arc<dyn disksnap_engine::Progress + Send>,
    ) -> Result<GcReport> {
        let held = self.meta().snapshots_holding_data().await?;
        let store = self.inner.store.clone();
        let grace = grace.unwrap_or(self.config().gc_grace);
        // Index lookups may be network calls (S3): off the async threads.
        let (live, missing, s) = self
            .blocking(move || {
                let (live, missing): (Vec<String>, Vec<String>) = held.into_iter().partition(|id| store.has_index(id));
                let s = store.gc(&live, grace, progress.as_ref())?;
                Ok((live, missing, s))
            })
            .await?;
        Ok(GcReport {
            live_snapshots: live.len() as u64,
            removed_indexes: s.removed_indexes,
            marked_chunks: s.marked_chunks,
            kept_chunks: s.sweep.kept,
            kept_bytes: s.sweep.kept_bytes,
            kept_recent_chunks: s.sweep.kept_recent,
            removed_chunks: s.sweep.removed,
            removed_bytes: s.sweep.removed_bytes,
            removed_temp_files: s.sweep.removed_temp,
            doomed_packs: s.doomed_packs,
            deleted_packs: s.deleted_packs,
            deleted_pack_bytes: s.deleted_pack_bytes,
            repacked_packs: s.repacked_packs,
            missing_indexes: missing,
            seconds: s.elapsed.as_secs_f64(),
        })
    }

    /// Re-encode the store's compressed chunks with its dictionary (trained on the first run);
    /// safe while jobs run. The old packs go with a GC once `grace` (default: the config's
    /// `gc_grace`) has passed.
    pub async fn compact(
        &self,
        grace: Option<std::time::Duration>,
        progress: Arc<dyn disksnap_engine::Progress + Send>,
    ) -> Result<CompactReport> {
        let store = self.inner.store.clone();
        let grace = grace.unwrap_or(self.config().gc_grace);
        let s = self.blocking(move || store.compact(grace, progress.as_ref())).await?;
        Ok(CompactReport {
            dictionary: s.dictionary,
            trained: s.trained,
            too_few_to_train: s.too_few_to_train,
            packs: s.packs,
            compacted_packs: s.compacted_packs,
            skipped_packs: s.skipped_packs,
            reencoded_chunks: s.reencoded_chunks,
            copied_chunks: s.copied_chunks,
            bytes_before: s.bytes_before,
            bytes_after: s.bytes_after,
            seconds: s.elapsed.as_secs_f64(),
        })
    }

    /// Re-read every pack (or about `sample_percent` of them), drop corrupt chunks from the
    /// index and name the snapshots they break.
    pub async fn verify(&self, progress: Arc<dyn disksnap_engine::Progress + Send>) -> Result<VerifyOutcome> {
        self.verify_sample(100, progress).await
    }

    /// [`Service::verify`] over about `sample_percent` of the packs, chosen at random.
    pub async fn verify_sample(
        &self,
        sample_percent: u8,
        progress: Arc<dyn disksnap_engine::Progress + Send>,
    ) -> Result<VerifyOutcome> {
        let live = self.meta().snapshots_holding_data().await?;
        let store = self.inner.store.clone();
        let r = self.blocking(move || store.verify_sample(&live, sample_percent.min(100), progress.as_ref())).await?;
        Ok(VerifyOutcome {
            checked_chunks: r.checked_chunks,
            checked_packs: r.checked_packs,
            bad_trailers: r.bad_trailers,
            bad_chunks: r.bad_chunks,
            broken_snapshots: r.broken,
            seconds: r.elapsed.as_secs_f64(),
        })
    }

    /// Refill the chunk index from the packs' trailers (`disksnap repair --rebuild-index`):
    /// after the database was restored from an older backup, or moved to a new one.
    pub async fn rebuild_chunk_index(
        &self,
        progress: Arc<dyn disksnap_engine::Progress + Send>,
    ) -> Result<disksnap_engine::RebuildStats> {
        let store = self.inner.store.clone();
        self.blocking(move || store.rebuild_index(progress.as_ref())).await
    }

    /// Move the chunk files of a store made before packs into packs (`disksnap migrate-store`).
    pub async fn migrate_store(
        &self,
        progress: Arc<dyn disksnap_engine::Progress + Send>,
    ) -> Result<disksnap_engine::MigrateStats> {
        let store = self.inner.store.clone();
        self.blocking(move || store.migrate_legacy(progress.as_ref())).await
    }

    /// The periodic duties of a running server: cease points whose time is up.
    pub async fn tick(&self) -> Result<usize> {
        self.cease_due().await
    }

    /// Less frequent upkeep of the metadata store: planner statistics, expired request state,
    /// and finished jobs past the job retention. Returns how many jobs were purged.
    pub async fn maintain_metadata(&self) -> Result<u64> {
        self.meta().maintain().await?;
        let keep = self.config().job_retention;
        if keep.is_zero() {
            return Ok(0);
        }
        Ok(self.meta().purge_jobs(crate::model::now_ms() - keep.as_millis() as i64).await?)
    }
}
