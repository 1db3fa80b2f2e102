//! The neutral resource model every dialect renders: typed states, times as UTC, sizes in bytes.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use disksnap_meta::{ImageRow, InstanceRow, JobRow, Millis, SnapshotRow, TagRow, VolumeRow};

use crate::error::{Result, ServiceError};

/// Kinds of resource, for errors and id prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Volume,
    Snapshot,
    Instance,
    Image,
    Job,
    Tag,
    Chain,
    /// An automatic snapshot policy.
    Policy,
    /// A snapshot group: points of several volumes taken at one snapshot time.
    SnapshotGroup,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Volume => "volume",
            Kind::Snapshot => "snapshot",
            Kind::Instance => "instance",
            Kind::Image => "image",
            Kind::Job => "job",
            Kind::Tag => "tag",
            Kind::Chain => "snapshot chain",
            Kind::Policy => "snapshot policy",
            Kind::SnapshotGroup => "snapshot group",
        })
    }
}

/// Declares a string-backed state enum with `as_str` and `parse`.
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some($name::$v),)+ _ => None } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
        /// The stored word, as list filters hold it.
        impl From<$name> for String {
            fn from(w: $name) -> String { w.as_str().to_string() }
        }
    };
}

words!(
    /// What a volume is for: the system (root, boot) disk of an instance, or a data disk.
    VolumeKind { System = "system", Data = "data" }
);
words!(VolumeStatus { Creating = "creating", Available = "available", InUse = "in-use", Deleted = "deleted" });
words!(
    /// Work in progress on a volume; while it is not `None`, other byte-moving work is refused.
    VolumeTransition {
        None = "",
        Creating = "creating",
        Snapshotting = "snapshotting",
        RollingBack = "rolling-back",
        Resizing = "resizing",
        Deleting = "deleting",
    }
);
words!(SnapshotStatus { Creating = "creating", Available = "available", Deleted = "deleted", Ceased = "ceased" });
words!(
    SnapshotTransition {
        None = "",
        Creating = "creating",
        Deleting = "deleting",
        Recovering = "recovering",
        /// A volume is being rolled back to this point.
        RollingBack = "rolling-back",
    }
);
words!(Origin { User = "user", Auto = "auto" });
words!(JobStatus { Pending = "pending", Working = "working", Successful = "successful", Failed = "failed" });
words!(
    /// What a job does, stored in `jobs.action`; each dialect shows it in its own words.
    JobAction {
        CreateVolumes = "create-volumes",
        ImportVolume = "import-volume",
        ResizeVolume = "resize-volume",
        DeleteVolumes = "delete-volumes",
        CreateSnapshots = "create-snapshots",
        DeleteSnapshots = "delete-snapshots",
        /// A volume rolled back to one of its points.
        RollBack = "roll-back",
        /// A new volume holding a point's bytes.
        RestoreVolume = "restore-volume",
        /// An image made from a point.
        CaptureImage = "capture-image",
        /// Recorded done at once, for dialects that answer these with a job to poll.
        AttachVolumes = "attach-volumes",
        DetachVolumes = "detach-volumes",
        DeleteImages = "delete-images",
    }
);

impl JobAction {
    /// The name rows written before the neutral names carry (QingCloud's action words). Rows in
    /// existing data dirs keep them: [`JobAction::read`] accepts both, and a filter on an
    /// action matches both.
    pub(crate) fn stored_before(self) -> &'static str {
        match self {
            JobAction::CreateVolumes => "CreateVolumes",
            JobAction::ImportVolume => "ImportVolume",
            JobAction::ResizeVolume => "ResizeVolumes",
            JobAction::DeleteVolumes => "DeleteVolumes",
            JobAction::CreateSnapshots => "CreateSnapshots",
            JobAction::DeleteSnapshots => "DeleteSnapshots",
            JobAction::RollBack => "ApplySnapshots",
            JobAction::RestoreVolume => "CreateVolumeFromSnapshot",
            JobAction::CaptureImage => "CaptureInstanceFromSnapshot",
            JobAction::AttachVolumes => "AttachVolumes",
            JobAction::DetachVolumes => "DetachVolumes",
            JobAction::DeleteImages => "DeleteImages",
        }
    }

    /// A stored action, in either its current or its former name.
    pub(crate) fn read(stored: &str) -> Option<Self> {
        Self::parse(stored).or_else(|| Self::ALL.iter().copied().find(|a| a.stored_before() == stored))
    }
}

