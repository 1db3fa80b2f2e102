//! Disks, images, snapshot links and usage.

use disksnap_api_common::ApiContext;
use disksnap_service::{
    Caller, CreateVolumes, Kind, ServiceError, SnapshotFilter, SnapshotStatus, VolumeFilter, VolumeFromSnapshot,
    VolumeKind, VolumeStatus, GIB,
};
use serde_json::{json, Value};

use super::tagging;
use super::{
    answer_page, check_description, check_name, check_tag_keys, dry_run, ensure_tags, live_snapshot, required_region,
    Idempotency,
};
use crate::error::{invalid, vendor, AliyunError};
use crate::ids::show;
use crate::params::{Paging, Params, Res};
use crate::regions::{check_zone, region_of};
use crate::wire::{value, DiskItem, SnapshotLinkItem};

pub(super) async fn create_disk(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let r = required_region(ctx, p)?;
    let instance = p.get("InstanceId");
    match p.get("ZoneId") {
        Some(z) => check_zone(ctx, &r, z)?,
        None if instance.is_none() => return Err(AliyunError::MissingParameter("ZoneId".into())),
        None => {}
    }
    let name = p.get("DiskName");
    check_name(name, "DiskName", "InvalidDiskName.Malformed", false)?;
    let description = p.get("Description").map(String::from);
    check_description(description.as_deref(), 2)?;
    let size = p.int("Size", 1, disksnap_service::volumes::MAX_VOLUME_GIB as i64)?.map(|s| s as u64);
    if p.bool("Encrypted")? == Some(true) {
        return Err(invalid("Encrypted", "this server does not encrypt disks"));
    }
    let tags = p.tags()?;
    check_tag_keys(&tags)?;
    let group = tagging::check_group_param(p)?;
    let token = Idempotency::new(caller, "CreateDisk", p)?;
    if let Some(i) = instance {
        ctx.service.instance_volumes(caller, i).await?;
    }
    let snapshot = match p.get("SnapshotId") {
        Some(id) => {
            let s = live_snapshot(ctx, caller, id).await?;
            if s.status != SnapshotStatus::Available {
                return Err(vendor(
                    "InvalidSnapshotId.NotReady",
                    403,
                    format!(
                        "The snapshot {} is still progressing; retry when it is accomplished.",
                        show(Kind::Snapshot, &s.id)
                    ),
                ));
            }
            if size.is_some_and(|g| g * GIB < s.volume_size) {
                return Err(vendor(
                    "InvalidDiskSize.TooSmall",
                    403,
                    format!("Size must be at least the snapshot's {} GiB.", s.volume_size.div_ceil(GIB)),
                ));
            }
            Some(s)
        }
        None if size.is_none() => return Err(AliyunError::MissingParameter("Size".into())),
        None => None,
    };
    dry_run(p)?;
    if let Some(v) = token.earlier(ctx).await? {
        return Ok(v);
    }
    let name = name.unwrap_or_default();
    // Description, attachment and size go with the request: one persisted job makes the disk
    // whole, so a restart loses none of it.
    let vol = match &snapshot {
        Some(s) => {
            let req = VolumeFromSnapshot {
                snapshot: s.id.clone(),
                name: name.to_string(),
                description: description.unwrap_or_default(),
                zone: Some(r.zone.clone()),
                size_gib: size.filter(|g| g * GIB > s.volume_size.div_ceil(GIB) * GIB),
                instance_id: instance.map(String::from),
            };
            ctx.service.restore_volume(caller, &req).await?.1
        }
        None => {
            let req = CreateVolumes {
                zone: Some(r.zone.clone()),
                name: name.to_string(),
                description: description.unwrap_or_default(),
                size_gib: size.unwrap_or(1),
                kind: Some(VolumeKind::Data),
                count: 1,
                instance_id: instance.map(String::from),
            };
            let (_, mut vols) = ctx.service.create_volumes(caller, req).await?;
            vols.pop().ok_or_else(|| ServiceError::Internal("no volume made".into()))?
        }
    };
    if !tags.is_empty() {
        let pairs = ensure_tags(ctx, caller, &tags).await?.into_iter().map(|t| (t, vol.id.clone())).collect::<Vec<_>>();
        ctx.service.attach_tags(caller, &pairs).await?;
    }
    tagging::join_on_create(ctx, caller, tagging::ResourceType::Disk, &vol.id, group).await?;
    let v = json!({ "DiskId": show(Kind::Volume, &vol.id), "OrderId": "" });
    token.remember(ctx, &v).await?;
    Ok(v)
}

