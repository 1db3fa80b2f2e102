//! Snapshot-consistent groups (CreateSnapshotGroup, DescribeSnapshotGroups,
//! ModifySnapshotGroup, DeleteSnapshotGroup) and ResetDisks, their roll back: several disks
//! back to their points, all or nothing (the service's group roll back).

use std::collections::BTreeMap;
use std::time::Duration;

use disksnap_api_common::time::iso_z;
use disksnap_api_common::ApiContext;
use disksnap_service::{Caller, CreateSnapshotGroup, GroupStatus, JobStatus, Kind, ServiceError, SnapshotGroup};
use serde_json::{json, Value};

use super::{check_description, check_name, dry_run, required_region, Idempotency};
use crate::error::{invalid, vendor};
use crate::ids::show;
use crate::params::{Paging, Params, Res};

/// How long a delete or a reset waits for its job, so the next Describe shows its result;
/// under both SDKs' 10 s read timeout (a longer job goes on).
const JOB_WAIT: Duration = Duration::from_secs(8);

/// ECS's limits: 128 disks per group, 10 ids per DescribeSnapshotGroups, 10 disks per ResetDisks.
const MAX_GROUP_DISKS: usize = 128;
const MAX_GROUP_IDS: usize = 10;
const MAX_RESET_DISKS: usize = 10;

fn group_status(s: GroupStatus) -> &'static str {
    match s {
        GroupStatus::Creating => "progressing",
        GroupStatus::Available => "accomplished",
        GroupStatus::Failed => "failed",
    }
}

fn check_group_name(name: Option<&str>) -> Res<()> {
    check_name(name, "Name", "InvalidParameter", false)
}

/// Every given `Name.N` value, at most `max` of them.
fn repeated_ids(p: &Params, name: &str, max: usize) -> Res<Vec<String>> {
    let ids = p.repeated(name)?;
    if ids.len() > max {
        return Err(invalid(&format!("{name}.N"), format!("at most {max} values, got {}", ids.len())));
    }
    Ok(ids)
}

pub(super) async fn create_snapshot_group(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    required_region(ctx, p)?;
    let name = p.get("Name");
    check_group_name(name)?;
    let description = p.get("Description");
    check_description(description, 2)?;
    let disks = repeated_ids(p, "DiskId", MAX_GROUP_DISKS)?;
    let exclude = repeated_ids(p, "ExcludeDiskId", MAX_GROUP_DISKS)?;
    let instance = p.get("InstanceId").map(String::from);
    if !disks.is_empty() && !exclude.is_empty() {
        return Err(invalid("ExcludeDiskId.N", "DiskId.N and ExcludeDiskId.N cannot be set at the same time"));
    }
    if instance.is_none() && disks.is_empty() {
        return Err(vendor(
            "MissingParameter",
            400,
            "The input parameter \"InstanceId\" or \"DiskId.N\" that is mandatory for processing this request is not supplied.",
        ));
    }
    if !p.tags()?.is_empty() {
        return Err(invalid(
            "Tag.N",
            "this server keeps no tags on snapshot-consistent groups; tag the snapshots instead",
        ));
    }
    p.bool("InstantAccess")?; // deprecated by ECS (every snapshot is instantly usable here)
    p.int("InstantAccessRetentionDays", 1, 65535)?;
    let token = Idempotency::new(caller, "CreateSnapshotGroup", p)?;
    if let Some(v) = token.earlier(ctx).await? {
        return Ok(v);
    }
    let req = CreateSnapshotGroup {
        volumes: disks,
        instance,
        exclude,
        name: name.unwrap_or_default().to_string(),
        description: description.unwrap_or_default().to_string(),
    };
    let (_job, group) = ctx.service.create_snapshot_group(caller, req).await?;
    let v = json!({ "SnapshotGroupId": show(Kind::SnapshotGroup, &group.id) });
    token.remember(ctx, &v).await?;
    Ok(v)
}

fn group_item(g: &SnapshotGroup) -> Value {
    let snapshots: Vec<Value> = g
        .snapshots
        .iter()
        .map(|s| {
            let available = s.status == disksnap_service::SnapshotStatus::Available;
            json!({
                "SnapshotId": show(Kind::Snapshot, &s.id),
                "SourceDiskId": show(Kind::Volume, &s.volume_id),
                "SourceDiskType": s.volume_kind.as_str(),
                "Progress": format!("{}%", if available { 100 } else { s.progress.min(99) }),
                "Available": available,
                "InstantAccess": false,
                "InstantAccessRetentionDays": 0,
                "Tags": { "Tag": [] },
            })
        })
        .collect();
    json!({
        "SnapshotGroupId": show(Kind::SnapshotGroup, &g.id),
        "Name": g.name,
        "Description": g.description,
        "InstanceId": g.instance_id.as_deref().map(|i| show(Kind::Instance, i)).unwrap_or_default(),
        "Status": group_status(g.status),
        "ProgressStatus": "",
        "CreationTime": iso_z(g.create_time),
        "ResourceGroupId": "",
        "Snapshots": { "Snapshot": snapshots },
        "Tags": { "Tag": [] },
    })
}

