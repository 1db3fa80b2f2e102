//! Snapshots: create (full or incremental), list, describe, modify, delete, recover, cease.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use disksnap_meta::{Batch, Expect, JobFilter, Page, SnapshotFilter, SnapshotListing, SnapshotRow, VolumeRow};

use crate::chain;
use crate::error::{Result, ServiceError};
use crate::ids;
use crate::jobs::JobProgress;
use crate::model::*;
use crate::page_cache::CachedPage;
use crate::points::{self, Consistency};
use crate::service::{Caller, Service};
use crate::work::{self, Done, Work};

pub const MAX_PAGE: u64 = 100;
pub const MAX_SNAPSHOTS_PER_CALL: usize = 100;

#[derive(Clone, Debug, Default)]
pub struct CreateSnapshots {
    pub volumes: Vec<String>,
    /// Every volume of each instance is snapshotted, at the same snapshot_time.
    pub instances: Vec<String>,
    /// Start a new chain even when the volume has one.
    pub full: bool,
    pub name: String,
    pub description: String,
    pub origin: Option<Origin>,
    /// Released (ceased) automatically when this many days pass.
    pub retention_days: Option<u32>,
    /// Tag ids to bind to every new point.
    pub tag_ids: Vec<String>,
}

/// How far a delete reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteScope {
    /// Only the points named (Aliyun, Tencent, Cinder).
    Points,
    /// With each point, the later points of its chain; with a full point, its whole chain
    /// (QingCloud, 51idc).
    PointAndLater,
}

/// Rows → views: chain totals on full points, head_chain, volume and instance names, tags,
/// from lookups already made for the whole page (never a query per row).
fn decorate_with(l: SnapshotListing) -> Result<Vec<Snapshot>> {
    let totals: HashMap<String, disksnap_meta::ChainTotals> =
        l.chain_totals.into_iter().map(|t| (t.root_id.clone(), t)).collect();
    let vols: HashMap<String, VolumeRow> = l.volumes.into_iter().map(|v| (v.id.clone(), v)).collect();
    let instances: HashMap<String, String> = l.instances.into_iter().map(|i| (i.id, i.name)).collect();
    let mut tags: HashMap<String, Vec<disksnap_meta::TagRow>> = HashMap::new();
    for (rid, t) in l.tags {
        tags.entry(rid).or_default().push(t);
    }
    l.page
        .items
        .into_iter()
        .map(|r| {
            let mut s = Snapshot::from_row(r)?;
            let vol = vols.get(&s.volume_id);
            s.head_chain = vol.and_then(|v| v.head_root.as_ref()) == Some(&s.root_id);
            // A deleted volume is not named (as a DescribeVolumes lookup of it finds nothing).
            s.volume_name = vol.filter(|v| v.status != "deleted").map(|v| v.name.clone()).unwrap_or_default();
            s.instance_name = s.instance_id.as_ref().and_then(|i| instances.get(i)).cloned();
            if s.full {
                let t = totals.get(&s.id);
                s.chain = Some(Chain {
                    total_size: t.map(|t| t.total_size.max(0) as u64).unwrap_or(s.size),
                    total_count: t.map(|t| t.total_count as u64).unwrap_or(1),
                    latest_snapshot_time: t.map(|t| to_time(t.latest_snapshot_time)).unwrap_or(s.snapshot_time),
                });
            }
            s.tags = tags.remove(&s.id).unwrap_or_default().into_iter().map(Into::into).collect();
            Ok(s)
        })
        .collect()
}

/// Parse a list of ids of one kind; ids that cannot be ours are dropped. Returns None when
/// every given id was dropped (the filter must then match nothing, not everything: a `vol-…`
/// given as an instance leaves nothing).
pub(crate) fn parse_all(kind: Kind, given: &[String]) -> Option<Vec<String>> {
    let parsed: Vec<String> = given.iter().filter_map(|i| ids::parse(kind, i)).collect();
    (given.is_empty() || !parsed.is_empty()).then_some(parsed)
}

impl Service {
    /// Snapshot volumes (and every volume of the instances named) at one shared
    /// snapshot_time. Each point is incremental on its volume's head chain unless `full` is
    /// asked or the volume has no live chain.
    pub async fn create_snapshots(&self, caller: &Caller, req: CreateSnapshots) -> Result<(Job, Vec<Snapshot>)> {
        self.create_snapshots_grouped(caller, req, None).await
    }

