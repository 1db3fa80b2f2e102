//! What the store as a whole holds, for the console's overview: the figures measured today,
//! and the ones the engine does not record yet as `None` (shown as "not measured", never
//! estimated).
//!
//! A dedup ratio is (raw bytes the live points reference) / (raw bytes of the distinct chunks);
//! a compression ratio is (raw bytes of the distinct chunks) / (their stored bytes). The raw
//! sizes come from the chunk index (`raw_len`, from the v2 pack trailer) and the snapshot rows
//! (`logical_size`, from the capture). A store with chunks or points from before they were
//! recorded shows the ratio that needs them as not measured: a ratio over part of the store
//! would be a guess.

use crate::error::{Result, ServiceError};
use crate::service::Service;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Pack objects not doomed by GC.
    pub packs: u64,
    /// Their bytes (frames and trailers, including frames of chunks no point uses any more
    /// until GC repacks them): what the backend bills for.
    pub pack_bytes: u64,
    /// Raw bytes the live points reference, holes left out. None: not recorded by the engine.
    pub logical_bytes: Option<u64>,
    /// Raw bytes of the distinct chunks in the store. None: not recorded by the engine.
    pub unique_raw_bytes: Option<u64>,
    /// Stored (compressed) bytes of the distinct chunks. None: not summed by the chunk index.
    pub unique_stored_bytes: Option<u64>,
}

impl StoreStats {
    /// Logical over unique raw bytes, when both are measured.
    pub fn dedup_ratio(&self) -> Option<f64> {
        match (self.logical_bytes, self.unique_raw_bytes) {
            (Some(l), Some(u)) if u > 0 => Some(l as f64 / u as f64),
            _ => None,
        }
    }

    /// Unique raw over unique stored bytes, when both are measured.
    pub fn compression_ratio(&self) -> Option<f64> {
        match (self.unique_raw_bytes, self.unique_stored_bytes) {
            (Some(r), Some(s)) if s > 0 => Some(r as f64 / s as f64),
            _ => None,
        }
    }
}

impl Service {
    /// The store's measured figures (the whole store: chunks are shared between accounts).
    pub async fn store_stats(&self) -> Result<StoreStats> {
        let store = self.inner.store.clone();
        // The chunk index blocks on the runtime (see chunk_index.rs): off the async task.
        let (packs, totals) = tokio::task::spawn_blocking(move || {
            let index = store.chunk_index();
            Ok::<_, disksnap_engine::EngineError>((index.packs()?, index.totals()?))
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("reading the pack list: {e}")))??;
        let (logical, logical_unknown) = self.meta().snapshots_logical_bytes().await?;
        let live = packs.iter().filter(|p| p.doomed_at.is_none());
        Ok(StoreStats {
            packs: live.clone().count() as u64,
            pack_bytes: live.map(|p| p.size).sum(),
            logical_bytes: (logical_unknown == 0).then_some(logical),
            unique_raw_bytes: (totals.raw_unknown == 0).then_some(totals.raw_bytes),
            unique_stored_bytes: Some(totals.stored_bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_appear_only_when_both_figures_are_measured() {
        let mut s = StoreStats { packs: 1, pack_bytes: 100, ..Default::default() };
        assert_eq!((s.dedup_ratio(), s.compression_ratio()), (None, None));
        s.logical_bytes = Some(400);
        assert_eq!(s.dedup_ratio(), None);
        s.unique_raw_bytes = Some(200);
        s.unique_stored_bytes = Some(50);
        assert_eq!((s.dedup_ratio(), s.compression_ratio()), (Some(2.0), Some(4.0)));
        s.unique_raw_bytes = Some(0);
        assert_eq!((s.dedup_ratio(), s.compression_ratio()), (None, Some(0.0)));
    }
}
