//! Cinder snapshots: list/detail, create, show, update, delete, metadata and actions
//! (dialect-openstack.md §5). The `/v2` paths serve the same with EVS's status words.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use disksnap_service::{
    CreateSnapshots, DeleteScope, Kind, ServiceError, Shown, Snapshot, SnapshotFilter, SnapshotStatus,
    SnapshotTransition, SortKey,
};

use crate::error::{OsError, OsResult};
use crate::listing::{self, Target};
use crate::router::{ItemOp, MetaOp, Op};
use crate::wire::{self, Flavour, Override, SnapCtx, SnapView};
use crate::{empty, json_response, override_in, Call, OpenStack};

/// Every snapshot status word Cinder knows (`os-reset_status` accepts these).
pub const CINDER_STATUSES: &[&str] = &[
    "error",
    "available",
    "creating",
    "deleting",
    "deleted",
    "updating",
    "error_deleting",
    "unmanaging",
    "backing-up",
    "restoring",
];

pub const RESERVED_PREFIX: &str = "__system__";

/// Every live snapshot of the caller's account (creating or available; deleted ones are hidden).
pub async fn all_snapshots(d: &OpenStack, call: &Call, volume: Option<&str>) -> OsResult<Vec<Snapshot>> {
    let q = SnapshotFilter {
        statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
        volume_ids: volume.map(|v| vec![v.to_string()]).unwrap_or_default(),
        ..Default::default()
    };
    Ok(d.ctx.service.all_snapshots(&call.auth.caller(), &q).await?)
}

/// One snapshot of the caller's, hidden once deleted.
pub async fn get_snapshot(d: &OpenStack, call: &Call, id: &str) -> OsResult<Snapshot> {
    let bare = wire::from_wire(Kind::Snapshot, id);
    let s = d.ctx.service.snapshot(&call.auth.caller(), &bare).await.map_err(|e| not_found_as(e, id))?;
    if matches!(s.status, SnapshotStatus::Deleted | SnapshotStatus::Ceased) {
        return Err(OsError::NotFound(format!("Snapshot {id} could not be found.")));
    }
    Ok(s)
}

/// A not-found error naming the id as the client sent it.
pub fn not_found_as(e: ServiceError, id: &str) -> OsError {
    match e {
        ServiceError::NotFound { kind, .. } => {
            let word = if kind == Kind::Volume { "Volume" } else { "Snapshot" };
            OsError::NotFound(format!("{word} {id} could not be found."))
        }
        other => OsError::Service(other),
    }
}

pub fn snap_ctx<'a>(call: &'a Call) -> SnapCtx<'a> {
    SnapCtx {
        project_id: &call.auth.project_id,
        user_id: &call.auth.user_id,
        version: call.version,
        flavour: call.flavour,
    }
}

pub async fn render(d: &OpenStack, call: &Call, s: &Snapshot, view: SnapView) -> OsResult<Value> {
    let meta = d.ctx.service.snapshot_metadata(&call.auth.caller(), &s.id).await?;
    let o = d.override_of(&call.auth.account, s).await?;
    Ok(wire::snapshot(s, &meta, o.as_ref(), view, &snap_ctx(call)))
}

/// The status a snapshot shows the caller: its override if one is alive, else its own.
pub async fn shown_status(d: &OpenStack, call: &Call, s: &Snapshot) -> OsResult<String> {
    let o = d.override_of(&call.auth.account, s).await?;
    Ok(o.map(|o| o.status).unwrap_or_else(|| wire::snapshot_status(s, call.flavour).to_string()))
}

