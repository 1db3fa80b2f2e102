//! One function per action: read the parameters, call the service, shape the answer. The
//! rules of snapshots live in the service; only Aliyun's own rules (Force, DryRun, name
//! formats, ClientToken, the disk a snapshot belongs to) are decided here. Snapshot actions are
//! here; disk creation and listing, links and usage in [`disks`]; the rest of a disk's and an
//! image's life in [`lifecycle`]; tags and resource groups in [`tagging`].

mod disks;
mod groups;
mod lifecycle;
mod policies;
mod tagging;

use std::time::Duration;

use disksnap_api_common::ApiContext;
use disksnap_service::{
    Caller, CreateSnapshots, DeleteScope, JobStatus, Kind, Origin, ServiceError, Snapshot, SnapshotFilter,
    SnapshotStatus, StateKind, VolumeKind,
};
use serde_json::{json, Value};

use crate::error::{invalid, vendor, AliyunError};
use crate::ids::show;
use crate::params::{Paging, Params, Res};
use crate::regions::{describe_regions, describe_zones, region, region_of, Region};
use crate::router::Endpoint;
use crate::wire::{snapshot_status, value, SnapshotItem};

/// Answer one authenticated request.
pub async fn call(ctx: &ApiContext, caller: &Caller, e: Endpoint, p: &Params, host: &str) -> Res<Value> {
    // Aliyun's own prefix of another kind names nothing (crate::ids): an action answers it not
    // found before it reads or changes anything; a Describe filter matches nothing instead.
    let read = e.name().starts_with("Describe") || e.name().starts_with("List");
    if let Some((kind, id)) = crate::ids::wrong_kind_param(&p.0).filter(|_| !read) {
        return Err(ServiceError::not_found(kind, &id).into());
    }
    match e {
        Endpoint::DescribeSnapshots => describe_snapshots(ctx, caller, p).await,
        Endpoint::CreateSnapshot => create_snapshot(ctx, caller, p).await,
        Endpoint::DeleteSnapshot => delete_snapshot(ctx, caller, p).await,
        Endpoint::ModifySnapshotAttribute => modify_snapshot(ctx, caller, p).await,
        Endpoint::ResetDisk => reset_disk(ctx, caller, p).await,
        Endpoint::CreateDisk => disks::create_disk(ctx, caller, p).await,
        Endpoint::CreateImage => disks::create_image(ctx, caller, p).await,
        Endpoint::DescribeDisks => disks::describe_disks(ctx, caller, p).await,
        Endpoint::DescribeSnapshotLinks => disks::describe_links(ctx, caller, p).await,
        Endpoint::DescribeSnapshotsUsage => disks::snapshots_usage(ctx, caller, p).await,
        Endpoint::DeleteDisk => lifecycle::delete_disk(ctx, caller, p).await,
        Endpoint::ResizeDisk => lifecycle::resize_disk(ctx, caller, p).await,
        Endpoint::ModifyDiskAttribute => lifecycle::modify_disk(ctx, caller, p).await,
        Endpoint::AttachDisk => lifecycle::attach_disk(ctx, caller, p).await,
        Endpoint::DetachDisk => lifecycle::detach_disk(ctx, caller, p).await,
        Endpoint::TagResources => tagging::tag_resources(ctx, caller, p).await,
        Endpoint::UntagResources => tagging::untag_resources(ctx, caller, p).await,
        Endpoint::ListTagResources => tagging::list_tag_resources(ctx, caller, p).await,
        Endpoint::AddTags => tagging::add_tags(ctx, caller, p).await,
        Endpoint::RemoveTags => tagging::remove_tags(ctx, caller, p).await,
        Endpoint::DescribeTags => tagging::describe_tags(ctx, caller, p).await,
        Endpoint::DescribeImages => lifecycle::describe_images(ctx, caller, p).await,
        Endpoint::DeleteImage => lifecycle::delete_image(ctx, caller, p).await,
        Endpoint::ModifyImageAttribute => lifecycle::modify_image(ctx, caller, p).await,
        Endpoint::JoinResourceGroup => tagging::join_resource_group(ctx, caller, p).await,
        Endpoint::CreateSnapshotGroup => groups::create_snapshot_group(ctx, caller, p).await,
        Endpoint::DescribeSnapshotGroups => groups::describe_snapshot_groups(ctx, caller, p).await,
        Endpoint::ModifySnapshotGroup => groups::modify_snapshot_group(ctx, caller, p).await,
        Endpoint::DeleteSnapshotGroup => groups::delete_snapshot_group(ctx, caller, p).await,
        Endpoint::ResetDisks => groups::reset_disks(ctx, caller, p).await,
        Endpoint::CreateAutoSnapshotPolicy => policies::create_policy(ctx, caller, p).await,
        Endpoint::DescribeAutoSnapshotPolicyEx => policies::describe_policies(ctx, caller, p).await,
        Endpoint::ModifyAutoSnapshotPolicyEx => policies::modify_policy(ctx, caller, p).await,
        Endpoint::DeleteAutoSnapshotPolicy => policies::delete_policy(ctx, caller, p).await,
        Endpoint::ApplyAutoSnapshotPolicy => policies::apply_policy(ctx, caller, p).await,
        Endpoint::CancelAutoSnapshotPolicy => policies::cancel_policy(ctx, caller, p).await,
        Endpoint::DescribeRegions => {
            region(ctx, p, false)?;
            Ok(describe_regions(ctx, host))
        }
        Endpoint::DescribeZones => {
            let r = region(ctx, p, true)?.ok_or_else(|| AliyunError::MissingParameter("RegionId".into()))?;
            Ok(describe_zones(&r))
        }
    }
}

