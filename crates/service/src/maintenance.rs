//! Store-wide maintenance: garbage collection, verification, and the periodic tick that ceases
//! expired points.

use std::sync::Arc;

use serde::Serialize;

use crate::error::Result;
use crate::service::Service;

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
    /// Snapshots the database says hold data but whose index is gone (see `verify`).
    pub missing_indexes: Vec<String>,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyOutcome {
    pub checked_chunks: u64,
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
    /// Mark and sweep the chunk store; safe while jobs run (see the engine's locking rules).
    pub async fn gc(
        &self,
        grace: Option<std::time::Duration>,
        progress: Arc<dyn disksnap_engine::Progress + Send>,
    ) -> Result<GcReport> {
        let held = self.meta().snapshots_holding_data().await?;
        let (live, missing): (Vec<String>, Vec<String>) =
            held.into_iter().partition(|id| self.inner.store.has_index(id));
        let store = self.inner.store.clone();
        let grace = grace.unwrap_or(self.config().gc_grace);
        let live2 = live.clone();
        let s = self.blocking(move || store.gc(&live2, grace, progress.as_ref())).await?;
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
            missing_indexes: missing,
            seconds: s.elapsed.as_secs_f64(),
        })
    }

    /// Re-read every chunk; quarantine corrupt ones and name the snapshots they break.
    pub async fn verify(&self, progress: Arc<dyn disksnap_engine::Progress + Send>) -> Result<VerifyOutcome> {
        let live = self.meta().snapshots_holding_data().await?;
        let store = self.inner.store.clone();
        let r = self.blocking(move || store.verify(&live, progress.as_ref())).await?;
        Ok(VerifyOutcome {
            checked_chunks: r.checked_chunks,
            bad_chunks: r.bad_chunks,
            broken_snapshots: r.broken,
            seconds: r.elapsed.as_secs_f64(),
        })
    }

    /// The periodic duties of a running server: cease points whose time is up.
    pub async fn tick(&self) -> Result<usize> {
        self.cease_due().await
    }

    /// Less frequent upkeep of the metadata store (planner statistics).
    pub async fn maintain_metadata(&self) -> Result<()> {
        Ok(self.meta().maintain().await?)
    }
}
