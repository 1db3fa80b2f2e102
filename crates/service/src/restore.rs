//! Getting bytes back out of a snapshot: roll a volume back, make a new volume, capture an image.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use disksnap_meta::{Batch, Expect, ImageRow, SnapshotRow, VolumeRow};

use crate::error::{Result, ServiceError};
use crate::ids;
use crate::jobs::JobProgress;
use crate::model::*;
use crate::service::{Caller, Service};
use crate::volumes::{VolumeFromSnapshot, GIB, MAX_VOLUME_GIB};
use crate::work::{self, Done, Work};

impl Service {
    fn ensure_available(&self, s: &SnapshotRow, shown: &str) -> Result<()> {
        if s.status != SnapshotStatus::Available.as_str() {
            return Err(ServiceError::wrong_state(
                Kind::Snapshot,
                shown,
                s.status.clone(),
                "only an available snapshot can be used",
            ));
        }
        if s.transition == SnapshotTransition::Deleting.as_str() {
            return Err(ServiceError::wrong_state(Kind::Snapshot, shown, "deleting", "it is being deleted"));
        }
        Ok(())
    }

    /// The live volume a roll back to `snap` (named `id` by the caller) writes: a point whose
    /// volume was deleted can only become a new volume.
    pub(crate) async fn volume_to_roll_back(&self, caller: &Caller, snap: &SnapshotRow, id: &str) -> Result<VolumeRow> {
        self.meta().volume(&caller.account, &snap.volume_id).await?.filter(|v| v.status != "deleted").ok_or_else(|| {
            ServiceError::wrong_state(
                Kind::Snapshot,
                id,
                "orphaned",
                format!("its volume {} no longer exists; create a new volume from it instead", snap.volume_id),
            )
        })
    }

    /// Roll the snapshot's volume back: its bytes become exactly the point's bytes (and its
    /// size the point's size). Only the slots that differ are written.
    pub async fn apply_snapshot(&self, caller: &Caller, id: &str) -> Result<Job> {
        retrying!(async {
            let snap = self.snapshot_row(caller, id).await?;
            self.ensure_available(&snap, id)?;
            if !snap.transition.is_empty() {
                return Err(ServiceError::wrong_state(
                    Kind::Snapshot,
                    id,
                    snap.transition.clone(),
                    "it is busy with another operation",
                ));
            }
            let vol = self.volume_to_roll_back(caller, &snap, id).await?;
            self.ensure_idle(&vol)?;
            let mut batch = self.lock_volume(&vol, VolumeTransition::RollingBack);
            batch.expect.push(Expect::SnapshotTransition { id: snap.id.clone(), expected: String::new() });
            let mut marked = snap.clone();
            marked.transition = SnapshotTransition::RollingBack.as_str().into();
            batch.put_snapshots.push(marked);
            let work = Work::ApplySnapshot(work::ApplySnapshot { snapshot: snap.id.clone(), volume: vol.id.clone() });
            self.submit(caller, work, vec![snap.id, vol.id], batch).await
        })
    }

    pub(crate) async fn exec_apply(
        &self,
        account: &str,
        snap_id: &str,
        vol_id: &str,
        progress: &Arc<JobProgress>,
    ) -> Result<Done> {
        let delay = self.config().test_rollback_delay;
        if !delay.is_zero() {
            tracing::warn!(snapshot = %snap_id, ?delay, "test_rollback_delay: holding the rollback before it starts");
            tokio::time::sleep(delay).await;
        }
        let vol = self.volume_row_of(account, vol_id).await?;
        let (store, name, path, p) =
            (self.inner.store.clone(), snap_id.to_string(), PathBuf::from(&vol.path), progress.clone());
        let svc = self.clone();
        let stats = self
            .blocking(move || {
                // Back to the point whose clone is kept (the usual roll back: to the newest
                // point): copy back only the blocks that differ from the clone.
                if crate::points::last_point(&path).as_deref() == Some(name.as_str()) {
                    let clone = crate::points::clone_path(&path, &name);
                    if let Some((compared, written)) = disksnap_engine::points::restore_from_clone(&clone, &path)? {
                        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default();
                        return Ok(disksnap_engine::RestoreStats {
                            size,
                            compared_bytes: compared,
                            written_bytes: written,
                            ..Default::default()
                        });
                    }
                }
                // Slots tracking vouches for (the kept point clone, points.rs) are not read.
                let changed = svc.rollback_changes(&path, &name);
                store.restore_in_place_tracked(&name, &path, changed.as_deref(), p.as_ref())
            })
            .await?;
        tracing::info!(
            snapshot = %snap_id, volume = %vol_id, written = stats.written_slots, unchanged = stats.unchanged_slots,
            tracked = stats.tracked_slots, compared_bytes = stats.compared_bytes, "rolled back"
        );
        Ok(Done::Bytes(stats.size))
    }

