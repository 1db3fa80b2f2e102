//! Volume home nodes (issue 13; README "Cluster").
//!
//! In a cluster each volume's file is on one node's disk, its home, recorded on the volume
//! (`home_node`). A new volume's home is the live node of its zone with the most free space
//! (from the heartbeats; within 1 GiB, the first by name). Only the home node moves a volume's
//! bytes: a job that does carries the home in its `node`, and only that node claims it
//! ([`Service::recover`], which every node runs every 2 s, picks up the jobs other nodes
//! submitted for it). A delete of volumes of several homes is one job per home.
//!
//! While a home node is down its volumes' jobs wait for it (roll backs, resizes, deletes:
//! their bytes are on that disk), and `disksnap volume show` / `job list` say so. Two kinds do
//! not wait, because waiting helps nobody:
//! - a capture whose home died is failed and undone: its instant (the clone on the dead
//!   node's disk) is gone with the node, and a point taken later would be another instant;
//! - a new volume (blank, or from a point in the shared store) has nothing acknowledged on it
//!   yet: it moves to a live node of its zone and starts again there.
//!
//! A volume's path is written by its home node just before it creates the file (another node
//! cannot know where the home keeps its files): an empty path means "not created yet".
//!
//! Outside a cluster (no `[node]`), and for volumes a command that is not a node made, there is
//! no home: any process on the data dir runs their jobs, as before.

use std::collections::HashMap;

use disksnap_meta::{Batch, Expect, JobRow, NodeRow, VolumeRow};

use crate::cluster::NODE_DOWN_AFTER;
use crate::error::{Result, ServiceError};
use crate::model::{now_ms, Job, JobStatus, Kind};
use crate::service::{Caller, Service};
use crate::work::{DeleteVolumes, Work};

/// Free space this close to the largest a zone's nodes report is as good as the largest.
const PLACEMENT_SLACK: i64 = 1 << 30;

/// What a job does when the home node of its volumes is down and its runner is gone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HomeDown {
    /// Wait for the node to come back (the bytes are on its disk).
    Wait,
    /// Fail it and undo what it reserved.
    Fail,
    /// Move these (new) volumes to a live node of their zone and run the job there from the start.
    Rehome(Vec<String>),
}

/// Whether a node's latest heartbeat says it is up at `now`.
fn is_up(n: &NodeRow, now: i64) -> bool {
    now - n.heartbeat <= NODE_DOWN_AFTER.as_millis() as i64
}

/// How a volume's home stands, for `disksnap volume show` and the console.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HomeStatus {
    pub node: String,
    pub up: bool,
    /// Milliseconds since its latest heartbeat (None: it never sent one).
    pub heartbeat_age_ms: Option<i64>,
    /// Open jobs of the volume that only that node can run.
    pub waiting_jobs: Vec<String>,
}

impl Service {
    /// Whether this process may move the bytes of a volume homed at `home`.
    pub(crate) fn is_home(&self, home: Option<&str>) -> bool {
        match home {
            None => true,
            Some(h) => self.node().is_some_and(|n| n.name == h),
        }
    }

    /// The home of a new volume of `zone`: None outside a cluster; else the live node of the
    /// zone with the most free space (within 1 GiB: the first by name), or this node when no
    /// heartbeat of the zone is fresh but this node is of it (its first heartbeat may not be
    /// written yet).
    pub(crate) async fn place_volume(&self, zone: &str) -> Result<Option<String>> {
        let Some(me) = self.node() else { return Ok(None) };
        let now = now_ms();
        let nodes = self.meta().nodes().await?;
        let live: Vec<&NodeRow> = nodes.iter().filter(|n| n.zone == zone && is_up(n, now)).collect();
        // Free space within PLACEMENT_SLACK of the most counts as a tie, broken by name: the
        // heartbeats are taken at different instants, and what was written in between must
        // not scatter one account's volumes (a disk and its copy, an instance's disks) over
        // nodes at random, since one operation moves one node's volumes only.
        let most = live.iter().map(|n| n.free_bytes).max().unwrap_or(0);
        let best = live
            .into_iter()
            .filter(|n| n.free_bytes >= most.saturating_sub(PLACEMENT_SLACK))
            .min_by(|a, b| a.name.cmp(&b.name));
        if let Some(n) = best {
            return Ok(Some(n.name.clone()));
        }
        if me.zone == zone {
            return Ok(Some(me.name.clone()));
        }
        let known: Vec<&str> = nodes.iter().filter(|n| n.zone == zone).map(|n| n.name.as_str()).collect();
        Err(ServiceError::InsufficientStorage(format!(
            "zone {zone} has no node up to hold a new volume ({}); start one of its nodes or use another zone",
            if known.is_empty() {
                "no node of it has ever started".to_string()
            } else {
                format!("its nodes: {}", known.join(", "))
            }
        )))
    }

