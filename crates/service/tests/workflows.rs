//! Multi-step operations are one persisted job (issue 11, item 2): a volume made from a point
//! with a description, a larger size and an attachment, and a volume deleted with its points.
//! Before, the dialects finished these in an unpersisted background task that a restart lost.

use disksnap_service::*;

async fn open(dir: &std::path::Path) -> Service {
    let mut cfg = ServiceConfig::new(dir);
    cfg.chunk_size = Some(64 * 1024);
    Service::open(cfg).await.unwrap()
}

async fn ok(svc: &Service, me: &Caller, job: &Job) {
    let end = svc.wait_job(me, &job.id).await.unwrap();
    assert_eq!(end.status, JobStatus::Successful, "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_from_a_point_is_described_sized_and_attached_by_its_own_job() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    let svc = open(dir.path()).await;
    let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    ok(&svc, &me, &job).await;
    std::fs::write(&vols[0].path, b"bytes of the point").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&vols[0].path).unwrap();
    f.set_len(GIB).unwrap();
    let (job, snaps) = svc
        .create_snapshots(&me, CreateSnapshots { volumes: vec![vols[0].id.clone()], ..Default::default() })
        .await
        .unwrap();
    ok(&svc, &me, &job).await;
    let inst = svc.create_instance(&me, None, "web").await.unwrap();
    let req = VolumeFromSnapshot {
        snapshot: snaps[0].id.clone(),
        name: "copy".into(),
        description: "made from the nightly point".into(),
        size_gib: Some(3),
        instance_id: Some(inst.id.clone()),
        ..Default::default()
    };
    let (job, vol) = svc.restore_volume(&me, &req).await.unwrap();
    // Everything the caller asked for is on the row from the start, not after the job.
    assert_eq!(
        (vol.description.as_str(), vol.size, vol.instance_id.as_deref()),
        (req.description.as_str(), 3 * GIB, Some(inst.id.as_str()))
    );
    ok(&svc, &me, &job).await;
    drop(svc);
    // A restart keeps all of it, the source point included.
    let svc = open(dir.path()).await;
    let v = svc.volume(&me, &vol.id).await.unwrap();
    assert_eq!(v.description, "made from the nightly point");
    assert_eq!(v.size, 3 * GIB);
    assert_eq!(std::fs::metadata(&v.path).unwrap().len(), 3 * GIB);
    assert_eq!(v.status, VolumeStatus::InUse);
    assert_eq!(v.source_snapshot.as_deref(), Some(snaps[0].id.as_str()));
    assert_eq!(&std::fs::read(&v.path).unwrap()[..18], b"bytes of the point");
    // A bad instance is refused before anything is made.
    let bad = VolumeFromSnapshot { instance_id: Some("i-nothere".into()), ..req.clone() };
    assert!(matches!(svc.restore_volume(&me, &bad).await, Err(ServiceError::NotFound { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascade_delete_takes_the_volume_and_its_points_in_one_job_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    let svc = open(dir.path()).await;
    let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    ok(&svc, &me, &job).await;
    let vid = vols[0].id.clone();
    let mut points = Vec::new();
    for _ in 0..3 {
        let (job, s) = svc
            .create_snapshots(&me, CreateSnapshots { volumes: vec![vid.clone()], ..Default::default() })
            .await
            .unwrap();
        ok(&svc, &me, &job).await;
        points.push(s[0].id.clone());
    }
    // A point being read by a running restore holds the whole cascade back.
    let (restore, _) = svc.create_volume_from_snapshot(&me, &points[1], "r", None).await.unwrap();
    match svc.delete_volume_cascade(&me, &vid).await {
        Err(ServiceError::WrongState { .. }) => {
            assert_eq!(svc.volume(&me, &vid).await.unwrap().transition, VolumeTransition::None);
            let q = SnapshotFilter { volume_ids: vec![vid.clone()], ..Default::default() };
            let (left, _) = svc.snapshots(&me, &q).await.unwrap();
            assert!(left.iter().all(|s| s.transition == SnapshotTransition::None), "nothing half-changed");
        }
        Ok(job) => {
            // The restore finished before the cascade looked: that is fine too.
            ok(&svc, &me, &job).await;
        }
        Err(e) => panic!("{e:?}"),
    }
    ok(&svc, &me, &restore).await;
    if svc.volume(&me, &vid).await.is_ok() {
        let job = svc.delete_volume_cascade(&me, &vid).await.unwrap();
        ok(&svc, &me, &job).await;
    }
    assert!(matches!(svc.volume(&me, &vid).await, Err(ServiceError::NotFound { .. })));
    let q = SnapshotFilter {
        volume_ids: vec![vid.clone()],
        statuses: vec![SnapshotStatus::Available.into()],
        ..Default::default()
    };
    assert_eq!(svc.snapshots(&me, &q).await.unwrap().1, 0, "no point of the volume is left available");
    let v = svc.verify(std::sync::Arc::new(disksnap_engine::NoProgress)).await.unwrap();
    assert!(v.ok(), "{v:?}");
}

/// Rows a batch writes twice from one read (two images of one point deleted together, an id
/// listed twice) are one decision, not a race with itself: it succeeds, and the point's usage
/// count drops once per image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_two_images_of_one_point_together_counts_both() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    let svc = open(dir.path()).await;
    let req = CreateVolumes { size_gib: 1, kind: Some(VolumeKind::System), ..Default::default() };
    let (job, vols) = svc.create_volumes(&me, req).await.unwrap();
    ok(&svc, &me, &job).await;
    let (job, snaps) = svc
        .create_snapshots(&me, CreateSnapshots { volumes: vec![vols[0].id.clone()], ..Default::default() })
        .await
        .unwrap();
    ok(&svc, &me, &job).await;
    let mut images = Vec::new();
    for name in ["a", "b"] {
        let (job, img) = svc.capture_image(&me, &snaps[0].id, name).await.unwrap();
        ok(&svc, &me, &job).await;
        images.push(img.id);
    }
    assert_eq!(svc.snapshot(&me, &snaps[0].id).await.unwrap().used_by_images, 2);
    let twice = vec![images[0].clone(), images[1].clone(), images[0].clone()];
    assert_eq!(svc.delete_images(&me, &twice).await.unwrap().len(), 2);
    assert_eq!(svc.snapshot(&me, &snaps[0].id).await.unwrap().used_by_images, 0);
    let job = svc.delete_volumes(&me, &[vols[0].id.clone(), vols[0].id.clone()]).await.unwrap();
    ok(&svc, &me, &job).await;
}

/// Job retention: the metadata upkeep deletes finished jobs older than `job_retention` and
/// keeps a job still running, whatever its age; zero keeps every job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_past_their_retention_are_purged_by_the_upkeep() {
    let dir = tempfile::tempdir().unwrap();
    let me = Caller::new("dev");
    let mut cfg = ServiceConfig::new(dir.path());
    cfg.job_retention = std::time::Duration::ZERO;
    let svc = Service::open(cfg.clone()).await.unwrap();
    let (done, _) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    ok(&svc, &me, &done).await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(svc.maintain_metadata().await.unwrap(), 0, "zero keeps every job");
    svc.job(&me, &done.id).await.unwrap();
    drop(svc);

    cfg.job_retention = std::time::Duration::from_millis(10);
    let svc = Service::open(cfg).await.unwrap();
    // a job held working stays, however old
    svc.hold_jobs(JobAction::CreateVolumes);
    let (held, _) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // the finished job was made just before the held one: kept while that one is open
    assert_eq!(svc.maintain_metadata().await.unwrap(), 0);
    svc.job(&me, &done.id).await.unwrap();
    svc.release_jobs(None);
    ok(&svc, &me, &held).await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(svc.maintain_metadata().await.unwrap(), 2);
    for id in [&done.id, &held.id] {
        assert!(matches!(svc.job(&me, id).await, Err(ServiceError::NotFound { .. })), "{id}");
    }
}
