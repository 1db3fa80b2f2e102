//! Parse the request's parameters, call the service, render the result (dialects.md §5.4).
//! No business rules here: the service owns them; this file only speaks Tencent.

use std::collections::BTreeMap;

use std::time::Duration;

use axum::http::{header, Method};
use axum::response::Response;
use disksnap_api_common::encode::parse_pairs;
use disksnap_api_common::{
    pipeline, Dialect, DialectError, EndpointName, KeyKind, RawRequest, RequestId, Verified, MAX_LIST_ITEMS,
};
use disksnap_service::{
    ids, Caller, CreateSnapshots, CreateVolumes, DeleteScope, Kind, Service, ServiceError, SnapshotFilter,
    SnapshotStatus, VolumeFilter, VolumeKind, VolumeStatus,
};

use crate::error::{json_200, TencentError};
use crate::router::Endpoint;
use crate::signature::{verify, Params};
use crate::wire::{self, success};
use crate::Tencent;

type Result<T> = std::result::Result<T, TencentError>;

/// Longest `snapshotName` (ModifySnapshot's documented limit, applied to CreateSnapshot too).
const MAX_NAME_CHARS: usize = 60;
/// `snapshotName` when CreateSnapshot gets none (the vendor's Chinese default, "Unnamed").
const DEFAULT_SNAPSHOT_NAME: &str = "未命名";
const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 100;

/// What every answer needs: the `Host` the client signed, and the parameters once read
/// (by the verify step).
pub struct Frame {
    host: String,
    params: Params,
}

impl EndpointName for Endpoint {
    fn name(&self) -> String {
        Endpoint::name(*self).to_string()
    }
}

impl DialectError for TencentError {
    fn unreadable(why: String) -> Self {
        TencentError::InvalidCommon(why)
    }
    fn is_internal(&self) -> bool {
        TencentError::is_internal(self)
    }
    fn code(&self) -> String {
        TencentError::code(self).0.to_string()
    }
}

impl Dialect for Tencent {
    const NAME: &'static str = "tencent";
    const KEY_KIND: KeyKind = crate::KEYS;
    const CLOCK_WINDOW: Duration = crate::CLOCK_WINDOW;
    type Frame = Frame;
    type Caller = Verified;

    fn show_id(kind: Kind, bare: &str) -> String {
        wire::show(kind, bare)
    }

    type Endpoint = Endpoint;
    type Error = TencentError;

    fn frame(&self, raw: &RawRequest) -> Frame {
        // An HTTP/2 request's `:authority` is its Host here (RawRequest::read_or_head).
        let host = raw.header(header::HOST.as_str()).unwrap_or("").to_string();
        Frame { host, params: Params::default() }
    }

    async fn verify(&self, raw: &RawRequest, f: &mut Frame) -> Result<Verified> {
        f.params = parameters(raw)?;
        if f.host.is_empty() {
            return Err(TencentError::InvalidCommon(
                "the request has no Host header; it is part of the signature".into(),
            ));
        }
        verify(&self.ctx, raw.method.as_str(), &f.host, &raw.path, &f.params).await
    }

    fn endpoint(&self, _raw: &RawRequest, f: &mut Frame, _who: &Verified) -> Result<Endpoint> {
        let p = Args(&f.params);
        let action =
            p.get("Action").ok_or_else(|| TencentError::InvalidCommon("missing common parameter Action".into()))?;
        Endpoint::from_action(action).ok_or_else(|| TencentError::UnsupportedAction(action.to_string()))
    }

    async fn handle(&self, c: pipeline::Call<'_, Self>) -> Result<Response> {
        let p = Args(&c.frame.params);
        let svc = &self.ctx.service;
        let zone = match p.get("Region") {
            Some(r) => svc.resolve_zone(r).map_err(|_| TencentError::UnknownRegion(r.to_string()))?,
            None => svc.default_zone(),
        };
        let caller = c.caller.caller();
        let call = Call { svc, caller: &caller, p, zone, request_id: &c.request_id };
        match c.endpoint {
            Endpoint::DescribeSnapshots => call.describe_snapshots().await,
            Endpoint::CreateSnapshot => call.create_snapshot().await,
            Endpoint::DeleteSnapshot => call.delete_snapshot().await,
            Endpoint::ModifySnapshot => call.modify_snapshot().await,
            Endpoint::ApplySnapshot => call.apply_snapshot().await,
            Endpoint::DescribeCbsStorages => call.describe_cbs_storages().await,
            Endpoint::CreateCbsStorages => call.create_cbs_storages().await,
        }
    }