pub async fn handle(d: &OpenStack, call: &Call, op: Op) -> OsResult<Response> {
    match op {
        Op::List { detail } => list(d, call, detail).await,
        Op::Create => create(d, call).await,
        Op::Show(id) => {
            let s = get_snapshot(d, call, &id).await?;
            Ok(json_response(StatusCode::OK, json!({"snapshot": render(d, call, &s, SnapView::Detail).await?})))
        }
        Op::Update(id) => update(d, call, &id).await,
        Op::Delete(id) => {
            let s = get_snapshot(d, call, &id).await?;
            let shown = shown_status(d, call, &s).await?;
            if !matches!(shown.as_str(), "available" | "error") {
                return Err(OsError::BadRequest(format!(
                    "Invalid snapshot: Snapshot status must be available or error, but is {shown}."
                )));
            }
            delete(d, call, &s).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        Op::Metadata(id, mop) => metadata(d, call, &id, mop).await,
        Op::MetadataItem(id, key, iop) => metadata_item(d, call, &id, &key, iop).await,
        Op::Action(id) => action(d, call, &id).await,
        Op::Summary => Err(OsError::NotFound("Snapshot summary could not be found.".into())),
    }
}

async fn delete(d: &OpenStack, call: &Call, s: &Snapshot) -> OsResult<()> {
    d.ctx.service.delete_snapshots(&call.auth.caller(), std::slice::from_ref(&s.id), DeleteScope::Points).await?;
    d.set_override(&call.auth.account, &s.id, None).await?;
    Ok(())
}

async fn list(d: &OpenStack, call: &Call, detail: bool) -> OsResult<Response> {
    let strict = call.flavour == Flavour::Cinder && call.version.at_least(3, 31);
    let params = listing::parse(&call.query(), Target::Snapshots, call.version, strict)?;
    let what = if detail { "snapshots/detail" } else { "snapshots" };
    crate::page_cache::list_body(d, call, what, |ov| async move {
        let page = list_page(d, call, &params, &[]).await?;
        let view = if detail { SnapView::Detail } else { SnapView::Summary };
        let items = render_page_with(d, call, &page.snaps, view, &ov).await?;
        let mut body = Map::new();
        body.insert("snapshots".into(), items.into());
        if let Some(m) = page.next_marker {
            let href = listing::next_href(&call.base, &call.raw.path, &call.raw.query, &m);
            body.insert("snapshots_links".into(), json!([{"href": href, "rel": "next"}]));
        }
        if params.with_count {
            body.insert("count".into(), page.count.into());
        }
        Ok(Value::Object(body))
    })
    .await
}

/// Render a page of snapshots with their metadata read in one query (not one per item).
pub async fn render_page(d: &OpenStack, call: &Call, snaps: &[Snapshot], view: SnapView) -> OsResult<Vec<Value>> {
    let ov = d.overrides(&call.auth.account).await?;
    render_page_with(d, call, snaps, view, &ov).await
}

/// [`render_page`] with the account's overrides already read.
pub async fn render_page_with(
    d: &OpenStack,
    call: &Call,
    snaps: &[Snapshot],
    view: SnapView,
    ov: &crate::Overrides,
) -> OsResult<Vec<Value>> {
    let ids: Vec<String> = snaps.iter().map(|s| s.id.clone()).collect();
    let metas = d.ctx.service.snapshots_metadata(&call.auth.caller(), &ids).await?;
    let ctx = snap_ctx(call);
    Ok(snaps
        .iter()
        .map(|s| {
            let meta = metas.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
            wire::snapshot(s, meta, override_in(ov, s).as_ref(), view, &ctx)
        })
        .collect())
}

/// One page of a snapshot list (Cinder's `snapshots[/detail]`, EVS's `cloudsnapshots/detail`).
pub struct SnapPage {
    pub snaps: Vec<Snapshot>,
    /// The id (UUID) a next link continues after: set when the page is full, as Cinder's
    /// `_get_collection_links` does (a full last page still gets a link; the next one is empty).
    pub next_marker: Option<String>,
    /// Matches of the filters, ignoring marker/offset/limit; 0 unless `with_count`.
    pub count: usize,
}

/// The page `p` asks for among the caller's live snapshots (and, when `ids` is not empty, only
/// those UUIDs, lower-case): keyset queries on the metadata store's list index, the filters,
/// every Cinder sort key and the status shown (`os-reset_status` overrides included) as SQL, so
/// a page costs about what its items do, at any depth and any account size. The default order
/// (`created_at`, then `id`) reads the index in order; other keys are sorted by the store.
pub async fn list_page(d: &OpenStack, call: &Call, p: &listing::ListParams, ids: &[String]) -> OsResult<SnapPage> {
    let pushed = pushdown(d, call, p, ids).await?;
    indexed_page(d, call, p, pushed).await
}

/// The store query for `p`.
struct Pushed {
    query: SnapshotFilter,
    /// A filter that no live snapshot can match (the marker is still checked).
    nothing: bool,
}

/// The account's overrides as the store reads them: `(bare id, status, set at ms)`.
async fn stored_overrides(d: &OpenStack, call: &Call) -> OsResult<Vec<(String, String, i64)>> {
    let ov = d.overrides(&call.auth.account).await?;
    Ok(ov.into_iter().map(|(id, (o, at))| (id, o.status, at.timestamp_millis())).collect())
}

async fn pushdown(d: &OpenStack, call: &Call, p: &listing::ListParams, ids: &[String]) -> OsResult<Pushed> {
    let (order, sort) = listing::sort_keys(p);
    let mut nothing = p.match_nothing;
    // (`bootable` and `size` are volume filters: never set for snapshots.)
    let mut q = SnapshotFilter {
        statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
        name: p.name.clone(),
        name_contains: p.name_like.clone(),
        description_contains: p.description_like.clone(),
        metadata: p.metadata.clone(),
        order,
        sort,
        ..Default::default()
    };
    if let Some(z) = &p.zone {
        match crate::volumes::exact_zone(d, z) {
            Some(z) => q.zone = Some(z),
            None => nothing = true,
        }
    }
    let by_status = q.sort.iter().any(|s| s.key == SortKey::Shown);
    if by_status || p.status.is_some() {
        // The status shown mixes status, transition and overrides: the store computes it.
        // An override lives until the snapshot's next real change (set at ≥ its status
        // time), which the store checks per row.
        q.shown = Shown { overrides: stored_overrides(d, call).await?, ..wire::snapshot_words(call.flavour) };
    }
    if let Some(word) = &p.status {
        let word = word.to_ascii_lowercase();
        if q.shown.overrides.is_empty() {
            // No override: the inverse of wire::snapshot_status over the live statuses, which
            // the list indexes and the count cache serve.
            use SnapshotTransition as T;
            match (word.as_str(), call.flavour) {
                ("creating", _) => q.statuses = vec![SnapshotStatus::Creating.into()],
                ("available", _) => {
                    q.statuses = vec![SnapshotStatus::Available.into()];
                    q.not_transitions = vec![T::Deleting.into(), T::RollingBack.into()];
                }
                ("deleting", _) => {
                    q.statuses = vec![SnapshotStatus::Available.into()];
                    q.transitions = vec![T::Deleting.into()];
                }
                ("restoring", Flavour::Cinder) | ("rollbacking", Flavour::Evs) => {
                    q.statuses = vec![SnapshotStatus::Available.into()];
                    q.transitions = vec![T::RollingBack.into()];
                }
                _ => nothing = true,
            }
        } else {
            q.shown_in = vec![word];
        }
    }
    // Any rendering of an id filters (a UUID, another dialect's `vol-…`: dialects.md, the ID
    // rule); text that names nothing of the kind matches nothing.
    let bare_of = |kind: Kind, text: &str| disksnap_service::ids::read(kind, text).ok();
    if let Some(v) = &p.volume_id {
        match bare_of(Kind::Volume, v) {
            Some(bare) => q.volume_ids = vec![bare],
            None => nothing = true,
        }
    }
    if !ids.is_empty() {
        q.ids = ids.iter().filter_map(|i| bare_of(Kind::Snapshot, i)).collect();
        nothing |= q.ids.is_empty();
    }
    Ok(Pushed { query: q, nothing })
}

async fn indexed_page(d: &OpenStack, call: &Call, p: &listing::ListParams, pushed: Pushed) -> OsResult<SnapPage> {
    let caller = call.auth.caller();
    let Pushed { query: q, nothing } = pushed;
    let svc = &d.ctx.service;
    let after = listing::marker_cursor(
        p.marker.as_deref(),
        Kind::Snapshot,
        "Snapshot",
        |bare| {
            let caller = &caller;
            async move { svc.snapshot(caller, &bare).await }
        },
        |s: &Snapshot| {
            let live = matches!(s.status, SnapshotStatus::Creating | SnapshotStatus::Available);
            live.then(|| (s.create_time.timestamp_millis(), s.id.clone()))
        },
    )
    .await?;
    let (snaps, next_marker, count) = listing::keyset_page(
        p,
        after,
        nothing,
        disksnap_service::snapshots::MAX_PAGE as usize,
        |w| {
            let q = SnapshotFilter {
                after: w.after,
                offset: w.offset,
                limit: w.limit,
                skip_count: w.skip_count,
                ..q.clone()
            };
            let caller = &caller;
            async move { Ok(svc.snapshots(caller, &q).await?) }
        },
        |s: &Snapshot| (s.create_time.timestamp_millis(), s.id.clone()),
        |s| wire::uuid(Kind::Snapshot, &s.id),
    )
    .await?;
    Ok(SnapPage { snaps, next_marker, count })
}

fn bad(m: impl Into<String>) -> OsError {
    OsError::BadRequest(m.into())
}

/// `{"<key>": {...}}` or 400.
pub fn envelope<'a>(body: &'a Value, key: &str) -> OsResult<&'a Map<String, Value>> {
    body.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("Invalid input received: '{key}' is a required property")))
}

