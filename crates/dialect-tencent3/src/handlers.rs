//! The [`Tencent3`] dialect's pipeline steps, and each action: parameters → service → the
//! vendor's answer. No business rules here: what a disk or snapshot may do is the service's.

use std::time::Duration;

use axum::http::{header, Method};
use axum::response::Response;
use chrono::{DateTime, Utc};
use disksnap_api_common::encode::parse_pairs;
use disksnap_api_common::{pipeline, Dialect, DialectError, EndpointName, KeyKind, RawRequest, RequestId, Verified};
use disksnap_service::{
    ids, Caller, CreateSnapshots, CreateVolumes, DeleteScope, Kind, Order, Service, ServiceError, Snapshot,
    SnapshotFilter, SnapshotStatus, Volume, VolumeFilter, VolumeKind, VolumeStatus,
};
use serde_json::{json, Map, Value};

use crate::error::{json_200, Tc3Error};
use crate::params::{Args, Params};
use crate::router::{Endpoint, ACTION_HEADER};
use crate::signature::{verify_tc3, verify_v1};
use crate::wire;
use crate::Tencent3;

type Result<T> = std::result::Result<T, Tc3Error>;

mod policies;

/// Parameters of the v1 form that are the signature's, not the action's.
const V1_COMMON: &[&str] = &[
    "Action",
    "Version",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "SignatureMethod",
    "Signature",
    "Token",
    "RequestClient",
    "Language",
];

const MAX_NAME_CHARS: usize = 60;
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;
/// `SnapshotName` when CreateSnapshot gets none (the vendor's default, "Unnamed").
const DEFAULT_SNAPSHOT_NAME: &str = "未命名";
/// The disk media types CreateDisks accepts; every one makes the same disksnap volume.
const DISK_TYPES: &[&str] = &["CLOUD_BASIC", "CLOUD_PREMIUM", "CLOUD_BSSD", "CLOUD_SSD", "CLOUD_HSSD", "CLOUD_TSSD"];

/// What every step needs: the action, version and region as the request named them (a header
/// for TC3, a parameter for v1), and the action's parameters once read.
#[derive(Default)]
pub struct Frame {
    action: Option<String>,
    version: Option<String>,
    region: Option<String>,
    params: Params,
}

impl EndpointName for Endpoint {
    fn name(&self) -> String {
        Endpoint::name(*self).to_string()
    }
}

impl DialectError for Tc3Error {
    fn unreadable(why: String) -> Self {
        Tc3Error::InvalidParameter(why)
    }
    fn is_internal(&self) -> bool {
        Tc3Error::is_internal(self)
    }
    fn code(&self) -> String {
        Tc3Error::code(self).to_string()
    }
}

fn body_text(raw: &RawRequest) -> Result<String> {
    String::from_utf8(raw.body.to_vec()).map_err(|_| Tc3Error::InvalidParameter("the body is not UTF-8".into()))
}

fn method_ok(raw: &RawRequest) -> Result<()> {
    if raw.method == Method::GET || raw.method == Method::POST {
        return Ok(());
    }
    Err(Tc3Error::InvalidParameter(format!(
        "method {} is not supported: use POST (JSON body) or GET (parameters in the query)",
        raw.method
    )))
}

impl Dialect for Tencent3 {
    const NAME: &'static str = "tencent3";
    const KEY_KIND: KeyKind = crate::KEYS;
    const CLOCK_WINDOW: Duration = crate::CLOCK_WINDOW;
    type Frame = Frame;
    type Caller = Verified;
    type Endpoint = Endpoint;
    type Error = Tc3Error;

    fn show_id(kind: Kind, bare: &str) -> String {
        wire::show(kind, bare)
    }

    fn frame(&self, _raw: &RawRequest) -> Frame {
        Frame::default()
    }

    async fn verify(&self, raw: &RawRequest, f: &mut Frame) -> Result<Verified> {
        method_ok(raw)?;
        let host = raw.header(header::HOST.as_str()).unwrap_or("").to_string();
        if host.is_empty() {
            return Err(Tc3Error::InvalidParameter(
                "the request has no Host header; it is part of the signature".into(),
            ));
        }
        if let Some(action) = raw.header(ACTION_HEADER) {
            f.action = Some(action.to_string());
            f.version = raw.header("x-tc-version").map(str::to_string);
            f.region = raw.header("x-tc-region").filter(|r| !r.is_empty()).map(str::to_string);
            let mutates = Endpoint::from_action(action).is_some_and(Endpoint::mutates);
            let who = verify_tc3(&self.ctx, raw, mutates).await?;
            f.params = if raw.method == Method::GET {
                Params::from_pairs(&parse_pairs(&raw.query, |_| false), &[])?
            } else if raw.body_is_form() {
                Params::from_pairs(&parse_pairs(&body_text(raw)?, |_| false), &[])?
            } else {
                Params::from_json(&raw.body)?
            };
            return Ok(who);
        }
        let text = if raw.method == Method::GET { raw.query.clone() } else { body_text(raw)? };
        let pairs = parse_pairs(&text, |k| k == "Signature");
        let get = |k: &str| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
        f.action = get("Action");
        f.version = get("Version");
        f.region = get("Region");
        let who = verify_v1(&self.ctx, raw.method.as_str(), &host, &raw.path, &pairs).await?;
        f.params = Params::from_pairs(&pairs, V1_COMMON)?;
        Ok(who)
    }