    pub(crate) async fn settle_apply(&self, account: &str, snap_id: &str, vol_id: &str, size: u64) -> Result<Batch> {
        let mut snap = self.snapshot_row_of(account, snap_id).await?;
        snap.transition = String::new();
        let mut vol = self.volume_row_of(account, vol_id).await?;
        vol.size = size as i64;
        Ok(Batch { put_snapshots: vec![snap], put_volumes: vec![self.settled(vol)], ..Default::default() })
    }

    /// A new volume holding the point's bytes.
    pub async fn create_volume_from_snapshot(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
        zone: Option<&str>,
    ) -> Result<(Job, Volume)> {
        self.create_volume_from_snapshot_sized(caller, id, name, zone, None).await
    }

    /// A new volume holding the point's bytes, `size_gib` large (at least the point's size;
    /// the space past the point's bytes reads as zeros), or the point's size rounded up to
    /// whole GiB when None.
    pub async fn create_volume_from_snapshot_sized(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
        zone: Option<&str>,
        size_gib: Option<u64>,
    ) -> Result<(Job, Volume)> {
        let req = VolumeFromSnapshot {
            snapshot: id.to_string(),
            name: name.to_string(),
            zone: zone.map(str::to_string),
            size_gib,
            ..Default::default()
        };
        self.restore_volume(caller, &req).await
    }

    /// A new volume from a point, as [`VolumeFromSnapshot`] describes it: one job.
    pub async fn restore_volume(&self, caller: &Caller, req: &VolumeFromSnapshot) -> Result<(Job, Volume)> {
        let id = req.snapshot.as_str();
        retrying!(async {
            let snap = self.snapshot_row(caller, id).await?;
            self.ensure_available(&snap, id)?;
            if let Some(z) = req.zone.as_deref().filter(|z| !z.is_empty()) {
                if self.resolve_zone(z)? != snap.zone {
                    return Err(ServiceError::invalid(
                        "zone",
                        format!("the snapshot is in zone {}; a volume from it must be too", snap.zone),
                    ));
                }
            }
            let mut size = (snap.volume_size.max(0) as u64).div_ceil(GIB) * GIB;
            if let Some(gib) = req.size_gib {
                if gib.saturating_mul(GIB) < size || gib > MAX_VOLUME_GIB {
                    return Err(ServiceError::invalid(
                        "size",
                        format!("must be {} to {MAX_VOLUME_GIB} GiB for this snapshot, got {gib}", size / GIB),
                    ));
                }
                size = gib * GIB;
            }
            let kind = stored(VolumeKind::parse, Kind::Snapshot, &snap.id, "volume_kind", &snap.volume_kind)?;
            let home = self.place_volume(&snap.zone).await?;
            let mut row = self.new_volume_row(caller, &snap.zone, &req.name, size, kind, home);
            row.description = req.description.clone();
            row.source_snapshot = Some(snap.id.clone());
            if let Some(i) = &req.instance_id {
                row.instance_id = Some(self.instance_row_for_attach(caller, i, &snap.zone, kind, 1).await?.id);
            }
            let vid = row.id.clone();
            let batch = Batch {
                expect: vec![Expect::SnapshotStatus { id: snap.id.clone(), expected: snap.status.clone() }],
                put_volumes: vec![row.clone()],
                // Written back unchanged: a delete decided before this commit is refused as stale
                // (and then sees this job reading the point).
                put_snapshots: vec![snap.clone()],
                ..Default::default()
            };
            let work = Work::RestoreVolume(work::RestoreVolume { snapshot: snap.id.clone(), volume: vid.clone() });
            let job = self.submit(caller, work, vec![snap.id, vid], batch).await?;
            Ok((job, Volume::from_row(row)?))
        })
    }

