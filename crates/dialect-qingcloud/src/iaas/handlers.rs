//! Parse each action's parameters, call the service, render QingCloud's answer. No rules here
//! beyond QingCloud's own (the point-and-later delete rule is a service scope this dialect picks).

use std::collections::HashMap;

use crate::ids::display;
use disksnap_service::ids::parse;
use disksnap_service::{
    Caller, CreateSnapshots, CreateVolumes, DeleteScope, JobAction, JobStatus, Kind, ServiceError, SnapshotFilter,
    VolumeFilter,
};
use serde_json::{json, Value};

use super::router::Action;
use crate::error::QcError;
use crate::ids::{check, check_volume_or_instance, checked, filter_ids, is_instance_id};
use crate::listing;
use crate::params::Params;
use crate::wire;
use disksnap_api_common::{ApiContext, Verified};

type Out = Result<Value, QcError>;

/// A handler's answer: a JSON value, or DescribeSnapshots' list already written as JSON text
/// (see `wire::write_snapshot_item`).
pub enum Answer {
    Json(Value),
    /// `snapshot_set` (a JSON array's text) and `total_count`.
    SnapshotSet {
        items: std::sync::Arc<[u8]>,
        total: u64,
    },
}

pub async fn handle(ctx: &ApiContext, who: &Verified, action: Action, p: &Params) -> Result<Answer, QcError> {
    let svc = &ctx.service;
    let caller = Caller::new(&who.account);
    // `zone` is always sent by the SDK; a request without one works in the default zone.
    let zone = match p.get("zone") {
        Some(z) => svc.resolve_zone(z)?,
        None => svc.default_zone(),
    };
    let h = H { ctx, caller, zone, account: who.account.clone() };
    match action {
        Action::DescribeSnapshots => h.describe_snapshots(p).await,
        Action::CreateSnapshots => h.create_snapshots(p).await.map(Answer::Json),
        Action::DeleteSnapshots => h.delete_snapshots(p).await.map(Answer::Json),
        Action::ApplySnapshots => h.apply_snapshots(p).await.map(Answer::Json),
        Action::ModifySnapshotAttributes => h.modify_snapshot(p).await.map(Answer::Json),
        Action::CaptureInstanceFromSnapshot => h.capture_instance(p).await.map(Answer::Json),
        Action::CreateVolumeFromSnapshot => h.volume_from_snapshot(p).await.map(Answer::Json),
        Action::DescribeVolumes => h.describe_volumes(p).await.map(Answer::Json),
        Action::CreateVolumes => h.create_volumes(p).await.map(Answer::Json),
        Action::DeleteVolumes => h.delete_volumes(p).await.map(Answer::Json),
        Action::AttachVolumes => h.attach_volumes(p).await.map(Answer::Json),
        Action::DetachVolumes => h.detach_volumes(p).await.map(Answer::Json),
        Action::ResizeVolumes => h.resize_volumes(p).await.map(Answer::Json),
        Action::ModifyVolumeAttributes => h.modify_volume(p).await.map(Answer::Json),
        Action::DescribeImages => h.describe_images(p).await.map(Answer::Json),
        Action::DeleteImages => h.delete_images(p).await.map(Answer::Json),
        Action::DescribeJobs => h.describe_jobs(p).await.map(Answer::Json),
        Action::DescribeZones => h.describe_zones(p).map(Answer::Json),
        Action::CreateTag => h.create_tag(p).await.map(Answer::Json),
        Action::DescribeTags => h.describe_tags(p).await.map(Answer::Json),
        Action::AttachTags => h.tag_pairs(p, true).await.map(Answer::Json),
        Action::DetachTags => h.tag_pairs(p, false).await.map(Answer::Json),
        Action::DeleteTags => h.delete_tags(p).await.map(Answer::Json),
    }
}

/// A list of ids of `kind`, at least one (each checked: [`check`]).
fn required_list(p: &Params, key: &str, kind: Kind) -> Result<Vec<String>, QcError> {
    let l = p.list(key);
    if l.is_empty() {
        return Err(QcError::invalid(format!("parameter [{key}.n] is required (at least one)")));
    }
    checked(kind, l)
}

