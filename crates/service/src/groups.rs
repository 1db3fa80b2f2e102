//! Snapshot groups: points of several volumes of one account taken at one snapshot time, kept
//! as one object with its own id (Aliyun's snapshot-consistent groups, `ssg-…`).
//!
//! - Created by one snapshot job: the group's row (its members filled in) commits in the same
//!   batch as the points and the job, so a crash leaves both or neither. A failed capture is
//!   undone point by point; the group then has no live member and shows `failed`.
//! - Its status is read from its members' rows (`creating` while any is, `available` once all
//!   are), never written twice.
//! - Deleted by one job that deletes its members (those an image was made from stay, as ECS
//!   keeps them) and then the group.
//! - Rolled back all or nothing ([`Service::rollback_volumes`], also Aliyun's ResetDisks): each
//!   point is restored into a staged file beside its volume's (the volumes are untouched, so a
//!   failure or a restart simply forgets the staged files); once every one is staged and
//!   synced, a marker file makes the job one that must finish, and the staged files replace
//!   the volumes' by rename. A restart that finds the marker finishes the renames; one that
//!   does not starts the staging again (the job is resumable).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use disksnap_meta::{Batch, Expect, Millis, SnapshotGroupRow};
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::ids;
use crate::jobs::JobProgress;
use crate::model::*;
use crate::service::{Caller, Service};
use crate::snapshots::{CreateSnapshots, DeleteScope};
use crate::work::{self, Done, Member, Work};

/// What a new group captures: the volumes named, or every volume of `instance` (less
/// `exclude`), or the volumes named that are attached to `instance`.
#[derive(Clone, Debug, Default)]
pub struct CreateSnapshotGroup {
    pub volumes: Vec<String>,
    pub instance: Option<String>,
    pub exclude: Vec<String>,
    pub name: String,
    pub description: String,
}

/// A group's state, from its members' rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// A member is still being captured.
    Creating,
    /// Every member is available.
    Available,
    /// No member is left: the capture failed (and was undone), or its points were deleted.
    Failed,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Creating => "creating",
            GroupStatus::Available => "available",
            GroupStatus::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotGroup {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    pub instance_id: Option<String>,
    pub status: GroupStatus,
    /// Empty, or `deleting` / `rolling-back` while a job works on the whole group.
    pub transition: String,
    /// The members' mean progress, 0..=100.
    pub progress: u8,
    pub create_time: DateTime<Utc>,
    /// Every volume the group was taken of, in order (a deleted member's too).
    pub volume_ids: Vec<String>,
    /// The members still live (creating or available).
    pub snapshots: Vec<Snapshot>,
}

const DELETING: &str = "deleting";
const ROLLING_BACK: &str = "rolling-back";

fn members_of(row: &SnapshotGroupRow) -> Result<Vec<Member>> {
    serde_json::from_str(&row.members)
        .map_err(|e| ServiceError::Internal(format!("snapshot group {}: unreadable members: {e}", row.id)))
}

/// The group row with its members (the points just made) and their snapshot time.
pub(crate) fn with_members(
    g: &SnapshotGroupRow,
    snaps: &[disksnap_meta::SnapshotRow],
    now: Millis,
) -> SnapshotGroupRow {
    let members: Vec<Member> =
        snaps.iter().map(|s| Member { snapshot: s.id.clone(), volume: s.volume_id.clone() }).collect();
    SnapshotGroupRow {
        members: serde_json::to_string(&members).expect("members serialize"),
        create_time: now,
        status_time: now,
        ..g.clone()
    }
}

/// The staged file of a volume's roll back: beside the volume's file, so that the rename
/// that replaces it stays on one file system.
fn staged_path(volume_path: &str, stage: &str) -> PathBuf {
    PathBuf::from(format!("{volume_path}.stage-{stage}"))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ServiceError {
    ServiceError::Internal(format!("{what} {}: {e}", path.display()))
}

/// fsync a directory, so the names created or renamed in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("fsync", dir, e))
}

impl Service {
    fn rollback_marker(&self, stage: &str) -> PathBuf {
        self.inner.volumes_dir.join(format!("rollback-{stage}.commit"))
    }