    /// [`Service::create_snapshots`], and with `group` that snapshot group's row, its members
    /// filled in, committed in the same batch as the points (crate::groups).
    pub(crate) async fn create_snapshots_grouped(
        &self,
        caller: &Caller,
        req: CreateSnapshots,
        group: Option<&disksnap_meta::SnapshotGroupRow>,
    ) -> Result<(Job, Vec<Snapshot>)> {
        retrying!(async {
            self.check_account(caller)?;
            let mut vols: Vec<(VolumeRow, Option<String>)> = Vec::new();
            for id in &req.volumes {
                let v = self.volume_row(caller, id).await?;
                vols.push((v, None));
            }
            for id in &req.instances {
                let bare = self.parse_id(Kind::Instance, id)?;
                self.meta()
                    .instance(&caller.account, &bare)
                    .await?
                    .ok_or_else(|| ServiceError::not_found(Kind::Instance, id))?;
                let members = self.meta().volumes_of_instance(&caller.account, &bare).await?;
                if members.is_empty() {
                    return Err(ServiceError::wrong_state(
                        Kind::Instance,
                        id,
                        "empty",
                        "it has no volumes to snapshot",
                    ));
                }
                vols.extend(members.into_iter().map(|v| (v, Some(bare.clone()))));
            }
            if vols.is_empty() {
                return Err(ServiceError::MissingParameter("resources".into()));
            }
            let mut seen = BTreeSet::new();
            vols.retain(|(v, _)| seen.insert(v.id.clone()));
            if vols.len() > MAX_SNAPSHOTS_PER_CALL {
                return Err(ServiceError::invalid(
                    "resources",
                    format!("at most {MAX_SNAPSHOTS_PER_CALL} volumes per call"),
                ));
            }
            if let Some(d) = req.retention_days {
                if !(1..=65536).contains(&d) {
                    return Err(ServiceError::invalid("retention_days", "must be 1 to 65536 days"));
                }
            }
            let mut tag_ids = Vec::new();
            for t in &req.tag_ids {
                let bare = self.parse_id(Kind::Tag, t)?;
                self.meta().tag(&caller.account, &bare).await?.ok_or_else(|| ServiceError::not_found(Kind::Tag, t))?;
                tag_ids.push(bare);
            }
            let now = now_ms();
            let mut batch = Batch::default();
            let mut snaps = Vec::new();
            for (vol, inst) in vols {
                self.ensure_idle(&vol)?;
                let parent = if req.full { None } else { self.head_point(&vol).await? };
                // The parent is written back unchanged: the write bumps its version, so a delete
                // (or a cease) of it decided before this commit is refused as stale, and one decided
                // after sees this point building on it. Its index must outlive the capture.
                if let Some(p) = &parent {
                    batch.put_snapshots.push(p.clone());
                }
                let id = ids::new_id();
                let row = SnapshotRow {
                    id: id.clone(),
                    account: caller.account.clone(),
                    zone: vol.zone.clone(),
                    name: req.name.clone(),
                    description: req.description.clone(),
                    volume_id: vol.id.clone(),
                    volume_size: vol.size,
                    volume_kind: vol.kind.clone(),
                    instance_id: inst.or_else(|| vol.instance_id.clone()),
                    is_full: parent.is_none(),
                    root_id: parent.as_ref().map(|p| p.root_id.clone()).unwrap_or_else(|| id.clone()),
                    parent_id: parent.map(|p| p.id),
                    is_head: false,
                    status: SnapshotStatus::Creating.as_str().into(),
                    transition: SnapshotTransition::Creating.as_str().into(),
                    is_taken: false,
                    progress: 0,
                    snapshot_time: now,
                    create_time: now,
                    status_time: now,
                    deleted_time: None,
                    expire_time: req.retention_days.map(|d| now + d as i64 * 86_400_000),
                    size: 0,
                    origin: req.origin.unwrap_or(Origin::User).as_str().into(),
                    retention_days: req.retention_days.map(i64::from),
                    encrypted: false,
                    used_by_images: 0,
                    used_by_volumes: 0,
                    logical_size: None,
                    consistency: String::new(),
                    version: 0,
                };
                let lock = self.lock_volume(&vol, VolumeTransition::Snapshotting);
                batch.expect.extend(lock.expect);
                batch.put_volumes.extend(lock.put_volumes);
                for t in &tag_ids {
                    batch.bind_tags.push((t.clone(), id.clone()));
                }
                snaps.push(row);
            }
            batch.put_snapshots.extend(snaps.iter().cloned());
            if let Some(g) = group {
                batch.put_snapshot_groups.push(crate::groups::with_members(g, &snaps, now));
            }
            let snap_ids: Vec<String> = snaps.iter().map(|s| s.id.clone()).collect();
            let mut resources = snap_ids.clone();
            resources.extend(snaps.iter().map(|s| s.volume_id.clone()));
            let job = self
                .submit(caller, Work::CreateSnapshots(work::CreateSnapshots { snapshots: snap_ids }), resources, batch)
                .await?;
            Ok((job, snaps.into_iter().map(Snapshot::from_row).collect::<Result<_>>()?))
        })
    }

