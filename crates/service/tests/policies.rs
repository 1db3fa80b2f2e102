//! Automatic snapshot policies with real bytes (issue 15): slots fire exactly once, also
//! across a restart and with two servers on one data dir; a missed slot is taken once; the
//! points are automatic; retention prunes the oldest automatic points and never a manual one.
//! The scheduler's clock is a ManualClock, so nothing waits for the wall clock.
//! Each test runs with the metadata on SQLite and, when DISKSNAP_TEST_PG_URL names a server, on
//! PostgreSQL (a database of its own; else a SKIP line).

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use disksnap_service::*;
use sha2::{Digest, Sha256};

const SPAN: usize = 4 << 20;

fn write(path: &str, seed: u8) -> String {
    let data: Vec<u8> =
        (0..SPAN).map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8 ^ seed).collect();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&data, 0).unwrap();
    f.sync_all().unwrap();
    digest(path)
}

fn digest(path: &str) -> String {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; SPAN];
    f.read_exact_at(&mut buf, 0).unwrap();
    format!("{}:{:x}", f.metadata().unwrap().len(), Sha256::digest(&buf))
}

/// A data dir for a test's servers, its metadata on SQLite or (`pg`) in a new database on the
/// test server, which every server opened on the dir shares; None: no server to test on.
async fn data_dir(pg: bool, test: &str) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    if !pg {
        return Some(dir);
    }
    let url = disksnap_service::testing::fresh_pg_database(test).await?;
    std::fs::write(dir.path().join(PG_MARK), url).unwrap();
    Some(dir)
}

/// In a data dir on PostgreSQL: the database's URL.
const PG_MARK: &str = "test-database-url";

async fn open(dir: &std::path::Path) -> Service {
    let mut cfg = ServiceConfig::new(dir);
    cfg.database_url = std::fs::read_to_string(dir.join(PG_MARK)).ok();
    cfg.chunk_size = Some(64 * 1024);
    cfg.accounts = vec!["dev".into(), "other".into()];
    Service::open(cfg).await.unwrap()
}

async fn wait(svc: &Service, me: &Caller, jobs: &[String]) {
    for j in jobs {
        let job = tokio::time::timeout(std::time::Duration::from_secs(60), svc.wait_job(me, j)).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Successful, "{job:?}");
    }
}

/// The volume's points of `origin`, oldest first: (id, status).
async fn points(svc: &Service, me: &Caller, vol: &str, origin: Origin) -> Vec<(String, SnapshotStatus, DateTime<Utc>)> {
    let q = SnapshotFilter {
        volume_ids: vec![vol.to_string()],
        origin: Some(origin.into()),
        statuses: vec![SnapshotStatus::Available.into(), SnapshotStatus::Creating.into()],
        order: Order::OldestFirst,
        limit: 100,
        ..Default::default()
    };
    svc.snapshots(me, &q).await.unwrap().0.into_iter().map(|s| (s.id, s.status, s.snapshot_time)).collect()
}

