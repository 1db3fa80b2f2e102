//! Instant points and changed-block tracking (issue 18), on real file systems the test makes:
//! an XFS (reflink) and an ext4 (none) loop mount. Skipped, saying why, when not root or when
//! mkfs or loop devices are missing.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use disksnap_engine::points::{changed_between, clone_file, CloneOutcome};
use disksnap_engine::{NoProgress, Store};
use disksnap_service::*;

/// A file system of `kind` on a loop device, mounted for the test's life.
struct LoopFs {
    _base: tempfile::TempDir,
    mnt: PathBuf,
}

impl LoopFs {
    fn new(kind: &str) -> Option<LoopFs> {
        let skip = |why: String| {
            eprintln!("SKIPPED ({kind} loop mount): {why}");
            None
        };
        let uid =
            Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if uid.as_deref() != Some("0") {
            return skip("not root: mounting a loop device needs root".into());
        }
        let mkfs = format!("mkfs.{kind}");
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {mkfs}"))
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return skip(format!(
                "{mkfs} is missing (apt-get install {})",
                if kind == "xfs" { "xfsprogs" } else { "e2fsprogs" }
            ));
        }
        let base = tempfile::tempdir().unwrap();
        let img = base.path().join("fs.img");
        File::create(&img).unwrap().set_len(1 << 30).unwrap();
        let args: Vec<&str> = if kind == "xfs" { vec!["-q", "-m", "reflink=1"] } else { vec!["-q", "-F"] };
        let ok = Command::new(&mkfs).args(&args).arg(&img).status().unwrap().success();
        assert!(ok, "{mkfs} failed");
        let mnt = base.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("mount").arg("-o").arg("loop").arg(&img).arg(&mnt).output().unwrap();
        if !out.status.success() {
            return skip(format!(
                "mount -o loop failed (no loop devices here?): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Some(LoopFs { _base: base, mnt })
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if !Command::new("umount").arg(&self.mnt).status().map(|s| s.success()).unwrap_or(false) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

const BLOCK: u64 = 4096;

fn stamp(n: u64) -> Vec<u8> {
    n.to_le_bytes().repeat(BLOCK as usize / 8)
}

/// The writer's model: block `n % blocks` gets stamp `n`, for n = 1, 2, 3, …. A point taken at
/// one instant holds, for some m, every block's last stamp up to m. Returns that m, or panics
/// naming the first block that no single instant explains.
fn one_instant(bytes: &[u8], blocks: u64) -> u64 {
    let at = |b: u64| {
        let blk = &bytes[(b * BLOCK) as usize..((b + 1) * BLOCK) as usize];
        let n = u64::from_le_bytes(blk[..8].try_into().unwrap());
        assert_eq!(blk, &stamp(n)[..], "block {b} is torn");
        n
    };
    let m = (0..blocks).map(at).max().unwrap();
    for b in 0..blocks {
        let r = m % blocks;
        let last = if b <= r { m as i64 - (r - b) as i64 } else { m as i64 - r as i64 - (blocks - b) as i64 };
        let want = if last >= 1 { last as u64 } else { 0 };
        assert_eq!(at(b), want, "block {b}: no single instant (latest stamp {m}) explains it");
    }
    m
}

/// Stamps blocks of `path` until stopped; `seq` is the last stamp written.
fn start_writer(path: &Path, blocks: u64) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(0));
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let (s, q) = (stop.clone(), seq.clone());
    let h = std::thread::spawn(move || {
        let mut n = 1u64;
        while !s.load(Ordering::Relaxed) {
            f.write_all_at(&stamp(n), (n % blocks) * BLOCK).unwrap();
            q.store(n, Ordering::SeqCst);
            n += 1;
        }
    });
    (stop, seq, h)
}

async fn open(data: &Path, home: &Path, fail_after_clone: bool) -> Service {
    let mut cfg = ServiceConfig::new(data);
    cfg.chunk_size = Some(64 * 1024);
    cfg.volume_homes.insert("pek3a".into(), home.to_path_buf());
    cfg.test_fail_capture_after_clone = fail_after_clone;
    Service::open(cfg).await.unwrap()
}

async fn ok(svc: &Service, me: &Caller, job: &Job) {
    let end = svc.wait_job(me, &job.id).await.unwrap();
    assert_eq!(end.status, JobStatus::Successful, "{end:?}");
}

async fn snap(svc: &Service, me: &Caller, vol: &str) -> Snapshot {
    let (job, s) =
        svc.create_snapshots(me, CreateSnapshots { volumes: vec![vol.into()], ..Default::default() }).await.unwrap();
    ok(svc, me, &job).await;
    svc.snapshot(me, &s[0].id).await.unwrap()
}

/// The point's bytes, restored into a new volume.
async fn point_bytes(svc: &Service, me: &Caller, id: &str) -> Vec<u8> {
    let req = VolumeFromSnapshot { snapshot: id.into(), name: "check".into(), ..Default::default() };
    let (job, v) = svc.restore_volume(me, &req).await.unwrap();
    ok(svc, me, &job).await;
    std::fs::read(&v.path).unwrap()
}

/// A volume written continuously during its capture: on XFS the point is one instant (and
/// says "instant"); on ext4 it says "read-pass". Then incrementals after the writer stops equal
/// the volume byte for byte, and a roll back restores the point exactly.
async fn writer_during_capture(kind: &str) {
    let Some(fs) = LoopFs::new(kind) else { return };
    let data = tempfile::tempdir().unwrap();
    let home = fs.mnt.join("volumes");
    let me = Caller::new("dev");
    let svc = open(data.path(), &home, false).await;
    let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    ok(&svc, &me, &job).await;
    let vol = &vols[0];
    assert!(vol.path.starts_with(home.to_str().unwrap()), "the zone's home holds the volume: {}", vol.path);
    let blocks = (32 << 20) / BLOCK;
    let (stop, seq, writer) = start_writer(Path::new(&vol.path), blocks);
    while seq.load(Ordering::SeqCst) < 3 * blocks {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before = seq.load(Ordering::SeqCst);
    let p1 = snap(&svc, &me, &vol.id).await;
    let after = seq.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(p1.is_taken);
    let bytes = point_bytes(&svc, &me, &p1.id).await;
    assert!(bytes[(blocks * BLOCK) as usize..].iter().all(|&b| b == 0));
    if kind == "xfs" {
        assert_eq!(p1.consistency, "instant");
        let m = one_instant(&bytes, blocks);
        assert!(before <= m && m <= after, "the point's instant {m} lies within the capture [{before}, {after}]");
    } else {
        assert_eq!(p1.consistency, "read-pass");
    }
    // Tracked incrementals: scattered changes, a punched hole, data in a former hole.
    let f = OpenOptions::new().write(true).open(&vol.path).unwrap();
    let mut parent = p1.id.clone();
    for round in 0..3u64 {
        for i in 0..200u64 {
            let off = (i * 1_299_709 + round * 104_729) % (256 << 20) / BLOCK * BLOCK;
            f.write_all_at(&stamp(1_000_000 + round * 1000 + i), off).unwrap();
        }
        // SAFETY: fallocate on an fd we own.
        let rc = unsafe {
            libc::fallocate(
                std::os::unix::io::AsRawFd::as_raw_fd(&f),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                ((round + 1) << 20) as i64,
                (256 << 10) as i64,
            )
        };
        assert_eq!(rc, 0);
        let p = snap(&svc, &me, &vol.id).await;
        assert_eq!(p.parent_id.as_deref(), Some(parent.as_str()));
        assert_eq!(point_bytes(&svc, &me, &p.id).await, std::fs::read(&vol.path).unwrap(), "round {round}");
        parent = p.id;
    }
    // Roll back to the first point after more changes: exactly its bytes.
    f.write_all_at(&stamp(7), 5 << 20).unwrap();
    f.write_all_at(&stamp(8), 900 << 20).unwrap();
    let job = svc.apply_snapshot(&me, &p1.id).await.unwrap();
    ok(&svc, &me, &job).await;
    assert!(std::fs::read(&vol.path).unwrap() == bytes, "rolled back to the first point");
    // Only the newest point's clone is kept.
    let clones: Vec<_> = std::fs::read_dir(format!("{}.points", vol.path))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if kind == "xfs" {
        assert_eq!(clones, vec![format!("{parent}.img")]);
    } else {
        assert!(clones.is_empty(), "{clones:?}");
    }
    drop(svc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xfs_points_are_instant_and_tracked() {
    writer_during_capture("xfs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext4_points_say_read_pass_and_stay_exact() {
    writer_during_capture("ext4").await;
}

/// A capture that fails between its clone and its commit (as a crash there does) leaves no
/// point, no index and no clone of its own, and the next incremental is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_between_clone_and_commit_leaves_nothing_half_done() {
    let Some(fs) = LoopFs::new("xfs") else { return };
    let data = tempfile::tempdir().unwrap();
    let home = fs.mnt.join("volumes");
    let me = Caller::new("dev");
    let svc = open(data.path(), &home, false).await;
    let (job, vols) = svc.create_volumes(&me, CreateVolumes { size_gib: 1, ..Default::default() }).await.unwrap();
    ok(&svc, &me, &job).await;
    let vol = vols[0].clone();
    let f = OpenOptions::new().write(true).open(&vol.path).unwrap();
    for i in 0..512u64 {
        f.write_all_at(&stamp(i + 1), i * 65_536 * 3).unwrap();
    }
    let p1 = snap(&svc, &me, &vol.id).await;
    drop(svc);
    f.write_all_at(&stamp(99), 12 << 20).unwrap();
    let svc = open(data.path(), &home, true).await;
    let (job, s) = svc
        .create_snapshots(&me, CreateSnapshots { volumes: vec![vol.id.clone()], ..Default::default() })
        .await
        .unwrap();
    let end = svc.wait_job(&me, &job.id).await.unwrap();
    assert_eq!(end.status, JobStatus::Failed);
    assert!(svc.snapshot(&me, &s[0].id).await.is_err(), "the failed point is gone");
    let clones: Vec<String> = std::fs::read_dir(format!("{}.points", vol.path))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(clones, vec![format!("{}.img", p1.id)], "only the last committed point's clone is left");
    drop(svc);
    f.write_all_at(&stamp(100), 600 << 20).unwrap();
    let svc = open(data.path(), &home, false).await;
    let p2 = snap(&svc, &me, &vol.id).await;
    assert_eq!(p2.parent_id.as_deref(), Some(p1.id.as_str()));
    assert_eq!(point_bytes(&svc, &me, &p2.id).await, std::fs::read(&vol.path).unwrap());
    assert_eq!(p2.consistency, "instant");
}

/// The engine's view: a tracked incremental reads only the changed slots and yields the very
/// index a full re-read does; a tracked roll back reads only changed slots and writes only the
/// 4 KiB blocks that differ.
#[test]
fn tracked_capture_equals_a_full_reread_and_reads_only_the_change() {
    let Some(fs) = LoopFs::new("xfs") else { return };
    let cs = 64 * 1024;
    let store = Store::open(&fs.mnt.join("store"), Some(cs)).unwrap();
    let vol = fs.mnt.join("vol.img");
    let size: u64 = 256 << 20;
    {
        let f = File::create(&vol).unwrap();
        f.set_len(size).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; 1 << 20];
        for mib in (0..128u64).step_by(2) {
            for w in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all_at(&buf, mib << 20).unwrap();
        }
        f.sync_all().unwrap();
    }
    let p = fs.mnt.join("p.img");
    assert!(matches!(clone_file(&vol, &p).unwrap(), CloneOutcome::Cloned));
    store.capture("a", &p, None, &NoProgress, &mut || {}).unwrap();
    // WRITES scattered 4 KiB writes (more slots than one capture batch reads), one in a hole,
    // one punched range.
    const WRITES: u64 = 150;
    let f = OpenOptions::new().write(true).open(&vol).unwrap();
    for i in 0..WRITES {
        f.write_all_at(&stamp(i + 1), (i * 3_999_971) % size / BLOCK * BLOCK).unwrap();
    }
    f.write_all_at(&stamp(77), 200 << 20).unwrap();
    // SAFETY: fallocate on an fd we own.
    assert_eq!(
        unsafe {
            libc::fallocate(
                std::os::unix::io::AsRawFd::as_raw_fd(&f),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                4 << 20,
                128 << 10,
            )
        },
        0
    );
    let n = fs.mnt.join("n.img");
    assert!(matches!(clone_file(&vol, &n).unwrap(), CloneOutcome::Cloned));
    let changed = changed_between(&p, &n, cs).expect("both clones' maps read");
    let flagged = changed.iter().filter(|c| **c).count();
    assert!(flagged as u64 <= WRITES + 1 + 2, "{flagged} slots flagged for {} changes", WRITES + 2);
    assert!(flagged > 64, "{flagged} slots flagged: the capture must read several batches");
    let tracked = store.capture_tracked("b", &n, Some("a"), Some(&changed), &NoProgress, &mut || {}).unwrap();
    let full = store.capture("c", &n, None, &NoProgress, &mut || {}).unwrap();
    assert_eq!(store.read_index("b").unwrap().digests, store.read_index("c").unwrap().digests);
    assert_eq!(tracked.tracked_slots as usize, changed.len() - flagged);
    assert!(tracked.read_bytes <= (flagged * cs) as u64, "read {} bytes", tracked.read_bytes);
    assert!(full.read_bytes >= 64 << 20);
    // Roll the volume back to "a" (whose clone is p): only flagged slots are even read.
    f.write_all_at(&stamp(5), 3 << 20).unwrap();
    let changed = changed_between(&p, &vol, cs).unwrap();
    let flagged = changed.iter().filter(|c| **c).count();
    let rb = store.restore_in_place_tracked("a", &vol, Some(&changed), &NoProgress).unwrap();
    assert!(std::fs::read(&vol).unwrap() == std::fs::read(&p).unwrap(), "the volume holds point a");
    assert!(rb.compared_bytes <= (flagged * cs) as u64, "compared {} bytes", rb.compared_bytes);
    assert_eq!(rb.tracked_slots as usize, changed.len() - flagged);
    // WRITES + 3 changed 4 KiB blocks and a punched 128 KiB range put back: nothing else is
    // written.
    assert!(rb.written_bytes <= ((WRITES + 3) * BLOCK + (128 << 10)), "wrote {} bytes", rb.written_bytes);
    // Back to the kept clone's own bytes: only the blocks written since the clone (by the roll
    // back above, and these two) are read, and only those whose bytes differ are written.
    f.write_all_at(&stamp(9), (6 << 20) + BLOCK).unwrap();
    f.write_all_at(&stamp(10), 250 << 20).unwrap();
    let (compared, written) = disksnap_engine::points::restore_from_clone(&p, &vol).unwrap().unwrap();
    assert!(std::fs::read(&vol).unwrap() == std::fs::read(&p).unwrap(), "the volume holds point a again");
    assert!(compared <= (WRITES + 3 + 2) * BLOCK + (128 << 10), "compared {compared}");
    assert!((BLOCK..=2 * BLOCK).contains(&written), "wrote {written}");
    // An untracked roll back of the same change agrees.
    f.write_all_at(&stamp(6), 3 << 20).unwrap();
    store.restore_in_place("a", &vol, &NoProgress).unwrap();
    assert!(std::fs::read(&vol).unwrap() == std::fs::read(&p).unwrap());
}

/// Without reflink (ext4) no clone is made and nothing is left behind.
#[test]
fn ext4_has_no_clones() {
    let Some(fs) = LoopFs::new("ext4") else { return };
    let vol = fs.mnt.join("vol.img");
    std::fs::write(&vol, vec![1u8; 1 << 20]).unwrap();
    let target = fs.mnt.join("p.img");
    assert!(matches!(clone_file(&vol, &target).unwrap(), CloneOutcome::Unsupported(_)));
    assert!(!target.exists());
}