    fn error_response(&self, _f: &Frame, e: &TencentError, request_id: &RequestId) -> Response {
        e.render(request_id)
    }
}

/// The request's parameters: the query for GET, the form body only for POST (the query of a
/// POST is ignored, as the vendor documents).
fn parameters(raw: &RawRequest) -> Result<Params> {
    let text = if raw.method == Method::GET {
        raw.query.clone()
    } else if raw.method == Method::POST {
        if !raw.body.is_empty() && !raw.body_is_form() {
            return Err(TencentError::InvalidCommon(
                "a POST carries its parameters as an application/x-www-form-urlencoded body".into(),
            ));
        }
        String::from_utf8(raw.body.to_vec())
            .map_err(|_| TencentError::InvalidCommon("the form body is not UTF-8".into()))?
    } else {
        return Err(TencentError::InvalidCommon(format!(
            "method {} is not supported: use GET (parameters in the query) or POST (parameters in a form body)",
            raw.method
        )));
    };
    Params::from_pairs(parse_pairs(&text, |_| false))
}

/// Typed reads of action parameters; an empty value means "not given".
#[derive(Clone, Copy)]
struct Args<'a>(&'a Params);

impl<'a> Args<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.raw(key).filter(|v| !v.is_empty())
    }

    fn required(&self, key: &str) -> Result<&'a str> {
        self.get(key).ok_or_else(|| TencentError::invalid(key, "is required"))
    }

    fn int(&self, key: &str) -> Result<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| TencentError::invalid(key, format!("must be an integer, got {v:?}")))
            })
            .transpose()
    }

    /// `key.0`, `key.1`, … (0-based, in index order); a bare `key=v` counts as one element.
    /// More than [`MAX_LIST_ITEMS`] items is an invalid parameter.
    fn list(&self, key: &str) -> Result<Vec<String>> {
        let mut items: Vec<(usize, String)> = Vec::new();
        let dotted = format!("{key}.");
        for (k, v) in self.0 .0.range(key.to_string()..) {
            let index = if k == key {
                0
            } else if let Some(rest) = k.strip_prefix(&dotted) {
                rest.parse::<usize>()
                    .map_err(|_| TencentError::invalid(k, format!("list items are {key}.0, {key}.1, …")))?
            } else if k.starts_with(key) {
                continue; // a longer name sharing the prefix (storageIdsX)
            } else {
                break;
            };
            if !v.is_empty() {
                items.push((index, v.clone()));
            }
        }
        if items.len() > MAX_LIST_ITEMS {
            return Err(TencentError::invalid(
                &format!("{key}.n"),
                format!("has {} items; at most {MAX_LIST_ITEMS} are accepted in one request", items.len()),
            ));
        }
        items.sort_by_key(|(i, _)| *i);
        Ok(items.into_iter().map(|(_, v)| v).collect())
    }

    /// `offset` (default 0) and `limit` (default 20; above 100 clamped to 100).
    fn page(&self) -> Result<(u64, u64)> {
        let offset = match self.int("offset")? {
            None => 0,
            Some(n) if n >= 0 => n as u64,
            Some(n) => return Err(TencentError::invalid("offset", format!("must be 0 or more, got {n}"))),
        };
        let limit = match self.int("limit")? {
            None => DEFAULT_LIMIT,
            Some(n) if n >= 1 => (n as u64).min(MAX_LIMIT),
            Some(n) => {
                return Err(TencentError::invalid("limit", format!("must be 1 to {MAX_LIMIT}, got {n}")));
            }
        };
        Ok((offset, limit))
    }

    fn name(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            Some(n) if n.chars().count() > MAX_NAME_CHARS => {
                Err(TencentError::invalid(key, format!("at most {MAX_NAME_CHARS} characters")))
            }
            other => Ok(other),
        }
    }
}

