//! Every kind of job in one place: the parameters it keeps to run again after a restart, its
//! action, whether running it again from the start is right, and what it does, records and
//! undoes. [`crate::jobs`] runs any of them the same way; a new kind of job is one struct and
//! one `impl JobKind` here, plus its variant of [`Work`].

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use disksnap_meta::Batch;

use crate::error::{Result, ServiceError};
use crate::homes::HomeDown;
use crate::model::JobAction;
use crate::progress::JobProgress;
use crate::service::Service;

/// What a job's byte work produced, for [`JobKind::settle`] to record (the rest it reads
/// from the rows at the time it records them).
#[derive(Debug)]
pub(crate) enum Done {
    Nothing,
    /// Snapshots captured: (snapshot id, what the capture did).
    Captured(Vec<(String, disksnap_engine::CaptureStats)>),
    /// The volume rolled back, or the image captured, now holds this many bytes.
    Bytes(u64),
}

/// One kind of job.
#[async_trait]
pub(crate) trait JobKind: std::fmt::Debug + Send + Sync {
    /// The action the job row carries.
    fn action(&self) -> JobAction;

    /// Whether running the job again from the start after a crash gives the right result.
    fn resumable(&self) -> bool {
        true
    }

    /// The byte work (on the blocking pool where it blocks).
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done>;

    /// The batch that records what the work did, from rows read now.
    async fn settle(&self, svc: &Service, account: &str, done: &Done) -> Result<Batch>;

    /// The batch that takes back what a failed job reserved.
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch>;

    /// Points the job ceased, whose data is released once it succeeded.
    fn ceased(&self) -> &[String] {
        &[]
    }

    /// What to do when the home node of its volumes is down and its runner gone (in a
    /// cluster; see crate::homes): most wait, for the bytes are on that node's disk.
    fn when_home_is_down(&self) -> HomeDown {
        HomeDown::Wait
    }
}

/// A job's parameters as stored in `jobs.params` (`{"op": "create_volumes", …}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Work {
    CreateVolumes(CreateVolumes),
    ImportVolume(ImportVolume),
    ResizeVolume(ResizeVolume),
    DeleteVolumes(DeleteVolumes),
    CreateSnapshots(CreateSnapshots),
    DeleteSnapshots(DeleteSnapshots),
    ApplySnapshot(ApplySnapshot),
    RestoreVolume(RestoreVolume),
    CaptureImage(CaptureImage),
    DeleteSnapshotGroup(DeleteSnapshotGroup),
    RollbackVolumes(RollbackVolumes),
}

impl Work {
    pub(crate) fn kind(&self) -> &dyn JobKind {
        match self {
            Work::CreateVolumes(k) => k,
            Work::ImportVolume(k) => k,
            Work::ResizeVolume(k) => k,
            Work::DeleteVolumes(k) => k,
            Work::CreateSnapshots(k) => k,
            Work::DeleteSnapshots(k) => k,
            Work::ApplySnapshot(k) => k,
            Work::RestoreVolume(k) => k,
            Work::CaptureImage(k) => k,
            Work::DeleteSnapshotGroup(k) => k,
            Work::RollbackVolumes(k) => k,
        }
    }
}

