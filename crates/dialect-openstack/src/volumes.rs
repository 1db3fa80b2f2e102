//! Cinder volumes: create (blank or from a snapshot), list/detail, show, update, delete and the
//! actions `os-extend`, `revert` (≥ 3.40) and `os-force_delete` (dialect-openstack.md §6).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use disksnap_service::{CreateVolumes, Kind, Volume, VolumeFilter, VolumeFromSnapshot, VolumeKind, VolumeStatus};

use crate::cinder::{self, envelope, not_found_as, opt_text};
use crate::error::{OsError, OsResult};
use crate::listing::{self, Target};
use crate::router::{ItemOp, MetaOp, Op};
use crate::wire::{self, Flavour, VolCtx, VolView};
use crate::{empty, json_response, Call, OpenStack};

fn bad(m: impl Into<String>) -> OsError {
    OsError::BadRequest(m.into())
}

async fn all_volumes(d: &OpenStack, call: &Call) -> OsResult<Vec<Volume>> {
    let q = VolumeFilter {
        statuses: vec![VolumeStatus::Creating.into(), VolumeStatus::Available.into(), VolumeStatus::InUse.into()],
        ..Default::default()
    };
    Ok(d.ctx.service.all_volumes(&call.auth.caller(), &q).await?)
}

pub async fn get_volume(d: &OpenStack, call: &Call, id: &str) -> OsResult<Volume> {
    d.ctx.service.volume(&call.auth.caller(), &wire::from_wire(Kind::Volume, id)).await.map_err(|e| not_found_as(e, id))
}

fn ctx(call: &Call) -> VolCtx<'_> {
    VolCtx {
        base: &call.base,
        project_id: &call.auth.project_id,
        user_id: &call.auth.user_id,
        version: call.version,
        flavour: call.flavour,
        admin: call.auth.admin,
    }
}

pub fn render(call: &Call, v: &Volume, view: VolView) -> Value {
    wire::volume(v, view, &ctx(call))
}

pub fn status(call: &Call, v: &Volume) -> &'static str {
    wire::volume_status(v, call.flavour)
}

