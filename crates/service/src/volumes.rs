//! Volumes (raw image files) and instances (named groups of volumes).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use disksnap_meta::{Batch, Expect, InstanceRow, SnapshotFilter, VolumeFilter, VolumeRow};

use crate::error::{Result, ServiceError};
use crate::ids;
use crate::jobs::JobProgress;
use crate::model::{now_ms, stored, Instance, Job, Kind, Volume, VolumeKind, VolumeStatus, VolumeTransition};
use crate::service::{Caller, Service};
use crate::snapshots::parse_all;
use crate::work::{self, Done, Work};

pub const GIB: u64 = 1 << 30;
/// Largest volume, as the big clouds allow (32 TiB).
pub const MAX_VOLUME_GIB: u64 = 32 * 1024;
pub const MAX_VOLUMES_PER_CALL: u32 = 100;

#[derive(Clone, Debug, Default)]
pub struct CreateVolumes {
    /// Zone name or alias; the default zone when None.
    pub zone: Option<String>,
    pub name: String,
    pub description: String,
    pub size_gib: u64,
    pub kind: Option<VolumeKind>,
    pub count: u32,
    pub instance_id: Option<String>,
}

/// A new volume holding a snapshot's bytes, named, described, sized and attached in one step:
/// everything is on the row when the job is submitted, so a restart loses none of it.
#[derive(Clone, Debug, Default)]
pub struct VolumeFromSnapshot {
    /// The snapshot, in any dialect's rendering.
    pub snapshot: String,
    pub name: String,
    pub description: String,
    /// Must be the snapshot's zone when given.
    pub zone: Option<String>,
    /// At least the point's size (the space past its bytes reads as zeros); None: the point's
    /// size rounded up to whole GiB.
    pub size_gib: Option<u64>,
    /// Attached to this instance from the start (shown in use once its bytes are in place).
    pub instance_id: Option<String>,
}

/// Create a sparse file of `size` bytes durably (file and directory entry on disk).
fn create_sparse(path: &Path, size: u64) -> std::io::Result<()> {
    let f = disksnap_engine::private::options().write(true).create_new(true).open(path)?;
    f.set_len(size)?;
    f.sync_all()?;
    File::open(path.parent().unwrap())?.sync_all()
}

impl Service {
    pub(crate) fn new_volume_row(
        &self,
        caller: &Caller,
        zone: &str,
        name: &str,
        size: u64,
        kind: VolumeKind,
        home: Option<String>,
    ) -> VolumeRow {
        let id = ids::new_id();
        let now = now_ms();
        VolumeRow {
            path: self.new_volume_path(&id, zone, home.as_deref()),
            home_node: home,
            id,
            account: caller.account.clone(),
            zone: zone.to_string(),
            name: name.to_string(),
            description: String::new(),
            size: size as i64,
            kind: kind.as_str().into(),
            status: VolumeStatus::Creating.as_str().into(),
            transition: VolumeTransition::Creating.as_str().into(),
            instance_id: None,
            head_root: None,
            source_snapshot: None,
            create_time: now,
            status_time: now,
            version: 0,
        }
    }

    fn zone_or_default(&self, zone: Option<&str>) -> Result<String> {
        match zone.filter(|z| !z.trim().is_empty()) {
            Some(z) => self.resolve_zone(z),
            None => Ok(self.default_zone()),
        }
    }