    /// The point an incremental snapshot of `vol` builds on: the newest available point of
    /// its head chain, if any.
    async fn head_point(&self, vol: &VolumeRow) -> Result<Option<SnapshotRow>> {
        let Some(root) = &vol.head_root else { return Ok(None) };
        let chain = self.meta().chain(root).await?;
        // A point being deleted (or busy otherwise) is passed over: its index may be gone
        // before this capture reads it.
        let head = chain.into_iter().rev().find(|s| {
            s.status == SnapshotStatus::Available.as_str() && s.transition.is_empty() && s.volume_id == vol.id
        });
        // A point captured with another chunk size (store rebuilt) cannot be a parent.
        Ok(head.filter(|h| self.inner.store.has_index(&h.id)))
    }

    pub(crate) async fn exec_create_snapshots(
        &self,
        account: &str,
        snap_ids: &[String],
        progress: &Arc<JobProgress>,
    ) -> Result<Done> {
        let mut todo = Vec::new();
        for id in snap_ids {
            let snap = self.snapshot_row_of(account, id).await?;
            let vol = self.volume_row_of(account, &snap.volume_id).await?;
            todo.push((snap, vol));
        }
        // Every volume of the request is frozen (cloned) before any is read, so the points
        // of an instance's volumes are one instant apart only by the clones' own few ms.
        let mut frozen = Vec::new();
        for (snap, vol) in &todo {
            let (s, v) = (snap.clone(), vol.clone());
            frozen.push(self.blocking(move || points::freeze(&s, &v)).await?);
        }
        let instant: Vec<(String, i64, bool)> = todo
            .iter()
            .zip(&frozen)
            .filter(|(_, f)| f.consistency == Consistency::Instant)
            .map(|((s, _), _)| (s.id.clone(), 0, true))
            .collect();
        if !instant.is_empty() {
            self.meta().commit(Batch { snapshot_progress: instant, ..Default::default() }).await?;
        }
        if self.config().test_fail_capture_after_clone {
            return Err(ServiceError::Internal(
                "test_fail_capture_after_clone: failing between clone and commit".into(),
            ));
        }
        let mut done = Vec::new();
        for ((snap, vol), frozen) in todo.into_iter().zip(frozen) {
            let stats = self.capture_one(&snap, &vol, frozen, progress).await?;
            done.push((snap.id, stats));
        }
        Ok(Done::Captured(done))
    }

    /// Everything captured: commit all points (and their chains' new heads) together.
    pub(crate) async fn settle_create_snapshots(
        &self,
        account: &str,
        captured: &[(String, disksnap_engine::CaptureStats)],
    ) -> Result<Batch> {
        let mut batch = Batch::default();
        let now = now_ms();
        for (id, stats) in captured {
            let mut s = self.snapshot_row_of(account, id).await?;
            s.status = SnapshotStatus::Available.as_str().into();
            s.transition = String::new();
            s.is_taken = true;
            s.progress = 100;
            s.size = stats.added_bytes as i64;
            s.volume_size = stats.size as i64;
            s.logical_size = Some(stats.logical_bytes as i64);
            s.status_time = now;
            let mut vol = self.volume_row_of(account, &s.volume_id).await?;
            // The capture read a clone exactly when the point is instant (freeze made it, and
            // only undo removes it before this).
            let vol_path = std::path::Path::new(&vol.path);
            let instant = points::clone_path(vol_path, &s.id).exists();
            s.consistency = if instant { Consistency::Instant } else { Consistency::ReadPass }.as_str().into();
            let mut chain_rows: Vec<SnapshotRow> =
                self.meta().chain(&s.root_id).await?.into_iter().filter(|r| r.id != s.id).collect();
            chain_rows.push(s.clone());
            batch.put_snapshots.push(s.clone());
            batch.put_snapshots.extend(chain::rebuild(chain_rows).changed);
            // The new point's clone is the one kept; older ones go now. Should the commit fail,
            // undo removes the new clone too and the next capture hashes everything: slower,
            // never wrong.
            points::prune(vol_path, instant.then_some(s.id.as_str()));
            vol.head_root = Some(s.root_id.clone());
            batch.put_volumes.push(self.settled(vol));
        }
        dedup_last_wins(&mut batch.put_snapshots);
        Ok(batch)
    }