/// A string-or-null field of at most 255 characters.
pub fn opt_text(o: &Map<String, Value>, keys: &[&str]) -> OsResult<Option<String>> {
    for k in keys {
        match o.get(*k) {
            None => continue,
            Some(Value::Null) => return Ok(Some(String::new())),
            Some(Value::String(s)) if s.chars().count() <= 255 => return Ok(Some(s.clone())),
            Some(_) => return Err(bad(format!("Invalid input for field/attribute {k}."))),
        }
    }
    Ok(None)
}

pub fn parse_force(v: Option<&Value>) -> OsResult<Option<bool>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Ok(Some(true)),
            "false" | "f" | "no" | "n" | "off" | "0" => Ok(Some(false)),
            _ => Err(bad(format!("Invalid value '{s}' for force."))),
        },
        Some(_) => Err(bad("Invalid input for field/attribute force.")),
    }
}

/// A metadata object of strings (or null → empty).
pub fn parse_meta(v: Option<&Value>) -> OsResult<Vec<(String, String)>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if !k.is_empty() && k.len() <= 255 && s.len() <= 255 => {
                    if k.starts_with(RESERVED_PREFIX) {
                        Err(bad(format!("Invalid input received: metadata key {k} is reserved.")))
                    } else {
                        Ok((k.clone(), s.clone()))
                    }
                }
                _ => Err(bad("Invalid input for field/attribute metadata.")),
            })
            .collect(),
        Some(_) => Err(bad("Invalid input for field/attribute metadata.")),
    }
}