/// A settle handed a result its kind of job never gives.
fn unexpected(kind: &dyn JobKind, done: &Done) -> ServiceError {
    ServiceError::Internal(format!("a job ended with {done:?}, which {kind:?} never gives"))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CreateVolumes {
    pub volumes: Vec<String>,
}

#[async_trait]
impl JobKind for CreateVolumes {
    fn action(&self) -> JobAction {
        JobAction::CreateVolumes
    }
    async fn execute(&self, svc: &Service, account: &str, _: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_create_volumes(account, &self.volumes).await
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        svc.settle_volumes_ready(account, &self.volumes).await
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_create_volumes(account, &self.volumes).await
    }
    /// Nothing is on a volume being created: another node of the zone makes it.
    fn when_home_is_down(&self) -> HomeDown {
        HomeDown::Rehome(self.volumes.clone())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImportVolume {
    pub volume: String,
    pub source: PathBuf,
}

#[async_trait]
impl JobKind for ImportVolume {
    fn action(&self) -> JobAction {
        JobAction::ImportVolume
    }
    fn resumable(&self) -> bool {
        false
    }
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_import_volume(account, &self.volume, &self.source, progress).await
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        svc.settle_volumes_ready(account, std::slice::from_ref(&self.volume)).await
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_create_volumes(account, std::slice::from_ref(&self.volume)).await
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ResizeVolume {
    pub volume: String,
    pub size: u64,
}

#[async_trait]
impl JobKind for ResizeVolume {
    fn action(&self) -> JobAction {
        JobAction::ResizeVolume
    }
    async fn execute(&self, svc: &Service, account: &str, _: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_resize_volume(account, &self.volume, self.size).await
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        svc.settle_resize_volume(account, &self.volume, self.size).await
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_release_volume(account, &self.volume, None).await
    }
}

/// With `snapshots`, the volume's points are deleted in the same job (Cinder's cascade).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeleteVolumes {
    pub volumes: Vec<String>,
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Jobs deleting the request's volumes on other home nodes (crate::homes): this one, whose
    /// id the caller holds, waits for them to end before it deletes its own, and fails (its
    /// volumes kept) when one of them failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

#[async_trait]
impl JobKind for DeleteVolumes {
    fn action(&self) -> JobAction {
        JobAction::DeleteVolumes
    }
    async fn execute(&self, svc: &Service, account: &str, _: &Arc<JobProgress>) -> Result<Done> {
        svc.wait_for_jobs(account, &self.after).await?;
        svc.exec_delete_volumes(account, &self.volumes).await
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        let mut batch = svc.settle_delete_snapshots(account, &self.snapshots).await?;
        let gone = svc.settle_delete_volumes(account, &self.volumes).await?;
        batch.delete_volumes = gone.delete_volumes;
        Ok(batch)
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        let mut batch = svc.undo_delete_volumes(account, &self.volumes).await?;
        batch.put_snapshots = svc.undo_delete_snapshots(account, &self.snapshots).await?.put_snapshots;
        Ok(batch)
    }
    fn ceased(&self) -> &[String] {
        &self.snapshots
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CreateSnapshots {
    pub snapshots: Vec<String>,
}

#[async_trait]
impl JobKind for CreateSnapshots {
    fn action(&self) -> JobAction {
        JobAction::CreateSnapshots
    }
    /// A point in time cannot be taken again later.
    fn resumable(&self) -> bool {
        false
    }
    /// Its instant (the clone) is on the node that is down.
    fn when_home_is_down(&self) -> HomeDown {
        HomeDown::Fail
    }
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_create_snapshots(account, &self.snapshots, progress).await
    }
    async fn settle(&self, svc: &Service, account: &str, done: &Done) -> Result<Batch> {
        match done {
            Done::Captured(stats) => svc.settle_create_snapshots(account, stats).await,
            other => Err(unexpected(self, other)),
        }
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_create_snapshots(account, &self.snapshots).await
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeleteSnapshots {
    pub snapshots: Vec<String>,
}

#[async_trait]
impl JobKind for DeleteSnapshots {
    fn action(&self) -> JobAction {
        JobAction::DeleteSnapshots
    }
    /// The rows change at the end; the data is released after (see `ceased`).
    async fn execute(&self, _: &Service, _: &str, _: &Arc<JobProgress>) -> Result<Done> {
        Ok(Done::Nothing)
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        svc.settle_delete_snapshots(account, &self.snapshots).await
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_delete_snapshots(account, &self.snapshots).await
    }
    fn ceased(&self) -> &[String] {
        &self.snapshots
    }
}

/// A volume rolled back to one of its points.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ApplySnapshot {
    pub snapshot: String,
    pub volume: String,
}

#[async_trait]
impl JobKind for ApplySnapshot {
    fn action(&self) -> JobAction {
        JobAction::RollBack
    }
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_apply(account, &self.snapshot, &self.volume, progress).await
    }
    async fn settle(&self, svc: &Service, account: &str, done: &Done) -> Result<Batch> {
        match done {
            Done::Bytes(size) => svc.settle_apply(account, &self.snapshot, &self.volume, *size).await,
            other => Err(unexpected(self, other)),
        }
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_release_volume(account, &self.volume, Some(&self.snapshot)).await
    }
}

/// A new volume holding a point's bytes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RestoreVolume {
    pub snapshot: String,
    pub volume: String,
}

#[async_trait]
impl JobKind for RestoreVolume {
    fn action(&self) -> JobAction {
        JobAction::RestoreVolume
    }
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_restore_volume(account, &self.snapshot, &self.volume, progress).await
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        svc.settle_restore_volume(account, &self.snapshot, &self.volume).await
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_restore_volume(account, &self.snapshot, &self.volume).await
    }
    /// The point is in the shared store and the new volume holds nothing yet: another node of
    /// the zone restores it from the start.
    fn when_home_is_down(&self) -> HomeDown {
        HomeDown::Rehome(vec![self.volume.clone()])
    }
}

/// An image made from a point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CaptureImage {
    pub snapshot: String,
    pub image: String,
}

#[async_trait]
impl JobKind for CaptureImage {
    fn action(&self) -> JobAction {
        JobAction::CaptureImage
    }
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_capture_image(account, &self.snapshot, &self.image, progress).await
    }
    async fn settle(&self, svc: &Service, account: &str, done: &Done) -> Result<Batch> {
        match done {
            Done::Bytes(size) => svc.settle_capture_image(account, &self.snapshot, &self.image, *size).await,
            other => Err(unexpected(self, other)),
        }
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_capture_image(account, &self.snapshot, &self.image).await
    }
}

/// A snapshot group deleted with its points (those an image was made from stay, as on ECS).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeleteSnapshotGroup {
    pub group: String,
    pub snapshots: Vec<String>,
}