/// An id parameter that must name a resource of `kind`: any vendor's rendering is accepted
/// (dialects.md, the ID rule), but not Tencent's own prefix of another kind (`disk-…` given as
/// a snapshot), which is malformed here as it is at Tencent (9003).
fn id_param(key: &str, kind: Kind, text: &str) -> Result<String> {
    match ids::read_with(kind, text, wire::prefix) {
        Ok(_) => Ok(text.to_string()),
        Err(ids::IdError::WrongKind(named)) => Err(TencentError::invalid(
            key,
            format!("{text:?} is a {named} id; a {kind} id is like {}k3x9a2bq", wire::prefix(kind)),
        )),
        Err(ids::IdError::Malformed) => {
            Err(TencentError::invalid(key, format!("{text:?} is not a {kind} id like {}k3x9a2bq", wire::prefix(kind))))
        }
    }
}

fn id_list(p: &Args, key: &str, kind: Kind) -> Result<Vec<String>> {
    p.list(key)?.into_iter().enumerate().map(|(i, v)| id_param(&format!("{key}.{i}"), kind, &v)).collect()
}

fn respond(body: &impl serde::Serialize) -> Result<Response> {
    Ok(json_200(body))
}

struct Call<'a> {
    svc: &'a Service,
    caller: &'a Caller,
    p: Args<'a>,
    /// `Region` resolved, or the default zone.
    zone: String,
    request_id: &'a RequestId,
}