words!(ImageStatus { Pending = "pending", Available = "available", Deleted = "deleted" });

/// A word read from a stored row, parsed. A word this build does not know means the row was
/// damaged or written by another version: an error naming the row and column (logged in full,
/// a generic internal error to the caller), never a default that would show, say, a deleted
/// volume as available and let work start on it.
pub(crate) fn stored<T>(parse: fn(&str) -> Option<T>, kind: Kind, id: &str, column: &str, text: &str) -> Result<T> {
    parse(text).ok_or_else(|| {
        ServiceError::Internal(format!(
            "{kind} {id}: its stored {column} {text:?} is not a value this version knows (a damaged metadata row, \
             or one written by another version of disksnap)"
        ))
    })
}

pub fn to_time(ms: Millis) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

#[derive(Clone, Debug, Serialize)]
pub struct Instance {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub create_time: DateTime<Utc>,
}

impl From<InstanceRow> for Instance {
    fn from(r: InstanceRow) -> Self {
        Instance { id: r.id, zone: r.zone, name: r.name, create_time: to_time(r.create_time) }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Volume {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    /// Bytes.
    pub size: u64,
    pub kind: VolumeKind,
    pub status: VolumeStatus,
    pub transition: VolumeTransition,
    pub instance_id: Option<String>,
    /// The raw file holding the volume's bytes.
    pub path: String,
    /// Root of the chain the next incremental snapshot appends to.
    pub head_root: Option<String>,
    /// The snapshot the volume was made from, if any.
    pub source_snapshot: Option<String>,
    /// The node whose disk holds its file, in a cluster (README "Cluster"); None: no home.
    pub home_node: Option<String>,
    pub create_time: DateTime<Utc>,
    pub status_time: DateTime<Utc>,
    pub tags: Vec<Tag>,
}

impl Volume {
    pub(crate) fn from_row(r: VolumeRow) -> Result<Self> {
        let kind = stored(VolumeKind::parse, Kind::Volume, &r.id, "kind", &r.kind)?;
        let status = stored(VolumeStatus::parse, Kind::Volume, &r.id, "status", &r.status)?;
        let transition = stored(VolumeTransition::parse, Kind::Volume, &r.id, "transition", &r.transition)?;
        Ok(Volume {
            id: r.id,
            zone: r.zone,
            name: r.name,
            description: r.description,
            size: r.size as u64,
            kind,
            status,
            transition,
            instance_id: r.instance_id,
            path: r.path,
            head_root: r.head_root,
            source_snapshot: r.source_snapshot,
            home_node: r.home_node,
            create_time: to_time(r.create_time),
            status_time: to_time(r.status_time),
            tags: Vec::new(),
        })
    }

    pub fn size_gib(&self) -> u64 {
        self.size.div_ceil(1 << 30)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Tag {
    pub id: String,
    pub key: String,
    pub value: String,
    pub create_time: DateTime<Utc>,
}

impl From<TagRow> for Tag {
    fn from(r: TagRow) -> Self {
        Tag { id: r.id, key: r.key, value: r.value, create_time: to_time(r.create_time) }
    }
}

/// Totals of a chain, carried by its full point.
#[derive(Clone, Debug, Serialize)]
pub struct Chain {
    /// Stored bytes of every live point of the chain.
    pub total_size: u64,
    pub total_count: u64,
    pub latest_snapshot_time: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub description: String,
    pub volume_id: String,
    /// Bytes of the volume when the point was taken.
    pub volume_size: u64,
    pub volume_kind: VolumeKind,
    pub instance_id: Option<String>,
    pub full: bool,
    pub root_id: String,
    /// None for a full point (QingCloud shows "self").
    pub parent_id: Option<String>,
    pub is_head: bool,
    /// This point's chain is the one its volume's next incremental appends to.
    pub head_chain: bool,
    pub status: SnapshotStatus,
    pub transition: SnapshotTransition,
    pub is_taken: bool,
    /// How the point's bytes were frozen: "instant" (a reflink clone at one instant, on
    /// XFS/btrfs), "read-pass" (the live volume read start to end, on a file system without
    /// reflink), "" for points taken before this was recorded or still being taken.
    pub consistency: String,
    /// 0..=100.
    pub progress: u8,
    pub snapshot_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub status_time: DateTime<Utc>,
    pub deleted_time: Option<DateTime<Utc>>,
    /// When a retention period releases it.
    pub expire_time: Option<DateTime<Utc>>,
    /// Stored bytes this point adds to its chain.
    pub size: u64,
    /// On full points only.
    pub chain: Option<Chain>,
    pub origin: Origin,
    pub retention_days: Option<u32>,
    pub encrypted: bool,
    pub used_by_images: u32,
    pub used_by_volumes: u32,
    pub tags: Vec<Tag>,
    /// Name of the volume the point was taken of, and of its instance (when it has one and
    /// the instance still exists): filled by the same batched lookups as `head_chain`, so a
    /// dialect naming the point's resource needs no query per page of its own. Not part of
    /// the CLI's JSON.
    #[serde(skip)]
    pub volume_name: String,
    #[serde(skip)]
    pub instance_name: Option<String>,
}

impl Snapshot {
    pub(crate) fn from_row(r: SnapshotRow) -> Result<Self> {
        let volume_kind = stored(VolumeKind::parse, Kind::Snapshot, &r.id, "volume_kind", &r.volume_kind)?;
        let status = stored(SnapshotStatus::parse, Kind::Snapshot, &r.id, "status", &r.status)?;
        let transition = stored(SnapshotTransition::parse, Kind::Snapshot, &r.id, "transition", &r.transition)?;
        let origin = stored(Origin::parse, Kind::Snapshot, &r.id, "origin", &r.origin)?;
        Ok(Snapshot {
            id: r.id,
            zone: r.zone,
            name: r.name,
            description: r.description,
            volume_id: r.volume_id,
            volume_size: r.volume_size as u64,
            volume_kind,
            instance_id: r.instance_id,
            full: r.is_full,
            root_id: r.root_id,
            parent_id: r.parent_id,
            is_head: r.is_head,
            head_chain: false,
            status,
            transition,
            is_taken: r.is_taken,
            consistency: r.consistency,
            progress: r.progress.clamp(0, 100) as u8,
            snapshot_time: to_time(r.snapshot_time),
            create_time: to_time(r.create_time),
            status_time: to_time(r.status_time),
            deleted_time: r.deleted_time.map(to_time),
            expire_time: r.expire_time.map(to_time),
            size: r.size.max(0) as u64,
            chain: None,
            origin,
            retention_days: r.retention_days.map(|d| d as u32),
            encrypted: r.encrypted,
            used_by_images: r.used_by_images as u32,
            used_by_volumes: r.used_by_volumes as u32,
            tags: Vec::new(),
            volume_name: String::new(),
            instance_name: None,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Image {
    pub id: String,
    pub zone: String,
    pub name: String,
    pub snapshot_id: String,
    pub path: String,
    pub size: u64,
    pub status: ImageStatus,
    pub create_time: DateTime<Utc>,
    pub status_time: DateTime<Utc>,
}

impl TryFrom<ImageRow> for Image {
    type Error = ServiceError;
    fn try_from(r: ImageRow) -> Result<Self> {
        let status = stored(ImageStatus::parse, Kind::Image, &r.id, "status", &r.status)?;
        Ok(Image {
            id: r.id,
            zone: r.zone,
            name: r.name,
            snapshot_id: r.snapshot_id,
            path: r.path,
            size: r.size as u64,
            status,
            create_time: to_time(r.create_time),
            status_time: to_time(r.status_time),
        })
    }
}

/// The kind of a failed job's failure (its error is kept as text; this is what clients act on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFailure {
    /// The data dir's disk filled up: free space and retry.
    InsufficientStorage,
    /// Anything else (interrupted by a crash, corrupt data, an internal error).
    Other,
}

#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub id: String,
    pub action: JobAction,
    pub status: JobStatus,
    pub resources: Vec<String>,
    pub error: Option<String>,
    /// The node that must run it (its volumes' home), in a cluster; None: any.
    pub node: Option<String>,
    pub create_time: DateTime<Utc>,
    pub status_time: DateTime<Utc>,
}

impl TryFrom<JobRow> for Job {
    type Error = ServiceError;
    fn try_from(r: JobRow) -> Result<Self> {
        let status = stored(JobStatus::parse, Kind::Job, &r.id, "status", &r.status)?;
        let action = stored(JobAction::read, Kind::Job, &r.id, "action", &r.action)?;
        let resources = serde_json::from_str(&r.resources).map_err(|e| {
            ServiceError::Internal(format!(
                "job {}: its stored resources {:?} are not a JSON list of ids: {e}",
                r.id, r.resources
            ))
        })?;
        Ok(Job {
            id: r.id,
            action,
            status,
            resources,
            error: r.error,
            node: r.node,
            create_time: to_time(r.create_time),
            status_time: to_time(r.status_time),
        })
    }
}

impl Job {
    /// The job's resources with their kinds, so each dialect can show them with its prefixes.
    /// The order is what each operation records: new snapshots then their volumes
    /// (CreateSnapshots); the point then the volume it writes or the image it makes (roll back,
    /// restore, capture); otherwise one kind throughout.
    pub fn typed_resources(&self) -> Vec<(Kind, &str)> {
        let r = &self.resources;
        let kinds: Vec<Kind> = match self.action {
            JobAction::CreateSnapshots => {
                let half = r.len() / 2;
                (0..r.len()).map(|i| if i < half { Kind::Snapshot } else { Kind::Volume }).collect()
            }
            JobAction::DeleteSnapshots => vec![Kind::Snapshot; r.len()],
            // A roll back of several volumes at once (a snapshot group's) lists each pair.
            JobAction::RollBack => {
                (0..r.len()).map(|i| if i % 2 == 0 { Kind::Snapshot } else { Kind::Volume }).collect()
            }
            JobAction::RestoreVolume => vec![Kind::Snapshot, Kind::Volume],
            JobAction::CaptureImage => vec![Kind::Snapshot, Kind::Image],
            JobAction::DeleteImages => vec![Kind::Image; r.len()],
            JobAction::CreateVolumes
            | JobAction::ImportVolume
            | JobAction::ResizeVolume
            | JobAction::DeleteVolumes
            | JobAction::AttachVolumes
            | JobAction::DetachVolumes => vec![Kind::Volume; r.len()],
        };
        r.iter().zip(kinds).map(|(id, k)| (k, id.as_str())).collect()
    }

    /// Why the job failed, for the dialects that show a failed job's error code; None unless
    /// it failed.
    pub fn failure(&self) -> Option<JobFailure> {
        if self.status != JobStatus::Failed {
            return None;
        }
        let full = self.error.as_deref().is_some_and(|e| e.starts_with(crate::error::INSUFFICIENT_STORAGE));
        Some(if full { JobFailure::InsufficientStorage } else { JobFailure::Other })
    }

    pub fn is_done(&self) -> bool {
        matches!(self.status, JobStatus::Successful | JobStatus::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored word this version does not know is an error naming the row and column, not a
    /// default (a damaged `deleted` once read as `available`).
    #[test]
    fn an_unknown_stored_word_is_an_error_naming_the_row() {
        let row = VolumeRow {
            id: "v1".into(),
            account: "a".into(),
            zone: "z".into(),
            name: String::new(),
            description: String::new(),
            size: 1,
            kind: "data".into(),
            status: "delet3d".into(),
            transition: String::new(),
            instance_id: None,
            path: "/x".into(),
            head_root: None,
            create_time: 0,
            status_time: 0,
            source_snapshot: None,
            home_node: None,
            version: 1,
        };
        let e = Volume::from_row(row.clone()).unwrap_err();
        assert!(
            matches!(&e, ServiceError::Internal(m) if m.contains("volume v1") && m.contains("status \"delet3d\"")),
            "{e}"
        );
        let ok = Volume::from_row(VolumeRow { status: "deleted".into(), ..row }).unwrap();
        assert_eq!(ok.status, VolumeStatus::Deleted);
        let job = JobRow {
            id: "j1".into(),
            account: "a".into(),
            action: "DeleteSnapshots".into(),
            status: "done?".into(),
            resources: "[]".into(),
            params: "null".into(),
            error: None,
            runner: None,
            create_time: 0,
            status_time: 0,
            node: None,
        };
        let e = Job::try_from(job.clone()).unwrap_err();
        assert!(matches!(&e, ServiceError::Internal(m) if m.contains("job j1")), "{e}");
        let e = Job::try_from(JobRow { status: "failed".into(), resources: "{".into(), ..job.clone() }).unwrap_err();
        assert!(matches!(&e, ServiceError::Internal(m) if m.contains("job j1") && m.contains("resources")), "{e}");
        // rows from before the neutral action names read as the same actions
        let old =
            |action: &str| Job::try_from(JobRow { status: "successful".into(), action: action.into(), ..job.clone() });
        assert_eq!(old("ApplySnapshots").unwrap().action, JobAction::RollBack);
        assert_eq!(old("CaptureInstanceFromSnapshot").unwrap().action, JobAction::CaptureImage);
        assert_eq!(old("roll-back").unwrap().action, JobAction::RollBack);
        assert!(old("Frobnicate").is_err());
    }
}