pub(super) async fn create_image(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    required_region(ctx, p)?;
    let snap_id = match p.get("SnapshotId").or_else(|| p.get("DiskDeviceMapping.1.SnapshotId")) {
        Some(s) => s,
        None if p.get("InstanceId").is_some() => {
            return Err(invalid("InstanceId", "images are made from a system-disk snapshot here; give SnapshotId"))
        }
        None => return Err(AliyunError::MissingParameter("SnapshotId".into())),
    };
    let name = p.get("ImageName");
    check_name(name, "ImageName", "InvalidImageName.Malformed", false)?;
    if let Some(n) = name {
        let mut offset = 0;
        loop {
            let (page, total) = ctx.service.images(caller, offset, 100).await?;
            if page.iter().any(|i| i.name == n) {
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
    }
    let token = Idempotency::new(caller, "CreateImage", p)?;
    let s = live_snapshot(ctx, caller, snap_id).await?;
    dry_run(p)?;
    if let Some(v) = token.earlier(ctx).await? {
        return Ok(v);
    }
    let (_job, img) = ctx.service.capture_image(caller, &s.id, name.unwrap_or_default()).await?;
    let v = json!({ "ImageId": show(Kind::Image, &img.id) });
    token.remember(ctx, &v).await?;
    Ok(v)
}

pub(super) async fn describe_disks(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let r = required_region(ctx, p)?;
    if let Some(z) = p.get("ZoneId") {
        check_zone(ctx, &r, z)?;
    }
    let paging = Paging::from_params(p, 1)?;
    let mut nothing = false;
    let mut q =
        VolumeFilter { zone: Some(r.zone.clone()), offset: paging.offset, limit: paging.limit, ..Default::default() };
    if let Some(list) = p.id_list("DiskIds", "InvalidDiskIds.Malformed", 400)? {
        nothing |= list.is_empty();
        q.ids = crate::ids::kept(Kind::Volume, list).unwrap_or_else(|| {
            nothing = true;
            Vec::new()
        });
    }
    q.instance_ids = p.get("InstanceId").map(String::from).into_iter().collect();
    nothing |= crate::ids::wrong_kind_param(&p.0).is_some();
    q.name = p.get("DiskName").map(String::from);
    let mut kind = match p.get("DiskType").map(str::to_ascii_lowercase).as_deref() {
        None | Some("all") => None,
        Some("system") => Some(VolumeKind::System),
        Some("data") => Some(VolumeKind::Data),
        Some(other) => return Err(invalid("DiskType", format!("\"{other}\" is not all, system or data"))),
    };
    if let Some(portable) = p.bool("Portable")? {
        let k = if portable { VolumeKind::Data } else { VolumeKind::System };
        nothing |= kind.is_some_and(|given| given != k);
        kind = Some(k);
    }
    q.kind = kind.map(String::from);
    match p.get("Status") {
        None | Some("All") => {}
        Some("In_use") => q.statuses = vec![VolumeStatus::InUse.into()],
        Some("Available") => q.statuses = vec![VolumeStatus::Available.into()],
        Some("Creating") => q.statuses = vec![VolumeStatus::Creating.into()],
        Some("Attaching" | "Detaching" | "ReIniting") => nothing = true,
        Some(other) => {
            return Err(invalid(
                "Status",
                format!("\"{other}\" is not In_use, Available, Attaching, Detaching, Creating, ReIniting or All"),
            ))
        }
    }
    // the snapshot a disk was made from (volumes.source_snapshot, kept since migration 0007);
    // an id that names no snapshot of the account matches no disk
    if let Some(s) = p.get("SnapshotId") {
        match ctx.service.snapshot(caller, s).await {
            Ok(snap) => q.source_snapshots = vec![snap.id],
            Err(_) => nothing = true,
        }
    }
    if let Some(g) = p.get("ResourceGroupId") {
        let members = tagging::resources_in_group(ctx, caller, tagging::ResourceType::Disk, g).await?;
        match tagging::narrow_to_group(Kind::Volume, &q.ids, members) {
            Some(ids) => q.ids = ids,
            None => nothing = true,
        }
    }
    if let Some(pid) = p.get("AutoSnapshotPolicyId") {
        match super::policies::disks_of_policy(ctx, caller, pid).await? {
            Some(disks) => match tagging::narrow_to_group(Kind::Volume, &q.ids, disks) {
                Some(ids) => q.ids = ids,
                None => nothing = true,
            },
            None => nothing = true,
        }
    }
    nothing |= p.bool("Encrypted")? == Some(true);
    nothing |= p.get("Category").is_some_and(|c| !c.eq_ignore_ascii_case("cloud_essd") && c != "all");
    let tags = p.tags()?;
    if !tags.is_empty() {
        let all = ctx.service.tags(caller).await?;
        for (i, (k, v)) in tags.iter().enumerate() {
            let matching: Vec<_> =
                all.iter().filter(|t| &t.key == k && (v.is_none() || v.as_ref() == Some(&t.value))).collect();
            match matching.as_slice() {
                [] => nothing = true,
                [one] => q.tag_ids.push(one.id.clone()),
                _ => {
                    return Err(invalid(
                        &format!("Tag.{}.Value", i + 1),
                        format!("several tags have the key \"{k}\"; give the value too"),
                    ))
                }
            }
        }
    }
    dry_run(p)?;
    let (vols, total) = if nothing { (vec![], 0) } else { ctx.service.volumes(caller, &q).await? };
    let ids: Vec<String> = vols.iter().map(|v| v.id.clone()).collect();
    let mut groups = tagging::groups_of(ctx, caller, tagging::ResourceType::Disk, &ids).await?;
    let mut items = Vec::with_capacity(vols.len());
    for v in &vols {
        let mut item = DiskItem::from_volume(v, &region_of(ctx, Some(&r), &v.zone));
        item.resource_group_id = groups.remove(&v.id).unwrap_or_default();
        let policy = ctx.service.policy_of_volume(caller, &v.id).await?;
        item.enable_auto_snapshot = policy.is_some();
        item.auto_snapshot_policy_id = policy.map(|id| show(Kind::Policy, &id)).unwrap_or_default();
        items.push(value(&item));
    }
    Ok(answer_page(&paging, total, items.len(), "Disks", "Disk", items))
}

pub(super) async fn describe_links(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let r = required_region(ctx, p)?;
    let paging = Paging::from_params(p, 10)?;
    let mut nothing = false;
    let mut q = SnapshotFilter {
        zone: Some(r.zone.clone()),
        is_full: Some(true),
        // a deleted full point still names its chain while later points live (DeleteSnapshot
        // removes only the point named; the full point stays recoverable for a while)
        statuses: vec![
            SnapshotStatus::Creating.into(),
            SnapshotStatus::Available.into(),
            SnapshotStatus::Deleted.into(),
        ],
        offset: paging.offset,
        limit: paging.limit,
        ..Default::default()
    };
    q.instance_ids = p.get("InstanceId").map(String::from).into_iter().collect();
    nothing |= crate::ids::wrong_kind_param(&p.0).is_some();
    if let Some(list) = p.id_list("DiskIds", "InvalidDiskIds.Malformed", 400)? {
        nothing |= list.is_empty();
        q.volume_ids = crate::ids::kept(Kind::Volume, list).unwrap_or_else(|| {
            nothing = true;
            Vec::new()
        });
    }
    if let Some(list) = p.id_list("SnapshotLinkIds", "InvalidParameter", 400)? {
        // a link is named by its full point: sl-<root>
        q.ids = list.iter().filter_map(|l| crate::ids::parse(Kind::Chain, l)).collect();
        nothing |= q.ids.is_empty();
    }
    let (mut roots, mut total) = if nothing { (vec![], 0) } else { ctx.service.snapshots(caller, &q).await? };
    // chains with no live point left are gone for ECS (close enough for TotalCount: such a
    // chain exists only until its full point's recovery window closes)
    let mut empty = Vec::new();
    for s in roots.iter().filter(|s| s.status == SnapshotStatus::Deleted) {
        let live = SnapshotFilter {
            root_id: Some(s.id.clone()),
            statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
            limit: 1,
            ..Default::default()
        };
        if ctx.service.snapshots(caller, &live).await?.1 == 0 {
            empty.push(s.id.clone());
        }
    }
    roots.retain(|s| !empty.contains(&s.id));
    total = total.saturating_sub(empty.len() as u64);
    let mut items = Vec::new();
    for s in &roots {
        let disk_name = ctx.service.volume(caller, &s.volume_id).await.map(|v| v.name).unwrap_or_default();
        let chain = s.chain.as_ref();
        items.push(value(&SnapshotLinkItem {
            snapshot_link_id: show(Kind::Chain, &s.root_id),
            region_id: region_of(ctx, Some(&r), &s.zone),
            instance_id: s.instance_id.as_deref().map(|i| show(Kind::Instance, i)).unwrap_or_default(),
            instance_name: String::new(),
            source_disk_id: show(Kind::Volume, &s.volume_id),
            source_disk_name: disk_name,
            source_disk_size: s.volume_size.div_ceil(GIB),
            source_disk_type: s.volume_kind.as_str().to_string(),
            total_count: chain.map(|c| c.total_count).unwrap_or(1),
            total_size: chain.map(|c| c.total_size).unwrap_or(s.size),
            category: "standard".into(),
            instant_access: false,
        }));
    }
    Ok(answer_page(&paging, total, items.len(), "SnapshotLinks", "SnapshotLink", items))
}

pub(super) async fn snapshots_usage(ctx: &ApiContext, caller: &Caller, p: &Params) -> Res<Value> {
    let r = required_region(ctx, p)?;
    let q = SnapshotFilter {
        zone: Some(r.zone.clone()),
        statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
        ..Default::default()
    };
    let all = ctx.service.all_snapshots(caller, &q).await?;
    let (count, size) = (all.len() as u64, all.iter().map(|s| s.size).sum::<u64>());
    Ok(json!({ "SnapshotCount": count, "SnapshotSize": size }))
}