/// Create one snapshot of a volume, checking Cinder's rules (§5.2); shared with EVS.
pub async fn create_one(
    d: &OpenStack,
    call: &Call,
    o: &Map<String, Value>,
    force_rule_366: bool,
) -> OsResult<Snapshot> {
    let vid = match o.get("volume_id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => return Err(OsError::NotFound("Volume None could not be found.".into())),
        Some(_) => return Err(bad("Invalid input for field/attribute volume_id.")),
    };
    let force = parse_force(o.get("force"))?;
    let name = opt_text(o, &["name", "display_name"])?.unwrap_or_default();
    let description = opt_text(o, &["description", "display_description"])?.unwrap_or_default();
    let meta = parse_meta(o.get("metadata"))?;
    let caller = call.auth.caller();
    let vol =
        d.ctx.service.volume(&caller, &wire::from_wire(Kind::Volume, &vid)).await.map_err(|e| not_found_as(e, &vid))?;
    let status = wire::volume_status(&vol, call.flavour);
    match status {
        "available" => {}
        "in-use" => {
            if force_rule_366 {
                if force == Some(false) {
                    return Err(bad(format!("Invalid volume: Volume {vid} is in-use; force must not be false.")));
                }
            } else if force != Some(true) {
                return Err(bad(format!(
                    "Invalid volume: Volume {vid} status must be available, but current status is: in-use."
                )));
            }
        }
        other => {
            return Err(bad(format!(
                "Invalid volume: Volume {vid} status must be available or in-use, but current status is: {other}."
            )))
        }
    }
    let (_job, mut snaps) = d
        .ctx
        .service
        .create_snapshots(
            &caller,
            CreateSnapshots { volumes: vec![vol.id.clone()], name, description, ..Default::default() },
        )
        .await?;
    let s = snaps.pop().ok_or_else(|| OsError::Service(ServiceError::Internal("no snapshot created".into())))?;
    if !meta.is_empty() {
        let changes: Vec<(String, Option<String>)> = meta.into_iter().map(|(k, v)| (k, Some(v))).collect();
        d.ctx.service.set_snapshot_metadata(&caller, &s.id, &changes).await?;
    }
    Ok(s)
}