    pub(crate) async fn exec_restore_volume(
        &self,
        account: &str,
        snap_id: &str,
        vol_id: &str,
        progress: &Arc<JobProgress>,
    ) -> Result<Done> {
        let vol = self.own_volume_file(self.volume_row_of(account, vol_id).await?).await?;
        let path = PathBuf::from(&vol.path);
        let _ = std::fs::remove_file(&path); // a resumed job starts over
        self.restore_file(snap_id, path.clone(), progress).await?;
        // The volume is whole GiB; the point may not be (an imported odd-sized image).
        let f =
            std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| ServiceError::Internal(e.to_string()))?;
        if f.metadata().map(|m| m.len()).unwrap_or(0) < vol.size as u64 {
            f.set_len(vol.size as u64).and_then(|_| f.sync_all()).map_err(|e| ServiceError::Internal(e.to_string()))?;
        }
        Ok(Done::Nothing)
    }

    pub(crate) async fn settle_restore_volume(&self, account: &str, snap_id: &str, vol_id: &str) -> Result<Batch> {
        let vol = self.volume_row_of(account, vol_id).await?;
        let mut snap = self.snapshot_row_of(account, snap_id).await?;
        snap.used_by_volumes += 1;
        Ok(Batch { put_snapshots: vec![snap], put_volumes: vec![self.settled(vol)], ..Default::default() })
    }

    async fn restore_file(
        &self,
        snap_id: &str,
        path: PathBuf,
        progress: &Arc<JobProgress>,
    ) -> Result<disksnap_engine::RestoreStats> {
        let (store, name, p) = (self.inner.store.clone(), snap_id.to_string(), progress.clone());
        self.blocking(move || store.restore_new(&name, &path, p.as_ref())).await
    }

    pub(crate) async fn undo_restore_volume(&self, account: &str, _snap_id: &str, vol_id: &str) -> Result<Batch> {
        self.undo_create_volumes(account, &[vol_id.to_string()]).await
    }

    /// Capture an image (a raw image file) from a system-disk point.
    pub async fn capture_image(&self, caller: &Caller, id: &str, name: &str) -> Result<(Job, Image)> {
        retrying!(async {
            let snap = self.snapshot_row(caller, id).await?;
            self.ensure_available(&snap, id)?;
            if snap.volume_kind != VolumeKind::System.as_str() {
                return Err(ServiceError::wrong_state(
                    Kind::Snapshot,
                    id,
                    "data-disk",
                    "only a snapshot of a system disk can be captured as an image",
                ));
            }
            let now = now_ms();
            let iid = ids::new_id();
            let row = ImageRow {
                path: self.image_path(&iid).to_string_lossy().into_owned(),
                id: iid.clone(),
                account: caller.account.clone(),
                zone: snap.zone.clone(),
                name: name.to_string(),
                snapshot_id: snap.id.clone(),
                size: snap.volume_size,
                status: ImageStatus::Pending.as_str().into(),
                create_time: now,
                status_time: now,
                version: 0,
            };
            let batch = Batch {
                expect: vec![Expect::SnapshotStatus { id: snap.id.clone(), expected: snap.status.clone() }],
                put_images: vec![row.clone()],
                // Written back unchanged: a delete decided before this commit is refused as stale
                // (and then sees this job reading the point).
                put_snapshots: vec![snap.clone()],
                ..Default::default()
            };
            let work = Work::CaptureImage(work::CaptureImage { snapshot: snap.id.clone(), image: iid.clone() });
            let job = self.submit(caller, work, vec![snap.id, iid], batch).await?;
            Ok((job, Image::try_from(row)?))
        })
    }

    pub(crate) async fn exec_capture_image(
        &self,
        account: &str,
        snap_id: &str,
        image_id: &str,
        progress: &Arc<JobProgress>,
    ) -> Result<Done> {
        let img = self
            .meta()
            .image(account, image_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(Kind::Image, image_id))?;
        let path = PathBuf::from(&img.path);
        let _ = std::fs::remove_file(&path); // a resumed job starts over
        let stats = self.restore_file(snap_id, path, progress).await?;
        Ok(Done::Bytes(stats.size))
    }

    pub(crate) async fn settle_capture_image(
        &self,
        account: &str,
        snap_id: &str,
        image_id: &str,
        size: u64,
    ) -> Result<Batch> {
        let mut img = self
            .meta()
            .image(account, image_id)
            .await?
            .ok_or_else(|| ServiceError::not_found(Kind::Image, image_id))?;
        img.size = size as i64;
        img.status = ImageStatus::Available.as_str().into();
        img.status_time = now_ms();
        let mut snap = self.snapshot_row_of(account, snap_id).await?;
        snap.used_by_images += 1;
        Ok(Batch { put_snapshots: vec![snap], put_images: vec![img], ..Default::default() })
    }

    pub(crate) async fn undo_capture_image(&self, account: &str, _snap_id: &str, image_id: &str) -> Result<Batch> {
        let mut batch = Batch::default();
        if let Some(img) = self.meta().image(account, image_id).await? {
            let _ = std::fs::remove_file(&img.path);
            batch.delete_images.push(img.id);
        }
        Ok(batch)
    }

    pub async fn image(&self, caller: &Caller, id: &str) -> Result<Image> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::Image, id)?;
        self.meta()
            .image(&caller.account, &bare)
            .await?
            .map(Image::try_from)
            .transpose()?
            .ok_or_else(|| ServiceError::not_found(Kind::Image, id))
    }

    pub async fn images(&self, caller: &Caller, offset: u64, limit: u64) -> Result<(Vec<Image>, u64)> {
        self.check_account(caller)?;
        let page = self.meta().images(&caller.account, offset, limit).await?;
        Ok((page.items.into_iter().map(Image::try_from).collect::<Result<_>>()?, page.total))
    }

    /// Delete images (their files go at once; the snapshots they came from stay).
    pub async fn delete_images(&self, caller: &Caller, ids_: &[String]) -> Result<Vec<Image>> {
        retrying!(async {
            let mut batch = Batch::default();
            let mut out: Vec<Image> = Vec::new();
            // Each source point once, however many of its images go (one decrement each).
            let mut sources: HashMap<String, SnapshotRow> = HashMap::new();
            for id in ids_ {
                let img = self.image(caller, id).await?;
                if img.status != ImageStatus::Available {
                    return Err(ServiceError::wrong_state(
                        Kind::Image,
                        id,
                        img.status.as_str(),
                        "it is still being captured",
                    ));
                }
                if out.iter().any(|o| o.id == img.id) {
                    continue; // listed twice
                }
                let source = match sources.remove(&img.snapshot_id) {
                    Some(s) => Some(s),
                    None => self.meta().snapshot(&caller.account, &img.snapshot_id).await?,
                };
                if let Some(mut s) = source {
                    s.used_by_images = (s.used_by_images - 1).max(0);
                    sources.insert(s.id.clone(), s);
                }
                batch.delete_images.push(img.id.clone());
                out.push(img);
            }
            batch.put_snapshots.extend(sources.into_values());
            self.meta().commit(batch).await?;
            for img in &out {
                let _ = std::fs::remove_file(&img.path);
            }
            Ok(out)
        })
    }

    /// Rename an image (a metadata write; the image's bytes do not change).
    pub async fn rename_image(&self, caller: &Caller, id: &str, name: &str) -> Result<Image> {
        retrying!(async {
            self.check_account(caller)?;
            let bare = self.parse_id(Kind::Image, id)?;
            let mut row = self
                .meta()
                .image(&caller.account, &bare)
                .await?
                .ok_or_else(|| ServiceError::not_found(Kind::Image, id))?;
            row.name = name.to_string();
            self.meta().commit(Batch { put_images: vec![row.clone()], ..Default::default() }).await?;
            Image::try_from(row)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use crate::*;

    async fn service(dir: &std::path::Path, delay: Duration) -> (Service, Caller) {
        let mut cfg = ServiceConfig::new(dir);
        cfg.chunk_size = Some(64 * 1024);
        cfg.test_rollback_delay = delay;
        (Service::open(cfg).await.unwrap(), Caller::new("dev"))
    }

    pub(crate) fn write(path: &str, at: u64, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(data, at).unwrap();
    }

    pub(crate) fn read(path: &str, at: u64, len: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0; len];
        std::fs::File::open(path).unwrap().read_exact_at(&mut buf, at).unwrap();
        buf
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rollback_delay_keeps_the_point_rolling_back_then_restores_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, me) = service(dir.path(), Duration::from_millis(1500)).await;
        let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
        svc.wait_job(&me, &job.id).await.unwrap();
        let vol = svc.volume(&me, &vols[0].id).await.unwrap();
        write(&vol.path, 4096, b"before");
        let req = CreateSnapshots { volumes: vec![vol.id.clone()], ..Default::default() };
        let (job, snaps) = svc.create_snapshots(&me, req).await.unwrap();
        svc.wait_job(&me, &job.id).await.unwrap();
        write(&vol.path, 4096, b"after!");

        let job = svc.apply_snapshot(&me, &snaps[0].id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = svc.snapshot(&me, &snaps[0].id).await.unwrap();
        assert_eq!(s.transition, SnapshotTransition::RollingBack);
        assert_eq!(read(&vol.path, 4096, 6), b"after!", "no byte moves during the delay");
        assert_eq!(svc.wait_job(&me, &job.id).await.unwrap().status, JobStatus::Successful);
        assert_eq!(svc.snapshot(&me, &snaps[0].id).await.unwrap().transition, SnapshotTransition::None);
        assert_eq!(read(&vol.path, 4096, 6), b"before");

        // A bigger volume from the point: its bytes, then zeros; never smaller than the point.
        let (job, big) = svc.create_volume_from_snapshot_sized(&me, &snaps[0].id, "big", None, Some(3)).await.unwrap();
        assert_eq!(svc.wait_job(&me, &job.id).await.unwrap().status, JobStatus::Successful);
        let big = svc.volume(&me, &big.id).await.unwrap();
        assert_eq!(big.size, 3 * GIB);
        assert_eq!(std::fs::metadata(&big.path).unwrap().len(), 3 * GIB);
        assert_eq!(read(&big.path, 4096, 6), b"before");
        let small = svc.create_volume_from_snapshot_sized(&me, &snaps[0].id, "", None, Some(0)).await;
        assert!(matches!(small, Err(ServiceError::InvalidParameter { .. })), "{small:?}");
    }
}
