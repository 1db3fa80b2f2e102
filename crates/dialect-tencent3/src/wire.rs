//! The CBS 3.0 spelling of the neutral model: the same `snap-`/`disk-`/`ins-` ids as API v2
//! (one resource, one id, whichever API shows it), upper-case state words, PascalCase
//! structures with their documented types, `YYYY-MM-DD hh:mm:ss` times in China Standard Time
//! (as v2 shows them), sizes in GB.

use chrono::{DateTime, Utc};
use disksnap_service::{
    ids, Kind, Shown, Snapshot, SnapshotStatus, SnapshotTransition, Volume, VolumeKind, VolumeStatus, VolumeTransition,
};
use serde::Serialize;

const GB: u64 = 1 << 30;

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

pub fn show(kind: Kind, bare: &str) -> String {
    format!("{}{bare}", prefix(kind))
}

/// Any rendering of an id re-shown the Tencent way; text that is no id stays as it is.
pub fn reshow(kind: Kind, text: &str) -> String {
    match ids::parse(kind, text) {
        Some(bare) if kind != Kind::Job => show(kind, &bare),
        _ => text.to_string(),
    }
}

/// `2016-05-17 19:58:48`, UTC+08:00 (the vendor's home time zone, as API v2 shows it).
pub fn time(t: DateTime<Utc>) -> String {
    disksnap_api_common::time::plain(t + chrono::Duration::hours(8))
}

pub fn size_gb(bytes: u64) -> u64 {
    bytes.div_ceil(GB)
}

pub fn disk_usage(kind: VolumeKind) -> &'static str {
    match kind {
        VolumeKind::System => "SYSTEM_DISK",
        VolumeKind::Data => "DATA_DISK",
    }
}

pub fn parse_disk_usage(text: &str) -> Option<VolumeKind> {
    match text {
        "SYSTEM_DISK" => Some(VolumeKind::System),
        "DATA_DISK" => Some(VolumeKind::Data),
        _ => None,
    }
}

/// `SnapshotState`, or None for points not shown (being deleted, deleted).
pub fn snapshot_state(s: &Snapshot) -> Option<&'static str> {
    state_word(s.status, s.transition)
}

fn state_word(status: SnapshotStatus, transition: SnapshotTransition) -> Option<&'static str> {
    match (status, transition) {
        (_, SnapshotTransition::Deleting) => None,
        (SnapshotStatus::Deleted | SnapshotStatus::Ceased, _) => None,
        (SnapshotStatus::Creating, _) => Some("CREATING"),
        (SnapshotStatus::Available, SnapshotTransition::RollingBack) => Some("ROLLBACKING"),
        (SnapshotStatus::Available, _) => Some("NORMAL"),
    }
}

/// The transitions of points not shown (with deleted and released points, which lists leave
/// out by status).
pub fn hidden_transitions() -> Vec<String> {
    vec![SnapshotTransition::Deleting.into()]
}

/// [`snapshot_state`] of the points shown, as rules the metadata store evaluates in SQL, so
/// that the `snapshot-state` filter is a condition of the list query.
pub fn snapshot_state_words() -> Shown {
    let (s, t) = (SnapshotStatus::as_str, SnapshotTransition::as_str);
    let rule = |status: &str, transition: Option<&str>, word: &str| {
        (Some(status.to_string()), transition.map(String::from), word.to_string())
    };
    Shown {
        words: vec![
            rule(s(SnapshotStatus::Creating), None, "CREATING"),
            rule(s(SnapshotStatus::Available), Some(t(SnapshotTransition::RollingBack)), "ROLLBACKING"),
            rule(s(SnapshotStatus::Available), None, "NORMAL"),
        ],
        overrides: Vec::new(),
    }
}

pub const SNAPSHOT_STATES: &[&str] =
    &["NORMAL", "CREATING", "ROLLBACKING", "COPYING_FROM_REMOTE", "CHECKING_COPIED", "TORECYCLE"];

/// `DiskState`, or None for disks not shown (still being created, being deleted, deleted).
pub fn disk_state(v: &Volume) -> Option<&'static str> {
    match (v.status, v.transition) {
        (VolumeStatus::Creating | VolumeStatus::Deleted, _) => None,
        (_, VolumeTransition::Creating | VolumeTransition::Deleting) => None,
        (_, VolumeTransition::RollingBack) => Some("ROLLBACKING"),
        (_, VolumeTransition::Resizing) => Some("EXPANDING"),
        // Taking a snapshot leaves the disk attached or not; CBS shows no state of its own.
        (VolumeStatus::InUse, _) => Some("ATTACHED"),
        (VolumeStatus::Available, _) => Some("UNATTACHED"),
    }
}

