//! Jobs racing on one chain and one volume (issue 10, item 1).
//!
//! Each round builds a chain of points with known bytes, then fires at the same instant
//! deletes of several points (each its own job), a roll back, a new point, a rename and a
//! restore; afterwards nothing may be left half-done: no job or transition left open, every
//! chain consistent, the volume's head chain alive, `verify` clean, and every point that is
//! still available restores exactly the bytes it was taken with. Before row writes were
//! guarded, these rounds left volumes stuck in `rolling-back`/`snapshotting`, deleted points
//! shown `available` without an index, and points stuck in `creating`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use disksnap_service::*;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// The tests write only into the first `SPAN` bytes of a 1 GiB volume; the rest stays a hole
/// in every version, so comparing this span (and the size) compares the whole volume.
const SPAN: u64 = 8 << 20;

struct World {
    svc: Service,
    me: Caller,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServiceConfig::new(dir.path());
    cfg.chunk_size = Some(64 * 1024);
    let svc = Service::open(cfg).await.unwrap();
    World { svc, me: Caller::new("dev"), _dir: dir }
}

fn digest(path: &str) -> String {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; SPAN as usize];
    let n = f.read_at(&mut buf, 0).unwrap();
    buf.truncate(n);
    let len = f.metadata().unwrap().len();
    format!("{len}:{:x}", Sha256::digest(&buf))
}

fn scribble(path: &str, rng: &mut impl Rng) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for _ in 0..3 {
        let mut block = vec![0u8; 64 * 1024];
        rng.fill(&mut block[..]);
        let at = rng.gen_range(0..SPAN / 4096 - 16) * 4096;
        f.write_all_at(&block, at).unwrap();
    }
}

async fn done(w: &World, job: &Job) -> Job {
    tokio::time::timeout(std::time::Duration::from_secs(60), w.svc.wait_job(&w.me, &job.id))
        .await
        .expect("a job ran for more than a minute")
        .unwrap()
}

async fn new_volume(w: &World) -> Volume {
    let (job, vols) = w.svc.create_volumes(&w.me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    assert_eq!(done(w, &job).await.status, JobStatus::Successful);
    w.svc.volume(&w.me, &vols[0].id).await.unwrap()
}

async fn point(w: &World, vol: &Volume) -> String {
    let req = CreateSnapshots { volumes: vec![vol.id.clone()], ..Default::default() };
    let (job, snaps) = w.svc.create_snapshots(&w.me, req).await.unwrap();
    assert_eq!(done(w, &job).await.status, JobStatus::Successful);
    snaps[0].id.clone()
}

/// The invariants after the dust settles; `expected` maps point ids to the digests of the bytes
/// they may have been taken with (one, unless the test cannot tell which of two calls went first).
async fn check(w: &World, expected: &HashMap<String, Vec<String>>, round: &str) {
    let (open, n) = w.svc.jobs(&w.me, &[], &[JobStatus::Pending, JobStatus::Working], None, 0, 100).await.unwrap();
    assert_eq!(n, 0, "{round}: jobs left open: {open:?}");
    let (vols, _) = w.svc.volumes(&w.me, &VolumeFilter { limit: 100, ..Default::default() }).await.unwrap();
    let snaps = all_snapshots(w).await;
    for v in &vols {
        assert_eq!(v.transition, VolumeTransition::None, "{round}: volume {} left {:?}", v.id, v.transition);
        assert_ne!(v.status, VolumeStatus::Creating, "{round}: volume {} left creating", v.id);
        if let Some(root) = &v.head_root {
            assert!(
                snaps.iter().any(|s| &s.id == root && s.full),
                "{round}: volume {}'s head chain {root} is not a live chain",
                v.id
            );
        }
    }
    let mut chains: BTreeMap<String, Vec<&Snapshot>> = BTreeMap::new();
    for s in &snaps {
        assert_eq!(s.transition, SnapshotTransition::None, "{round}: snapshot {} left {:?}", s.id, s.transition);
        assert_ne!(s.status, SnapshotStatus::Creating, "{round}: snapshot {} left creating", s.id);
        chains.entry(s.root_id.clone()).or_default().push(s);
    }
    for (root, mut pts) in chains {
        pts.sort_by_key(|s| (s.snapshot_time, s.create_time, s.id.clone()));
        assert!(pts[0].full && pts[0].id == root && pts[0].parent_id.is_none(), "{round}: chain {root}: {pts:#?}");
        for pair in pts.windows(2) {
            assert!(!pair[1].full, "{round}: chain {root} has two full points");
            assert_eq!(pair[1].parent_id.as_ref(), Some(&pair[0].id), "{round}: chain {root} mislinked");
        }
        let head = pts.iter().rev().find(|s| s.status == SnapshotStatus::Available).map(|s| s.id.clone());
        for s in &pts {
            assert_eq!(s.is_head, Some(&s.id) == head.as_ref(), "{round}: chain {root}: head of {}", s.id);
        }
    }
    let v = w.svc.verify(Arc::new(disksnap_engine::NoProgress)).await.unwrap();
    assert!(v.ok(), "{round}: verify: {v:?}");
    // Every available point restores its own bytes.
    for s in snaps.iter().filter(|s| s.status == SnapshotStatus::Available) {
        let want = expected.get(&s.id).unwrap_or_else(|| panic!("{round}: unknown point {}", s.id));
        let (job, vol) = w.svc.create_volume_from_snapshot(&w.me, &s.id, "check", None).await.unwrap();
        assert_eq!(done(w, &job).await.status, JobStatus::Successful, "{round}: restore of {}", s.id);
        let vol = w.svc.volume(&w.me, &vol.id).await.unwrap();
        let got = digest(&vol.path);
        assert!(want.contains(&got), "{round}: point {} restored {got}, not one of {want:?}", s.id);
        let job = w.svc.delete_volumes(&w.me, &[vol.id]).await.unwrap();
        assert_eq!(done(w, &job).await.status, JobStatus::Successful);
    }
}

async fn all_snapshots(w: &World) -> Vec<Snapshot> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let q = SnapshotFilter { offset, limit: 100, ..Default::default() };
        let (page, total) = w.svc.snapshots(&w.me, &q).await.unwrap();
        offset += page.len() as u64;
        out.extend(page);
        if offset >= total {
            return out;
        }
    }
}