    /// Where a new volume row's file goes: this process's own path when it is the home, else
    /// empty until the home node writes it ([`Service::own_volume_file`]).
    pub(crate) fn new_volume_path(&self, id: &str, zone: &str, home: Option<&str>) -> String {
        if self.is_home(home) {
            self.volume_path(id, zone).to_string_lossy().into_owned()
        } else {
            String::new()
        }
    }

    /// The node that must run a job reserving `batch`'s volumes: their common home (None: any
    /// process). Volumes on two nodes cannot be one job's: a point of several volumes is one
    /// instant of one machine.
    pub(crate) fn job_node(batch: &Batch) -> Result<Option<String>> {
        let mut homes = batch.put_volumes.iter().filter_map(|v| Some((v.home_node.as_ref()?, &v.id)));
        let Some((first, first_id)) = homes.next() else { return Ok(None) };
        if let Some((other, id)) = homes.find(|(h, _)| *h != first) {
            return Err(ServiceError::WrongState {
                kind: Kind::Volume,
                id: id.clone(),
                state: format!("on node {other}"),
                reason: format!(
                    "volume {first_id} is on node {first}: one operation moves the bytes of one node's volumes only \
                     (make the volumes of a group or instance in one zone with one node, or operate on them one by one)"
                ),
            });
        }
        Ok(Some(first.clone()))
    }

    /// Delete volumes homed on several nodes (`batch` locks them all): one job per home, each
    /// run by its node, committed together with the locks. The caller gets the job of the
    /// first home, which ends last: it waits for the others, then deletes its own volumes, or,
    /// when another part failed, fails too and keeps its own (every volume ends either deleted
    /// or as it was, and the job's error names the part that failed).
    pub(crate) async fn delete_across_homes(&self, caller: &Caller, ids: Vec<String>, batch: Batch) -> Result<Job> {
        let mut parts: Vec<(Option<String>, Vec<String>)> = Vec::new();
        for v in &batch.put_volumes {
            match parts.iter_mut().find(|(h, _)| *h == v.home_node) {
                Some((_, vols)) => vols.push(v.id.clone()),
                None => parts.push((v.home_node.clone(), vec![v.id.clone()])),
            }
        }
        let mut jobs = Vec::new();
        for (node, vols) in parts.iter().skip(1) {
            let work =
                Work::DeleteVolumes(DeleteVolumes { volumes: vols.clone(), snapshots: Vec::new(), after: Vec::new() });
            jobs.push((self.job_row(caller, &work, vols.clone(), node.clone()), work));
        }
        let (node, vols) = parts.swap_remove(0);
        let after = jobs.iter().map(|(row, _)| row.id.clone()).collect();
        let work = Work::DeleteVolumes(DeleteVolumes { volumes: vols, snapshots: Vec::new(), after });
        let first = self.job_row(caller, &work, ids, node);
        jobs.insert(0, (first.clone(), work));
        self.submit_rows(batch, jobs).await?;
        Job::try_from(first)
    }