pub(super) async fn describe_snapshot_groups(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let r = required_region(ctx, p)?;
    let paging = Paging::from_params(p, 1)?;
    let wanted = repeated_ids(p, "SnapshotGroupId", MAX_GROUP_IDS)?;
    let wanted: Vec<String> =
        wanted.iter().map(|i| disksnap_service::ids::parse(Kind::SnapshotGroup, i).unwrap_or_default()).collect();
    let instance = p.get("InstanceId").map(|i| disksnap_service::ids::parse(Kind::Instance, i).unwrap_or_default());
    let name = p.get("Name");
    let mut statuses = Vec::new();
    for s in p.repeated("Status")? {
        statuses.push(match s.as_str() {
            "progressing" => GroupStatus::Creating,
            "accomplished" => GroupStatus::Available,
            "failed" => GroupStatus::Failed,
            other => {
                return Err(vendor(
                    "InvalidStatus.NotFound",
                    404,
                    format!("The specified Status.N \"{other}\" is not valid: progressing, accomplished or failed."),
                ))
            }
        });
    }
    if !p.tags()?.is_empty() || p.get("ResourceGroupId").is_some() {
        // No group carries tags or a resource group here: such a filter matches none.
        return Ok(json!({ "NextToken": "", "SnapshotGroups": { "SnapshotGroup": [] } }));
    }
    // Newest first, as ECS lists them.
    let mut groups: Vec<SnapshotGroup> = ctx.service.snapshot_groups(caller).await?;
    groups.reverse();
    groups.retain(|g| {
        g.zone == r.zone
            && (wanted.is_empty() || wanted.contains(&g.id))
            && instance.as_ref().is_none_or(|i| g.instance_id.as_ref() == Some(i))
            && name.is_none_or(|n| g.name == n)
            && (statuses.is_empty() || statuses.contains(&g.status))
    });
    let total = groups.len() as u64;
    let page: Vec<Value> =
        groups.iter().skip(paging.offset as usize).take(paging.limit as usize).map(group_item).collect();
    Ok(json!({
        "NextToken": paging.next_token(page.len(), total),
        "SnapshotGroups": { "SnapshotGroup": page },
    }))
}

pub(super) async fn modify_snapshot_group(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let id = p.required("SnapshotGroupId")?;
    let name = p.get("Name");
    check_group_name(name)?;
    let description = p.get("Description");
    check_description(description, 2)?;
    ctx.service.modify_snapshot_group(caller, id, name, description).await?;
    Ok(json!({}))
}

/// Wait up to [`JOB_WAIT`] for a job; a failure is the job's own error.
async fn settle(ctx: &ApiContext, caller: &Caller, job: &disksnap_service::Job) -> Res<()> {
    if let Ok(done) = tokio::time::timeout(JOB_WAIT, ctx.service.wait_job(caller, &job.id)).await {
        let done = done?;
        if done.status == JobStatus::Failed {
            return Err(ServiceError::Internal(format!("job {} failed: {:?}", done.id, done.error)).into());
        }
    }
    Ok(())
}

fn progress(name: &str, value: String, failure: Option<(&str, String)>) -> Value {
    let (code, msg) = failure.map(|(c, m)| (c.to_string(), m)).unwrap_or_default();
    json!({
        "OperationStatus": if code.is_empty() { "Success" } else { "Failed" },
        "ErrorCode": code,
        "ErrorMsg": msg,
        "RelatedItemSet": { "RelatedItem": [ { "Name": name, "Value": value } ] },
    })
}

pub(super) async fn delete_snapshot_group(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    required_region(ctx, p)?;
    let id = p.required("SnapshotGroupId")?;
    let group = ctx.service.snapshot_group(caller, id).await?;
    let (job, kept) = ctx.service.delete_snapshot_group(caller, &group.id).await?;
    settle(ctx, caller, &job).await?;
    // ECS keeps a member an image was made from (delete the image, then the snapshot).
    let items: Vec<Value> = group
        .snapshots
        .iter()
        .map(|s| {
            let failure = kept.contains(&s.id).then(|| {
                ("SnapshotCreatedImage", "The snapshot has been used to create an image; it was kept.".to_string())
            });
            progress("SnapshotId", show(Kind::Snapshot, &s.id), failure)
        })
        .collect();
    Ok(json!({ "OperationProgressSet": { "OperationProgress": items } }))
}