    /// Capture one volume into the snapshot's index, reporting is_taken and progress to the
    /// database while it runs.
    async fn capture_one(
        &self,
        snap: &SnapshotRow,
        vol: &VolumeRow,
        frozen: points::Frozen,
        progress: &Arc<JobProgress>,
    ) -> Result<disksnap_engine::CaptureStats> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let store = self.inner.store.clone();
        let (name, vol_path, parent, p) =
            (snap.id.clone(), std::path::PathBuf::from(&vol.path), snap.parent_id.clone(), progress.clone());
        // An instant point was taken when its clone was made (see exec_create_snapshots).
        let mut taken = frozen.consistency == Consistency::Instant;
        let consistency = frozen.consistency;
        let mut work = tokio::task::spawn_blocking(move || {
            let changed = points::tracked_changes(&vol_path, &frozen, parent.as_deref(), store.chunk_size());
            store.capture_tracked(&name, &frozen.source, parent.as_deref(), changed.as_deref(), p.as_ref(), &mut || {
                let _ = tx.send(());
            })
        });
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                Some(()) = rx.recv(), if !taken => {
                    taken = true;
                    let b = Batch { snapshot_progress: vec![(snap.id.clone(), 99, true)], ..Default::default() };
                    self.meta().commit(b).await?;
                }
                _ = tick.tick() => {
                    let pct = progress.percent().min(99) as i64;
                    let b = Batch { snapshot_progress: vec![(snap.id.clone(), pct, taken)], ..Default::default() };
                    self.meta().commit(b).await?;
                }
            }
        };
        let stats = result.map_err(|e| ServiceError::Internal(format!("capture worker panicked: {e}")))??;
        tracing::info!(
            snapshot = %snap.id, volume = %vol.id, full = snap.parent_id.is_none(),
            consistency = consistency.as_str(), tracked = stats.tracked_slots, read_bytes = stats.read_bytes,
            changed = stats.changed_slots, written = stats.written_chunks, added_bytes = stats.added_bytes,
            secs = stats.elapsed.as_secs_f64(), "captured"
        );
        Ok(stats)
    }

    pub(crate) async fn undo_create_snapshots(&self, account: &str, snap_ids: &[String]) -> Result<Batch> {
        let mut batch = Batch::default();
        for id in snap_ids {
            self.remove_index(id).await;
            if let Some(s) = self.meta().snapshot(account, id).await? {
                if let Some(v) = self.meta().volume(account, &s.volume_id).await? {
                    self.drop_clone(std::path::Path::new(&v.path), id)?;
                    if v.transition == VolumeTransition::Snapshotting.as_str() {
                        batch.put_volumes.push(self.settled(v));
                    }
                }
                batch.delete_snapshots.push(s.id);
            }
        }
        Ok(batch)
    }

    pub async fn snapshot(&self, caller: &Caller, id: &str) -> Result<Snapshot> {
        let row = self.snapshot_row(caller, id).await?;
        Ok(self.decorate(vec![row]).await?.remove(0))
    }

    /// Every point `q` matches (its paging ignored), read in keyset pages of [`MAX_PAGE`] with
    /// no COUNT: for dialects that sort, sum or page in memory what the indexes cannot.
    pub async fn all_snapshots(&self, caller: &Caller, q: &SnapshotFilter) -> Result<Vec<Snapshot>> {
        let mut q = SnapshotFilter { offset: 0, limit: MAX_PAGE, after: None, skip_count: true, ..q.clone() };
        let mut out = Vec::new();
        loop {
            let (page, _) = self.snapshots(caller, &q).await?;
            let more = page.len() as u64 == MAX_PAGE;
            q.after = page.last().map(|s| (s.create_time.timestamp_millis(), s.id.clone()));
            out.extend(page);
            if !more {
                return Ok(out);
            }
        }
    }

    /// A page of the points `q` matches and the count of all of them (0 with `skip_count`).
    /// `limit` is clamped to 1..=[`MAX_PAGE`]; 0 means 20.
    pub async fn snapshots(&self, caller: &Caller, q: &SnapshotFilter) -> Result<(Vec<Snapshot>, u64)> {
        let Some(stored) = self.stored_snapshot_filter(caller, q)? else { return Ok((Vec::new(), 0)) };
        let listing = self.meta().snapshot_listing(&stored).await?;
        let total = listing.page.total;
        Ok((decorate_with(listing)?, total))
    }

    /// [`Service::snapshots`] as `render` writes the page's items, and the total: served from
    /// the page cache (crate::page_cache) while nothing a page shows has changed since it was
    /// rendered. `view` names the rendering (dialect and options): `render` must make the same
    /// bytes from the same points whenever it runs (no request ids, no clock).
    pub async fn snapshots_rendered(
        &self,
        caller: &Caller,
        q: &SnapshotFilter,
        view: &str,
        render: impl FnOnce(&[Snapshot]) -> Vec<u8>,
    ) -> Result<CachedPage> {
        let Some(stored) = self.stored_snapshot_filter(caller, q)? else { return Ok((render(&[]).into(), 0)) };
        // The whole filter, account included: one account's page is never another's. Status
        // overrides are request state a dialect read, not the store's: such a page is not kept.
        let key = stored.shown.overrides.is_empty().then(|| format!("{view}\n{stored:?}"));
        self.page_cached(key, || async {
            let listing = self.meta().snapshot_listing(&stored).await?;
            let total = listing.page.total;
            Ok(((render(&decorate_with(listing)?).into(), total), true))
        })
        .await
    }

    /// The page cache's key for the list `q` asks of `caller` as `view` renders it (dialect,
    /// options and whatever else of the request the rendering shows besides the store), for
    /// [`Service::page_cached`] around a rendering that reads the list through
    /// [`Service::snapshots`] (and other reads the page generation covers). None when `q`
    /// matches nothing, or carries status overrides (request state a dialect read): not cached.
    pub fn snapshot_page_key(&self, caller: &Caller, q: &SnapshotFilter, view: &str) -> Result<Option<String>> {
        Ok(self
            .stored_snapshot_filter(caller, q)?
            .filter(|stored| stored.shown.overrides.is_empty())
            .map(|stored| format!("{view}\n{stored:?}")))
    }

    /// The store's filter for `q` (ids parsed, zone and account resolved, limit clamped), or
    /// None when it can match nothing.
    fn stored_snapshot_filter(&self, caller: &Caller, q: &SnapshotFilter) -> Result<Option<SnapshotFilter>> {
        self.check_account(caller)?;
        let (Some(ids_), Some(volume_ids), Some(instance_ids), Some(tag_ids)) = (
            parse_all(Kind::Snapshot, &q.ids),
            parse_all(Kind::Volume, &q.volume_ids),
            parse_all(Kind::Instance, &q.instance_ids),
            parse_all(Kind::Tag, &q.tag_ids),
        ) else {
            return Ok(None);
        };
        let root_id = match &q.root_id {
            Some(r) => match ids::parse(Kind::Chain, r) {
                Some(r) => Some(r),
                None => return Ok(None),
            },
            None => None,
        };
        let stored = SnapshotFilter {
            account: caller.account.clone(),
            ids: ids_,
            volume_ids,
            instance_ids,
            tag_ids,
            root_id,
            zone: self.stored_zone(q.zone.as_deref())?,
            search: q.search.clone().filter(|s| !s.is_empty()),
            limit: match q.limit {
                0 => 20,
                n => n.min(MAX_PAGE),
            },
            ..q.clone()
        };
        Ok(Some(stored))
    }

    /// Rows → views, for rows not read through `snapshot_listing`: the same lookups, one query
    /// each for all the rows.
    async fn decorate(&self, rows: Vec<SnapshotRow>) -> Result<Vec<Snapshot>> {
        let Some(account) = rows.first().map(|r| r.account.clone()) else { return Ok(Vec::new()) };
        let roots: Vec<String> = rows.iter().filter(|r| r.is_full).map(|r| r.id.clone()).collect();
        let vol_ids: Vec<String> =
            rows.iter().map(|r| r.volume_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let inst_ids: Vec<String> =
            rows.iter().filter_map(|r| r.instance_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let ids_: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let listing = SnapshotListing {
            chain_totals: self.meta().chain_totals(&roots).await?,
            volumes: self.meta().volumes_by_id(&account, &vol_ids).await?,
            instances: self.meta().instances_by_id(&account, &inst_ids).await?,
            tags: self.meta().tags_of(&ids_).await?,
            page: Page { items: rows, total: 0 },
        };
        decorate_with(listing)
    }

    pub async fn modify_snapshot(
        &self,
        caller: &Caller,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Snapshot> {
        retrying!(async {
            let mut row = self.snapshot_row(caller, id).await?;
            if row.status == SnapshotStatus::Ceased.as_str() {
                return Err(ServiceError::wrong_state(Kind::Snapshot, id, "ceased", "it is gone for good"));
            }
            if let Some(n) = name {
                row.name = n.to_string();
            }
            if let Some(d) = description {
                row.description = d.to_string();
            }
            self.meta().commit(Batch { put_snapshots: vec![row.clone()], ..Default::default() }).await?;
            self.snapshot(caller, id).await
        })
    }

    /// Keep a point for `days` from its creation time, then release it (`None`: until deleted).
    pub async fn set_snapshot_retention(&self, caller: &Caller, id: &str, days: Option<u32>) -> Result<Snapshot> {
        retrying!(async {
            let mut row = self.snapshot_row(caller, id).await?;
            if matches!(row.status.as_str(), "deleted" | "ceased") {
                return Err(ServiceError::wrong_state(Kind::Snapshot, id, row.status.clone(), "it was deleted"));
            }
            if let Some(d) = days {
                if !(1..=65536).contains(&d) {
                    return Err(ServiceError::invalid("retention_days", "must be 1 to 65536 days"));
                }
            }
            row.retention_days = days.map(i64::from);
            row.expire_time = days.map(|d| row.create_time + d as i64 * 86_400_000);
            self.meta().commit(Batch { put_snapshots: vec![row], ..Default::default() }).await?;
            self.snapshot(caller, id).await
        })
    }

    /// Set (`Some`) or remove (`None`) metadata keys of a snapshot.
    pub async fn set_snapshot_metadata(
        &self,
        caller: &Caller,
        id: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<(String, String)>> {
        let row = self.snapshot_row(caller, id).await?;
        for (k, v) in changes {
            if k.is_empty() || k.len() > 255 || v.as_ref().is_some_and(|v| v.len() > 255) {
                return Err(ServiceError::invalid("metadata", "keys must be 1 to 255 characters, values at most 255"));
            }
        }
        let batch = Batch {
            snapshot_metadata: changes.iter().map(|(k, v)| (row.id.clone(), k.clone(), v.clone())).collect(),
            ..Default::default()
        };
        self.meta().commit(batch).await?;
        Ok(self.meta().snapshot_metadata(&row.id).await?)
    }

    pub async fn snapshot_metadata(&self, caller: &Caller, id: &str) -> Result<Vec<(String, String)>> {
        let row = self.snapshot_row(caller, id).await?;
        Ok(self.meta().snapshot_metadata(&row.id).await?)
    }

    /// The metadata of a page of the caller's snapshots (bare ids) in one query, instead of one
    /// query per item. Ids not of the caller's account get no entry.
    pub async fn snapshots_metadata(
        &self,
        caller: &Caller,
        ids_: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>> {
        self.check_account(caller)?;
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (id, k, v) in self.meta().snapshots_metadata(&caller.account, ids_).await? {
            out.entry(id).or_default().push((k, v));
        }
        Ok(out)
    }

    /// Delete points. A full point becomes `deleted` (recoverable for the retention window);
    /// an incremental one is ceased at once. Its data is released when nothing else needs it.
    pub async fn delete_snapshots(&self, caller: &Caller, ids_: &[String], scope: DeleteScope) -> Result<Job> {
        retrying!(async {
            let (targets, batch) = self.mark_deleting(caller, ids_, scope).await?;
            self.submit(
                caller,
                Work::DeleteSnapshots(work::DeleteSnapshots { snapshots: targets.clone() }),
                targets,
                batch,
            )
            .await
        })
    }

    /// The points a delete of `ids_` takes (bare ids), and the batch that marks them deleting
    /// if they are still as read.
    pub(crate) async fn mark_deleting(
        &self,
        caller: &Caller,
        ids_: &[String],
        scope: DeleteScope,
    ) -> Result<(Vec<String>, Batch)> {
        if ids_.is_empty() {
            return Err(ServiceError::MissingParameter("snapshots".into()));
        }
        let mut targets: Vec<SnapshotRow> = Vec::new();
        for id in ids_ {
            let row = self.snapshot_row(caller, id).await?;
            self.ensure_deletable(&row, id)?;
            if self.read_by_a_job(&row).await? {
                return Err(ServiceError::wrong_state(
                    Kind::Snapshot,
                    id,
                    "in-use",
                    "a running job reads it (a snapshot being created on it, or a restore or image capture from it); retry when that job ends",
                ));
            }
            if scope == DeleteScope::PointAndLater {
                let chain = self.meta().chain(&row.root_id).await?;
                for later in chain.into_iter().filter(|c| {
                    (c.snapshot_time, &c.id) > (row.snapshot_time, &row.id)
                        && c.status != SnapshotStatus::Ceased.as_str()
                }) {
                    if later.status == SnapshotStatus::Deleted.as_str() {
                        continue;
                    }
                    self.ensure_deletable(&later, &later.id)?;
                    targets.push(later);
                }
            }
            targets.push(row);
        }
        let mut seen = BTreeSet::new();
        targets.retain(|t| seen.insert(t.id.clone()));
        let mut batch = Batch::default();
        for t in &targets {
            batch.expect.push(Expect::SnapshotTransition { id: t.id.clone(), expected: String::new() });
            batch.expect.push(Expect::SnapshotStatus { id: t.id.clone(), expected: t.status.clone() });
            let mut marked = t.clone();
            marked.transition = SnapshotTransition::Deleting.as_str().into();
            batch.put_snapshots.push(marked);
        }
        Ok((targets.iter().map(|t| t.id.clone()).collect(), batch))
    }

    /// Whether a running job reads this point's index: a snapshot being created on it, or a
    /// restore to a new volume or an image capture from it. Such a point is not deleted or
    /// ceased until the job ends. (Each of those jobs writes the point's row when it is
    /// submitted, so a delete decided before that is refused as stale and decides again.)
    async fn read_by_a_job(&self, row: &SnapshotRow) -> Result<bool> {
        let chain = self.meta().chain(&row.root_id).await?;
        if chain
            .iter()
            .any(|c| c.status == SnapshotStatus::Creating.as_str() && c.parent_id.as_deref() == Some(&row.id))
        {
            return Ok(true);
        }
        let open = self
            .meta()
            .jobs(&JobFilter {
                account: Some(row.account.clone()),
                statuses: vec![JobStatus::Pending.as_str().into(), JobStatus::Working.as_str().into()],
                limit: 1000,
                ..Default::default()
            })
            .await?;
        Ok(open.items.iter().any(|j| {
            matches!(
                serde_json::from_str::<Work>(&j.params),
                Ok(Work::RestoreVolume(work::RestoreVolume { snapshot, .. }) | Work::CaptureImage(work::CaptureImage { snapshot, .. }))
                    if snapshot == row.id
            )
        }))
    }

    fn ensure_deletable(&self, row: &SnapshotRow, shown: &str) -> Result<()> {
        if row.status != SnapshotStatus::Available.as_str() {
            return Err(ServiceError::wrong_state(
                Kind::Snapshot,
                shown,
                row.status.clone(),
                "only an available snapshot can be deleted",
            ));
        }
        if !row.transition.is_empty() {
            return Err(ServiceError::wrong_state(
                Kind::Snapshot,
                shown,
                row.transition.clone(),
                "it is busy with another operation",
            ));
        }
        Ok(())
    }

    pub(crate) async fn settle_delete_snapshots(&self, account: &str, snap_ids: &[String]) -> Result<Batch> {
        let now = now_ms();
        let mut leaving: HashMap<String, SnapshotRow> = HashMap::new();
        for id in snap_ids {
            let Some(mut s) = self.meta().snapshot(account, id).await? else { continue };
            s.status = if s.is_full { SnapshotStatus::Deleted } else { SnapshotStatus::Ceased }.as_str().into();
            s.transition = String::new();
            s.deleted_time = Some(now);
            s.status_time = now;
            leaving.insert(s.id.clone(), s);
        }
        self.retell_chains(account, leaving).await
    }

    /// Commit-ready batch for points changing status, with every affected chain rebuilt and
    /// volumes' head chains moved where a chain ends.
    async fn retell_chains(&self, account: &str, changing: HashMap<String, SnapshotRow>) -> Result<Batch> {
        let mut batch = Batch::default();
        let roots: BTreeSet<String> = changing.values().map(|s| s.root_id.clone()).collect();
        for root in roots {
            let rows: Vec<SnapshotRow> = self
                .meta()
                .chain(&root)
                .await?
                .into_iter()
                .map(|r| changing.get(&r.id).cloned().unwrap_or(r))
                .collect();
            let volume_id = rows.first().map(|r| r.volume_id.clone());
            let rebuilt = chain::rebuild(rows);
            batch.put_snapshots.extend(rebuilt.changed);
            if let Some(vid) = volume_id {
                if let Some(mut v) = self.meta().volume(account, &vid).await? {
                    if v.head_root.as_deref() == Some(&root) {
                        v.head_root = rebuilt.head.and(rebuilt.root);
                        batch.put_volumes.push(v);
                    }
                }
            }
        }
        for s in changing.into_values() {
            if !batch.put_snapshots.iter().any(|r| r.id == s.id) {
                batch.put_snapshots.push(s);
            }
        }
        dedup_last_wins(&mut batch.put_snapshots);
        Ok(batch)
    }

    pub(crate) async fn undo_delete_snapshots(&self, account: &str, snap_ids: &[String]) -> Result<Batch> {
        let mut batch = Batch::default();
        for id in snap_ids {
            if let Some(mut s) = self.meta().snapshot(account, id).await? {
                s.transition = String::new();
                batch.put_snapshots.push(s);
            }
        }
        Ok(batch)
    }

    /// Bring a deleted full point back within its retention window.
    pub async fn recover_snapshot(&self, caller: &Caller, id: &str) -> Result<Snapshot> {
        retrying!(async {
            let row = self.snapshot_row(caller, id).await?;
            if row.status != SnapshotStatus::Deleted.as_str() {
                return Err(ServiceError::wrong_state(
                    Kind::Snapshot,
                    id,
                    row.status.clone(),
                    "only a deleted full snapshot can be recovered",
                ));
            }
            let window = self.config().deleted_retention.as_millis() as i64;
            if row.deleted_time.unwrap_or(0) + window <= now_ms() {
                return Err(ServiceError::wrong_state(Kind::Snapshot, id, "deleted", "its recovery window has passed"));
            }
            let mut s = row.clone();
            s.status = SnapshotStatus::Available.as_str().into();
            s.deleted_time = None;
            s.status_time = now_ms();
            let mut batch = self.retell_chains(&caller.account, HashMap::from([(s.id.clone(), s.clone())])).await?;
            if let Some(mut v) = self.meta().volume(&caller.account, &s.volume_id).await? {
                if v.head_root.is_none() {
                    v.head_root = Some(s.root_id.clone());
                    batch.put_volumes.retain(|x| x.id != v.id);
                    batch.put_volumes.push(v);
                }
            }
            batch.expect.push(Expect::SnapshotStatus { id: s.id.clone(), expected: row.status });
            self.meta().commit(batch).await?;
            self.snapshot(caller, id).await
        })
    }

    /// Cease deleted points whose window has closed and points whose retention expired,
    /// then drop their indexes (their chunks go at the next GC). Returns how many it ceased.
    pub async fn cease_due(&self) -> Result<usize> {
        retrying!(async {
            let now = now_ms();
            let window = self.config().deleted_retention.as_millis() as i64;
            let due = self.meta().snapshots_due(now - window, now).await?;
            let mut by_account: HashMap<String, HashMap<String, SnapshotRow>> = HashMap::new();
            for mut s in due {
                if !s.transition.is_empty() || self.read_by_a_job(&s).await? {
                    continue; // busy, or a capture reads its index: next round
                }
                s.status = SnapshotStatus::Ceased.as_str().into();
                s.deleted_time.get_or_insert(now);
                s.status_time = now;
                by_account.entry(s.account.clone()).or_default().insert(s.id.clone(), s);
            }
            let mut n = 0;
            for (account, rows) in by_account {
                let ids_: Vec<String> = rows.keys().cloned().collect();
                let mut batch = self.retell_chains(&account, rows).await?;
                for id in &ids_ {
                    batch.expect.push(Expect::SnapshotTransition { id: id.clone(), expected: String::new() });
                }
                self.meta().commit(batch).await?;
                for id in &ids_ {
                    self.remove_index(id).await;
                }
                n += ids_.len();
            }
            Ok(n)
        })
    }

    /// Remove a point's index (and pin), on the blocking pool: on S3 it is a DELETE, and a
    /// store that does not answer holds its caller `request_timeout` per try, which must not be
    /// an async worker. A failure only leaves the index to GC, which removes any index no point
    /// names once it is older than the grace period.
    async fn remove_index(&self, id: &str) {
        let (store, name) = (self.inner.store.clone(), id.to_string());
        if let Err(e) = self.blocking(move || store.remove_index(&name)).await {
            tracing::warn!(snapshot = %id, error = %e, "could not remove the point's index now; GC removes it later");
        }
    }

    /// Drop the indexes of ceased points (after their job committed).
    pub(crate) async fn release_ceased(&self, account: &str, snap_ids: &[String]) {
        for id in snap_ids {
            if let Ok(Some(s)) = self.meta().snapshot(account, id).await {
                if s.status == SnapshotStatus::Ceased.as_str() {
                    self.remove_index(id).await;
                }
            }
        }
    }
}

/// Keep the last row written for each id (later changes win).
fn dedup_last_wins(rows: &mut Vec<SnapshotRow>) {
    let mut seen = BTreeSet::new();
    let mut out: Vec<SnapshotRow> = rows.drain(..).rev().filter(|r| seen.insert(r.id.clone())).collect();
    out.reverse();
    *rows = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceConfig;
    use crate::volumes::CreateVolumes;

    #[tokio::test]
    async fn retention_can_be_set_and_cleared_after_creation() {
        let dir = tempfile::tempdir().unwrap();
        let svc = Service::open(ServiceConfig::new(dir.path())).await.unwrap();
        let me = Caller::new("dev");
        let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
        svc.wait_job(&me, &job.id).await.unwrap();
        let req = CreateSnapshots { volumes: vec![vols[0].id.clone()], ..Default::default() };
        let (job, snaps) = svc.create_snapshots(&me, req).await.unwrap();
        svc.wait_job(&me, &job.id).await.unwrap();
        let id = snaps[0].id.clone();
        let s = svc.set_snapshot_retention(&me, &id, Some(3)).await.unwrap();
        assert_eq!(s.retention_days, Some(3));
        assert_eq!(s.expire_time, Some(s.create_time + chrono::Duration::days(3)));
        let s = svc.set_snapshot_retention(&me, &id, None).await.unwrap();
        assert_eq!((s.retention_days, s.expire_time), (None, None));
        assert!(matches!(
            svc.set_snapshot_retention(&me, &id, Some(0)).await,
            Err(ServiceError::InvalidParameter { .. })
        ));
        // the Usage filters: nothing was made from it yet
        let q = SnapshotFilter { used_by_images: Some(false), used_by_volumes: Some(false), ..Default::default() };
        assert_eq!(svc.snapshots(&me, &q).await.unwrap().1, 1);
        let q = SnapshotFilter { used_by_volumes: Some(true), ..Default::default() };
        assert_eq!(svc.snapshots(&me, &q).await.unwrap().1, 0);
    }
}
