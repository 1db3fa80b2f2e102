//! Snapshot groups (issue 15) on real files: one job takes every member at one snapshot time,
//! a group rolls back all or nothing (a member that fails leaves every volume as it was; a
//! restart between staging and commit finishes the roll back), and deleting a group deletes
//! its points.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use disksnap_service::*;

async fn open(dir: &Path, delay: Duration) -> Service {
    let mut cfg = ServiceConfig::new(dir);
    cfg.chunk_size = Some(64 * 1024);
    cfg.test_rollback_delay = delay;
    cfg.accounts = vec!["dev".into(), "other".into()];
    Service::open(cfg).await.unwrap()
}

async fn ok(svc: &Service, me: &Caller, job: &Job) {
    let end = svc.wait_job(me, &job.id).await.unwrap();
    assert_eq!(end.status, JobStatus::Successful, "{end:?}");
}

fn write(path: &str, at: u64, data: &[u8]) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(data, at).unwrap();
}

fn read(path: &str, at: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    std::fs::File::open(path).unwrap().read_exact_at(&mut buf, at).unwrap();
    buf
}

/// Two 1 GiB volumes, each with its own bytes at two offsets.
async fn two_volumes(svc: &Service, me: &Caller) -> Vec<Volume> {
    let (job, vols) =
        svc.create_volumes(me, CreateVolumes { size_gib: 1, count: 2, ..Default::default() }).await.unwrap();
    ok(svc, me, &job).await;
    for (i, v) in vols.iter().enumerate() {
        write(&v.path, 4096, format!("before-{i}").as_bytes());
        write(&v.path, 700 << 20, format!("far-before-{i}").as_bytes());
    }
    vols
}

