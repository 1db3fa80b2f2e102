//! Tencent v2 spelling of the neutral model: camelCase items, `snap-`/`disk-`/`ins-` ids, status
//! words, `YYYY-MM-DD hh:mm:ss` times in China Standard Time, sizes in GB (dialects.md §5.4–5.5).

use chrono::{DateTime, Utc};
use disksnap_service::{
    ids, Kind, Snapshot, SnapshotStatus, SnapshotTransition, Volume, VolumeKind, VolumeStatus, VolumeTransition,
    ZoneConfig,
};
use serde::Serialize;

/// Bytes in the GB Tencent counts sizes in (the service's GiB).
const GB: u64 = 1 << 30;

/// The first integer `zoneId`; the n-th configured zone (0-based) is `ZONE_ID_BASE + n`.
/// disksnap choice (Tencent's own ids look like 100003).
pub const ZONE_ID_BASE: i64 = 100001;

pub fn prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Snapshot | Kind::Chain => "snap-",
        Kind::Volume => "disk-",
        Kind::Instance => "ins-",
        Kind::Image => "img-",
        Kind::Job => "",
        Kind::Tag => "tag-",
        Kind::Policy => "asp-",
        Kind::SnapshotGroup => "ssg-",
    }
}

/// A bare id shown the Tencent way.
pub fn show(kind: Kind, bare: &str) -> String {
    format!("{}{bare}", prefix(kind))
}

/// Any rendering of an id (`vol-…`, `s-…`) re-shown the Tencent way; text that is no id stays.
pub fn reshow(kind: Kind, text: &str) -> String {
    match ids::parse(kind, text) {
        Some(bare) if kind != Kind::Job => show(kind, &bare),
        _ => text.to_string(),
    }
}

/// A job id as ApplySnapshot's integer `requestId`: the base-36 suffix read as a number.
pub fn task_id(job_bare: &str) -> i64 {
    i64::from_str_radix(job_bare, 36).unwrap_or(0)
}

/// `2016-05-17 19:58:48`, UTC+08:00 (disksnap choice: the vendor's home time zone).
pub fn time(t: DateTime<Utc>) -> String {
    disksnap_api_common::time::plain(t + chrono::Duration::hours(8))
}

pub fn size_gb(bytes: u64) -> u64 {
    bytes.div_ceil(GB)
}

pub fn disk_type(kind: VolumeKind) -> &'static str {
    match kind {
        VolumeKind::System => "root",
        VolumeKind::Data => "data",
    }
}

pub fn parse_disk_type(text: &str) -> Option<VolumeKind> {
    match text {
        "root" => Some(VolumeKind::System),
        "data" => Some(VolumeKind::Data),
        _ => None,
    }
}

/// `snapshotStatus`, or None for points this dialect does not list (being deleted, deleted).
pub fn snapshot_status(s: &Snapshot) -> Option<&'static str> {
    match (s.status, s.transition) {
        (_, SnapshotTransition::Deleting) => None,
        (SnapshotStatus::Deleted | SnapshotStatus::Ceased, _) => None,
        (SnapshotStatus::Creating, _) => Some("creating"),
        (SnapshotStatus::Available, SnapshotTransition::RollingBack) => Some("rollbacking"),
        (SnapshotStatus::Available, _) => Some("normal"),
    }
}

/// `storageStatus`, or None for disks this dialect does not list (still being created, being
/// deleted, deleted).
pub fn storage_status(v: &Volume) -> Option<&'static str> {
    match (v.status, v.transition) {
        (VolumeStatus::Creating | VolumeStatus::Deleted, _) => None,
        (_, VolumeTransition::Creating | VolumeTransition::Deleting) => None,
        (_, VolumeTransition::Snapshotting) => Some("snapshotCreating"),
        (_, VolumeTransition::RollingBack) => Some("rollback"),
        (_, VolumeTransition::Resizing) => Some("expanding"),
        (VolumeStatus::Available | VolumeStatus::InUse, VolumeTransition::None) => Some("normal"),
    }
}

/// A service state word (status or transition) in this dialect's vocabulary, for messages.
pub fn state_word(kind: Kind, state: &str) -> String {
    let word = match (kind, state) {
        (Kind::Volume, "snapshotting") => "snapshotCreating",
        (Kind::Volume, "rolling-back") => "rollback",
        (Kind::Volume, "resizing") => "expanding",
        (Kind::Snapshot, "rolling-back") => "rollbacking",
        (Kind::Snapshot, "available") => "normal",
        (_, other) => other,
    };
    word.to_string()
}

pub fn zone_id(zones: &[ZoneConfig], zone: &str) -> i64 {
    zones.iter().position(|z| z.name == zone).map(|i| ZONE_ID_BASE + i as i64).unwrap_or(0)
}