/// What one racer did: a job to wait for, or a refusal (a busy resource is a fair answer).
enum Shot {
    Job(&'static str, Job),
    Refused(&'static str, ServiceError),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_rollbacks_and_new_points_racing_on_one_chain_leave_every_point_whole() {
    let w = Arc::new(world().await);
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..10 {
        let round_name = format!("round {round}");
        let vol = new_volume(&w).await;
        let mut pts = Vec::new();
        for _ in 0..6 {
            scribble(&vol.path, &mut rng);
            let id = point(&w, &vol).await;
            expected.insert(id.clone(), vec![digest(&vol.path)]);
            pts.push(id);
        }
        scribble(&vol.path, &mut rng);
        let before = digest(&vol.path);
        // QingCloud's rule on even rounds (a point takes the later ones with it), points alone on odd.
        let scope = if round % 2 == 0 { DeleteScope::Points } else { DeleteScope::PointAndLater };
        let start = Arc::new(tokio::sync::Barrier::new(9));
        let mut racers = Vec::new();
        let fire = |what: &'static str, f: futures_box::Op| {
            let (w, start) = (w.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                match f(w.clone()).await {
                    Ok(job) => Shot::Job(what, job),
                    Err(e) => Shot::Refused(what, e),
                }
            })
        };
        for (i, p) in pts.iter().enumerate().take(5) {
            let p = p.clone();
            let what: &'static str = ["delete p0", "delete p1", "delete p2", "delete p3", "delete p4"][i];
            racers.push(fire(
                what,
                Box::new(move |w: Arc<World>| {
                    Box::pin(async move { w.svc.delete_snapshots(&w.me, &[p], scope).await })
                }),
            ));
        }
        let (p5, p3, vid) = (pts[5].clone(), pts[3].clone(), vol.id.clone());
        racers.push(fire(
            "roll back to p5",
            Box::new(move |w: Arc<World>| Box::pin(async move { w.svc.apply_snapshot(&w.me, &p5).await })),
        ));
        racers.push(fire(
            "new point",
            Box::new(move |w: Arc<World>| {
                Box::pin(async move {
                    let req = CreateSnapshots { volumes: vec![vid], ..Default::default() };
                    w.svc.create_snapshots(&w.me, req).await.map(|(job, _)| job)
                })
            }),
        ));
        let p5 = pts[5].clone();
        racers.push(fire(
            "rename p5",
            Box::new(move |w: Arc<World>| {
                Box::pin(async move {
                    w.svc.modify_snapshot(&w.me, &p5, Some("renamed"), None).await?;
                    // A finished job as a handle to wait on (a rename has none; its action is moot).
                    w.svc.record_finished_job(&w.me, JobAction::AttachVolumes, vec![]).await
                })
            }),
        ));
        racers.push(fire(
            "restore p3",
            Box::new(move |w: Arc<World>| {
                Box::pin(async move { w.svc.create_volume_from_snapshot(&w.me, &p3, "r", None).await.map(|(j, _)| j) })
            }),
        ));
        let mut rolled_back: Option<Job> = None;
        let mut new_point: Option<Job> = None;
        for r in racers {
            match r.await.unwrap() {
                Shot::Job(what, job) => {
                    let end = done(&w, &job).await;
                    if end.status == JobStatus::Successful {
                        match what {
                            "roll back to p5" => rolled_back = Some(end),
                            "new point" => new_point = Some(end),
                            _ => {}
                        }
                    } else if what != "restore p3" {
                        // A restore may lose its point to a delete; nothing else may fail.
                        panic!("{round_name}: {what} failed: {:?}", end.error);
                    }
                }
                Shot::Refused(what, e) => {
                    assert!(
                        matches!(e, ServiceError::WrongState { .. } | ServiceError::NotFound { .. }),
                        "{round_name}: {what} refused with {e:?}"
                    );
                }
            }
        }
        // Both may succeed, one after the other (each holds the volume while it runs): the new
        // point holds the bytes from before the race, or p5's if the roll back went first.
        let p5_bytes = expected[&pts[5]][0].clone();
        let new_bytes = match (&new_point, &rolled_back) {
            (Some(c), Some(r)) if c.status_time < r.create_time => vec![before.clone()],
            (Some(c), Some(r)) if r.status_time < c.create_time => vec![p5_bytes.clone()],
            (Some(_), Some(_)) => vec![before.clone(), p5_bytes.clone()],
            _ => vec![before.clone()],
        };
        for s in all_snapshots(&w).await {
            expected.entry(s.id).or_insert_with(|| new_bytes.clone());
        }
        let now = digest(&vol.path);
        let want = if rolled_back.is_some() { &p5_bytes } else { &before };
        assert_eq!(&now, want, "{round_name}: the volume holds other bytes than it should");
        // Clean up the restores made by the race so the next check restores points only.
        let (vols, _) = w.svc.volumes(&w.me, &VolumeFilter { limit: 100, ..Default::default() }).await.unwrap();
        for v in vols.into_iter().filter(|v| v.name == "r") {
            let job = w.svc.delete_volumes(&w.me, &[v.id]).await.unwrap();
            done(&w, &job).await;
        }
        check(&w, &expected, &round_name).await;
    }
}