fn dry_run(p: &Params) -> Res<()> {
    if p.bool("DryRun")? == Some(true) {
        return Err(vendor("DryRunOperation", 400, "Request validation has been passed with DryRun flag set."));
    }
    Ok(())
}

fn required_region(ctx: &ApiContext, p: &Params) -> Res<Region> {
    region(ctx, p, true)?.ok_or_else(|| AliyunError::MissingParameter("RegionId".into()))
}

/// A snapshot Aliyun can see: deleted and ceased points are "not found".
async fn live_snapshot(ctx: &ApiContext, caller: &Caller, id: &str) -> Res<Snapshot> {
    let s = ctx.service.snapshot(caller, id).await?;
    if snapshot_status(s.status).is_none() {
        return Err(ServiceError::not_found(Kind::Snapshot, id).into());
    }
    Ok(s)
}

/// Names: 2–128 characters, starting with a letter (CJK included), not a URL.
fn check_name(name: Option<&str>, param: &str, code: &'static str, reserved_auto: bool) -> Res<()> {
    let Some(n) = name else { return Ok(()) };
    let len = n.chars().count();
    let why = if !(2..=128).contains(&len) {
        Some("it must be 2 to 128 characters long")
    } else if !n.chars().next().is_some_and(char::is_alphabetic) {
        Some("it must start with a letter")
    } else if n.starts_with("http://") || n.starts_with("https://") {
        Some("it must not start with http:// or https://")
    } else if reserved_auto && n.to_ascii_lowercase().starts_with("auto") {
        Some("names starting with \"auto\" are reserved for automatic snapshots")
    } else {
        None
    };
    match why {
        Some(w) => Err(vendor(code, 400, format!("The specified {param} \"{n}\" is not valid: {w}."))),
        None => Ok(()),
    }
}

fn check_description(d: Option<&str>, min: usize) -> Res<()> {
    let Some(d) = d else { return Ok(()) };
    let len = d.chars().count();
    if len < min || len > 256 || d.starts_with("http://") || d.starts_with("https://") {
        return Err(vendor(
            "InvalidDescription.Malformed",
            404,
            format!("The specified Description is not valid: {min} to 256 characters, not starting with http:// or https://."),
        ));
    }
    Ok(())
}