pub async fn handle(d: &OpenStack, call: &Call, op: Op) -> OsResult<Response> {
    match op {
        Op::List { detail } => list(d, call, detail).await,
        Op::Create => create(d, call).await,
        Op::Show(id) => {
            let v = get_volume(d, call, &id).await?;
            Ok(json_response(StatusCode::OK, json!({"volume": render(call, &v, VolView::Detail)})))
        }
        Op::Update(id) => update(d, call, &id).await,
        Op::Delete(id) => {
            let v = get_volume(d, call, &id).await?;
            let cascade = call.query().iter().any(|(k, v)| k == "cascade" && v.eq_ignore_ascii_case("true"));
            delete(d, call, &v, cascade, false).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        Op::Metadata(id, op) => {
            // **disksnap choice:** volumes carry no metadata; reads are empty, writes refused.
            get_volume(d, call, &id).await?;
            match op {
                MetaOp::Get => Ok(json_response(StatusCode::OK, json!({"metadata": {}}))),
                _ => Err(bad("Invalid input received: volume metadata is not supported by disksnap.")),
            }
        }
        Op::MetadataItem(id, key, op) => {
            get_volume(d, call, &id).await?;
            match op {
                ItemOp::Get | ItemOp::Delete => {
                    Err(OsError::NotFound(format!("Metadata item was not found: key {key}")))
                }
                ItemOp::Put => Err(bad("Invalid input received: volume metadata is not supported by disksnap.")),
            }
        }
        Op::Action(id) => action(d, call, &id).await,
        Op::Summary if call.flavour == Flavour::Cinder && call.version.at_least(3, 12) => {
            let vols = all_volumes(d, call).await?;
            let mut summary = json!({"total_size": vols.iter().map(|v| v.size_gib()).sum::<u64>(),
                "total_count": vols.len()});
            if call.version.at_least(3, 36) {
                summary["metadata"] = json!({});
            }
            Ok(json_response(StatusCode::OK, json!({"volume-summary": summary})))
        }
        Op::Summary => Err(OsError::NotFound("Volume summary could not be found.".into())),
    }
}

async fn list(d: &OpenStack, call: &Call, detail: bool) -> OsResult<Response> {
    let strict = call.flavour == Flavour::Cinder && call.version.at_least(3, 31);
    let params = listing::parse(&call.query(), Target::Volumes, call.version, strict)?;
    let (vols, next_marker, count) = indexed_page(d, call, &params, pushdown(d, call, &params)).await?;
    let view = if detail { VolView::Detail } else { VolView::Summary };
    let items: Vec<Value> = vols.iter().map(|v| render(call, v, view)).collect();
    let mut body = Map::new();
    body.insert("volumes".into(), items.into());
    if let Some(m) = next_marker {
        let href = listing::next_href(&call.base, &call.raw.path, &call.raw.query, &m);
        body.insert("volumes_links".into(), json!([{"href": href, "rel": "next"}]));
    }
    if params.with_count {
        body.insert("count".into(), count.into());
    }
    Ok(json_response(StatusCode::OK, Value::Object(body)))
}

/// The zone named exactly `name` (the zone a volume or snapshot shows), None when no zone is:
/// Cinder compares the shown zone, so an alias the service would resolve must not match more
/// here.
pub(crate) fn exact_zone(d: &OpenStack, name: &str) -> Option<String> {
    d.ctx.service.zones().iter().any(|z| z.name == name).then(|| name.to_string())
}

/// The store query for a volume list: name, bootable, zone, size, `name~`, `description~`,
/// the status shown (it mixes transitions and statuses: the store computes it from
/// wire::volume_words) and every sort key, as SQL; one keyset query on the list index.
fn pushdown(d: &OpenStack, call: &Call, p: &listing::ListParams) -> (VolumeFilter, bool) {
    let (order, sort) = listing::sort_keys(p);
    // Volumes carry no metadata here: a metadata filter matches none of them.
    let mut nothing = p.match_nothing || !p.metadata.is_empty();
    let mut q = VolumeFilter {
        statuses: vec![VolumeStatus::Creating.into(), VolumeStatus::Available.into(), VolumeStatus::InUse.into()],
        name: p.name.clone(),
        name_contains: p.name_like.clone(),
        description_contains: p.description_like.clone(),
        size_gib: p.size,
        kind: p.bootable.map(|b| if b { VolumeKind::System } else { VolumeKind::Data }.into()),
        shown: wire::volume_words(call.flavour),
        shown_in: p.status.iter().map(|s| s.to_ascii_lowercase()).collect(),
        order,
        sort,
        ..Default::default()
    };
    if let Some(z) = &p.zone {
        match exact_zone(d, z) {
            Some(z) => q.zone = Some(z),
            None => nothing = true,
        }
    }
    (q, nothing)
}

async fn indexed_page(
    d: &OpenStack,
    call: &Call,
    p: &listing::ListParams,
    (q, nothing): (VolumeFilter, bool),
) -> OsResult<(Vec<Volume>, Option<String>, usize)> {
    let caller = call.auth.caller();
    let svc = &d.ctx.service;
    let after = listing::marker_cursor(
        p.marker.as_deref(),
        Kind::Volume,
        "Volume",
        |bare| {
            let caller = &caller;
            async move { svc.volume(caller, &bare).await }
        },
        |v: &Volume| (v.status != VolumeStatus::Deleted).then(|| (v.create_time.timestamp_millis(), v.id.clone())),
    )
    .await?;
    // The service does not bound volume pages: one query of up to 1000 (MAX_LIMIT).
    listing::keyset_page(
        p,
        after,
        nothing,
        listing::MAX_LIMIT,
        |w| {
            let q = VolumeFilter {
                after: w.after,
                offset: w.offset,
                limit: w.limit,
                skip_count: w.skip_count,
                ..q.clone()
            };
            let caller = &caller;
            async move { Ok(svc.volumes(caller, &q).await?) }
        },
        |v: &Volume| (v.create_time.timestamp_millis(), v.id.clone()),
        |v| wire::uuid(Kind::Volume, &v.id),
    )
    .await
}

/// Public for the fuzz targets (fuzz/).
pub fn parse_size(v: Option<&Value>) -> OsResult<Option<u64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad("Invalid input received: size must be a positive integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad(format!("Invalid input received: size '{s}' must be a positive integer"))),
        Some(_) => Err(bad("Invalid input received: size must be a positive integer")),
    }
}

