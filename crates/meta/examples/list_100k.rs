//! How fast is a filtered snapshot listing at 100 000 snapshots? (performance.md's
//! DescribeSnapshots line, measured at the metadata layer: the query plus the count.)
//!
//!     cargo run --release -p disksnap-meta --example list_100k [-- COUNT [ACCOUNTS]]
//!
//! Fills a fresh SQLite database with COUNT snapshots (default 100 000) over 1 000 volumes and
//! ACCOUNTS accounts (default 2; 1 puts every snapshot in the listed account), then times pages
//! of 100 under the filters the dialects use most, and the OpenStack (Cinder/EVS) list: the
//! old way (every live snapshot read in offset pages of 100, then paged in memory) against the
//! keyset page (`after` the marker, no COUNT unless asked).

use std::time::Instant;

use disksnap_meta::{Batch, MetaStore, Order, SnapshotFilter, SnapshotRow, SqliteMeta};

/// p50 and p99 (ms) of `n` runs of `f`, and the last run's output.
async fn time<T, F: std::future::Future<Output = anyhow::Result<T>>>(
    n: usize,
    mut f: impl FnMut() -> F,
) -> anyhow::Result<(f64, f64, T)> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        last = Some(f().await?);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = times[((n * 99) / 100).min(n - 1)];
    Ok((times[n / 2], p99, last.expect("n > 0")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let accounts: usize = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let dir = tempfile::tempdir()?;
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).await?;
    let t0 = Instant::now();
    let base = 1_700_000_000_000i64;
    for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
        let mut b = Batch::default();
        for &i in chunk {
            let vol = i % 1000;
            let full = i % 10 < 1 || i < 1000;
            b.put_snapshots.push(SnapshotRow {
                id: format!("{i:08}"),
                account: if i % accounts == 0 { "a".into() } else { "b".into() },
                zone: "pek3a".into(),
                name: format!("nightly-{}", i % 97),
                description: String::new(),
                volume_id: format!("v{vol:07}"),
                volume_size: 1 << 30,
                volume_kind: if vol % 5 == 0 { "system" } else { "data" }.into(),
                instance_id: Some(format!("i{:07}", vol / 4)),
                is_full: full,
                root_id: format!("{:08}", i - i % 10),
                parent_id: (!full).then(|| format!("{:08}", i - 1)),
                is_head: i % 10 == 9,
                status: if i % 50 == 0 { "deleted" } else { "available" }.into(),
                transition: String::new(),
                is_taken: true,
                progress: 100,
                snapshot_time: base + i as i64 * 1000,
                create_time: base + i as i64 * 1000,
                status_time: base + i as i64 * 1000,
                deleted_time: None,
                expire_time: None,
                size: 1 << 20,
                origin: "user".into(),
                retention_days: None,
                encrypted: false,
                used_by_images: 0,
                used_by_volumes: 0,
                logical_size: None,
                consistency: String::new(),
                version: 0,
            });
        }
        meta.commit(b).await?;
    }
    println!("inserted {count} snapshots in {:.1} s", t0.elapsed().as_secs_f64());
    meta.maintain().await?; // what the server's periodic tick does
    let page = |f: SnapshotFilter| SnapshotFilter { account: "a".into(), limit: 100, ..f };
    let cases: Vec<(&str, SnapshotFilter)> = vec![
        ("no filter, first page", page(Default::default())),
        ("no filter, offset 40000", page(SnapshotFilter { offset: 40_000, ..Default::default() })),
        ("one volume", page(SnapshotFilter { volume_ids: vec!["v0000042".into()], ..Default::default() })),
        ("status=deleted", page(SnapshotFilter { statuses: vec!["deleted".into()], ..Default::default() })),
        ("full points only", page(SnapshotFilter { is_full: Some(true), ..Default::default() })),
        ("one chain", page(SnapshotFilter { root_id: Some("00004200".into()), ..Default::default() })),
        ("name", page(SnapshotFilter { name: Some("nightly-7".into()), ..Default::default() })),
        (
            "ids (10)",
            page(SnapshotFilter { ids: (0..10).map(|i| format!("{:08}", i * 2)).collect(), ..Default::default() }),
        ),
        ("search word", page(SnapshotFilter { search: Some("nightly-9".into()), ..Default::default() })),
    ];
    println!("{:<28} {:>9} {:>9} {:>9}", "filter (page of 100)", "p50 ms", "p99 ms", "total");
    for (label, f) in cases {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let p = meta.snapshots(&f).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            total = p.total;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{label:<28} {:>9.2} {:>9.2} {:>9}", times[100], times[198], total);
    }
    cinder(&meta).await
}