/// Tag keys as Aliyun allows them on create: not `aliyun…`/`acs:…`, no URL, ≤ 128 chars.
fn check_tag_keys(tags: &[(String, Option<String>)]) -> Res<()> {
    for (k, _) in tags {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("aliyun") || lower.starts_with("acs:") || k.contains("http://") || k.contains("https://") {
            return Err(vendor(
                "InvalidTagKey.Malformed",
                400,
                format!("The tag key \"{k}\" is not valid: it must not start with aliyun or acs: nor contain a URL."),
            ));
        }
    }
    Ok(())
}

/// The account's tag for each (key, value), created when missing.
async fn ensure_tags(ctx: &ApiContext, caller: &Caller, pairs: &[(String, Option<String>)]) -> Res<Vec<String>> {
    let mut existing = ctx.service.tags(caller).await?;
    let mut out = Vec::new();
    for (k, v) in pairs {
        let v = v.clone().unwrap_or_default();
        let id = match existing.iter().find(|t| &t.key == k && t.value == v) {
            Some(t) => t.id.clone(),
            None => {
                let t = ctx.service.create_tag(caller, k, &v).await?;
                existing.push(t.clone());
                t.id
            }
        };
        out.push(id);
    }
    Ok(out)
}

/// ClientToken: the same token within 24 h returns the first answer. Kept in the metadata
/// store (service request state), so a restart or another node gives the same answer.
struct Idempotency {
    /// (account, `Action/token`)
    key: Option<(String, String)>,
}

const TOKEN_LIFE: Duration = Duration::from_secs(24 * 3600);

impl Idempotency {
    fn new(caller: &Caller, action: &'static str, p: &Params) -> Res<Idempotency> {
        let Some(t) = p.get("ClientToken") else { return Ok(Idempotency { key: None }) };
        if t.len() > 64 || !t.is_ascii() {
            return Err(invalid("ClientToken", "at most 64 ASCII characters"));
        }
        Ok(Idempotency { key: Some((caller.account.clone(), format!("{action}/{t}"))) })
    }

    async fn earlier(&self, ctx: &ApiContext) -> Res<Option<Value>> {
        let Some((account, key)) = &self.key else { return Ok(None) };
        let found = ctx.service.recall(StateKind::ClientToken, account, key).await?;
        // a row this server wrote is JSON; anything else is treated as never answered
        Ok(found.and_then(|(v, _)| serde_json::from_str(&v).ok()))
    }

    async fn remember(&self, ctx: &ApiContext, v: &Value) -> Res<()> {
        if let Some((account, key)) = &self.key {
            ctx.service.remember(StateKind::ClientToken, account, key, &v.to_string(), Some(TOKEN_LIFE)).await?;
        }
        Ok(())
    }
}

fn answer_page(paging: &Paging, total: u64, count: usize, list: &str, item: &str, items: Vec<Value>) -> Value {
    json!({
        "TotalCount": total,
        "PageNumber": paging.page_number,
        "PageSize": paging.limit,
        "NextToken": paging.next_token(count, total),
        list: { item: items },
    })
}

async fn describe_snapshots(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let (r, paging, q) = snapshot_query(ctx, caller, p).await?;
    Ok(snapshot_page(ctx, caller, &r, &paging, q.as_ref()).await?.0)
}

/// DescribeSnapshots' whole body, in `format`, with `request_id`: the body without its request
/// id is kept in the service's page cache (issue 16) while nothing it shows changes, and the
/// request id is written into it per request.
pub async fn describe_snapshots_body(
    ctx: &ApiContext,
    caller: &Caller,
    p: &Params,
    format: crate::wire::Format,
    request_id: &str,
) -> Res<Vec<u8>> {
    let (r, paging, q) = snapshot_query(ctx, caller, p).await?;
    // Everything the body shows besides the store: format, paging as asked, the region's name.
    let view = format!("aliyun {format:?} {paging:?} {}", r.name);
    let key = match &q {
        Some(q) => ctx.service.snapshot_page_key(caller, q, &view)?,
        None => None,
    };
    let (body, _) = ctx
        .service
        .page_cached(key, || async {
            let (value, keep) = snapshot_page(ctx, caller, &r, &paging, q.as_ref()).await?;
            let text = crate::wire::ok_text(format, "DescribeSnapshots", crate::wire::REQUEST_ID_SLOT, value);
            Ok::<_, AliyunError>(((text.into_bytes().into(), 0), keep))
        })
        .await?;
    Ok(crate::wire::with_request_id(format, &body, request_id))
}