pub const DISK_STATES: &[&str] =
    &["UNATTACHED", "ATTACHING", "ATTACHED", "DETACHING", "EXPANDING", "ROLLBACKING", "TORECYCLE", "DUMPING"];

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Placement {
    pub zone: String,
    pub project_id: i64,
    pub cage_id: Option<String>,
    pub cdc_id: Option<String>,
    pub cdc_name: Option<String>,
    pub dedicated_cluster_id: String,
}

impl Placement {
    pub fn new(zone: &str) -> Self {
        Placement {
            zone: zone.to_string(),
            project_id: 0,
            cage_id: None,
            cdc_id: None,
            cdc_name: None,
            dedicated_cluster_id: String::new(),
        }
    }
}

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TagItem {
    pub key: String,
    pub value: String,
}

fn tags(t: &[disksnap_service::Tag]) -> Vec<TagItem> {
    t.iter().map(|t| TagItem { key: t.key.clone(), value: t.value.clone() }).collect()
}

/// `Snapshot` of DescribeSnapshots, every documented field with its type.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SnapshotItem {
    pub snapshot_id: String,
    pub placement: Placement,
    pub copy_from_remote: bool,
    pub snapshot_state: &'static str,
    pub is_permanent: bool,
    pub snapshot_name: String,
    /// Null for a permanent snapshot.
    pub deadline_time: Option<String>,
    pub percent: u8,
    pub images: Vec<serde_json::Value>,
    pub share_reference: u64,
    pub snapshot_type: &'static str,
    pub disk_size: u64,
    pub disk_id: String,
    pub copying_to_regions: Vec<String>,
    pub encrypt: bool,
    pub create_time: String,
    pub image_count: u64,
    pub disk_usage: &'static str,
    pub time_start_share: Option<String>,
    pub tags: Vec<TagItem>,
    pub is_locked: bool,
    pub latest_modify_time: String,
    pub snapshot_mode: &'static str,
}

impl SnapshotItem {
    pub fn new(s: &Snapshot, state: &'static str) -> Self {
        SnapshotItem {
            snapshot_id: show(Kind::Snapshot, &s.id),
            placement: Placement::new(&s.zone),
            copy_from_remote: false,
            snapshot_state: state,
            is_permanent: s.expire_time.is_none(),
            snapshot_name: s.name.clone(),
            deadline_time: s.expire_time.map(time),
            percent: if s.status == SnapshotStatus::Available { 100 } else { s.progress.min(99) },
            images: vec![],
            share_reference: 0,
            snapshot_type: "PRIVATE_SNAPSHOT",
            disk_size: size_gb(s.volume_size),
            disk_id: show(Kind::Volume, &s.volume_id),
            copying_to_regions: vec![],
            encrypt: s.encrypted,
            create_time: time(s.create_time),
            image_count: u64::from(s.used_by_images),
            disk_usage: disk_usage(s.volume_kind),
            time_start_share: None,
            tags: tags(&s.tags),
            is_locked: false,
            latest_modify_time: time(s.status_time),
            snapshot_mode: "NORMAL",
        }
    }
}

/// `Disk` of DescribeDisks.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DiskItem {
    pub disk_id: String,
    pub disk_name: String,
    pub disk_usage: &'static str,
    pub disk_type: &'static str,
    pub disk_state: &'static str,
    pub disk_size: u64,
    pub disk_charge_type: &'static str,
    pub placement: Placement,
    pub attached: bool,
    pub instance_id: String,
    pub instance_id_list: Vec<String>,
    pub instance_type: &'static str,
    pub attach_mode: &'static str,
    pub delete_with_instance: bool,
    pub portable: bool,
    pub snapshot_ability: bool,
    pub snapshot_count: u64,
    pub snapshot_size: u64,
    pub rollbacking: bool,
    pub rollback_percent: u8,
    pub migrating: bool,
    pub migrate_percent: u8,
    pub encrypt: bool,
    pub encrypt_type: &'static str,
    pub kms_key_id: &'static str,
    pub shareable: bool,
    pub backup_disk: bool,
    pub burst_performance: bool,
    pub throughput_performance: u64,
    pub tags: Vec<TagItem>,
    pub auto_snapshot_policy_ids: Vec<String>,
    pub create_time: String,
    pub deadline_time: String,
    pub deadline_error: bool,
    pub differ_days_of_deadline: i64,
    pub renew_flag: &'static str,
    pub auto_renew_flag_error: bool,
    pub is_returnable: bool,
    pub return_fail_code: i64,
    pub delete_snapshot: i64,
    pub disk_backup_quota: u64,
    pub disk_backup_count: u64,
    pub last_attach_ins_id: String,
    pub error_prompt: String,
}