fn staged_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".stage-") || n.starts_with("rollback-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_rolls_back_every_member_and_a_failing_member_changes_none() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    let svc = open(dir.path(), Duration::ZERO).await;
    let vols = two_volumes(&svc, &me).await;
    let req = CreateSnapshotGroup {
        volumes: vols.iter().map(|v| v.id.clone()).collect(),
        name: "consistent".into(),
        description: "both disks".into(),
        ..Default::default()
    };
    let (job, group) = svc.create_snapshot_group(&me, req).await.unwrap();
    assert_eq!(group.snapshots.len(), 2);
    ok(&svc, &me, &job).await;
    let group = svc.snapshot_group(&me, &group.id).await.unwrap();
    assert_eq!((group.status, group.name.as_str()), (GroupStatus::Available, "consistent"));
    assert_eq!(group.volume_ids, vols.iter().map(|v| v.id.clone()).collect::<Vec<_>>());
    let times: Vec<_> = group.snapshots.iter().map(|s| s.snapshot_time).collect();
    assert_eq!(times[0], times[1], "one snapshot time for every member");
    assert_eq!(svc.snapshot_groups(&me).await.unwrap().len(), 1);

    for (i, v) in vols.iter().enumerate() {
        write(&v.path, 4096, format!("after!-{i}").as_bytes());
        write(&v.path, 700 << 20, format!("far-after!-{i}").as_bytes());
    }
    // The second member's index is damaged: its staging fails after the first one's worked.
    let idx = dir.path().join("store/indexes").join(format!("{}.fidx", group.snapshots[1].id));
    let good = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, b"not an index").unwrap();
    let job = svc.rollback_snapshot_group(&me, &group.id).await.unwrap();
    let end = svc.wait_job(&me, &job.id).await.unwrap();
    assert_eq!(end.status, JobStatus::Failed, "{end:?}");
    for (i, v) in vols.iter().enumerate() {
        assert_eq!(
            read(&v.path, 4096, 8),
            format!("after!-{i}").as_bytes(),
            "volume {i} changed by a failed roll back"
        );
        let v = svc.volume(&me, &v.id).await.unwrap();
        assert_eq!(v.transition, VolumeTransition::None, "{v:?}");
    }
    assert!(staged_files(dir.path()).is_empty(), "{:?}", staged_files(dir.path()));
    let g = svc.snapshot_group(&me, &group.id).await.unwrap();
    assert_eq!(g.transition, "");
    assert!(g.snapshots.iter().all(|s| s.transition == SnapshotTransition::None));

    // Repaired, the same roll back moves both volumes back, byte-exact.
    std::fs::write(&idx, good).unwrap();
    ok(&svc, &me, &svc.rollback_snapshot_group(&me, &group.id).await.unwrap()).await;
    for (i, v) in vols.iter().enumerate() {
        assert_eq!(read(&v.path, 4096, 8), format!("before-{i}").as_bytes());
        assert_eq!(read(&v.path, 700 << 20, 12), format!("far-before-{i}").as_bytes());
        assert_eq!(std::fs::metadata(&v.path).unwrap().len(), GIB);
    }
    assert!(staged_files(dir.path()).is_empty());

    // Two points of one volume cannot be one roll back; a busy group refuses a second job.
    let (job, more) = svc
        .create_snapshots(&me, CreateSnapshots { volumes: vec![vols[0].id.clone()], ..Default::default() })
        .await
        .unwrap();
    ok(&svc, &me, &job).await;
    let twice = svc.rollback_volumes(&me, &[group.snapshots[0].id.clone(), more[0].id.clone()]).await;
    assert!(matches!(twice, Err(ServiceError::InvalidParameter { .. })), "{twice:?}");

    // Deleting the group deletes its points (full points stay recoverable, as any delete).
    let (job, kept) = svc.delete_snapshot_group(&me, &group.id).await.unwrap();
    assert!(kept.is_empty());
    ok(&svc, &me, &job).await;
    let gone = svc.snapshot_group(&me, &group.id).await;
    assert!(matches!(gone, Err(ServiceError::NotFound { kind: Kind::SnapshotGroup, .. })), "{gone:?}");
    for s in &group.snapshots {
        let s = svc.snapshot(&me, &s.id).await.unwrap();
        assert!(matches!(s.status, SnapshotStatus::Deleted | SnapshotStatus::Ceased), "{s:?}");
    }
    assert_eq!(svc.snapshot(&me, &more[0].id).await.unwrap().status, SnapshotStatus::Available);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_staging_and_commit_finishes_the_group_roll_back() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    // The first process holds its roll back between the staging and the commit (the marker is
    // written), and "dies" there: its runner lock file goes, as a dead process's does.
    let first = open(dir.path(), Duration::from_secs(600)).await;
    let vols = two_volumes(&first, &me).await;
    let req = CreateSnapshotGroup { volumes: vols.iter().map(|v| v.id.clone()).collect(), ..Default::default() };
    let (job, group) = first.create_snapshot_group(&me, req).await.unwrap();
    ok(&first, &me, &job).await;
    for (i, v) in vols.iter().enumerate() {
        write(&v.path, 4096, format!("after!-{i}").as_bytes());
    }
    let job = first.rollback_snapshot_group(&me, &group.id).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !staged_files(dir.path()).iter().any(|n| n.starts_with("rollback-")) {
        assert!(std::time::Instant::now() < deadline, "the roll back never staged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, v) in vols.iter().enumerate() {
        assert_eq!(read(&v.path, 4096, 8), format!("after!-{i}").as_bytes(), "staging changes no volume");
    }
    // It died half way through its commit: the first volume's file was replaced already.
    let staged: Vec<String> = staged_files(dir.path()).into_iter().filter(|n| n.contains(".stage-")).collect();
    assert_eq!(staged.len(), 2, "{staged:?}");
    let moved = staged.iter().find(|n| n.starts_with(&format!("{}.img", vols[0].id))).unwrap();
    std::fs::rename(dir.path().join("volumes").join(moved), &vols[0].path).unwrap();
    for lock in std::fs::read_dir(dir.path().join("runners")).unwrap() {
        std::fs::remove_file(lock.unwrap().path()).unwrap();
    }

    let second = open(dir.path(), Duration::ZERO).await;
    let resumed = second.recover().await.unwrap();
    assert!(resumed.iter().any(|j| j.id == job.id), "{resumed:?}");
    ok(&second, &me, &job).await;
    for (i, v) in vols.iter().enumerate() {
        assert_eq!(read(&v.path, 4096, 8), format!("before-{i}").as_bytes(), "volume {i}");
        assert_eq!(read(&v.path, 700 << 20, 12), format!("far-before-{i}").as_bytes());
        assert_eq!(second.volume(&me, &v.id).await.unwrap().transition, VolumeTransition::None);
    }
    assert!(staged_files(dir.path()).is_empty(), "{:?}", staged_files(dir.path()));
    assert_eq!(second.snapshot_group(&me, &group.id).await.unwrap().transition, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_of_an_instance_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    let svc = open(dir.path(), Duration::ZERO).await;
    let vols = two_volumes(&svc, &me).await;
    let inst = svc.create_instance(&me, None, "db").await.unwrap();
    svc.attach_volumes(&me, &[vols[0].id.clone(), vols[1].id.clone()], &inst.id).await.unwrap();
    // every volume of the instance but the one left out
    let req = CreateSnapshotGroup {
        instance: Some(inst.id.clone()),
        exclude: vec![vols[1].id.clone()],
        name: "db".into(),
        ..Default::default()
    };
    let (job, g) = svc.create_snapshot_group(&me, req).await.unwrap();
    ok(&svc, &me, &job).await;
    assert_eq!(g.volume_ids, vec![vols[0].id.clone()]);
    assert_eq!(g.instance_id.as_deref(), Some(inst.id.as_str()));
    let g = svc.modify_snapshot_group(&me, &g.id, Some("renamed"), None).await.unwrap();
    assert_eq!(g.name, "renamed");

    let bad = |r: Result<(Job, SnapshotGroup)>| r.map(|_| ()).unwrap_err();
    let e = bad(svc.create_snapshot_group(&me, CreateSnapshotGroup::default()).await);
    assert!(matches!(e, ServiceError::MissingParameter(_)), "{e:?}");
    let both = CreateSnapshotGroup {
        instance: Some(inst.id.clone()),
        volumes: vec![vols[0].id.clone()],
        exclude: vec![vols[1].id.clone()],
        ..Default::default()
    };
    assert!(matches!(bad(svc.create_snapshot_group(&me, both).await), ServiceError::InvalidParameter { .. }));
    let ghost = CreateSnapshotGroup { volumes: vec!["d-zzzzzzzz".into()], ..Default::default() };
    assert!(matches!(bad(svc.create_snapshot_group(&me, ghost).await), ServiceError::NotFound { .. }));
    // another account sees no group of this one
    let other = Caller::new("other");
    let unknown = svc.snapshot_group(&other, &g.id).await;
    assert!(matches!(unknown, Err(ServiceError::NotFound { kind: Kind::SnapshotGroup, .. })), "{unknown:?}");
}