/// Boxed racer bodies, so one spawner takes them all.
mod futures_box {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    pub type Op = Box<
        dyn FnOnce(
                Arc<super::World>,
            ) -> Pin<
                Box<dyn Future<Output = Result<disksnap_service::Job, disksnap_service::ServiceError>> + Send>,
            > + Send,
    >;
}

/// Many clients at once on a few volumes: creates, deletes, roll backs, renames and restores,
/// for a few seconds; the bytes of each volume change only under its `content` lock (writes,
/// and the creates and roll backs whose result must be known), everything else races freely.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_mixed_calls_on_few_volumes_leaves_nothing_stuck() {
    let w = Arc::new(world().await);
    let expected = Arc::new(tokio::sync::Mutex::new(HashMap::<String, Vec<String>>::new()));
    let mut vols = Vec::new();
    for _ in 0..3 {
        let v = new_volume(&w).await;
        vols.push((v, Arc::new(tokio::sync::Mutex::new(()))));
    }
    let vols = Arc::new(vols);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(12);
    let mut clients = Vec::new();
    for c in 0..12u64 {
        let (w, vols, expected) = (w.clone(), vols.clone(), expected.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(c);
            let mut calls = 0u32;
            while tokio::time::Instant::now() < deadline {
                calls += 1;
                let (vol, content) = &vols[rng.gen_range(0..vols.len())];
                let pts: Vec<Snapshot> = all_snapshots(&w)
                    .await
                    .into_iter()
                    .filter(|s| s.volume_id == vol.id && s.status == SnapshotStatus::Available)
                    .collect();
                let pick = (!pts.is_empty()).then(|| pts[rng.gen_range(0..pts.len())].id.clone());
                match (rng.gen_range(0..6), pick) {
                    (0 | 1, _) => {
                        let _held = content.lock().await;
                        scribble(&vol.path, &mut rng);
                        let full = rng.gen_bool(0.2);
                        let req = CreateSnapshots { volumes: vec![vol.id.clone()], full, ..Default::default() };
                        if let Ok((job, snaps)) = w.svc.create_snapshots(&w.me, req).await {
                            let bytes = digest(&vol.path);
                            if done(&w, &job).await.status == JobStatus::Successful {
                                expected.lock().await.insert(snaps[0].id.clone(), vec![bytes]);
                            }
                        }
                    }
                    (2, Some(p)) => {
                        let _held = content.lock().await;
                        if let Ok(job) = w.svc.apply_snapshot(&w.me, &p).await {
                            let end = done(&w, &job).await;
                            assert_eq!(end.status, JobStatus::Successful, "roll back failed: {:?}", end.error);
                        }
                    }
                    (3, Some(p)) => {
                        let scope = if rng.gen_bool(0.5) { DeleteScope::Points } else { DeleteScope::PointAndLater };
                        if let Ok(job) = w.svc.delete_snapshots(&w.me, &[p], scope).await {
                            let end = done(&w, &job).await;
                            assert_eq!(end.status, JobStatus::Successful, "delete failed: {:?}", end.error);
                        }
                    }
                    (4, Some(p)) => {
                        let _ = w.svc.modify_snapshot(&w.me, &p, Some(&format!("n{calls}")), None).await;
                    }
                    (5, Some(p)) => {
                        if let Ok((job, v)) = w.svc.create_volume_from_snapshot(&w.me, &p, "r", None).await {
                            if done(&w, &job).await.status == JobStatus::Successful {
                                if let Ok(job) = w.svc.delete_volumes(&w.me, &[v.id]).await {
                                    done(&w, &job).await;
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            calls
        }));
    }
    let mut calls = 0;
    for c in clients {
        calls += c.await.unwrap();
    }
    assert!(calls > 50, "only {calls} calls in the storm");
    let expected = expected.lock().await.clone();
    check(&w, &expected, "after the storm").await;
}