impl Call<'_> {
    /// A snapshot this dialect shows (deleted and deleting points are not found here).
    async fn visible_snapshot(&self, id: &str) -> Result<disksnap_service::Snapshot> {
        let s = self.svc.snapshot(self.caller, id).await?;
        if wire::snapshot_status(&s).is_none() {
            return Err(ServiceError::not_found(Kind::Snapshot, id).into());
        }
        Ok(s)
    }

    async fn describe_snapshots(&self) -> Result<Response> {
        let p = self.p;
        let kind = p
            .get("diskType")
            .map(|d| wire::parse_disk_type(d).ok_or_else(|| TencentError::invalid("diskType", "must be root or data")))
            .transpose()?;
        let project = p.int("projectId")?;
        let volume_ids = id_list(&p, "storageIds", Kind::Volume)?;
        let snapshot_ids = id_list(&p, "snapshotIds", Kind::Snapshot)?;
        let (offset, limit) = p.page()?;
        if project.is_some_and(|x| x != 0) {
            // Everything is in the default project 0.
            return respond(&success(wire::SnapshotList { total_count: 0, snapshot_set: vec![] }));
        }
        let q = SnapshotFilter {
            ids: snapshot_ids,
            volume_ids,
            statuses: vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()],
            // A point being deleted is gone as far as this dialect tells (wire::snapshot_status):
            // left out by the store's query, so the total is one count at one instant. Taking
            // the page's deleting points off a count read apart was off by one whenever a delete
            // settled between the two reads, and by every deleting point beyond the page
            // (apibench's write stream, issue 16).
            not_transitions: vec![disksnap_service::SnapshotTransition::Deleting.into()],
            zone: Some(self.zone.clone()),
            volume_kind: kind.map(String::from),
            offset,
            limit,
            ..Default::default()
        };
        // The whole body (this dialect's success bodies carry no request id) is kept in the
        // service's page cache (issue 16) while nothing it shows changes.
        let key = self.svc.snapshot_page_key(self.caller, &q, "tencent.v2")?;
        let (body, _) = self
            .svc
            .page_cached(key, || async {
                let (items, total) = self.svc.snapshots(self.caller, &q).await?;
                // None now only for what the filter leaves out already (kept as a guard).
                let mut hidden = 0;
                let set: Vec<wire::SnapshotItem> = items
                    .iter()
                    .filter_map(|s| match wire::snapshot_status(s) {
                        Some(status) => Some(wire::SnapshotItem::new(s, status)),
                        None => {
                            hidden += 1; // being deleted: gone as far as this dialect tells
                            None
                        }
                    })
                    .collect();
                let total = total.saturating_sub(hidden);
                let body = success(wire::SnapshotList { total_count: total, snapshot_set: set });
                let bytes = serde_json::to_vec(&body).map_err(|e| {
                    ServiceError::Internal(format!("tencent: the snapshot list could not be encoded: {e}"))
                })?;
                Ok::<_, TencentError>(((bytes.into(), total), true))
            })
            .await?;
        // The cached bytes themselves, not a copy.
        Ok(crate::error::json_bytes_200(axum::body::Bytes::from_owner(body)))
    }

    async fn create_snapshot(&self) -> Result<Response> {
        let storage = id_param("storageId", Kind::Volume, self.p.required("storageId")?)?;
        let name = self.p.name("snapshotName")?.unwrap_or(DEFAULT_SNAPSHOT_NAME);
        let req = CreateSnapshots { volumes: vec![storage], name: name.to_string(), ..Default::default() };
        let (_job, snaps) = self.svc.create_snapshots(self.caller, req).await?;
        let id = snaps.first().map(|s| wire::show(Kind::Snapshot, &s.id)).unwrap_or_default();
        respond(&success(wire::SnapshotCreated { snapshot_id: id }))
    }

    /// Each id on its own: `detail` tells each one's outcome; 0 when all were deleted, 5400 when
    /// some, 5100 when none (dialects.md §5.6).
    async fn delete_snapshot(&self) -> Result<Response> {
        let ids_ = self.p.list("snapshotIds")?;
        if ids_.is_empty() {
            return Err(TencentError::invalid("snapshotIds.0", "is required"));
        }
        let mut detail: BTreeMap<String, wire::ItemResult> = BTreeMap::new();
        for id in ids_ {
            if detail.contains_key(&id) {
                continue;
            }
            // An id that cannot be a snapshot's (Tencent's `disk-…` too) is this item's "snap not exist".
            let outcome = match ids::read_with(Kind::Snapshot, &id, wire::prefix) {
                Err(_) => Err(ServiceError::not_found(Kind::Snapshot, &id)),
                Ok(_) => match self.visible_snapshot(&id).await {
                    Ok(_) => {
                        self.svc.delete_snapshots(self.caller, std::slice::from_ref(&id), DeleteScope::Points).await
                    }
                    Err(TencentError::Service(e)) => Err(e),
                    Err(other) => return Err(other),
                },
            };
            let item = match outcome {
                Ok(_) => wire::ItemResult { code: 0, message: "return successfully!".into() },
                Err(ServiceError::NotFound { .. }) => {
                    wire::ItemResult { code: 16003, message: "snap not exist".into() }
                }
                Err(e) => {
                    let e = TencentError::Service(e);
                    if e.is_internal() {
                        tracing::error!(request_id = %self.request_id.0, snapshot = %id, error = ?e, "tencent: internal error");
                    }
                    wire::ItemResult { code: e.code().0, message: e.message(self.request_id) }
                }
            };
            detail.insert(id, item);
        }
        let failed = detail.values().filter(|r| r.code != 0).count();
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            code: i64,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            code_desc: Option<&'static str>,
            detail: BTreeMap<String, wire::ItemResult>,
        }
        let (code, message, code_desc) = match failed {
            0 => (0, String::new(), None),
            n if n == detail.len() => {
                (5100, "no snapshot was deleted; each id's reason is in detail".to_string(), Some("FailedOperation"))
            }
            n => (
                5400,
                format!("{n} of {} snapshots were not deleted; see detail", detail.len()),
                Some("PartialSuccess"),
            ),
        };
        respond(&Body { code, message, code_desc, detail })
    }

    async fn modify_snapshot(&self) -> Result<Response> {
        let id = id_param("snapshotId", Kind::Snapshot, self.p.required("snapshotId")?)?;
        let name = self.p.name("snapshotName")?.ok_or_else(|| TencentError::invalid("snapshotName", "is required"))?;
        self.visible_snapshot(&id).await?;
        self.svc.modify_snapshot(self.caller, &id, Some(name), None).await?;
        respond(&success(wire::Empty {}))
    }

    /// Roll the snapshot's own disk back to it.
    async fn apply_snapshot(&self) -> Result<Response> {
        let id = id_param("snapshotId", Kind::Snapshot, self.p.required("snapshotId")?)?;
        let storage = id_param("storageId", Kind::Volume, self.p.required("storageId")?)?;
        let snap = self.visible_snapshot(&id).await?;
        if ids::parse(Kind::Volume, &storage).as_deref() != Some(snap.volume_id.as_str()) {
            self.svc.volume(self.caller, &storage).await?; // an unknown disk is "not found"
            return Err(TencentError::invalid(
                "storageId",
                format!(
                    "snapshot {} was taken of disk {}, not {storage}; a disk rolls back only to its own snapshots",
                    wire::show(Kind::Snapshot, &snap.id),
                    wire::show(Kind::Volume, &snap.volume_id)
                ),
            ));
        }
        let job = self.svc.apply_snapshot(self.caller, &id).await?;
        respond(&success(wire::Detail { detail: wire::TaskId { request_id: wire::task_id(&job.id) } }))
    }

    async fn describe_cbs_storages(&self) -> Result<Response> {
        let p = self.p;
        let mut kind = p
            .get("diskType")
            .map(|d| wire::parse_disk_type(d).ok_or_else(|| TencentError::invalid("diskType", "must be root or data")))
            .transpose()?;
        let mut nothing = false; // a filter no disk can match
        match p.get("payMode") {
            None | Some("postPay") => {}
            Some("prePay") => nothing = true,
            Some(other) => {
                return Err(TencentError::invalid("payMode", format!("must be prePay or postPay, got {other:?}")))
            }
        }
        match p.get("storageType") {
            None | Some("cloudBasic") => {}
            Some("cloudSSD") | Some("cloudPremium") => nothing = true,
            Some(other) => {
                return Err(TencentError::invalid(
                    "storageType",
                    format!("must be cloudBasic or cloudSSD, got {other:?}"),
                ))
            }
        }
        match p.int("portable")? {
            None => {}
            Some(v @ (0 | 1)) => {
                let k = if v == 1 { VolumeKind::Data } else { VolumeKind::System };
                nothing |= kind.is_some_and(|given| given != k);
                kind = Some(k);
            }
            Some(v) => return Err(TencentError::invalid("portable", format!("must be 0 or 1, got {v}"))),
        }
        nothing |= p.int("projectId")?.is_some_and(|x| x != 0);
        let zones = self.svc.zones();
        let mut zone = self.zone.clone();
        if let Some(z) = p.int("zoneId")? {
            match wire::zone_by_id(zones, z) {
                Some(c) if c.name == zone => {}
                _ => nothing = true,
            }
            zone = wire::zone_by_id(zones, z).map(|c| c.name.clone()).unwrap_or(zone);
        }
        let volume_ids = id_list(&p, "storageIds", Kind::Volume)?;
        let instance_ids = id_list(&p, "uInstanceIds", Kind::Instance)?;
        let wanted_status = p.list("storageStatus")?;
        const STATUSES: &[&str] =
            &["normal", "toRecycle", "attaching", "detaching", "snapshotCreating", "rollback", "expanding"];
        if let Some(bad) = wanted_status.iter().find(|s| !STATUSES.contains(&s.as_str())) {
            return Err(TencentError::invalid(
                "storageStatus",
                format!("{bad:?} is not one of {}", STATUSES.join(", ")),
            ));
        }
        let (offset, limit) = p.page()?;
        if nothing {
            return respond(&success(wire::StorageList { total_count: 0, storage_set: vec![] }));
        }
        let q = VolumeFilter {
            ids: volume_ids,
            instance_ids,
            zone: Some(zone),
            kind: kind.map(String::from),
            statuses: vec![VolumeStatus::Available.into(), VolumeStatus::InUse.into()],
            offset,
            limit,
            ..Default::default()
        };
        let (items, total) = self.svc.volumes(self.caller, &q).await?;
        let mut hidden = 0;
        let set: Vec<wire::StorageItem> = items
            .iter()
            .filter_map(|v| match wire::storage_status(v) {
                Some(s) if wanted_status.is_empty() || wanted_status.iter().any(|w| w == s) => {
                    Some(wire::StorageItem::new(v, s, zones))
                }
                _ => {
                    hidden += 1;
                    None
                }
            })
            .collect();
        respond(&success(wire::StorageList { total_count: total.saturating_sub(hidden), storage_set: set }))
    }

    /// Blank data disks, or disks holding a data-disk snapshot's bytes (`snapshotId`).
    async fn create_cbs_storages(&self) -> Result<Response> {
        let p = self.p;
        match p.get("storageType") {
            None | Some("cloudBasic") | Some("cloudSSD") | Some("cloudPremium") => {}
            Some(other) => {
                return Err(TencentError::invalid(
                    "storageType",
                    format!("must be cloudBasic or cloudSSD, got {other:?}"),
                ))
            }
        }
        match p.get("payMode") {
            None | Some("prePay") | Some("postPay") => {}
            Some(other) => {
                return Err(TencentError::invalid("payMode", format!("must be prePay or postPay, got {other:?}")))
            }
        }
        p.int("period")?;
        if p.int("projectId")?.is_some_and(|x| x != 0) {
            return Err(TencentError::invalid("projectId", "disksnap has only the default project 0"));
        }
        let count = match p.int("goodsNum")? {
            None => 1,
            Some(n @ 1..=100) => n as u32,
            Some(n) => return Err(TencentError::invalid("goodsNum", format!("must be 1 to 100, got {n}"))),
        };
        let zone_id = p.int("zoneId")?.ok_or_else(|| TencentError::invalid("zoneId", "is required"))?;
        let zones = self.svc.zones();
        let zone = wire::zone_by_id(zones, zone_id).map(|z| z.name.clone()).ok_or_else(|| {
            let known: Vec<String> =
                zones.iter().map(|z| format!("{} ({})", wire::zone_id(zones, &z.name), z.name)).collect();
            TencentError::invalid("zoneId", format!("{zone_id} is not a zone here; zones: {}", known.join(", ")))
        })?;
        let size = match p.int("storageSize")? {
            None => None,
            Some(n) if (10..=4000).contains(&n) && n % 10 == 0 => Some(n as u64),
            Some(n) => {
                return Err(TencentError::invalid(
                    "storageSize",
                    format!("must be 10 to 4000 GB in steps of 10, got {n}"),
                ))
            }
        };
        let name = p.get("storageName").unwrap_or("");
        let mut created = Vec::new();
        match p.get("snapshotId") {
            Some(snap) => {
                let id = id_param("snapshotId", Kind::Snapshot, snap)?;
                let s = self.visible_snapshot(&id).await?;
                if s.volume_kind != VolumeKind::Data {
                    return Err(TencentError::DiskTypeInvalid(format!(
                        "snapshot {} is of a root disk; only a data-disk snapshot can create a CBS disk",
                        wire::show(Kind::Snapshot, &s.id)
                    )));
                }
                if let Some(gb) = size {
                    if gb < wire::size_gb(s.volume_size) {
                        return Err(TencentError::invalid(
                            "storageSize",
                            format!("must be at least the snapshot's {} GB", wire::size_gb(s.volume_size)),
                        ));
                    }
                }
                for _ in 0..count {
                    let (_job, v) =
                        self.svc.create_volume_from_snapshot_sized(self.caller, &id, name, Some(&zone), size).await?;
                    created.push(wire::show(Kind::Volume, &v.id));
                }
            }
            None => {
                let size_gib =
                    size.ok_or_else(|| TencentError::invalid("storageSize", "is required without snapshotId"))?;
                let req = CreateVolumes {
                    zone: Some(zone),
                    name: name.to_string(),
                    size_gib,
                    kind: Some(VolumeKind::Data),
                    count,
                    instance_id: None,
                    ..Default::default()
                };
                let (_job, vols) = self.svc.create_volumes(self.caller, req).await?;
                created.extend(vols.iter().map(|v| wire::show(Kind::Volume, &v.id)));
            }
        }
        respond(&success(wire::StoragesCreated { storage_ids: created }))
    }
}

/// Entry points for the fuzz targets (fuzz/): the request's parameter reader and the typed
/// reads the actions make, run without a service behind them.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    pub fn parameters(raw: &RawRequest) -> Result<Params> {
        super::parameters(raw)
    }

    /// Every typed read an action makes of its parameters, each on its own (an error from one
    /// does not stop the others).
    pub fn read_args(params: &Params) {
        let p = Args(params);
        let _ = p.required("Action");
        let _ = p.page();
        let _ = p.name("snapshotName");
        for key in ["projectId", "portable", "zoneId", "period", "goodsNum", "storageSize"] {
            let _ = p.int(key);
        }
        let _ = id_list(&p, "storageIds", Kind::Volume);
        let _ = id_list(&p, "snapshotIds", Kind::Snapshot);
        let _ = id_list(&p, "uInstanceIds", Kind::Instance);
        let _ = p.list("storageStatus");
        for key in ["storageId", "snapshotId"] {
            if let Some(v) = p.get(key) {
                let kind = if key == "storageId" { Kind::Volume } else { Kind::Snapshot };
                let _ = id_param(key, kind, v);
            }
        }
        if let Some(t) = p.get("diskType") {
            let _ = wire::parse_disk_type(t);
        }
    }
}