pub fn zone_by_id(zones: &[ZoneConfig], id: i64) -> Option<&ZoneConfig> {
    id.checked_sub(ZONE_ID_BASE).and_then(|i| usize::try_from(i).ok()).and_then(|i| zones.get(i))
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotItem {
    pub snapshot_id: String,
    pub storage_id: String,
    pub snapshot_name: String,
    pub snapshot_status: &'static str,
    pub project_id: i64,
    pub percent: u8,
    pub storage_size: u64,
    pub create_time: String,
    pub disk_type: &'static str,
}

impl SnapshotItem {
    pub fn new(s: &Snapshot, status: &'static str) -> Self {
        SnapshotItem {
            snapshot_id: show(Kind::Snapshot, &s.id),
            storage_id: show(Kind::Volume, &s.volume_id),
            snapshot_name: s.name.clone(),
            snapshot_status: status,
            project_id: 0,
            percent: if s.status == SnapshotStatus::Available { 100 } else { s.progress.min(99) },
            storage_size: size_gb(s.volume_size),
            create_time: time(s.create_time),
            disk_type: disk_type(s.volume_kind),
        }
    }
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageItem {
    pub storage_id: String,
    pub storage_name: String,
    pub storage_size: u64,
    pub storage_type: &'static str,
    pub storage_status: &'static str,
    pub disk_type: &'static str,
    pub project_id: i64,
    pub zone_id: i64,
    pub u_instance_id: String,
    pub attached: i64,
    pub portable: i64,
    pub snapshot_ability: i64,
    pub pay_mode: &'static str,
    pub create_time: String,
    pub deadline_time: &'static str,
}

impl StorageItem {
    pub fn new(v: &Volume, status: &'static str, zones: &[ZoneConfig]) -> Self {
        StorageItem {
            storage_id: show(Kind::Volume, &v.id),
            storage_name: v.name.clone(),
            storage_size: size_gb(v.size),
            storage_type: "cloudBasic",
            storage_status: status,
            disk_type: disk_type(v.kind),
            project_id: 0,
            zone_id: zone_id(zones, &v.zone),
            u_instance_id: v.instance_id.as_deref().map(|i| show(Kind::Instance, i)).unwrap_or_default(),
            attached: i64::from(v.instance_id.is_some()),
            portable: i64::from(v.kind == VolumeKind::Data),
            snapshot_ability: 1,
            pay_mode: "postPay",
            create_time: time(v.create_time),
            deadline_time: "",
        }
    }
}

/// A success body: `code` 0, empty `message`, then the action's fields.
#[derive(Serialize)]
pub struct Success<T: Serialize> {
    pub code: i64,
    pub message: &'static str,
    #[serde(flatten)]
    pub body: T,
}

pub fn success<T: Serialize>(body: T) -> Success<T> {
    Success { code: 0, message: "", body }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotList {
    pub total_count: u64,
    pub snapshot_set: Vec<SnapshotItem>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageList {
    pub total_count: u64,
    pub storage_set: Vec<StorageItem>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotCreated {
    pub snapshot_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoragesCreated {
    pub storage_ids: Vec<String>,
}

/// One id's outcome inside DeleteSnapshot's `detail`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ItemResult {
    pub code: i64,
    pub message: String,
}

#[derive(Serialize)]
pub struct Detail<T: Serialize> {
    pub detail: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskId {
    pub request_id: i64,
}

#[derive(Serialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_china_standard_time() {
        let t = Utc.with_ymd_and_hms(2016, 5, 17, 11, 58, 48).unwrap();
        assert_eq!(time(t), "2016-05-17 19:58:48");
        let late = Utc.with_ymd_and_hms(2016, 12, 31, 20, 0, 0).unwrap();
        assert_eq!(time(late), "2017-01-01 04:00:00");
    }

    #[test]
    fn ids_sizes_and_zones() {
        assert_eq!(show(Kind::Snapshot, "k3x9a2bq"), "snap-k3x9a2bq");
        assert_eq!(reshow(Kind::Volume, "vol-k3x9a2bq"), "disk-k3x9a2bq");
        assert_eq!(reshow(Kind::Volume, "not-an-id"), "not-an-id");
        assert_eq!(task_id("00000010"), 36);
        assert_eq!(task_id("zzzzzzzz"), 2_821_109_907_455);
        assert_eq!(size_gb(1 << 30), 1);
        assert_eq!(size_gb((10 << 30) + 1), 11);
        let zones = vec![
            ZoneConfig { name: "pek3a".into(), aliases: vec!["gz".into()] },
            ZoneConfig { name: "sh1".into(), aliases: vec![] },
        ];
        assert_eq!(zone_id(&zones, "sh1"), 100002);
        assert_eq!(zone_by_id(&zones, 100001).unwrap().name, "pek3a");
        assert!(zone_by_id(&zones, 100003).is_none());
        assert!(zone_by_id(&zones, 5).is_none());
        assert!(zone_by_id(&zones, i64::MIN).is_none());
        assert_eq!(parse_disk_type("root"), Some(VolumeKind::System));
        assert_eq!(parse_disk_type("ROOT"), None);
    }

    #[test]
    fn success_envelope_is_flat() {
        let body = serde_json::to_string(&success(SnapshotCreated { snapshot_id: "snap-1".into() })).unwrap();
        assert_eq!(body, r#"{"code":0,"message":"","snapshotId":"snap-1"}"#);
        let body = serde_json::to_string(&success(Empty {})).unwrap();
        assert_eq!(body, r#"{"code":0,"message":""}"#);
    }
}