#[async_trait]
impl JobKind for DeleteSnapshotGroup {
    fn action(&self) -> JobAction {
        JobAction::DeleteSnapshots
    }
    async fn execute(&self, _: &Service, _: &str, _: &Arc<JobProgress>) -> Result<Done> {
        Ok(Done::Nothing)
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        let mut batch = svc.settle_delete_snapshots(account, &self.snapshots).await?;
        batch.delete_snapshot_groups.push(self.group.clone());
        Ok(batch)
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        let mut batch = svc.undo_delete_snapshots(account, &self.snapshots).await?;
        batch.put_snapshot_groups.extend(svc.group_released(account, &self.group).await?);
        Ok(batch)
    }
    fn ceased(&self) -> &[String] {
        &self.snapshots
    }
}

/// One volume of a [`RollbackVolumes`]: the point it goes back to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Member {
    pub snapshot: String,
    pub volume: String,
}

/// Several volumes rolled back all or nothing (a snapshot group's roll back, Aliyun's
/// ResetDisks): every point is restored to a staged file first, then all staged files replace
/// the volumes' (see crate::groups for how a restart finishes or forgets it). `stage` names
/// the staged files and the commit marker of this job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RollbackVolumes {
    pub members: Vec<Member>,
    pub stage: String,
    #[serde(default)]
    pub group: Option<String>,
}

#[async_trait]
impl JobKind for RollbackVolumes {
    fn action(&self) -> JobAction {
        JobAction::RollBack
    }
    async fn execute(&self, svc: &Service, account: &str, progress: &Arc<JobProgress>) -> Result<Done> {
        svc.exec_rollback_volumes(account, &self.members, &self.stage, progress).await
    }
    async fn settle(&self, svc: &Service, account: &str, _: &Done) -> Result<Batch> {
        svc.settle_rollback_volumes(account, &self.members, self.group.as_deref()).await
    }
    async fn undo(&self, svc: &Service, account: &str) -> Result<Batch> {
        svc.undo_rollback_volumes(account, &self.members, &self.stage, self.group.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs persisted before the kinds moved here resume: the stored parameters read the same.
    #[test]
    fn stored_parameters_keep_their_shape() {
        let old = [
            r#"{"op":"create_volumes","volumes":["v1"]}"#,
            r#"{"op":"import_volume","volume":"v1","source":"/tmp/x"}"#,
            r#"{"op":"resize_volume","volume":"v1","size":10}"#,
            r#"{"op":"delete_volumes","volumes":["v1"]}"#,
            r#"{"op":"delete_volumes","volumes":["v1"],"snapshots":["s1"]}"#,
            r#"{"op":"create_snapshots","snapshots":["s1"]}"#,
            r#"{"op":"delete_snapshots","snapshots":["s1"]}"#,
            r#"{"op":"apply_snapshot","snapshot":"s1","volume":"v1"}"#,
            r#"{"op":"restore_volume","snapshot":"s1","volume":"v1"}"#,
            r#"{"op":"capture_image","snapshot":"s1","image":"i1"}"#,
        ];
        for text in old {
            let w: Work = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let again: serde_json::Value = serde_json::to_value(&w).unwrap();
            let mut want: serde_json::Value = serde_json::from_str(text).unwrap();
            if want["op"] == "delete_volumes" && want.get("snapshots").is_none() {
                want["snapshots"] = serde_json::json!([]);
            }
            assert_eq!(again, want);
        }
        let w: Work = serde_json::from_str(old[7]).unwrap();
        assert_eq!(w.kind().action(), JobAction::RollBack);
        assert!(!serde_json::from_str::<Work>(old[5]).unwrap().kind().resumable());
    }
}