    fn endpoint(&self, _raw: &RawRequest, f: &mut Frame, _who: &Verified) -> Result<Endpoint> {
        let action = f.action.as_deref().ok_or_else(|| Tc3Error::MissingParameter("Action".into()))?;
        let e = Endpoint::from_action(action).ok_or_else(|| Tc3Error::InvalidAction(action.to_string()))?;
        match f.version.as_deref() {
            Some(crate::VERSION) => Ok(e),
            Some(v) => Err(Tc3Error::NoSuchVersion(v.to_string())),
            None => Err(Tc3Error::MissingParameter("Version (X-TC-Version)".into())),
        }
    }

    async fn handle(&self, c: pipeline::Call<'_, Self>) -> Result<Response> {
        let svc = &self.ctx.service;
        let zone = match c.frame.region.as_deref() {
            Some(r) => svc.resolve_zone(r).map_err(|_| Tc3Error::UnsupportedRegion(r.to_string()))?,
            None => svc.default_zone(),
        };
        let caller = c.caller.caller();
        let call = Call { svc, caller: &caller, p: c.frame.params.args(), zone };
        let body = match c.endpoint {
            Endpoint::DescribeSnapshots => {
                return Ok(crate::error::json_bytes_200(call.describe_snapshots(&c.request_id).await?));
            }
            Endpoint::CreateSnapshot => call.create_snapshot().await?,
            Endpoint::DeleteSnapshots => call.delete_snapshots().await?,
            Endpoint::ModifySnapshotAttribute => call.modify_snapshot_attribute().await?,
            Endpoint::ApplySnapshot => call.apply_snapshot().await?,
            Endpoint::DescribeSnapshotOverview => call.describe_snapshot_overview().await?,
            Endpoint::DescribeDisks => call.describe_disks().await?,
            Endpoint::CreateDisks => call.create_disks().await?,
            Endpoint::TerminateDisks => call.terminate_disks().await?,
            Endpoint::ResizeDisk => call.resize_disk().await?,
            Endpoint::ModifyDiskAttributes => call.modify_disk_attributes().await?,
            Endpoint::AttachDisks => call.attach_disks().await?,
            Endpoint::DetachDisks => call.detach_disks().await?,
            Endpoint::CreateAutoSnapshotPolicy => call.create_auto_snapshot_policy().await?,
            Endpoint::DescribeAutoSnapshotPolicies => call.describe_auto_snapshot_policies().await?,
            Endpoint::ModifyAutoSnapshotPolicyAttribute => call.modify_auto_snapshot_policy_attribute().await?,
            Endpoint::DeleteAutoSnapshotPolicies => call.delete_auto_snapshot_policies().await?,
            Endpoint::BindAutoSnapshotPolicy => call.bind_auto_snapshot_policy().await?,
            Endpoint::UnbindAutoSnapshotPolicy => call.unbind_auto_snapshot_policy().await?,
            Endpoint::DescribeDiskAssociatedAutoSnapshotPolicy => {
                call.describe_disk_associated_auto_snapshot_policy().await?
            }
        };
        Ok(success(body, &c.request_id))
    }

    fn error_response(&self, _f: &Frame, e: &Tc3Error, request_id: &RequestId) -> Response {
        e.render(request_id)
    }
}

/// `{"Response": {...fields, "RequestId"}}`.
fn success(fields: Map<String, Value>, request_id: &RequestId) -> Response {
    let mut fields = fields;
    fields.insert("RequestId".into(), Value::String(request_id.0.clone()));
    json_200(&json!({ "Response": fields }))
}

/// What a cached body holds in place of its request id: written as any request id is (no
/// character of it is escaped in JSON), and first in the body (`{"Response":{"RequestId":…`,
/// members in key order), so its first occurrence is the request id's place.
const REQUEST_ID_SLOT: &str = "{{disksnap-request-id}}";

/// `body` (rendered with [`REQUEST_ID_SLOT`] as its request id) with `request_id` there.
fn with_request_id(body: &[u8], request_id: &str) -> Vec<u8> {
    let slot = REQUEST_ID_SLOT.as_bytes();
    let quoted = Value::String(request_id.to_string()).to_string();
    let escaped = &quoted.as_bytes()[1..quoted.len() - 1];
    let Some(at) = body.windows(slot.len()).position(|w| w == slot) else {
        // describe_snapshots always writes the slot: a body without it has no id to replace.
        return body.to_vec();
    };
    let mut out = Vec::with_capacity(body.len() + escaped.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(escaped);
    out.extend_from_slice(&body[at + slot.len()..]);
    out
}

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn to_value(v: &impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// An id parameter that must name a resource of `kind`. Any rendering is accepted, except
/// Tencent's own prefix of another kind (`disk-…` as a snapshot): malformed here, as in API v2
/// (9003), not read as any prefix (which would find the resource the suffix names).
fn id_param(key: &str, kind: Kind, text: &str) -> Result<String> {
    if ids::read_with(kind, text, wire::prefix).is_err() {
        return Err(Tc3Error::value(key, format!("{text:?} is not a {kind} id like {}k3x9a2bq", wire::prefix(kind))));
    }
    Ok(text.to_string())
}

fn id_list(p: &Args, key: &str, kind: Kind) -> Result<Vec<String>> {
    p.str_list(key)?.into_iter().enumerate().map(|(i, v)| id_param(&format!("{key}.{i}"), kind, &v)).collect()
}

fn name_param<'a>(p: &Args<'a>, key: &str) -> Result<Option<&'a str>> {
    match p.str(key)? {
        Some(n) if n.chars().count() > MAX_NAME_CHARS => {
            Err(Tc3Error::value(key, format!("at most {MAX_NAME_CHARS} characters")))
        }
        other => Ok(other),
    }
}

