//! The rest of a disk's life (DeleteDisk, ResizeDisk, ModifyDiskAttribute, AttachDisk,
//! DetachDisk) and of an image's (DescribeImages, DeleteImage, ModifyImageAttribute). Work
//! that moves bytes is a service job; an action waits a bounded time for it so the next
//! Describe shows the result, as ECS's own fast paths do.

use std::time::Duration;

use disksnap_api_common::ApiContext;
use disksnap_service::{Caller, Image, ImageStatus, Job, JobStatus, Kind, ServiceError, Volume, GIB};
use serde_json::{json, Value};

use super::tagging::{group_of, resources_in_group, ResourceType};
use super::{check_description, check_name, dry_run, required_region, Idempotency};
use crate::error::{invalid, vendor, AliyunError};
use crate::ids::show;
use crate::params::{Paging, Params, Res};
use crate::regions::region_of;

/// How long an action waits for its job: under both SDKs' 10 s read timeout (a longer job
/// goes on; Describe shows the disk busy until it ends).
const JOB_WAIT: Duration = Duration::from_secs(8);

/// Wait up to [`JOB_WAIT`] for a job; a failure is the job's own error.
async fn settle(ctx: &ApiContext, caller: &Caller, job: &Job) -> Res<()> {
    if let Ok(done) = tokio::time::timeout(JOB_WAIT, ctx.service.wait_job(caller, &job.id)).await {
        let done = done?;
        if done.status == JobStatus::Failed {
            return Err(ServiceError::Internal(format!("job {} failed: {:?}", done.id, done.error)).into());
        }
    }
    Ok(())
}

/// The disk, or ECS's `InvalidDiskId.NotFound` (deleted disks are gone for ECS).
async fn disk(ctx: &ApiContext, caller: &Caller, id: &str) -> Res<Volume> {
    let v = ctx.service.volume(caller, id).await?;
    if v.status == disksnap_service::VolumeStatus::Deleted {
        return Err(ServiceError::not_found(Kind::Volume, id).into());
    }
    Ok(v)
}

fn incorrect_disk_status(v: &Volume, why: &str) -> AliyunError {
    vendor(
        "IncorrectDiskStatus",
        403,
        format!(
            "The current status of the disk \"{}\" ({}) does not support this operation: {why}.",
            show(Kind::Volume, &v.id),
            crate::wire::disk_status(v)
        ),
    )
}

pub(super) async fn delete_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let v = disk(ctx, caller, p.required("DiskId")?).await?;
    if v.instance_id.is_some() {
        return Err(incorrect_disk_status(&v, "it is attached to an instance; DetachDisk first"));
    }
    dry_run(p)?;
    // ECS keeps a deleted disk's manual snapshots (they are deleted with it only when asked by
    // DeleteAutoSnapshot for automatic ones, which disksnap does not take per disk).
    let job = ctx.service.delete_volumes(caller, std::slice::from_ref(&v.id)).await?;
    settle(ctx, caller, &job).await?;
    // The group record of a gone resource is only tidied: were this to fail, the record is
    // harmless (lists never show deleted resources) and the disk is deleted all the same.
    let _ = ctx
        .service
        .forget(disksnap_service::StateKind::ResourceGroup, &caller.account, &ResourceType::Disk.key(&v.id))
        .await;
    Ok(json!({}))
}

pub(super) async fn resize_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let id = p.required("DiskId")?;
    let new_size = p.required("NewSize")?;
    match p.get("Type").map(str::to_ascii_lowercase).as_deref() {
        None | Some("offline") | Some("online") => {}
        Some(_) => return Err(invalid("Type", "it must be offline or online")),
    }
    let token = Idempotency::new(caller, "ResizeDisk", p)?;
    if let Some(v) = token.earlier(ctx).await? {
        return Ok(v);
    }
    let v = disk(ctx, caller, id).await?;
    let max = disksnap_service::volumes::MAX_VOLUME_GIB;
    let size = new_size.trim().parse::<u64>().ok().filter(|g| (1..=max).contains(g));
    let current = v.size.div_ceil(GIB);
    let Some(size) = size.filter(|g| *g > current) else {
        return Err(vendor(
            "InvalidDiskSize.ValueNotSupported",
            403,
            format!(
                "The specified NewSize \"{new_size}\" is not supported: the disk {} is {current} GiB; a disk only grows, up to {max} GiB.",
                show(Kind::Volume, &v.id)
            ),
        ));
    };
    if v.transition != disksnap_service::VolumeTransition::None {
        return Err(incorrect_disk_status(&v, "another operation is in progress"));
    }
    let job = ctx.service.resize_volume(caller, &v.id, size).await?;
    settle(ctx, caller, &job).await?;
    let answer = json!({ "OrderId": "" });
    token.remember(ctx, &answer).await?;
    Ok(answer)
}