/// The one disk type shown (disksnap's volumes have no performance class; v2 shows cloudBasic).
pub const DISK_TYPE: &str = "CLOUD_BASIC";
pub const CHARGE_TYPE: &str = "POSTPAID_BY_HOUR";

impl DiskItem {
    pub fn new(v: &Volume, state: &'static str, snapshot_count: u64) -> Self {
        let instance = v.instance_id.as_deref().map(|i| show(Kind::Instance, i));
        DiskItem {
            disk_id: show(Kind::Volume, &v.id),
            disk_name: v.name.clone(),
            disk_usage: disk_usage(v.kind),
            disk_type: DISK_TYPE,
            disk_state: state,
            disk_size: size_gb(v.size),
            disk_charge_type: CHARGE_TYPE,
            placement: Placement::new(&v.zone),
            attached: instance.is_some(),
            instance_id: instance.clone().unwrap_or_default(),
            instance_id_list: instance.clone().into_iter().collect(),
            instance_type: "CVM",
            attach_mode: "PF",
            delete_with_instance: false,
            portable: v.kind == VolumeKind::Data,
            snapshot_ability: true,
            snapshot_count,
            snapshot_size: 0,
            rollbacking: v.transition == VolumeTransition::RollingBack,
            rollback_percent: if v.transition == VolumeTransition::RollingBack { 0 } else { 100 },
            migrating: false,
            migrate_percent: 0,
            encrypt: false,
            encrypt_type: "",
            kms_key_id: "",
            shareable: false,
            backup_disk: false,
            burst_performance: false,
            throughput_performance: 0,
            tags: tags(&v.tags),
            auto_snapshot_policy_ids: vec![],
            create_time: time(v.create_time),
            deadline_time: String::new(),
            deadline_error: false,
            differ_days_of_deadline: 0,
            renew_flag: "",
            auto_renew_flag_error: false,
            is_returnable: false,
            return_fail_code: 0,
            delete_snapshot: 0,
            disk_backup_quota: 0,
            disk_backup_count: 0,
            last_attach_ins_id: String::new(),
            error_prompt: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_times_sizes() {
        assert_eq!(show(Kind::Snapshot, "k3x9a2bq"), "snap-k3x9a2bq");
        assert_eq!(reshow(Kind::Volume, "vol-k3x9a2bq"), "disk-k3x9a2bq");
        assert_eq!(reshow(Kind::Volume, "not an id"), "not an id");
        let t = Utc.with_ymd_and_hms(2016, 5, 17, 11, 58, 48).unwrap();
        assert_eq!(time(t), "2016-05-17 19:58:48");
        assert_eq!(size_gb((10 << 30) + 1), 11);
        assert_eq!(parse_disk_usage("DATA_DISK"), Some(VolumeKind::Data));
        assert_eq!(parse_disk_usage("data"), None);
    }

    /// The rules the store evaluates give every shown point its state, and every point not
    /// shown is left out by status or by [`hidden_transitions`].
    #[test]
    fn state_rules_agree_with_snapshot_state() {
        let rules = snapshot_state_words();
        for st in SnapshotStatus::ALL {
            for tr in SnapshotTransition::ALL {
                let listed = matches!(st, SnapshotStatus::Creating | SnapshotStatus::Available)
                    && !hidden_transitions().contains(&tr.as_str().to_string());
                let by_rule = rules
                    .words
                    .iter()
                    .find(|(s, t, _)| {
                        s.as_deref().is_none_or(|s| s == st.as_str()) && t.as_deref().is_none_or(|t| t == tr.as_str())
                    })
                    .map(|(_, _, w)| w.as_str());
                assert_eq!(listed.then_some(by_rule).flatten(), state_word(*st, *tr), "{st} {tr}");
            }
        }
    }
}