async fn create(d: &OpenStack, call: &Call) -> OsResult<Response> {
    let body = call.json()?;
    let o = envelope(&body, "volume")?;
    const ALLOWED: &[&str] = &[
        "size",
        "name",
        "description",
        "display_name",
        "display_description",
        "volume_type",
        "metadata",
        "snapshot_id",
        "source_volid",
        "consistencygroup_id",
        "availability_zone",
        "multiattach",
        "image_id",
        "imageRef",
        "backup_id",
        "group_id",
    ];
    if let Some(k) = o.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input received: Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    for k in ["source_volid", "image_id", "imageRef", "backup_id"] {
        if o.get(k).is_some_and(|v| !v.is_null()) {
            return Err(bad(format!("Invalid input received: {k} is not supported by disksnap.")));
        }
    }
    let size = parse_size(o.get("size"))?;
    let name = opt_text(o, &["name", "display_name"])?.unwrap_or_default();
    let description = opt_text(o, &["description", "display_description"])?.unwrap_or_default();
    let zone = match o.get("availability_zone") {
        Some(Value::String(z)) if !z.is_empty() => Some(
            d.ctx
                .service
                .resolve_zone(z)
                .map_err(|_| bad(format!("Invalid input received: Availability zone '{z}' is invalid.")))?,
        ),
        _ => None,
    };
    let caller = call.auth.caller();
    let snapshot_id = match o.get("snapshot_id") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    // Name, description and size go with the request: one persisted job makes the volume
    // whole (a restart loses none of it), and it shows `creating` until then.
    let vol = if let Some(sid) = &snapshot_id {
        let s = cinder::get_snapshot(d, call, sid).await?;
        let snap_gib = s.volume_size.div_ceil(1 << 30);
        if let Some(n) = size {
            if n < snap_gib {
                return Err(bad(format!(
                    "Invalid input received: Volume size '{n}'GB cannot be smaller than the snapshot size {snap_gib}GB. They must be >= original snapshot size."
                )));
            }
        }
        let shown = cinder::shown_status(d, call, &s).await?;
        if shown != "available" {
            return Err(bad(format!(
                "Invalid snapshot: Originating snapshot status must be one of 'available' values, but is {shown}."
            )));
        }
        let req = VolumeFromSnapshot {
            snapshot: s.id.clone(),
            name,
            description: description.clone(),
            zone,
            size_gib: size.filter(|n| *n > snap_gib),
            instance_id: None,
        };
        d.ctx.service.restore_volume(&caller, &req).await?.1
    } else {
        let size = size.ok_or_else(|| bad("Invalid input received: size is required"))?;
        let req = CreateVolumes {
            zone,
            name,
            description: description.clone(),
            size_gib: size,
            count: 1,
            ..Default::default()
        };
        let (_, mut vols) = d.ctx.service.create_volumes(&caller, req).await?;
        vols.pop().ok_or_else(|| bad("no volume created"))?
    };
    let shown = vol;
    Ok(json_response(StatusCode::ACCEPTED, json!({"volume": render(call, &shown, VolView::Created)})))
}

async fn update(d: &OpenStack, call: &Call, id: &str) -> OsResult<Response> {
    let v = get_volume(d, call, id).await?;
    let body = call.json()?;
    let o = envelope(&body, "volume")?;
    const ALLOWED: &[&str] = &["name", "description", "display_name", "display_description", "metadata"];
    if o.is_empty() {
        return Err(bad("Invalid input received: volume must have at least one property."));
    }
    if let Some(k) = o.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input received: Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let name = opt_text(o, &["name", "display_name"])?;
    let description = opt_text(o, &["description", "display_description"])?;
    let v = d.ctx.service.modify_volume(&call.auth.caller(), &v.id, name.as_deref(), description.as_deref()).await?;
    Ok(json_response(StatusCode::OK, json!({"volume": render(call, &v, VolView::Created)})))
}