    /// Create `count` blank volumes (sparse files). Returns the job and the volumes as reserved.
    pub async fn create_volumes(&self, caller: &Caller, req: CreateVolumes) -> Result<(Job, Vec<Volume>)> {
        self.check_account(caller)?;
        let zone = self.zone_or_default(req.zone.as_deref())?;
        if req.size_gib == 0 || req.size_gib > MAX_VOLUME_GIB {
            return Err(ServiceError::invalid(
                "size",
                format!("must be 1 to {MAX_VOLUME_GIB} GiB, got {}", req.size_gib),
            ));
        }
        let count = if req.count == 0 { 1 } else { req.count };
        if count > MAX_VOLUMES_PER_CALL {
            return Err(ServiceError::invalid("count", format!("at most {MAX_VOLUMES_PER_CALL} volumes per call")));
        }
        let kind = req.kind.unwrap_or(VolumeKind::Data);
        let instance = match &req.instance_id {
            Some(i) => Some(self.instance_row_for_attach(caller, i, &zone, kind, count).await?),
            None => None,
        };
        let home = self.place_volume(&zone).await?;
        let mut batch = Batch::default();
        for _ in 0..count {
            let mut row = self.new_volume_row(caller, &zone, &req.name, req.size_gib * GIB, kind, home.clone());
            row.description = req.description.clone();
            row.instance_id = instance.as_ref().map(|i| i.id.clone());
            batch.put_volumes.push(row);
        }
        let vols: Vec<String> = batch.put_volumes.iter().map(|v| v.id.clone()).collect();
        let rows = batch.put_volumes.clone();
        let job = self
            .submit(caller, Work::CreateVolumes(work::CreateVolumes { volumes: vols.clone() }), vols, batch)
            .await?;
        Ok((job, rows.into_iter().map(Volume::from_row).collect::<Result<_>>()?))
    }

    /// Import an existing raw image file as a new volume (copied sparsely; its size is rounded
    /// up to whole GiB with a hole).
    pub async fn import_volume(
        &self,
        caller: &Caller,
        zone: Option<&str>,
        name: &str,
        kind: VolumeKind,
        source: &Path,
    ) -> Result<(Job, Volume)> {
        self.check_account(caller)?;
        let zone = self.zone_or_default(zone)?;
        let meta =
            fs::metadata(source).map_err(|e| ServiceError::invalid("source", format!("{}: {e}", source.display())))?;
        if !meta.is_file() {
            return Err(ServiceError::invalid("source", format!("{} is not a regular file", source.display())));
        }
        if meta.len() == 0 {
            return Err(ServiceError::invalid("source", format!("{} is empty", source.display())));
        }
        let size = meta.len().div_ceil(GIB) * GIB;
        if size / GIB > MAX_VOLUME_GIB {
            return Err(ServiceError::invalid("source", format!("larger than {MAX_VOLUME_GIB} GiB")));
        }
        let source = source.canonicalize().map_err(|e| ServiceError::invalid("source", e.to_string()))?;
        // The source file is on this machine: so is the volume.
        let home = self.node().map(|n| n.name.clone());
        let row = self.new_volume_row(caller, &zone, name, size, kind, home);
        let id = row.id.clone();
        let batch = Batch { put_volumes: vec![row.clone()], ..Default::default() };
        let job = self
            .submit(caller, Work::ImportVolume(work::ImportVolume { volume: id.clone(), source }), vec![id], batch)
            .await?;
        Ok((job, Volume::from_row(row)?))
    }

