//! Aliyun's wire shapes: PascalCase items converted from the neutral model, and their rendering
//! as JSON (default) or XML (`Format=XML`), success and error bodies alike (dialects.md §4.2,
//! §4.5, §4.7).
//!
//! A response is built once as a JSON value; XML is derived from it: an object's members
//! become child elements and a list repeats its member's element, so
//! `"Snapshots":{"Snapshot":[a,b]}` is `<Snapshots><Snapshot>a</Snapshot><Snapshot>b</Snapshot></Snapshots>`.

use std::io::Cursor;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use disksnap_api_common::time::iso_z;
use disksnap_service::{Kind, Origin, Snapshot, SnapshotStatus, Tag, Volume, VolumeStatus, VolumeTransition, GIB};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::AliyunError;
use crate::ids::show;

/// The response format a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `Format=XML` (any case) → XML; anything else, `None` and absent included → JSON.
    pub fn from_param(value: Option<&str>) -> Format {
        match value {
            Some(v) if v.eq_ignore_ascii_case("xml") => Format::Xml,
            _ => Format::Json,
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct TagItem {
    pub tag_key: String,
    pub tag_value: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Tags {
    #[serde(rename = "Tag")]
    pub tag: Vec<TagItem>,
}

impl Tags {
    pub fn of(tags: &[Tag]) -> Tags {
        Tags { tag: tags.iter().map(|t| TagItem { tag_key: t.key.clone(), tag_value: t.value.clone() }).collect() }
    }
}

/// `DescribeSnapshotsResponseBodySnapshotsSnapshot`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SnapshotItem {
    pub snapshot_id: String,
    pub snapshot_name: String,
    pub description: String,
    pub status: String,
    pub progress: String,
    pub remain_time: u64,
    pub creation_time: String,
    pub last_modified_time: String,
    pub snapshot_type: String,
    pub usage: String,
    pub source_disk_id: String,
    pub source_disk_type: String,
    pub source_disk_size: String,
    pub source_storage_type: String,
    pub snapshot_link_id: String,
    pub instance_id: String,
    pub region_id: String,
    pub retention_days: u32,
    pub encrypted: bool,
    pub available: bool,
    pub instant_access: bool,
    pub category: String,
    pub full_snapshot_size_in_bytes: u64,
    pub product_code: String,
    pub resource_group_id: String,
    #[serde(rename = "KMSKeyId")]
    pub kms_key_id: String,
    pub tags: Tags,
}

/// Aliyun's snapshot status word; None for points Aliyun never shows (deleted, ceased).
pub fn snapshot_status(s: SnapshotStatus) -> Option<&'static str> {
    match s {
        SnapshotStatus::Creating => Some("progressing"),
        SnapshotStatus::Available => Some("accomplished"),
        SnapshotStatus::Deleted | SnapshotStatus::Ceased => None,
    }
}

/// `image` / `disk` / `image_disk` / `none`: what was made from the point.
pub fn usage(images: u32, volumes: u32) -> &'static str {
    match (images > 0, volumes > 0) {
        (true, true) => "image_disk",
        (true, false) => "image",
        (false, true) => "disk",
        (false, false) => "none",
    }
}