    async fn group_row(&self, caller: &Caller, id: &str) -> Result<SnapshotGroupRow> {
        self.check_account(caller)?;
        let bare = self.parse_id(Kind::SnapshotGroup, id)?;
        self.meta()
            .snapshot_group(&caller.account, &bare)
            .await?
            .ok_or_else(|| ServiceError::not_found(Kind::SnapshotGroup, id))
    }

    /// Take one point of each volume at one snapshot time, as one group: one job.
    pub async fn create_snapshot_group(
        &self,
        caller: &Caller,
        req: CreateSnapshotGroup,
    ) -> Result<(Job, SnapshotGroup)> {
        self.check_account(caller)?;
        if !req.volumes.is_empty() && !req.exclude.is_empty() {
            return Err(ServiceError::invalid(
                "exclude",
                "name the volumes to take, or the volumes of the instance to leave out, not both",
            ));
        }
        let mut instance = None;
        let mut volumes = Vec::new();
        if let Some(i) = req.instance.as_deref().filter(|i| !i.is_empty()) {
            let bare = self.parse_id(Kind::Instance, i)?;
            self.meta()
                .instance(&caller.account, &bare)
                .await?
                .ok_or_else(|| ServiceError::not_found(Kind::Instance, i))?;
            let attached = self.meta().volumes_of_instance(&caller.account, &bare).await?;
            let excluded: Vec<String> = req.exclude.iter().filter_map(|e| ids::parse(Kind::Volume, e)).collect();
            for e in &req.exclude {
                let bare_e = self.parse_id(Kind::Volume, e)?;
                if !attached.iter().any(|v| v.id == bare_e) {
                    return Err(ServiceError::invalid(
                        "exclude",
                        format!("volume {e} is not attached to instance {i}"),
                    ));
                }
            }
            if req.volumes.is_empty() {
                volumes = attached.iter().filter(|v| !excluded.contains(&v.id)).map(|v| v.id.clone()).collect();
            } else {
                for v in &req.volumes {
                    let row = self.volume_row(caller, v).await?;
                    if row.instance_id.as_deref() != Some(bare.as_str()) {
                        return Err(ServiceError::invalid(
                            "volumes",
                            format!("volume {v} is not attached to instance {i}; name only that instance's volumes"),
                        ));
                    }
                    volumes.push(row.id);
                }
            }
            instance = Some(bare);
        } else {
            if !req.exclude.is_empty() {
                return Err(ServiceError::MissingParameter("instance".into()));
            }
            for v in &req.volumes {
                volumes.push(self.volume_row(caller, v).await?.id);
            }
        }
        let mut seen = BTreeSet::new();
        volumes.retain(|v| seen.insert(v.clone()));
        if volumes.is_empty() {
            return Err(match &instance {
                Some(i) => ServiceError::wrong_state(Kind::Instance, i, "empty", "it has no volumes to snapshot"),
                None => ServiceError::MissingParameter("volumes".into()),
            });
        }
        let mut zone = None;
        for v in &volumes {
            let row = self.volume_row(caller, v).await?;
            match &zone {
                None => zone = Some(row.zone.clone()),
                Some(z) if *z != row.zone => {
                    return Err(ServiceError::invalid(
                        "volumes",
                        format!("every volume of a group must be in one zone: {v} is in {}, not {z}", row.zone),
                    ))
                }
                Some(_) => {}
            }
        }
        let now = now_ms();
        let row = SnapshotGroupRow {
            id: ids::new_id(),
            account: caller.account.clone(),
            zone: zone.unwrap_or_default(),
            name: req.name.clone(),
            description: req.description.clone(),
            instance_id: instance,
            members: "[]".into(),
            transition: String::new(),
            create_time: now,
            status_time: now,
            version: 0,
        };
        let snaps = CreateSnapshots {
            volumes,
            name: req.name,
            description: req.description,
            origin: Some(Origin::User),
            ..Default::default()
        };
        let (job, _) = self.create_snapshots_grouped(caller, snaps, Some(&row)).await?;
        let group = self.snapshot_group(caller, &row.id).await?;
        Ok((job, group))
    }