/// `Disk.N.DiskId` / `Disk.N.SnapshotId` pairs, N from 1, in N order.
fn disk_pairs(p: &Params) -> Res<Vec<(String, String)>> {
    let mut slots: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    for (k, v) in &p.0 {
        let Some(rest) = k.strip_prefix("Disk.") else { continue };
        let Some((n, field)) = rest.split_once('.') else { continue };
        let n: u32 =
            n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| invalid(k, "the index must be a number from 1"))?;
        let slot = slots.entry(n).or_default();
        let v = Some(v.clone()).filter(|v| !v.is_empty());
        match field {
            "DiskId" => slot.0 = v,
            "SnapshotId" => slot.1 = v,
            _ => {}
        }
    }
    if slots.is_empty() {
        return Err(vendor(
            "MissingParameter",
            400,
            "The input parameter \"Disk.N.DiskId\" that is mandatory for processing this request is not supplied.",
        ));
    }
    if slots.len() > MAX_RESET_DISKS {
        return Err(invalid("Disk.N", format!("at most {MAX_RESET_DISKS} disks, got {}", slots.len())));
    }
    slots
        .into_iter()
        .map(|(n, slot)| match slot {
            (Some(d), Some(s)) => Ok((d, s)),
            (None, _) => Err(vendor(
                "MissingParameter",
                400,
                format!("The input parameter \"Disk.{n}.DiskId\" that is mandatory for processing this request is not supplied."),
            )),
            (_, None) => Err(vendor(
                "MissingParameter",
                400,
                format!("The input parameter \"Disk.{n}.SnapshotId\" that is mandatory for processing this request is not supplied."),
            )),
        })
        .collect()
}

pub(super) async fn reset_disks(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    required_region(ctx, p)?;
    let pairs = disk_pairs(p)?;
    let mut points = Vec::new();
    let mut disks = Vec::new();
    for (disk_id, snap_id) in &pairs {
        let disk = ctx.service.volume(caller, disk_id).await?;
        let s = super::live_snapshot(ctx, caller, snap_id).await?;
        if s.volume_id != disk.id {
            return Err(vendor(
                "InvalidParameter.Mismatch",
                403,
                format!(
                    "The snapshot {} was taken from disk {}, not from {}; a disk can only be reset to its own snapshots.",
                    show(Kind::Snapshot, &s.id),
                    show(Kind::Volume, &s.volume_id),
                    show(Kind::Volume, &disk.id)
                ),
            ));
        }
        points.push(s.id);
        disks.push(disk.id);
    }
    dry_run(p)?;
    let job = ctx.service.rollback_volumes(caller, &points).await?;
    settle(ctx, caller, &job).await?;
    let items: Vec<Value> = disks.iter().map(|d| progress("DiskId", show(Kind::Volume, d), None)).collect();
    Ok(json!({ "OperationProgressSet": { "OperationProgress": items } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn reset_disks_reads_its_pairs_in_order_and_names_what_is_missing() {
        let p = params(&[
            ("Disk.2.DiskId", "d-2"),
            ("Disk.1.SnapshotId", "s-1"),
            ("Disk.2.SnapshotId", "s-2"),
            ("Disk.1.DiskId", "d-1"),
        ]);
        assert_eq!(disk_pairs(&p).unwrap(), vec![("d-1".into(), "s-1".into()), ("d-2".into(), "s-2".into())]);
        let e = disk_pairs(&params(&[("Disk.1.DiskId", "d-1")])).unwrap_err();
        assert_eq!(e.code(), "MissingParameter");
        assert!(e.message().contains("Disk.1.SnapshotId"), "{}", e.message());
        assert_eq!(disk_pairs(&params(&[])).unwrap_err().code(), "MissingParameter");
        assert_eq!(disk_pairs(&params(&[("Disk.x.DiskId", "d")])).unwrap_err().code(), "InvalidParameter");
        let many: Vec<(String, String)> = (1..=11)
            .flat_map(|n| [(format!("Disk.{n}.DiskId"), "d".into()), (format!("Disk.{n}.SnapshotId"), "s".into())])
            .collect();
        assert_eq!(disk_pairs(&Params(many)).unwrap_err().code(), "InvalidParameter");
    }

    #[test]
    fn group_statuses_are_ecs_words() {
        assert_eq!(group_status(GroupStatus::Creating), "progressing");
        assert_eq!(group_status(GroupStatus::Available), "accomplished");
        assert_eq!(group_status(GroupStatus::Failed), "failed");
    }
}