async fn create(d: &OpenStack, call: &Call) -> OsResult<Response> {
    let body = call.json()?;
    let o = envelope(&body, "snapshot")?;
    const ALLOWED: &[&str] =
        &["volume_id", "name", "display_name", "description", "display_description", "force", "metadata"];
    if let Some(k) = o.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input received: Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let rule_366 = call.flavour == Flavour::Cinder && call.version.at_least(3, 66);
    let s = create_one(d, call, o, rule_366).await?;
    let v = render(d, call, &s, SnapView::Created).await?;
    Ok(json_response(StatusCode::ACCEPTED, json!({"snapshot": v})))
}

/// Name/description update body (§5.1); shared with EVS.
pub fn parse_update(body: &Value) -> OsResult<(Option<String>, Option<String>)> {
    let o = envelope(body, "snapshot")?;
    const ALLOWED: &[&str] = &["name", "display_name", "description", "display_description"];
    if o.is_empty() {
        return Err(bad("Invalid input received: snapshot must have at least one property."));
    }
    if let Some(k) = o.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input received: Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    Ok((opt_text(o, &["name", "display_name"])?, opt_text(o, &["description", "display_description"])?))
}

async fn update(d: &OpenStack, call: &Call, id: &str) -> OsResult<Response> {
    let s = get_snapshot(d, call, id).await?;
    let (name, description) = parse_update(&call.json()?)?;
    let s = d.ctx.service.modify_snapshot(&call.auth.caller(), &s.id, name.as_deref(), description.as_deref()).await?;
    Ok(json_response(StatusCode::OK, json!({"snapshot": render(d, call, &s, SnapView::Created).await?})))
}