/// The page of DescribeSnapshots for `q` (None: one that matches nothing), and whether it may
/// be kept: not when an item's RemainTime, which the clock moves, is in it.
async fn snapshot_page(
    ctx: &ApiContext,
    caller: &Caller,
    r: &Region,
    paging: &Paging,
    q: Option<&SnapshotFilter>,
) -> Res<(Value, bool)> {
    let (snaps, total) = match q {
        Some(q) => ctx.service.snapshots(caller, q).await?,
        None => (vec![], 0),
    };
    let now = chrono::Utc::now();
    let ids: Vec<String> = snaps.iter().map(|s| s.id.clone()).collect();
    let mut groups = tagging::groups_of(ctx, caller, tagging::ResourceType::Snapshot, &ids).await?;
    let mut items = Vec::with_capacity(snaps.len());
    let mut keep = true;
    for s in &snaps {
        let mut item = SnapshotItem::from_snapshot(s, &region_of(ctx, Some(r), &s.zone), now);
        keep &= !(s.status == SnapshotStatus::Creating && s.progress > 0);
        item.resource_group_id = groups.remove(&s.id).unwrap_or_default();
        items.push(value(&item));
    }
    Ok((answer_page(paging, total, items.len(), "Snapshots", "Snapshot", items), keep))
}

/// DescribeSnapshots' parameters: the region, the paging and the store's filter (None when
/// the parameters can match nothing).
async fn snapshot_query(
    ctx: &ApiContext,
    caller: &Caller,
    p: &Params,
) -> Res<(Region, Paging, Option<SnapshotFilter>)> {
    let r = required_region(ctx, p)?;
    let paging = Paging::from_params(p, 1)?;
    let mut nothing = false;
    let mut q = SnapshotFilter {
        zone: Some(r.zone.clone()),
        offset: paging.offset,
        limit: paging.limit,
        statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
        ..Default::default()
    };
    q.instance_ids = p.get("InstanceId").map(String::from).into_iter().collect();
    q.volume_ids = p.get("DiskId").map(String::from).into_iter().collect();
    nothing |= crate::ids::wrong_kind_param(&p.0).is_some();
    if let Some(list) = p.id_list("SnapshotIds", "InvalidSnapshotIds.Malformed", 403)? {
        nothing |= list.is_empty();
        q.ids = crate::ids::kept(Kind::Snapshot, list).unwrap_or_else(|| {
            nothing = true;
            Vec::new()
        });
    }
    q.root_id = p.get("SnapshotLinkId").map(String::from);
    q.name = p.get("SnapshotName").map(String::from);
    match p.get("Status").map(str::to_ascii_lowercase).as_deref() {
        None | Some("all") => {}
        Some("progressing") => q.statuses = vec![SnapshotStatus::Creating.into()],
        Some("accomplished") => q.statuses = vec![SnapshotStatus::Available.into()],
        Some("failed") => nothing = true, // a failed capture is undone, never kept
        Some(other) => {
            return Err(vendor(
                "InvalidStatus.NotFound",
                404,
                format!("The specified Status \"{other}\" is not valid: progressing, accomplished, failed or all."),
            ))
        }
    }
    q.origin = match p.get("SnapshotType").map(str::to_ascii_lowercase).as_deref() {
        None | Some("all") => None,
        Some("auto") => Some(Origin::Auto),
        Some("user") => Some(Origin::User),
        Some(other) => {
            return Err(vendor(
                "InvalidSnapshotType.NotFound",
                404,
                format!("The specified SnapshotType \"{other}\" is not valid: auto, user or all."),
            ))
        }
    }
    .map(String::from);
    q.volume_kind = match p.get("SourceDiskType").map(str::to_ascii_lowercase).as_deref() {
        None | Some("all") => None,
        Some("system") => Some(VolumeKind::System),
        Some("data") => Some(VolumeKind::Data),
        Some(other) => {
            return Err(vendor(
                "InvalidSourceDiskType",
                404,
                format!("The specified SourceDiskType \"{other}\" is not valid: System or Data."),
            ))
        }
    }
    .map(String::from);
    (q.used_by_images, q.used_by_volumes) = match p.get("Usage").map(str::to_ascii_lowercase).as_deref() {
        None => (None, None),
        Some("image") => (Some(true), Some(false)),
        Some("disk") => (Some(false), Some(true)),
        Some("image_disk") => (Some(true), Some(true)),
        Some("none") => (Some(false), Some(false)),
        Some(other) => {
            return Err(vendor(
                "InvalidUsage",
                404,
                format!("The specified Usage \"{other}\" is not valid: image, disk, image_disk or none."),
            ))
        }
    };
    // Encrypted=false is the documented default: no filter. disksnap encrypts nothing, keeps
    // every snapshot in the standard category, without KMS keys or resource groups.
    if p.bool("Encrypted")? == Some(true) {
        q.encrypted = Some(true);
    }
    nothing |= p.get("Category").is_some_and(|c| !c.eq_ignore_ascii_case("standard"));
    nothing |= p.get("KMSKeyId").is_some();
    if let Some(g) = p.get("ResourceGroupId") {
        let members = tagging::resources_in_group(ctx, caller, tagging::ResourceType::Snapshot, g).await?;
        match tagging::narrow_to_group(Kind::Snapshot, &q.ids, members) {
            Some(ids) => q.ids = ids,
            None => nothing = true,
        }
    }
    q.tag_pairs = p.tags()?;
    let (from, to) = p.creation_filters()?;
    (q.created_from, q.created_to) = (from.map(|t| t.timestamp_millis()), to.map(|t| t.timestamp_millis()));
    dry_run(p)?;
    Ok((r, paging, (!nothing).then_some(q)))
}