async fn restored(svc: &Service, me: &Caller, snapshot: &str) -> String {
    let req = VolumeFromSnapshot { snapshot: snapshot.to_string(), ..Default::default() };
    let (job, v) = svc.restore_volume(me, &req).await.unwrap();
    wait(svc, me, &[job.id]).await;
    digest(&svc.volume(me, &v.id).await.unwrap().path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_fire_once_across_a_restart_and_retention_prunes_only_automatic_points() {
    slots_fire_once_across_a_restart_and_retention_prunes_only_automatic_points_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_fire_once_across_a_restart_and_retention_prunes_only_automatic_points_on_postgres() {
    slots_fire_once_across_a_restart_and_retention_prunes_only_automatic_points_on(true).await
}

async fn slots_fire_once_across_a_restart_and_retention_prunes_only_automatic_points_on(pg: bool) {
    let Some(dir) = data_dir(pg, "slots_fire_once_across_a_restart_and_retention_prunes_only_automatic_points").await
    else {
        return;
    };
    let me = Caller::new("dev");
    let svc = open(dir.path()).await;
    let (job, vols) =
        svc.create_volumes(&me, CreateVolumes { size_gib: 1, count: 2, ..Default::default() }).await.unwrap();
    wait(&svc, &me, &[job.id]).await;
    let (v1, v2) = (vols[0].id.clone(), vols[1].id.clone());
    let a1 = write(&vols[0].path, 1);
    let a2 = write(&vols[1].path, 2);
    // A manual point, which no retention may touch.
    let (job, manual) =
        svc.create_snapshots(&me, CreateSnapshots { volumes: vec![v1.clone()], ..Default::default() }).await.unwrap();
    wait(&svc, &me, &[job.id]).await;
    let manual = manual[0].id.clone();

    let spec = PolicySpec {
        name: Some("hourly".into()),
        hours: Some((0..24).collect()),
        schedule: Some(Schedule::Weekdays((1..=7).collect())),
        retention: Some(Retention::Count(2)),
        enabled: None,
    };
    let p = svc.create_policy(&me, spec).await.unwrap();
    svc.bind_policy(&me, &p.id, &[v1.clone(), v2.clone()]).await.unwrap();
    let slot1 = p.next_slot(p.schedule_from).unwrap();
    let clock = Arc::new(ManualClock::new(slot1 - Duration::minutes(1)));
    let sched = Scheduler::new(svc.clone(), clock.clone());
    assert!(sched.run_due().await.unwrap().is_empty(), "nothing is due before the first slot");

    // Slot 1: one job, a point of each volume, automatic.
    clock.set(slot1 + Duration::seconds(5));
    let fired = sched.run_due().await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].slot, fired[0].jobs.len(), fired[0].snapshots.len()), (slot1, 1, 2), "{fired:?}");
    wait(&svc, &me, &fired[0].jobs).await;
    assert!(sched.run_due().await.unwrap().is_empty(), "a slot fires once");
    let auto1 = points(&svc, &me, &v1, Origin::Auto).await;
    assert_eq!(auto1.len(), 1);
    assert_eq!(points(&svc, &me, &v1, Origin::User).await.len(), 1);

    // New bytes, then a restart between slots: the new process does not fire slot 1 again.
    let b1 = write(&vols[0].path, 3);
    drop(sched);
    drop(svc);
    let svc = open(dir.path()).await;
    let sched = Scheduler::new(svc.clone(), clock.clone());
    clock.set(slot1 + Duration::minutes(30));
    assert!(sched.run_due().await.unwrap().is_empty(), "no double after a restart");
    let slot2 = slot1 + Duration::hours(1);
    clock.set(slot2);
    let fired = sched.run_due().await.unwrap();
    assert_eq!((fired.len(), fired[0].slot), (1, slot2), "no loss after a restart");
    wait(&svc, &me, &fired[0].jobs).await;

    // Slot 3: the count retention (2) prunes slot 1's points; the manual point stays.
    clock.set(slot1 + Duration::hours(2));
    let fired = sched.run_due().await.unwrap();
    assert_eq!(fired.len(), 1);
    wait(&svc, &me, &fired[0].jobs).await;
    sched.prune().await.unwrap();
    for v in [&v1, &v2] {
        let auto = points(&svc, &me, v, Origin::Auto).await;
        assert_eq!(auto.len(), 2, "{auto:?}");
        assert!(auto.iter().all(|(id, st, _)| *st == SnapshotStatus::Available && *id != auto1[0].0));
    }
    let user = points(&svc, &me, &v1, Origin::User).await;
    assert_eq!(user.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), vec![manual.clone()]);
    let old = svc.snapshot(&me, &auto1[0].0).await.unwrap();
    assert!(matches!(old.status, SnapshotStatus::Deleted | SnapshotStatus::Ceased), "{:?}", old.status);

    // The bytes: slot 2 and 3 of volume 1 hold B, volume 2's hold A, the manual point A.
    let auto = points(&svc, &me, &v1, Origin::Auto).await;
    assert_eq!(restored(&svc, &me, &auto[0].0).await, b1);
    assert_eq!(restored(&svc, &me, &auto[1].0).await, b1);
    assert_eq!(restored(&svc, &me, &manual).await, a1);
    let auto = points(&svc, &me, &v2, Origin::Auto).await;
    assert_eq!(restored(&svc, &me, &auto[0].0).await, a2);

    // Down over two slots: only the latest missed one is taken, once.
    clock.set(slot1 + Duration::hours(4) + Duration::minutes(30));
    let fired = sched.run_due().await.unwrap();
    assert_eq!(fired.iter().map(|f| f.slot).collect::<Vec<_>>(), vec![slot1 + Duration::hours(4)]);
    wait(&svc, &me, &fired[0].jobs).await;
    let slots: Vec<_> = svc.policy_slots(&me, &p.id).await.unwrap().into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        slots,
        vec![slot1, slot2, slot1 + Duration::hours(2), slot1 + Duration::hours(4)],
        "each slot once, none made up"
    );
}

/// Two servers on one data dir, both due at the same slot: one fires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_data_dir_fire_a_slot_once() {
    two_servers_on_one_data_dir_fire_a_slot_once_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_data_dir_fire_a_slot_once_on_postgres() {
    two_servers_on_one_data_dir_fire_a_slot_once_on(true).await
}