/// One id parameter of `kind`, required (checked: [`check`]).
fn required_id<'a>(p: &'a Params, key: &str, kind: Kind) -> Result<&'a str, QcError> {
    let id = p.required(key)?;
    check(kind, id)?;
    Ok(id)
}

fn paging(p: &Params) -> Result<(u64, u64), QcError> {
    Ok((p.count("offset", None)?.unwrap_or(0), p.count("limit", Some(100))?.unwrap_or(20)))
}

fn listed(key: &str, items: Vec<Value>, total: u64) -> Value {
    json!({ key: items, "total_count": total })
}

struct H<'a> {
    ctx: &'a ApiContext,
    caller: Caller,
    zone: String,
    account: String,
}

impl H<'_> {
    fn svc(&self) -> &disksnap_service::Service {
        &self.ctx.service
    }

    /// `owner` filters match this account's `usr-…` id only.
    fn other_owner(&self, p: &Params) -> bool {
        p.get("owner").is_some_and(|o| o != wire::owner(&self.account))
    }

    async fn describe_snapshots(&self, p: &Params) -> Result<Answer, QcError> {
        let (offset, limit) = paging(p)?;
        let verbose = p.flag("verbose", &[0, 1])? == Some(1);
        let Some(q) = listing::snapshot_filter(p, &self.zone, &self.account)? else {
            return Ok(Answer::SnapshotSet { items: b"[]".as_slice().into(), total: 0 });
        };
        let q = SnapshotFilter { offset, limit, ..q };
        // The service names each point's volume and instance in its page lookups (no listing of
        // every instance of the account), and keeps the rendered items while nothing they show
        // changes (the envelope, which is per request, is written around them).
        let view = if verbose { "qingcloud.iaas verbose" } else { "qingcloud.iaas" };
        let (items, total) = self
            .svc()
            .snapshots_rendered(&self.caller, &q, view, |snaps| {
                let mut items = Vec::with_capacity(snaps.len() * 700 + 2);
                items.push(b'[');
                for (i, s) in snaps.iter().enumerate() {
                    if i > 0 {
                        items.push(b',');
                    }
                    let resource = wire::resource_of(s, &s.volume_name, s.instance_name.as_deref());
                    wire::write_snapshot_item(&mut items, s, &resource, verbose);
                }
                items.push(b']');
                items
            })
            .await?;
        Ok(Answer::SnapshotSet { items, total })
    }

    async fn instance_names(&self) -> Result<HashMap<String, String>, QcError> {
        Ok(self.svc().instances(&self.caller).await?.into_iter().map(|i| (i.id, i.name)).collect())
    }

    async fn create_snapshots(&self, p: &Params) -> Out {
        let resources = p.list("resources");
        if resources.is_empty() {
            return Err(QcError::invalid("parameter [resources.n] is required (at least one)"));
        }
        for r in &resources {
            check_volume_or_instance(r)?;
        }
        let (instances, volumes): (Vec<String>, Vec<String>) =
            resources.iter().cloned().partition(|r| is_instance_id(r));
        let req = CreateSnapshots {
            volumes,
            instances,
            full: p.flag("is_full", &[0, 1])? == Some(1),
            name: p.get("snapshot_name").unwrap_or("").to_string(),
            ..Default::default()
        };
        let (job, snaps) = self.svc().create_snapshots(&self.caller, req).await?;
        // One id per resource, in request order; an instance answers with its system-disk point.
        let ids: Vec<String> = resources
            .iter()
            .filter_map(|r| {
                if is_instance_id(r) {
                    let bare = parse(Kind::Instance, r)?;
                    let mine = || snaps.iter().filter(|s| s.instance_id.as_deref() == Some(bare.as_str()));
                    mine().find(|s| s.volume_kind == disksnap_service::VolumeKind::System).or_else(|| mine().next())
                } else {
                    let bare = parse(Kind::Volume, r)?;
                    snaps.iter().find(|s| s.volume_id == bare)
                }
                .map(|s| display(Kind::Snapshot, &s.id))
            })
            .collect();
        Ok(json!({"job_id": display(Kind::Job, &job.id), "snapshots": ids}))
    }

    async fn delete_snapshots(&self, p: &Params) -> Out {
        let ids = required_list(p, "snapshots", Kind::Snapshot)?;
        // QingCloud's rule: a point takes its later points with it. `merge_action=commit` (SDK
        // only) keeps them: the engine's native single-point delete.
        let scope = match p.get("merge_action") {
            None => DeleteScope::PointAndLater,
            Some("commit") => DeleteScope::Points,
            Some(m) => {
                return Err(QcError::invalid(format!("parameter [merge_action] [{m}] is not supported; use commit")))
            }
        };
        let job = self.svc().delete_snapshots(&self.caller, &ids, scope).await?;
        Ok(json!({"job_id": display(Kind::Job, &job.id)}))
    }

    async fn apply_snapshots(&self, p: &Params) -> Out {
        let ids = required_list(p, "snapshots", Kind::Snapshot)?;
        // Check every point first so a bad id in the list starts nothing.
        for id in &ids {
            self.svc().snapshot(&self.caller, id).await?;
        }
        let mut first = None;
        for id in &ids {
            let job = self.svc().apply_snapshot(&self.caller, id).await?;
            first.get_or_insert(job.id);
        }
        Ok(json!({"job_id": display(Kind::Job, &first.unwrap_or_default())}))
    }

    async fn modify_snapshot(&self, p: &Params) -> Out {
        let id = required_id(p, "snapshot", Kind::Snapshot)?;
        self.svc().modify_snapshot(&self.caller, id, p.get("snapshot_name"), p.get("description")).await?;
        Ok(json!({}))
    }

    async fn capture_instance(&self, p: &Params) -> Out {
        let id = required_id(p, "snapshot", Kind::Snapshot)?;
        let (job, image) = self.svc().capture_image(&self.caller, id, p.get("image_name").unwrap_or("")).await?;
        Ok(json!({"image_id": display(Kind::Image, &image.id), "job_id": display(Kind::Job, &job.id)}))
    }

    async fn volume_from_snapshot(&self, p: &Params) -> Out {
        let id = required_id(p, "snapshot", Kind::Snapshot)?;
        let name = p.get("volume_name").unwrap_or("");
        let (job, vol) = self.svc().create_volume_from_snapshot(&self.caller, id, name, Some(&self.zone)).await?;
        Ok(json!({"volume_id": display(Kind::Volume, &vol.id), "job_id": display(Kind::Job, &job.id)}))
    }

    async fn describe_volumes(&self, p: &Params) -> Out {
        let (offset, limit) = paging(p)?;
        let verbose = p.flag("verbose", &[0, 1])? == Some(1);
        let q = listing::volume_filter(p, &self.zone, &self.account)?;
        // Every disksnap volume is QingCloud type 0.
        let other_type = p.int("volume_type")?.is_some_and(|t| t != 0);
        let q = match q {
            Some(q) if !other_type => VolumeFilter { offset, limit, ..q },
            _ => return Ok(listed("volume_set", vec![], 0)),
        };
        let (vols, total) = self.svc().volumes(&self.caller, &q).await?;
        // Instance names are read only when a volume on the page is attached to one.
        let instances =
            if vols.iter().any(|v| v.instance_id.is_some()) { self.instance_names().await? } else { HashMap::new() };
        let items = vols
            .iter()
            .map(|v| {
                let iname = v.instance_id.as_ref().and_then(|i| instances.get(i)).map(String::as_str);
                wire::volume_item(v, &self.account, iname, verbose)
            })
            .collect();
        Ok(listed("volume_set", items, total))
    }

    async fn create_volumes(&self, p: &Params) -> Out {
        let size = p.int("size")?.ok_or_else(|| QcError::invalid("parameter [size] is required (GB)"))?;
        if size <= 0 {
            return Err(QcError::invalid(format!("parameter [size] should be a positive number of GB, not [{size}]")));
        }
        // Documented types: 0 performance, 1 high performance, 2 super high, 3 capacity, 5/6 NeonSAN, 10 enterprise,
        // 100/200 basic/SSD enterprise. disksnap stores bytes the same way for all of them.
        p.flag("volume_type", &[0, 1, 2, 3, 4, 5, 6, 10, 100, 200])?;
        let count = p.count("count", None)?.unwrap_or(1);
        if !(1..=100).contains(&count) {
            return Err(QcError::invalid(format!("parameter [count] should be 1 to 100, not [{count}]")));
        }
        let req = CreateVolumes {
            zone: Some(self.zone.clone()),
            name: p.get("volume_name").unwrap_or("").to_string(),
            size_gib: size as u64,
            count: count as u32,
            ..Default::default()
        };
        let (job, vols) = self.svc().create_volumes(&self.caller, req).await?;
        let ids: Vec<String> = vols.iter().map(|v| display(Kind::Volume, &v.id)).collect();
        Ok(json!({"job_id": display(Kind::Job, &job.id), "volumes": ids}))
    }

    async fn delete_volumes(&self, p: &Params) -> Out {
        let ids = required_list(p, "volumes", Kind::Volume)?;
        let job = self.svc().delete_volumes(&self.caller, &ids).await?;
        Ok(json!({"job_id": display(Kind::Job, &job.id)}))
    }

    async fn attach_volumes(&self, p: &Params) -> Out {
        let ids = required_list(p, "volumes", Kind::Volume)?;
        let instance = required_id(p, "instance", Kind::Instance)?;
        let vols = self.svc().attach_volumes(&self.caller, &ids, instance).await?;
        let job = self
            .svc()
            .record_finished_job(&self.caller, JobAction::AttachVolumes, vols.into_iter().map(|v| v.id).collect())
            .await?;
        Ok(json!({"job_id": display(Kind::Job, &job.id)}))
    }

    async fn detach_volumes(&self, p: &Params) -> Out {
        let ids = required_list(p, "volumes", Kind::Volume)?;
        // `instance` is required by QingCloud; disksnap checks it names the volumes' instance.
        let instance = required_id(p, "instance", Kind::Instance)?;
        let bare = parse(Kind::Instance, instance).ok_or_else(|| ServiceError::not_found(Kind::Instance, instance))?;
        for id in &ids {
            let v = self.svc().volume(&self.caller, id).await?;
            if v.instance_id.as_deref().is_some_and(|i| i != bare) {
                return Err(ServiceError::wrong_state(
                    Kind::Volume,
                    id,
                    "in-use",
                    format!(
                        "it is attached to {}, not {instance}",
                        display(Kind::Instance, v.instance_id.as_deref().unwrap_or(""))
                    ),
                )
                .into());
            }
        }
        let vols = self.svc().detach_volumes(&self.caller, &ids).await?;
        let job = self
            .svc()
            .record_finished_job(&self.caller, JobAction::DetachVolumes, vols.into_iter().map(|v| v.id).collect())
            .await?;
        Ok(json!({"job_id": display(Kind::Job, &job.id)}))
    }

    async fn resize_volumes(&self, p: &Params) -> Out {
        let ids = required_list(p, "volumes", Kind::Volume)?;
        let size = p.int("size")?.ok_or_else(|| QcError::invalid("parameter [size] is required (GB)"))?;
        if size <= 0 {
            return Err(QcError::invalid(format!("parameter [size] should be a positive number of GB, not [{size}]")));
        }
        for id in &ids {
            self.svc().volume(&self.caller, id).await?;
        }
        let mut first = None;
        for id in &ids {
            let job = self.svc().resize_volume(&self.caller, id, size as u64).await?;
            first.get_or_insert(job.id);
        }
        Ok(json!({"job_id": display(Kind::Job, &first.unwrap_or_default())}))
    }

    async fn modify_volume(&self, p: &Params) -> Out {
        let id = required_id(p, "volume", Kind::Volume)?;
        self.svc().modify_volume(&self.caller, id, p.get("volume_name"), p.get("description")).await?;
        Ok(json!({}))
    }

    async fn describe_images(&self, p: &Params) -> Out {
        let (offset, limit) = paging(p)?;
        // Only the account's own captured images exist here: `provider=system` lists none.
        if p.get("provider") == Some("system") || p.get("visibility") == Some("public") || self.other_owner(p) {
            return Ok(listed("image_set", vec![], 0));
        }
        let ids = p.list("images");
        let search = p.get("search_word").map(str::to_ascii_lowercase);
        let status = p.get("status");
        // Images are few per account: filter the whole list, then page.
        let (all, _) = self.svc().images(&self.caller, 0, u32::MAX as u64).await?;
        // An id of another kind ([`check`]) is in `ids` but not in `wanted`: it matches nothing.
        let wanted: Vec<String> =
            ids.iter().filter(|i| check(Kind::Image, i).is_ok()).filter_map(|i| parse(Kind::Image, i)).collect();
        let matching: Vec<_> = all
            .into_iter()
            .filter(|i| i.zone == self.zone)
            .filter(|i| ids.is_empty() || wanted.contains(&i.id))
            .filter(|i| status.is_none_or(|s| s == i.status.as_str()))
            .filter(|i| search.as_deref().is_none_or(|w| i.name.to_ascii_lowercase().contains(w) || i.id.contains(w)))
            .collect();
        let total = matching.len() as u64;
        let items = matching
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|i| wire::image_item(i, &self.account))
            .collect();
        Ok(listed("image_set", items, total))
    }

    async fn delete_images(&self, p: &Params) -> Out {
        let ids = required_list(p, "images", Kind::Image)?;
        let gone = self.svc().delete_images(&self.caller, &ids).await?;
        let job = self
            .svc()
            .record_finished_job(&self.caller, JobAction::DeleteImages, gone.into_iter().map(|i| i.id).collect())
            .await?;
        Ok(json!({"job_id": display(Kind::Job, &job.id)}))
    }

    async fn describe_jobs(&self, p: &Params) -> Out {
        let (offset, limit) = paging(p)?;
        let mut statuses = Vec::new();
        for w in p.list("status") {
            statuses.push(JobStatus::parse(&w).ok_or_else(|| {
                QcError::invalid(format!("parameter [status] [{w}] is not one of pending, working, successful, failed"))
            })?);
        }
        // A word no job action is named by matches no job.
        let action = match p.get("job_action") {
            Some(w) => match wire::job_action_of(w) {
                Some(a) => Some(a),
                None => return Ok(listed("job_set", Vec::new(), 0)),
            },
            None => None,
        };
        let Some(jobs) = filter_ids(Kind::Job, p.list("jobs")) else {
            return Ok(listed("job_set", Vec::new(), 0));
        };
        let (jobs, total) = self.svc().jobs(&self.caller, &jobs, &statuses, action, offset, limit).await?;
        Ok(listed("job_set", jobs.iter().map(|j| wire::job_item(j, &self.account)).collect(), total))
    }

    fn describe_zones(&self, p: &Params) -> Out {
        let wanted = p.list("zones");
        let statuses = p.list("status");
        let items: Vec<Value> = self
            .svc()
            .zones()
            .iter()
            .filter(|z| wanted.is_empty() || wanted.iter().any(|w| w.eq_ignore_ascii_case(&z.name)))
            .filter(|_| statuses.is_empty() || statuses.iter().any(|s| s == "active"))
            .map(|z| json!({"zone_id": z.name, "status": "active"}))
            .collect();
        let total = items.len() as u64;
        Ok(listed("zone_set", items, total))
    }

    async fn create_tag(&self, p: &Params) -> Out {
        let name = p.required("tag_name")?;
        let tag = self.svc().create_tag(&self.caller, name, "").await?;
        Ok(json!({"tag_id": display(Kind::Tag, &tag.id)}))
    }

    async fn describe_tags(&self, p: &Params) -> Out {
        let (offset, limit) = paging(p)?;
        let verbose = p.flag("verbose", &[0, 1])? == Some(1);
        if self.other_owner(p) {
            return Ok(listed("tag_set", vec![], 0));
        }
        let wanted: Vec<String> = filter_ids(Kind::Tag, p.list("tags"))
            .unwrap_or_default()
            .iter()
            .filter_map(|t| parse(Kind::Tag, t))
            .collect();
        let given = !p.list("tags").is_empty();
        let search = p.get("search_word").map(str::to_ascii_lowercase);
        let tags: Vec<_> = self
            .svc()
            .tags(&self.caller)
            .await?
            .into_iter()
            .filter(|t| !given || wanted.contains(&t.id))
            .filter(|t| search.as_deref().is_none_or(|w| t.key.to_ascii_lowercase().contains(w) || t.id.contains(w)))
            .collect();
        let total = tags.len() as u64;
        let mut items = Vec::new();
        for t in tags.iter().skip(offset as usize).take(limit as usize) {
            let sq = SnapshotFilter { tag_ids: vec![t.id.clone()], limit: 100, ..Default::default() };
            let (snaps, n_snaps) = self.svc().snapshots(&self.caller, &sq).await?;
            let vq = VolumeFilter { tag_ids: vec![t.id.clone()], limit: 100, ..Default::default() };
            let (vols, n_vols) = self.svc().volumes(&self.caller, &vq).await?;
            let pairs = verbose.then(|| {
                let tid = display(Kind::Tag, &t.id);
                snaps
                    .iter()
                    .map(|s| json!({"tag_id": tid, "resource_type": "snapshot", "resource_id": display(Kind::Snapshot, &s.id)}))
                    .chain(vols.iter().map(|v| json!({"tag_id": tid, "resource_type": "volume", "resource_id": display(Kind::Volume, &v.id)})))
                    .collect()
            });
            let mut item = wire::tag_item(t, n_snaps + n_vols, pairs);
            let counts: Vec<Value> = [("snapshot", n_snaps), ("volume", n_vols)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| json!({"resource_type": k, "count": n}))
                .collect();
            item["resource_type_count"] = Value::Array(counts);
            items.push(item);
        }
        Ok(listed("tag_set", items, total))
    }

    async fn tag_pairs(&self, p: &Params, attach: bool) -> Out {
        let dicts = p.dicts("resource_tag_pairs");
        if dicts.is_empty() {
            return Err(QcError::invalid(
                "parameter [resource_tag_pairs.n] is required (tag_id, resource_type, resource_id)",
            ));
        }
        let mut pairs = Vec::new();
        for (n, d) in dicts.iter().enumerate() {
            let field = |k: &str| {
                d.get(k).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
                    QcError::invalid(format!("parameter [resource_tag_pairs.{}.{k}] is required", n + 1))
                })
            };
            let (tag, kind, resource) = (field("tag_id")?, field("resource_type")?, field("resource_id")?);
            if kind != "snapshot" && kind != "volume" {
                return Err(QcError::invalid(format!(
                    "resource_type [{kind}] cannot be tagged here; use snapshot or volume"
                )));
            }
            check(Kind::Tag, &tag)?;
            check(if kind == "snapshot" { Kind::Snapshot } else { Kind::Volume }, &resource)?;
            pairs.push((tag, resource));
        }
        if attach {
            self.svc().attach_tags(&self.caller, &pairs).await?;
        } else {
            self.svc().detach_tags(&self.caller, &pairs).await?;
        }
        Ok(json!({}))
    }

    async fn delete_tags(&self, p: &Params) -> Out {
        let ids = required_list(p, "tags", Kind::Tag)?;
        self.svc().delete_tags(&self.caller, &ids).await?;
        Ok(json!({}))
    }
}