fn meta_map(pairs: &[(String, String)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

async fn metadata(d: &OpenStack, call: &Call, id: &str, op: MetaOp) -> OsResult<Response> {
    let s = get_snapshot(d, call, id).await?;
    let caller = call.auth.caller();
    let current = d.ctx.service.snapshot_metadata(&caller, &s.id).await?;
    let out = match op {
        MetaOp::Get => current,
        MetaOp::Merge | MetaOp::Replace => {
            let body = call.json()?;
            let new = parse_meta(Some(body.get("metadata").ok_or_else(|| bad("Malformed request body: metadata"))?))?;
            let mut changes: Vec<(String, Option<String>)> = Vec::new();
            if op == MetaOp::Replace {
                for (k, _) in &current {
                    if !k.starts_with(RESERVED_PREFIX) && !new.iter().any(|(nk, _)| nk == k) {
                        changes.push((k.clone(), None));
                    }
                }
            }
            changes.extend(new.into_iter().map(|(k, v)| (k, Some(v))));
            if changes.is_empty() {
                current
            } else {
                d.ctx.service.set_snapshot_metadata(&caller, &s.id, &changes).await?
            }
        }
    };
    Ok(json_response(StatusCode::OK, json!({"metadata": meta_map(&out)})))
}

async fn metadata_item(d: &OpenStack, call: &Call, id: &str, key: &str, op: ItemOp) -> OsResult<Response> {
    let s = get_snapshot(d, call, id).await?;
    let caller = call.auth.caller();
    let current = d.ctx.service.snapshot_metadata(&caller, &s.id).await?;
    let missing = || OsError::NotFound(format!("Metadata item was not found: key {key}"));
    match op {
        ItemOp::Get => {
            let v = current.iter().find(|(k, _)| k == key).ok_or_else(missing)?;
            Ok(json_response(StatusCode::OK, json!({"meta": {key: v.1}})))
        }
        ItemOp::Put => {
            let body = call.json()?;
            let meta =
                body.get("meta").and_then(Value::as_object).ok_or_else(|| bad("Malformed request body: meta"))?;
            if meta.len() != 1 || !meta.contains_key(key) {
                return Err(bad("Request body and URI mismatch"));
            }
            let pairs = parse_meta(body.get("meta"))?;
            let changes: Vec<(String, Option<String>)> =
                pairs.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
            d.ctx.service.set_snapshot_metadata(&caller, &s.id, &changes).await?;
            Ok(json_response(StatusCode::OK, json!({"meta": meta_map(&pairs)})))
        }
        ItemOp::Delete => {
            if key.starts_with(RESERVED_PREFIX) {
                return Err(bad(format!("Invalid input received: metadata key {key} is reserved.")));
            }
            current.iter().find(|(k, _)| k == key).ok_or_else(missing)?;
            d.ctx.service.set_snapshot_metadata(&caller, &s.id, &[(key.to_string(), None)]).await?;
            Ok(empty(StatusCode::OK))
        }
    }
}

fn no_such_action(name: &str) -> OsError {
    bad(format!("There is no such action: {name}. Verify the request body and Content-Type header and try again."))
}

async fn action(d: &OpenStack, call: &Call, id: &str) -> OsResult<Response> {
    let body = call.json()?;
    let o = body.as_object().filter(|o| o.len() == 1).ok_or_else(|| bad("Malformed request body"))?;
    let (name, arg) = o.iter().next().ok_or_else(|| bad("Malformed request body"))?;
    let s = get_snapshot(d, call, id).await?;
    let admin_only = || -> OsResult<()> {
        if call.auth.admin {
            Ok(())
        } else {
            Err(OsError::Forbidden(format!("Policy doesn't allow snapshot_extension:{name} to be performed.")))
        }
    };
    match name.as_str() {
        "os-reset_status" => {
            admin_only()?;
            let status = arg.get("status").and_then(Value::as_str).ok_or_else(|| bad("Must specify 'status'"))?;
            let status = status.to_ascii_lowercase();
            if !CINDER_STATUSES.contains(&status.as_str()) {
                return Err(bad(format!("Invalid input received: '{status}' is not a valid status")));
            }
            let real = wire::snapshot_status(&s, call.flavour);
            let o = (status != real).then_some(Override { status, progress: None });
            d.set_override(&call.auth.account, &s.id, o).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        "os-update_snapshot_status" => {
            let status = arg.get("status").and_then(Value::as_str).ok_or_else(|| bad("Must specify 'status'"))?;
            let progress = match arg.get("progress") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => return Err(bad("Invalid input for field/attribute progress.")),
            };
            let current = shown_status(d, call, &s).await?;
            let allowed: &[&str] = match current.as_str() {
                "creating" => &["creating", "available", "error"],
                "deleting" => &["deleting", "error_deleting"],
                _ => &[],
            };
            if !allowed.contains(&status) {
                return Err(bad(format!(
                    "Invalid input received: Snapshot status {current} not allowed for update_snapshot_status"
                )));
            }
            let real = wire::snapshot_status(&s, call.flavour);
            let o = (status != real || progress.is_some()).then(|| Override { status: status.to_string(), progress });
            d.set_override(&call.auth.account, &s.id, o).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        "os-force_delete" => {
            admin_only()?;
            delete(d, call, &s).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        other => Err(no_such_action(other)),
    }
}