async fn two_servers_on_one_data_dir_fire_a_slot_once_on(pg: bool) {
    let Some(dir) = data_dir(pg, "two_servers_on_one_data_dir_fire_a_slot_once").await else { return };
    let me = Caller::new("dev");
    let (a, b) = (open(dir.path()).await, open(dir.path()).await);
    let (job, vols) = a.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    wait(&a, &me, &[job.id]).await;
    write(&vols[0].path, 7);
    let spec = PolicySpec {
        name: Some("daily".into()),
        hours: Some(vec![3]),
        schedule: Some(Schedule::EveryDays(1)),
        ..Default::default()
    };
    let p = a.create_policy(&me, spec).await.unwrap();
    b.bind_policy(&me, &p.id, &[vols[0].id.clone()]).await.unwrap();
    let clock = Arc::new(ManualClock::new(p.next_slot(p.schedule_from).unwrap()));
    let (sa, sb) = (Scheduler::new(a.clone(), clock.clone()), Scheduler::new(b.clone(), clock.clone()));
    let (fa, fb) = tokio::join!(sa.run_due(), sb.run_due());
    let fired: Vec<Fired> = fa.unwrap().into_iter().chain(fb.unwrap()).collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    wait(&a, &me, &fired[0].jobs).await;
    assert_eq!(points(&a, &me, &vols[0].id, Origin::Auto).await.len(), 1);
}

/// Test control's moved clock (an OffsetClock, what `disksnap serve` runs with the admin API
/// on) is one clock for every server on the metadata store: a move through one is the time of
/// the other's next round and the start of its next move (in a cluster the admin calls reach
/// any node, and the periodic round runs on the leader). Before, each server moved only its
/// own clock: the second server's advance started from the wall clock and fired nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_clock_is_every_servers_clock() {
    a_moved_clock_is_every_servers_clock_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_clock_is_every_servers_clock_on_postgres() {
    a_moved_clock_is_every_servers_clock_on(true).await
}