/// `DiskIds.N` (the batch form) or `DiskId`.
fn disk_ids(p: &Params) -> Res<Vec<String>> {
    let mut out: Vec<String> = p.repeated("DiskIds")?;
    if let Some(one) = p.get("DiskId") {
        out.insert(0, one.to_string());
    }
    if out.is_empty() {
        return Err(AliyunError::MissingParameter("DiskId".into()));
    }
    if out.len() > 100 {
        return Err(invalid("DiskIds", "at most 100 disks at once"));
    }
    Ok(out)
}

pub(super) async fn modify_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let ids_ = disk_ids(p)?;
    let name = p.get("DiskName");
    check_name(name, "DiskName", "InvalidDiskName.Malformed", false)?;
    let description = p.get("Description");
    check_description(description, 2)?;
    // Flags disksnap has no use for (no automatic snapshot policy per disk, instances are never
    // released, no burst billing) are read so a bad value is refused, and otherwise left alone.
    for flag in ["DeleteWithInstance", "DeleteAutoSnapshot", "EnableAutoSnapshot", "BurstingEnabled"] {
        p.bool(flag)?;
    }
    let mut disks = Vec::new();
    for id in &ids_ {
        disks.push(disk(ctx, caller, id).await?);
    }
    if name.is_some() || description.is_some() {
        for v in &disks {
            ctx.service.modify_volume(caller, &v.id, name, description).await?;
        }
    }
    Ok(json!({}))
}

pub(super) async fn attach_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let instance = p.required("InstanceId")?;
    let id = p.required("DiskId")?;
    if p.bool("Bootable")? == Some(true) {
        return Err(invalid("Bootable", "a disk is attached as a data disk here; system disks are not replaced"));
    }
    p.bool("DeleteWithInstance")?;
    p.bool("Force")?;
    ctx.service.instance_volumes(caller, instance).await?;
    let v = disk(ctx, caller, id).await?;
    if v.instance_id.is_some() {
        return Err(incorrect_disk_status(&v, "it is attached already; DetachDisk first"));
    }
    dry_run(p)?;
    ctx.service.attach_volumes(caller, std::slice::from_ref(&v.id), instance).await?;
    Ok(json!({}))
}

pub(super) async fn detach_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let instance = p.required("InstanceId")?;
    let id = p.required("DiskId")?;
    p.bool("DeleteWithInstance")?;
    ctx.service.instance_volumes(caller, instance).await?;
    let v = disk(ctx, caller, id).await?;
    let on_it = v.instance_id.as_deref().zip(crate::ids::parse(Kind::Instance, instance)).is_some_and(|(a, b)| a == b);
    if !on_it {
        return Err(incorrect_disk_status(&v, &format!("it is not attached to instance {instance}")));
    }
    dry_run(p)?;
    ctx.service.detach_volumes(caller, std::slice::from_ref(&v.id)).await?;
    Ok(json!({}))
}

/// Aliyun's image status word.
fn image_status(s: ImageStatus) -> &'static str {
    match s {
        ImageStatus::Pending => "Creating",
        ImageStatus::Available => "Available",
        ImageStatus::Deleted => "Deprecated",
    }
}

fn image_item(ctx: &ApiContext, img: &Image, group: Option<String>) -> Value {
    let region = region_of(ctx, None, &img.zone);
    let size = img.size.div_ceil(GIB);
    json!({
        "ImageId": show(Kind::Image, &img.id),
        "ImageName": img.name,
        "Description": "",
        "ImageOwnerAlias": "self",
        "ImageVersion": "",
        "ImageFamily": "",
        "Architecture": "x86_64",
        "OSType": "linux",
        "OSName": "",
        "OSNameEn": "",
        "Platform": "Others Linux",
        "Status": image_status(img.status),
        "Progress": if img.status == ImageStatus::Pending { "0%" } else { "100%" },
        "Size": size,
        "Usage": "none",
        "IsSelfShared": "",
        "IsSubscribed": false,
        "IsCopied": false,
        "IsPublic": false,
        "IsSupportIoOptimized": true,
        "IsSupportCloudinit": false,
        "CreationTime": disksnap_api_common::time::iso_z(img.create_time),
        "ProductCode": "",
        "ResourceGroupId": group.unwrap_or_default(),
        "LoginAsNonRootSupported": false,
        "BootMode": "BIOS",
        "RegionId": region,
        "DiskDeviceMappings": { "DiskDeviceMapping": [{
            "SnapshotId": show(Kind::Snapshot, &img.snapshot_id),
            "Size": size.to_string(),
            "Device": "/dev/xvda",
            "Type": "system",
            "Format": "",
            "ImportOSSBucket": "",
            "ImportOSSObject": "",
        }]},
        "Tags": { "Tag": [] },
    })
}