impl SnapshotItem {
    pub fn from_snapshot(s: &Snapshot, region: &str, now: chrono::DateTime<chrono::Utc>) -> SnapshotItem {
        let progressing = s.status == SnapshotStatus::Creating;
        // Time left, extrapolated from the time spent so far (the capture's own progress).
        let remain = if progressing && s.progress > 0 {
            let spent = (now - s.create_time).num_seconds().max(0) as u64;
            spent * (100 - s.progress.min(100) as u64) / s.progress as u64
        } else {
            0
        };
        SnapshotItem {
            snapshot_id: show(Kind::Snapshot, &s.id),
            snapshot_name: s.name.clone(),
            description: s.description.clone(),
            status: snapshot_status(s.status).unwrap_or("failed").to_string(),
            progress: format!("{}%", if progressing { s.progress.min(99) } else { 100 }),
            remain_time: remain,
            creation_time: iso_z(s.create_time),
            last_modified_time: iso_z(s.status_time),
            snapshot_type: match s.origin {
                Origin::Auto => "auto",
                Origin::User => "user",
            }
            .to_string(),
            usage: usage(s.used_by_images, s.used_by_volumes).to_string(),
            source_disk_id: show(Kind::Volume, &s.volume_id),
            source_disk_type: s.volume_kind.as_str().to_string(),
            source_disk_size: s.volume_size.div_ceil(GIB).to_string(),
            source_storage_type: "disk".into(),
            snapshot_link_id: show(Kind::Chain, &s.root_id),
            instance_id: s.instance_id.as_deref().map(|i| show(Kind::Instance, i)).unwrap_or_default(),
            region_id: region.to_string(),
            retention_days: s.retention_days.unwrap_or(0),
            encrypted: s.encrypted,
            available: s.status == SnapshotStatus::Available,
            instant_access: false,
            category: "standard".into(),
            full_snapshot_size_in_bytes: s.volume_size,
            product_code: String::new(),
            resource_group_id: String::new(),
            kms_key_id: String::new(),
            tags: Tags::of(&s.tags),
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    pub attached_time: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Attachments {
    #[serde(rename = "Attachment")]
    pub attachment: Vec<Attachment>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct OperationLocks {
    #[serde(rename = "OperationLock")]
    pub operation_lock: Vec<Value>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DiskItem {
    pub disk_id: String,
    pub disk_name: String,
    pub description: String,
    pub size: u64,
    pub category: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub status: String,
    pub zone_id: String,
    pub region_id: String,
    pub instance_id: String,
    pub device: String,
    pub source_snapshot_id: String,
    pub resource_group_id: String,
    /// The automatic snapshot policy the disk follows ("" for none).
    pub auto_snapshot_policy_id: String,
    pub enable_auto_snapshot: bool,
    pub portable: bool,
    pub encrypted: bool,
    pub creation_time: String,
    pub delete_with_instance: bool,
    pub attachments: Attachments,
    pub operation_locks: OperationLocks,
    pub tags: Tags,
}

/// Aliyun's disk status word.
pub fn disk_status(v: &Volume) -> &'static str {
    match (v.transition, v.status) {
        (VolumeTransition::Creating, _) | (_, VolumeStatus::Creating) => "Creating",
        (VolumeTransition::RollingBack, _) => "ReIniting",
        (_, VolumeStatus::InUse) => "In_use",
        (_, VolumeStatus::Available | VolumeStatus::Deleted) => "Available",
    }
}

impl DiskItem {
    pub fn from_volume(v: &Volume, region: &str) -> DiskItem {
        let instance = v.instance_id.as_deref().map(|i| show(Kind::Instance, i)).unwrap_or_default();
        DiskItem {
            disk_id: show(Kind::Volume, &v.id),
            disk_name: v.name.clone(),
            description: v.description.clone(),
            size: v.size_gib(),
            category: "cloud_essd".into(),
            kind: v.kind.as_str().to_string(),
            status: disk_status(v).to_string(),
            zone_id: zone_id(region),
            region_id: region.to_string(),
            instance_id: instance.clone(),
            device: String::new(),
            source_snapshot_id: v.source_snapshot.as_deref().map(|s| show(Kind::Snapshot, s)).unwrap_or_default(),
            resource_group_id: String::new(),
            auto_snapshot_policy_id: String::new(),
            enable_auto_snapshot: false,
            portable: v.kind == disksnap_service::VolumeKind::Data,
            encrypted: false,
            creation_time: iso_z(v.create_time),
            delete_with_instance: false,
            attachments: Attachments {
                attachment: if instance.is_empty() {
                    vec![]
                } else {
                    vec![Attachment {
                        instance_id: instance,
                        device: String::new(),
                        attached_time: iso_z(v.status_time),
                    }]
                },
            },
            operation_locks: OperationLocks { operation_lock: vec![] },
            tags: Tags::of(&v.tags),
        }
    }
}

/// The one zone shown for a region (disksnap choice): `<RegionId>-a`.
pub fn zone_id(region: &str) -> String {
    format!("{region}-a")
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SnapshotLinkItem {
    pub snapshot_link_id: String,
    pub region_id: String,
    pub instance_id: String,
    pub instance_name: String,
    pub source_disk_id: String,
    pub source_disk_name: String,
    pub source_disk_size: u64,
    pub source_disk_type: String,
    pub total_count: u64,
    pub total_size: u64,
    pub category: String,
    pub instant_access: bool,
}

/// Serialize a wire struct (never fails for these shapes; Null if it ever did).
pub fn value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

const JSON_TYPE: &str = "application/json;charset=utf-8";
/// Exactly this: the Tea SDK parses XML errors only with this content type.
const XML_TYPE: &str = "text/xml;charset=utf-8";

/// Write `value` as the children of `<name>`.
fn write_xml(w: &mut Writer<Cursor<Vec<u8>>>, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                write_xml(w, name, item);
            }
        }
        Value::Object(members) => {
            let _ = w.write_event(Event::Start(BytesStart::new(name)));
            for (k, v) in members {
                write_xml(w, k, v);
            }
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
        scalar => {
            let text = match scalar {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let _ = w.write_event(Event::Start(BytesStart::new(name)));
            let _ = w.write_event(Event::Text(BytesText::new(&text)));
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
    }
}

pub fn to_xml(root: &str, body: &Value) -> String {
    let mut w = Writer::new(Cursor::new(Vec::new()));
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    write_xml(&mut w, root, body);
    String::from_utf8(w.into_inner().into_inner()).unwrap_or_default()
}

fn text(format: Format, root: &str, body: &Value) -> String {
    match format {
        Format::Json => body.to_string(),
        Format::Xml => to_xml(root, body),
    }
}

fn respond(format: Format, status: u16, root: &str, body: Value) -> Response {
    raw(format, status, text(format, root, &body).into_bytes())
}

/// A rendered body as the response, with its format's content type.
pub fn raw(format: Format, status: u16, body: Vec<u8>) -> Response {
    let ctype = match format {
        Format::Json => JSON_TYPE,
        Format::Xml => XML_TYPE,
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// A success body: the action's members plus `RequestId`, root `<{Action}Response>` in XML.
pub fn ok(format: Format, action: &str, request_id: &str, body: Value) -> Response {
    raw(format, 200, ok_text(format, action, request_id, body).into_bytes())
}

/// The text of [`ok`]'s body.
pub fn ok_text(format: Format, action: &str, request_id: &str, body: Value) -> String {
    let mut members = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    members.insert("RequestId".into(), Value::String(request_id.to_string()));
    text(format, &format!("{action}Response"), &Value::Object(members))
}

/// What a cached success body (issue 16) holds in place of its request id: rendered as any
/// request id is (no character of it is escaped in JSON or XML), and it comes before every
/// member a client names (members are written in key order and `RequestId` follows only
/// `NextToken`, `PageNumber` and `PageSize`, which are numbers and base64), so its first
/// occurrence is the request id's place.
pub const REQUEST_ID_SLOT: &str = "{{disksnap-request-id}}";

/// `body` (rendered by [`ok_text`] with [`REQUEST_ID_SLOT`] as its request id) with
/// `request_id` in its place, escaped as the format escapes text.
pub fn with_request_id(format: Format, body: &[u8], request_id: &str) -> Vec<u8> {
    let slot = REQUEST_ID_SLOT.as_bytes();
    let escaped = match format {
        Format::Json => {
            let quoted = Value::String(request_id.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
        Format::Xml => quick_xml::escape::escape(request_id).into_owned(),
    };
    let Some(at) = body.windows(slot.len()).position(|w| w == slot) else {
        // ok_text always writes the slot; a body without it has no request id to replace.
        return body.to_vec();
    };
    let mut out = Vec::with_capacity(body.len() + escaped.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(escaped.as_bytes());
    out.extend_from_slice(&body[at + slot.len()..]);
    out
}

/// An error body `{RequestId, HostId, Code, Message, Recommend}` (XML root `<Error>`).
pub fn error(format: Format, request_id: &str, host: &str, e: &AliyunError) -> Response {
    let code = e.code();
    let body = json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": code,
        "Message": e.message(),
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}&product=Ecs&requestId={request_id}"),
    });
    respond(format, e.http_status(), "Error", body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::vendor;

    #[test]
    fn xml_wraps_lists_like_aliyun() {
        let body = json!({"TotalCount": 2, "Snapshots": {"Snapshot": [{"SnapshotId": "s-1", "Tags": {"Tag": []}}, {"SnapshotId": "s-<2>"}]}});
        let x = to_xml("DescribeSnapshotsResponse", &body);
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeSnapshotsResponse><Snapshots><Snapshot><SnapshotId>s-1</SnapshotId><Tags></Tags></Snapshot><Snapshot><SnapshotId>s-&lt;2&gt;</SnapshotId></Snapshot></Snapshots><TotalCount>2</TotalCount></DescribeSnapshotsResponse>"
        );
    }

    #[test]
    fn error_bodies_in_both_formats() {
        let e = vendor("InvalidSnapshotId.NotFound", 404, "The specified SnapshotId does not exist.");
        let r = error(Format::Xml, "RID", "127.0.0.1:7480", &e);
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()[header::CONTENT_TYPE], XML_TYPE);
        let r = error(Format::Json, "RID", "h", &e);
        assert_eq!(r.headers()[header::CONTENT_TYPE], JSON_TYPE);
        assert_eq!(Format::from_param(Some("xml")), Format::Xml);
        assert_eq!(Format::from_param(Some("None")), Format::Json);
        assert_eq!(Format::from_param(None), Format::Json);
    }

    #[test]
    fn words() {
        assert_eq!(usage(0, 0), "none");
        assert_eq!(usage(1, 0), "image");
        assert_eq!(usage(0, 3), "disk");
        assert_eq!(usage(2, 1), "image_disk");
        assert_eq!(snapshot_status(SnapshotStatus::Creating), Some("progressing"));
        assert_eq!(snapshot_status(SnapshotStatus::Available), Some("accomplished"));
        assert_eq!(snapshot_status(SnapshotStatus::Deleted), None);
        assert_eq!(show(Kind::Chain, "abcd1234"), "sl-abcd1234");
        assert_eq!(zone_id("cn-hangzhou"), "cn-hangzhou-a");
    }
}
