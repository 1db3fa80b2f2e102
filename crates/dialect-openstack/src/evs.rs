//! Huawei EVS native snapshots, the API huaweicloudsdkevs calls (dialect-openstack.md §9.2,
//! §9.3): `/v2/{project_id}/cloudsnapshots…` and `os-vendor-snapshots/{id}/rollback`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use disksnap_service::{DeleteScope, Kind};

use crate::cinder::{self, envelope};
use crate::error::{OsError, OsResult};
use crate::listing;
use crate::router::EvsOp;
use crate::wire::{self, SnapView};
use crate::{empty, json_response, volumes, Call, OpenStack};

fn bad(m: impl Into<String>) -> OsError {
    OsError::BadRequest(m.into())
}

pub async fn handle(d: &OpenStack, call: &Call, op: EvsOp) -> OsResult<Response> {
    match op {
        EvsOp::List => list(d, call).await,
        EvsOp::Create => {
            let body = call.json()?;
            let o = envelope(&body, "snapshot")?;
            let s = cinder::create_one(d, call, o, false).await?;
            let v = cinder::render(d, call, &s, SnapView::Detail).await?;
            Ok(json_response(StatusCode::ACCEPTED, json!({"snapshot": v})))
        }
        EvsOp::Show(id) => {
            let s = cinder::get_snapshot(d, call, &id).await?;
            Ok(json_response(StatusCode::OK, json!({"snapshot": cinder::render(d, call, &s, SnapView::Detail).await?})))
        }
        EvsOp::Update(id) => {
            let s = cinder::get_snapshot(d, call, &id).await?;
            let (name, description) = cinder::parse_update(&call.json()?)?;
            let s = d
                .ctx
                .service
                .modify_snapshot(&call.auth.caller(), &s.id, name.as_deref(), description.as_deref())
                .await?;
            Ok(json_response(StatusCode::OK, json!({"snapshot": cinder::render(d, call, &s, SnapView::Detail).await?})))
        }
        EvsOp::Delete(id) => {
            let s = cinder::get_snapshot(d, call, &id).await?;
            let shown = cinder::shown_status(d, call, &s).await?;
            if !matches!(shown.as_str(), "available" | "error") {
                return Err(bad(format!(
                    "Invalid snapshot: Snapshot status must be available or error, but is {shown}."
                )));
            }
            d.ctx
                .service
                .delete_snapshots(&call.auth.caller(), std::slice::from_ref(&s.id), DeleteScope::Points)
                .await?;
            d.set_override(&call.auth.account, &s.id, None).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        EvsOp::Rollback(id) => rollback(d, call, &id).await,
    }
}

async fn list(d: &OpenStack, call: &Call) -> OsResult<Response> {
    let pairs = call.query();
    let mut params = listing::ListParams::default();
    let mut ids: Vec<String> = Vec::new();
    let mut limit = listing::MAX_LIMIT;
    for (k, v) in &pairs {
        match k.as_str() {
            "offset" => {
                params.offset = v.trim().parse().map_err(|_| bad(format!("Invalid value '{v}' for offset")))?;
            }
            "limit" => {
                limit = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad(format!("Invalid value '{v}' for limit: must be 1 to 1000")))?;
                params.limit = Some(limit);
            }
            "name" => params.name = Some(v.clone()),
            "status" => params.status = Some(v.clone()),
            "volume_id" => params.volume_id = Some(v.clone()),
            "availability_zone" => params.zone = Some(v.clone()),
            "id" => ids.push(v.to_ascii_lowercase()),
            "dedicated_storage_name" | "dedicated_storage_id" => params.match_nothing = true,
            _ => {}
        }
    }
    if ids.len() > disksnap_api_common::MAX_LIST_ITEMS {
        return Err(bad(format!(
            "{} id filters given; at most {} are accepted in one request",
            ids.len(),
            disksnap_api_common::MAX_LIST_ITEMS
        )));
    }
    params.limit = Some(limit);
    // EVS always shows `count` (and pages by offset from it).
    params.with_count = true;
    crate::page_cache::list_body(d, call, "cloudsnapshots/detail", |ov| async move {
        let page = cinder::list_page(d, call, &params, &ids).await?;
        let mut items = cinder::render_page_with(d, call, &page.snaps, SnapView::Detail, &ov).await?;
        for v in items.iter_mut() {
            if let Some(o) = v.as_object_mut() {
                o.insert("dedicated_storage_id".into(), Value::Null);
                o.insert("dedicated_storage_name".into(), Value::Null);
                o.insert("service_type".into(), Value::Null);
            }
        }
        let mut body = Map::new();
        body.insert("count".into(), page.count.into());
        let shown_after = params.offset + page.snaps.len();
        let more = call.raw.query.contains("limit=") && shown_after < page.count && !page.snaps.is_empty();
        body.insert("snapshots".into(), items.into());
        if more {
            let mut parts: Vec<String> = call
                .raw
                .query
                .split('&')
                .filter(|p| !p.is_empty() && p.split('=').next() != Some("offset"))
                .map(str::to_string)
                .collect();
            parts.push(format!("offset={shown_after}"));
            let href = format!("{}{}?{}", call.base, call.raw.path, parts.join("&"));
            body.insert("snapshots_links".into(), json!([{"href": href, "rel": "next"}]));
        }
        Ok(Value::Object(body))
    })
    .await
}

/// Roll a disk back to any of its available snapshots (§9.3).
async fn rollback(d: &OpenStack, call: &Call, id: &str) -> OsResult<Response> {
    let body = call.json()?;
    let s = cinder::get_snapshot(d, call, id).await?;
    let r = envelope(&body, "rollback")?;
    let vid = r
        .get("volume_id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("Invalid input received: rollback.volume_id is required"))?;
    if wire::from_wire(Kind::Volume, vid) != s.volume_id {
        return Err(bad(format!(
            "Invalid input received: snapshot {id} can only be rolled back to its source volume."
        )));
    }
    let v = volumes::get_volume(d, call, vid).await?;
    let vs = volumes::status(call, &v);
    if vs != "available" {
        return Err(bad(format!("Invalid volume: Volume {vid} status must be available to roll back, but is {vs}.")));
    }
    let ss = cinder::shown_status(d, call, &s).await?;
    if ss != "available" {
        return Err(bad(format!("Invalid snapshot: Snapshot {id} status must be available, but is {ss}.")));
    }
    d.ctx.service.apply_snapshot(&call.auth.caller(), &s.id).await?;
    Ok(json_response(StatusCode::ACCEPTED, json!({"rollback": {"volume_id": wire::uuid(Kind::Volume, &v.id)}})))
}
