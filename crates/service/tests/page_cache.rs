//! The rendered-page cache is exact (issue 16): a write is visible in the next list, always —
//! a write of this process, and one of another process on the same data dir (SQLite: the CLI
//! on the same file) or of another node (PostgreSQL: a second service on the same database).
//! Each check compares the cached rendering with a fresh uncached read of the same page.
//! Runs on SQLite and, when DISKSNAP_TEST_PG_URL names a server, on PostgreSQL.

use std::sync::Arc;

use disksnap_service::*;

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

async fn wait(svc: &Service, me: &Caller, job: &str) {
    let job = tokio::time::timeout(std::time::Duration::from_secs(60), svc.wait_job(me, job)).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Successful, "{job:?}");
}

/// Every field of every point, as a test rendering (Debug shows them all).
fn render(snaps: &[Snapshot]) -> Vec<u8> {
    format!("{snaps:?}").into_bytes()
}

fn filter() -> SnapshotFilter {
    SnapshotFilter { limit: 100, ..Default::default() }
}

/// The page through the cache, checked against an uncached read of the same page.
async fn exact(svc: &Service, me: &Caller, why: &str) -> Arc<[u8]> {
    let (items, total) = svc.snapshots_rendered(me, &filter(), "test", render).await.unwrap();
    let (fresh, fresh_total) = svc.snapshots(me, &filter()).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&items), String::from_utf8_lossy(&render(&fresh)), "{why}: items");
    assert_eq!(total, fresh_total, "{why}: total");
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_the_next_list_from_any_process() {
    a_write_is_in_the_next_list_from_any_process_on(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_the_next_list_from_any_process_on_postgres() {
    a_write_is_in_the_next_list_from_any_process_on(true).await
}

async fn a_write_is_in_the_next_list_from_any_process_on(pg: bool) {
    let Some(dir) = data_dir(pg, "a_write_is_in_the_next_list_from_any_process").await else { return };
    let me = Caller::new("dev");
    // `svc` serves the lists; `other` is another process (SQLite) or node (PostgreSQL) writing
    // to the same metadata, whose writes `svc` hears of only through the store.
    let svc = open(dir.path()).await;
    let other = open(dir.path()).await;
    let (job, vols) =
        other.create_volumes(&me, CreateVolumes { size_gib: 1, count: 1, ..Default::default() }).await.unwrap();
    wait(&other, &me, &job.id).await;
    let vol = vols[0].id.clone();
    let empty = exact(&svc, &me, "no points yet").await;
    assert_eq!(&*empty, b"[]");

    let (job, snaps) = other
        .create_snapshots(&me, CreateSnapshots { volumes: vec![vol.clone()], ..Default::default() })
        .await
        .unwrap();
    wait(&other, &me, &job.id).await;
    let first = exact(&svc, &me, "a point made by the other process").await;
    assert!(String::from_utf8_lossy(&first).contains(&snaps[0].id));

    // Nothing changed: the same rendering, from the cache (the same bytes, not a copy).
    let (again, _) = svc.snapshots_rendered(&me, &filter(), "test", render).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "an unchanged page is served from the cache");
    // Another account, another view: never the cached page.
    let (theirs, n) = svc.snapshots_rendered(&Caller::new("other"), &filter(), "test", render).await.unwrap();
    assert_eq!((&*theirs, n), (&b"[]"[..], 0));
    let (other_view, _) = svc.snapshots_rendered(&me, &filter(), "test2", |_| b"x".to_vec()).await.unwrap();
    assert_eq!(&*other_view, b"x");

    // Each write, by the other process, is in the next list.
    let before = exact(&svc, &me, "before the rename").await;
    other.modify_snapshot(&me, &snaps[0].id, Some("renamed point"), None).await.unwrap();
    let after = exact(&svc, &me, "a point renamed by the other process").await;
    assert!(String::from_utf8_lossy(&after).contains("renamed point"), "the rename is in the next list");
    assert_ne!(before, after);

    other.modify_volume(&me, &vol, Some("renamed volume"), None).await.unwrap();
    let after = exact(&svc, &me, "its volume renamed by the other process").await;
    assert!(String::from_utf8_lossy(&after).contains("renamed volume"), "the volume's name is in the next list");

    let tag = other.create_tag(&me, "team", "blue").await.unwrap();
    other.attach_tags(&me, &[(tag.id.clone(), snaps[0].id.clone())]).await.unwrap();
    let after = exact(&svc, &me, "a tag bound by the other process").await;
    assert!(String::from_utf8_lossy(&after).contains("blue"), "the tag is in the next list");

    let (job, more) = other
        .create_snapshots(&me, CreateSnapshots { volumes: vec![vol.clone()], ..Default::default() })
        .await
        .unwrap();
    wait(&other, &me, &job.id).await;
    let after = exact(&svc, &me, "a second point").await;
    assert!(String::from_utf8_lossy(&after).contains(&more[0].id));

    let job = other.delete_snapshots(&me, &[more[0].id.clone()], DeleteScope::Points).await.unwrap();
    wait(&other, &me, &job.id).await;
    exact(&svc, &me, "a point deleted by the other process").await;

    // And this process's own writes.
    svc.modify_snapshot(&me, &snaps[0].id, Some("renamed here"), None).await.unwrap();
    let after = exact(&svc, &me, "a rename by this process").await;
    assert!(String::from_utf8_lossy(&after).contains("renamed here"));
}

/// Misses render a few at a time (the cores but one): a burst of the same miss (every list right after
/// a write) renders it at most once per permit, the others take the page rendered meanwhile;
/// a rendering that asks for a page itself takes no second permit (no deadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_misses_renders_each_page_a_few_times_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path()).await;
    let renders = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (svc, renders) = (svc.clone(), renders.clone());
        tasks.push(tokio::spawn(async move {
            let page: Result<CachedPage> = svc
                .page_cached(Some("burst".into()), || async {
                    renders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    Ok(((Arc::from(&b"page"[..]), 1), true))
                })
                .await;
            page.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(&*t.await.unwrap().0, b"page");
    }
    let permits = std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_sub(1).max(1);
    let n = renders.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=permits).contains(&n), "{n} renders for one page with {permits} permits");
    let nested: Result<CachedPage> = svc
        .page_cached(None, || async {
            let inner: Result<CachedPage> =
                svc.page_cached(None, || async { Ok(((Arc::from(&b"in"[..]), 0), false)) }).await;
            Ok((inner?, false))
        })
        .await;
    assert_eq!(&*nested.unwrap().0, b"in");
}
