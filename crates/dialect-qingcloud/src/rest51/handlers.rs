//! 51idc endpoint handlers: read query or JSON body, call the service, answer with the list or
//! the Job object (dialects.md §3.4–3.5). Meanings follow QingCloud's (same wire vocabulary).

use crate::ids::display;
use disksnap_api_common::time::iso_z;
use disksnap_api_common::MAX_LIST_ITEMS;
use disksnap_service::{
    Caller, CreateSnapshots, DeleteScope, Job, JobAction, JobFailure, JobStatus, Kind, SnapshotFilter, VolumeFilter,
};
use serde_json::{json, Value};

use super::{Call, Rest51};
use crate::error::QcError;
use crate::ids::{check, check_volume_or_instance, checked, is_instance_id};
use crate::listing::{self, ListParams};
use crate::wire;

type Out = Result<Value, QcError>;

impl ListParams for Call {
    fn text(&self, key: &str) -> Option<String> {
        Call::text(self, key)
    }
    fn list(&self, key: &str) -> Result<Vec<String>, QcError> {
        Call::list(self, key)
    }
    fn flag(&self, key: &str) -> Result<Option<bool>, QcError> {
        Call::flag(self, key)
    }
}

impl Call {
    fn caller(&self) -> Caller {
        Caller::new(&self.account)
    }

    /// A list from the query (`k=a,b` or repeated `k=a&k=b`) or the body (JSON array, or a
    /// comma-joined string); more than [`MAX_LIST_ITEMS`] items is 1100 (HTTP 400).
    fn list(&self, key: &str) -> Result<Vec<String>, QcError> {
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &self.params.0 {
            if k == key {
                out.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
        match self.body.get(key) {
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter_map(|i| i.as_str()).filter(|s| !s.is_empty()).map(str::to_string))
            }
            Some(Value::String(s)) => {
                out.extend(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string))
            }
            _ => {}
        }
        if out.len() > MAX_LIST_ITEMS {
            return Err(QcError::invalid(format!(
                "parameter [{key}] has {} items; at most {MAX_LIST_ITEMS} are accepted in one request, send the rest in another",
                out.len()
            )));
        }
        Ok(out)
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.body.get(key) {
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            Some(Value::Number(n)) => return Some(n.to_string()),
            _ => {}
        }
        self.params.get(key).map(str::to_string)
    }

    fn int(&self, key: &str) -> Result<Option<i64>, QcError> {
        self.text(key).map(|t| crate::params::parse_int(key, &t)).transpose()
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, QcError> {
        match self.int(key)? {
            None => Ok(None),
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(v) => Err(QcError::invalid(format!("parameter [{key}] should be 0 or 1, not [{v}]"))),
        }
    }

    fn paging(&self, default_limit: u64) -> Result<(u64, u64), QcError> {
        let offset = self.int("offset")?.unwrap_or(0);
        let limit = self.int("limit")?.unwrap_or(default_limit as i64);
        if offset < 0 || limit < 0 {
            return Err(QcError::invalid("parameters [offset] and [limit] must not be negative"));
        }
        Ok((offset as u64, (limit as u64).min(100)))
    }

    fn required(&self, key: &str) -> Result<String, QcError> {
        self.text(key).ok_or_else(|| QcError::invalid(format!("parameter [{key}] is required")))
    }
}

/// The Job object of dialects.md §3.5.
pub fn job_object(j: &Job, zone: &str, request_id: &str) -> Value {
    let started = j.status != JobStatus::Pending;
    json!({
        "job_id": display(Kind::Job, &j.id),
        "id_prefix": "j-",
        "action": wire::job_action(j.action),
        "request_id": request_id,
        "status": j.status.as_str(),
        "create_time": iso_z(j.create_time),
        // Jobs start as soon as they are accepted; the row keeps one status time.
        "begin_time": if started { Value::from(iso_z(j.create_time)) } else { Value::Null },
        "finished_time": if j.is_done() { Value::from(iso_z(j.status_time)) } else { Value::Null },
        "extra": "",
        "zone": zone,
        "resource_ids": job_resources(j),
        "error": match (&j.status, &j.error) {
            (JobStatus::Failed, _) if j.failure() == Some(JobFailure::InsufficientStorage) => {
                json!({"code": "5200", "message": crate::error::INSUFFICIENT_RESOURCES})
            }
            (JobStatus::Failed, e) => json!({"code": "5000", "message": format!("InternalError, {}", e.as_deref().unwrap_or("the job failed"))}),
            _ => Value::Null,
        },
    })
}

/// What the job produced or touched, per §3.5: for a create, the new snapshots only.
fn job_resources(j: &Job) -> Vec<String> {
    j.typed_resources()
        .into_iter()
        .filter(|(k, _)| match j.action {
            JobAction::CreateSnapshots | JobAction::DeleteSnapshots | JobAction::RollBack => *k == Kind::Snapshot,
            JobAction::CaptureImage => *k == Kind::Image,
            JobAction::RestoreVolume => *k == Kind::Volume,
            _ => true,
        })
        .map(|(k, id)| display(k, id))
        .collect()
}

async fn answer(st: &Rest51, call: &Call, job: &Job) -> Out {
    st.remember_job(&call.caller(), &job.id, &call.request_id).await?;
    Ok(job_object(job, &call.zone_as_written, &call.request_id))
}