/// `Offset`, `Limit` (1 to 100, default 20), `Order` (ASC/DESC, default DESC) and `OrderField`
/// (CREATE_TIME only, plus DEADLINE for disks, which have none and so keep creation order).
struct Paging {
    offset: usize,
    limit: usize,
    ascending: bool,
}

fn paging(p: &Args, order_fields: &[&str]) -> Result<Paging> {
    let offset = match p.int("Offset")? {
        None => 0,
        Some(n) if n >= 0 => n as usize,
        Some(n) => return Err(Tc3Error::value("Offset", format!("must be 0 or more, got {n}"))),
    };
    let limit = match p.int("Limit")? {
        None => DEFAULT_LIMIT,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(n) if n > MAX_LIMIT => {
            return Err(Tc3Error::LimitExceeded {
                name: "Limit".into(),
                reason: format!("at most {MAX_LIMIT}, got {n}"),
            })
        }
        Some(n) => return Err(Tc3Error::value("Limit", format!("must be 1 to {MAX_LIMIT}, got {n}"))),
    } as usize;
    let ascending = match p.str("Order")? {
        None | Some("DESC") => false,
        Some("ASC") => true,
        Some(o) => return Err(Tc3Error::value("Order", format!("must be ASC or DESC, got {o:?}"))),
    };
    if let Some(f) = p.str("OrderField")? {
        if !order_fields.contains(&f) {
            return Err(Tc3Error::value(
                "OrderField",
                format!("must be one of {}, got {f:?}", order_fields.join(", ")),
            ));
        }
    }
    Ok(Paging { offset, limit, ascending })
}

/// Sort by creation time (ties by id) and cut the page; the total is of everything matched.
fn page<T>(mut items: Vec<T>, key: impl Fn(&T) -> (DateTime<Utc>, String), pg: &Paging) -> (u64, Vec<T>) {
    items.sort_by_key(|x| key(x));
    if !pg.ascending {
        items.reverse();
    }
    let total = items.len() as u64;
    (total, items.into_iter().skip(pg.offset).take(pg.limit).collect())
}

/// `TRUE`/`FALSE` as the filters spell booleans.
fn filter_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_uppercase().as_str() {
        "TRUE" => Ok(true),
        "FALSE" => Ok(false),
        _ => Err(Tc3Error::InvalidFilter(format!("filter {name} takes TRUE or FALSE, got {v:?}"))),
    }
}

fn tags_match(tags: &[disksnap_service::Tag], name: &str, values: &[String]) -> bool {
    match name {
        "tag-key" => tags.iter().any(|t| values.contains(&t.key)),
        "tag-value" => tags.iter().any(|t| values.contains(&t.value)),
        _ => {
            let key = name.strip_prefix("tag:").unwrap_or_default();
            tags.iter().any(|t| t.key == key && values.contains(&t.value))
        }
    }
}

/// The snapshot statuses shown (deleted and released points are not).
fn live() -> Vec<String> {
    vec![SnapshotStatus::Creating.into(), SnapshotStatus::Available.into()]
}

fn same_id(kind: Kind, a: &str, bare: &str) -> bool {
    ids::read_with(kind, a, wire::prefix).ok().as_deref() == Some(bare)
}

struct Call<'a> {
    svc: &'a Service,
    caller: &'a Caller,
    p: Args<'a>,
    /// The region (`X-TC-Region` / `Region`) resolved to a zone, or the default zone.
    zone: String,
}