async fn create_snapshot(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let disk = p.required("DiskId")?;
    region(ctx, p, false)?;
    let name = p.get("SnapshotName");
    check_name(name, "SnapshotName", "InvalidSnapshotName.Malformed", true)?;
    let description = p.get("Description");
    check_description(description, 2)?;
    let retention = p.int("RetentionDays", 1, 65536)?.map(|d| d as u32);
    let tags = p.tags()?;
    check_tag_keys(&tags)?;
    let group = tagging::check_group_param(p)?;
    let token = Idempotency::new(caller, "CreateSnapshot", p)?;
    if p.bool("DryRun")? == Some(true) {
        ctx.service.volume(caller, disk).await?;
        dry_run(p)?;
    }
    if let Some(v) = token.earlier(ctx).await? {
        return Ok(v);
    }
    // ECS keeps at most 256 manual snapshots per disk (help.aliyun.com/document_detail/25524.htm)
    let manual = SnapshotFilter {
        volume_ids: vec![disk.to_string()],
        origin: Some(Origin::User.into()),
        statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
        limit: 1,
        ..Default::default()
    };
    if ctx.service.snapshots(caller, &manual).await?.1 >= MAX_MANUAL_SNAPSHOTS {
        return Err(vendor(
            "QuotaExceed.Snapshot",
            403,
            format!("The disk {disk} has {MAX_MANUAL_SNAPSHOTS} manual snapshots already; delete some first."),
        ));
    }
    let tag_ids = ensure_tags(ctx, caller, &tags).await?;
    let req = CreateSnapshots {
        volumes: vec![disk.to_string()],
        name: name.unwrap_or_default().to_string(),
        description: description.unwrap_or_default().to_string(),
        origin: Some(Origin::User),
        retention_days: retention,
        tag_ids,
        ..Default::default()
    };
    let (_job, snaps) = ctx.service.create_snapshots(caller, req).await?;
    let id = snaps.first().map(|s| s.id.clone()).ok_or_else(|| ServiceError::Internal("no snapshot made".into()))?;
    tagging::join_on_create(ctx, caller, tagging::ResourceType::Snapshot, &id, group).await?;
    let v = json!({ "SnapshotId": show(Kind::Snapshot, &id) });
    token.remember(ctx, &v).await?;
    Ok(v)
}