    pub async fn snapshot_group(&self, caller: &Caller, id: &str) -> Result<SnapshotGroup> {
        let row = self.group_row(caller, id).await?;
        self.group_view(caller, row).await
    }

    /// The account's groups, oldest first.
    pub async fn snapshot_groups(&self, caller: &Caller) -> Result<Vec<SnapshotGroup>> {
        self.check_account(caller)?;
        let mut out = Vec::new();
        for row in self.meta().snapshot_groups(&caller.account).await? {
            out.push(self.group_view(caller, row).await?);
        }
        Ok(out)
    }

    async fn group_view(&self, caller: &Caller, row: SnapshotGroupRow) -> Result<SnapshotGroup> {
        let members = members_of(&row)?;
        let mut snapshots = Vec::new();
        for m in &members {
            match self.snapshot(caller, &m.snapshot).await {
                Ok(s) if matches!(s.status, SnapshotStatus::Creating | SnapshotStatus::Available) => snapshots.push(s),
                Ok(_) | Err(ServiceError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let status = if snapshots.is_empty() {
            GroupStatus::Failed
        } else if snapshots.iter().any(|s| s.status == SnapshotStatus::Creating) {
            GroupStatus::Creating
        } else {
            GroupStatus::Available
        };
        let progress = match snapshots.len() {
            0 => 0,
            n => (snapshots.iter().map(|s| s.progress as usize).sum::<usize>() / n) as u8,
        };
        Ok(SnapshotGroup {
            id: row.id,
            zone: row.zone,
            name: row.name,
            description: row.description,
            instance_id: row.instance_id,
            status,
            transition: row.transition,
            progress,
            create_time: to_time(row.create_time),
            volume_ids: members.into_iter().map(|m| m.volume).collect(),
            snapshots,
        })
    }

    /// Rename a group or change its description (None: unchanged).
    pub async fn modify_snapshot_group(
        &self,
        caller: &Caller,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<SnapshotGroup> {
        retrying!(async {
            let mut row = self.group_row(caller, id).await?;
            if let Some(n) = name {
                row.name = n.to_string();
            }
            if let Some(d) = description {
                row.description = d.to_string();
            }
            self.meta().commit(Batch { put_snapshot_groups: vec![row.clone()], ..Default::default() }).await?;
            self.snapshot_group(caller, id).await
        })
    }

    /// Delete a group and its points, in one job. Points an image was made from stay (ECS keeps
    /// them; delete the image, then the point); they are returned.
    pub async fn delete_snapshot_group(&self, caller: &Caller, id: &str) -> Result<(Job, Vec<String>)> {
        retrying!(async {
            let row = self.group_row(caller, id).await?;
            if !row.transition.is_empty() {
                return Err(ServiceError::wrong_state(
                    Kind::SnapshotGroup,
                    id,
                    row.transition.clone(),
                    "it is busy with another operation",
                ));
            }
            let mut targets = Vec::new();
            let mut kept = Vec::new();
            for m in members_of(&row)? {
                let Some(s) = self.meta().snapshot(&caller.account, &m.snapshot).await? else { continue };
                match s.status.as_str() {
                    "creating" => {
                        return Err(ServiceError::wrong_state(
                            Kind::SnapshotGroup,
                            id,
                            "creating",
                            "its snapshots are still being taken; delete it when they are done",
                        ))
                    }
                    "available" if s.used_by_images > 0 => kept.push(s.id),
                    "available" => targets.push(s.id),
                    _ => {} // deleted on its own already
                }
            }
            let mut marked = row.clone();
            marked.transition = DELETING.into();
            let (targets, mut batch) = if targets.is_empty() {
                (Vec::new(), Batch::default())
            } else {
                self.mark_deleting(caller, &targets, DeleteScope::Points).await?
            };
            batch.put_snapshot_groups.push(marked);
            let work = Work::DeleteSnapshotGroup(work::DeleteSnapshotGroup {
                group: row.id.clone(),
                snapshots: targets.clone(),
            });
            let job = self.submit(caller, work, targets, batch).await?;
            Ok((job, kept.clone()))
        })
    }

    /// Roll every member volume of a group back to its point, all or nothing.
    pub async fn rollback_snapshot_group(&self, caller: &Caller, id: &str) -> Result<Job> {
        retrying!(async {
            let row = self.group_row(caller, id).await?;
            if !row.transition.is_empty() {
                return Err(ServiceError::wrong_state(
                    Kind::SnapshotGroup,
                    id,
                    row.transition.clone(),
                    "it is busy with another operation",
                ));
            }
            let members = members_of(&row)?;
            for m in &members {
                let live = self.meta().snapshot(&caller.account, &m.snapshot).await?;
                if live.is_none_or(|s| s.status != SnapshotStatus::Available.as_str()) {
                    return Err(ServiceError::wrong_state(
                        Kind::SnapshotGroup,
                        id,
                        "incomplete",
                        format!(
                            "its snapshot {} of volume {} is not available (still being taken, or deleted), so the group cannot roll back as a whole",
                            m.snapshot, m.volume
                        ),
                    ));
                }
            }
            let points: Vec<String> = members.into_iter().map(|m| m.snapshot).collect();
            let mut marked = row.clone();
            marked.transition = ROLLING_BACK.into();
            self.submit_rollback(caller, &points, Some(marked)).await
        })
    }

    /// Roll each point's volume back to it, all or nothing (Aliyun's ResetDisks): no two points
    /// of one volume; every point available and idle, every volume idle.
    pub async fn rollback_volumes(&self, caller: &Caller, snapshots: &[String]) -> Result<Job> {
        retrying!(async { self.submit_rollback(caller, snapshots, None).await })
    }

    async fn submit_rollback(
        &self,
        caller: &Caller,
        points: &[String],
        group: Option<SnapshotGroupRow>,
    ) -> Result<Job> {
        if points.is_empty() {
            return Err(ServiceError::MissingParameter("snapshots".into()));
        }
        let mut batch = Batch::default();
        let mut members: Vec<Member> = Vec::new();
        for id in points {
            let snap = self.snapshot_row(caller, id).await?;
            if snap.status != SnapshotStatus::Available.as_str() {
                return Err(ServiceError::wrong_state(
                    Kind::Snapshot,
                    id,
                    snap.status.clone(),
                    "only an available snapshot can be used",
                ));
            }
            if !snap.transition.is_empty() {
                return Err(ServiceError::wrong_state(
                    Kind::Snapshot,
                    id,
                    snap.transition.clone(),
                    "it is busy with another operation",
                ));
            }
            if let Some(other) = members.iter().find(|m| m.volume == snap.volume_id) {
                return Err(ServiceError::invalid(
                    "snapshots",
                    format!(
                        "snapshots {} and {id} are both of volume {}; a volume rolls back to one point",
                        other.snapshot, snap.volume_id
                    ),
                ));
            }
            let vol = self.volume_to_roll_back(caller, &snap, id).await?;
            self.ensure_idle(&vol)?;
            let lock = self.lock_volume(&vol, VolumeTransition::RollingBack);
            batch.expect.extend(lock.expect);
            batch.put_volumes.extend(lock.put_volumes);
            batch.expect.push(Expect::SnapshotTransition { id: snap.id.clone(), expected: String::new() });
            let mut marked = snap.clone();
            marked.transition = SnapshotTransition::RollingBack.as_str().into();
            batch.put_snapshots.push(marked);
            members.push(Member { snapshot: snap.id, volume: vol.id });
        }
        let group_id = group.as_ref().map(|g| g.id.clone());
        batch.put_snapshot_groups.extend(group);
        let resources = members.iter().flat_map(|m| [m.snapshot.clone(), m.volume.clone()]).collect();
        let work = Work::RollbackVolumes(work::RollbackVolumes { members, stage: ids::new_id(), group: group_id });
        self.submit(caller, work, resources, batch).await
    }

    /// Stage every point, then replace every volume's file (see the module's comment).
    pub(crate) async fn exec_rollback_volumes(
        &self,
        account: &str,
        members: &[Member],
        stage: &str,
        progress: &Arc<JobProgress>,
    ) -> Result<Done> {
        let mut targets: Vec<(PathBuf, PathBuf)> = Vec::new();
        for m in members {
            let vol = self.volume_row_of(account, &m.volume).await?;
            targets.push((staged_path(&vol.path, stage), PathBuf::from(&vol.path)));
        }
        let marker = self.rollback_marker(stage);
        if !marker.exists() {
            // Staging changes no volume: on any failure (or a restart) the staged files go and
            // every volume is as it was.
            let staged = async {
                for (staged, _) in &targets {
                    match fs::remove_file(staged) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_error("remove", staged, e)),
                    }
                }
                for (m, (staged, _)) in members.iter().zip(&targets) {
                    let (store, name, path, p) =
                        (self.inner.store.clone(), m.snapshot.clone(), staged.clone(), progress.clone());
                    let stats = self.blocking(move || store.restore_new(&name, &path, p.as_ref())).await?;
                    tracing::info!(snapshot = %m.snapshot, volume = %m.volume, bytes = stats.size, "staged for a group roll back");
                }
                Ok(())
            };
            if let Err(e) = staged.await {
                for (staged, _) in &targets {
                    let _ = fs::remove_file(staged);
                }
                return Err(e);
            }
            // Every point is staged and synced (restore_new fsyncs): from the marker on, the
            // roll back is decided, and a restart finishes it instead of forgetting it.
            let f = disksnap_engine::private::create(&marker).map_err(|e| io_error("create", &marker, e))?;
            f.sync_all().map_err(|e| io_error("fsync", &marker, e))?;
            sync_dir(&self.inner.volumes_dir)?;
            let delay = self.config().test_rollback_delay;
            if !delay.is_zero() {
                tracing::warn!(
                    ?delay,
                    "test_rollback_delay: holding a group roll back between its staging and its commit"
                );
                tokio::time::sleep(delay).await;
            }
        }
        // Commit: each staged file replaces its volume's. Idempotent, so a restart repeats it:
        // a staged file already moved is not there any more.
        let mut dirs = BTreeSet::new();
        for (staged, path) in &targets {
            match fs::rename(staged, path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("rename", staged, e)),
            }
            dirs.extend(path.parent().map(Path::to_path_buf));
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        fs::remove_file(&marker).map_err(|e| io_error("remove", &marker, e))?;
        tracing::info!(volumes = members.len(), "group roll back committed");
        Ok(Done::Nothing)
    }

    pub(crate) async fn settle_rollback_volumes(
        &self,
        account: &str,
        members: &[Member],
        group: Option<&str>,
    ) -> Result<Batch> {
        let mut batch = Batch::default();
        for m in members {
            let mut snap = self.snapshot_row_of(account, &m.snapshot).await?;
            snap.transition = String::new();
            let mut vol = self.volume_row_of(account, &m.volume).await?;
            vol.size = snap.volume_size;
            batch.put_volumes.push(self.settled(vol));
            batch.put_snapshots.push(snap);
        }
        if let Some(g) = group {
            batch.put_snapshot_groups.extend(self.group_released(account, g).await?);
        }
        Ok(batch)
    }

    pub(crate) async fn undo_rollback_volumes(
        &self,
        account: &str,
        members: &[Member],
        stage: &str,
        group: Option<&str>,
    ) -> Result<Batch> {
        // Past the marker the volumes are (being) replaced: the staged files are theirs now.
        if !self.rollback_marker(stage).exists() {
            for m in members {
                if let Some(v) = self.meta().volume(account, &m.volume).await? {
                    let _ = fs::remove_file(staged_path(&v.path, stage));
                }
            }
        }
        let mut batch = Batch::default();
        for m in members {
            let b = self.undo_release_volume(account, &m.volume, Some(&m.snapshot)).await?;
            batch.put_volumes.extend(b.put_volumes);
            batch.put_snapshots.extend(b.put_snapshots);
        }
        if let Some(g) = group {
            batch.put_snapshot_groups.extend(self.group_released(account, g).await?);
        }
        Ok(batch)
    }

    /// The group's row with no transition, if it still exists.
    pub(crate) async fn group_released(&self, account: &str, id: &str) -> Result<Option<SnapshotGroupRow>> {
        Ok(self.meta().snapshot_group(account, id).await?.map(|mut g| {
            g.transition = String::new();
            g.status_time = now_ms();
            g
        }))
    }
}