impl Call<'_> {
    /// A snapshot this dialect shows (points being deleted are not found).
    async fn visible_snapshot(&self, key: &str, id: &str) -> Result<Snapshot> {
        let id = id_param(key, Kind::Snapshot, id)?;
        let s = self.svc.snapshot(self.caller, &id).await?;
        if wire::snapshot_state(&s).is_none() {
            return Err(ServiceError::not_found(Kind::Snapshot, &id).into());
        }
        Ok(s)
    }

    /// The tag ids for `Tags` ({Key, Value} pairs), reusing the account's tag of that key and
    /// value when there is one.
    async fn tag_ids(&self) -> Result<Vec<String>> {
        let wanted = self.p.objects("Tags")?;
        if wanted.is_empty() {
            return Ok(vec![]);
        }
        let existing = self.svc.tags(self.caller).await?;
        let mut out = Vec::new();
        for (i, t) in wanted.iter().enumerate() {
            let key = t.str("Key")?.ok_or_else(|| Tc3Error::MissingParameter(format!("Tags.{i}.Key")))?;
            let value = t.str("Value")?.unwrap_or("");
            match existing.iter().find(|x| x.key == key && x.value == value) {
                Some(x) => out.push(x.id.clone()),
                None => out.push(self.svc.create_tag(self.caller, key, value).await?.id),
            }
        }
        Ok(out)
    }

    /// One list query: every filter is a condition of the store's list (issue 16: this read
    /// and matched all of the account's points in memory, 4-5 s at 100 000), the page and the
    /// total the store's.
    ///
    /// The whole body: kept without its request id in the service's page cache (issue 16) while
    /// nothing it shows changes, the request id written into it per request.
    async fn describe_snapshots(&self, request_id: &RequestId) -> Result<Vec<u8>> {
        let p = self.p;
        let ids_ = id_list(&p, "SnapshotIds", Kind::Snapshot)?;
        let filters = p.filters()?;
        if !ids_.is_empty() && !filters.is_empty() {
            return Err(Tc3Error::InvalidParameter("SnapshotIds and Filters cannot be given together".into()));
        }
        let pg = paging(&p, &["CREATE_TIME"])?;
        let mut q = SnapshotFilter {
            ids: ids_,
            zone: Some(self.zone.clone()),
            statuses: live(),
            not_transitions: wire::hidden_transitions(),
            order: Order::oldest_first(pg.ascending),
            offset: pg.offset as u64,
            limit: pg.limit as u64,
            ..Default::default()
        };
        // A filter whose values no point can meet.
        let mut nothing = false;
        let mut tags: Option<Vec<disksnap_service::Tag>> = None;
        for (name, values) in &filters {
            match name.as_str() {
                "snapshot-id" => {
                    for v in values {
                        id_param("Filters.snapshot-id", Kind::Snapshot, v)?;
                    }
                    q.ids = values.clone();
                }
                "disk-id" => {
                    for v in values {
                        id_param("Filters.disk-id", Kind::Volume, v)?;
                    }
                    q.volume_ids = values.clone();
                }
                "snapshot-state" => {
                    if let Some(bad) = values.iter().find(|v| !wire::SNAPSHOT_STATES.contains(&v.as_str())) {
                        return Err(Tc3Error::InvalidFilter(format!(
                            "snapshot-state {bad:?} is not one of {}",
                            wire::SNAPSHOT_STATES.join(", ")
                        )));
                    }
                    q.shown = wire::snapshot_state_words();
                    q.shown_in = values.clone();
                }
                "disk-usage" => {
                    let mut kinds = Vec::new();
                    for v in values {
                        let k = wire::parse_disk_usage(v).ok_or_else(|| {
                            Tc3Error::InvalidFilter(format!("disk-usage {v:?} is not SYSTEM_DISK or DATA_DISK"))
                        })?;
                        if !kinds.contains(&k) {
                            kinds.push(k);
                        }
                    }
                    // Both kinds: every point.
                    if let [one] = kinds.as_slice() {
                        q.volume_kind = Some((*one).into());
                    }
                }
                "encrypt" => {
                    let mut wanted = Vec::new();
                    for v in values {
                        wanted.push(filter_bool(name, v)?);
                    }
                    match (wanted.contains(&true), wanted.contains(&false)) {
                        (true, false) => q.encrypted = Some(true),
                        (false, true) => q.encrypted = Some(false),
                        _ => {}
                    }
                }
                "snapshot-type" => {
                    if let Some(bad) =
                        values.iter().find(|v| !["PRIVATE_SNAPSHOT", "SHARED_SNAPSHOT"].contains(&v.as_str()))
                    {
                        return Err(Tc3Error::InvalidFilter(format!(
                            "snapshot-type {bad:?} is not PRIVATE_SNAPSHOT or SHARED_SNAPSHOT"
                        )));
                    }
                    // Every point is private.
                    nothing |= !values.iter().any(|v| v == "PRIVATE_SNAPSHOT");
                }
                "snapshot-name" => q.names = values.clone(),
                // One project, "0", per account.
                "project-id" => nothing |= !values.iter().any(|v| v == "0"),
                // The region's zone already narrows the list: another zone's name meets nothing.
                "zone" => nothing |= !values.iter().any(|v| self.svc.resolve_zone(v).is_ok_and(|z| z == self.zone)),
                "tag-key" | "tag-value" => {}
                n if n.starts_with("tag:") && n.len() > 4 => {}
                other => {
                    return Err(Tc3Error::InvalidFilter(format!(
                    "filter {other:?} is not one of snapshot-id, disk-id, snapshot-name, snapshot-state, disk-usage, \
                         project-id, zone, encrypt, snapshot-type, tag-key, tag-value, tag:<key>"
                )))
                }
            }
            if name == "tag-key" || name == "tag-value" || name.starts_with("tag:") {
                // The account's tags meeting the filter; a point qualifies bound to any of them.
                if tags.is_none() {
                    tags = Some(self.svc.tags(self.caller).await?);
                }
                let set = tags
                    .iter()
                    .flatten()
                    .filter(|t| tags_match(std::slice::from_ref(*t), name, values))
                    .map(|t| t.id.clone())
                    .collect();
                q.tag_any.push(set);
            }
        }
        let q = (!nothing).then_some(q);
        let key = match &q {
            Some(q) => self.svc.snapshot_page_key(self.caller, q, "tencent3")?,
            None => None,
        };
        let (body, _) = self
            .svc
            .page_cached(key, || async {
                let (snaps, total) = match &q {
                    Some(q) => self.svc.snapshots(self.caller, q).await?,
                    None => (Vec::new(), 0),
                };
                let set: Vec<Value> = snaps
                    .iter()
                    .filter_map(|s| wire::snapshot_state(s).map(|state| to_value(&wire::SnapshotItem::new(s, state))))
                    .collect();
                let mut fields = fields(json!({ "TotalCount": total, "SnapshotSet": set }));
                fields.insert("RequestId".into(), Value::String(REQUEST_ID_SLOT.into()));
                let bytes = serde_json::to_vec(&json!({ "Response": fields })).map_err(|e| {
                    ServiceError::Internal(format!("tencent3: the snapshot list could not be encoded: {e}"))
                })?;
                Ok::<_, Tc3Error>(((bytes.into(), total), true))
            })
            .await?;
        Ok(with_request_id(&body, &request_id.0))
    }

    async fn create_snapshot(&self) -> Result<Map<String, Value>> {
        let disk = id_param("DiskId", Kind::Volume, self.p.required_str("DiskId")?)?;
        if self.p.str("DiskBackupId")?.is_some() {
            return Err(Tc3Error::Unsupported("DiskBackupId: disksnap has no disk backups; snapshot the disk".into()));
        }
        let name = name_param(&self.p, "SnapshotName")?.filter(|n| !n.is_empty()).unwrap_or(DEFAULT_SNAPSHOT_NAME);
        let retention_days = match self.p.str("Deadline")? {
            Some(d) => Some(days_until(d, Utc::now())?),
            None => None,
        };
        let tag_ids = self.tag_ids().await?;
        let req = CreateSnapshots {
            volumes: vec![disk],
            name: name.to_string(),
            retention_days,
            tag_ids,
            ..Default::default()
        };
        let (_job, snaps) = self.svc.create_snapshots(self.caller, req).await?;
        let id = snaps.first().map(|s| wire::show(Kind::Snapshot, &s.id)).unwrap_or_default();
        Ok(fields(json!({ "SnapshotId": id })))
    }

    /// All or nothing: every id is checked before any is deleted.
    async fn delete_snapshots(&self) -> Result<Map<String, Value>> {
        let ids_ = self.p.str_list("SnapshotIds")?;
        if ids_.is_empty() {
            return Err(Tc3Error::MissingParameter("SnapshotIds".into()));
        }
        let mut bare = Vec::new();
        for (i, id) in ids_.iter().enumerate() {
            let s = self.visible_snapshot(&format!("SnapshotIds.{i}"), id).await?;
            if !bare.contains(&s.id) {
                bare.push(s.id);
            }
        }
        self.svc.delete_snapshots(self.caller, &bare, DeleteScope::Points).await?;
        Ok(Map::new())
    }

    async fn modify_snapshot_attribute(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let s = self.visible_snapshot("SnapshotId", p.required_str("SnapshotId")?).await?;
        let name = name_param(&p, "SnapshotName")?.filter(|n| !n.is_empty());
        let permanent = p.bool("IsPermanent")?;
        let deadline = p.str("Deadline")?.filter(|d| !d.is_empty());
        if name.is_none() && permanent.is_none() && deadline.is_none() {
            return Err(Tc3Error::MissingParameter("SnapshotName, IsPermanent or Deadline".into()));
        }
        // Deadline is read only with IsPermanent=FALSE, as documented.
        let retention = match (permanent, deadline) {
            (Some(true), _) => Some(None),
            (Some(false), Some(d)) => Some(Some(days_until(d, s.create_time)?)),
            (Some(false), None) => return Err(Tc3Error::MissingParameter("Deadline (with IsPermanent=FALSE)".into())),
            (None, _) => None,
        };
        if let Some(n) = name {
            self.svc.modify_snapshot(self.caller, &s.id, Some(n), None).await?;
        }
        if let Some(days) = retention {
            self.svc.set_snapshot_retention(self.caller, &s.id, days).await?;
        }
        Ok(Map::new())
    }

    /// Roll the snapshot's own disk back to it.
    async fn apply_snapshot(&self) -> Result<Map<String, Value>> {
        let s = self.visible_snapshot("SnapshotId", self.p.required_str("SnapshotId")?).await?;
        let disk = id_param("DiskId", Kind::Volume, self.p.required_str("DiskId")?)?;
        if !same_id(Kind::Volume, &disk, &s.volume_id) {
            self.svc.volume(self.caller, &disk).await?; // an unknown disk is "not found"
            return Err(Tc3Error::value(
                "DiskId",
                format!(
                    "snapshot {} was taken of disk {}, not {disk}; a disk rolls back only to its own snapshots",
                    wire::show(Kind::Snapshot, &s.id),
                    wire::show(Kind::Volume, &s.volume_id)
                ),
            ));
        }
        self.svc.apply_snapshot(self.caller, &s.id).await?;
        Ok(Map::new())
    }

    /// The console's summary: how many snapshots, and the GiB they hold (stored bytes).
    async fn describe_snapshot_overview(&self) -> Result<Map<String, Value>> {
        let q = SnapshotFilter { zone: Some(self.zone.clone()), statuses: live(), ..Default::default() };
        let all = self.svc.all_snapshots(self.caller, &q).await?;
        let live: Vec<&Snapshot> = all.iter().filter(|s| wire::snapshot_state(s).is_some()).collect();
        let bytes: u64 = live.iter().map(|s| s.size).sum();
        let gib = bytes as f64 / (1u64 << 30) as f64;
        Ok(fields(json!({ "TotalNums": live.len(), "TotalSize": gib, "FreeQuota": 0.0, "RealTradeSize": gib })))
    }

    async fn describe_disks(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let ids_ = id_list(&p, "DiskIds", Kind::Volume)?;
        let filters = p.filters()?;
        if !ids_.is_empty() && !filters.is_empty() {
            return Err(Tc3Error::InvalidParameter("DiskIds and Filters cannot be given together".into()));
        }
        let pg = paging(&p, &["CREATE_TIME", "DEADLINE"])?;
        let statuses = vec![VolumeStatus::Available.into(), VolumeStatus::InUse.into()];
        let mut q = VolumeFilter { ids: ids_, zone: Some(self.zone.clone()), statuses, ..Default::default() };
        for (name, values) in &filters {
            match name.as_str() {
                "disk-id" => {
                    for v in values {
                        id_param("Filters.disk-id", Kind::Volume, v)?;
                    }
                    q.ids = values.clone();
                }
                "instance-id" => {
                    for v in values {
                        id_param("Filters.instance-id", Kind::Instance, v)?;
                    }
                    q.instance_ids = values.clone();
                }
                "disk-usage" => {
                    if let Some(bad) = values.iter().find(|v| wire::parse_disk_usage(v).is_none()) {
                        return Err(Tc3Error::InvalidFilter(format!(
                            "disk-usage {bad:?} is not SYSTEM_DISK or DATA_DISK"
                        )));
                    }
                }
                "disk-state" => {
                    if let Some(bad) = values.iter().find(|v| !wire::DISK_STATES.contains(&v.as_str())) {
                        return Err(Tc3Error::InvalidFilter(format!(
                            "disk-state {bad:?} is not one of {}",
                            wire::DISK_STATES.join(", ")
                        )));
                    }
                }
                "portable" => {
                    for v in values {
                        filter_bool(name, v)?;
                    }
                }
                "disk-charge-type"
                | "disk-type"
                | "disk-name"
                | "project-id"
                | "zone"
                | "instance-ip-address"
                | "instance-name"
                | "tag-key"
                | "tag-value"
                | "dedicated-cluster-id"
                | "cluster-group-id" => {}
                n if n.starts_with("tag:") && n.len() > 4 => {}
                other => {
                    return Err(Tc3Error::InvalidFilter(format!(
                        "filter {other:?} is not one of disk-usage, disk-charge-type, portable, project-id, disk-id, \
                         disk-name, disk-type, disk-state, instance-id, zone, instance-ip-address, instance-name, \
                         tag-key, tag-value, tag:<key>, dedicated-cluster-id, cluster-group-id"
                    )))
                }
            }
        }
        let all = self.svc.all_volumes(self.caller, &q).await?;
        let instance_names: Vec<(String, String)> = if filters.iter().any(|(n, _)| n == "instance-name") {
            self.svc.instances(self.caller).await?.into_iter().map(|i| (i.id, i.name)).collect()
        } else {
            vec![]
        };
        let mut matched = Vec::new();
        'each: for v in all {
            let Some(state) = wire::disk_state(&v) else { continue };
            for (name, values) in &filters {
                let ok = match name.as_str() {
                    "disk-id" | "instance-id" => true, // pushed into the query
                    "disk-usage" => values.iter().any(|x| x == wire::disk_usage(v.kind)),
                    "disk-charge-type" => values.iter().any(|x| x == wire::CHARGE_TYPE),
                    "portable" => {
                        values.iter().any(|x| filter_bool(name, x).is_ok_and(|b| b == (v.kind == VolumeKind::Data)))
                    }
                    "project-id" => values.iter().any(|x| x == "0"),
                    "disk-name" => values.contains(&v.name),
                    "disk-type" => values.iter().any(|x| x == wire::DISK_TYPE),
                    "disk-state" => values.iter().any(|x| x == state),
                    "zone" => values.iter().any(|x| self.svc.resolve_zone(x).is_ok_and(|z| z == v.zone)),
                    "instance-name" => v
                        .instance_id
                        .as_ref()
                        .is_some_and(|i| instance_names.iter().any(|(id, n)| id == i && values.contains(n))),
                    // No instance has an address; no disk is in a dedicated cluster.
                    "instance-ip-address" | "dedicated-cluster-id" | "cluster-group-id" => false,
                    tag => tags_match(&v.tags, tag, values),
                };
                if !ok {
                    continue 'each;
                }
            }
            matched.push((v, state));
        }
        let (total, items) = page(matched, |(v, _)| (v.create_time, v.id.clone()), &pg);
        let mut set = Vec::new();
        for (v, state) in &items {
            let counted =
                SnapshotFilter { volume_ids: vec![v.id.clone()], statuses: live(), limit: 1, ..Default::default() };
            let (_, count) = self.svc.snapshots(self.caller, &counted).await?;
            let mut item = wire::DiskItem::new(v, state, count);
            if let Some(pid) = self.svc.policy_of_volume(self.caller, &v.id).await? {
                item.auto_snapshot_policy_ids = vec![wire::show(Kind::Policy, &pid)];
            }
            set.push(to_value(&item));
        }
        Ok(fields(json!({ "TotalCount": total, "DiskSet": set })))
    }

    async fn create_disks(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let placement = p.object("Placement")?.ok_or_else(|| Tc3Error::MissingParameter("Placement".into()))?;
        let zone_name =
            placement.required_str("Zone").map_err(|_| Tc3Error::MissingParameter("Placement.Zone".into()))?;
        let zone = self.svc.resolve_zone(zone_name).map_err(|_| {
            let known: Vec<&str> = self.svc.zones().iter().map(|z| z.name.as_str()).collect();
            Tc3Error::value("Placement.Zone", format!("{zone_name:?} is not a zone here; zones: {}", known.join(", ")))
        })?;
        if placement.int("ProjectId")?.is_some_and(|x| x != 0) {
            return Err(Tc3Error::value("Placement.ProjectId", "disksnap has only the default project 0"));
        }
        match p.required_str("DiskChargeType")? {
            "POSTPAID_BY_HOUR" => {}
            "PREPAID" | "CDCPAID" => {
                return Err(Tc3Error::Unsupported("disksnap bills nothing: use DiskChargeType POSTPAID_BY_HOUR".into()))
            }
            other => {
                return Err(Tc3Error::value(
                    "DiskChargeType",
                    format!("{other:?} is not PREPAID, POSTPAID_BY_HOUR or CDCPAID"),
                ))
            }
        }
        let disk_type = p.required_str("DiskType")?;
        if !DISK_TYPES.contains(&disk_type) {
            return Err(Tc3Error::value(
                "DiskType",
                format!("must be one of {}, got {disk_type:?}", DISK_TYPES.join(", ")),
            ));
        }
        if p.str("Encrypt")?.is_some() || p.str("KmsKeyId")?.is_some() {
            return Err(Tc3Error::Unsupported("disksnap does not create encrypted disks".into()));
        }
        if p.bool("Shareable")? == Some(true) {
            return Err(Tc3Error::Unsupported("disksnap does not create shareable disks".into()));
        }
        let count = match p.int("DiskCount")? {
            None => 1,
            Some(n @ 1..=50) => n as u32,
            Some(n) => return Err(Tc3Error::value("DiskCount", format!("must be 1 to 50, got {n}"))),
        };
        let size = match p.int("DiskSize")? {
            None => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => return Err(Tc3Error::value("DiskSize", format!("must be a positive number of GiB, got {n}"))),
        };
        let name = name_param(&p, "DiskName")?.unwrap_or("");
        let tag_ids = self.tag_ids().await?;
        let mut created = Vec::new();
        match p.str("SnapshotId")?.filter(|s| !s.is_empty()) {
            Some(snap) => {
                let s = self.visible_snapshot("SnapshotId", snap).await?;
                if s.volume_kind != VolumeKind::Data {
                    return Err(Tc3Error::value(
                        "SnapshotId",
                        format!(
                            "snapshot {} is of a system disk; only a data-disk snapshot can create a disk",
                            wire::show(Kind::Snapshot, &s.id)
                        ),
                    ));
                }
                if let Some(gb) = size {
                    if gb < wire::size_gb(s.volume_size) {
                        return Err(Tc3Error::value(
                            "DiskSize",
                            format!("must be at least the snapshot's {} GiB", wire::size_gb(s.volume_size)),
                        ));
                    }
                }
                for _ in 0..count {
                    let (_job, v) =
                        self.svc.create_volume_from_snapshot_sized(self.caller, &s.id, name, Some(&zone), size).await?;
                    created.push(v.id);
                }
            }
            None => {
                let size_gib =
                    size.ok_or_else(|| Tc3Error::MissingParameter("DiskSize (without SnapshotId)".into()))?;
                let req = CreateVolumes {
                    zone: Some(zone),
                    name: name.to_string(),
                    size_gib,
                    kind: Some(VolumeKind::Data),
                    count,
                    ..Default::default()
                };
                let (_job, vols) = self.svc.create_volumes(self.caller, req).await?;
                created.extend(vols.into_iter().map(|v| v.id));
            }
        }
        if !tag_ids.is_empty() {
            let pairs: Vec<(String, String)> =
                created.iter().flat_map(|v| tag_ids.iter().map(move |t| (t.clone(), v.clone()))).collect();
            self.svc.attach_tags(self.caller, &pairs).await?;
        }
        let set: Vec<String> = created.iter().map(|v| wire::show(Kind::Volume, v)).collect();
        Ok(fields(json!({ "DiskIdSet": set })))
    }

    /// `DeleteSnapshot=1` deletes each disk's snapshots with it.
    async fn terminate_disks(&self) -> Result<Map<String, Value>> {
        let disks = id_list(&self.p, "DiskIds", Kind::Volume)?;
        if disks.is_empty() {
            return Err(Tc3Error::MissingParameter("DiskIds".into()));
        }
        match self.p.int("DeleteSnapshot")? {
            None | Some(0) => {
                self.svc.delete_volumes(self.caller, &disks).await?;
            }
            Some(1) => {
                for d in &disks {
                    self.svc.volume(self.caller, d).await?;
                }
                for d in &disks {
                    self.svc.delete_volume_cascade(self.caller, d).await?;
                }
            }
            Some(n) => return Err(Tc3Error::value("DeleteSnapshot", format!("must be 0 or 1, got {n}"))),
        }
        Ok(Map::new())
    }

    async fn resize_disk(&self) -> Result<Map<String, Value>> {
        let disk = id_param("DiskId", Kind::Volume, self.p.required_str("DiskId")?)?;
        let size = match self.p.int("DiskSize")? {
            None => return Err(Tc3Error::MissingParameter("DiskSize".into())),
            Some(n) if n >= 1 => n as u64,
            Some(n) => return Err(Tc3Error::value("DiskSize", format!("must be a positive number of GiB, got {n}"))),
        };
        self.svc.resize_volume(self.caller, &disk, size).await?;
        Ok(Map::new())
    }

    async fn modify_disk_attributes(&self) -> Result<Map<String, Value>> {
        let p = self.p;
        let disks = id_list(&p, "DiskIds", Kind::Volume)?;
        if disks.is_empty() {
            return Err(Tc3Error::MissingParameter("DiskIds".into()));
        }
        let name = name_param(&p, "DiskName")?.filter(|n| !n.is_empty());
        if p.int("ProjectId")?.is_some_and(|x| x != 0) {
            return Err(Tc3Error::value("ProjectId", "disksnap has only the default project 0"));
        }
        if p.str("DiskType")?.is_some() {
            return Err(Tc3Error::Unsupported("disksnap has one disk type; DiskType cannot be changed".into()));
        }
        if p.bool("DeleteWithInstance")? == Some(true) {
            return Err(Tc3Error::Unsupported(
                "disksnap instances are never terminated; DeleteWithInstance stays FALSE".into(),
            ));
        }
        let portable = p.bool("Portable")?;
        let mut vols: Vec<Volume> = Vec::new();
        for d in &disks {
            vols.push(self.svc.volume(self.caller, d).await?);
        }
        if let Some(want) = portable {
            if let Some(v) = vols.iter().find(|v| (v.kind == VolumeKind::Data) != want) {
                return Err(Tc3Error::Unsupported(format!(
                    "disk {} is {}; a data disk is portable and a system disk is not, and that cannot change",
                    wire::show(Kind::Volume, &v.id),
                    wire::disk_usage(v.kind)
                )));
            }
        }
        if let Some(n) = name {
            for v in &vols {
                self.svc.modify_volume(self.caller, &v.id, Some(n), None).await?;
            }
        }
        Ok(Map::new())
    }

    async fn attach_disks(&self) -> Result<Map<String, Value>> {
        let instance = id_param("InstanceId", Kind::Instance, self.p.required_str("InstanceId")?)?;
        let disks = id_list(&self.p, "DiskIds", Kind::Volume)?;
        if disks.is_empty() {
            return Err(Tc3Error::MissingParameter("DiskIds".into()));
        }
        if self.p.bool("DeleteWithInstance")? == Some(true) {
            return Err(Tc3Error::Unsupported(
                "disksnap instances are never terminated; DeleteWithInstance stays FALSE".into(),
            ));
        }
        self.svc.attach_volumes(self.caller, &disks, &instance).await?;
        Ok(Map::new())
    }

    async fn detach_disks(&self) -> Result<Map<String, Value>> {
        let disks = id_list(&self.p, "DiskIds", Kind::Volume)?;
        if disks.is_empty() {
            return Err(Tc3Error::MissingParameter("DiskIds".into()));
        }
        if let Some(i) = self.p.str("InstanceId")?.filter(|i| !i.is_empty()) {
            let inst = id_param("InstanceId", Kind::Instance, i)?;
            for d in &disks {
                let v = self.svc.volume(self.caller, d).await?;
                if !v.instance_id.as_deref().is_some_and(|x| same_id(Kind::Instance, &inst, x)) {
                    return Err(Tc3Error::value(
                        "InstanceId",
                        format!("disk {} is not attached to instance {inst}", wire::show(Kind::Volume, &v.id)),
                    ));
                }
            }
        }
        self.svc.detach_volumes(self.caller, &disks).await?;
        Ok(Map::new())
    }
}

/// Whole days from `from` (the snapshot's creation) until an ISO 8601 `Deadline`, rounded up
/// (the snapshot is kept at least that long): the service keeps retention in days.
fn days_until(deadline: &str, from: DateTime<Utc>) -> Result<u32> {
    let t = disksnap_api_common::clock::parse_iso(deadline).map_err(|_| {
        Tc3Error::value("Deadline", format!("{deadline:?} is not an ISO 8601 time like 2026-01-08T09:47:55+00:00"))
    })?;
    if t <= Utc::now() {
        return Err(Tc3Error::value("Deadline", format!("{deadline} is in the past")));
    }
    let secs = t.signed_duration_since(from).num_seconds();
    if secs <= 0 {
        return Err(Tc3Error::value("Deadline", format!("{deadline} is in the past")));
    }
    u32::try_from((secs as u64).div_ceil(86_400)).map_err(|_| Tc3Error::value("Deadline", "is too far away"))
}