async fn a_moved_clock_is_every_servers_clock_on(pg: bool) {
    let Some(dir) = data_dir(pg, "a_moved_clock_is_every_servers_clock").await else { return };
    let me = Caller::new("dev");
    let (a, b) = (open(dir.path()).await, open(dir.path()).await);
    let (job, vols) = a.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    wait(&a, &me, &[job.id]).await;
    write(&vols[0].path, 9);
    let spec = PolicySpec {
        name: Some("daily".into()),
        hours: Some(vec![3]),
        schedule: Some(Schedule::EveryDays(1)),
        ..Default::default()
    };
    let p = a.create_policy(&me, spec).await.unwrap();
    a.bind_policy(&me, &p.id, &[vols[0].id.clone()]).await.unwrap();
    let sa = Scheduler::new(a.clone(), Arc::new(OffsetClock::default()));
    let sb = Scheduler::new(b.clone(), Arc::new(OffsetClock::default()));
    let close = |x: DateTime<Utc>, want: DateTime<Utc>| (x - want).num_seconds().abs() < 30;

    // moved through a: a fires the slot (its answer lists it), b's round is at the moved time
    let slot = p.next_slot(Utc::now() + Duration::days(3)).unwrap();
    let fired = sa.set_time(slot + Duration::minutes(1)).await.unwrap();
    assert_eq!(fired.iter().map(|f| f.slot).collect::<Vec<_>>(), [slot], "{fired:?}");
    assert!(sb.run_due().await.unwrap().is_empty(), "b fired a slot a had taken");
    assert!(close(sb.now(), slot + Duration::minutes(1)), "b's clock {} after a moved it to {slot} + 1m", sb.now());

    // advanced through b from there: the next day's slot fires, and a sees b's time
    let fired = sb.advance(Duration::days(1)).await.unwrap();
    assert_eq!(fired.iter().map(|f| f.slot).collect::<Vec<_>>(), [slot + Duration::days(1)], "{fired:?}");
    sa.refresh_clock().await.unwrap();
    assert!(close(sa.now(), slot + Duration::days(1) + Duration::minutes(1)), "a's clock {}", sa.now());
    assert!(sa.run_due().await.unwrap().is_empty(), "a fired a slot b had taken");
    assert_eq!(points(&a, &me, &vols[0].id, Origin::Auto).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_and_foreign_volumes_are_refused() {
    bad_policies_and_foreign_volumes_are_refused_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_and_foreign_volumes_are_refused_on_postgres() {
    bad_policies_and_foreign_volumes_are_refused_on(true).await
}

async fn bad_policies_and_foreign_volumes_are_refused_on(pg: bool) {
    let Some(dir) = data_dir(pg, "bad_policies_and_foreign_volumes_are_refused").await else { return };
    let (me, other) = (Caller::new("dev"), Caller::new("other"));
    let svc = open(dir.path()).await;
    let spec = |name: &str, hours: Vec<u8>, days: Vec<u8>| PolicySpec {
        name: Some(name.into()),
        hours: Some(hours),
        schedule: Some(Schedule::Weekdays(days)),
        ..Default::default()
    };
    let e = svc.create_policy(&me, spec("p", vec![24], vec![1])).await.unwrap_err();
    assert!(matches!(&e, ServiceError::InvalidParameter { name, .. } if name == "time_points"), "{e}");
    let e = svc.create_policy(&me, spec("p", vec![1], vec![8])).await.unwrap_err();
    assert!(matches!(&e, ServiceError::InvalidParameter { name, .. } if name == "weekdays"), "{e}");
    let p = svc.create_policy(&me, spec("p", vec![1], vec![1])).await.unwrap();
    let e = svc.create_policy(&me, spec("p", vec![2], vec![2])).await.unwrap_err();
    assert!(matches!(&e, ServiceError::InvalidParameter { name, .. } if name == "name"), "{e}");
    // Another account may use the name, and cannot see or bind to this account's policy.
    svc.create_policy(&other, spec("p", vec![1], vec![1])).await.unwrap();
    assert!(matches!(svc.policy(&other, &p.id).await, Err(ServiceError::NotFound { kind: Kind::Policy, .. })));
    let (job, theirs) = svc.create_volumes(&other, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    wait(&svc, &other, &[job.id]).await;
    let e = svc.bind_policy(&me, &p.id, &[theirs[0].id.clone()]).await.unwrap_err();
    assert!(matches!(e, ServiceError::NotFound { kind: Kind::Volume, .. }), "{e}");
    assert!(svc.policy(&me, &p.id).await.unwrap().volumes.is_empty());
    svc.delete_policy(&me, &p.id).await.unwrap();
    assert!(matches!(svc.policy(&me, &p.id).await, Err(ServiceError::NotFound { .. })));
}

/// A runner killed between claiming a slot and starting its job left the claim and no job:
/// the next round (here, of another process) claims it again and takes it, once. Before the
/// recovery step the claim alone kept the slot from ever firing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_claimed_by_a_runner_that_died_before_its_job_is_taken_once() {
    a_slot_claimed_by_a_runner_that_died_before_its_job_is_taken_once_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_claimed_by_a_runner_that_died_before_its_job_is_taken_once_on_postgres() {
    a_slot_claimed_by_a_runner_that_died_before_its_job_is_taken_once_on(true).await
}

async fn a_slot_claimed_by_a_runner_that_died_before_its_job_is_taken_once_on(pg: bool) {
    let Some(dir) = data_dir(pg, "a_slot_claimed_by_a_runner_that_died_before_its_job_is_taken_once").await else {
        return;
    };
    let me = Caller::new("dev");
    let svc = open(dir.path()).await;
    let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    wait(&svc, &me, &[job.id]).await;
    let bytes = write(&vols[0].path, 9);
    let spec = PolicySpec {
        name: Some("daily".into()),
        hours: Some(vec![3]),
        schedule: Some(Schedule::EveryDays(1)),
        ..Default::default()
    };
    let p = svc.create_policy(&me, spec).await.unwrap();
    svc.bind_policy(&me, &p.id, &[vols[0].id.clone()]).await.unwrap();
    let slot = p.next_slot(p.schedule_from).unwrap();
    // What the dead runner left: its claim (its lock file is gone with it), no job.
    let mut cfg = ServiceConfig::new(dir.path());
    cfg.database_url = std::fs::read_to_string(dir.path().join(PG_MARK)).ok();
    let meta = Backends::embedded(&cfg).await.unwrap().meta;
    assert!(meta.policy_slot_claim(&p.id, slot.timestamp_millis(), "1-deadrunner", 0).await.unwrap());

    let clock = Arc::new(ManualClock::new(slot + Duration::minutes(1)));
    let sched = Scheduler::new(svc.clone(), clock.clone());
    let fired = sched.run_due().await.unwrap();
    assert_eq!(fired.iter().map(|f| f.slot).collect::<Vec<_>>(), vec![slot], "the orphaned slot is taken");
    wait(&svc, &me, &fired[0].jobs).await;
    assert!(sched.run_due().await.unwrap().is_empty(), "and only once");
    let auto = points(&svc, &me, &vols[0].id, Origin::Auto).await;
    assert_eq!(auto.len(), 1, "{auto:?}");
    assert_eq!(restored(&svc, &me, &auto[0].0).await, bytes);
    let slots = svc.policy_slots(&me, &p.id).await.unwrap();
    assert_eq!(slots, vec![(slot, Some(fired[0].jobs[0].clone()))]);
}