    /// Wait until the jobs `ids` of `account` have ended (as long as it takes: a part whose
    /// home is down waits for it); an error names the first that failed.
    pub(crate) async fn wait_for_jobs(&self, account: &str, ids: &[String]) -> Result<()> {
        let caller = Caller::new(account);
        for id in ids {
            let job = match self.wait_job(&caller, id).await {
                Ok(job) => job,
                // Gone (its account emptied meanwhile): nothing left to wait for.
                Err(ServiceError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if job.status == JobStatus::Failed {
                return Err(ServiceError::Internal(format!(
                    "job {id} (the part of this operation on node {}) failed: {}",
                    job.node.as_deref().unwrap_or("-"),
                    job.error.as_deref().unwrap_or("no error recorded")
                )));
            }
        }
        Ok(())
    }

    /// The volume's row with its file's path set to this node's, recorded before the file is
    /// made (a volume whose home is another node, or that moved here, has none yet).
    pub(crate) async fn own_volume_file(&self, row: VolumeRow) -> Result<VolumeRow> {
        let mine = self.volume_path(&row.id, &row.zone).to_string_lossy().into_owned();
        if row.path == mine || row.home_node.is_none() {
            return Ok(row);
        }
        let (account, id) = (row.account.clone(), row.id.clone());
        let b = Batch { put_volumes: vec![VolumeRow { path: mine, ..row }], ..Default::default() };
        self.meta().commit(b).await?;
        self.volume_row_of(&account, &id).await
    }

    /// Heartbeats by node name, for deciding about other nodes' jobs.
    pub(crate) async fn node_beats(&self) -> Result<HashMap<String, NodeRow>> {
        Ok(self.meta().nodes().await?.into_iter().map(|n| (n.name.clone(), n)).collect())
    }

    /// Whether node `name` is up by its heartbeat.
    pub(crate) fn node_up(beats: &HashMap<String, NodeRow>, name: &str) -> bool {
        beats.get(name).is_some_and(|n| is_up(n, now_ms()))
    }

    /// Move job `row`'s new volumes `vols` to this node and claim the job (one commit, guarded
    /// by the old runner and the rows' versions): false when this node cannot hold them (not
    /// of their zone) or another process decided first.
    pub(crate) async fn rehome(&self, row: &mut JobRow, vols: &[String], old_runner: &str) -> Result<bool> {
        let Some(me) = self.node().cloned() else { return Ok(false) };
        let mut batch = Batch {
            expect: vec![Expect::JobRunner { id: row.id.clone(), expected: old_runner.to_string() }],
            ..Default::default()
        };
        for id in vols {
            let Some(v) = self.meta().volume(&row.account, id).await? else { continue };
            if v.zone != me.zone {
                return Ok(false);
            }
            // The new path is written when this node creates the file.
            batch.put_volumes.push(VolumeRow { home_node: Some(me.name.clone()), path: String::new(), ..v });
        }
        row.runner = Some(self.inner.runner.clone());
        row.node = Some(me.name.clone());
        batch.put_jobs.push(row.clone());
        Ok(self.meta().commit(batch).await.is_ok())
    }

    /// Remove this node's files of volumes that moved to another node while it was down (a
    /// creation or restore started again elsewhere): no job will use them again. Run by a node
    /// as it starts, before it serves. Returns how many it removed.
    pub async fn sweep_moved_volumes(&self) -> Result<usize> {
        let Some(me) = self.node().map(|n| n.name.clone()) else { return Ok(0) };
        let mut dirs: Vec<std::path::PathBuf> =
            self.zones().iter().filter_map(|z| Some(self.volume_path("x", &z.name).parent()?.to_path_buf())).collect();
        dirs.sort();
        dirs.dedup();
        let mut files = HashMap::new();
        for d in dirs {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".img").filter(|id| crate::ids::parse(Kind::Volume, id).is_some()) {
                    files.insert(id.to_string(), e.path());
                }
            }
        }
        if files.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = files.keys().cloned().collect();
        let mut removed = 0;
        for account in &self.inner.cfg.accounts {
            let filter = disksnap_meta::VolumeFilter {
                account: account.clone(),
                ids: ids.clone(),
                limit: ids.len() as u64,
                ..Default::default()
            };
            for v in self.meta().volumes(&filter).await?.items {
                let file = &files[&v.id];
                let moved = v.home_node.as_deref().is_some_and(|h| h != me) && std::path::Path::new(&v.path) != file;
                if moved {
                    match std::fs::remove_file(file) {
                        Ok(()) => {
                            removed += 1;
                            let clones = crate::points::points_dir(file);
                            let _ = std::fs::remove_dir_all(&clones);
                            tracing::info!(volume = %v.id, file = %file.display(), home = ?v.home_node, "removed the file of a volume that moved to another node");
                        }
                        Err(e) => {
                            tracing::warn!(file = %file.display(), error = %e, "could not remove the file of a volume that moved")
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    /// How volume `vol`'s home node stands, with the open jobs that wait for it (None: no home).
    pub async fn home_status(&self, caller: &crate::service::Caller, vol: &str) -> Result<Option<HomeStatus>> {
        let row = self.volume_row(caller, vol).await?;
        let Some(node) = row.home_node.clone() else { return Ok(None) };
        let beats = self.node_beats().await?;
        let up = Self::node_up(&beats, &node);
        let open = self
            .meta()
            .jobs(&disksnap_meta::JobFilter {
                account: Some(row.account.clone()),
                statuses: vec!["pending".into(), "working".into()],
                limit: u64::MAX >> 1,
                ..Default::default()
            })
            .await?;
        let waiting_jobs = open
            .items
            .iter()
            .filter(|j| j.node.as_deref() == Some(node.as_str()) && j.resources.contains(&format!("\"{}\"", row.id)))
            .map(|j| j.id.clone())
            .collect();
        Ok(Some(HomeStatus {
            heartbeat_age_ms: beats.get(&node).map(|n| (now_ms() - n.heartbeat).max(0)),
            node,
            up,
            waiting_jobs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(id: &str, home: Option<&str>) -> VolumeRow {
        VolumeRow {
            id: id.into(),
            account: "a".into(),
            zone: "z".into(),
            name: String::new(),
            description: String::new(),
            size: 1,
            kind: "data".into(),
            status: "available".into(),
            transition: String::new(),
            instance_id: None,
            path: String::new(),
            head_root: None,
            create_time: 0,
            status_time: 0,
            source_snapshot: None,
            home_node: home.map(Into::into),
            version: 1,
        }
    }

    use crate::cluster::NodeConfig;
    use crate::restore::tests::{read, write};
    use crate::{Caller, CreateSnapshots, CreateVolumes, JobStatus, ServiceConfig, VolumeFromSnapshot, ZoneConfig};

    async fn node(dir: &std::path::Path, name: &str) -> Service {
        let mut cfg = ServiceConfig::new(dir);
        cfg.chunk_size = Some(64 * 1024);
        cfg.zones = vec![
            ZoneConfig { name: "pek3a".into(), aliases: vec![] },
            ZoneConfig { name: "sh1a".into(), aliases: vec![] },
        ];
        cfg.node = Some(NodeConfig { name: name.into(), zone: "pek3a".into() });
        Service::open(cfg).await.unwrap()
    }

    /// A heartbeat of node `name` (zone pek3a) with this much free space, `age_ms` old.
    async fn beat(svc: &Service, name: &str, free: i64, age_ms: i64) {
        let now = now_ms();
        let row = NodeRow {
            name: name.into(),
            zone: "pek3a".into(),
            address: String::new(),
            free_bytes: free,
            started: now - age_ms,
            heartbeat: now - age_ms,
            running_jobs: 0,
        };
        svc.meta().node_heartbeat(&row).await.unwrap();
    }

    /// Two nodes of one zone on one database (and, here, one disk): a volume lives on the node
    /// with the most free space; only that node runs its jobs; when it is down, a capture is
    /// failed and undone, a new volume from a point moves to the live node, a roll back waits
    /// (and the volume's home status says so) until the node is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn volumes_live_on_their_home_node_and_its_jobs_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (node(dir.path(), "node-a").await, node(dir.path(), "node-b").await);
        let me = Caller::new("dev");
        beat(&a, "node-a", 10 << 30, 0).await;
        beat(&a, "node-b", 20 << 30, 0).await;

        // Asked of node-a, the volume goes to node-b (more free space); node-a leaves its job.
        let (job, vols) = a.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
        assert_eq!((vols[0].home_node.as_deref(), vols[0].path.as_str()), (Some("node-b"), ""));
        assert_eq!(job.node.as_deref(), Some("node-b"));
        assert!(a.recover().await.unwrap().is_empty(), "node-a took node-b's job");
        assert_eq!(a.start_handed_jobs().await.unwrap(), 0);
        assert_eq!(a.job(&me, &job.id).await.unwrap().status, JobStatus::Pending);
        assert_eq!(b.start_handed_jobs().await.unwrap(), 1);
        assert_eq!(b.wait_job(&me, &job.id).await.unwrap().status, JobStatus::Successful);
        let vol = a.volume(&me, &vols[0].id).await.unwrap();
        assert_eq!(vol.path, b.volume_path(&vol.id, "pek3a").to_string_lossy(), "the home wrote its path");
        write(&vol.path, 8192, b"point one");

        let snap = |svc: Service| {
            let (me, v) = (me.clone(), vol.id.clone());
            async move {
                svc.create_snapshots(&me, CreateSnapshots { volumes: vec![v], ..Default::default() }).await.unwrap()
            }
        };
        let (job, snaps) = snap(a.clone()).await;
        assert_eq!(job.node.as_deref(), Some("node-b"));
        b.start_handed_jobs().await.unwrap();
        assert_eq!(a.wait_job(&me, &job.id).await.unwrap().status, JobStatus::Successful);
        let point = snaps[0].id.clone();
        write(&vol.path, 8192, b"point two");

        // Submitted while node-b is up, not yet started: a capture, a new volume from the point.
        let (capture, lost) = snap(a.clone()).await;
        let req = VolumeFromSnapshot { snapshot: point.clone(), ..Default::default() };
        let (restore, copy) = a.restore_volume(&me, &req).await.unwrap();
        assert_eq!(copy.home_node.as_deref(), Some("node-b"));

        // node-b stops: its heartbeat gets old.
        beat(&a, "node-b", 20 << 30, 60_000).await;
        let handled = a.recover().await.unwrap();
        let ids: Vec<&str> = handled.iter().map(|j| j.id.as_str()).collect();
        assert!(ids.contains(&capture.id.as_str()) && ids.contains(&restore.id.as_str()), "{handled:?}");
        // the capture: failed, its point gone, the volume free again
        let failed = a.job(&me, &capture.id).await.unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert!(failed.error.as_deref().unwrap_or("").contains("node node-b"), "{failed:?}");
        assert!(a.snapshot(&me, &lost[0].id).await.is_err(), "the failed capture left its point");
        // the new volume: moved to node-a, restored there with the point's bytes
        assert_eq!(a.wait_job(&me, &restore.id).await.unwrap().status, JobStatus::Successful);
        let copy = a.volume(&me, &copy.id).await.unwrap();
        assert_eq!(copy.home_node.as_deref(), Some("node-a"));
        assert_eq!(read(&copy.path, 8192, 9), b"point one");

        // A roll back of node-b's volume waits for node-b, and the volume says for whom.
        let rollback = a.apply_snapshot(&me, &point).await.unwrap();
        assert_eq!(rollback.node.as_deref(), Some("node-b"));
        assert!(a.recover().await.unwrap().is_empty(), "the roll back must wait for node-b");
        let home = a.home_status(&me, &vol.id).await.unwrap().unwrap();
        assert!(!home.up && home.node == "node-b", "{home:?}");
        assert_eq!(home.waiting_jobs, vec![rollback.id.clone()]);
        assert_eq!(a.job(&me, &rollback.id).await.unwrap().status, JobStatus::Pending);
        assert_eq!(read(&vol.path, 8192, 9), b"point two");

        // node-b is back: it runs the roll back.
        beat(&a, "node-b", 20 << 30, 0).await;
        b.recover().await.unwrap();
        assert_eq!(b.wait_job(&me, &rollback.id).await.unwrap().status, JobStatus::Successful);
        assert_eq!(read(&vol.path, 8192, 9), b"point one");

        // A zone none of whose nodes is up cannot take a volume.
        let e = a
            .create_volumes(&me, CreateVolumes { size_gib: 1, zone: Some("sh1a".into()), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(&e, ServiceError::InsufficientStorage(m) if m.contains("zone sh1a")), "{e}");
    }

    /// One delete of volumes homed on two nodes (TerminateDisks of a disk and its copy): each
    /// node deletes its own, and the job the caller holds ends only when both parts have; when
    /// one part fails, the held job fails too and its own volume is kept, whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_delete_spans_volumes_of_two_homes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (node(dir.path(), "node-a").await, node(dir.path(), "node-b").await);
        let me = Caller::new("dev");
        let one = CreateVolumes { size_gib: 1, ..Default::default() };
        // One volume per node, by free space.
        let mut vols = Vec::new();
        for (free_a, free_b) in [(10, 20), (30, 20), (10, 20), (30, 20)] {
            beat(&a, "node-a", free_a << 30, 0).await;
            beat(&a, "node-b", free_b << 30, 0).await;
            let (job, v) = a.create_volumes(&me, one.clone()).await.unwrap();
            b.start_handed_jobs().await.unwrap();
            assert_eq!(a.wait_job(&me, &job.id).await.unwrap().status, JobStatus::Successful);
            vols.push(a.volume(&me, &v[0].id).await.unwrap());
        }
        let homes: Vec<_> = vols.iter().map(|v| v.home_node.clone().unwrap()).collect();
        assert_eq!(homes, ["node-b", "node-a", "node-b", "node-a"]);

        // Asked of node-a: the caller's job is node-b's part and waits for node-a's.
        let job = a.delete_volumes(&me, &[vols[0].id.clone(), vols[1].id.clone()]).await.unwrap();
        assert_eq!(job.node.as_deref(), Some("node-b"));
        while std::path::Path::new(&vols[1].path).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(a.job(&me, &job.id).await.unwrap().status, JobStatus::Pending, "ended before node-b's part ran");
        assert_eq!(b.start_handed_jobs().await.unwrap(), 1);
        assert_eq!(a.wait_job(&me, &job.id).await.unwrap().status, JobStatus::Successful);
        for v in &vols[..2] {
            assert!(a.volume(&me, &v.id).await.is_err() && !std::path::Path::new(&v.path).exists(), "{v:?}");
        }

        // node-a's part fails: node-b's (the caller's job) fails too, and both volumes stay.
        a.fail_next_jobs(crate::JobAction::DeleteVolumes, 1, "disk on fire").unwrap();
        let job = a.delete_volumes(&me, &[vols[2].id.clone(), vols[3].id.clone()]).await.unwrap();
        b.start_handed_jobs().await.unwrap();
        let end = b.wait_job(&me, &job.id).await.unwrap();
        assert_eq!(end.status, JobStatus::Failed);
        let error = end.error.unwrap_or_default();
        assert!(error.contains("node node-a") && error.contains("disk on fire"), "{error}");
        for v in &vols[2..] {
            let now = a.volume(&me, &v.id).await.unwrap();
            assert_eq!(now.status, crate::VolumeStatus::Available, "{now:?}");
            assert!(std::path::Path::new(&v.path).exists());
        }
    }

    #[test]
    fn a_job_runs_on_its_volumes_common_home() {
        let b = |v: Vec<VolumeRow>| Batch { put_volumes: v, ..Default::default() };
        assert_eq!(Service::job_node(&b(vec![])).unwrap(), None);
        assert_eq!(Service::job_node(&b(vec![vol("a", None)])).unwrap(), None);
        assert_eq!(Service::job_node(&b(vec![vol("a", Some("n1")), vol("b", Some("n1"))])).unwrap(), Some("n1".into()));
        let e = Service::job_node(&b(vec![vol("a", Some("n1")), vol("b", Some("n2"))])).unwrap_err();
        assert!(matches!(&e, ServiceError::WrongState { id, .. } if id == "b"), "{e}");
        assert!(e.to_string().contains("node n1") && e.to_string().contains("node n2"), "{e}");
    }
}