/// The OpenStack list, `GET /v3/{project}/snapshots/detail?limit=100[&marker=…]`, at the
/// metadata layer (the service adds three queries per page for chain totals, heads and tags).
async fn cinder(meta: &SqliteMeta) -> anyhow::Result<()> {
    let live = |f: SnapshotFilter| SnapshotFilter {
        account: "a".into(),
        statuses: vec!["creating".into(), "available".into()],
        limit: 100,
        ..f
    };
    let total = meta.snapshots(&live(SnapshotFilter { limit: 1, ..Default::default() })).await?.total;
    // A marker in the middle of the account's list, as a client deep in its paging sends.
    let mid = meta.snapshots(&live(SnapshotFilter { offset: total / 2, limit: 1, ..Default::default() })).await?;
    let m = &mid.items[0];
    let marker = Some((m.create_time, m.id.clone()));
    println!("\nOpenStack list of {total} live snapshots of one account, page of 100");
    println!("{:<44} {:>9} {:>9} {:>7}", "", "p50 ms", "p99 ms", "queries");
    let (p50, p99, n) = time(5, || async {
        // What cinder::all_snapshots did: every live snapshot in offset pages of 100.
        let mut q = live(Default::default());
        let mut n = 0;
        loop {
            let p = meta.snapshots(&q).await?;
            n += 1;
            q.offset += p.items.len() as u64;
            if p.items.is_empty() || q.offset >= p.total {
                break;
            }
        }
        Ok(n)
    })
    .await?;
    println!("{:<44} {p50:>9.2} {p99:>9.2} {n:>7}", "before: scan all (offset pages of 100)");
    let cases: Vec<(&str, SnapshotFilter)> = vec![
        ("after: first page, no count", live(SnapshotFilter { skip_count: true, ..Default::default() })),
        ("after: first page, with_count", live(Default::default())),
        (
            "after: marker mid-list, no count",
            live(SnapshotFilter { skip_count: true, after: marker.clone(), ..Default::default() }),
        ),
        (
            "after: marker mid-list, created_at:asc",
            live(SnapshotFilter {
                skip_count: true,
                after: marker.clone(),
                order: Order::OldestFirst,
                ..Default::default()
            }),
        ),
        (
            "after: marker mid-list, status=available",
            live(SnapshotFilter {
                skip_count: true,
                after: marker.clone(),
                statuses: vec!["available".into()],
                not_transitions: vec!["deleting".into(), "rolling-back".into()],
                ..Default::default()
            }),
        ),
        (
            "after: marker mid-list, volume_id",
            live(SnapshotFilter {
                skip_count: true,
                after: marker.clone(),
                volume_ids: vec![format!("v{:07}", 42)],
                ..Default::default()
            }),
        ),
        (
            "after: marker mid-list, name",
            live(SnapshotFilter {
                skip_count: true,
                after: marker.clone(),
                name: Some("nightly-7".into()),
                ..Default::default()
            }),
        ),
    ];
    for (label, f) in cases {
        let (p50, p99, _) = time(200, || async { Ok(meta.snapshots(&f).await?) }).await?;
        println!("{label:<44} {p50:>9.2} {p99:>9.2} {:>7}", if f.skip_count { 1 } else { 2 });
    }
    // Each item's metadata: one query per item before, one per page after.
    let page = meta.snapshots(&live(SnapshotFilter { skip_count: true, ..Default::default() })).await?;
    let ids: Vec<String> = page.items.iter().map(|r| r.id.clone()).collect();
    let (p50, p99, _) = time(50, || async {
        for id in &ids {
            meta.snapshot_metadata(id).await?;
        }
        Ok(())
    })
    .await?;
    println!("{:<44} {p50:>9.2} {p99:>9.2} {:>7}", "before: metadata of 100 items, one by one", 100);
    let (p50, p99, _) = time(200, || async { Ok(meta.snapshots_metadata("a", &ids).await?) }).await?;
    println!("{:<44} {p50:>9.2} {p99:>9.2} {:>7}", "after: metadata of 100 items, batched", 1);
    Ok(())
}