/// Manual snapshots one disk may keep.
const MAX_MANUAL_SNAPSHOTS: u64 = 256;

/// How long DeleteSnapshot waits for its job, so the point is gone from the next list; under
/// both SDKs' 10 s read timeout (a longer job goes on; the point stays listed until it ends).
const DELETE_WAIT: Duration = Duration::from_secs(8);

async fn delete_snapshot(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let id = p.required("SnapshotId")?;
    let force = p.bool("Force")?.unwrap_or(false);
    let s = live_snapshot(ctx, caller, id).await?;
    let shown = show(Kind::Snapshot, &s.id);
    if !force && s.used_by_volumes > 0 {
        return Err(vendor(
            "SnapshotCreatedDisk",
            403,
            format!("The snapshot {shown} has been used to create disks; delete it with Force=true."),
        ));
    }
    if !force && s.used_by_images > 0 {
        return Err(vendor(
            "SnapshotCreatedImage",
            403,
            format!("The snapshot {shown} has been used to create images; delete it with Force=true."),
        ));
    }
    let job = ctx.service.delete_snapshots(caller, std::slice::from_ref(&s.id), DeleteScope::Points).await?;
    if let Ok(done) = tokio::time::timeout(DELETE_WAIT, ctx.service.wait_job(caller, &job.id)).await {
        let done = done?;
        if done.status == JobStatus::Failed {
            return Err(ServiceError::Internal(format!("delete job {} failed: {:?}", done.id, done.error)).into());
        }
    }
    Ok(json!({}))
}

async fn modify_snapshot(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let id = p.required("SnapshotId")?;
    let name = p.get("SnapshotName");
    check_name(name, "SnapshotName", "InvalidSnapshotName.Malformed", true)?;
    let description = p.get("Description");
    check_description(description, 0)?;
    let retention = p.int("RetentionDays", 1, 65536)?.map(|d| d as u32);
    let s = live_snapshot(ctx, caller, id).await?;
    if name.is_some() || description.is_some() {
        ctx.service.modify_snapshot(caller, &s.id, name, description).await?;
    }
    if retention.is_some() {
        ctx.service.set_snapshot_retention(caller, &s.id, retention).await?;
    }
    Ok(json!({}))
}

async fn reset_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let disk_id = p.required("DiskId")?;
    let snap_id = p.required("SnapshotId")?;
    let disk = ctx.service.volume(caller, disk_id).await?;
    let s = live_snapshot(ctx, caller, snap_id).await?;
    if s.volume_id != disk.id {
        return Err(vendor(
            "InvalidParameter.Mismatch",
            403,
            format!(
                "The snapshot {} was taken from disk {}, not from {}; a disk can only be reset to its own snapshots (CreateDisk makes a new disk from any snapshot).",
                show(Kind::Snapshot, &s.id),
                show(Kind::Volume, &s.volume_id),
                show(Kind::Volume, &disk.id)
            ),
        ));
    }
    dry_run(p)?;
    ctx.service.apply_snapshot(caller, &s.id).await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let c = |n: &str, auto| check_name(Some(n), "SnapshotName", "InvalidSnapshotName.Malformed", auto);
        assert!(c("nightly-1", true).is_ok());
        assert!(c("快照一", true).is_ok());
        assert_eq!(c("x", true).unwrap_err().code(), "InvalidSnapshotName.Malformed");
        assert!(c("1abc", true).is_err());
        assert!(c("http://x", true).is_err());
        assert!(c("auto_20150730", true).is_err());
        assert!(c("auto_ok_for_disks", false).is_ok());
        let e = check_description(Some("x"), 2).unwrap_err();
        assert_eq!((e.code(), e.http_status()), ("InvalidDescription.Malformed", 404));
        assert!(check_tag_keys(&[("acs:x".into(), None)]).is_err());
        assert!(check_tag_keys(&[("team".into(), None)]).is_ok());
    }
}