async fn delete(d: &OpenStack, call: &Call, v: &Volume, cascade: bool, force: bool) -> OsResult<()> {
    let shown = status(call, v);
    let vid = wire::uuid(Kind::Volume, &v.id);
    if !force && !matches!(shown, "available" | "error") {
        return Err(bad(format!(
            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer. (volume {vid} is {shown})"
        )));
    }
    let snaps = cinder::all_snapshots(d, call, Some(&v.id)).await?;
    let caller = call.auth.caller();
    if !snaps.is_empty() && !cascade {
        return Err(bad(format!(
            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer. (volume {vid} has snapshots)"
        )));
    }
    if snaps.is_empty() {
        d.ctx.service.delete_volumes(&caller, std::slice::from_ref(&v.id)).await?;
        return Ok(());
    }
    // The points and the volume go in one job: all of it, or nothing.
    d.ctx.service.delete_volume_cascade(&caller, &v.id).await?;
    Ok(())
}

fn no_such_action(name: &str) -> OsError {
    bad(format!("There is no such action: {name}. Verify the request body and Content-Type header and try again."))
}

async fn action(d: &OpenStack, call: &Call, id: &str) -> OsResult<Response> {
    let body = call.json()?;
    let o = body.as_object().filter(|o| o.len() == 1).ok_or_else(|| bad("Malformed request body"))?;
    let (name, arg) = o.iter().next().ok_or_else(|| bad("Malformed request body"))?;
    if name == "revert" && !(call.flavour == Flavour::Cinder && call.version.at_least(3, 40)) {
        return Err(OsError::NotFound("The resource could not be found.".into()));
    }
    let v = get_volume(d, call, id).await?;
    let vid = wire::uuid(Kind::Volume, &v.id);
    match name.as_str() {
        "os-extend" => {
            let n =
                parse_size(arg.get("new_size"))?.ok_or_else(|| bad("Invalid input received: new_size is required"))?;
            let shown = status(call, &v);
            let in_use_ok = call.flavour == Flavour::Cinder && call.version.at_least(3, 42);
            if !(shown == "available" || shown == "in-use" && in_use_ok) {
                return Err(bad(format!(
                    "Invalid volume: Volume {vid} status must be 'available' or 'in-use' to extend, currently {shown}."
                )));
            }
            if n <= v.size_gib() {
                return Err(bad(format!(
                    "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {n})",
                    v.size_gib()
                )));
            }
            d.ctx.service.resize_volume(&call.auth.caller(), &v.id, n).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        "revert" => revert(d, call, &v, arg).await,
        "os-force_delete" => {
            delete(d, call, &v, false, true).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}

/// Revert to the newest snapshot, with Cinder's checks in order (§6.4).
async fn revert(d: &OpenStack, call: &Call, v: &Volume, arg: &Value) -> OsResult<Response> {
    let vid = wire::uuid(Kind::Volume, &v.id);
    let snaps = cinder::all_snapshots(d, call, Some(&v.id)).await?;
    if snaps.is_empty() {
        return Err(bad(format!("Invalid volume: Volume {vid} doesn't have any snapshots.")));
    }
    let latest = snaps.iter().max_by(|a, b| (a.create_time, &a.id).cmp(&(b.create_time, &b.id))).unwrap();
    let given = arg.get("snapshot_id").and_then(Value::as_str).unwrap_or("None");
    let given_bare = wire::from_wire(Kind::Snapshot, given);
    let sid = wire::uuid(Kind::Snapshot, &latest.id);
    if given_bare != latest.id {
        return Err(bad(format!(
            "Invalid snapshot: Specified snapshot {given} is None or not the latest one of volume {vid}."
        )));
    }
    if v.size_gib() != latest.volume_size.div_ceil(1 << 30) {
        return Err(bad(format!(
            "Invalid volume: Can't revert volume {vid} to its latest snapshot {sid}. The volume size must be equal to the snapshot size."
        )));
    }
    if status(call, v) != "available" {
        return Err(OsError::Conflict(format!(
            "Can't revert volume {vid} to its latest snapshot {sid}. Volume's status must be 'available'."
        )));
    }
    if cinder::shown_status(d, call, latest).await? != "available" {
        return Err(OsError::Conflict(format!(
            "Can't revert volume {vid} to its latest snapshot {sid}. Snapshot's status must be 'available'."
        )));
    }
    d.ctx.service.apply_snapshot(&call.auth.caller(), &latest.id).await?;
    Ok(empty(StatusCode::ACCEPTED))
}