    pub(crate) async fn exec_create_volumes(&self, account: &str, ids_: &[String]) -> Result<Done> {
        for id in ids_ {
            let row = self.own_volume_file(self.volume_row_of(account, id).await?).await?;
            let path = PathBuf::from(&row.path);
            let size = row.size as u64;
            tokio::task::spawn_blocking(move || match create_sparse(&path, size) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()), // resumed job
                other => other,
            })
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(format!("create volume file: {e}")))?;
        }
        Ok(Done::Nothing)
    }

    /// New volumes whose bytes are in place become available (or in use).
    pub(crate) async fn settle_volumes_ready(&self, account: &str, ids_: &[String]) -> Result<Batch> {
        let mut batch = Batch::default();
        for id in ids_ {
            let row = self.volume_row_of(account, id).await?;
            batch.put_volumes.push(self.settled(row));
        }
        Ok(batch)
    }

    pub(crate) async fn exec_import_volume(
        &self,
        account: &str,
        id: &str,
        source: &Path,
        progress: &std::sync::Arc<JobProgress>,
    ) -> Result<Done> {
        let row = self.volume_row_of(account, id).await?;
        let (src, dst, size, p) = (source.to_path_buf(), PathBuf::from(&row.path), row.size as u64, progress.clone());
        self.blocking(move || {
            disksnap_engine::volume_io::sparse_copy(&src, &dst, size, &|done, total| {
                disksnap_engine::Progress::start(p.as_ref(), total);
                disksnap_engine::Progress::advance(p.as_ref(), done);
            })
        })
        .await?;
        Ok(Done::Nothing)
    }

    /// A volume row with its work done: no transition, available or in use.
    pub(crate) fn settled(&self, mut row: VolumeRow) -> VolumeRow {
        row.status =
            if row.instance_id.is_some() { VolumeStatus::InUse } else { VolumeStatus::Available }.as_str().into();
        row.transition = String::new();
        row.status_time = now_ms();
        row
    }

    /// A volume row by bare id within `account` (jobs carry the account that owns them).
    /// A snapshot row by bare id within `account` (jobs carry the account that owns them).
    pub(crate) async fn snapshot_row_of(&self, account: &str, id: &str) -> Result<disksnap_meta::SnapshotRow> {
        self.meta().snapshot(account, id).await?.ok_or_else(|| ServiceError::not_found(Kind::Snapshot, id))
    }

    pub(crate) async fn volume_row_of(&self, account: &str, id: &str) -> Result<VolumeRow> {
        self.meta().volume(account, id).await?.ok_or_else(|| ServiceError::not_found(Kind::Volume, id))
    }

    pub(crate) async fn undo_create_volumes(&self, account: &str, ids_: &[String]) -> Result<Batch> {
        let mut batch = Batch::default();
        for id in ids_ {
            if let Some(row) = self.meta().volume(account, id).await? {
                let _ = fs::remove_file(&row.path);
                batch.delete_volumes.push(row.id);
            }
        }
        Ok(batch)
    }

    pub async fn volume(&self, caller: &Caller, id: &str) -> Result<Volume> {
        let row = self.volume_row(caller, id).await?;
        let mut v = Volume::from_row(row)?;
        v.tags = self.meta().tags_of(std::slice::from_ref(&v.id)).await?.into_iter().map(|(_, t)| t.into()).collect();
        Ok(v)
    }

    /// Every volume `q` matches (its paging ignored), read in keyset pages with no COUNT: for
    /// dialects that sort or page in memory what the indexes cannot.
    pub async fn all_volumes(&self, caller: &Caller, q: &VolumeFilter) -> Result<Vec<Volume>> {
        const PAGE: u64 = 100;
        let mut q = VolumeFilter { offset: 0, limit: PAGE, after: None, skip_count: true, ..q.clone() };
        let mut out = Vec::new();
        loop {
            let (page, _) = self.volumes(caller, &q).await?;
            let more = page.len() as u64 == PAGE;
            q.after = page.last().map(|v| (v.create_time.timestamp_millis(), v.id.clone()));
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// A page of the volumes `q` matches and the count of all of them (0 with `skip_count`).
    pub async fn volumes(&self, caller: &Caller, q: &VolumeFilter) -> Result<(Vec<Volume>, u64)> {
        self.check_account(caller)?;
        let (Some(ids_), Some(instance_ids), Some(tag_ids)) = (
            parse_all(Kind::Volume, &q.ids),
            parse_all(Kind::Instance, &q.instance_ids),
            parse_all(Kind::Tag, &q.tag_ids),
        ) else {
            return Ok((Vec::new(), 0));
        };
        let stored = VolumeFilter {
            account: caller.account.clone(),
            ids: ids_,
            instance_ids,
            tag_ids,
            zone: self.stored_zone(q.zone.as_deref())?,
            search: q.search.clone().filter(|s| !s.is_empty()),
            ..q.clone()
        };
        let page = self.meta().volumes(&stored).await?;
        let ids_: Vec<String> = page.items.iter().map(|v| v.id.clone()).collect();
        let tags = self.meta().tags_of(&ids_).await?;
        let vols = page
            .items
            .into_iter()
            .map(|r| {
                let mut v = Volume::from_row(r)?;
                v.tags = tags.iter().filter(|(rid, _)| rid == &v.id).map(|(_, t)| t.clone().into()).collect();
                Ok(v)
            })
            .collect::<Result<_>>()?;
        Ok((vols, page.total))
    }

    /// Ensure the volume has no work in progress; returns the busy error otherwise.
    pub(crate) fn ensure_idle(&self, row: &VolumeRow) -> Result<()> {
        if row.transition.is_empty() && row.status != VolumeStatus::Creating.as_str() {
            return Ok(());
        }
        let state = if row.transition.is_empty() { row.status.clone() } else { row.transition.clone() };
        Err(ServiceError::wrong_state(Kind::Volume, &row.id, state, "it is busy with another operation"))
    }

    /// Grow a volume. Shrinking is refused: it would cut data off the end.
    pub async fn resize_volume(&self, caller: &Caller, id: &str, size_gib: u64) -> Result<Job> {
        retrying!(async {
            let row = self.volume_row(caller, id).await?;
            self.ensure_idle(&row)?;
            let size = size_gib.saturating_mul(GIB);
            if size_gib > MAX_VOLUME_GIB {
                return Err(ServiceError::invalid("size", format!("at most {MAX_VOLUME_GIB} GiB")));
            }
            if size <= row.size as u64 {
                return Err(ServiceError::invalid(
                    "size",
                    format!(
                        "a volume can only grow: volume {} is {} GiB, asked for {size_gib} GiB",
                        row.id,
                        (row.size as u64).div_ceil(GIB)
                    ),
                ));
            }
            let batch = self.lock_volume(&row, VolumeTransition::Resizing);
            self.submit(
                caller,
                Work::ResizeVolume(work::ResizeVolume { volume: row.id.clone(), size }),
                vec![row.id],
                batch,
            )
            .await
        })
    }

    pub(crate) async fn exec_resize_volume(&self, account: &str, id: &str, size: u64) -> Result<Done> {
        let row = self.volume_row_of(account, id).await?;
        let path = PathBuf::from(&row.path);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let f = OpenOptions::new().write(true).open(&path)?;
            if f.metadata()?.len() < size {
                f.set_len(size)?;
            }
            f.sync_all()
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|e| ServiceError::Internal(format!("resize volume file: {e}")))?;
        Ok(Done::Nothing)
    }

    pub(crate) async fn settle_resize_volume(&self, account: &str, id: &str, size: u64) -> Result<Batch> {
        let mut row = self.volume_row_of(account, id).await?;
        row.size = size as i64;
        Ok(Batch { put_volumes: vec![self.settled(row)], ..Default::default() })
    }

    /// A batch that marks the volume busy with `t`, if (and only if) it is still idle.
    pub(crate) fn lock_volume(&self, row: &VolumeRow, t: VolumeTransition) -> Batch {
        let mut locked = row.clone();
        locked.transition = t.as_str().into();
        locked.status_time = now_ms();
        Batch {
            expect: vec![Expect::VolumeTransition { id: row.id.clone(), expected: String::new() }],
            put_volumes: vec![locked],
            ..Default::default()
        }
    }

    /// The volume made idle again, and the point it was rolling back to, if any.
    pub(crate) async fn undo_release_volume(&self, account: &str, id: &str, snapshot: Option<&str>) -> Result<Batch> {
        let mut batch = Batch::default();
        if let Some(row) = self.meta().volume(account, id).await? {
            batch.put_volumes.push(self.settled(row));
        }
        if let Some(snapshot) = snapshot {
            if let Some(mut s) = self.meta().snapshot(account, snapshot).await? {
                s.transition = String::new();
                batch.put_snapshots.push(s);
            }
        }
        Ok(batch)
    }

    /// A volume that may be deleted (idle, detached) and the batch that marks it deleting.
    async fn lock_for_delete(&self, caller: &Caller, id: &str) -> Result<(VolumeRow, Batch)> {
        let row = self.volume_row(caller, id).await?;
        self.ensure_idle(&row)?;
        if let Some(i) = &row.instance_id {
            return Err(ServiceError::wrong_state(
                Kind::Volume,
                id,
                "in-use",
                format!("it is attached to instance {i}; detach it first"),
            ));
        }
        let lock = self.lock_volume(&row, VolumeTransition::Deleting);
        Ok((row, lock))
    }

    /// Delete volumes (their snapshots stay). Attached or busy volumes are refused.
    pub async fn delete_volumes(&self, caller: &Caller, ids_: &[String]) -> Result<Job> {
        retrying!(async {
            if ids_.is_empty() {
                return Err(ServiceError::MissingParameter("volumes".into()));
            }
            let mut batch = Batch::default();
            let mut bare = Vec::new();
            for id in ids_ {
                let (row, b) = self.lock_for_delete(caller, id).await?;
                batch.expect.extend(b.expect);
                batch.put_volumes.extend(b.put_volumes);
                bare.push(row.id);
            }
            if Self::job_node(&batch).is_err() {
                return self.delete_across_homes(caller, bare, batch).await;
            }
            let work = Work::DeleteVolumes(work::DeleteVolumes {
                volumes: bare.clone(),
                snapshots: Vec::new(),
                after: Vec::new(),
            });
            self.submit(caller, work, bare, batch).await
        })
    }

    /// Delete a volume and its available points in one job (Cinder's `cascade=true`): all of
    /// it, or, if any point is busy, nothing.
    pub async fn delete_volume_cascade(&self, caller: &Caller, id: &str) -> Result<Job> {
        retrying!(async {
            let (row, lock) = self.lock_for_delete(caller, id).await?;
            let q = SnapshotFilter {
                volume_ids: vec![row.id.clone()],
                statuses: vec![crate::model::SnapshotStatus::Available.into()],
                ..Default::default()
            };
            let points: Vec<String> = self.all_snapshots(caller, &q).await?.into_iter().map(|s| s.id).collect();
            let (snapshots, mut batch) = if points.is_empty() {
                (Vec::new(), Batch::default())
            } else {
                self.mark_deleting(caller, &points, crate::snapshots::DeleteScope::Points).await?
            };
            batch.expect.extend(lock.expect);
            batch.put_volumes.extend(lock.put_volumes);
            let mut resources = vec![row.id.clone()];
            resources.extend(snapshots.iter().cloned());
            let work = Work::DeleteVolumes(work::DeleteVolumes {
                volumes: vec![row.id.clone()],
                snapshots,
                after: Vec::new(),
            });
            self.submit(caller, work, resources, batch).await
        })
    }

    pub(crate) async fn exec_delete_volumes(&self, account: &str, ids_: &[String]) -> Result<Done> {
        for id in ids_ {
            let Ok(row) = self.volume_row_of(account, id).await else { continue };
            match fs::remove_file(&row.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ServiceError::Internal(format!("remove {}: {e}", row.path))),
            }
            // Its point clones (points.rs) go with it.
            let clones = crate::points::points_dir(std::path::Path::new(&row.path));
            match fs::remove_dir_all(&clones) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ServiceError::Internal(format!("remove {}: {e}", clones.display()))),
            }
        }
        Ok(Done::Nothing)
    }

    pub(crate) async fn settle_delete_volumes(&self, account: &str, ids_: &[String]) -> Result<Batch> {
        let mut batch = Batch::default();
        for id in ids_ {
            if let Some(row) = self.meta().volume(account, id).await? {
                batch.delete_volumes.push(row.id);
            }
        }
        Ok(batch)
    }

    pub(crate) async fn undo_delete_volumes(&self, account: &str, ids_: &[String]) -> Result<Batch> {
        let mut batch = Batch::default();
        for id in ids_ {
            if let Some(row) = self.meta().volume(account, id).await? {
                if Path::new(&row.path).exists() {
                    batch.put_volumes.push(self.settled(row));
                }
            }
        }
        Ok(batch)
    }

    pub async fn modify_volume(
        &self,
        caller: &Caller,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Volume> {
        retrying!(async {
            let mut row = self.volume_row(caller, id).await?;
            if let Some(n) = name {
                row.name = n.to_string();
            }
            if let Some(d) = description {
                row.description = d.to_string();
            }
            self.meta().commit(Batch { put_volumes: vec![row.clone()], ..Default::default() }).await?;
            Volume::from_row(row)
        })
    }

    pub(crate) async fn instance_row_for_attach(
        &self,
        caller: &Caller,
        id: &str,
        zone: &str,
        kind: VolumeKind,
        adding: u32,
    ) -> Result<InstanceRow> {
        let bare = self.parse_id(Kind::Instance, id)?;
        let inst = self
            .meta()
            .instance(&caller.account, &bare)
            .await?
            .ok_or_else(|| ServiceError::not_found(Kind::Instance, id))?;
        if inst.zone != zone {
            return Err(ServiceError::invalid(
                "instance",
                format!("instance {id} is in zone {}, the volume in {zone}", inst.zone),
            ));
        }
        if kind == VolumeKind::System {
            let has_system =
                self.meta().volumes_of_instance(&caller.account, &bare).await?.iter().any(|v| v.kind == "system");
            if has_system || adding > 1 {
                return Err(ServiceError::wrong_state(
                    Kind::Instance,
                    id,
                    "has-system-disk",
                    "an instance has one system disk",
                ));
            }
        }
        Ok(inst)
    }

    /// Attach volumes to an instance (metadata only: no VM runs).
    pub async fn attach_volumes(&self, caller: &Caller, ids_: &[String], instance: &str) -> Result<Vec<Volume>> {
        retrying!(async {
            let mut batch = Batch::default();
            for id in ids_ {
                let mut row = self.volume_row(caller, id).await?;
                self.ensure_idle(&row)?;
                if let Some(i) = &row.instance_id {
                    return Err(ServiceError::wrong_state(
                        Kind::Volume,
                        id,
                        "in-use",
                        format!("already attached to instance {i}"),
                    ));
                }
                let kind = stored(VolumeKind::parse, Kind::Volume, &row.id, "kind", &row.kind)?;
                let inst = self.instance_row_for_attach(caller, instance, &row.zone, kind, 1).await?;
                row.instance_id = Some(inst.id);
                batch.expect.push(Expect::VolumeTransition { id: row.id.clone(), expected: String::new() });
                batch.put_volumes.push(self.settled(row));
            }
            let out = batch.put_volumes.iter().cloned().map(Volume::from_row).collect::<Result<_>>()?;
            self.meta().commit(batch).await?;
            Ok(out)
        })
    }

    pub async fn detach_volumes(&self, caller: &Caller, ids_: &[String]) -> Result<Vec<Volume>> {
        retrying!(async {
            let mut batch = Batch::default();
            for id in ids_ {
                let mut row = self.volume_row(caller, id).await?;
                self.ensure_idle(&row)?;
                if row.instance_id.is_none() {
                    return Err(ServiceError::wrong_state(
                        Kind::Volume,
                        id,
                        "available",
                        "it is not attached to an instance",
                    ));
                }
                row.instance_id = None;
                batch.expect.push(Expect::VolumeTransition { id: row.id.clone(), expected: String::new() });
                batch.put_volumes.push(self.settled(row));
            }
            let out = batch.put_volumes.iter().cloned().map(Volume::from_row).collect::<Result<_>>()?;
            self.meta().commit(batch).await?;
            Ok(out)
        })
    }

    pub async fn create_instance(&self, caller: &Caller, zone: Option<&str>, name: &str) -> Result<Instance> {
        self.check_account(caller)?;
        let zone = self.zone_or_default(zone)?;
        let row = InstanceRow {
            id: ids::new_id(),
            account: caller.account.clone(),
            zone,
            name: name.to_string(),
            create_time: now_ms(),
        };
        self.meta().commit(Batch { put_instances: vec![row.clone()], ..Default::default() }).await?;
        Ok(row.into())
    }

    pub async fn instances(&self, caller: &Caller) -> Result<Vec<Instance>> {
        self.check_account(caller)?;
        Ok(self.meta().instances(&caller.account).await?.into_iter().map(Instance::from).collect())
    }

    /// The instance's volumes, system disk first.
    pub async fn instance_volumes(&self, caller: &Caller, id: &str) -> Result<Vec<Volume>> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::Instance, id)?;
        self.meta()
            .instance(&caller.account, &bare)
            .await?
            .ok_or_else(|| ServiceError::not_found(Kind::Instance, id))?;
        self.meta().volumes_of_instance(&caller.account, &bare).await?.into_iter().map(Volume::from_row).collect()
    }
}