pub async fn list_snapshots(st: &Rest51, call: &Call) -> Out {
    let (offset, limit) = call.paging(10)?;
    let q = match listing::snapshot_filter(call, &call.zone, &call.account)? {
        Some(q) if limit > 0 => SnapshotFilter { offset, limit, ..q },
        _ => return Ok(json!({"snapshots": [], "total_count": 0})),
    };
    let verbose = call.flag("verbose")? == Some(true);
    let svc = &st.ctx.service;
    let caller = call.caller();
    let (snaps, total) = svc.snapshots(&caller, &q).await?;
    // Volume and instance names come with the page (one batched lookup each in the service).
    let items: Vec<Value> = snaps
        .iter()
        .map(|s| wire::snapshot_item(s, &wire::resource_of(s, &s.volume_name, s.instance_name.as_deref()), verbose))
        .collect();
    Ok(json!({"snapshots": items, "total_count": total}))
}

pub async fn create_snapshots(st: &Rest51, call: &Call) -> Out {
    let resources = call.list("resources")?;
    if resources.is_empty() {
        return Err(QcError::invalid("parameter [resources] is required (an array of vol-… or i-… ids)"));
    }
    for r in &resources {
        check_volume_or_instance(r)?;
    }
    let (instances, volumes): (Vec<String>, Vec<String>) = resources.into_iter().partition(|r| is_instance_id(r));
    let req = CreateSnapshots {
        volumes,
        instances,
        full: call.flag("is_full")? == Some(true),
        name: call.text("snapshot_name").unwrap_or_default(),
        ..Default::default()
    };
    let (job, _) = st.ctx.service.create_snapshots(&call.caller(), req).await?;
    answer(st, call, &job).await
}

pub async fn delete(st: &Rest51, call: &Call, ids: &str) -> Out {
    let ids: Vec<String> = ids.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    if ids.is_empty() {
        return Err(QcError::invalid("name the snapshots to delete in the path: …/volume_snapshots/ss-a,ss-b"));
    }
    if ids.len() > MAX_LIST_ITEMS {
        return Err(QcError::invalid(format!(
            "the path names {} snapshots; at most {MAX_LIST_ITEMS} are accepted in one request",
            ids.len()
        )));
    }
    let ids = checked(Kind::Snapshot, ids)?;
    let job = st.ctx.service.delete_snapshots(&call.caller(), &ids, DeleteScope::PointAndLater).await?;
    answer(st, call, &job).await
}

pub async fn apply(st: &Rest51, call: &Call) -> Out {
    let ids = checked(Kind::Snapshot, call.list("snapshots")?)?;
    if ids.is_empty() {
        return Err(QcError::invalid("parameter [snapshots] is required (an array of snapshot ids)"));
    }
    let svc = &st.ctx.service;
    let caller = call.caller();
    for id in &ids {
        svc.snapshot(&caller, id).await?;
    }
    let mut first = None;
    for id in &ids {
        let job = svc.apply_snapshot(&caller, id).await?;
        first.get_or_insert(job);
    }
    let job = first.expect("at least one id");
    answer(st, call, &job).await
}

pub async fn capture_instance(st: &Rest51, call: &Call) -> Out {
    let id = call.required("snapshot")?;
    check(Kind::Snapshot, &id)?;
    let name = call.text("image_name").unwrap_or_default();
    let (job, _) = st.ctx.service.capture_image(&call.caller(), &id, &name).await?;
    answer(st, call, &job).await
}

pub async fn create_volume(st: &Rest51, call: &Call) -> Out {
    let id = call.required("snapshot")?;
    check(Kind::Snapshot, &id)?;
    let name = call.text("volume_name").unwrap_or_default();
    let (job, _) = st.ctx.service.create_volume_from_snapshot(&call.caller(), &id, &name, Some(&call.zone)).await?;
    answer(st, call, &job).await
}

pub async fn job(st: &Rest51, call: &Call, id: &str) -> Out {
    check(Kind::Job, id)?;
    let job = st.ctx.service.job(&call.caller(), id).await?;
    let rid = st.request_of(&call.caller(), &job.id).await?.unwrap_or_else(|| call.request_id.clone());
    Ok(job_object(&job, &call.zone_as_written, &rid))
}

pub async fn list_volumes(st: &Rest51, call: &Call) -> Out {
    let (offset, limit) = call.paging(10)?;
    let q = listing::volume_filter(call, &call.zone, &call.account)?;
    // Every disksnap volume is of the PERFORMANCE type.
    let vtype = call.text("volume_type");
    if let Some(t) = &vtype {
        if !["PERFORMANCE", "CAPACITY", "HIGH_PERFORMANCE"].contains(&t.as_str()) {
            return Err(QcError::invalid(format!(
                "parameter [volume_type] [{t}] is not one of PERFORMANCE, CAPACITY, HIGH_PERFORMANCE"
            )));
        }
    }
    let q = match q {
        Some(q) if limit > 0 && vtype.is_none_or(|t| t == "PERFORMANCE") => VolumeFilter { offset, limit, ..q },
        _ => return Ok(json!({"volumes": [], "total_count": 0})),
    };
    let (vols, total) = st.ctx.service.volumes(&call.caller(), &q).await?;
    let items: Vec<Value> = vols
        .iter()
        .map(|v| {
            let (status, transition) = wire::volume_status(v);
            json!({
                "volume_id": display(Kind::Volume, &v.id),
                "volume_name": v.name,
                "volume_type": "PERFORMANCE",
                "description": v.description,
                "size": v.size.div_ceil(1 << 30),
                "status": status,
                "transition_status": transition,
                "create_time": iso_z(v.create_time),
                "status_time": iso_z(v.status_time),
                "instance_id": v.instance_id.as_ref().map(|i| display(Kind::Instance, i)),
            })
        })
        .collect();
    Ok(json!({"volumes": items, "total_count": total}))
}