pub(super) async fn describe_images(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let r = required_region(ctx, p)?;
    let paging = Paging::from_params(p, 1)?;
    // ImageId: up to 100, comma-separated (ECS's own form for this parameter).
    let wanted: Option<Vec<String>> =
        p.get("ImageId").map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect());
    if wanted.as_ref().is_some_and(|w| w.len() > 100) {
        return Err(invalid("ImageId", "at most 100 comma-separated image ids"));
    }
    let status_words: Vec<String> = p
        .get("Status")
        .map(|s| s.split(',').map(|w| w.trim().to_string()).collect())
        .unwrap_or_else(|| vec!["Available".into()]);
    for w in &status_words {
        if !["Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated"].contains(&w.as_str()) {
            return Err(invalid(
                "Status",
                format!("\"{w}\" is not Creating, Waiting, Available, UnAvailable, CreateFailed or Deprecated"),
            ));
        }
    }
    let owner_self = match p.get("ImageOwnerAlias") {
        None | Some("self") => true,
        Some("system" | "others" | "marketplace") => false,
        Some(other) => {
            return Err(invalid("ImageOwnerAlias", format!("\"{other}\" is not system, self, others or marketplace")))
        }
    };
    let snapshot = p.get("SnapshotId").map(|s| crate::ids::parse(Kind::Snapshot, s));
    let group = match p.get("ResourceGroupId") {
        Some(g) => Some(resources_in_group(ctx, caller, ResourceType::Image, g).await?),
        None => None,
    };
    dry_run(p)?;
    // Images are few per account (each is a whole copy of a system disk): filter in memory
    // over the account's list, read in pages.
    let mut all = Vec::new();
    if owner_self {
        let mut offset = 0;
        loop {
            let (page, total) = ctx.service.images(caller, offset, 100).await?;
            offset += page.len() as u64;
            let done = page.is_empty() || offset >= total;
            all.extend(page);
            if done {
                break;
            }
        }
    }
    all.retain(|img| {
        img.zone == r.zone
            && status_words.iter().any(|w| w == image_status(img.status))
            && wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|id| crate::ids::parse(Kind::Image, id).as_deref() == Some(&img.id)))
            && p.get("ImageName").is_none_or(|n| n == img.name)
            && snapshot.as_ref().is_none_or(|s| s.as_deref() == Some(&img.snapshot_id))
            && group.as_ref().is_none_or(|g| g.contains(&img.id))
    });
    let total = all.len() as u64;
    let mut items = Vec::new();
    for img in all.iter().skip(paging.offset as usize).take(paging.limit as usize) {
        let g = group_of(ctx, caller, ResourceType::Image, &img.id).await?;
        items.push(image_item(ctx, img, g));
    }
    Ok(json!({
        "TotalCount": total,
        "PageNumber": paging.page_number,
        "PageSize": paging.limit,
        "RegionId": r.name,
        "Images": { "Image": items },
    }))
}

async fn own_image(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Image> {
    let id = p.required("ImageId")?;
    let img = ctx.service.image(caller, id).await?;
    if img.status == ImageStatus::Deleted {
        return Err(ServiceError::not_found(Kind::Image, id).into());
    }
    Ok(img)
}

pub(super) async fn delete_image(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let img = own_image(ctx, caller, p).await?;
    p.bool("Force")?;
    if img.status == ImageStatus::Pending {
        return Err(vendor(
            "IncorrectImageStatus",
            403,
            format!("The image {} is still being created; delete it when it is Available.", show(Kind::Image, &img.id)),
        ));
    }
    dry_run(p)?;
    ctx.service.delete_images(caller, std::slice::from_ref(&img.id)).await?;
    // tidied only, as DeleteDisk does
    let _ = ctx
        .service
        .forget(disksnap_service::StateKind::ResourceGroup, &caller.account, &ResourceType::Image.key(&img.id))
        .await;
    Ok(json!({}))
}

pub(super) async fn modify_image(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let img = own_image(ctx, caller, p).await?;
    let name = p.get("ImageName");
    check_name(name, "ImageName", "InvalidImageName.Malformed", false)?;
    if p.get("Description").is_some() {
        return Err(invalid("Description", "this server keeps no description for images"));
    }
    match p.get("Status") {
        None | Some("Available") => {}
        Some(other) => return Err(invalid("Status", format!("\"{other}\": images here are only ever Available"))),
    }
    dry_run(p)?;
    if let Some(n) = name.filter(|n| *n != img.name) {
        let mut offset = 0;
        loop {
            let (page, total) = ctx.service.images(caller, offset, 100).await?;
            if page.iter().any(|i| i.name == n && i.id != img.id) {
                return Err(vendor(
                    "InvalidImageName.Duplicated",
                    400,
                    format!("An image named \"{n}\" already exists in this account."),
                ));
            }
            offset += page.len() as u64;
            if page.is_empty() || offset >= total {
                break;
            }
        }
        ctx.service.rename_image(caller, &img.id, n).await?;
    }
    Ok(json!({}))
}
